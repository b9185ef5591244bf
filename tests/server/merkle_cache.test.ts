import assert from "node:assert/strict";
import { sha256d, sha256d64 } from "../../src/chain/hash.ts";
import { merkleBranch, merkleRoot, rootFromBranch } from "../../src/chain/merkle.ts";
import { merkleProof, TxMerkleCache } from "../../src/server/proofs.ts";

Deno.test("sha256d64 equals sha256d on 64-byte inputs, at any offset, also in place", () => {
  const data = new Uint8Array(64 * 40 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 255;
  for (let off = 0; off + 64 <= data.length; off += 37) {
    const want = sha256d(data.slice(off, off + 64));
    const out = new Uint8Array(40);
    sha256d64(data, off, out, 5);
    assert.deepEqual(out.subarray(5, 37), want);
    const copy = data.slice();
    sha256d64(copy, off, copy, off + 16);
    assert.deepEqual(copy.subarray(off + 16, off + 48), want);
  }
  // A known vector: the merkle root of mainnet block 170's two transactions.
  const left = Uint8Array.fromHex("b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082")
    .reverse();
  const right = Uint8Array.fromHex("f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16")
    .reverse();
  const pair = new Uint8Array(64);
  pair.set(left, 0);
  pair.set(right, 32);
  const root = new Uint8Array(32);
  sha256d64(pair, 0, root, 0);
  assert.equal(root.toReversed().toHex(), "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff");
});

Deno.test("TxMerkleCache: proofs from cached upper levels equal a full recomputation for every shape", () => {
  const cache = new TxMerkleCache();
  for (const n of [1, 2, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 255, 257, 1000]) {
    const list: Uint8Array[] = [];
    for (let i = 0; i < n; i++) list.push(sha256d(Uint8Array.of(n & 255, n >> 8, i & 255, i >> 8)));
    const flat = new Uint8Array(n * 32);
    list.forEach((h, i) => flat.set(h, i * 32));
    const block = sha256d(Uint8Array.of(9, n & 255, n >> 8));
    const root = merkleRoot(list);
    // Leaves near every subtree edge (all of them in small blocks), twice: the first proof of the block hashes
    // it all, the rest use the cached levels.
    const leaves = n <= 100
      ? [...Array(n).keys()]
      : [...Array(n).keys()].filter((i) => i % 16 < 2 || i % 16 > 13 || i > n - 20);
    for (let round = 0; round < 2; round++) {
      for (const i of leaves) {
        const p = cache.proof(block, flat, i);
        assert.deepEqual(p.root, root, `n=${n} i=${i}`);
        assert.deepEqual(p.branch, merkleBranch(list, i), `n=${n} i=${i}`);
        assert.deepEqual(rootFromBranch(list[i], p.branch, i), root);
        if (i % 7 === 0) assert.deepEqual(p, merkleProof(flat, i));
      }
    }
  }
});

Deno.test("TxMerkleCache.find: reads only the leaves around a transaction of a cached block", () => {
  const cache = new TxMerkleCache();
  const n = 300;
  const list: Uint8Array[] = [];
  for (let i = 0; i < n; i++) list.push(sha256d(Uint8Array.of(7, i & 255, i >> 8)));
  // Two txids sharing their first 4 bytes: the prefix index narrows, the full compare decides.
  list[200] = list[100].slice();
  list[200][31] ^= 1;
  const flat = new Uint8Array(n * 32);
  list.forEach((h, i) => flat.set(h, i * 32));
  const block = sha256d(Uint8Array.of(1, 2, 3));
  const root = merkleRoot(list);
  let allCalls = 0;
  const leafCounts: number[] = [];
  const leaves = (from: number, count: number) => {
    leafCounts.push(count);
    return flat.slice(from * 32, (from + count) * 32);
  };
  const all = () => {
    allCalls++;
    return flat.slice();
  };
  for (const i of [0, 100, 200, 7, 8, 299, 296, 150]) {
    const got = cache.find(block, list[i], n, leaves, all);
    assert.ok(got, `leaf ${i} found`);
    assert.equal(got.index, i);
    assert.deepEqual(got.proof.root, root);
    assert.deepEqual(got.proof.branch, merkleBranch(list, i));
  }
  assert.equal(allCalls, 1);
  assert.ok(leafCounts.every((c) => c <= 8), `leaf reads ${leafCounts}`);
  // Not in the block: neither a foreign txid nor one that only shares a prefix.
  const foreign = sha256d(Uint8Array.of(99));
  const lookalike = list[5].slice();
  lookalike[20] ^= 0x40;
  assert.equal(cache.find(block, foreign, n, leaves, all), undefined);
  assert.equal(cache.find(block, lookalike, n, leaves, all), undefined);
  // An uncached block reads everything once; a small one is never cached.
  const other = sha256d(Uint8Array.of(4));
  assert.equal(cache.find(other, foreign, n, leaves, all), undefined);
  assert.equal(allCalls, 2);
  const small = flat.slice(0, 5 * 32);
  const got = cache.find(sha256d(Uint8Array.of(5)), list[3], 5, leaves, () => small);
  assert.equal(got?.index, 3);
  assert.deepEqual(got?.proof.branch, merkleBranch(list.slice(0, 5), 3));
});
