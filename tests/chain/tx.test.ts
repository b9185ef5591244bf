import assert from "node:assert/strict";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import {
  decodeTransaction,
  isCoinbase,
  parseTransaction,
  serializeTransaction,
  type Transaction,
  wtxid,
} from "../../src/chain/tx.ts";
import { txFixtures } from "./fixtures.ts";

const GENESIS_COINBASE =
  "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";
const LEGACY =
  "01000000015bb9142c960a838329694d3fe9ba08c2a6421c5158d8f7044cb7c48006c1b484000000006a4730440220229ea5359a63c2b83a713fcc20d8c41b20d48fe639a639d2a8246a137f29d0fc02201de12de9c056912a4e581a62d12fb5f43ee6c08ed0238c32a1ee769213ca8b8b412103bcf9a004f1f7a9a8d8acce7b51c983233d107329ff7c4fb53e44c855dbe1f6a4feffffff02c6b68200000000001976a9141041fb024bd7a1338ef1959026bbba860064fe5f88ac50a8cf00000000001976a91445dac110239a7a3814535c15858b939211f8529888ac61ee0700";
const SEGWIT =
  "0200000000010147a332c544c49d66a9a7c3f65e420e209b8fbfef4826a2d636c50bbd61c3c9a60000000000fdffffff02784a4c00000000001600147bcf38d8a69071c21abbfe0532cb6aeacaf5c29440a5ae02000000001600149f9aa3795e57c535d2f7b160ff023804c60fca6e02473044022020fd51935d101b3bfcf169af182a2ca189407597d8f1868ca55eecae6c58fd0402205adc117093a4329dde60b9b9c579c56c1699129c6be37a581bbd03e851d36962012103c3172a9f8820681c62b8bf28961988a4642b33f4920b9da14b06965c7fff83fda8090000";

function fails(hex: string | Uint8Array, code: string, offset?: number): void {
  const raw = typeof hex === "string" ? fromHex(hex) : hex;
  assert.throws(
    () => decodeTransaction(raw),
    (e: unknown) => {
      assert.ok(e instanceof ChainFormatError, `expected ChainFormatError, got ${e}`);
      assert.equal(e.code, code, e.message);
      if (offset !== undefined) assert.equal(e.offset, offset, e.message);
      return true;
    },
  );
}

