import assert from "node:assert/strict";
import { sha256d } from "../../src/chain/hash.ts";
import { fromHex, fromHexReversed, toHexReversed } from "../../src/chain/hex.ts";
import { merkleBranch, merkleRoot, rootFromBranch } from "../../src/chain/merkle.ts";
import { HeaderProofs, merkleProof, treeDepth, TxMerkleCache } from "../../src/server/proofs.ts";

// Mainnet headers 0..10; the test checks their hashes link up before using them.
const MAINNET_HEADERS = [
  "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
  "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
  "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
  "01000000bddd99ccfda39da1b108ce1a5d70038d0a967bacb68b6b63065f626a0000000044f672226090d85db9a9f2fbfe5f0f9609b387af7be5b7fbb7a1767c831c9e995dbe6649ffff001d05e0ed6d",
  "010000004944469562ae1c2c74d9a535e00b6f3e40ffbad4f2fda3895501b582000000007a06ea98cd40ba2e3288262b28638cec5337c1456aaf5eedc8e9e5a20f062bdf8cc16649ffff001d2bfee0a9",
  "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477",
  "01000000fc33f596f822a0a1951ffdbf2a897b095636ad871707bf5d3162729b00000000379dfb96a5ea8c81700ea4ac6b97ae9a9312b2d4301a29580e924ee6761a2520adc46649ffff001d189c4c97",
  "010000008d778fdc15a2d3fb76b7122a3b5582bea4f21f5a0c693537e7a03130000000003f674005103b42f984169c7d008370967e91920a6a5d64fd51282f75bc73a68af1c66649ffff001d39a59c86",
  "010000004494c8cf4154bdcc0720cd4a59d9c9b285e4b146d45f061d2b6c967100000000e3855ed886605b6d4a99d5fa2ef2e9b0b164e63df3c4136bebf2d0dac0f1f7a667c86649ffff001d1c4b5666",
  "01000000c60ddef1b7618ca2348a46e868afc26e3efc68226c78aa47f8488c4000000000c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd37047fca6649ffff001d28404f53",
  "010000000508085c47cc849eb80ea905cc7800a3be674ffc57263cf210c59d8d00000000112ba175a1e04b14ba9e7ea5f76ab640affeef5ec98173ac9799a852fa39add320cd6649ffff001d1e2de565",
].map(fromHex);

/** A header source over an array of 80-byte headers (a fake Store). */
class ArrayHeaders {
  reads = 0;
  constructor(public list: Uint8Array[]) {}
  get state() {
    return { height: this.list.length - 1 };
  }
  headers(from: number, count: number): Uint8Array {
    this.reads++;
    const n = Math.max(0, Math.min(count, this.list.length - from));
    const out = new Uint8Array(n * 80);
    for (let i = 0; i < n; i++) out.set(this.list[from + i], i * 80);
    return out;
  }
}

/** Synthetic headers generated on demand: `count` of them, header i depends on i and a branch tag. */
class SyntheticHeaders {
  tagFrom = Infinity;
  constructor(public count: number) {}
  get state() {
    return { height: this.count - 1 };
  }
  header(i: number): Uint8Array {
    const h = new Uint8Array(80);
    new DataView(h.buffer).setUint32(0, i, true);
    h[4] = i >= this.tagFrom ? 0xaa : 0;
    return h;
  }
  headers(from: number, count: number): Uint8Array {
    const n = Math.max(0, Math.min(count, this.count - from));
    const out = new Uint8Array(n * 80);
    for (let i = 0; i < n; i++) out.set(this.header(from + i), i * 80);
    return out;
  }
}

function hex(list: Uint8Array[]): string[] {
  return list.map(toHexReversed);
}

Deno.test("proofs: protocol.md §4.4's three-transaction vector", () => {
  const L = [
    "9b977e4cc0b2eb44cb5ea2adb30bf6eae892c9a838111031cb49c97d8ad57309",
    "9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c",
    "770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30",
  ];
  const leaves = new Uint8Array(96);
  L.forEach((h, i) => leaves.set(fromHexReversed(h), i * 32));
  const h01 = "ee43317b1b79a9a6b101df711a26d12a88b1419f63db15161a9fdb587fabae63";
  const h22 = "e7a2891bd8f96488681a596f619de4d88a22d3b08a8aee3b44bbdd913e3e3562";
  const root = "132994b613a584d0a435ce23196e391c064333f94b537d38b8cf8da2e614a67a";
  const p1 = merkleProof(leaves, 1);
  assert.deepEqual(hex(p1.branch), [L[0], h22]);
  assert.equal(toHexReversed(p1.root), root);
  const p2 = merkleProof(leaves, 2);
  assert.deepEqual(hex(p2.branch), [L[2], h01]);
  assert.equal(toHexReversed(p2.root), root);
  const single = merkleProof(leaves.slice(0, 32), 0);
  assert.deepEqual(single.branch, []);
  assert.equal(toHexReversed(single.root), L[0]);
  assert.throws(() => merkleProof(leaves, 3), RangeError);
});

