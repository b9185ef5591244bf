// How fast simnet hands out raw blocks: REST `/rest/block/<hash>.bin` against JSON-RPC `getblock <hash> 0`
// (hex), both fetched by concurrent fetch() streams the way an indexer would.
//
// Two modes:
//   --chain TXS: a real generated simnet chain of about TXS transactions, served by `scripts/simnet/main.ts`
//                in its own process (as bitcoind would be); every block is fetched once per interface.
//   otherwise:   the transport alone, with a fake RestProvider of random blocks, served from a Worker.
//
//   deno run -A scripts/bench_simnet_serve.ts --chain 1000000 [--blocks N] [--streams 8] [--datadir .bench/simnet]
//   deno run --allow-net --allow-read scripts/bench_simnet_serve.ts [--blocks 2000] [--size 1000000] [--streams 8]

import { startRpcServer } from "./simnet/rpc_server.ts";
import { CoreRpcError, type RestProvider, RPC, type RpcMethodTable } from "./simnet/rpc_types.ts";
import { fromHexReversed, toHex, toHexReversed } from "../src/chain/hex.ts";

const WORKER_NAME = "simnet-bench-server";

interface BenchConfig {
  blocks: number;
  size: number;
}

/** Block hash for a height: the height in the first four bytes, so lookups need no map. */
function hashOf(height: number): Uint8Array {
  const h = new Uint8Array(32);
  new DataView(h.buffer).setUint32(0, height, true);
  h[31] = 0xbb;
  return h;
}

/** The server side: a fake chain of `blocks` random blocks (a small pool reused, so 2000 MB need not be held). */
async function serve(cfg: BenchConfig): Promise<{ port: number; close(): Promise<void> }> {
  const poolSize = Math.min(cfg.blocks, 64);
  const pool = Array.from({ length: poolSize }, () => {
    const b = new Uint8Array(cfg.size);
    for (let off = 0; off < b.length; off += 65536) crypto.getRandomValues(b.subarray(off, off + 65536));
    return b;
  });
  const heightOf = (hash: Uint8Array): number | undefined => {
    if (hash.length !== 32 || hash[31] !== 0xbb) return undefined;
    const height = new DataView(hash.buffer, hash.byteOffset, 32).getUint32(0, true);
    return height < cfg.blocks ? height : undefined;
  };
  const rest: RestProvider = {
    blockRaw: (hash) => {
      const h = heightOf(hash);
      return h === undefined ? undefined : pool[h % poolSize];
    },
    blockHashByHeight: (height) => height < cfg.blocks ? hashOf(height) : undefined,
    headers: () => undefined,
    chainInfo: () => ({ chain: "regtest", blocks: cfg.blocks - 1 }),
  };
  const getblock = (encode: (b: Uint8Array) => string) => (args: unknown[]) => {
    const [hashHex, verbosity] = args;
    if (typeof hashHex !== "string" || hashHex.length !== 64) {
      throw new CoreRpcError(RPC.INVALID_PARAMETER, "blockhash must be of length 64");
    }
    const h = heightOf(fromHexReversed(hashHex));
    if (h === undefined) throw new CoreRpcError(RPC.INVALID_ADDRESS_OR_KEY, "Block not found");
    if (verbosity !== 0) throw new CoreRpcError(RPC.INVALID_PARAMETER, "bench serves verbosity 0 only");
    return encode(pool[h % poolSize]);
  };
  const methods: RpcMethodTable = {
    getblock: { params: ["blockhash", "?verbosity|verbose"], handler: getblock((b) => b.toHex()) },
    getblock_jshex: { params: ["blockhash", "?verbosity|verbose"], handler: getblock(toHex) },
  };
  const server = await startRpcServer({ port: 0, methods, rest, auth: { user: "bench", password: "bench" } });
  return { port: server.port, close: () => server.close() };
}

