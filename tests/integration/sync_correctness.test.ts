// Guarantee: after syncing a simnet chain over real HTTP, every answer of the database (history, balance and
// UTXOs of every script hash in the chain, headers, findTx) equals the naive reference model's, with the sync
// spread over several flushes both while catching up and at the tip.
import assert from "node:assert/strict";
import { toHex } from "../../src/chain/hex.ts";
import {
  flushHeights,
  indexerEnv,
  IndexerProcess,
  Prng,
  referenceOf,
  simnet,
  waitForFlushed,
  withStore,
  withTempDir,
} from "./harness.ts";
import { compareStore } from "./reference.ts";

Deno.test("a synced database answers every script hash, header and tx exactly like the reference model", async () => {
  await withTempDir(async (dir) => {
    // Past 500 blocks so the catch-up spans two prefetch batches, hence two flushes; the tip rounds below add
    // heavier traffic than the chain's average.
    const sim = await simnet(`${dir}/sim`, { blocks: 560, seed: "correctness", txs: 6_000 });
    const db = `${dir}/db`;
    // A tiny FLUSH_SIZE makes every batch the prefetcher hands over end in a flush.
    const proc = IndexerProcess.start(indexerEnv(db, sim, { FLUSH_SIZE: "500" }));
    try {
      const prng = new Prng("correctness");
      await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
      const catchUp = flushHeights(proc).map((f) => f.height);
      // At the tip: new blocks whose transactions spend outputs flushed long ago and outputs of the same block.
      for (let round = 0; round < 4; round++) {
        const mark = proc.lines.length;
        sim.node.addMempoolTraffic(prng.range(100, 400));
        sim.node.mine(prng.range(1, 3));
        await waitForFlushed(proc, sim.node.height, mark);
      }
      const stopAt = proc.lines.length;
      proc.kill("SIGTERM");
      assert.equal((await proc.finish()).code, 0, proc.tail());
      // A clean stop is quiet: closing the daemon client cuts polls short, which is not a failure to report.
      assert.equal(proc.find(/ (WARNING|ERROR) /, stopAt)?.line, undefined);
      assert.ok(catchUp.some((h) => h < 560), `a single catch-up flush (${catchUp}):\n${proc.tail()}`);
      assert.ok(flushHeights(proc).length >= catchUp.length + 4);

      const ref = referenceOf(sim.node);
      assert.ok(ref.hashXs().length > 10_000, "the chain is big enough to mean something");
      // The model agrees with simnet's own UTXO set, except for the genesis coinbase: Core never adds it to the
      // UTXO set, while an Electrum index lists it like any other output.
      const simUtxos = sim.node.utxoStats();
      assert.deepEqual(ref.utxoStats(), {
        count: simUtxos.count + 1,
        totalValue: simUtxos.totalValue + 50e8,
      });
      await withStore(db, async (store) => {
        const absent = [toHex(new Uint8Array(32).fill(9))];
        assert.deepEqual(await compareStore(store, ref, { absentTxids: absent }), []);
        // A script hash that never appeared has nothing.
        assert.deepEqual(await store.history(new Uint8Array(11).fill(0xee)), []);
        assert.equal(await store.balance(new Uint8Array(11).fill(0xee)), 0);
        // The comparison is not vacuous: the same database disagrees with the chain one block shorter.
        const shorter = referenceOf(sim.node, sim.node.height - 1);
        const sample = { count: 50, pick: (n: number) => prng.int(n) };
        assert.notDeepEqual(await compareStore(store, shorter, { sample }), []);
      });
    } finally {
      await proc.close();
      await sim.close();
    }
  });
});
