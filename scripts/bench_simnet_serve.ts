// How fast simnet's HTTP transport hands out raw blocks: REST `/rest/block/<hash>.bin` against JSON-RPC
// `getblock <hash> 0` (hex), both fetched by concurrent fetch() streams the way an indexer would. Blocks come
// from a fake RestProvider until the simulated node exists, so this measures the transport, not the chain.
// The server runs in a Worker so that it does not share a thread with the client, as bitcoind would not.
//
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
} else {
  await main();
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
