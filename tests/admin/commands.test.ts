// Every admin command against a running Coulomb (in-process, on simnet) over a real admin RPC socket, with
// answers checked against the naive reference model of the chain and against the Electrum methods.
import assert from "node:assert/strict";
import { adminCall, AdminCallError } from "../../src/admin/client.ts";
import { createAdminCommands, groupRows, type QueryResult } from "../../src/admin/commands.ts";
import type { NodeInfo, NodeView } from "../../src/admin/node.ts";
import { scriptToAddress } from "../../src/chain/address.ts";
import { parseBlock } from "../../src/chain/block.ts";
import { networkByName } from "../../src/chain/network.ts";
import { toHex, toHexReversed } from "../../src/chain/hex.ts";
import { scriptHash } from "../../src/chain/script.ts";
import { decodeTransaction } from "../../src/chain/tx.ts";
import type { Log } from "../../src/log.ts";
import type { SessionInfo } from "../../src/server/session.ts";
import { activeChain, referenceOf } from "../integration/harness.ts";
import { compareStore, refHashX } from "../integration/reference.ts";
import { ElectrumClient, type Stack, startStack } from "./stack.ts";

const silent: Log = { debug() {}, info() {}, warn() {}, error() {}, enabled: () => false };

function call<T = unknown>(stack: Stack, method: string, params: unknown = []): Promise<T> {
  return adminCall({ host: "127.0.0.1", port: stack.rpcPort }, method, params) as Promise<T>;
}

/** Every output script of the node's active chain by hashX hex, and the hashX with the longest history. */
function scriptsOf(stack: Stack): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const raw of activeChain(stack.sim.node)) {
    for (const tx of parseBlock(raw).txs) for (const o of tx.outputs) out.set(refHashX(o.script), o.script);
  }
  return out;
}

