// Fuzz: mutated and truncated real transactions, blocks and addresses must either decode or throw
// ChainFormatError — never another error type, never hang. Seeded, so every run is identical.
import assert from "node:assert/strict";
import { addressToScript, scriptToAddress } from "../../src/chain/address.ts";
import { checkBlock, coinbaseHeight, parseBlock } from "../../src/chain/block.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { fromHex } from "../../src/chain/hex.ts";
import { NETWORKS } from "../../src/chain/network.ts";
import { classifyScript, scriptAsm } from "../../src/chain/script.ts";
import { decodeTransaction, isCoinbase, serializeTransaction, type Transaction } from "../../src/chain/tx.ts";
import { blockFixture, prng, txFixtures } from "./fixtures.ts";

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const INTERESTING = [0x00, 0x01, 0x4c, 0x4d, 0x4e, 0x6a, 0x7f, 0x80, 0xfc, 0xfd, 0xfe, 0xff];

function splice(b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const tail = b.subarray(Math.min(b.length, at + remove));
  const out = new Uint8Array(at + insert.length + tail.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(tail, at + insert.length);
  return out;
}

function mutate(r: Rand, src: Uint8Array, hotEnd = src.length): Uint8Array {
  let b: Uint8Array = src.slice();
  const edits = int(r, 1, 4);
  for (let e = 0; e < edits; e++) {
    const at = int(r, 0, Math.max(0, Math.min(hotEnd, b.length) - 1));
    switch (int(r, 0, 5)) {
      case 0: // flip bits
        b[at] ^= 1 << int(r, 0, 7);
        break;
      case 1: // set a byte that means something to a varint or script parser
        b[at] = INTERESTING[int(r, 0, INTERESTING.length - 1)];
        break;
      case 2: // a random 4-byte run, e.g. a huge length
        for (let k = 0; k < 4 && at + k < b.length; k++) b[at + k] = int(r, 0, 255);
        break;
      case 3: // delete a run
        b = splice(b, at, int(r, 1, 8), new Uint8Array());
        break;
      case 4: { // insert a run
        const ins = Uint8Array.from(
          { length: int(r, 1, 8) },
          () => INTERESTING[int(r, 0, INTERESTING.length - 1)],
        );
        b = splice(b, at, 0, ins);
        break;
      }
      default: // truncate
        b = b.slice(0, at);
    }
  }
  return b;
}

/** Runs fn; a ChainFormatError counts as a clean rejection, anything else fails the test. */
function survives(fn: () => void, input: Uint8Array | string): "ok" | "rejected" {
  try {
    fn();
    return "ok";
  } catch (e) {
    if (e instanceof ChainFormatError) {
      assert.equal(typeof e.code, "string");
      assert.ok(Number.isInteger(e.offset) && e.offset >= 0);
      return "rejected";
    }
    const shown = typeof input === "string"
      ? input
      : Array.from(input.subarray(0, 64), (x) => x.toString(16));
    throw new Error(`non-ChainFormatError on input ${shown}: ${e}`);
  }
}

function exerciseTx(tx: Transaction): void {
  for (const out of tx.outputs) {
    classifyScript(out.script);
    scriptAsm(out.script);
    scriptToAddress(out.script, NETWORKS.mainnet);
  }
  for (const input of tx.inputs) scriptAsm(input.scriptSig, true);
  // Whatever decodes must re-encode to the same bytes.
  assert.deepEqual(serializeTransaction(tx), tx.raw);
}

Deno.test("fuzz: truncations and mutations of real transactions", () => {
  const r = prng(1);
  const seeds = [...txFixtures().values()].map((f) => fromHex(f.hex));
  let ok = 0, rejected = 0;
  for (const seed of seeds) {
    for (let cut = 0; cut < seed.length; cut++) {
      assert.equal(survives(() => decodeTransaction(seed.subarray(0, cut)), seed), "rejected");
    }
  }
  for (let i = 0; i < 6000; i++) {
    const input = mutate(r, seeds[i % seeds.length]);
    const result = survives(() => exerciseTx(decodeTransaction(input)), input);
    result === "ok" ? ok++ : rejected++;
  }
  assert.ok(rejected > 1000 && ok > 100, `ok ${ok}, rejected ${rejected}`);
});

Deno.test("fuzz: mutations of a small block, checked too", () => {
  const r = prng(2);
  const seed = blockFixture("bitcoin_signet_31500").raw;
  let ok = 0, rejected = 0;
  for (let cut = 0; cut < seed.length; cut++) {
    assert.equal(survives(() => parseBlock(seed.subarray(0, cut)), seed), "rejected");
  }
  for (let i = 0; i < 4000; i++) {
    const input = mutate(r, seed);
    const result = survives(() => {
      const b = parseBlock(input);
      for (const tx of b.txs) exerciseTx(tx);
      if (isCoinbase(b.txs[0])) coinbaseHeight(b.txs[0]);
      checkBlock(b);
    }, input);
    result === "ok" ? ok++ : rejected++;
  }
  assert.ok(rejected > 1000 && ok > 10, `ok ${ok}, rejected ${rejected}`);
});

Deno.test("fuzz: mutations in the first kilobytes of a large mainnet block", () => {
  const r = prng(3);
  const seed = blockFixture("bitcoin_mainnet_951658").raw;
  let rejected = 0;
  for (let i = 0; i < 400; i++) {
    // Mutate near the start so most of the block is re-parsed from a shifted position.
    const input = mutate(r, seed, 4096);
    if (survives(() => checkBlock(parseBlock(input)), input) === "rejected") rejected++;
  }
  assert.ok(rejected > 250, `rejected ${rejected}`);
});

Deno.test("fuzz: random scripts never break classification, asm or addresses", () => {
  const r = prng(4);
  for (let i = 0; i < 20000; i++) {
    const script = Uint8Array.from(
      { length: int(r, 0, 48) },
      () => r() < 0.3 ? INTERESTING[int(r, 0, INTERESTING.length - 1)] : int(r, 0, 255),
    );
    survives(() => {
      classifyScript(script);
      scriptAsm(script, true);
      const addr = scriptToAddress(script, NETWORKS.testnet);
      if (addr !== null) assert.deepEqual(addressToScript(addr, NETWORKS.testnet), script);
    }, script);
  }
});

Deno.test("fuzz: mutated addresses are decoded or rejected with ChainFormatError", () => {
  const r = prng(5);
  const seeds = [
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
  ];
  const chars = "qpzry9x8gf2tvdw0s3jn54khce6mua7l1QPZ0OIl ébc";
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    const s = [...seeds[i % seeds.length]];
    for (let e = int(r, 1, 2); e > 0; e--) {
      const at = int(r, 0, s.length - 1);
      if (r() < 0.7) s[at] = chars[int(r, 0, chars.length - 1)];
      else s.splice(at, 1);
    }
    const addr = s.join("");
    if (survives(() => void addressToScript(addr, NETWORKS.mainnet), addr) === "ok") accepted++;
  }
  // Checksums make accidental acceptance rare; the unmutated-equivalent cases (e.g. case changes) pass.
  assert.ok(accepted < 250, `accepted ${accepted}`);
});
