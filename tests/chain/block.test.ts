import assert from "node:assert/strict";
import { checkBlock, coinbaseHeight, parseBlock, witnessCommitment } from "../../src/chain/block.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { decodeTransaction, isCoinbase, type Transaction, wtxid } from "../../src/chain/tx.ts";
import { blockFixture } from "./fixtures.ts";

function code(fn: () => unknown, expected: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ChainFormatError, `expected ChainFormatError, got ${e}`);
    assert.equal(e.code, expected, e.message);
    return true;
  });
}

/** Rebuilds a raw block from a header and raw transactions (counts below 0xfd). */
function assemble(header: Uint8Array, txs: Uint8Array[]): Uint8Array {
  const total = 81 + txs.reduce((n, t) => n + t.length, 0);
  const out = new Uint8Array(total);
  out.set(header);
  out[80] = txs.length;
  let p = 81;
  for (const t of txs) {
    out.set(t, p);
    p += t.length;
  }
  return out;
}

Deno.test("mainnet block 951658: hash, every txid, sizes, weight, height, checks", () => {
  const f = blockFixture("bitcoin_mainnet_951658");
  const b = parseBlock(f.raw);
  assert.equal(toHexReversed(b.hash), f.hash);
  assert.equal(b.txs.length, f.tx.length);
  assert.deepEqual(b.txs.map((tx) => toHexReversed(tx.txid)), f.tx);
  assert.equal(b.size, f.size);
  assert.equal(b.weight, f.weight);
  assert.equal(toHexReversed(b.header.merkleRoot), f.merkleroot);
  assert.equal(b.headerBytes.length, 80);
  assert.ok(isCoinbase(b.txs[0]));
  assert.equal(coinbaseHeight(b.txs[0]), f.height);
  assert.ok(b.txs.slice(1).every((tx) => !isCoinbase(tx)));
  assert.notEqual(witnessCommitment(b), null);
  checkBlock(b);
  // Transactions are views into the block: the raw bytes re-decode to the same txids.
  for (const tx of b.txs.slice(0, 20)) assert.deepEqual(decodeTransaction(tx.raw).txid, tx.txid);
  assert.equal(b.txs[5].raw.buffer, f.raw.buffer);
});

Deno.test("signet block 31500: hash, txids, size, BIP34 height, witness commitment", () => {
  const f = blockFixture("bitcoin_signet_31500");
  const b = parseBlock(f.raw);
  assert.equal(toHexReversed(b.hash), f.hash);
  assert.deepEqual(b.txs.map((tx) => toHexReversed(tx.txid)), f.tx);
  assert.equal(b.size, f.size);
  assert.equal(coinbaseHeight(b.txs[0]), 31500);
  assert.equal(
    toHex(witnessCommitment(b)!),
    "3b31ecce6ca20fb18ddde6c3408b8b1bb44c92c2a906f106bda9634cac4b578b",
  );
  checkBlock(b);
});

Deno.test("a changed merkle root, a wrong commitment or a missing commitment are caught", () => {
  const f = blockFixture("bitcoin_signet_31500");
  const badRoot = f.raw.slice();
  badRoot[40] ^= 1;
  code(() => checkBlock(parseBlock(badRoot)), "bad-merkle-root");

  const b = parseBlock(f.raw);
  // Editing the commitment output changes the coinbase txid, which the header's root then rejects.
  const commitAt = f.block.indexOf("6a24aa21a9ed") / 2 + 6;
  const badCommit = f.raw.slice();
  badCommit[commitAt] ^= 1;
  code(() => checkBlock(parseBlock(badCommit)), "bad-merkle-root");
  // Editing a witness changes a wtxid but no txid: only the witness commitment can catch it.
  const tx2 = b.txs[2];
  const witnessByte = tx2.raw.byteOffset - f.raw.byteOffset + tx2.raw.length - 4 - 1;
  const badWitness = f.raw.slice();
  badWitness[witnessByte] ^= 0x02;
  const mutated = parseBlock(badWitness);
  assert.deepEqual(mutated.txs[2].txid, b.txs[2].txid);
  assert.notDeepEqual(wtxid(mutated.txs[2]), wtxid(b.txs[2]));
  code(() => checkBlock(mutated), "bad-witness-commitment");

  const noCommit = { ...b, txs: [{ ...b.txs[0], outputs: b.txs[0].outputs.slice(0, 1) }, ...b.txs.slice(1)] };
  code(() => checkBlock(noCommit), "missing-witness-commitment");
  const noNonce: Transaction = { ...b.txs[0], witnesses: [[new Uint8Array(31)]] };
  code(() => checkBlock({ ...b, txs: [noNonce, ...b.txs.slice(1)] }), "bad-witness-nonce");
});

