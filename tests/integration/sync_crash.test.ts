// Guarantee: killing the indexer at any moment loses at most what was not yet flushed, never corrupts the
// database, and a restart resumes to the same answers as a clean sync. SIGTERM flushes and exits 0.
import assert from "node:assert/strict";
import {
  flushHeights,
  indexerEnv,
  IndexerProcess,
  type LineMatch,
  Prng,
  referenceOf,
  simnet,
  withStore,
  withTempDir,
} from "./harness.ts";
import { ChainReference, compareStore } from "./reference.ts";

const KILLS = 20;

/** Where a kill lands: after the n-th line matching `re` (n in 1..max), plus a random delay. */
interface Trigger {
  name: string;
  re: RegExp;
  max: number;
  delayMs: number;
}

const TRIGGERS: Trigger[] = [
  // The line is written just before the flat files are appended and the LevelDB batch is committed.
  { name: "inside a flush", re: /flushing to levelDB/, max: 3, delayMs: 25 },
  { name: "just after a flush", re: / flushed\. /, max: 3, delayMs: 4 },
  { name: "while opening", re: /created new database|database height/, max: 1, delayMs: 15 },
  { name: "on first contact", re: /connected to daemon/, max: 1, delayMs: 30 },
  { name: "after a prefetch", re: /prefilled/, max: 1, delayMs: 40 },
  { name: "after any line", re: /./, max: 14, delayMs: 10 },
];

Deno.test("SIGKILL at seeded random moments, then restarts, end with the answers of a clean sync", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 560, seed: "crash-e", txs: 3_000 });
    const db = `${dir}/db`;
    const env = indexerEnv(db, sim, { FLUSH_SIZE: "300" });
    const prng = new Prng("crash-moments");
    // Blocks mined while an indexer runs come from their own PRNG: how many are mined depends on timing, and
    // must not shift the kill plan drawn from `prng`.
    const minePrng = new Prng("crash-tip-traffic");
    const pick = (n: number) => minePrng.int(n);
    // The model follows the database's height: it only grows, as the chain never reorganises here.
    const ref = new ChainReference();
    const advanceRef = (height: number) => {
      for (let h = ref.height + 1; h <= height; h++) ref.apply(sim.node.blockInfo(sim.node.hashAt(h)!)!.raw);
    };
    let dbHeight = -1;
    const landed: string[] = [];
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        // Sometimes the chain grows while the indexer is down, so restarts have blocks to catch up on.
        if (kill > 0 && prng.next() < 0.5) {
          sim.node.addMempoolTraffic(prng.range(20, 300));
          sim.node.mine(prng.range(1, 5));
        }
        // The first kill lands in the first, biggest flush of a sync from an empty database.
        const trigger = kill === 0 ? TRIGGERS[0] : prng.pick(TRIGGERS);
        const nth = kill === 0 ? 1 : prng.range(1, trigger.max);
        const delay = prng.int(trigger.delayMs + 1);
        const proc = IndexerProcess.start(env);
        try {
          // At the tip, a new block after each flush keeps flushes coming, a few per run at most.
          let mined = 0;
          const idle = Promise.withResolvers<void>();
          proc.onLine((line) => {
            if (!/caught up to height| flushed\. /.test(line)) return;
            if (proc.find(/caught up to height/) === undefined) return;
            if (mined++ < 4) {
              sim.node.addMempoolTraffic(minePrng.range(5, 60));
              sim.node.mine(1);
            } else {
              idle.resolve(); // no more work coming: kill now rather than wait for a line that never comes
            }
          });
          let at: LineMatch | undefined;
          let from = 0;
          for (let i = 0; i < nth; i++) {
            // An early exit shows up below as an exit status other than our SIGKILL.
            const line = proc.waitFor(trigger.re, from).catch(() => undefined);
            const got = await Promise.race([line, idle.promise]);
            if (got === undefined) break;
            at = got;
            from = got.index + 1;
          }
          // The delay is the random part of the moment, not a wait for anything.
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
          proc.kill("SIGKILL");
          const status = await proc.finish();
          assert.equal(status.signal, "SIGKILL", `the indexer exited by itself:\n${proc.tail()}`);

          // The database is at the last completed flush, or at the one in progress if its commit landed.
          const flushes = flushHeights(proc);
          const done = flushes.filter((f) => proc.find(/ flushed\. /, f.index + 1) !== undefined);
          const allowed = new Set([done.length > 0 ? done[done.length - 1].height : dbHeight]);
          if (flushes.length > done.length) allowed.add(flushes[flushes.length - 1].height);
          await withStore(db, async (store) => {
            const h = store.state.height;
            assert.ok(
              allowed.has(h),
              `kill ${kill}: height ${h}, expected one of ${[...allowed]}\n${proc.tail()}`,
            );
            assert.ok(h >= dbHeight, `kill ${kill}: height went back from ${dbHeight} to ${h}`);
            dbHeight = h;
            const torn = flushes.length > done.length
              ? `, flush to ${flushes[flushes.length - 1].height} cut short`
              : "";
            landed.push(`${trigger.name}${at ? ` #${nth}` : " (fallback)"} +${delay}ms: height ${h}${torn}`);
            advanceRef(h);
            assert.deepEqual(
              await compareStore(store, ref, { sample: { count: 150, pick } }),
              [],
              `kill ${kill}`,
            );
          });
        } finally {
          await proc.close();
        }
      }

      // A last run reaches the tip and stops cleanly; every answer then equals the model of the whole chain.
      const proc = IndexerProcess.start(env);
      try {
        await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
        proc.kill("SIGTERM");
        assert.equal((await proc.finish()).code, 0, proc.tail());
      } finally {
        await proc.close();
      }
      advanceRef(sim.node.height);
      await withStore(db, async (store) => assert.deepEqual(await compareStore(store, ref), []));
      // The kills were spread: inside flushes and elsewhere, at several heights.
      assert.ok(landed.filter((l) => l.startsWith("inside a flush")).length >= 3, landed.join("\n"));
    } finally {
      await sim.close();
    }
  });
});

