import assert from "node:assert/strict";
import { HashXCache, ReadCache } from "../../src/db/read_cache.ts";

Deno.test("the read cache answers only under the state it was filled in, and evicts least recently used", () => {
  const c = new ReadCache<string>(80);
  const s1 = {}, s2 = {};
  for (let i = 0; i < 8; i++) c.set(s1, `k${i}`, `v${i}`, 10);
  assert.equal(c.bytes, 80);
  // Touching k0 makes k1 the least recently used: a ninth entry evicts k1 and nothing else.
  assert.equal(c.get(s1, "k0"), "v0");
  c.set(s1, "k8", "v8", 10);
  assert.equal(c.get(s1, "k1"), undefined);
  for (const i of [0, 2, 3, 4, 5, 6, 7, 8]) assert.equal(c.get(s1, `k${i}`), `v${i}`);
  assert.equal(c.bytes, 80);
  // A new state empties it.
  assert.equal(c.get(s2, "k0"), undefined);
  assert.equal(c.size, 0);
  assert.equal(c.bytes, 0);
  // An entry made under the old state is not taken up into the new one.
  c.set(s2, "a", "A2", 10);
  assert.equal(c.get(s1, "a"), undefined);
  assert.equal(c.get(s2, "a"), undefined);
});

Deno.test("the read cache refuses a value bigger than an eighth of it and replaces a key's old value", () => {
  const c = new ReadCache<number>(800);
  c.set({}, "x", 1, 1); // state A
  const s = {};
  c.set(s, "big", 1, 101);
  assert.equal(c.get(s, "big"), undefined);
  c.set(s, "k", 1, 50);
  c.set(s, "k", 2, 60);
  assert.equal(c.get(s, "k"), 2);
  assert.equal(c.bytes, 60);
  assert.equal(c.size, 1);
});

Deno.test("the read cache evicts exactly enough when every entry was used lately", () => {
  const c = new ReadCache<number>(80);
  const s = {};
  for (let i = 0; i < 8; i++) c.set(s, `k${i}`, i, 10);
  for (let i = 0; i < 8; i++) assert.equal(c.get(s, `k${i}`), i);
  c.set(s, "new", 8, 10);
  assert.equal(c.size, 8);
  assert.equal(c.bytes, 80);
  assert.equal(c.get(s, "new"), 8);
  // All had a second chance, so the oldest went: k0.
  assert.equal(c.get(s, "k0"), undefined);
});

// A deterministic xorshift, so that a failing sequence can be replayed.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