Deno.test("admin commands against a running server on simnet", async (t) => {
  // A small FLUSH_SIZE makes the initial sync flush often, so scripts gather many history rows to compact.
  const stack = await startStack({
    seed: "admin-commands",
    blocks: 150,
    env: { FLUSH_SIZE: "300", REORG_LIMIT: "50" },
    compactChunkRows: 64,
  });
  try {
    const net = networkByName("regtest");

    await t.step("getinfo reports heights, state, sessions, subscriptions and the database", async () => {
      const c = await ElectrumClient.connect(stack.electrumPort, "wallet-one");
      try {
        const info = await call<NodeInfo>(stack, "getinfo");
        assert.equal(info.network, "regtest");
        assert.equal(info.pid, Deno.pid);
        assert.equal(info.db_height, stack.sim.node.height);
        assert.equal(info.indexed_height, stack.sim.node.height);
        assert.equal(info.daemon_height, stack.sim.node.height);
        assert.equal(info.tx_count, referenceOf(stack.sim.node).txCount);
        assert.equal(info.sync_state, "serving");
        assert.equal(info.sessions, 1);
        assert.equal(info.first_sync, false);
        assert.ok(info.db_size > 0 && info.flush_count > 1, JSON.stringify(info));
        assert.match(info.version, /^Coulomb \d+\.\d+\.\d+$/);
        assert.match(info.uptime, /^0d 00h 00m \d\ds$/);
        // A subscription shows up at once.
        const sh = toHexReversed(scriptHash(Uint8Array.of(0x51)));
        await c.request("blockchain.scripthash.subscribe", [sh]);
        const after = await call<NodeInfo>(stack, "getinfo");
        assert.equal(after.subscriptions, 1);
        assert.equal(after.subscribed_scripts, 1);
      } finally {
        c.close();
      }
    });

    await t.step(
      "sessions lists each client with its name, protocol, requests and subscriptions",
      async () => {
        const a = await ElectrumClient.connect(stack.electrumPort, "alice/4.5");
        const b = await ElectrumClient.connect(stack.electrumPort, "bob");
        try {
          await a.request("blockchain.scripthash.subscribe", [
            toHexReversed(scriptHash(Uint8Array.of(0x52))),
          ]);
          await a.request("blockchain.scripthash.subscribe", [
            toHexReversed(scriptHash(Uint8Array.of(0x53))),
          ]);
          await b.request("blockchain.headers.subscribe", []);
          const rows = await call<Record<string, unknown>[]>(stack, "sessions");
          const alice = rows.find((r) => r.client === "alice/4.5")!;
          const bob = rows.find((r) => r.client === "bob")!;
          assert.ok(alice && bob, JSON.stringify(rows));
          assert.equal(alice.version, "1.4");
          assert.equal(alice.protocol, "tcp");
          assert.equal(alice.subs, 2);
          assert.equal(bob.subs, 0);
          assert.ok(
            (alice.requests as number) >= 3 && (alice.recv_bytes as number) > 0,
            JSON.stringify(alice),
          );
          assert.ok((alice.send_bytes as number) > 0);
          assert.match(alice.remote as string, /^127\.0\.0\.1:\d+$/);
          assert.ok((bob.id as number) > (alice.id as number));
          // Loopback sessions are exempt from IP grouping.
          const groups = await call<{ groups: unknown[]; exempt_sessions: number }>(stack, "groups");
          assert.deepEqual(groups.groups, []);
          assert.equal(groups.exempt_sessions, rows.length);
        } finally {
          a.close();
          b.close();
        }
      },
    );

    await t.step("disconnect closes the named sessions and reports unknown ids", async () => {
      const victim = await ElectrumClient.connect(stack.electrumPort, "victim");
      const bystander = await ElectrumClient.connect(stack.electrumPort, "bystander");
      try {
        const rows = await call<{ id: number; client: string }[]>(stack, "sessions");
        const id = rows.find((r) => r.client === "victim")!.id;
        const result = await call<string[]>(stack, "disconnect", [id, 999_999, "x"]);
        assert.deepEqual(result, [`disconnected ${id}`, "unknown session 999999", "not a session id: x"]);
        await victim.closed();
        const left = await call<{ client: string }[]>(stack, "sessions");
        assert.ok(!left.some((r) => r.client === "victim"));
        // The other session still works.
        assert.equal(await bystander.request("server.ping", []), null);
        await assert.rejects(() => call(stack, "disconnect", []), /at least one session id/);
      } finally {
        victim.close();
        bystander.close();
      }
    });

    await t.step("log_level changes the level and refuses unknown names", async () => {
      assert.equal(await call(stack, "log_level", ["DEBUG"]), "log level set to debug");
      assert.equal(await call(stack, "log_level", { level: "warn" }), "log level set to warning");
      assert.deepEqual(stack.logLevels, ["debug", "warning"]);
      await assert.rejects(
        () => call(stack, "log_level", ["loud"]),
        (e: unknown) =>
          e instanceof AdminCallError && e.code === 1 && /debug, info, warning, error/.test(e.message),
      );
      // An object that cannot be turned into a string is named as JSON, not an internal error.
      await assert.rejects(
        () => call(stack, "log_level", [{ toString: null }]),
        (e: unknown) =>
          e instanceof AdminCallError && e.code === 1 &&
          e.message.includes(`unknown log level '{"toString":null}'`),
      );
    });

    await t.step("peers says peer discovery is off", async () => {
      const r = await call<{ discovery: string; peers: unknown[]; note: string }>(stack, "peers");
      assert.equal(r.discovery, "off");
      assert.deepEqual(r.peers, []);
      assert.match(r.note, /PEER_DISCOVERY=off/);
    });

    await t.step(
      "query by address and by script matches the reference model; bad items say why",
      async () => {
        const ref = referenceOf(stack.sim.node);
        const scripts = scriptsOf(stack);
        // The script with the longest history that has an address.
        let best: { hashX: string; script: Uint8Array; address: string } | undefined;
        for (const [hx, items] of ref.history) {
          const script = scripts.get(hx)!;
          const address = scriptToAddress(script, net);
          if (address && (!best || items.length > ref.history.get(best.hashX)!.length)) {
            best = { hashX: hx, script, address };
          }
        }
        assert.ok(best && ref.history.get(best.hashX)!.length >= 3, "the chain has a reused address");
        const [byAddress, byScript, byHash, bad] = await call<QueryResult[]>(stack, "query", {
          items: [best.address, toHex(best.script), toHexReversed(scriptHash(best.script)), "not-an-address"],
        });
        const wantHistory = ref.history.get(best.hashX)!.map(([txid, height]) => ({
          tx_hash: toHexReversed(hexBytes(txid)),
          height,
        }));
        const wantUtxos = ref.utxosOf(best.hashX).map((u) => ({
          tx_hash: toHexReversed(hexBytes(u.txid)),
          tx_pos: u.vout,
          height: u.height,
          value: u.value,
        }));
        for (const r of [byAddress, byScript, byHash]) {
          assert.deepEqual(r.history, wantHistory);
          assert.equal(r.history_more, false);
          assert.deepEqual(r.utxos, wantUtxos);
          assert.deepEqual(r.balance, { confirmed: ref.balanceOf(best.hashX), unconfirmed: 0 });
          assert.equal(r.scripthash, toHexReversed(scriptHash(best.script)));
        }
        assert.equal(byAddress.kind, "address");
        assert.equal(byAddress.script, toHex(best.script));
        assert.equal(byScript.kind, "script");
        assert.equal(byHash.kind, "scripthash");
        assert.equal(byHash.script, undefined);
        assert.match(bad.error!, /not an address, hex script or script hash/);
        // The limit cuts each list and says so.
        const [limited] = await call<QueryResult[]>(stack, "query", [best.address, 2]);
        assert.deepEqual(limited.history, wantHistory.slice(0, 2));
        assert.equal(limited.history_more, true);
        await assert.rejects(() => call(stack, "query", [[best!.address], 0]), /limit must be an integer/);
      },
    );

    await t.step("query includes the mempool exactly as the Electrum methods report it", async () => {
      const txids = stack.sim.node.addMempoolTraffic(30);
      await stack.serving.mempool.refresh();
      assert.ok(stack.serving.mempool.size > 0);
      const tx = decodeTransaction(stack.sim.node.mempoolTx(txids[txids.length - 1])!.raw);
      const script = tx.outputs[0].script;
      const sh = toHexReversed(scriptHash(script));
      const [r] = await call<QueryResult[]>(stack, "query", [[toHex(script)]]);
      const e = await ElectrumClient.connect(stack.electrumPort);
      try {
        const history = await e.request<{ tx_hash: string; height: number }[]>(
          "blockchain.scripthash.get_history",
          [sh],
        );
        const unspent = await e.request<{ tx_hash: string; tx_pos: number; height: number; value: number }[]>(
          "blockchain.scripthash.listunspent",
          [sh],
        );
        const balance = await e.request("blockchain.scripthash.get_balance", [sh]);
        assert.deepEqual(r.history, history.map(({ tx_hash, height }) => ({ tx_hash, height })));
        assert.ok(r.history!.some((h) => h.height <= 0), "a mempool entry is listed");
        assert.deepEqual(r.utxos, unspent);
        assert.deepEqual(r.balance, balance);
      } finally {
        e.close();
      }
      const info = await call<NodeInfo>(stack, "getinfo");
      assert.equal(info.mempool_txs, stack.serving.mempool.size);
      assert.ok(info.mempool_vsize > 0);
    });

    await t.step(
      "compact_history merges rows without changing any answer, and reorgs still undo",
      async () => {
        // Blocks at the tip are flushed one by one: each adds a history row per touched script.
        await stack.mine(4);
        const before = await compareStore(stack.indexer.store, referenceOf(stack.sim.node));
        assert.deepEqual(before, []);
        const ranges = await rangedHistories(stack);
        const r = await call<
          { rows_before: number; rows_after: number; rows_deleted: number; chunks: number }
        >(
          stack,
          "compact_history",
        );
        assert.ok(r.rows_after < r.rows_before, JSON.stringify(r));
        assert.ok(r.chunks > 1, "small chunks were used");
        assert.deepEqual(await compareStore(stack.indexer.store, referenceOf(stack.sim.node)), []);
        assert.deepEqual(await rangedHistories(stack), ranges);
        // Nothing is left to merge.
        const again = await call<{ rows_deleted: number; rows_before: number }>(stack, "compact_history");
        assert.equal(again.rows_deleted, 0);
        assert.equal(again.rows_before, r.rows_after);
        // A reorg after compaction cuts merged rows correctly; blocks keep flowing during and after.
        await stack.mine(2);
        stack.sim.node.reorg(2, { extraBlocks: 1 });
        stack.indexer.loop.pollNow();
        await stack.waitForTip(stack.sim.node.height);
        assert.deepEqual(await compareStore(stack.indexer.store, referenceOf(stack.sim.node)), []);
      },
    );

    await t.step("reorg backs up N blocks and the loop re-syncs them from the daemon", async () => {
      const height = stack.sim.node.height;
      const answer = await call<string>(stack, "reorg", [3]);
      assert.equal(answer, `backed up 3 blocks to height ${height - 3}; re-syncing from the daemon`);
      await stack.waitForTip(height);
      assert.equal(stack.indexer.store.state.height, height);
      assert.deepEqual(await compareStore(stack.indexer.store, referenceOf(stack.sim.node)), []);
      await assert.rejects(() => call(stack, "reorg", [0]), /count must be an integer/);
      await assert.rejects(() => call(stack, "reorg", [60]), /reorg failed: .*REORG_LIMIT/);
      assert.equal(stack.indexer.store.state.height, height, "a refused reorg changes nothing");
    });

    await t.step("stop asks for the graceful shutdown", async () => {
      assert.equal(await call(stack, "stop"), "stopping");
      assert.equal(stack.stopRequests.length, 1);
      assert.equal((await call<NodeInfo>(stack, "getinfo")).sync_state, "stopping");
    });

    await t.step("help lists every command", async () => {
      const help = await call<Record<string, string>>(stack, "help");
      for (
        const name of ["getinfo", "sessions", "groups", "peers", "log_level", "disconnect", "query", "reorg"]
      ) {
        assert.ok(help[name]?.startsWith(name), `${name}: ${help[name]}`);
      }
      assert.match(help.compact_history, /compact_history — /);
      assert.match(help.disconnect, /^disconnect session_ids\.\.\. — /);
    });
  } finally {
    await stack.close();
  }
});

