import assert from "node:assert/strict";
import { sha256 } from "../../src/chain/hash.ts";
import { toHex } from "../../src/chain/hex.ts";
import { classifyScript, type ScriptType } from "../../src/chain/script.ts";
import { isCoinbase } from "../../src/chain/tx.ts";
import { bip34HeightPush, generateChain, genesisBlock } from "../../scripts/simnet/generator.ts";
import { checkChain, outpointKey } from "./chain_checker.ts";

// One mid-size chain shared by the shape tests: 600 blocks pass height 250, where the generator makes a
// near-full block, and give ~18k transactions.
const OPTS = { seed: "generator-test", blocks: 600 };
const chain = generateChain(OPTS);
const checked = checkChain(chain.map((b) => b.raw));

function digestOf(blocks: { raw: Uint8Array }[]): string {
  const all = new Uint8Array(blocks.reduce((s, b) => s + b.raw.length, 0));
  let off = 0;
  for (const b of blocks) {
    all.set(b.raw, off);
    off += b.raw.length;
  }
  return toHex(sha256(all));
}

Deno.test("generated chain passes the independent consensus checker", () => {
  assert.equal(chain.length, 601);
  assert.equal(checked.blocks.length, 601);
  // The generator's own hashes and txids agree with what the parser derives.
  for (const b of chain) {
    const txs = checked.blocks[b.height].txs;
    assert.equal(b.txids.length, 32 * txs.length);
    txs.forEach((tx, i) => assert.deepEqual(b.txids.subarray(32 * i, 32 * i + 32), tx.txid));
  }
  assert.deepEqual(chain[0].raw, genesisBlock().raw);
});

Deno.test("generation is deterministic and depends on the seed", () => {
  const again = generateChain(OPTS);
  assert.equal(digestOf(again), digestOf(chain));
  const other = generateChain({ ...OPTS, seed: "another-seed" });
  assert.notEqual(digestOf(other), digestOf(chain));
  // The genesis block is shared; block 1 already differs.
  assert.deepEqual(other[0].raw, chain[0].raw);
  assert.notDeepEqual(other[1].hash, chain[1].hash);
});

Deno.test("the tx budget is roughly honoured", () => {
  const total = checked.blocks.reduce((s, b) => s + b.txs.length - 1, 0);
  assert.ok(total > 0.8 * 18_000 && total < 1.3 * 18_000, `total ${total}`);
  const small = generateChain({ seed: 7, blocks: 300, txs: 2000 });
  const smallTotal = small.reduce((s, b) => s + b.txids.length / 32 - 1, 0);
  assert.ok(smallTotal > 1500 && smallTotal < 2800, `small total ${smallTotal}`);
});

Deno.test("early blocks hold only coinbases; BIP34 pushes match Core's encoding", () => {
  for (let h = 1; h <= 100; h++) assert.equal(checked.blocks[h].txs.length, 1);
  assert.deepEqual(bip34HeightPush(1), Uint8Array.of(0x51));
  assert.deepEqual(bip34HeightPush(16), Uint8Array.of(0x60));
  assert.deepEqual(bip34HeightPush(17), Uint8Array.of(1, 17));
  assert.deepEqual(bip34HeightPush(128), Uint8Array.of(2, 128, 0));
  assert.deepEqual(bip34HeightPush(500), Uint8Array.of(2, 0xf4, 0x01));
});

Deno.test("traffic has the shapes real chains have", () => {
  const types = new Map<ScriptType, number>();
  const scriptUse = new Map<string, number>();
  let maxIn = 0, maxOut = 0, inBlockSpend = 0, emptyAfter100 = 0, maxWeight = 0, outputs = 0, segwitTxs = 0;
  let sig72 = 0, sig71 = 0;
  for (const b of checked.blocks.slice(1)) {
    maxWeight = Math.max(maxWeight, b.weight);
    if (b.height > 100 && b.txs.length === 1) emptyAfter100++;
    const inBlock = new Set<string>();
    for (const tx of b.txs) {
      if (!isCoinbase(tx)) {
        maxIn = Math.max(maxIn, tx.inputs.length);
        for (const inp of tx.inputs) {
          if (inBlock.has(toHex(inp.prevTxid))) inBlockSpend++;
        }
        if (tx.witnesses !== null) segwitTxs++;
        for (const w of tx.witnesses ?? []) {
          for (const item of w) {
            if (item.length === 72 && item[0] === 0x30) sig72++;
            if (item.length === 71 && item[0] === 0x30) sig71++;
          }
        }
      }
      inBlock.add(toHex(tx.txid));
      maxOut = Math.max(maxOut, tx.outputs.length);
      for (const o of tx.outputs) {
        const t = classifyScript(o.script);
        types.set(t, (types.get(t) ?? 0) + 1);
        const key = toHex(o.script);
        scriptUse.set(key, (scriptUse.get(key) ?? 0) + 1);
        outputs++;
      }
    }
  }
  for (
    const t of ["p2pk", "p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr", "nulldata", "multisig", "nonstandard"]
  ) {
    assert.ok((types.get(t as ScriptType) ?? 0) > 0, `no ${t} output`);
  }
  // Mostly p2wpkh, p2tr and p2pkh.
  const main = (types.get("p2wpkh") ?? 0) + (types.get("p2tr") ?? 0) + (types.get("p2pkh") ?? 0);
  assert.ok(main > 0.7 * outputs, `main types ${main} of ${outputs}`);
  assert.ok(maxIn >= 200, `largest input count ${maxIn}`);
  assert.ok(maxOut >= 1000, `largest output count ${maxOut}`);
  assert.ok(inBlockSpend > 100, `in-block spends ${inBlockSpend}`);
  assert.ok(emptyAfter100 > 0, "no empty block after height 100");
  assert.ok(maxWeight > 3_900_000 && maxWeight <= 4_000_000, `max weight ${maxWeight}`);
  assert.ok(segwitTxs > 0 && sig71 > 0 && sig72 > 0);
  // Heavy reuse: the busiest script receives at least 1% of all outputs.
  const busiest = Math.max(...scriptUse.values());
  assert.ok(busiest > 0.01 * outputs, `busiest script ${busiest} of ${outputs}`);
});

Deno.test("the checker rejects a tampered chain", () => {
  // A flipped byte inside a transaction breaks the merkle root; one in the prev hash breaks the link.
  const raws = chain.slice(0, 152).map((b) => b.raw.slice());
  raws[151][raws[151].length - 5] ^= 1;
  assert.throws(() => checkChain(raws), /block 151/);
  const relinked = chain.slice(0, 152).map((b) => b.raw.slice());
  relinked[151][4] ^= 1;
  assert.throws(() => checkChain(relinked), /block 151: prev hash/);
});

Deno.test("final UTXO set of the checker holds only outputs nobody spent", () => {
  // Every spent outpoint is gone: no input of any block refers to a key still in the map.
  for (const b of checked.blocks.slice(1)) {
    for (const tx of b.txs.slice(1)) {
      for (const inp of tx.inputs) assert.ok(!checked.utxos.has(outpointKey(inp.prevTxid, inp.prevVout)));
    }
  }
  assert.ok(checked.utxos.size > 100);
});
