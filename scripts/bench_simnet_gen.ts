// Generation speed of simnet's chain generator.
// Usage: deno run -A scripts/bench_simnet_gen.ts [--txs 1000000] [--blocks N] [--seed S]
import { parseArgs } from "node:util";
import { ChainGenerator } from "./simnet/generator.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    txs: { type: "string", default: "1000000" },
    blocks: { type: "string" },
    seed: { type: "string", default: "bench" },
  },
});
const txs = Number(values.txs);
// The default keeps simnet's usual density of ~30 transactions per block.
const blocks = values.blocks !== undefined ? Number(values.blocks) : Math.ceil(txs / 30) + 100;
if (!Number.isInteger(txs) || txs < 0 || !Number.isInteger(blocks) || blocks < 0) {
  console.error("--txs and --blocks must be non-negative integers");
  Deno.exit(2);
}

const started = performance.now();
const gen = new ChainGenerator({ seed: values.seed, blocks, txs });
let bytes = 0;
let nextReport = started + 10_000;
for (let b = gen.next(); b !== null; b = gen.next()) {
  bytes += b.raw.length;
  const now = performance.now();
  if (now >= nextReport) {
    console.log(
      `  height ${b.height}/${blocks}  txs ${gen.txCount}  ${((now - started) / 1000).toFixed(1)} s`,
    );
    nextReport = now + 10_000;
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `generated ${blocks} blocks, ${gen.txCount} txs, ${(bytes / 1e6).toFixed(1)} MB in ${
    seconds.toFixed(1)
  } s ` +
    `(${Math.round(gen.txCount / seconds)} tx/s, ${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`,
);