Deno.test("duplicated trailing transaction keeps the merkle root but is rejected as mutated", () => {
  const f = blockFixture("bitcoin_signet_31500");
  const b = parseBlock(f.raw);
  const raws = b.txs.map((tx) => tx.raw);
  const dup = parseBlock(assemble(b.headerBytes, [...raws, raws[2]]));
  assert.equal(dup.txs.length, 4);
  code(() => checkBlock(dup), "duplicate-transactions");
});

Deno.test("coinbase must come first and only once", () => {
  const b = parseBlock(blockFixture("bitcoin_signet_31500").raw);
  code(() => checkBlock({ ...b, txs: [b.txs[1], b.txs[0], b.txs[2]] }), "bad-coinbase");
  code(() => checkBlock({ ...b, txs: [b.txs[0], b.txs[0]] }), "bad-coinbase");
});

Deno.test("malformed blocks throw ChainFormatError", () => {
  const f = blockFixture("bitcoin_signet_31500");
  code(() => parseBlock(f.raw.subarray(0, 79)), "truncated");
  code(() => parseBlock(f.raw.subarray(0, 80)), "truncated");
  code(() => parseBlock(f.raw.subarray(0, f.raw.length - 1)), "truncated");
  const trailing = new Uint8Array(f.raw.length + 1);
  trailing.set(f.raw);
  code(() => parseBlock(trailing), "trailing-bytes");
  const zero = f.raw.slice(0, 81);
  zero[80] = 0;
  code(() => parseBlock(zero), "no-transactions");
  const absurd = new Uint8Array(200);
  absurd.set(f.raw.subarray(0, 80));
  absurd.set([0xfe, 0, 0, 0, 1], 80);
  code(() => parseBlock(absurd), "bad-count");
});

Deno.test("coinbaseHeight reads OP_0, OP_1..OP_16 and minimal pushes; rejects the rest", () => {
  const cb = parseBlock(blockFixture("bitcoin_signet_31500").raw).txs[0];
  const withSig = (hex: string): Transaction => ({
    ...cb,
    inputs: [{ ...cb.inputs[0], scriptSig: fromHex(hex) }],
  });
  assert.equal(coinbaseHeight(withSig("00")), 0);
  assert.equal(coinbaseHeight(withSig("51")), 1);
  assert.equal(coinbaseHeight(withSig("6000")), 16);
  assert.equal(coinbaseHeight(withSig("0111")), 17);
  assert.equal(coinbaseHeight(withSig("02ff00")), 255);
  assert.equal(coinbaseHeight(withSig("036a850e")), 951658);
  assert.equal(coinbaseHeight(withSig("0500000000010000")), 2 ** 32);
  code(() => coinbaseHeight(withSig("")), "no-height");
  code(() => coinbaseHeight(withSig("0380")), "no-height");
  code(() => coinbaseHeight(withSig("0180")), "no-height");
  code(() => coinbaseHeight(withSig("6a")), "no-height");
  code(() => coinbaseHeight(withSig("09000000000000000001")), "no-height");
  const notCb = parseBlock(blockFixture("bitcoin_signet_31500").raw).txs[1];
  code(() => coinbaseHeight(notCb), "not-coinbase");
});
