// Throughput of the block processor on generated blocks (not a test; run by hand):
//   deno run -A tests/db/bench_processor.ts [txs=300000] [txsPerBlock=1000] [flushEveryTxs=50000]
// Transactions look like mainnet's median: 2 inputs (P2WPKH, segwit), 2 outputs, one in ten with an OP_RETURN.
// Half the inputs spend outputs of the last ~2 blocks (cache hits), half spend anywhere (mostly from disk).
import { parseBlock } from "../../src/chain/block.ts";
import { Store } from "../../src/db/store.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import {
  type Coin,
  makeBlock,
  makeCoinbase,
  makeTx,
  Rng,
  type SynthBlock,
  walletScript,
} from "./synth_chain.ts";

const TXS = Number(Deno.args[0] ?? 300_000);
const PER_BLOCK = Number(Deno.args[1] ?? 1000);
const FLUSH_EVERY = Number(Deno.args[2] ?? 50_000);

const rng = new Rng(5);
const scripts = Array.from({ length: 50_000 }, () => walletScript(rng));
let blocks: SynthBlock[] = [];
const pool: Coin[] = [];
let prev: Uint8Array = new Uint8Array(32);
let made = 0;
const t0 = performance.now();
for (let height = 0; made < TXS; height++) {
  const cbOut = Array.from({ length: 50 }, () => ({ script: scripts[rng.int(scripts.length)], value: 1e8 }));
  const txs = [makeCoinbase(height, cbOut)];
  const fresh: Coin[] = [];
  cbOut.forEach((o, vout) => fresh.push({ txid: txs[0].txid, vout, value: o.value, script: o.script }));
  const n = height === 0 ? 0 : PER_BLOCK - 1;
  for (let i = 0; i < n && pool.length > 4; i++) {
    const ins: Coin[] = [];
    for (let k = 0; k < 2; k++) {
      // Recent coins sit at the end of the pool.
      const j = rng.int(2) === 0
        ? pool.length - 1 - rng.int(Math.min(pool.length, 2 * PER_BLOCK))
        : rng.int(pool.length);
      ins.push(pool[j]);
      pool[j] = pool[pool.length - 1];
      pool.pop();
    }
    const total = ins[0].value + ins[1].value - 500;
    const outs = [
      { script: scripts[rng.int(scripts.length)], value: Math.floor(total / 2) },
      { script: scripts[rng.int(scripts.length)], value: total - Math.floor(total / 2) },
    ];
    if (rng.int(10) === 0) outs.push({ script: Uint8Array.of(0x6a, 8, ...rng.bytes(8)), value: 0 });
    const tx = makeTx(ins, outs, 0, true);
    txs.push(tx);
    outs.forEach((o, vout) => {
      if (o.script[0] !== 0x6a) pool.push({ txid: tx.txid, vout, value: o.value, script: o.script });
    });
  }
  pool.push(...fresh);
  const b = makeBlock(prev, height, txs);
  prev = b.hash;
  blocks.push(b);
  made += txs.length;
}
console.log(
  `generated ${blocks.length} blocks, ${made} txs in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

// Keep only what a real sync holds (raw blocks) so the generator's objects do not weigh on the GC.
const raws = blocks.map((b) => ({ height: b.height, hash: b.hash, raw: b.raw, txs: b.txs.length }));
blocks = [];
pool.length = 0;
let t = performance.now();
for (const b of raws) parseBlock(b.raw);
const parseMs = performance.now() - t;

const dir = await Deno.makeTempDir({ prefix: "coulomb-bench-" });
const log = { info: (m: string) => m.startsWith("flushed") && console.log("  " + m), warn: console.warn };
const store = await Store.open(dir, { name: "regtest" }, { log });
const p = new BlockProcessor(store, {
  reorgLimit: 200,
  cacheMb: 2000,
  flushSize: FLUSH_EVERY * 6,
  log,
  network: { name: "regtest" },
});
let advanceMs = 0, flushMs = 0, sinceFlush = 0;
for (const b of raws) {
  t = performance.now();
  p.advance([b]);
  advanceMs += performance.now() - t;
  sinceFlush += b.txs;
  if (sinceFlush >= FLUSH_EVERY) {
    t = performance.now();
    await p.flush();
    flushMs += performance.now() - t;
    sinceFlush = 0;
  }
}
t = performance.now();
await p.flush();
flushMs += performance.now() - t;
const rate = (ms: number) => Math.round(made / (ms / 1000)).toLocaleString("en");
console.log(`parseBlock alone: ${rate(parseMs)} tx/s (${parseMs.toFixed(0)} ms)`);
console.log(`advance (incl. parse): ${rate(advanceMs)} tx/s (${advanceMs.toFixed(0)} ms)`);
console.log(`flush: ${rate(flushMs)} tx/s (${flushMs.toFixed(0)} ms)`);
console.log(`advance + flush: ${rate(advanceMs + flushMs)} tx/s`);
await store.close();
await Deno.remove(dir, { recursive: true });