Deno.test("proofs: transaction branches agree with src/chain/merkle.ts and verify, for 1..40 leaves", () => {
  for (let n = 1; n <= 40; n++) {
    const list = Array.from({ length: n }, (_, i) => sha256d(new Uint8Array([i, n])));
    const flat = new Uint8Array(n * 32);
    list.forEach((h, i) => flat.set(h, i * 32));
    const root = merkleRoot(list);
    for (let i = 0; i < n; i++) {
      const p = merkleProof(flat, i);
      assert.deepEqual(p.root, root);
      assert.deepEqual(p.branch, merkleBranch(list, i), `n=${n} i=${i}`);
      assert.deepEqual(rootFromBranch(list[i], p.branch, i), root);
    }
  }
});

Deno.test("proofs: TxMerkleCache serves big blocks from a cached tree, bounded by bytes", () => {
  const n = 500;
  const flat = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) flat.set(sha256d(new Uint8Array([i & 255, i >> 8])), i * 32);
  const cache = new TxMerkleCache(5_000);
  const blockA = sha256d(new Uint8Array([1]));
  for (const i of [0, 1, 250, 498, 499]) {
    const p = cache.proof(blockA, flat, i);
    assert.deepEqual(p, merkleProof(flat, i));
  }
  assert.equal(cache.size, 1);
  // Another block's tree pushes the first one out once the byte budget is exceeded (each keeps ~2 KB of levels).
  for (let b = 2; b < 6; b++) cache.proof(sha256d(new Uint8Array([b])), flat, 3);
  assert.ok(cache.size < 5 && cache.size >= 1, `cache holds ${cache.size} trees`);
  assert.throws(() => cache.proof(blockA, flat, n), RangeError);
});

Deno.test("proofs: protocol.md §4.5 mainnet checkpoint vector (height 5, cp_height 8)", () => {
  for (let i = 1; i < MAINNET_HEADERS.length; i++) {
    assert.deepEqual(MAINNET_HEADERS[i].subarray(4, 36), sha256d(MAINNET_HEADERS[i - 1]), `link ${i}`);
  }
  assert.equal(
    toHexReversed(sha256d(MAINNET_HEADERS[5])),
    "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc",
  );
  const proofs = new HeaderProofs(new ArrayHeaders(MAINNET_HEADERS));
  const p = proofs.proof(5, 8);
  assert.deepEqual(hex(p.branch), [
    "000000004ebadb55ee9096c9a2f8880e09da59c0d68b1c228da88e48844a1485",
    "96cbbc84783888e4cc971ae8acf86dd3c1a419370336bb3c634c97695a8c5ac9",
    "965ac94082cebbcffe458075651e9cc33ce703ab0115c72d9e8b1a9906b2b636",
    "89e5daa6950b895190716dd26054432b564ccdc2868188ba1da76de8e1dc7591",
  ]);
  assert.equal(toHexReversed(p.root), "e347b1c43fd9b5415bf0d92708db8284b78daf4d0e24f9c3405f45feb85e25db");
  assert.deepEqual(rootFromBranch(sha256d(MAINNET_HEADERS[5]), p.branch, 5), p.root);
});

Deno.test("proofs: every (height, cp_height) over 11 headers matches a naive tree, with a tiny cache level", () => {
  const hashes = MAINNET_HEADERS.map((h) => sha256d(h));
  // Level 1 caching exercises cached complete nodes and right-edge recomputation even on 11 leaves.
  for (const level of [1, 2, 6]) {
    const proofs = new HeaderProofs(new ArrayHeaders(MAINNET_HEADERS), level);
    for (let cp = 0; cp < hashes.length; cp++) {
      const leaves = hashes.slice(0, cp + 1);
      const root = merkleRoot(leaves);
      for (let h = 0; h <= cp; h++) {
        const p = proofs.proof(h, cp);
        assert.deepEqual(p.root, root, `level ${level} cp ${cp} h ${h}`);
        assert.deepEqual(p.branch, merkleBranch(leaves, h), `level ${level} cp ${cp} h ${h}`);
        assert.equal(p.branch.length, treeDepth(cp + 1));
      }
    }
  }
  const proofs = new HeaderProofs(new ArrayHeaders(MAINNET_HEADERS));
  assert.throws(() => proofs.proof(6, 5), RangeError);
  assert.throws(() => proofs.proof(1, 11), RangeError);
});

