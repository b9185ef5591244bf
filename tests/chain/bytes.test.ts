import assert from "node:assert/strict";
import { ByteReader, ByteWriter, compactSizeLength, MAX_COMPACT_SIZE } from "../../src/chain/bytes.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { fromHex, toHex } from "../../src/chain/hex.ts";

// Vectors from bitcoind-rpc.md §5 (Core's serialize.h behaviour).
const COMPACT_VECTORS: [number, string][] = [
  [0, "00"],
  [252, "fc"],
  [253, "fdfd00"],
  [65535, "fdffff"],
  [65536, "fe00000100"],
  [4294967295, "feffffffff"],
  [4294967296, "ff0000000001000000"],
];

Deno.test("compactSize encodes Core's vectors and their lengths", () => {
  for (const [n, hex] of COMPACT_VECTORS) {
    assert.equal(toHex(new ByteWriter().compactSize(n).finish()), hex, `encode ${n}`);
    assert.equal(compactSizeLength(n), hex.length / 2);
  }
});

Deno.test("compactSize decodes Core's vectors when the bound allows them", () => {
  for (const [n, hex] of COMPACT_VECTORS) {
    const r = new ByteReader(fromHex(hex));
    assert.equal(r.compactSize(Number.MAX_SAFE_INTEGER), n);
    assert.equal(r.remaining, 0);
  }
});

Deno.test("compactSize rejects non-canonical encodings with the offset", () => {
  for (const hex of ["fdfc00", "feffff0000"].concat(["ffffffffff00000000"])) {
    const data = fromHex("aa" + hex);
    const r = new ByteReader(data, 1);
    assert.throws(() => r.compactSize(Number.MAX_SAFE_INTEGER), (e: unknown) => {
      assert.ok(e instanceof ChainFormatError);
      assert.equal(e.code, "non-canonical-varint");
      assert.equal(e.offset, 1);
      return true;
    });
  }
});

Deno.test("compactSize rejects values above Core's MAX_SIZE by default", () => {
  const data = new ByteWriter().compactSize(MAX_COMPACT_SIZE + 1).finish();
  assert.throws(() => new ByteReader(data).compactSize(), { code: "varint-too-large" });
  assert.equal(
    new ByteReader(new ByteWriter().compactSize(MAX_COMPACT_SIZE).finish()).compactSize(),
    MAX_COMPACT_SIZE,
  );
});

Deno.test("reads past the end throw a truncated error, never read garbage", () => {
  const r = new ByteReader(fromHex("0102"));
  assert.throws(() => r.u32(), { code: "truncated" });
  assert.equal(r.pos, 0, "a failed read does not move the cursor");
  assert.equal(r.u16(), 0x0201);
  assert.throws(() => r.u8(), { code: "truncated" });
  assert.throws(() => new ByteReader(fromHex("05aabb")).varBytes(), { code: "truncated" });
});

Deno.test("integers round-trip little-endian through writer and reader", () => {
  const w = new ByteWriter(1);
  w.u8(0xab).u16(0xbeef).u32(0xdeadbeef).i32(-2).i64(2_100_000_000_000_000).i64(-5).varBytes(
    fromHex("c0ffee"),
  );
  assert.equal(
    toHex(w.written()),
    "abefbeefbeadde" + "feffffff" + "0040075af0750700" + "fbffffffffffffff" + "03c0ffee",
  );
  const r = new ByteReader(w.finish());
  assert.equal(r.u8(), 0xab);
  assert.equal(r.u16(), 0xbeef);
  assert.equal(r.u32(), 0xdeadbeef);
  assert.equal(r.i32(), -2);
  assert.equal(r.i64(), 2_100_000_000_000_000);
  assert.equal(r.i64(), -5);
  assert.equal(toHex(r.varBytes()), "c0ffee");
  assert.equal(r.remaining, 0);
});

Deno.test("64-bit values beyond 2^53 are refused rather than rounded", () => {
  assert.throws(() => new ByteReader(fromHex("ffffffffffffffff")).u64(), { code: "u64-too-large" });
  assert.throws(() => new ByteReader(fromHex("ffffffffffffff7f")).i64(), { code: "i64-too-large" });
  assert.throws(() => new ByteWriter().i64(2 ** 60), RangeError);
});

Deno.test("bytes() returns a view into the source, not a copy", () => {
  const data = fromHex("00112233");
  const view = new ByteReader(data, 1).bytes(2);
  data[1] = 0x99;
  assert.equal(view[0], 0x99);
});
