// Guarantee: sessions subscribed to thousands of script hashes and to headers, on the wired server following a
// simnet, get exactly the notifications whose statuses changed (each ending on the status the independent model
// computes, none for untouched script hashes), under mempool churn, mining, empty blocks and reorgs of depth 1
// and 6; and one headers notification per new tip. A second session subscribed to a subset (with upper-case
// script hashes) hears only about its own, echoed as it sent them.
import assert from "node:assert/strict";
import { simnet, withTempDir } from "./harness.ts";
import { LineClient, type Notification } from "./server_client.ts";
import {
  type ElectrumModel,
  hex,
  p2wpkh,
  scripthashOf,
  spendTx,
  txHashOf,
  unhex,
  unrhex,
} from "./server_model.ts";
import { isStatus, Settler, startStack } from "./server_stack.ts";

const UNTHROTTLED = { COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" };

/** Subscribes `client` to `aliases` (as sent) and checks each reply against the model. */
async function subscribeAll(
  client: LineClient,
  model: ElectrumModel,
  aliases: Map<string, string>,
): Promise<void> {
  const list = [...aliases];
  const replies = await client.many(list.map(([alias]) => ["blockchain.scripthash.subscribe", [alias]]));
  list.forEach(([alias, sh], i) => {
    assert.equal(replies[i].error, undefined, `subscribe ${alias}: ${JSON.stringify(replies[i].error)}`);
    assert.equal(replies[i].result, model.status(sh), `subscribe status of ${alias}`);
  });
}

/** Last status notified per alias among `notes` (script hash notifications only). */
function lastStatuses(notes: Notification[]): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const n of notes) {
    if (n.method === "blockchain.scripthash.subscribe") {
      out.set(n.params[0] as string, n.params[1] as string | null);
    }
  }
  return out;
}

