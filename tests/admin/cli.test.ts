// `coulomb rpc`: the CLI against a running server in-process (tables, --json, exit codes), the same CLI as
// `main.ts rpc` and `deno task rpc` in child processes, and `rpc stop` ending a real main.ts with exit 0.
import assert from "node:assert/strict";
import { adminCall } from "../../src/admin/client.ts";
import {
  EXIT_COMMAND_FAILED,
  EXIT_OK,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
  runRpcCli,
  serviceAddress,
} from "../../src/admin/cli.ts";
import {
  formatBtc,
  formatBytes,
  formatPeers,
  formatResult,
  formatSessions,
  table,
} from "../../src/admin/format.ts";
import type { NodeInfo } from "../../src/admin/node.ts";
import { scriptToAddress } from "../../src/chain/address.ts";
import { networkByName } from "../../src/chain/network.ts";
import { decodeTransaction } from "../../src/chain/tx.ts";
import { formatCount } from "../../src/log.ts";
import { freePort, indexerEnv, IndexerProcess } from "../integration/harness.ts";
import { simnetServiceEnv, startService } from "../launcher_harness.ts";
import { startSimnet } from "../../scripts/simnet/main.ts";
import { ElectrumClient, type Stack, startStack } from "./stack.ts";

const REPO = new URL("../../", import.meta.url).pathname;

