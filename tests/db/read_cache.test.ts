import assert from "node:assert/strict";
import { ReadCache } from "../../src/db/read_cache.ts";

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
