// `deno task bench query` end to end, exactly as the task runs it (its narrow permissions included): a tiny
// simnet chain, one short scenario, the JSON report. Measures nothing; proves the benchmark runs.
import assert from "node:assert/strict";
import { taskArgs } from "../launcher_harness.ts";

const REPO = new URL("../../", import.meta.url).pathname;

Deno.test("deno task bench query runs under the task's permissions and reports each scenario", async () => {
  // Inside the repository: the bench task may write nowhere else.
  const dir = `.bench/test-query-${Deno.pid}`;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...await taskArgs("bench"),
        "query",
        ...["--dir", dir, "--txs", "3000", "--blocks", "130", "--seed", "bench-query-test"],
        ...["--scenarios", "4x1", "--duration", "1", "--warmup", "1", "--pool", "300", "--history", "20"],
        ...["--mempool", "20", "--json"],
      ],
      cwd: REPO,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, err);
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(report.chain.height, 130);
    assert.ok(report.machine.cpus > 0);
    assert.equal(report.scenarios.length, 1);
    const s = report.scenarios[0];
    assert.equal(s.sessions, 4);
    assert.equal(s.errors, 0);
    assert.equal(s.lostSessions, 0);
    assert.ok(s.replies > 0 && s.requestsPerSecond > 0);
    assert.ok(s.p50Ms <= s.p99Ms && s.p99Ms <= s.maxMs);
    assert.ok(s.serverCores > 0 && s.serverPeakRssBytes > 10 << 20, "server figures come from /proc");
    assert.ok(report.history.entries >= 20);
  } finally {
    await Deno.remove(`${REPO}${dir}`, { recursive: true }).catch(() => {});
  }
});