async function cli(
  stack: Stack | number,
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const port = typeof stack === "number" ? stack : stack.rpcPort;
  const code = await runRpcCli(["--port", String(port), ...argv], {
    env: {},
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("coulomb rpc prints readable tables, raw JSON with --json, and meaningful exit codes", async (t) => {
  const stack = await startStack({ seed: "admin-cli", blocks: 130 });
  try {
    const info = await adminCall({ host: "127.0.0.1", port: stack.rpcPort }, "getinfo", []) as NodeInfo;

    await t.step("getinfo", async () => {
      const r = await cli(stack, "getinfo");
      assert.equal(r.code, EXIT_OK, r.err);
      assert.match(r.out, new RegExp(`^db height +${formatCount(info.db_height)}$`, "m"));
      assert.match(r.out, new RegExp(`^daemon height +${formatCount(info.daemon_height)}$`, "m"));
      assert.match(r.out, new RegExp(`^tx count +${formatCount(info.tx_count)}$`, "m"));
      assert.match(r.out, /^sync state +serving$/m);
      assert.match(r.out, /^network +regtest$/m);
      assert.match(r.out, /^db size +\d+(\.\d+)? [kMG]B$/m);
      const json = await cli(stack, "--json", "getinfo");
      assert.equal(json.code, EXIT_OK);
      const parsed = JSON.parse(json.out) as NodeInfo;
      assert.equal(parsed.db_height, info.db_height);
      assert.equal(parsed.tx_count, info.tx_count);
    });

    await t.step("sessions and groups", async () => {
      const c = await ElectrumClient.connect(stack.electrumPort, "cli-wallet");
      try {
        const r = await cli(stack, "sessions");
        assert.equal(r.code, EXIT_OK, r.err);
        const lines = r.out.split("\n");
        assert.match(
          lines[0],
          /^ID +Proto +Client +Version +Cost +GroupCost +Reqs +Errs +Pend +Subs +Recv +Sent +Age +Peer$/,
        );
        assert.match(
          r.out,
          /^ *\d+ +tcp +cli-wallet +1\.4 +\d+\.\d +\d+\.\d +\d+ +0 +0 +0 +\d+ B +\d+ B +\d\dm\d\ds +127\.0\.0\.1:\d+$/m,
        );
        assert.equal(lines[lines.length - 1], "1 session");
        const g = await cli(stack, "groups");
        assert.equal(g.out, "no groups\n1 session is exempt from grouping (loopback or private address)");
      } finally {
        c.close();
      }
    });

    await t.step("query, with the limit given either way", async () => {
      stack.sim.node.addMempoolTraffic(5);
      const raw = stack.sim.node.mempoolEntries()[0].raw;
      const address = decodeTransaction(raw).outputs.map((o) =>
        scriptToAddress(o.script, networkByName("regtest"))
      )
        .find((a) => a !== null)!;
      await stack.serving.mempool.refresh();
      const r = await cli(stack, "query", address);
      assert.equal(r.code, EXIT_OK, r.err);
      assert.match(r.out, new RegExp(`^Address: ${address}$`, "m"));
      assert.match(r.out, /^Script: [0-9a-f]+$/m);
      assert.match(r.out, /^History #1: (height [\d,]+|mempool) tx_hash [0-9a-f]{64}$/m);
      assert.match(r.out, /^Balance: \d[\d,]*\.\d{8} BTC( \(unconfirmed [+-][\d,]+\.\d{8} BTC\))?$/m);
      const limited = await cli(stack, "query", "--limit", "1", address);
      assert.doesNotMatch(limited.out, /^History #2/m);
      const positional = await cli(stack, "query", address, "1");
      assert.equal(positional.out, limited.out);
      const bad = await cli(stack, "query", "zzzz");
      assert.match(bad.out, /^zzzz: not an address, hex script or script hash/);
    });

    await t.step("errors: unknown command, refused command, usage, nothing listening", async () => {
      const unknown = await cli(stack, "frobnicate");
      assert.equal(unknown.code, EXIT_COMMAND_FAILED);
      assert.match(unknown.err, /unknown command 'frobnicate'/);
      const refused = await cli(stack, "log_level", "loud");
      assert.equal(refused.code, EXIT_COMMAND_FAILED);
      assert.match(refused.err, /unknown log level 'loud'/);
      const usage = await cli(stack, "--port", "70000", "getinfo");
      assert.equal(usage.code, EXIT_USAGE);
      assert.match(usage.err, /--port must be 1-65535/);
      assert.equal((await cli(stack)).code, EXIT_USAGE);
      assert.equal((await cli(stack, "disconnect")).code, EXIT_USAGE);
      const help = await cli(stack, "--help");
      assert.equal(help.code, EXIT_OK);
      assert.match(help.out, /^Usage: coulomb rpc/);
      const down = await cli(freePort(), "getinfo");
      assert.equal(down.code, EXIT_UNREACHABLE);
      assert.match(down.err, /cannot reach Coulomb's admin RPC at 127\.0\.0\.1:\d+/);
    });
  } finally {
    await stack.close();
  }
});

Deno.test("text from wallets and peers reaches the operator's terminal without control codes", () => {
  const hostile = "\x1b]0;owned\x07\x1b[2J\n999  tcp  fake-row\u009b2J";
  const sessions = formatSessions([{ id: 1, protocol: "tcp", client: hostile, remote: "1.2.3.4:5" }]);
  const peers = formatPeers([{ host: "evil.example", status: "bad", reason: hostile, protocol: hostile }], 0);
  for (const out of [sessions, peers]) {
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(out.replaceAll("\n", ""), /[\u0000-\u001f\u007f-\u009f]/);
  }
  assert.equal(sessions.split("\n").length, 3, "a header, one row and the count: no forged row");
  assert.match(sessions, /\?\]0;owned\?\?\[2J\?999/);
});

Deno.test("the rpc address defaults to SERVICES' rpc:// entry, else 127.0.0.1:8000", () => {
  assert.deepEqual(serviceAddress({}), { host: "127.0.0.1", port: 8000 });
  assert.deepEqual(serviceAddress({ SERVICES: "tcp://:50001,rpc://127.0.0.1:8123" }), {
    host: "127.0.0.1",
    port: 8123,
  });
  assert.deepEqual(serviceAddress({ SERVICES: "rpc://0.0.0.0:9000" }), { host: "127.0.0.1", port: 9000 });
  assert.deepEqual(serviceAddress({ SERVICES: "rpc://[::]:9000" }), { host: "::1", port: 9000 });
  assert.deepEqual(serviceAddress({ SERVICES: "rpc://" }), { host: "127.0.0.1", port: 8000 });
  assert.deepEqual(serviceAddress({ SERVICES: "tcp://:50001" }), { host: "127.0.0.1", port: 8000 });
  assert.deepEqual(serviceAddress({ SERVICES: "garbage" }), { host: "127.0.0.1", port: 8000 });
});

Deno.test("formatting helpers: tables align, bytes and BTC read naturally, unknown shapes fall back to JSON", () => {
  assert.equal(table(["A", "Num"], [["x", "1,000"], ["long", "7"]]), "A       Num\nx     1,000\nlong      7");
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1500), "1.50 kB");
  assert.equal(formatBytes(20_300_000), "20.3 MB");
  assert.equal(formatBtc(150_000_000), "1.50000000");
  assert.equal(formatBtc(-1), "-0.00000001");
  assert.equal(formatBtc(2_100_000_000_000_000), "21,000,000.00000000");
  assert.equal(formatResult("stop", "stopping"), "stopping");
  assert.equal(
    formatResult("disconnect", ["disconnected 1", "unknown session 2"]),
    "disconnected 1\nunknown session 2",
  );
  assert.equal(formatResult("peers", { peers: [], note: "not yet" }), "no peers: not yet");
  assert.equal(formatResult("whatever", { a: 1 }), '{\n  "a": 1\n}');
  assert.match(
    formatResult("compact_history", {
      rows_before: 5000,
      rows_after: 100,
      rows_deleted: 4900,
      rows_written: 90,
      chunks: 1,
      seconds: 0.5,
    }),
    /^history rows: 5,000 → 100 \(4,900 merged away, 90 rewritten\) in 0\.5 s, 1 chunk$/,
  );
});

Deno.test("main.ts rpc and deno task rpc talk to a real server, and rpc stop shuts it down with exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-cli-" });
  const sim = await startSimnet({ blocks: 110, seed: "admin-cli-child", port: 0, datadir: `${dir}/sim` });
  const rpcPort = freePort();
  const proc = IndexerProcess.start(indexerEnv(`${dir}/db`, sim, {
    SERVICES: `tcp://127.0.0.1:${freePort()},rpc://127.0.0.1:${rpcPort}`,
  }));
  try {
    await proc.waitFor(new RegExp(`admin RPC listening on 127\\.0\\.0\\.1:${rpcPort}`));
    await proc.waitFor(/listening for Electrum tcp connections/);
    const run = async (args: string[], env: Record<string, string> = {}) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: REPO,
        env,
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      return {
        code: r.code,
        out: new TextDecoder().decode(r.stdout),
        err: new TextDecoder().decode(r.stderr),
      };
    };
    // The binary's subcommand: no configuration beyond the port; loopback network and SERVICES only.
    const sub = await run([
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "--allow-env=SERVICES",
      "main.ts",
      "rpc",
      "--port",
      String(rpcPort),
      "getinfo",
    ]);
    assert.equal(sub.code, 0, sub.err);
    assert.match(sub.out, new RegExp(`^db height +${formatCount(sim.node.height)}$`, "m"));
    // The task, with the port taken from SERVICES as an operator's environment would have it.
    const task = await run(["task", "--quiet", "rpc", "sessions"], {
      SERVICES: `rpc://127.0.0.1:${rpcPort}`,
    });
    assert.equal(task.code, 0, task.err);
    assert.equal(task.out.trim(), "no sessions");
    const stop = await run([
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "--allow-env=SERVICES",
      "main.ts",
      "rpc",
      "-p",
      String(rpcPort),
      "stop",
    ]);
    assert.equal(stop.code, 0, stop.err);
    assert.equal(stop.out.trim(), "stopping");
    const status = await proc.finish();
    assert.equal(status.code, 0, proc.tail());
    assert.ok(proc.find(/shut down cleanly/), proc.tail());
  } finally {
    await proc.close();
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "inside deno task start's sandbox the admin RPC and the metrics endpoint work, and rpc stop exits 0",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "coulomb-cli-sandbox-" });
    const sim = await startSimnet({ blocks: 110, seed: "admin-sandbox", port: 0, datadir: `${dir}/sim` });
    const rpcPort = freePort();
    const metricsPort = freePort();
    const proc = await startService({
      ...simnetServiceEnv(dir, sim),
      SERVICES: `tcp://127.0.0.1:${freePort()},rpc://127.0.0.1:${rpcPort}`,
      METRICS: `http://127.0.0.1:${metricsPort}`,
    });
    try {
      await proc.waitFor(/listening for Electrum tcp connections/);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, new RegExp(`^coulomb_db_height ${sim.node.height}$`, "m"));
      assert.match(metrics, /^coulomb_db_size_bytes [1-9]\d*$/m);
      assert.match(metrics, /^process_resident_memory_bytes [1-9]\d*$/m);
      const status = await (await fetch(`http://127.0.0.1:${metricsPort}/status.json`)).json() as NodeInfo;
      assert.equal(status.db_height, sim.node.height);
      const info = await adminCall({ host: "127.0.0.1", port: rpcPort }, "getinfo", []) as NodeInfo;
      assert.equal(info.db_height, sim.node.height);
      assert.ok(info.db_size > 0, "the database directory could be measured inside the sandbox");
      assert.equal(await adminCall({ host: "127.0.0.1", port: rpcPort }, "stop", []), "stopping");
      assert.equal((await proc.finish()).code, 0, proc.tail());
      assert.ok(proc.find(/shut down cleanly/), proc.tail());
      assert.equal(proc.find(/denied|NotCapable/), undefined, proc.tail());
    } finally {
      await proc.close();
      await sim.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