Deno.test("subscriptions: exactly the changed statuses are notified under churn, mining and reorgs; headers once per tip", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 130, seed: "server-notify", txs: 1500 });
    const node = sim.node;
    node.addMempoolTraffic(60);
    const stack = await startStack(sim, `${dir}/db`, UNTHROTTLED);
    const main = await LineClient.connect(stack.port);
    const other = await LineClient.connect(stack.port);
    try {
      await main.hello(["1.4", "1.6"]);
      await other.hello("1.4.2");
      const settler = new Settler(node, main, 2, [other]);
      let model = await settler.start();

      // main: every script hash there is; other: every 9th, upper-case.
      const mainSubs = new Map<string, string>();
      const otherSubs = new Map<string, string>();
      const subscribeNew = async () => {
        const fresh = new Map<string, string>();
        const freshOther = new Map<string, string>();
        for (const sh of model.scripthashes()) {
          if (settler.owns(sh) || mainSubs.has(sh)) continue;
          mainSubs.set(sh, sh);
          fresh.set(sh, sh);
          if (mainSubs.size % 9 === 0) {
            otherSubs.set(sh.toUpperCase(), sh);
            freshOther.set(sh.toUpperCase(), sh);
          }
        }
        await subscribeAll(main, model, fresh);
        await subscribeAll(other, model, freshOther);
      };
      await subscribeNew();
      assert.ok(mainSubs.size > 2000, `${mainSubs.size} subscriptions`);
      let otherMark = settler.markOf(other);
      const tipHeader = () => hex(node.blockInfo(node.tipHash)!.header);

      const steps: [string, () => void][] = [
        ["mempool traffic", () => node.addMempoolTraffic(40)],
        ["a block confirming the mempool", () => node.mine(1)],
        ["traffic spending fresh outputs", () => node.addMempoolTraffic(50)],
        ["reorg of depth 1", () => node.reorg(1, { toMempool: 2, doubleSpend: 1 })],
        ["more traffic", () => node.addMempoolTraffic(30)],
        ["an empty block", () => node.mine(1, { includeMempool: false })],
        ["two blocks", () => node.mine(2)],
        ["traffic before a deep reorg", () => node.addMempoolTraffic(40)],
        ["reorg of depth 6", () => node.reorg(6, { extraBlocks: 1, toMempool: 4, doubleSpend: 2 })],
        ["a block after the reorg", () => node.mine(1)],
      ];
      let changedSteps = 0;
      for (const [name, act] of steps) {
        const before = model;
        const mark = settler.mark;
        const tipBefore = tipHeader();
        act();
        model = await settler.settle();
        const notes = main.notifications.slice(mark, settler.mark);

        // Headers: nothing without a new tip; otherwise each tip once, active-chain headers only, ending on the tip.
        const headers = notes.filter((n) => n.method === "blockchain.headers.subscribe")
          .map((n) => n.params[0] as { height: number; hex: string });
        if (tipHeader() === tipBefore) {
          assert.deepEqual(headers, [], `${name}: no new tip, no headers notification`);
        } else {
          assert.ok(headers.length >= 1, `${name}: the new tip is notified`);
          assert.deepEqual(headers.at(-1), { height: node.height, hex: tipHeader() }, `${name}: last header`);
          assert.equal(
            new Set(headers.map((h) => h.hex)).size,
            headers.length,
            `${name}: a tip notified twice`,
          );
          for (const h of headers) {
            assert.equal(h.hex, hex(node.blockInfo(node.hashAt(h.height)!)!.header), `${name}: stale header`);
          }
        }

        // Script hashes: exactly those whose status changed, each ending on the model's status. The settler's own
        // script hashes (its barrier payments) are left out.
        const mine = (notes: Notification[]) =>
          notes.filter((n) =>
            n.method !== "blockchain.scripthash.subscribe" || !settler.owns(n.params[0] as string)
          );
        const got = lastStatuses(mine(notes));
        const changed = [...mainSubs.keys()].filter((sh) => before.status(sh) !== model.status(sh));
        assert.deepEqual([...got.keys()].sort(), changed.sort(), `${name}: notified vs changed`);
        for (const sh of changed) {
          assert.equal(got.get(sh), model.status(sh), `${name}: final status of ${sh}`);
        }
        if (changed.length > 0) changedSteps++;
        assert.ok(changed.length < mainSubs.size / 4, `${name}: most subscriptions are untouched`);

        // The other session: the same property on its subset, under the names it used.
        const otherNotes = mine(other.notifications.slice(otherMark, settler.markOf(other)));
        otherMark = settler.markOf(other);
        const otherGot = lastStatuses(otherNotes);
        const otherChanged = [...otherSubs].filter(([, sh]) => before.status(sh) !== model.status(sh))
          .map(([alias]) => alias);
        assert.deepEqual([...otherGot.keys()].sort(), otherChanged.sort(), `${name}: other session`);
        for (const alias of otherChanged) {
          assert.equal(otherGot.get(alias), model.status(otherSubs.get(alias)!));
        }
        assert.equal(
          otherNotes.filter((n) => n.method === "blockchain.headers.subscribe").length,
          0,
          "the other session never subscribed to headers",
        );

        await subscribeNew();
      }
      assert.ok(changedSteps >= 8, `${changedSteps} steps changed statuses`);
    } finally {
      main.close();
      other.close();
      await stack.close();
      await sim.close();
    }
  });
});

/** Runs `fn` on a fresh 110-block simnet, the wired server following it, and one client that said hello (1.4). */
async function withServer(
  seed: string,
  txs: number,
  fn: (
    sim: Awaited<ReturnType<typeof simnet>>,
    stack: Awaited<ReturnType<typeof startStack>>,
    client: LineClient,
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 110, seed, txs });
    const stack = await startStack(sim, `${dir}/db`, UNTHROTTLED);
    const client = await LineClient.connect(stack.port);
    try {
      await client.hello("1.4");
      await fn(sim, stack, client);
    } finally {
      client.close();
      await stack.close();
      await sim.close();
    }
  });
}

