import assert from "node:assert/strict";
import { SortedBatch } from "../../src/db/sorted_batch.ts";

type Op = { type: "put" | "del"; key: string; value?: string };

/** A BatchSink that records what it is given, as hex, copying the views it receives. */
function recorder(): {
  ops: Op[];
  sink: { put(k: Uint8Array, v: Uint8Array): void; del(k: Uint8Array): void };
} {
  const ops: Op[] = [];
  return {
    ops,
    sink: {
      put: (k, v) => ops.push({ type: "put", key: hex(k), value: hex(v) }),
      del: (k) => ops.push({ type: "del", key: hex(k) }),
    },
  };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Deterministic xorshift bytes. */
function rng(seed: number): (n: number) => Uint8Array {
  let x = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[i] = x & 0xff;
    }
    return out;
  };
}

// LevelDB's bytewise order: memcmp, then shorter first. Hex strings of whole bytes compare the same way.
function byKey(a: Op, b: Op): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

Deno.test("a section replays every operation in LevelDB's key order, equal keys in insertion order", () => {
  const bytes = rng(7);
  const { ops, sink } = recorder();
  const batch = new SortedBatch(sink, 16, 2); // tiny initial sizes: growth is exercised
  const expected: Op[] = [];
  const prefixes = [0x68, 0x75, 0x48, 0x55];
  for (let i = 0; i < 5000; i++) {
    const p = prefixes[i % prefixes.length];
    // Some keys share long prefixes (undo keys by height; keys alike in their first 6 bytes and inserted in
    // descending order), some are one byte, most are hash-like.
    const body = i % 7 === 0
      ? Uint8Array.of(0, 0, (i >> 8) & 0xff, i & 0xff)
      : i % 13 === 0
      ? Uint8Array.of(1, 1, 1, 1, 1, 255 - (i % 256), i % 3)
      : bytes(1 + (i % 19));
    const key = i % 501 === 0 ? Uint8Array.of(p) : Uint8Array.of(p, ...body);
    if (i % 5 === 0) {
      batch.del(key);
      expected.push({ type: "del", key: hex(key) });
    } else {
      const value = bytes(i % 11);
      batch.put(key, value);
      expected.push({ type: "put", key: hex(key), value: hex(value) });
    }
  }
  // The same key put, deleted and put again must reach LevelDB in that order, or the wrong one wins.
  const dup = Uint8Array.of(0x75, 1, 2, 3);
  for (const [type, value] of [["put", "aa"], ["del", undefined], ["put", "bb"]] as const) {
    if (type === "put") batch.put(dup, Uint8Array.of(parseInt(value, 16)));
    else batch.del(dup);
    expected.push(type === "put" ? { type, key: hex(dup), value } : { type, key: hex(dup) });
  }
  assert.equal(batch.length, expected.length);
  batch.section();
  assert.equal(batch.length, 0);
  assert.equal(batch.written, expected.length);
  // Array.prototype.sort is stable: equal keys keep insertion order in the expectation too.
  assert.deepEqual(ops, expected.slice().sort(byKey));
  const dups = ops.filter((o) => o.key === hex(dup));
  assert.deepEqual(dups.map((o) => o.type + (o.value ?? "")), ["putaa", "del", "putbb"]);
});

Deno.test("sections keep their order: everything of an earlier section precedes a later one", () => {
  const { ops, sink } = recorder();
  const batch = new SortedBatch(sink);
  batch.put(Uint8Array.of(9), Uint8Array.of(1));
  batch.put(Uint8Array.of(5), Uint8Array.of(2));
  batch.section();
  batch.put(Uint8Array.of(1), Uint8Array.of(3));
  batch.del(Uint8Array.of(9));
  batch.section();
  assert.deepEqual(ops, [
    { type: "put", key: "05", value: "02" },
    { type: "put", key: "09", value: "01" },
    { type: "put", key: "01", value: "03" },
    { type: "del", key: "09" },
  ]);
  assert.equal(batch.writtenBytes, 2 + 2 + 2 + 1);
});

Deno.test("reservePut lets the caller write key and value into the slab, across slab growth", () => {
  const { ops, sink } = recorder();
  const batch = new SortedBatch(sink, 8, 1);
  for (let i = 40; i > 0; i--) {
    const at = batch.reservePut(3, 2);
    const b = batch.bytes; // re-read after every reservation: the slab may have been replaced
    b.set([0x48, i, 0], at);
    b.set([i, i], at + 3);
  }
  batch.section();
  assert.equal(ops.length, 40);
  ops.forEach((op, j) => {
    const i = j + 1;
    assert.deepEqual(op, {
      type: "put",
      key: hex(Uint8Array.of(0x48, i, 0)),
      value: hex(Uint8Array.of(i, i)),
    });
  });
});

Deno.test("an empty section writes nothing and a key too long for LevelDB's batch is refused", () => {
  const { ops, sink } = recorder();
  const batch = new SortedBatch(sink);
  batch.section();
  assert.equal(ops.length, 0);
  assert.throws(() => batch.put(new Uint8Array(70_000), new Uint8Array(1)), RangeError);
});
