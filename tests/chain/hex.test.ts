import assert from "node:assert/strict";
import {
  fromHex,
  fromHexReversed,
  isHex,
  reversedHashesHex,
  toHex,
  toHexReversed,
} from "../../src/chain/hex.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";

Deno.test("hex round-trips every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const hex = toHex(all);
  assert.equal(hex.length, 512);
  assert.equal(hex.slice(0, 6), "000102");
  assert.equal(hex.slice(-4), "feff");
  assert.deepEqual(fromHex(hex), all);
  assert.deepEqual(fromHex(hex.toUpperCase()), all);
});

Deno.test("reversed hex is the display order of hashes", () => {
  const internal = fromHex("6fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000");
  assert.equal(toHexReversed(internal), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
  assert.deepEqual(fromHexReversed(toHexReversed(internal)), internal);
});

Deno.test("reversed hex of any length, and of hashes in a row, leaves its input alone", () => {
  const bytes = Uint8Array.from({ length: 70 }, (_, i) => (i * 37 + 11) & 0xff);
  const copy = bytes.slice();
  for (const n of [0, 1, 31, 32, 33, 70]) {
    const part = bytes.subarray(0, n);
    assert.equal(toHexReversed(part), toHex(part.slice().reverse()));
  }
  // Two hashes converted one after the other (the 32-byte path reuses a buffer) stay distinct.
  const a = toHexReversed(bytes.subarray(0, 32));
  const b = toHexReversed(bytes.subarray(32, 64));
  assert.notEqual(a, b);
  assert.equal(a, toHex(bytes.slice(0, 32).reverse()));
  assert.equal(b, toHex(bytes.slice(32, 64).reverse()));
  // Each 32-byte record is reversed on its own; `count` may stop short of the buffer's end.
  assert.equal(reversedHashesHex(bytes, 2), a + b);
  assert.equal(reversedHashesHex(bytes, 0), "");
  assert.deepEqual(bytes, copy);
});

Deno.test("malformed hex is rejected with the position", () => {
  assert.throws(() => fromHex("abc"), { code: "bad-hex" });
  assert.throws(() => fromHex("zz"), (e: unknown) => e instanceof ChainFormatError && e.offset === 0);
  assert.throws(() => fromHex("00é0"), { code: "bad-hex" });
  assert.equal(isHex("00ff"), true);
  assert.equal(isHex("0g"), false);
  assert.equal(isHex("abc"), false);
  assert.equal(isHex(42), false);
  assert.equal(isHex(""), true);
});