Deno.test("reorg is refused unless NET=regtest", async () => {
  const commands = createAdminCommands({ view: fakeView({ net: "testnet" }), log: silent });
  await assert.rejects(
    async () => await commands.get("reorg")!.run([1]),
    /reorg is a testing command and runs only with NET=regtest; this server is on testnet/,
  );
});

Deno.test("groups: a group's cost is the highest throttle cost of its members, retained is the rest", () => {
  const session = (
    id: number,
    group: string | undefined,
    cost: number,
    throttleCost: number,
  ): SessionInfo => ({
    id,
    protocol: "tcp",
    remoteAddress: `203.0.113.${id}:5000`,
    client: "",
    protocolVersion: "1.4",
    cost,
    throttleCost,
    throttleFraction: 0,
    concurrency: 10,
    group,
    requests: id,
    errors: 0,
    throttledRequests: 0,
    recvBytes: 100,
    sendBytes: 200,
    pendingMessages: 0,
    queuedBytes: 0,
    startedAt: 0,
    lastRecvAt: 0,
  });
  const sessions = [
    session(1, "203.0.113.0/24", 10, 45),
    session(2, "203.0.113.0/24", 30, 45),
    session(3, "198.51.100.0/24", 5, 5),
    session(4, undefined, 1, 1),
  ];
  const view = fakeView({ net: "mainnet", sessions });
  const r = groupRows(view);
  assert.equal(r.exempt_sessions, 1);
  assert.deepEqual(r.groups.map((g) => [g.name, g.sessions, g.cost, g.retained, g.requests]), [
    ["203.0.113.0/24", 2, 45, 5, 3],
    ["198.51.100.0/24", 1, 5, 0, 3],
  ]);
});

