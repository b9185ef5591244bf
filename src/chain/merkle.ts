// Bitcoin's merkle tree: parent = sha256d(left ‖ right), the last node paired with itself on odd levels.
import { ChainFormatError } from "./errors.ts";
import { sha256d } from "./hash.ts";

function checkHashes(hashes: Uint8Array[]): void {
  for (let i = 0; i < hashes.length; i++) {
    if (hashes[i].length !== 32) {
      throw new ChainFormatError(
        "bad-hash-length",
        `merkle leaf ${i} is ${hashes[i].length} bytes, not 32`,
        i,
      );
    }
  }
}

/**
 * Root and mutation flag in one pass. `mutated` is true when some level pairs two equal hashes, the
 * CVE-2012-2459 shape where a different transaction list yields the same root.
 */
export function merkleRootMutated(hashes: Uint8Array[]): { root: Uint8Array; mutated: boolean } {
  checkHashes(hashes);
  const n = hashes.length;
  if (n === 0) return { root: new Uint8Array(32), mutated: false };
  // One flat buffer holds a level; each parent overwrites a slot whose inputs were already consumed.
  const level = new Uint8Array((n + 1) * 32);
  for (let i = 0; i < n; i++) level.set(hashes[i], i * 32);
  let count = n;
  let mutated = false;
  while (count > 1) {
    for (let i = 0; i + 1 < count; i += 2) {
      if (equal32(level, i * 32, (i + 1) * 32)) mutated = true;
    }
    if (count & 1) {
      level.copyWithin(count * 32, (count - 1) * 32, count * 32);
      count++;
    }
    const parents = count >> 1;
    for (let i = 0; i < parents; i++) {
      level.set(sha256d(level.subarray(i * 64, i * 64 + 64)), i * 32);
    }
    count = parents;
  }
  return { root: level.slice(0, 32), mutated };
}

function equal32(buf: Uint8Array, a: number, b: number): boolean {
  for (let k = 0; k < 32; k++) if (buf[a + k] !== buf[b + k]) return false;
  return true;
}

/** Merkle root of 32-byte hashes in internal order; a single hash is its own root, none gives 32 zeros. */
export function merkleRoot(hashes: Uint8Array[]): Uint8Array {
  return merkleRootMutated(hashes).root;
}

/** The sibling of `index` at every level, deepest first (the Electrum `merkle` list, internal order). */
export function merkleBranch(hashes: Uint8Array[], index: number): Uint8Array[] {
  checkHashes(hashes);
  if (!Number.isInteger(index) || index < 0 || index >= hashes.length) {
    throw new ChainFormatError("bad-index", `index ${index} is outside 0..${hashes.length - 1}`, 0);
  }
  const branch: Uint8Array[] = [];
  let level = hashes;
  let pos = index;
  while (level.length > 1) {
    const sibling = pos ^ 1;
    branch.push(sibling < level.length ? level[sibling] : level[pos]);
    const next: Uint8Array[] = new Array((level.length + 1) >> 1);
    const pair = new Uint8Array(64);
    for (let i = 0; i < level.length; i += 2) {
      pair.set(level[i], 0);
      pair.set(i + 1 < level.length ? level[i + 1] : level[i], 32);
      next[i >> 1] = sha256d(pair);
    }
    level = next;
    pos >>= 1;
  }
  return branch;
}

/** Recomputes the root from a leaf, its branch (deepest first) and its index. */
export function rootFromBranch(leaf: Uint8Array, branch: Uint8Array[], index: number): Uint8Array {
  if (!Number.isInteger(index) || index < 0) {
    throw new ChainFormatError("bad-index", `index ${index} must be a non-negative integer`, 0);
  }
  if (leaf.length !== 32) throw new ChainFormatError("bad-hash-length", "merkle leaf must be 32 bytes", 0);
  const pair = new Uint8Array(64);
  let h = leaf;
  let pos = index;
  for (let i = 0; i < branch.length; i++) {
    if (branch[i].length !== 32) {
      throw new ChainFormatError("bad-hash-length", `branch element ${i} must be 32 bytes`, i);
    }
    if (pos & 1) {
      pair.set(branch[i], 0);
      pair.set(h, 32);
    } else {
      pair.set(h, 0);
      pair.set(branch[i], 32);
    }
    h = sha256d(pair);
    pos = Math.floor(pos / 2);
  }
  return h === leaf ? leaf.slice() : h;
}
