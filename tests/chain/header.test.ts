import assert from "node:assert/strict";
import { ChainFormatError } from "../../src/chain/errors.ts";
import {
  bitsToTarget,
  checkProofOfWork,
  HEADER_SIZE,
  headerHash,
  parseHeader,
  serializeHeader,
  targetToBits,
} from "../../src/chain/header.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { blockFixture } from "./fixtures.ts";

const GENESIS =
  "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const BLOCK5 =
  "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477";

Deno.test("genesis header decodes to its published fields and hash", () => {
  const raw = fromHex(GENESIS);
  const h = parseHeader(raw);
  assert.equal(h.version, 1);
  assert.equal(toHex(h.prevHash), "00".repeat(32));
  assert.equal(
    toHexReversed(h.merkleRoot),
    "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
  );
  assert.equal(h.time, 1231006505);
  assert.equal(h.bits, 0x1d00ffff);
  assert.equal(h.nonce, 2083236893);
  assert.equal(
    toHexReversed(headerHash(raw)),
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
  );
  assert.deepEqual(serializeHeader(h), raw);
});

Deno.test("mainnet block 5 header hashes to its published hash and links to block 4", () => {
  const raw = fromHex(BLOCK5);
  assert.equal(
    toHexReversed(headerHash(raw)),
    "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc",
  );
  assert.equal(
    toHexReversed(parseHeader(raw).prevHash),
    "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
  );
});

Deno.test("headers inside real blocks decode at an offset and round-trip", () => {
  for (const name of ["bitcoin_mainnet_951658", "bitcoin_signet_31500"]) {
    const f = blockFixture(name);
    const padded = new Uint8Array(7 + HEADER_SIZE);
    padded.set(f.raw.subarray(0, HEADER_SIZE), 7);
    const h = parseHeader(padded, 7);
    assert.equal(toHexReversed(h.prevHash), f.previousblockhash);
    assert.equal(toHexReversed(h.merkleRoot), f.merkleroot);
    assert.equal(h.time, f.time);
    assert.equal(h.nonce, f.nonce);
    assert.equal(h.bits.toString(16).padStart(8, "0"), f.bits);
    if (f.version !== undefined) assert.equal(h.version, f.version);
    assert.deepEqual(serializeHeader(h), f.raw.subarray(0, HEADER_SIZE));
    assert.equal(toHexReversed(headerHash(serializeHeader(h))), f.hash);
    assert.ok(checkProofOfWork(headerHash(serializeHeader(h)), h.bits));
  }
});

Deno.test("a short header buffer throws ChainFormatError with the offset", () => {
  const raw = fromHex(GENESIS);
  assert.throws(
    () => parseHeader(raw.subarray(0, 79)),
    (e) => e instanceof ChainFormatError && e.code === "truncated",
  );
  assert.throws(() => parseHeader(raw, 1), (e) => e instanceof ChainFormatError && e.offset === 1);
  assert.throws(() => headerHash(raw.subarray(0, 79)), ChainFormatError);
});

Deno.test("compact bits expand to the right targets", () => {
  assert.equal(bitsToTarget(0x1d00ffff), 0xffffn << 208n);
  assert.equal(
    bitsToTarget(0x1702068f).toString(16).padStart(64, "0"),
    "00000000000000000002068f0000000000000000000000000000000000000000",
  );
  assert.equal(bitsToTarget(0x207fffff), 0x7fffffn << 232n);
  assert.equal(bitsToTarget(0x03123456), 0x123456n);
  assert.equal(bitsToTarget(0x02123456), 0x1234n);
  assert.equal(bitsToTarget(0x01003456), 0n);
});

Deno.test("targetToBits inverts bitsToTarget for normalised bits, like Core's GetCompact", () => {
  for (const bits of [0x1d00ffff, 0x1702068f, 0x207fffff, 0x1e0377ae, 0x1b0404cb, 0x03123456, 0x05009234]) {
    assert.equal(targetToBits(bitsToTarget(bits)), bits, bits.toString(16));
  }
  // Core's vectors: 0x80 needs a sign-safe extra byte; zero is 0.
  assert.equal(targetToBits(0x80n), 0x02008000);
  assert.equal(targetToBits(0n), 0);
  assert.equal(targetToBits(0x12345600n), 0x04123456);
});

Deno.test("checkProofOfWork accepts real hashes and rejects harder, negative, zero and overflowing bits", () => {
  const hash = headerHash(fromHex(GENESIS));
  assert.equal(checkProofOfWork(hash, 0x1d00ffff), true);
  assert.equal(checkProofOfWork(hash, 0x1b00ffff), false);
  assert.equal(checkProofOfWork(hash, 0x1d80ffff), false); // sign bit set
  assert.equal(checkProofOfWork(hash, 0x1d000000), false); // zero target
  assert.equal(checkProofOfWork(hash, 0x2300ffff), false); // target above 2^256
  const max = new Uint8Array(32).fill(0xff);
  assert.equal(checkProofOfWork(max, 0x207fffff), false);
  const target = new Uint8Array(32);
  target[26] = 0xff;
  target[27] = 0xff; // exactly 0xffff << 208, the 1d00ffff target
  assert.equal(checkProofOfWork(target, 0x1d00ffff), true);
  target[0] = 1;
  assert.equal(checkProofOfWork(target, 0x1d00ffff), false);
});