Deno.test("HashXCache agrees with a Map under random sets, gets, evictions and state changes", () => {
  const rand = rng(12345);
  // Few distinct first bytes, so that many keys share a table slot and probing and deletion get exercised.
  const keys: Uint8Array[] = [];
  for (let i = 0; i < 300; i++) {
    const k = new Uint8Array(11);
    k[0] = i % 3;
    for (let b = 4; b < 11; b++) k[b] = Math.floor(rand() * 256);
    keys.push(k);
  }
  const cache = new HashXCache<number>(2000, 64);
  let state = {};
  const model = new Map<number, number>();
  for (let step = 0; step < 20_000; step++) {
    const i = Math.floor(rand() * keys.length);
    const r = rand();
    if (r < 0.45) {
      const v = step;
      const bytes = 1 + Math.floor(rand() * 60);
      cache.set(state, keys[i], v, bytes);
      model.set(i, v);
      assert.equal(cache.get(state, keys[i]), v, `set then get, step ${step}`);
    } else if (r < 0.999) {
      const got = cache.get(state, keys[i]);
      // Evictions may drop anything, but whatever is there is the latest value.
      if (got !== undefined) assert.equal(got, model.get(i), `stale value, step ${step}`);
    } else {
      state = {};
      model.clear();
      assert.equal(cache.get(state, keys[0]), undefined);
    }
    assert.ok(cache.size <= 64, `size ${cache.size}`);
    assert.ok(cache.bytes <= 2000, `bytes ${cache.bytes}`);
  }
  // Every live entry is reachable: as many keys answer as the cache holds (a broken probe chain would lose some).
  let reachable = 0;
  for (const k of keys) if (cache.get(state, k) !== undefined) reachable++;
  assert.equal(reachable, cache.size);
  // Nothing from a previous state survives.
  const fresh = {};
  for (const k of keys) assert.equal(cache.get(fresh, k), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("HashXCache keeps recently used entries, refuses oversized values and keys on the first 11 bytes", () => {
  const cache = new HashXCache<string>(800, 4);
  const s = {};
  const key = (n: number) => Uint8Array.of(n, 0, 0, 0, 0, 0, 0, 0, 0, 0, n, 99, 98);
  for (let i = 0; i < 4; i++) cache.set(s, key(i), `v${i}`, 10);
  assert.equal(cache.get(s, key(0)), "v0");
  cache.set(s, key(4), "v4", 10);
  // Entry 0 was used, so the oldest unused one (1) went.
  assert.equal(cache.get(s, key(1)), undefined);
  assert.equal(cache.get(s, key(0)), "v0");
  // Bytes past the 11th do not matter.
  assert.equal(cache.get(s, key(4).subarray(0, 11)), "v4");
  cache.set(s, key(7), "big", 101);
  assert.equal(cache.get(s, key(7)), undefined);
  assert.equal(cache.size, 4);
});

Deno.test("HashXCache finds every key after many replacements when nothing needs evicting", () => {
  const rand = rng(777);
  const keys: Uint8Array[] = [];
  for (let i = 0; i < 500; i++) {
    const k = new Uint8Array(11);
    k[0] = i % 5;
    k[1] = i % 2;
    for (let b = 4; b < 11; b++) k[b] = Math.floor(rand() * 256);
    keys.push(k);
  }
  const cache = new HashXCache<number>(1e9, 1024);
  const s = {};
  const model = new Map<number, number>();
  for (let step = 0; step < 10_000; step++) {
    const i = Math.floor(rand() * keys.length);
    cache.set(s, keys[i], step, 1);
    model.set(i, step);
  }
  assert.equal(cache.size, model.size);
  for (const [i, v] of model) assert.equal(cache.get(s, keys[i]), v);
});

Deno.test("carry moves entries to the next state, dropping exactly the touched hashXs; a stale cache carries nothing", () => {
  const c = new HashXCache<string>(1 << 20, 64);
  const key = (b: number) => new Uint8Array(11).fill(b);
  const s1 = {}, s2 = {}, s3 = {};
  for (let b = 1; b <= 5; b++) c.set(s1, key(b), `v${b}`, 10);
  const touched = new Uint8Array(22);
  touched.set(key(2), 0);
  touched.set(key(9), 11); // not cached: nothing to drop
  c.carry(s1, s2, touched);
  assert.equal(c.size, 4);
  assert.equal(c.get(s2, key(2)), undefined);
  for (const b of [1, 3, 4, 5]) assert.equal(c.get(s2, key(b)), `v${b}`);
  // Not from the state the cache holds: no carry, and the next use under s3 empties it.
  c.carry(s1, s3, new Uint8Array(0));
  assert.equal(c.get(s3, key(1)), undefined);
  assert.equal(c.size, 0);
  // Without a touched list nothing is known to be unchanged.
  c.set(s3, key(1), "w1", 10);
  const s4 = {};
  c.carry(s3, s4, undefined);
  assert.equal(c.get(s4, key(1)), undefined);

  const r = new ReadCache<string>(100);
  r.set(s1, "a", "A", 10);
  r.carry(s1, s2);
  assert.equal(r.get(s2, "a"), "A");
  r.carry(s1, s3);
  assert.equal(r.get(s3, "a"), undefined);
});
