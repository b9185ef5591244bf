import assert from "node:assert/strict";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import {
  hash160,
  sha256,
  sha256d,
  sha256d64,
  sha256dParts,
  sha256dSpansInto,
  sha256Into,
} from "../../src/chain/hash.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";

const GENESIS_HEADER =
  "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27a" +
  "c72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

Deno.test("sha256 matches the standard vectors on both sides of the native threshold", () => {
  assert.equal(
    toHex(sha256(new Uint8Array())),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(
    toHex(sha256(new TextEncoder().encode("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  // One million 'a's: the FIPS long-message vector, which goes through node:crypto.
  assert.equal(
    toHex(sha256(new Uint8Array(1_000_000).fill(0x61))),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
});

Deno.test("sha256d of the genesis header is the genesis block hash", () => {
  assert.equal(
    toHexReversed(sha256d(fromHex(GENESIS_HEADER))),
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
  );
});

Deno.test("sha256dParts equals sha256d of the concatenation, small and large", () => {
  for (const size of [0, 1, 100, 511, 512, 513, 5000]) {
    const whole = Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff);
    const cut1 = Math.floor(size / 3), cut2 = Math.floor((2 * size) / 3);
    const parts = [whole.subarray(0, cut1), whole.subarray(cut1, cut2), whole.subarray(cut2)];
    assert.deepEqual(sha256dParts(parts), sha256d(whole), `size ${size}`);
  }
});

Deno.test("hash160 of a compressed pubkey matches its P2PKH hash", () => {
  // Pubkey and hash160 from the legacy tx vector in bitcoind-rpc.md §7 (input 0's scriptSig, output 0 is
  // not the same key, so use the well-known generator point G instead).
  const g = fromHex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
  assert.equal(toHex(hash160(g)), "751e76e8199196d454941c45d1b3a323f1433bd6");
});

Deno.test("sha256dSpansInto equals sha256d of the concatenated ranges at every padding boundary and engine", () => {
  const data = new Uint8Array(1500);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  const out = new Uint8Array(40);
  // Lengths around the one/two-block padding split (55/56), block edges, and the native threshold (512).
  for (const len of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300, 511, 512, 513, 1400]) {
    for (const [cut1, cut2] of [[0, 0], [4, len - 4], [Math.floor(len / 3), Math.floor((2 * len) / 3)]]) {
      if (cut1 < 0 || cut2 < cut1 || cut2 > len) continue;
      const start = 17; // ranges inside a larger buffer, as in a raw block
      const expected = nobleSha256(nobleSha256(data.subarray(start, start + len)));
      sha256dSpansInto(
        data,
        start,
        start + cut1,
        start + cut1,
        start + cut2,
        start + cut2,
        start + len,
        out,
        5,
      );
      assert.equal(toHex(out.subarray(5, 37)), toHex(expected), `len ${len} cuts ${cut1},${cut2}`);
      assert.equal(toHex(sha256d(data.subarray(start, start + len))), toHex(expected), `sha256d len ${len}`);
      const parts = [data.subarray(start, start + cut1), data.subarray(start + cut1, start + len)];
      assert.equal(toHex(sha256dParts(parts)), toHex(expected), `parts len ${len}`);
    }
  }
});

Deno.test("sha256Into writes sha256 or its prefix at an offset, across block and native boundaries", () => {
  for (const n of [0, 1, 22, 25, 34, 55, 56, 63, 64, 65, 119, 120, 511, 512, 2000]) {
    const data = new Uint8Array(n + 6).map((_, i) => (i * 37 + n) & 0xff);
    const want = sha256(data.subarray(3, 3 + n));
    const out = new Uint8Array(40).fill(0xee);
    sha256Into(data, 3, 3 + n, out, 4);
    assert.deepEqual(out.subarray(4, 36), want, `length ${n}`);
    assert.equal(out[3], 0xee);
    assert.equal(out[36], 0xee);
    const x = new Uint8Array(11);
    sha256Into(data, 3, 3 + n, x, 0, 11);
    assert.deepEqual(x, want.subarray(0, 11));
  }
});

Deno.test("sha256d64 is sha256d of 64 bytes, also when writing over its own input", () => {
  const buf = new Uint8Array(128).map((_, i) => (i * 91 + 7) & 0xff);
  const want = sha256d(buf.subarray(32, 96));
  const out = new Uint8Array(32);
  sha256d64(buf, 32, out, 0);
  assert.deepEqual(out, want);
  sha256d64(buf, 32, buf, 40);
  assert.deepEqual(buf.subarray(40, 72), want);
});