Deno.test("SIGTERM mid-sync flushes what was applied, exits 0, and a restart continues to the same answers", async () => {
  await withTempDir(async (dir) => {
    // Two prefetch batches: the signal arrives while the first (500 blocks) is being applied.
    const sim = await simnet(`${dir}/sim`, { blocks: 700, seed: "sigterm-b", txs: 2_000 });
    const db = `${dir}/db`;
    // The default FLUSH_SIZE: nothing is flushed during the catch-up, so only the final flush saves it.
    const env = indexerEnv(db, sim);
    const prng = new Prng("sigterm-moment");
    try {
      const proc = IndexerProcess.start(env);
      let height: number;
      try {
        await proc.waitFor(/prefilled/);
        const delay = prng.int(25);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay)); // the random part of the moment
        proc.kill("SIGTERM");
        const status = await proc.finish();
        assert.equal(status.code, 0, proc.tail());
        const down = await proc.waitFor(/shutting down/);
        assert.equal(proc.find(/caught up/), undefined, `SIGTERM came after the catch-up:\n${proc.tail()}`);
        const finals = flushHeights(proc, down.index);
        assert.equal(finals.length, 1, `one final flush after the signal:\n${proc.tail()}`);
        height = finals[0].height;
        assert.ok(height > 0 && height < sim.node.height);
        await proc.waitFor(/ flushed\. /, finals[0].index + 1);
        await proc.waitFor(/shut down cleanly/, finals[0].index + 1);
      } finally {
        await proc.close();
      }
      await withStore(db, async (store) => {
        assert.equal(store.state.height, height);
        assert.deepEqual(await compareStore(store, referenceOf(sim.node, height)), []);
      });

      const again = IndexerProcess.start(env);
      try {
        await again.waitFor(/database height (\d+)/).then((m) => assert.equal(Number(m.match[1]), height));
        await again.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
        again.kill("SIGTERM");
        assert.equal((await again.finish()).code, 0, again.tail());
      } finally {
        await again.close();
      }
      await withStore(
        db,
        async (store) => assert.deepEqual(await compareStore(store, referenceOf(sim.node)), []),
      );
    } finally {
      await sim.close();
    }
  });
});
