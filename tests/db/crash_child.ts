// Child process for the crash test: syncs a synthetic chain into a store, flushing after every block and
// printing "flushed <height>" once each flush has returned. The parent kills it at arbitrary moments.
import { Store } from "../../src/db/store.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { SynthChain } from "./synth_chain.ts";

const [dir, seedArg, blocksArg] = Deno.args;
const chain = SynthChain.create(Number(seedArg), 16, 12);
chain.extend(Number(blocksArg));
const log = { info: () => {}, warn: () => {} };
const store = await Store.open(dir, { name: "regtest" }, { log });
const p = new BlockProcessor(store, {
  reorgLimit: 10,
  cacheMb: 64,
  flushSize: 1e9,
  log,
  network: { name: "regtest" },
});
const out = new TextEncoder();
for (const b of chain.blocks.slice(store.state.height + 1)) {
  p.advance([{ height: b.height, hash: b.hash, raw: b.raw }]);
  await p.flush();
  Deno.stdout.writeSync(out.encode(`flushed ${b.height}\n`));
}
await store.close();
