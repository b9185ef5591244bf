// Guarantee: whatever the daemon does (absent at start, restarted with a new cookie, warming up, busy, slow,
// dropping connections, sending garbage) the indexer waits and retries with clear log lines, never crashes,
// and ends with the answers of a clean sync.
import assert from "node:assert/strict";
import type { Simnet } from "../../scripts/simnet/main.ts";
import {
  flushHeights,
  freePort,
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

/** SIGTERM, exit 0, then every answer equals the model of the daemon's chain. */
async function stopAndCompare(proc: IndexerProcess, db: string, sim: Simnet): Promise<void> {
  proc.kill("SIGTERM");
  assert.equal((await proc.finish()).code, 0, proc.tail());
  assert.equal(proc.find(/ ERROR /), undefined, proc.tail());
  await withStore(
    db,
    async (store) => assert.deepEqual(await compareStore(store, referenceOf(sim.node)), []),
  );
}

Deno.test("an indexer started before its daemon waits for it, then syncs", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const datadir = `${dir}/sim`;
    const db = `${dir}/db`;
    // Neither the port nor the cookie file exists yet.
    const proc = IndexerProcess.start(
      indexerEnv(db, { url: `http://127.0.0.1:${port}`, cookiePath: `${datadir}/.cookie` }),
    );
    let sim: Simnet | undefined;
    try {
      await proc.waitFor(/WARNING daemon daemon http:\/\/127\.0\.0\.1:\d+\/ unavailable: .*; retrying/);
      sim = await simnet(datadir, { blocks: 150, seed: "faults-absent", txs: 1_000, port });
      const back = await proc.waitFor(/daemon .* is back|connected to daemon/);
      await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`), back.index);
      await stopAndCompare(proc, db, sim);
    } finally {
      await proc.close();
      await sim?.close();
    }
  });
});

Deno.test("a daemon restarted mid-sync, with a new cookie and a warm-up, is waited for and followed", async () => {
  await withTempDir(async (dir) => {
    const datadir = `${dir}/sim`;
    const db = `${dir}/db`;
    const opts = { blocks: 560, seed: "faults-restart-c", txs: 1_500 };
    let sim = await simnet(datadir, opts);
    const port = sim.port;
    const proc = IndexerProcess.start(indexerEnv(db, sim, { FLUSH_SIZE: "400" }));
    try {
      await proc.waitFor(/prefilled/);
      const oldCookie = await Deno.readTextFile(sim.cookiePath!);
      await sim.close();
      const down = await proc.waitFor(/unavailable: .*; retrying/);
      assert.equal(proc.find(/caught up/), undefined, "the daemon went away mid-sync");
      sim = await simnet(datadir, { ...opts, port });
      // bitcoind answers -28 while it loads; each phase is one log line.
      sim.server.faults.warmup = { until: Date.now() + 600_000, message: "Loading block index…" };
      assert.notEqual(await Deno.readTextFile(sim.cookiePath!), oldCookie, "a restart writes a new cookie");
      await proc.waitFor(/is warming up: Loading block index…; waiting/, down.index);
      sim.server.faults.warmup = { until: Date.now() + 600_000, message: "Verifying blocks…" };
      await proc.waitFor(/is warming up: Verifying blocks…; waiting/, down.index);
      sim.server.faults.warmup = null;
      await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`), down.index);
      await stopAndCompare(proc, db, sim);
    } finally {
      await proc.close();
      await sim.close();
    }
  });
});

Deno.test("503s, dropped connections, garbage, slow replies and warm-up at the tip are retried through", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 150, seed: "faults-tip", txs: 1_000 });
    const db = `${dir}/db`;
    const proc = IndexerProcess.start(indexerEnv(db, sim, { DAEMON_TIMEOUT: "1" }));
    const prng = new Prng("faults-tip");
    const faults = sim.server.faults;
    // Each fault, then blocks the indexer must fetch through it: the line that shows it noticed, what ends the
    // fault (counters run out by themselves), and whether the daemon counted as down (then "is back" follows;
    // warm-up is progress, not an outage).
    const cases: { start: () => void; noticed: RegExp; end?: () => void; down: boolean }[] = [
      { start: () => (faults.busyNext = 3), noticed: /unavailable: HTTP 503 .*; retrying/, down: true },
      { start: () => (faults.dropNext = 3), noticed: /unavailable: .*; retrying/, down: true },
      { start: () => (faults.malformedNext = 3), noticed: /unavailable: malformed JSON reply/, down: true },
      {
        start: () => (faults.delayMs = 5_000),
        noticed: /unavailable: no reply within 1s; retrying/,
        end: () => (faults.delayMs = 0),
        down: true,
      },
      {
        start: () => (faults.warmup = { until: Date.now() + 600_000, message: "Rewinding blocks…" }),
        noticed: /is warming up: Rewinding blocks…; waiting/,
        end: () => (faults.warmup = null),
        down: false,
      },
    ];
    try {
      await proc.waitFor(new RegExp(`caught up to height ${sim.node.height}$`));
      for (const c of cases) {
        const mark = proc.lines.length;
        c.start();
        sim.node.addMempoolTraffic(prng.range(20, 80));
        sim.node.mine(prng.range(1, 3));
        const noticed = await proc.waitFor(c.noticed, mark);
        c.end?.();
        if (c.down) await proc.waitFor(/daemon .* is back/, noticed.index);
        await waitForFlushed(proc, sim.node.height, mark);
      }
      await stopAndCompare(proc, db, sim);
    } finally {
      await proc.close();
      await sim.close();
    }
  });
});

/**
 * SIGTERM mid-sync while the daemon is down: the indexer must flush what it applied and exit 0. With
 * `daemonReturns` the daemon comes back once the shutdown has begun (the indexer may wait for it); without, it
 * stays away and the indexer has to give up on it by itself.
 */
async function sigtermDuringOutage(dir: string, daemonReturns: boolean): Promise<void> {
  const datadir = `${dir}/sim`;
  const db = `${dir}/db`;
  const opts = { blocks: 560, seed: "faults-sigterm-d", txs: 1_500 };
  let sim = await simnet(datadir, opts);
  const port = sim.port;
  // The default FLUSH_SIZE: what was applied is only in memory when the signal comes.
  const proc = IndexerProcess.start(indexerEnv(db, sim));
  try {
    await proc.waitFor(/prefilled/);
    await sim.close();
    await proc.waitFor(/unavailable: .*; retrying/);
    proc.kill("SIGTERM");
    const down = await proc.waitFor(/shutting down/);
    if (daemonReturns) sim = await simnet(datadir, { ...opts, port });
    const done = await proc.waitFor(/shut down cleanly|stopped: /, down.index, 30_000);
    assert.match(done.line, /shut down cleanly/);
    assert.equal((await proc.finish()).code, 0, proc.tail());
    const finals = flushHeights(proc, down.index);
    assert.equal(finals.length, 1, `one final flush after the signal:\n${proc.tail()}`);
    const height = finals[0].height;
    await withStore(db, async (store) => {
      assert.equal(store.state.height, height);
      assert.deepEqual(await compareStore(store, referenceOf(sim.node, height)), []);
    });
  } finally {
    await proc.close();
    await sim.close();
  }
}

Deno.test("SIGTERM during a daemon outage flushes what was applied and exits 0 once the daemon is back", async () => {
  await withTempDir((dir) => sigtermDuringOutage(dir, true));
});

Deno.test({
  name: "SIGTERM while the daemon stays unreachable flushes what was applied and exits 0",
  fn: () => withTempDir((dir) => sigtermDuringOutage(dir, false)),
});
