// Throughput of block parsing on a real 2026 mainnet block (374 txs, 99.6 kB).
// Run: deno bench --allow-read --allow-env tests/chain/block.bench.ts   (MB/s = 0.0996 / seconds per iteration)
import { checkBlock, parseBlock } from "../../src/chain/block.ts";
import { scriptHash } from "../../src/chain/script.ts";
import { blockFixture } from "./fixtures.ts";

const raw = blockFixture("bitcoin_mainnet_951658").raw;
const block = parseBlock(raw);

Deno.bench("parseBlock (decode + every txid)", { group: "block", baseline: true }, () => {
  parseBlock(raw);
});

Deno.bench("parseBlock + checkBlock (merkle root, witness commitment)", { group: "block" }, () => {
  checkBlock(parseBlock(raw));
});

Deno.bench("scriptHash of every output (the indexer's per-output cost)", { group: "block" }, () => {
  for (const tx of block.txs) for (const out of tx.outputs) scriptHash(out.script);
});