interface WorkerScope {
  name?: string;
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
if (scope.name === WORKER_NAME) {
  let running: { port: number; close(): Promise<void> } | null = null;
  scope.onmessage = async (e: MessageEvent) => {
    if (e.data.type === "start") {
      running = await serve(e.data.cfg);
      scope.postMessage({ type: "ready", port: running.port });
    } else if (e.data.type === "stop") {
      await running?.close();
      scope.postMessage({ type: "stopped" });
      scope.close();
    }
  };
} else if (Deno.args.includes("--chain")) {
  await chainMain();
} else {
  await main();
}

/** Serves a generated chain from a simnet child process and fetches all of it over REST and JSON-RPC. */
async function chainMain(): Promise<void> {
  const txs = arg("chain", 1_000_000);
  const streams = arg("streams", 8);
  const di = Deno.args.indexOf("--datadir");
  const datadir = di >= 0 ? Deno.args[di + 1] : ".bench/simnet";
  // About 1,000 transactions per block by default, near mainnet's recent average; --blocks overrides.
  const blocks = Deno.args.includes("--blocks") ? arg("blocks", 1000) : Math.max(200, Math.round(txs / 1000));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./simnet/main.ts", import.meta.url).pathname,
      "--blocks",
      String(blocks),
      "--txs",
      String(txs),
      "--port",
      "0",
      "--datadir",
      datadir,
      "--rpcuser",
      "bench",
      "--rpcpassword",
      "bench",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const t0 = performance.now();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("simnet exited before it was ready");
    out += value;
  }
  const m = /simnet ready height=(\d+) rpc=(\S+)/.exec(out);
  if (!m) throw new Error(`unexpected simnet output: ${out}`);
  const height = Number(m[1]);
  const url = m[2] + "/";
  console.log(
    `simnet ready after ${((performance.now() - t0) / 1000).toFixed(1)} s (generation or cache load)`,
  );
  const auth = "Basic " + btoa("bench:bench");
  const rpc = async (body: unknown) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: auth },
      body: JSON.stringify(body),
    });
    return await res.json();
  };
  const hashes: string[] = [];
  for (let from = 0; from <= height; from += 1000) {
    const batch = [];
    for (let h = from; h <= Math.min(height, from + 999); h++) {
      batch.push({ method: "getblockhash", params: [h], id: h });
    }
    for (const r of await rpc(batch)) hashes.push(r.result);
  }
  const fetchAll = async (one: (i: number) => Promise<number>) => {
    let next = 0, bytes = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: streams }, async () => {
      while (next < hashes.length) {
        const n = await one(next++);
        bytes += n;
      }
    }));
    const s = (performance.now() - start) / 1000;
    return { bytes, s, mbps: bytes / 1e6 / s };
  };
  const rest = await fetchAll(async (i) =>
    (await (await fetch(`${url}rest/block/${hashes[i]}.bin`)).bytes()).length
  );
  console.log(
    `REST .bin:            ${rest.mbps.toFixed(0).padStart(5)} MB/s  (${hashes.length} blocks, ${
      (rest.bytes / 1e6).toFixed(0)
    } MB, ${rest.s.toFixed(2)} s)`,
  );
  const perBatch = 16;
  const batches = Math.ceil(hashes.length / perBatch);
  let nextBatch = 0, rpcBytes = 0;
  const r0 = performance.now();
  await Promise.all(Array.from({ length: streams }, async () => {
    while (nextBatch < batches) {
      const b = nextBatch++;
      const req = hashes.slice(b * perBatch, (b + 1) * perBatch).map((h, i) => ({
        method: "getblock",
        params: [h, 0],
        id: i,
      }));
      for (const r of await rpc(req)) rpcBytes += Uint8Array.fromHex(r.result).length;
    }
  }));
  const rs = (performance.now() - r0) / 1000;
  console.log(
    `JSON-RPC getblock 0:  ${
      (rpcBytes / 1e6 / rs).toFixed(0).padStart(5)
    } MB/s  (batches of ${perBatch}, hex decoded by the client, ${rs.toFixed(2)} s)`,
  );
  if (rpcBytes !== rest.bytes) throw new Error(`REST served ${rest.bytes} bytes but JSON-RPC ${rpcBytes}`);
  child.kill("SIGTERM");
  await child.status;
}

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(Deno.args[i + 1]);
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new Error(`--${name} needs a positive integer, got ${Deno.args[i + 1]}`);
  }
  return v;
}

async function main(): Promise<void> {
  const cfg: BenchConfig = { blocks: arg("blocks", 2000), size: arg("size", 1_000_000) };
  const streams = arg("streams", 8);
  const worker = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
  const next = () =>
    new Promise<{ type: string; port?: number }>((resolve) => worker.onmessage = (e) => resolve(e.data));
  const ready = next();
  worker.postMessage({ type: "start", cfg });
  const { port } = await ready;
  const url = `http://127.0.0.1:${port}/`;
  const auth = "Basic " + btoa("bench:bench");

  /** Fetches every height with `streams` concurrent workers; returns raw block MB/s. */
  async function run(fetchOne: (height: number) => Promise<number>, blocks = cfg.blocks) {
    let nextHeight = 0;
    let bytes = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: streams }, async () => {
      while (nextHeight < blocks) {
        const n = await fetchOne(nextHeight++); // not `bytes += await …`: that reads `bytes` before the await
        bytes += n;
      }
    }));
    const ms = performance.now() - t0;
    if (bytes !== blocks * cfg.size) throw new Error(`fetched ${bytes} bytes, expected ${blocks * cfg.size}`);
    return { mbps: bytes / 1e6 / (ms / 1000), ms, blocks };
  }

  const restBin = async (height: number): Promise<number> => {
    const res = await fetch(`${url}rest/block/${toHexReversed(hashOf(height))}.bin`);
    if (res.status !== 200) throw new Error(`REST ${res.status}: ${await res.text()}`);
    return (await res.bytes()).length;
  };
  const rpcHex = (method: string) => async (height: number): Promise<number> => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: auth },
      body: JSON.stringify({ method, params: [toHexReversed(hashOf(height)), 0], id: height }),
    });
    const reply = await res.json();
    if (reply.error) throw new Error(`RPC ${JSON.stringify(reply.error)}`);
    return Uint8Array.fromHex(reply.result).length; // an indexer must decode the hex, so the bench does too
  };

  try {
    console.log(`${cfg.blocks} blocks of ${cfg.size} bytes, ${streams} concurrent fetch() streams, loopback`);
    await run(restBin, Math.min(cfg.blocks, 200)); // warm-up: JIT, connection pool
    const cases: [string, (h: number) => Promise<number>, number][] = [
      ["REST /rest/block/<hash>.bin", restBin, cfg.blocks],
      ["JSON-RPC getblock <hash> 0 (native Uint8Array toHex/fromHex)", rpcHex("getblock"), cfg.blocks],
      // src/chain/hex.ts builds strings a byte at a time: fine for hashes, slow for whole blocks.
      [
        "JSON-RPC getblock <hash> 0 (server hex via src/chain/hex.ts)",
        rpcHex("getblock_jshex"),
        cfg.blocks / 10,
      ],
    ];
    for (const [name, fn, blocks] of cases) {
      const r = await run(fn, Math.max(1, Math.floor(blocks)));
      console.log(
        `${name.padEnd(64)} ${r.mbps.toFixed(0).padStart(6)} MB/s  (${r.blocks} blocks, ${
          (r.ms / 1000).toFixed(2)
        } s)`,
      );
    }
  } finally {
    const stopped = next();
    worker.postMessage({ type: "stop" });
    await stopped;
    worker.terminate();
  }
}