function fakeView(opts: { net: "testnet" | "mainnet"; sessions?: SessionInfo[] }): NodeView {
  const unused = () => Promise.reject(new Error("not used"));
  return {
    config: { net: opts.net, dbDirectory: "/nonexistent", services: [] },
    network: networkByName(opts.net),
    startedAt: 0,
    store: {
      dir: "/nonexistent",
      state: {
        version: 1,
        network: opts.net,
        height: 0,
        tipHash: new Uint8Array(32),
        txCount: 1,
        flushCount: 1,
        syncTime: 0,
        firstSync: false,
      },
      history: unused,
      utxos: unused,
      balance: unused,
      compactHistory: unused,
    },
    loop: {
      stats: { blocks: 0, txs: 0, daemonHeight: 0, caughtUp: true },
      reorg: unused,
      runExclusive: unused,
    },
    processor: { height: 0, cacheBytes: () => 0, pendingEntries: () => 0 },
    serving: () => ({
      server: { sessions: () => opts.sessions ?? [], closeSession: () => false },
      mempool: {
        size: 0,
        vsizeTotal: 0,
        pendingCount: 0,
        history: () => [],
        utxos: () => [],
        balanceDelta: () => 0,
        isSpent: () => false,
      },
      subscriptions: { count: 0, hashXCount: 0, allEntries: () => [] },
    }),
    stopping: () => false,
    setLogLevel: () => Promise.resolve(),
    requestStop: () => {},
  };
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

/** History of the 40 longest histories over a few height ranges, for before/after comparisons. */
async function rangedHistories(stack: Stack): Promise<string[]> {
  const ref = referenceOf(stack.sim.node);
  const top = [...ref.history].sort((a, b) => b[1].length - a[1].length).slice(0, 40);
  const tip = stack.indexer.store.state.height;
  const out: string[] = [];
  for (const [hx] of top) {
    for (const [from, to] of [[0, tip], [Math.floor(tip / 3), Math.floor(tip / 2)], [tip - 5, tip]]) {
      const items = await stack.indexer.store.history(hexBytes(hx), { fromHeight: from, toHeight: to });
      out.push(`${hx} ${from}-${to}: ${items.map((i) => `${toHex(i.txHash)}@${i.height}`).join(",")}`);
    }
  }
  return out;
}
