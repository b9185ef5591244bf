import assert from "node:assert/strict";
import { compareBytes, ScanPool, type SeekableIterator } from "../../src/db/scan_pool.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A sorted key space whose iterators hand out at most `cap` entries per nextv, like a byte budget does. */
function fakeDb(keys: string[], cap: number) {
  const sorted = [...keys].sort();
  const log = { opened: 0, closed: 0 };
  const open = (): SeekableIterator => {
    log.opened++;
    const snapshot = [...sorted];
    let at = 0;
    return {
      seek(target) {
        at = snapshot.findIndex((k) => compareBytes(enc(k), target) >= 0);
        if (at < 0) at = snapshot.length;
      },
      nextv(size) {
        const n = Math.min(size, cap);
        const out = snapshot.slice(at, at + n).map((k) =>
          [enc(k), enc(`v:${k}`)] as [Uint8Array, Uint8Array]
        );
        at += out.length;
        return Promise.resolve(out);
      },
      close() {
        log.closed++;
        return Promise.resolve();
      },
    };
  };
  return { open, log, sorted };
}

async function collect(pool: ScanPool, state: object, gte: string, lt: string): Promise<string[]> {
  const got: string[] = [];
  await pool.scan(state, enc(gte), enc(lt), (k, v) => {
    assert.equal(dec(v), `v:${dec(k)}`);
    got.push(dec(k));
  });
  return got;
}

Deno.test("scan pool: a range is read whole even when every batch comes back short", async () => {
  const keys = Array.from({ length: 300 }, (_, i) => `b${String(i).padStart(3, "0")}`).concat(["a1", "c1"]);
  for (const cap of [1, 3, 64]) {
    const db = fakeDb(keys, cap);
    const pool = new ScanPool(db.open);
    const state = {};
    assert.deepEqual(await collect(pool, state, "b", "c"), db.sorted.filter((k) => k.startsWith("b")));
    assert.deepEqual(await collect(pool, state, "a", "b"), ["a1"]);
    assert.deepEqual(await collect(pool, state, "c", "d"), ["c1"]);
    assert.deepEqual(await collect(pool, state, "d", "e"), []);
    // One iterator served every scan under the same state.
    assert.equal(db.log.opened, 1);
  }
});

Deno.test("scan pool: fn can stop a scan; a new state gets fresh iterators and the stale ones are closed", async () => {
  const db = fakeDb(["k1", "k2", "k3", "k4"], 64);
  const pool = new ScanPool(db.open, 2);
  const s1 = {};
  const seen: string[] = [];
  await pool.scan(s1, enc("k"), enc("l"), (k) => {
    seen.push(dec(k));
    return seen.length < 2;
  });
  assert.deepEqual(seen, ["k1", "k2"]);
  // Concurrent scans each hold their own iterator; at most `keep` (2) stay pooled.
  await Promise.all([1, 2, 3].map(() => collect(pool, s1, "k", "l")));
  assert.equal(db.log.opened, 3);
  assert.equal(db.log.closed, 1);
  const s2 = {};
  assert.deepEqual(await collect(pool, s2, "k3", "l"), ["k3", "k4"]);
  assert.equal(db.log.opened, 4, "the state changed: a new iterator");
  assert.equal(db.log.closed, 3, "the pooled iterators of the old state are closed");
  await pool.close();
  assert.equal(db.log.closed, 4);
});

Deno.test("scan pool: an iterator still scanning when the state changes is closed, not pooled", async () => {
  const log = { opened: 0, closed: 0 };
  // While `hold` is set, a scan's read waits for it: that scan keeps its iterator busy.
  let hold: Promise<void> | undefined;
  const pool = new ScanPool(() => {
    log.opened++;
    return {
      seek() {},
      nextv: async () => {
        if (hold) await hold;
        return [];
      },
      close() {
        log.closed++;
        return Promise.resolve();
      },
    };
  }, 8);
  const s1 = {}, s2 = {};
  const scan = (state: object) => pool.scan(state, enc("a"), enc("b"), () => {});
  await Promise.all([scan(s1), scan(s1)]);
  assert.deepEqual(log, { opened: 2, closed: 0 }, "both are pooled while s1 is the newest state");
  const held = Promise.withResolvers<void>();
  hold = held.promise;
  const slow = scan(s1);
  hold = undefined;
  // s2 arrives while an s1 scan is running: the idle s1 iterator goes at once, the running one on release.
  await scan(s2);
  assert.deepEqual(log, { opened: 3, closed: 1 });
  held.resolve();
  await slow;
  assert.deepEqual(log, { opened: 3, closed: 2 }, "the s1 iterator that was running is closed when released");
  await scan(s2);
  assert.equal(log.opened, 3, "the s2 iterator is reused");
  await pool.close();
  assert.equal(log.closed, 3);
});

Deno.test("scan pool: an iterator that failed is not reused", async () => {
  let opened = 0;
  let fail = true;
  const pool = new ScanPool(() => {
    opened++;
    return {
      seek() {},
      nextv: () => fail ? Promise.reject(new Error("io")) : Promise.resolve([]),
      close: () => Promise.resolve(),
    };
  });
  const s = {};
  await assert.rejects(pool.scan(s, enc("a"), enc("b"), () => {}), /io/);
  fail = false;
  await pool.scan(s, enc("a"), enc("b"), () => {});
  assert.equal(opened, 2);
});

Deno.test("compareBytes orders like LevelDB's bytewise comparator", () => {
  assert.ok(compareBytes(enc("a"), enc("b")) < 0);
  assert.ok(compareBytes(enc("ab"), enc("a")) > 0);
  assert.equal(compareBytes(enc("ab"), enc("ab")), 0);
  assert.ok(compareBytes(Uint8Array.of(0xff), Uint8Array.of(0x00, 0x01)) > 0);
});