Deno.test("a block mining a replacement the server never saw: the replaced payment and its child leave with the block", async () => {
  await withServer("server-mined-conflict", 600, async (sim, stack, client) => {
    const node = sim.node;
    const settler = new Settler(node, client, 4);
    let model = await settler.start();
    const w = p2wpkh(0x41, 4), y = p2wpkh(0x42, 4);
    const shW = scripthashOf(w), shY = scripthashOf(y);
    assert.equal(await client.request("blockchain.scripthash.subscribe", [shW]), null);
    assert.equal(await client.request("blockchain.scripthash.subscribe", [shY]), null);
    const coin = model.spendableCoin(2_000_000);
    const paymentRaw = spendTx([coin], [
      { value: 1_000_000, script: w },
      { value: coin.value - 1_005_000, script: p2wpkh(0x43, 4) },
    ]);
    const payment = txHashOf(paymentRaw);
    const childRaw = spendTx([{ txid: unrhex(payment), vout: 0 }], [{ value: 990_000, script: y }]);
    assert.equal(await client.request("blockchain.transaction.broadcast", [hex(paymentRaw)]), payment);
    assert.equal(
      await client.request("blockchain.transaction.broadcast", [hex(childRaw)]),
      txHashOf(childRaw),
    );
    model = await settler.settle();
    // W: paid by the payment and spent by the child; Y: paid by the child.
    assert.equal((await client.request<unknown[]>("blockchain.scripthash.get_mempool", [shW])).length, 2);
    assert.deepEqual(await client.request("blockchain.scripthash.get_balance", [shY]), {
      confirmed: 0,
      unconfirmed: 990_000,
    });

    // What the server's mempool holds at the very flush that makes the block visible to its readers.
    const atFlush: { payment: boolean; child: boolean; unconfirmedY: number }[] = [];
    const mempool = stack.serving.mempool;
    stack.indexer.store.onAppend(() => {
      atFlush.push({
        payment: mempool.has(unrhex(payment)),
        child: mempool.has(unrhex(txHashOf(childRaw))),
        unconfirmedY: mempool.balanceDelta(unhex(shY).reverse().subarray(0, 11)),
      });
    });
    // The replacement enters bitcoind's mempool and is mined in the same turn: no poll of the server sees it.
    const replacementRaw = spendTx([coin], [{ value: coin.value - 60_000, script: p2wpkh(0x44, 4) }]);
    node.acceptTx(replacementRaw);
    node.mine(1);
    model = await settler.settle();
    assert.deepEqual(atFlush, [{ payment: false, child: false, unconfirmedY: 0 }]);
    for (const sh of [shW, shY]) {
      assert.deepEqual(await client.request("blockchain.scripthash.get_balance", [sh]), model.balance(sh));
      assert.deepEqual(await client.request("blockchain.scripthash.get_history", [sh]), []);
      assert.deepEqual(await client.request("blockchain.scripthash.listunspent", [sh]), []);
      assert.ok(
        client.notifications.some((n) => isStatus(n, sh, null)),
        `${sh} was told it is empty again`,
      );
    }
    assert.deepEqual(model.balance(shY), { confirmed: 0, unconfirmed: 0 });
  });
});