Deno.test("genesis coinbase: txid, coinbase detection, output value", () => {
  const tx = decodeTransaction(fromHex(GENESIS_COINBASE));
  assert.equal(toHexReversed(tx.txid), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
  assert.equal(tx.size, 204);
  assert.ok(isCoinbase(tx));
  assert.equal(tx.outputs.length, 1);
  assert.equal(tx.outputs[0].value, 50 * 1e8);
  assert.equal(tx.witnesses, null);
  assert.deepEqual(wtxid(tx), tx.txid);
});

Deno.test("legacy vector: txid, sizes, fields, and no witness", () => {
  const raw = fromHex(LEGACY);
  const tx = decodeTransaction(raw);
  assert.equal(toHexReversed(tx.txid), "36a3692a41a8ac60b73f7f41ee23f5c917413e5b2fad9e44b34865bd0d601a3d");
  assert.equal(tx.size, 225);
  assert.equal(tx.baseSize, 225);
  assert.equal(tx.weight, 900);
  assert.equal(tx.vsize, 225);
  assert.equal(tx.locktime, 519777);
  assert.equal(tx.version, 1);
  assert.equal(tx.inputs[0].sequence, 0xfffffffe);
  assert.equal(tx.outputs[0].value, 8566470);
  assert.equal(tx.outputs[1].value, 13609040);
  assert.equal(toHex(tx.outputs[0].script), "76a9141041fb024bd7a1338ef1959026bbba860064fe5f88ac");
  assert.equal(isCoinbase(tx), false);
  // Views, not copies: the script shares the input's memory.
  assert.equal(tx.outputs[0].script.buffer, raw.buffer);
  assert.equal(tx.raw.buffer, raw.buffer);
});

Deno.test("segwit vector: base size 113, weight 561, vsize 141, txid and wtxid", () => {
  const tx = decodeTransaction(fromHex(SEGWIT));
  assert.equal(tx.size, 222);
  assert.equal(tx.baseSize, 113);
  assert.equal(tx.weight, 561);
  assert.equal(tx.vsize, 141);
  assert.equal(toHexReversed(tx.txid), "9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c");
  assert.equal(toHexReversed(wtxid(tx)), "b3b1045327a9bd21850f07f639a784653c69d7d82b0341829cb8afcb2c0f881e");
  assert.equal(tx.witnesses?.length, 1);
  assert.equal(tx.witnesses?.[0].length, 2);
  assert.equal(tx.locktime, 0x9a8);
});

Deno.test("testdata transactions match every field bitcoind reported", () => {
  const fixtures = txFixtures();
  assert.ok(fixtures.size >= 3);
  for (const [name, f] of fixtures) {
    const tx = decodeTransaction(fromHex(f.hex));
    assert.equal(toHexReversed(tx.txid), f.txid, name);
    assert.equal(toHexReversed(wtxid(tx)), f.hash, name);
    assert.equal(tx.version, f.version);
    assert.equal(tx.size, f.size);
    assert.equal(tx.vsize, f.vsize);
    assert.equal(tx.weight, f.weight);
    assert.equal(tx.locktime, f.locktime);
    assert.equal(tx.inputs.length, f.vin.length);
    f.vin.forEach((vin, i) => {
      const input = tx.inputs[i];
      assert.equal(toHexReversed(input.prevTxid), vin.txid);
      assert.equal(input.prevVout, vin.vout);
      assert.equal(toHex(input.scriptSig), vin.scriptSig.hex);
      assert.equal(input.sequence, vin.sequence);
      assert.deepEqual((tx.witnesses?.[i] ?? []).map(toHex), vin.txinwitness ?? []);
    });
    assert.equal(tx.outputs.length, f.vout.length);
    f.vout.forEach((vout, i) => {
      assert.equal(tx.outputs[i].value, Math.round(vout.value * 1e8));
      assert.equal(toHex(tx.outputs[i].script), vout.scriptPubKey.hex);
    });
    assert.equal(toHex(serializeTransaction(tx)), f.hex, `${name} round trip`);
  }
});

Deno.test("serializeTransaction: witness form only when asked and present; legacy form hashes to the txid", () => {
  const tx = decodeTransaction(fromHex(SEGWIT));
  assert.equal(toHex(serializeTransaction(tx)), SEGWIT);
  const stripped = serializeTransaction(tx, false);
  assert.equal(stripped.length, 113);
  const legacy = decodeTransaction(stripped);
  assert.deepEqual(legacy.txid, tx.txid);
  assert.equal(legacy.witnesses, null);
  // All-empty witnesses cannot be encoded with the flag, so they fall back to legacy form.
  const empty = serializeTransaction({ ...tx, witnesses: [[]] }, true);
  assert.deepEqual(empty, stripped);
  assert.equal(toHex(serializeTransaction(decodeTransaction(fromHex(LEGACY)))), LEGACY);
});

Deno.test("parseTransaction reads consecutive transactions at offsets", () => {
  const a = fromHex(LEGACY), b = fromHex(SEGWIT);
  const buf = new Uint8Array(3 + a.length + b.length);
  buf.set(a, 3);
  buf.set(b, 3 + a.length);
  const first = parseTransaction(buf, 3);
  assert.equal(first.end, 3 + a.length);
  const second = parseTransaction(buf, first.end);
  assert.equal(second.end, buf.length);
  assert.equal(
    toHexReversed(first.tx.txid),
    "36a3692a41a8ac60b73f7f41ee23f5c917413e5b2fad9e44b34865bd0d601a3d",
  );
  assert.equal(
    toHexReversed(second.tx.txid),
    "9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c",
  );
  assert.throws(() => parseTransaction(buf, buf.length + 1), ChainFormatError);
});

Deno.test("malformed transactions throw ChainFormatError with code and offset", () => {
  // Truncated anywhere.
  fails(LEGACY.slice(0, 2 * 100), "truncated");
  fails("", "truncated", 0);
  fails("01000000", "truncated", 4);
  // Trailing garbage.
  fails(LEGACY + "00", "trailing-bytes", 225);
  // Segwit marker with a flag other than 1.
  fails("02000000" + "0002" + SEGWIT.slice(12), "bad-segwit-flag", 5);
  // Zero inputs in legacy form reads as marker 00 with flag 00.
  fails("01000000" + "00" + "00" + "00000000", "bad-segwit-flag", 5);
  // Zero inputs in segwit form.
  fails("01000000" + "0001" + "00" + "00" + "00000000", "no-inputs", 6);
  // Flag set but every witness empty.
  const tx = decodeTransaction(fromHex(SEGWIT));
  const legacyBody = toHex(serializeTransaction(tx, false));
  fails(
    legacyBody.slice(0, 8) + "0001" + legacyBody.slice(8, -8) + "00" + legacyBody.slice(-8),
    "superfluous-witness",
  );
  // Non-canonical CompactSize for the input count (fd 0100).
  fails("01000000" + "fd0100" + LEGACY.slice(10), "non-canonical-varint", 4);
  // A CompactSize above Core's MAX_SIZE.
  fails("01000000" + "fe00000004" + "00".repeat(50), "varint-too-large", 4);
});

Deno.test("absurd counts fail before allocating", () => {
  // 33 million inputs claimed in a 60-byte buffer: must fail on the count, not after trying to read.
  fails("01000000" + "fe00000002" + "00".repeat(50), "bad-count", 4);
  fails("01000000" + "fdffff" + "00".repeat(60), "bad-count", 4);
  // One real input, then 0xfd00 outputs with no room.
  const oneInput = LEGACY.slice(0, 8 + 2 + 2 * 41 + 2 * 106);
  fails(oneInput + "fd0001" + "00".repeat(20), "bad-count");
  // A witness item count larger than what is left.
  const segwitHead = SEGWIT.slice(0, SEGWIT.length - 2 * (1 + 1 + 71 + 1 + 33 + 4));
  fails(segwitHead + "fd0010" + "00".repeat(10), "bad-count");
  // A script length larger than what is left.
  fails(LEGACY.slice(0, 8 + 2 + 72) + "fd0010" + "00".repeat(10), "truncated");
});

Deno.test("output values above 2^53 or negative are rejected", () => {
  const tx = decodeTransaction(fromHex(LEGACY));
  const valueAt = 4 + 1 + 41 + 106 + 1;
  const raw = fromHex(LEGACY);
  raw.set([0, 0, 0, 0, 0, 0, 0x40, 0], valueAt);
  fails(raw, "value-too-large", valueAt);
  raw.set([1, 0, 0, 0, 0, 0, 0, 0x80], valueAt);
  fails(raw, "negative-value", valueAt);
  assert.equal(tx.outputs[0].value, 8566470);
});

Deno.test("coinbase detection needs exactly one input with the null outpoint", () => {
  const cb = decodeTransaction(fromHex(GENESIS_COINBASE));
  const twoInputs: Transaction = { ...cb, inputs: [cb.inputs[0], cb.inputs[0]] };
  assert.equal(isCoinbase(twoInputs), false);
  const wrongVout: Transaction = { ...cb, inputs: [{ ...cb.inputs[0], prevVout: 0 }] };
  assert.equal(isCoinbase(wrongVout), false);
  const txid = new Uint8Array(32);
  txid[31] = 1;
  assert.equal(isCoinbase({ ...cb, inputs: [{ ...cb.inputs[0], prevTxid: txid }] }), false);
});
