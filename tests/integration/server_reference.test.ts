// Guarantee: over a real TCP session to the wired server, the answers for EVERY script hash of a simnet chain
// with a mempool of traffic (unconfirmed chains included) equal an independent computation from the chain and
// the mempool (server_model.ts), and every transaction and checkpoint proof verifies against the headers the
// server itself serves, with roots recomputed here.
import assert from "node:assert/strict";
import { simnet, withTempDir } from "./harness.ts";
import { LineClient, type Reply } from "./server_client.ts";
import {
  type ElectrumModel,
  headerHash,
  headerMerkleRoot,
  hex,
  merkleRootOf,
  rhex,
  rootFromBranch,
  unhex,
  unrhex,
} from "./server_model.ts";
import { Settler, startStack } from "./server_stack.ts";

// These tests ask tens of thousands of questions over one session; the cost limits are for hostile clients.
const UNTHROTTLED = { COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" };

function result(r: Reply, what: string): unknown {
  if (r.error) throw new Error(`${what}: error ${r.error.code} ${r.error.message}`);
  return r.result;
}

/** Asks the five script hash methods for every script hash the model knows and returns each disagreement. */
async function compareScripthashes(client: LineClient, model: ElectrumModel): Promise<string[]> {
  const unknown = "ee".repeat(32);
  const shs = [...model.scripthashes(), unknown];
  const methods = ["get_history", "get_mempool", "get_balance", "listunspent", "subscribe"];
  const calls = shs.flatMap((sh) => methods.map((m) => [`blockchain.scripthash.${m}`, [sh]] as const));
  const replies = await client.many(calls);
  const bad: string[] = [];
  const check = (sh: string, what: string, got: unknown, want: unknown) => {
    const g = JSON.stringify(got), w = JSON.stringify(want);
    if (g !== w && bad.length < 12) bad.push(`${what} of ${sh}:\n  got  ${g}\n  want ${w}`);
  };
  shs.forEach((sh, i) => {
    const [history, mempool, balance, unspent, status] = replies.slice(5 * i, 5 * i + 5)
      .map((r, k) => result(r, `${methods[k]} ${sh}`));
    check(sh, "get_history", history, model.history(sh));
    check(sh, "get_mempool", mempool, model.mempool(sh));
    check(sh, "get_balance", balance, model.balance(sh));
    // Confirmed coins come in chain order; the order of mempool outputs is left open by the protocol.
    const want = model.listunspent(sh);
    const confirmed = want.filter((u) => u.height > 0 || model.location(u.tx_hash) !== undefined).length;
    const canon = (list: { tx_hash: string; tx_pos: number }[]) => [
      ...list.slice(0, confirmed),
      ...list.slice(confirmed).sort((a, b) => a.tx_hash.localeCompare(b.tx_hash) || a.tx_pos - b.tx_pos),
    ];
    check(sh, "listunspent", canon(unspent as typeof want), canon(want));
    check(sh, "subscribe", status, model.status(sh));
  });
  return bad;
}

/** Every transaction's get_merkle (and a sample of id_from_pos) verifies against the served headers. */
async function checkTxProofs(
  client: LineClient,
  model: ElectrumModel,
  headers: Uint8Array[],
): Promise<number> {
  const txs = model.confirmedTxs();
  const replies = await client.many(
    txs.map((t) => ["blockchain.transaction.get_merkle", [t.txHash, t.height]]),
  );
  txs.forEach((t, i) => {
    const r = result(replies[i], `get_merkle ${t.txHash}`) as {
      block_height: number;
      merkle: string[];
      pos: number;
    };
    assert.equal(r.block_height, t.height);
    assert.equal(r.pos, t.pos, `position of ${t.txHash}`);
    const root = rootFromBranch(unrhex(t.txHash), r.merkle, r.pos);
    assert.equal(rhex(root), rhex(headerMerkleRoot(headers[t.height])), `merkle proof of ${t.txHash}`);
  });
  const sample = txs.filter((_, i) => i % 7 === 0);
  const byPos = await client.many(
    sample.map((t) => ["blockchain.transaction.id_from_pos", [t.height, t.pos, true]]),
  );
  sample.forEach((t, i) => {
    const r = result(byPos[i], `id_from_pos ${t.height}/${t.pos}`) as { tx_hash: string; merkle: string[] };
    assert.equal(r.tx_hash, t.txHash);
    assert.equal(
      rhex(rootFromBranch(unrhex(r.tx_hash), r.merkle, t.pos)),
      rhex(headerMerkleRoot(headers[t.height])),
    );
  });
  return txs.length;
}

/** Every header's proof against a few checkpoints verifies against the root of the served headers' hashes. */
async function checkCheckpointProofs(client: LineClient, headers: Uint8Array[]): Promise<number> {
  const tip = headers.length - 1;
  let checked = 0;
  for (const cp of [1, Math.floor(tip / 2), tip - 1, tip]) {
    const root = rhex(merkleRootOf(headers.slice(0, cp + 1).map(headerHash)));
    const heights = Array.from({ length: cp + 1 }, (_, h) => h);
    const replies = await client.many(heights.map((h) => ["blockchain.block.header", [h, cp]]));
    heights.forEach((h, i) => {
      const r = result(replies[i], `header ${h} cp ${cp}`) as {
        header: string;
        root: string;
        branch: string[];
      };
      assert.equal(r.header, hex(headers[h]), `header ${h}`);
      assert.equal(r.root, root, `root for cp ${cp}`);
      assert.equal(
        rhex(rootFromBranch(headerHash(unhex(r.header)), r.branch, h)),
        root,
        `branch of ${h} cp ${cp}`,
      );
      checked++;
    });
    // A range proves its last header.
    for (const [start, count] of [[0, 1], [Math.max(0, cp - 2), Math.min(3, cp + 1)], [0, cp + 1]]) {
      const r = await client.request<{ headers: string[]; count: number; root: string; branch: string[] }>(
        "blockchain.block.headers",
        [start, count, cp],
      );
      assert.equal(r.count, count);
      assert.deepEqual(r.headers, headers.slice(start, start + count).map(hex));
      assert.equal(r.root, root);
      const last = start + count - 1;
      assert.equal(
        rhex(rootFromBranch(headerHash(headers[last]), r.branch, last)),
        root,
        `range ${start}+${count}`,
      );
      checked++;
    }
  }
  return checked;
}

Deno.test("every script hash, tx proof and checkpoint proof matches an independent model of chain and mempool", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 130, seed: "server-reference", txs: 1500 });
    // Traffic before the server starts, so that its first mempool snapshot already has unconfirmed chains.
    sim.node.addMempoolTraffic(150);
    const stack = await startStack(sim, `${dir}/db`, UNTHROTTLED);
    const client = await LineClient.connect(stack.port);
    try {
      await client.hello("1.6");
      const settler = new Settler(sim.node, client, 1);
      let model = await settler.start();
      const pool = model.mempoolStats();
      assert.ok(
        pool.size >= 150 && pool.withParent >= 20,
        `a mempool with unconfirmed chains: ${JSON.stringify(pool)}`,
      );
      assert.ok(model.scripthashes().length > 2000, `${model.scripthashes().length} script hashes`);
      assert.deepEqual(await compareScripthashes(client, model), []);

      // After a block (which confirms the mempool) and new traffic, including spends of just-confirmed outputs.
      sim.node.mine(1);
      sim.node.addMempoolTraffic(120);
      model = await settler.settle();
      assert.ok(model.mempoolStats().withParent > 0);
      assert.deepEqual(await compareScripthashes(client, model), []);

      // The headers as the server serves them are the ground truth the proofs must verify against.
      const tip = model.tipHeight;
      const served = await client.request<{ headers: string[]; count: number }>("blockchain.block.headers", [
        0,
        tip + 1,
      ]);
      assert.equal(served.count, tip + 1);
      const headers = served.headers.map((h) => unhex(h));
      headers.forEach((h, i) => assert.equal(hex(h), hex(model.chain.headers[i]), `header ${i}`));
      // Hash-linked, so they are one chain.
      for (let h = 1; h <= tip; h++) {
        assert.equal(rhex(headers[h].slice(4, 36)), rhex(headerHash(headers[h - 1])));
      }
      const txCount = await checkTxProofs(client, model, headers);
      assert.equal(txCount, model.chain.txCount);
      assert.ok(await checkCheckpointProofs(client, headers) > tip);
    } finally {
      client.close();
      await stack.close();
      await sim.close();
    }
  });
});