Deno.test("a status cached before a block or a reorg is dropped in the step that changes the database", async () => {
  await withServer("server-stale-cache", 200, async (sim, stack, client) => {
    const node = sim.node;
    const settler = new Settler(node, client, 4);
    let model = await settler.start();
    const w = p2wpkh(0x51, 4);
    const shW = scripthashOf(w);
    const hashXW = unhex(shW).reverse().subarray(0, 11);
    const subscriptions = stack.serving.subscriptions;
    assert.equal(await client.request("blockchain.scripthash.subscribe", [shW]), null);
    assert.equal(subscriptions.entry(hashXW)?.status, null, "the subscribe cached its status");

    // What a subscribe would be answered from at the very step that makes the block (then the backup) visible.
    const seen: { at: string; status: string | null | undefined }[] = [];
    stack.indexer.store.onAppend(() =>
      seen.push({ at: "block", status: subscriptions.entry(hashXW)?.status })
    );
    stack.indexer.store.onBackup(() =>
      seen.push({ at: "backup", status: subscriptions.entry(hashXW)?.status })
    );
    // A payment to W that is mined in the turn it reaches bitcoind: no mempool refresh of the server sees it.
    const coin = model.spendableCoin(2_000_000);
    node.acceptTx(spendTx([coin], [{ value: coin.value - 10_000, script: w }]));
    node.mine(1);
    model = await settler.settle();
    assert.notEqual(model.status(shW), null);
    assert.deepEqual(seen, [{ at: "block", status: undefined }]);
    const second = await LineClient.connect(stack.port);
    try {
      await second.hello("1.4");
      assert.equal(await second.request("blockchain.scripthash.subscribe", [shW]), model.status(shW));
      assert.equal(subscriptions.entry(hashXW)?.status, model.status(shW));
      seen.length = 0;
      node.reorg(1, { extraBlocks: 1 });
      model = await settler.settle();
      assert.equal(seen[0]?.at, "backup");
      assert.equal(seen[0].status, undefined, "the backup dropped it");
      assert.equal(await second.request("blockchain.scripthash.subscribe", [shW]), model.status(shW));
    } finally {
      second.close();
    }
  });
});

Deno.test("tips flushed while an earlier tip's notifications wait for bitcoind: only the newest is announced, never one older than a reply", async () => {
  await withServer("server-tip-queue", 100, async (sim, stack, client) => {
    const node = sim.node;
    const heightOf = (n: Notification) => (n.params[0] as { height: number }).height;
    const headerHex = (h: number) => hex(node.blockInfo(node.hashAt(h)!)!.header);
    const start = await client.request<{ height: number }>("blockchain.headers.subscribe");
    assert.equal(start.height, node.height);
    // Each tip's notifications wait for a mempool refresh; a slow getrawmempool (a busy node) holds them there
    // while later blocks are flushed.
    const daemon = stack.indexer.daemon;
    const call = daemon.call.bind(daemon);
    let hold: PromiseWithResolvers<void> | undefined = Promise.withResolvers();
    daemon.call = (async (method: string, params?: unknown[]) => {
      if (method === "getrawmempool" && hold) await hold.promise;
      return await call(method, params);
    }) as typeof daemon.call;
    const flushed = (height: number) =>
      new Promise<void>((resolve) =>
        stack.indexer.store.onAppend(() => {
          if (stack.indexer.store.state.height === height) resolve();
        })
      );
    try {
      const t = node.height;
      node.mine(1);
      await client.waitNotification((n) =>
        n.method === "blockchain.headers.subscribe" && heightOf(n) === t + 1
      );
      for (const h of [t + 2, t + 3]) {
        const done = flushed(h);
        node.mine(1);
        await done;
      }
      const late = await LineClient.connect(stack.port);
      try {
        await late.hello("1.4");
        const reply = await late.request<{ height: number; hex: string }>("blockchain.headers.subscribe");
        assert.deepEqual(reply, { height: t + 1, hex: headerHex(t + 1) }, "the tip announced so far");
        const released = hold;
        hold = undefined;
        released.resolve();
        const newest = (n: Notification) =>
          n.method === "blockchain.headers.subscribe" && heightOf(n) === t + 3;
        await late.waitNotification(newest);
        await client.waitNotification(newest);
        const heights = (c: LineClient) =>
          c.notifications.filter((n) => n.method === "blockchain.headers.subscribe").map(heightOf);
        assert.deepEqual(heights(late), [t + 3]);
        assert.deepEqual(heights(client), [t + 1, t + 3], "t + 2 was overtaken before its turn");
        assert.equal((late.notifications.at(-1)!.params[0] as { hex: string }).hex, headerHex(t + 3));
      } finally {
        late.close();
      }
    } finally {
      hold?.resolve();
      daemon.call = call;
    }
  });
});
