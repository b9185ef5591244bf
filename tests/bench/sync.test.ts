import assert from "node:assert/strict";
import { formatResult, parseProfileLine, runSyncBench } from "../../scripts/bench/sync.ts";

Deno.test("parseProfileLine reads the sync loop's profile line and ignores other lines", () => {
  const line = "2026-11-25 19:19:39.962 INFO sync sync profile: blocks=2101 txs=1995680 wall=72.04s " +
    "fetch-wait=2.73s parse+hash=14.37s process=20.29s flush=34.63s other=0.02s";
  assert.deepEqual(parseProfileLine(line), {
    blocks: 2101,
    txs: 1995680,
    wall: 72.04,
    fetchWait: 2.73,
    parse: 14.37,
    process: 20.29,
    flush: 34.63,
    other: 0.02,
    workerParse: undefined,
  });
  assert.equal(parseProfileLine(line + " worker-parse=12.89s")?.workerParse, 12.89);
  // A processor without timing leaves the split out.
  const bare = parseProfileLine("sync profile: blocks=3 txs=4 wall=1.00s fetch-wait=0.50s");
  assert.equal(bare?.parse, undefined);
  assert.equal(bare?.txs, 4);
  assert.equal(parseProfileLine("INFO sync caught up to height 2100"), undefined);
  assert.throws(() => parseProfileLine("sync profile: blocks=3 wall=1.00s fetch-wait=0.50s"), /lacks txs/);
});

Deno.test("runSyncBench syncs a small simnet chain in child processes and measures it", async () => {
  const workDir = await Deno.makeTempDir();
  const said: string[] = [];
  try {
    const r = await runSyncBench({
      txs: 1500,
      blocks: 130,
      cacheMb: 50,
      seed: "bench-test",
      workDir,
      keep: false,
      verbose: false,
      say: (l) => said.push(l),
    });
    assert.equal(r.height, 130);
    assert.equal(r.blocks, 131, "genesis and every generated block");
    assert.ok(r.txs > 131 && r.txs < 3000, `txs ${r.txs}`);
    assert.ok(r.wallSeconds > 0);
    assert.equal(r.txPerSecond, r.txs / r.wallSeconds);
    assert.ok(r.peakRssBytes > 10 << 20, "the indexer's VmHWM");
    assert.ok(r.indexerCpuSeconds > 0);
    assert.ok(r.dbBytes > 0);
    const p = r.profile;
    assert.ok(p.parse !== undefined && p.process !== undefined && p.flush !== undefined);
    // The stages are disjoint slices of the loop's wall time.
    assert.ok(p.fetchWait + p.parse + p.process + p.flush <= p.wall + 0.05);
    assert.ok(said.some((l) => / caught up to height 130/.test(l)));
    // Without --keep the database is gone; the chain cache stays for the next run.
    const left = [...Deno.readDirSync(workDir)].map((e) => e.name).sort();
    assert.deepEqual(left, [".gitignore", "simnet"]);
    assert.ok(
      [...Deno.readDirSync(`${workDir}/simnet`)].some((e) => e.name.startsWith("chain-bench-test-130-")),
    );
    const table = formatResult(r);
    assert.match(table, /^tx\/s +\d+$/m);
    assert.match(table, /^ {2}flush +\d+\.\d s/m);
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});
