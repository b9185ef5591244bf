// The client against simnet's Core-compatible transport (another implementation of Core's rules than the fake
// in daemon.test.ts): cookie auth and rotation, REST vs JSON-RPC bytes, and simnet's injected faults.
import assert from "node:assert/strict";
import { fromHexReversed, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import type { Log } from "../../src/log.ts";
import { startSimnet } from "../../scripts/simnet/main.ts";

function captureLog(lines: string[]): Log {
  return {
    debug: (m) => lines.push(`DEBUG ${m}`),
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARNING ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
    enabled: () => true,
  };
}

Deno.test("against simnet: cookie auth, chain check, REST and JSON-RPC blocks agree, faults are ridden out", async () => {
  const datadir = await Deno.makeTempDir();
  const sim = await startSimnet({ blocks: 30, seed: "daemon-test", port: 0, datadir });
  const lines: string[] = [];
  const opts = {
    urls: [`http://127.0.0.1:${sim.port}/`],
    cookieFile: sim.cookiePath,
    timeoutMs: 5000,
    log: captureLog(lines),
    retryInitialDelayMs: 1,
    retryMaxDelayMs: 5,
  };
  const rest = new Daemon(opts);
  const rpc = new Daemon({ ...opts, preferRest: false });
  try {
    const info = await rest.checkNetwork("regtest");
    assert.equal(info.chain, "regtest");
    assert.match(info.version, /^\d+\.\d+\.\d+$/);
    assert.ok(
      lines.some((l) => l.startsWith(`INFO connected to daemon http://127.0.0.1:${sim.port}/: version `)),
    );

    const height = await rest.getBlockCount();
    assert.equal(height, 30);
    const hashes = await rest.getBlockHashes(0, height + 1);
    assert.equal(
      toHexReversed(hashes[0]),
      "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    );
    const viaRest = await rest.getRawBlocks(hashes);
    assert.equal(rest.restAvailable, true);
    const viaRpc = await rpc.getRawBlocks(hashes);
    assert.deepEqual(viaRest, viaRpc);

    const block = await rpc.call<{ tx: string[] }>("getblock", [toHexReversed(hashes[5]), 1]);
    const coinbase = await rpc.getRawTransaction(fromHexReversed(block.tx[0]), hashes[5]);
    assert.equal(
      toHex(coinbase),
      await rpc.call("getrawtransaction", [block.tx[0], 0, toHexReversed(hashes[5])]),
    );
    assert.ok(coinbase.length > 60);

    sim.server.faults.busyNext = 2;
    sim.server.faults.malformedNext = 2;
    sim.server.faults.dropNext = 1;
    assert.equal(await rpc.getBlockCount(), 30);
    assert.equal(
      sim.server.faults.busyNext + sim.server.faults.malformedNext + sim.server.faults.dropNext,
      0,
    );

    sim.server.faults.warmup = { until: Date.now() + 30, message: "Verifying blocks…" };
    assert.equal(await rpc.getBlockCount(), 30);
    assert.ok(lines.some((l) => l.includes("is warming up: Verifying blocks…")));

    sim.server.rotateCookie();
    assert.deepEqual(await rpc.getBlockHashes(1, 2), hashes.slice(1, 3));
    assert.ok(!lines.some((l) => l.includes("rejected")));
  } finally {
    rest.close();
    rpc.close();
    await sim.close();
    await Deno.remove(datadir, { recursive: true });
  }
});
