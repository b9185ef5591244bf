// Guarantee: after the daemon's chain reorganises (1, 6 or 100 blocks deep, at the tip or while the indexer is
// still catching up; with transactions that move block, go back to the mempool or are double-spent), every
// answer equals a clean sync of the new chain. A reorg deeper than REORG_LIMIT stops the indexer with a clear
// message and leaves the database exactly as it was.
import assert from "node:assert/strict";
import { toHex } from "../../src/chain/hex.ts";
import type { Simnet } from "../../scripts/simnet/main.ts";
import type { ReorgResult } from "../../scripts/simnet/node.ts";
import {
  indexerEnv,
  IndexerProcess,
  referenceOf,
  simnet,
  waitForFlushed,
  withStore,
  withTempDir,
} from "./harness.ts";
import { type ChainReference, compareStore } from "./reference.ts";

const REORG_OPTIONS = { extraBlocks: 2, toMempool: 3, doubleSpend: 2 };

/** Makes the last blocks busy, so that a reorg of them has transactions to move, return and double-spend. */
function busyTip(sim: Simnet, blocks: number): void {
  for (let i = 0; i < blocks; i++) {
    sim.node.addMempoolTraffic(40);
    sim.node.mine(1);
  }
}

/** Reorganises simnet; returns the result with the old chain's model (for what must be gone afterwards). */
function reorg(sim: Simnet, depth: number): { result: ReorgResult; old: ChainReference } {
  const old = referenceOf(sim.node);
  const result = sim.node.reorg(depth, REORG_OPTIONS);
  assert.ok(result.toMempool.length > 0 && result.doubleSpent.length > 0, JSON.stringify(result));
  return { result, old };
}

/** Every answer equals the new chain's model; what only the old branch had is gone. */
async function assertMatchesNewChain(db: string, sim: Simnet, old: ChainReference, r: ReorgResult) {
  const ref = referenceOf(sim.node);
  const slipped = r.moved.filter((t) => ref.txs.get(toHex(t))!.height !== old.txs.get(toHex(t))!.height);
  assert.ok(slipped.length > 0, "some transactions moved to another block");
  for (const txid of [...r.toMempool, ...r.doubleSpent]) assert.ok(!ref.txs.has(toHex(txid)));
  for (const txid of r.conflicts) assert.ok(ref.txs.has(toHex(txid)));
  await withStore(db, async (store) => {
    const mismatches = await compareStore(store, ref, {
      extraHashXs: old.hashXs(),
      absentTxids: [...old.txs.keys()],
    });
    assert.deepEqual(mismatches, []);
  });
}

async function stop(proc: IndexerProcess): Promise<void> {
  proc.kill("SIGTERM");
  assert.equal((await proc.finish()).code, 0, proc.tail());
}

Deno.test("reorgs of 1, 6 and 100 blocks at the tip end with the answers of a clean sync of the new chain", async (t) => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 115, seed: "reorg-tip", txs: 900 });
    const db = `${dir}/db`;
    try {
      for (const depth of [1, 6, 100]) {
        await t.step(`depth ${depth}`, async () => {
          const proc = IndexerProcess.start(indexerEnv(db, sim, { FLUSH_SIZE: "400" }));
          try {
            await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
            busyTip(sim, Math.min(depth, 3));
            await waitForFlushed(proc, sim.node.height);
            const tip = sim.node.height;
            const mark = proc.lines.length;
            const { result, old } = reorg(sim, depth);
            await waitForFlushed(proc, sim.node.height, mark);
            const undo = await proc.waitFor(/undoing (\d+) blocks? back to height (\d+)/, mark);
            assert.deepEqual([Number(undo.match[1]), Number(undo.match[2])], [depth, tip - depth]);
            await stop(proc);
            await assertMatchesNewChain(db, sim, old, result);
          } finally {
            await proc.close();
          }
        });
      }
    } finally {
      await sim.close();
    }
  });
});

// The reorg happens as soon as the prefetcher has handed over its first batch (heights 0..499), while the
// indexer applies it. For depths 6 and 100 the fork is below 499, so the indexer applies and flushes stale
// blocks and must undo them before it ever reaches the tip. For depth 1 the fork is above that batch: whether
// the stale tip block was already prefetched (and is then undone) or not depends on timing; either way the end
// state must be the new chain's.
const CATCH_UP_CASES = [
  { depth: 1, blocks: 500, seed: "reorg-sync-1-d" },
  { depth: 6, blocks: 500, seed: "reorg-sync-6-c" },
  { depth: 100, blocks: 555, seed: "reorg-sync-100-b" },
];
for (const { depth, blocks, seed } of CATCH_UP_CASES) {
  Deno.test(`a reorg of ${depth} block(s) while the indexer catches up ends with the answers of the new chain`, async () => {
    await withTempDir(async (dir) => {
      const sim = await simnet(`${dir}/sim`, { blocks, seed, txs: 2_000 });
      busyTip(sim, 3);
      const db = `${dir}/db`;
      const proc = IndexerProcess.start(indexerEnv(db, sim, { FLUSH_SIZE: "400" }));
      try {
        await proc.waitFor(/prefilled 500 blocks to height 499/);
        const { result, old } = reorg(sim, depth);
        const fork = old.height - depth;
        // The first "caught up" may name the stale tip (the new blocks above it then follow at the tip).
        await waitForFlushed(proc, sim.node.height);
        if (fork < 499) {
          const caughtUp = await proc.waitFor(/caught up to height/);
          const detected = await proc.waitFor(/chain reorganisation detected/);
          assert.ok(
            detected.index < caughtUp.index,
            `the reorg was handled during the catch-up:\n${proc.tail()}`,
          );
          const undo = await proc.waitFor(/undoing \d+ blocks? back to height (\d+)/);
          assert.equal(Number(undo.match[1]), fork);
          assert.ok(proc.find(/backed up \d+ blocks? to height/), "flushed blocks were undone");
        }
        await stop(proc);
        await assertMatchesNewChain(db, sim, old, result);
      } finally {
        await proc.close();
        await sim.close();
      }
    });
  });
}

Deno.test("a reorg deeper than REORG_LIMIT stops the indexer with a clear message and leaves the database intact", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 120, seed: "reorg-deep", txs: 1_000 });
    const db = `${dir}/db`;
    const env = indexerEnv(db, sim, { REORG_LIMIT: "5" });
    try {
      const proc = IndexerProcess.start(env);
      let before: ChainReference;
      try {
        await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
        busyTip(sim, 2);
        await waitForFlushed(proc, sim.node.height);
        before = referenceOf(sim.node);
        sim.node.reorg(8, REORG_OPTIONS);
        const status = await proc.finish();
        assert.notEqual(status.code, 0, proc.tail());
        assert.equal(status.signal, null, "a clean exit, not a crash");
        const fatal = await proc.waitFor(/ERROR main stopped: (.*)/);
        assert.match(fatal.match[1], /cannot undo 8 blocks .*REORG_LIMIT/);
        assert.match(fatal.match[1], new RegExp(`database is unchanged at height ${before.height}`));
      } finally {
        await proc.close();
      }
      await withStore(db, async (store) => assert.deepEqual(await compareStore(store, before), []));

      // Restarting does not help and does not harm: the same refusal, the same database.
      const again = IndexerProcess.start(env);
      try {
        assert.notEqual((await again.finish()).code, 0);
        await again.waitFor(/stopped: cannot undo 8 blocks/);
      } finally {
        await again.close();
      }
      await withStore(db, async (store) => assert.deepEqual(await compareStore(store, before), []));
    } finally {
      await sim.close();
    }
  });
});
