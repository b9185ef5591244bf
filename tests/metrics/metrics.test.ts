// The metrics endpoint of a running Coulomb (in-process, on simnet) over real HTTP: values match the node, and
// they move when blocks are mined, requests are made and the mempool fills.
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { toHexReversed } from "../../src/chain/hex.ts";
import { scriptHash } from "../../src/chain/script.ts";
import { permissionFlags } from "../../src/permissions.ts";
import type { StatusJson } from "../../src/metrics/coulomb.ts";
import { ElectrumClient, type Stack, startStack } from "../admin/stack.ts";

/** The samples of a scrape: "name{labels}" → value. */
async function scrape(stack: Stack): Promise<Map<string, number>> {
  const res = await fetch(`${stack.metricsUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function value(samples: Map<string, number>, key: string): number {
  const v = samples.get(key);
  assert.ok(v !== undefined, `no sample ${key}; have: ${[...samples.keys()].join(", ")}`);
  return v;
}

Deno.test("metrics follow the node: heights, requests, errors, latency, flushes, mempool, sessions", async (t) => {
  const stack = await startStack({ seed: "metrics", blocks: 120, metrics: true });
  try {
    await t.step("heights and sizes match the node", async () => {
      const m = await scrape(stack);
      const h = stack.sim.node.height;
      assert.equal(value(m, "coulomb_db_height"), h);
      assert.equal(value(m, "coulomb_daemon_height"), h);
      assert.equal(value(m, "coulomb_db_tx_count"), stack.indexer.store.state.txCount);
      assert.equal(value(m, "coulomb_caught_up"), 1);
      assert.equal(value(m, 'coulomb_info{version="Coulomb 0.1.0",network="regtest"}'), 1);
      assert.equal(value(m, "coulomb_sync_blocks_total"), h + 1);
      assert.ok(value(m, "coulomb_db_size_bytes") > 0);
      assert.ok(value(m, "process_resident_memory_bytes") > 0);
      assert.equal(value(m, "coulomb_sessions"), 0);
      // Regtest has no seed peers: every status is reported, at zero.
      for (const status of ["good", "new", "failed", "bad"]) {
        assert.equal(value(m, `coulomb_peers{status="${status}"}`), 0, status);
      }
    });

    await t.step("requests, errors and latencies are counted by method", async () => {
      const c = await ElectrumClient.connect(stack.electrumPort);
      try {
        const sh = toHexReversed(scriptHash(Uint8Array.of(0x51)));
        for (let i = 0; i < 3; i++) await c.request("blockchain.scripthash.get_balance", [sh]);
        await assert.rejects(
          () => c.request("blockchain.scripthash.get_balance", ["nope"]),
          /not a valid script hash/,
        );
        // Arguments that do not bind never reach the handler, and count all the same.
        await assert.rejects(() => c.request("blockchain.scripthash.get_balance", []), /argument/);
        const m = await scrape(stack);
        const method = 'method="blockchain.scripthash.get_balance"';
        assert.equal(value(m, `coulomb_requests_total{${method}}`), 5);
        assert.equal(value(m, `coulomb_request_errors_total{${method},code="1"}`), 1);
        assert.equal(value(m, `coulomb_request_errors_total{${method},code="-32602"}`), 1);
        assert.equal(value(m, `coulomb_request_duration_seconds_count{${method}}`), 4);
        assert.equal(value(m, `coulomb_request_duration_seconds_bucket{${method},le="+Inf"}`), 4);
        assert.equal(value(m, "coulomb_sessions"), 1);
      } finally {
        c.close();
      }
    });

    await t.step("mining a block moves the height, the sync counters and the flush histogram", async () => {
      const before = await scrape(stack);
      const flushes = before.get("coulomb_flush_duration_seconds_count") ?? 0;
      const height = await stack.mine(1);
      const after = await scrape(stack);
      assert.equal(value(after, "coulomb_db_height"), height);
      assert.equal(value(after, "coulomb_db_height"), value(before, "coulomb_db_height") + 1);
      assert.equal(value(after, "coulomb_sync_blocks_total"), value(before, "coulomb_sync_blocks_total") + 1);
      assert.ok(value(after, "coulomb_sync_txs_total") > value(before, "coulomb_sync_txs_total"));
      assert.ok(value(after, "coulomb_flush_duration_seconds_count") >= flushes + 1);
      assert.equal(value(after, "coulomb_db_flush_count"), stack.indexer.store.state.flushCount);
    });

    await t.step("the mempool gauges follow the mempool copy", async () => {
      stack.sim.node.addMempoolTraffic(25);
      await stack.serving.mempool.refresh();
      const m = await scrape(stack);
      assert.ok(stack.serving.mempool.size > 0);
      assert.equal(value(m, "coulomb_mempool_txs"), stack.serving.mempool.size);
      assert.equal(value(m, "coulomb_mempool_vsize_bytes"), stack.serving.mempool.vsizeTotal);
    });

    await t.step("status.json carries the same numbers and a progress history", async () => {
      stack.metrics!.sampleProgress();
      const res = await fetch(`${stack.metricsUrl}/status.json`);
      assert.equal(res.status, 200);
      const s = await res.json() as StatusJson;
      assert.equal(s.db_height, stack.indexer.store.state.height);
      assert.equal(s.daemon_height, stack.sim.node.height);
      assert.equal(s.sync_state, "serving");
      assert.equal(s.mempool_txs, stack.serving.mempool.size);
      assert.equal(s.requests_total, 5);
      assert.equal(s.request_errors_total, 2);
      assert.ok(s.flushes >= 1 && s.last_flush_seconds !== null);
      assert.ok(s.history.length >= 1);
      const last = s.history[s.history.length - 1];
      assert.equal(last[1], s.db_height);
      assert.equal(last[2], s.daemon_height);
    });

    await t.step("other paths and methods are refused", async () => {
      const missing = await fetch(`${stack.metricsUrl}/nope`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
      const post = await fetch(`${stack.metricsUrl}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      await post.body?.cancel();
      const page = await fetch(`${stack.metricsUrl}/`);
      assert.match(page.headers.get("content-security-policy")!, /script-src 'nonce-[0-9a-f]{32}'/);
      assert.match(await page.text(), /<title>Coulomb status<\/title>/);
    });
  } finally {
    await stack.close();
  }
});

Deno.test("the sandbox lets the process listen on the METRICS address", () => {
  const config = loadConfig({
    NET: "regtest",
    DB_DIRECTORY: "/var/lib/coulomb",
    DAEMON_URL: "http://u:p@127.0.0.1:18443",
    METRICS: "http://127.0.0.1:9100",
  }, []);
  assert.ok(!("help" in config) && !("version" in config));
  const net = permissionFlags(config, { nodeModules: "/opt/coulomb/node_modules" }).find((f) =>
    f.startsWith("--allow-net=")
  )!;
  assert.ok(net.slice("--allow-net=".length).split(",").includes("127.0.0.1:9100"), net);
  const v6 = loadConfig({
    NET: "regtest",
    DB_DIRECTORY: "/var/lib/coulomb",
    DAEMON_URL: "http://u:p@127.0.0.1:18443",
    METRICS: "http://[::1]:9100",
  }, []);
  assert.ok(!("help" in v6) && !("version" in v6));
  const net6 = permissionFlags(v6, { nodeModules: "/opt/coulomb/node_modules" }).find((f) =>
    f.startsWith("--allow-net=")
  )!;
  assert.ok(net6.slice("--allow-net=".length).split(",").includes("[::1]:9100"), net6);
});
