import assert from "node:assert/strict";
import { FlatFile } from "../../src/db/flat_file.ts";
import { DbError } from "../../src/db/errors.ts";

async function withFile(fn: (path: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-flat-" });
  try {
    await fn(`${dir}/records`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function record(size: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (seed * 31 + i) & 0xff);
}

Deno.test("a flat file reads back the records written at any position, in any order", () =>
  withFile(async (path) => {
    const f = FlatFile.open(path, 32);
    assert.equal(f.byteLength(), 0);
    for (let i = 0; i < 10; i++) f.writeAt(i * 32, record(32, i));
    assert.equal(f.byteLength(), 320);
    // Positional reads share no cursor: reading backwards, then writing in the middle, leaves the others intact.
    for (let i = 9; i >= 0; i--) assert.deepEqual(f.read(i, 1), record(32, i));
    f.writeAt(5 * 32, record(32, 99));
    const all = f.read(0, 10);
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(all.subarray(i * 32, i * 32 + 32), record(32, i === 5 ? 99 : i));
    }
    await f.sync();
    f.close();
    // The data is in the file itself, as another reader sees it.
    const bytes = await Deno.readFile(path);
    assert.equal(bytes.length, 320);
    assert.deepEqual(bytes.subarray(0, 32), record(32, 0));
  }));

Deno.test("a flat file reports a read past its end as a corrupt database, and truncation shortens it", () =>
  withFile((path) => {
    const f = FlatFile.open(path, 80);
    f.writeAt(0, record(160, 1));
    assert.throws(
      () => f.read(1, 2),
      (e) => e instanceof DbError && e.code === "corrupt" && /ends at 160/.test(e.message),
    );
    f.truncate(80);
    assert.equal(f.byteLength(), 80);
    assert.throws(() => f.read(1, 1), (e) => e instanceof DbError && e.code === "corrupt");
    assert.deepEqual(f.read(0, 1), record(160, 1).subarray(0, 80));
    f.close();
  }));

Deno.test("a closed flat file refuses reads instead of using a descriptor another file may now hold", () =>
  withFile((path) => {
    const f = FlatFile.open(path, 4);
    f.writeAt(0, record(8, 2));
    f.close();
    f.close();
    // Another file opened now is likely to get the same descriptor number.
    const other = FlatFile.open(`${path}-other`, 4);
    other.writeAt(0, record(8, 3));
    assert.throws(() => f.read(0, 1), (e) => e instanceof DbError && e.code === "closed");
    assert.throws(() => f.writeAt(0, record(4, 4)), (e) => e instanceof DbError && e.code === "closed");
    assert.throws(() => f.byteLength(), (e) => e instanceof DbError && e.code === "closed");
    assert.deepEqual(other.read(0, 2), record(8, 3));
    other.close();
  }));

Deno.test("opening a flat file keeps what is already in it", () =>
  withFile((path) => {
    Deno.writeFileSync(path, record(64, 7));
    const f = FlatFile.open(path, 16);
    assert.equal(f.byteLength(), 64);
    assert.deepEqual(f.read(2, 2), record(64, 7).subarray(32, 64));
    f.close();
  }));

Deno.test("a flat file reads and writes past 4 GiB, as mainnet's txids file needs (a sparse file here)", () =>
  withFile((path) => {
    const f = FlatFile.open(path, 32);
    // Record 1.25e9 starts at 40 GB: beyond both 2^31 and 2^32, where a 32-bit position would wrap.
    const index = 1_250_000_000;
    f.writeAt(index * 32, record(32, 5));
    assert.equal(f.byteLength(), (index + 1) * 32);
    assert.deepEqual(f.read(index, 1), record(32, 5));
    assert.deepEqual(f.read(2 ** 32 / 32, 1), new Uint8Array(32));
    f.truncate(5_000_000_064);
    assert.equal(f.byteLength(), 5_000_000_064);
    f.close();
  }));