Deno.test("proofs: large heights hash each header once, in slices, then answer from the cache", async () => {
  const count = 40_000; // not a power of two: the right edge is ragged at several levels
  const source = new SyntheticHeaders(count);
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < count; i++) leaves.push(sha256d(source.header(i)));
  const root = merkleRoot(leaves);
  const proofs = new HeaderProofs(source);
  const cp = count - 1;
  // prepare() gives the event loop turns: a timer set after it started fires before it ends.
  let timerRan = false;
  const filling = proofs.prepare(cp).then(() => timerRan);
  setTimeout(() => timerRan = true, 0);
  assert.equal(await filling, true, "prepare yielded to the event loop");
  assert.ok(proofs.headersRead < count * 1.1, `prepare read ${proofs.headersRead} headers`);
  // Proofs for any height and checkpoint now read only a few low subtrees' headers.
  for (
    const [h, c] of [[12_345, cp], [39_998, cp], [0, cp], [30_001, 35_000], [32_767, 32_768], [31, 39_000]]
  ) {
    const before = proofs.headersRead;
    const p = proofs.proof(h, c);
    const read = proofs.headersRead - before;
    assert.ok(read <= 4 * 64 + 8, `proof(${h}, ${c}) read ${read} headers`);
    assert.equal(p.branch.length, treeDepth(c + 1));
    assert.deepEqual(rootFromBranch(leaves[h], p.branch, h), c === cp ? root : p.root);
  }
  assert.deepEqual(proofs.proof(32_767, 32_768).root, merkleRoot(leaves.slice(0, 32_769)));
  // Without prepare(), proof() computes what it needs synchronously and gives the same answer.
  const cold = new HeaderProofs(source);
  assert.deepEqual(cold.proof(12_345, cp), proofs.proof(12_345, cp));
});

Deno.test("proofs: a reorg while prepare() yields leaves no stale node behind", async () => {
  const count = 20_000;
  const source = new SyntheticHeaders(count);
  const proofs = new HeaderProofs(source);
  const filling = proofs.prepare(count - 1, 1024);
  setTimeout(() => source.tagFrom = 500, 0); // at the first pause, below nodes already cached
  await filling;
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < count; i++) leaves.push(sha256d(source.header(i)));
  const root = merkleRoot(leaves);
  for (const h of [0, 499, 500, 1000, 10_000, count - 1]) {
    const p = proofs.proof(h, count - 1);
    assert.deepEqual(p.root, root, `proof for ${h}`);
    assert.deepEqual(rootFromBranch(leaves[h], p.branch, h), root);
  }
});

Deno.test("proofs: a reorg below cached nodes is noticed and only what it changed is recomputed", () => {
  const count = 5000;
  const source = new SyntheticHeaders(count);
  const proofs = new HeaderProofs(source);
  proofs.proof(10, count - 1);
  const cachedBefore = proofs.cachedNodes;
  assert.ok(cachedBefore > 0);
  // Replace headers from 4900 up (a 100-block reorg); same heights, new hashes.
  source.tagFrom = 4900;
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < count; i++) leaves.push(sha256d(source.header(i)));
  for (const h of [4950, 10, 4899]) {
    const p = proofs.proof(h, count - 1);
    assert.deepEqual(p.root, merkleRoot(leaves), `after reorg, proof for ${h}`);
    assert.deepEqual(p.branch, merkleBranch(leaves, h));
  }
  assert.ok(proofs.cachedNodes > cachedBefore / 2, "nodes below the fork were kept");
  // A shorter chain (a reorg that lost blocks) is handled too.
  source.count = 4000;
  source.tagFrom = 3000;
  const shorter: Uint8Array[] = [];
  for (let i = 0; i < 4000; i++) shorter.push(sha256d(source.header(i)));
  assert.deepEqual(proofs.proof(3500, 3999).root, merkleRoot(shorter));
});
