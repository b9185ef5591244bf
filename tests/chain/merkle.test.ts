import assert from "node:assert/strict";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { sha256d } from "../../src/chain/hash.ts";
import { fromHex, fromHexReversed, toHexReversed } from "../../src/chain/hex.ts";
import { merkleBranch, merkleRoot, merkleRootMutated, rootFromBranch } from "../../src/chain/merkle.ts";
import { blockFixture, prng } from "./fixtures.ts";

const L0 = "9b977e4cc0b2eb44cb5ea2adb30bf6eae892c9a838111031cb49c97d8ad57309";
const L1 = "9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c";
const L2 = "770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30";
const H01 = "ee43317b1b79a9a6b101df711a26d12a88b1419f63db15161a9fdb587fabae63";
const H22 = "e7a2891bd8f96488681a596f619de4d88a22d3b08a8aee3b44bbdd913e3e3562";
const ROOT = "132994b613a584d0a435ce23196e391c064333f94b537d38b8cf8da2e614a67a";

function naiveRoot(hashes: Uint8Array[]): Uint8Array {
  let level = hashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const r = level[i + 1] ?? level[i];
      const pair = new Uint8Array(64);
      pair.set(level[i]);
      pair.set(r, 32);
      next.push(sha256d(pair));
    }
    level = next;
  }
  return level[0];
}

Deno.test("protocol vector: 3-leaf root and the branches Electrum expects", () => {
  const leaves = [L0, L1, L2].map(fromHexReversed);
  assert.equal(toHexReversed(merkleRoot(leaves)), ROOT);
  assert.deepEqual(merkleBranch(leaves, 1).map(toHexReversed), [L0, H22]);
  assert.deepEqual(merkleBranch(leaves, 2).map(toHexReversed), [L2, H01]);
  assert.deepEqual(merkleBranch(leaves, 0).map(toHexReversed), [L1, H22]);
  for (let i = 0; i < 3; i++) {
    assert.equal(toHexReversed(rootFromBranch(leaves[i], merkleBranch(leaves, i), i)), ROOT);
  }
});

Deno.test("header checkpoint vector: block 5 proves against the cp_height 8 root", () => {
  const block5 = fromHexReversed("000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc");
  const branch = [
    "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
    "96cbbc84783888e4cc971ae8acf86dd3c1a419370336bb3c634c97695a8c5ac9",
    "965ac94082cebbcffe458075651e9cc33ce703ab0115c72d9e8b1a9906b2b636",
    "89e5daa6950b895190716dd26054432b564ccdc2868188ba1da76de8e1dc7591",
  ].map(fromHexReversed);
  assert.equal(
    toHexReversed(rootFromBranch(block5, branch, 5)),
    "e347b1c43fd9b5415bf0d92708db8284b78daf4d0e24f9c3405f45feb85e25db",
  );
  assert.notEqual(
    toHexReversed(rootFromBranch(block5, branch, 4)),
    "e347b1c43fd9b5415bf0d92708db8284b78daf4d0e24f9c3405f45feb85e25db",
  );
});

Deno.test("empty and single-leaf trees", () => {
  assert.deepEqual(merkleRoot([]), new Uint8Array(32));
  const leaf = fromHex(L0);
  assert.deepEqual(merkleRoot([leaf]), leaf);
  assert.deepEqual(merkleBranch([leaf], 0), []);
  assert.deepEqual(rootFromBranch(leaf, [], 0), leaf);
});

Deno.test("real block: the txid tree gives the header's merkle root and every branch verifies", () => {
  const f = blockFixture("bitcoin_mainnet_951658");
  const leaves = f.tx.map(fromHexReversed);
  const root = merkleRoot(leaves);
  assert.equal(toHexReversed(root), f.merkleroot);
  for (const i of [0, 1, 2, 100, 255, 256, 372, 373]) {
    assert.deepEqual(rootFromBranch(leaves[i], merkleBranch(leaves, i), i), root);
  }
});

Deno.test("random trees of 1..70 leaves agree with a naive implementation at every index", () => {
  const rand = prng(7);
  for (let n = 1; n <= 70; n++) {
    const leaves = Array.from({ length: n }, () => Uint8Array.from({ length: 32 }, () => (rand() * 256) | 0));
    const root = merkleRoot(leaves);
    assert.deepEqual(root, naiveRoot(leaves));
    for (let i = 0; i < n; i++) {
      const branch = merkleBranch(leaves, i);
      assert.equal(branch.length, Math.ceil(Math.log2(n)));
      assert.deepEqual(rootFromBranch(leaves[i], branch, i), root);
    }
  }
});

Deno.test("duplicate pairs are flagged as mutated (CVE-2012-2459) while giving the same root", () => {
  const leaves = [L0, L1, L2].map(fromHexReversed);
  const dup = [...leaves, leaves[2]];
  const a = merkleRootMutated(leaves), b = merkleRootMutated(dup);
  assert.deepEqual(a.root, b.root);
  assert.equal(a.mutated, false);
  assert.equal(b.mutated, true);
});

Deno.test("bad inputs throw ChainFormatError", () => {
  const leaves = [L0, L1].map(fromHex);
  assert.throws(
    () => merkleBranch(leaves, 2),
    (e) => e instanceof ChainFormatError && e.code === "bad-index",
  );
  assert.throws(() => merkleBranch(leaves, -1), ChainFormatError);
  assert.throws(() => merkleRoot([new Uint8Array(31)]), ChainFormatError);
  assert.throws(() => rootFromBranch(leaves[0], [new Uint8Array(3)], 0), ChainFormatError);
  // The input hashes are never modified.
  assert.equal(toHexReversed(leaves[0]), toHexReversed(fromHex(L0)));
});
