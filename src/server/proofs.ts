// Merkle proofs the server hands out: transaction branches within a block (protocol.md §4.4) and header
// branches against a checkpoint root over the block hashes 0..cp_height (§4.5). Both use Bitcoin's tree:
// parent = sha256d(left ‖ right), the last node of an odd level paired with itself.
//
// Header proofs are asked for with arbitrary checkpoints over hundreds of thousands of headers, so hashing
// the whole tree per request is out of the question (~88 MB at 500k headers). A node of the full tree whose
// leaves all exist below the checkpoint ("complete") does not depend on the checkpoint at all, so complete
// nodes from a middle level up are cached once; only the nodes on the right edge (which depend on how many
// leaves the checkpoint has) are recomputed, and those are a chain of ~log2(n) hashes over cached children.
import { sha256d } from "../chain/hash.ts";
import { sha256d64 } from "../chain/hash.ts";

const HASH = 32;
const HEADER = 80;
// TxMerkleCache keeps the tree levels from this one up; below it a proof rehashes 2^SUBTREE_DEPTH leaves.
const SUBTREE_DEPTH = 3;

/** A merkle branch (siblings deepest first, internal byte order) and the root it leads to. */
export interface MerkleProof {
  branch: Uint8Array[];
  root: Uint8Array;
}

/** Where header proofs read headers from (the Store fits). */
export interface HeaderSource {
  /** The chain height; headers above it do not exist. */
  readonly state: { readonly height: number };
  /** Headers `from .. from+count-1` concatenated (fewer above the tip). */
  headers(from: number, count: number): Uint8Array;
}

function hashPair(buf: Uint8Array, left: Uint8Array, right: Uint8Array): Uint8Array {
  buf.set(left, 0);
  buf.set(right, HASH);
  const out = new Uint8Array(HASH);
  sha256d64(buf, 0, out, 0);
  return out;
}

/**
 * Reduces `level` (count hashes of 32 bytes, flat) in place `rounds` times, pairing the last node with
 * itself on odd counts (also when one node is left, as inside a taller tree). Returns the final count.
 */
function reduce(level: Uint8Array, count: number, rounds: number): number {
  for (let r = 0; r < rounds; r++) {
    const parents = (count + 1) >> 1;
    // The last node of an odd level is paired with a copy of itself; the level buffer has room for it.
    if (count & 1) {
      if (level.length < (count + 1) * HASH) {
        const pair = new Uint8Array(2 * HASH);
        pair.set(level.subarray((count - 1) * HASH, count * HASH), 0);
        pair.set(level.subarray((count - 1) * HASH, count * HASH), HASH);
        for (let i = 0; i < parents - 1; i++) sha256d64(level, 2 * i * HASH, level, i * HASH);
        sha256d64(pair, 0, level, (parents - 1) * HASH);
        count = parents;
        continue;
      }
      level.copyWithin(count * HASH, (count - 1) * HASH, count * HASH);
    }
    for (let i = 0; i < parents; i++) sha256d64(level, 2 * i * HASH, level, i * HASH);
    count = parents;
  }
  return count;
}

/** Tree depth for n leaves: the number of levels above the leaves (0 for a single leaf). */
export function treeDepth(n: number): number {
  let depth = 0;
  while (2 ** depth < n) depth++;
  return depth;
}

/**
 * The branch and root of leaf `index` among the concatenated 32-byte `leaves` (a block's txids in internal
 * order). One pass over the tree; throws RangeError for an index outside the leaves.
 */
export function merkleProof(leaves: Uint8Array, index: number): MerkleProof {
  const n = leaves.length / HASH;
  if (!Number.isInteger(n) || n < 1) throw new RangeError("merkleProof needs at least one 32-byte leaf");
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new RangeError(`leaf index ${index} is outside 0..${n - 1}`);
  }
  return proofFromLevels(merkleLevels(leaves), index);
}

/** Every level of the tree over `leaves`, bottom first (level 0 is a copy of the leaves), flat. */
export function merkleLevels(leaves: Uint8Array): Uint8Array[] {
  const levels: Uint8Array[] = [leaves.slice()];
  let prev = levels[0];
  let count = leaves.length / HASH;
  const pair = new Uint8Array(2 * HASH);
  while (count > 1) {
    const parents = (count + 1) >> 1;
    const next = new Uint8Array(parents * HASH);
    for (let i = 0; i < parents; i++) {
      if (2 * i + 1 < count) {
        sha256d64(prev, 2 * i * HASH, next, i * HASH);
      } else {
        const last = prev.subarray(2 * i * HASH, 2 * i * HASH + HASH);
        pair.set(last, 0);
        pair.set(last, HASH);
        sha256d64(pair, 0, next, i * HASH);
      }
    }
    levels.push(next);
    prev = next;
    count = parents;
  }
  return levels;
}

/** Reads the branch of `index` off precomputed levels (see merkleLevels). */
export function proofFromLevels(levels: Uint8Array[], index: number): MerkleProof {
  const branch: Uint8Array[] = [];
  let pos = index;
  for (let k = 0; k < levels.length - 1; k++) {
    const level = levels[k];
    const count = level.length / HASH;
    const sib = (pos ^ 1) < count ? pos ^ 1 : pos;
    branch.push(level.slice(sib * HASH, sib * HASH + HASH));
    pos >>= 1;
  }
  return { branch, root: levels[levels.length - 1].slice(0, HASH) };
}

/** What TxMerkleCache keeps of one block. */
interface CachedTree {
  /** The tree levels from SUBTREE_DEPTH up. */
  levels: Uint8Array[];
  /** The first 4 bytes of every txid, sorted, to find a transaction without reading the block's txids... */
  prefixes: Int32Array;
  /** ...and the block position of each. */
  order: Int32Array;
  bytes: number;
}

/**
 * Transaction merkle trees of recently asked blocks, keyed by block hash so that a reorg can never serve a
 * stale tree. Only the levels from SUBTREE_DEPTH up are kept, plus a sorted 4-byte prefix of every txid
 * (together about 16 bytes per transaction, so thousands of blocks fit): a proof reads and rehashes the 8
 * leaves around its transaction and takes the rest of the branch from the cached levels. The first proof of a
 * block reads all its txids and hashes the whole tree once.
 */
export class TxMerkleCache {
  private readonly trees = new Map<string, CachedTree>();
  private bytes = 0;
  private readonly work = new Uint8Array(((1 << SUBTREE_DEPTH) + 1) * HASH);

  /** `maxBytes` bounds the memory of what is cached (about 16 bytes per transaction of each cached block). */
  constructor(private readonly maxBytes = 32 << 20) {}

  /** The proof of position `index` in the block with hash `blockHash` whose txids are `txids`. */
  proof(blockHash: Uint8Array, txids: Uint8Array, index: number): MerkleProof {
    const n = txids.length / HASH;
    if (!Number.isInteger(index) || index < 0 || index >= n) {
      throw new RangeError(`leaf index ${index} is outside 0..${n - 1}`);
    }
    // A block no bigger than one subtree costs no more to hash than a cached proof would.
    if (n <= 1 << SUBTREE_DEPTH) return merkleProof(txids, index);
    const key = String.fromCharCode(...blockHash);
    const tree = this.trees.get(key);
    if (tree === undefined) return proofFromLevels(this.insert(key, txids), index);
    this.touch(key, tree);
    const base = (index >> SUBTREE_DEPTH) << SUBTREE_DEPTH;
    const end = Math.min(n, base + (1 << SUBTREE_DEPTH));
    return this.fromSubtree(tree, n, txids.subarray(base * HASH, end * HASH), index);
  }

  /**
   * Finds `txid` among the `n` transactions of the block `blockHash` and proves it; undefined when the block
   * does not hold it. `leaves(from, count)` reads txids of the block, `all()` all of them: a cached block
   * needs only the few leaves around the transaction.
   */
  find(
    blockHash: Uint8Array,
    txid: Uint8Array,
    n: number,
    leaves: (from: number, count: number) => Uint8Array,
    all: () => Uint8Array,
  ): { index: number; proof: MerkleProof } | undefined {
    const key = String.fromCharCode(...blockHash);
    const tree = n > 1 << SUBTREE_DEPTH ? this.trees.get(key) : undefined;
    if (tree === undefined) {
      const txids = all();
      const index = indexOf(txids, txid);
      if (index < 0) return undefined;
      return { index, proof: this.proof(blockHash, txids, index) };
    }
    this.touch(key, tree);
    const prefix = prefixOf(txid, 0);
    const prefixes = tree.prefixes;
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (prefixes[mid] < prefix) lo = mid + 1;
      else hi = mid;
    }
    for (let at = lo; at < n && prefixes[at] === prefix; at++) {
      const i = tree.order[at];
      const base = (i >> SUBTREE_DEPTH) << SUBTREE_DEPTH;
      const sub = leaves(base, Math.min(n, base + (1 << SUBTREE_DEPTH)) - base);
      if (indexOf(sub.subarray((i - base) * HASH, (i - base + 1) * HASH), txid) === 0) {
        return { index: i, proof: this.fromSubtree(tree, n, sub, i) };
      }
    }
    return undefined;
  }

  /** Number of cached trees. */
  get size(): number {
    return this.trees.size;
  }

  // Hashes the whole tree, caches its upper levels and the txid prefixes, and returns every level.
  private insert(key: string, txids: Uint8Array): Uint8Array[] {
    const levels = merkleLevels(txids);
    const n = txids.length / HASH;
    const unsorted = new Int32Array(n);
    for (let i = 0; i < n; i++) unsorted[i] = prefixOf(txids, i * HASH);
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => unsorted[a] - unsorted[b]);
    const prefixes = new Int32Array(n);
    for (let i = 0; i < n; i++) prefixes[i] = unsorted[order[i]];
    const kept = levels.slice(SUBTREE_DEPTH);
    let bytes = prefixes.byteLength + order.byteLength;
    for (const l of kept) bytes += l.length;
    this.trees.set(key, { levels: kept, prefixes, order, bytes });
    this.bytes += bytes;
    for (const [k, t] of this.trees) {
      if (this.bytes <= this.maxBytes || this.trees.size <= 1) break;
      this.trees.delete(k);
      this.bytes -= t.bytes;
    }
    return levels;
  }

  private touch(key: string, tree: CachedTree): void {
    this.trees.delete(key);
    this.trees.set(key, tree);
  }

  // The proof of `index` from the leaves of its aligned subtree (`sub`, starting at the subtree's first leaf)
  // hashed up to the first cached level, then the cached levels. The subtree starts at an even position on every
  // level below it, so its odd counts only happen at the block's right edge, where Bitcoin pairs the last node
  // with itself.
  private fromSubtree(tree: CachedTree, n: number, sub: Uint8Array, index: number): MerkleProof {
    const base = (index >> SUBTREE_DEPTH) << SUBTREE_DEPTH;
    let m = sub.length / HASH;
    let count = n;
    let first = base;
    let pos = index - base;
    const work = this.work;
    work.set(sub);
    const branch: Uint8Array[] = [];
    for (let k = 0; k < SUBTREE_DEPTH; k++) {
      const sib = first + (pos ^ 1) < count ? pos ^ 1 : pos;
      branch.push(work.slice(sib * HASH, sib * HASH + HASH));
      if (m & 1) work.copyWithin(m * HASH, (m - 1) * HASH, m * HASH);
      const parents = (m + 1) >> 1;
      for (let i = 0; i < parents; i++) sha256d64(work, 2 * i * HASH, work, i * HASH);
      m = parents;
      count = (count + 1) >> 1;
      first >>= 1;
      pos >>= 1;
    }
    // The cached levels never change, so views of them serve as well as copies.
    let p = index >> SUBTREE_DEPTH;
    const levels = tree.levels;
    for (let k = 0; k < levels.length - 1; k++) {
      const level = levels[k];
      const sib = (p ^ 1) < level.length / HASH ? p ^ 1 : p;
      branch.push(level.subarray(sib * HASH, sib * HASH + HASH));
      p >>= 1;
    }
    return { branch, root: levels[levels.length - 1].subarray(0, HASH) };
  }
}

function prefixOf(bytes: Uint8Array, off: number): number {
  return bytes[off] | (bytes[off + 1] << 8) | (bytes[off + 2] << 16) | (bytes[off + 3] << 24);
}

// Position of the 32-byte `txid` among concatenated txids, or -1.
function indexOf(txids: Uint8Array, txid: Uint8Array): number {
  const n = txids.length / HASH;
  const t0 = txid[0];
  for (let i = 0; i < n; i++) {
    const o = i * HASH;
    if (txids[o] !== t0) continue;
    let k = 1;
    while (k < HASH && txids[o + k] === txid[k]) k++;
    if (k === HASH) return i;
  }
  return -1;
}

/** One cached level of complete header-tree nodes. */
interface CachedLevel {
  data: Uint8Array;
  have: Uint8Array;
}

/**
 * Header branches against cp_height roots (§4.5). Complete nodes at levels >= `cacheLevel` are cached (at
 * most 2·n/2^cacheLevel hashes: 3.6 MB for 900k headers at the default level 4); nodes below it are computed
 * from one contiguous read of at most 2^cacheLevel headers. The cache notices reorgs by itself (see
 * checkReorg), so it needs no signal from the block processor.
 */
export class HeaderProofs {
  private readonly levels: CachedLevel[] = [];
  private readonly pair = new Uint8Array(2 * HASH);
  /** Block hash of the last leaf under each cached node of the lowest cached level. */
  private lastLeafHashes = new Uint8Array(0);
  /** Highest index of the lowest cached level that may hold a node. */
  private maxLow = -1;
  private invalidations = 0;
  private verifiedState: unknown = undefined;
  private preparing: Promise<void> = Promise.resolve();
  /** prepare() filled every complete node for checkpoints below this many leaves (0 = nothing yet). */
  private preparedLeaves = 0;
  /** Headers read so far (for tests and metrics). */
  headersRead = 0;

  constructor(private readonly source: HeaderSource, private readonly cacheLevel = 4) {
    if (!Number.isInteger(cacheLevel) || cacheLevel < 1 || cacheLevel > 20) {
      throw new RangeError(`cacheLevel ${cacheLevel} must be an integer in 1..20`);
    }
  }

  /**
   * Branch of header `height` and the root over block hashes 0..cpHeight. The caller checks
   * height <= cpHeight <= chain height; RangeError otherwise.
   */
  proof(height: number, cpHeight: number): MerkleProof {
    const tip = this.source.state.height;
    if (
      !Number.isSafeInteger(height) || !Number.isSafeInteger(cpHeight) || height < 0 || height > cpHeight ||
      cpHeight > tip
    ) {
      throw new RangeError(`need 0 <= height ${height} <= cp_height ${cpHeight} <= chain height ${tip}`);
    }
    this.checkReorg(tip);
    const n = cpHeight + 1;
    const depth = treeDepth(n);
    // Right-edge nodes depend on n; several branch levels share them, so they are kept for this call only.
    const memo = new Map<number, Uint8Array>();
    const branch: Uint8Array[] = [];
    for (let k = 0; k < depth; k++) {
      const p = Math.floor(height / 2 ** k);
      const s = p ^ 1;
      branch.push(this.node(k, s * 2 ** k < n ? s : p, n, memo).slice());
    }
    return { branch, root: this.node(depth, 0, n, memo).slice() };
  }

  /**
   * Fills the cache for checkpoints up to `cpHeight` a slice at a time, giving the event loop a turn every
   * `slice` hashes, so that a first proof over ~900k headers (seconds of hashing) stalls nobody. proof()
   * after it costs a few dozen hashes. Concurrent calls run one after another and share the work.
   */
  prepare(cpHeight: number, slice = 4096): Promise<void> {
    // The common case, a checkpoint already prepared and no reorg since, costs one header hash.
    if (cpHeight + 1 <= this.preparedLeaves) {
      this.checkReorg(this.source.state.height);
      if (cpHeight + 1 <= this.preparedLeaves) return Promise.resolve();
    }
    const run = this.preparing.then(() => this.fill(cpHeight, slice));
    this.preparing = run.catch(() => {});
    return run;
  }

  private async fill(cpHeight: number, slice: number): Promise<void> {
    const k0 = this.cacheLevel;
    let work = 0;
    const invalidations = this.invalidations;
    for (let k = k0;; k++) {
      // Re-read the tip each level: the chain may have moved while we yielded.
      const n = Math.min(cpHeight, this.source.state.height) + 1;
      const count = Math.floor(n / 2 ** k);
      if (count === 0) {
        // Complete only if no reorg dropped nodes meanwhile (proof() recomputes those, but the fast path
        // must not claim them).
        if (this.invalidations === invalidations) this.preparedLeaves = Math.max(this.preparedLeaves, n);
        return;
      }
      this.checkReorg(this.source.state.height);
      for (let p = 0; p < count; p++) {
        if (this.cached(k, p)) continue;
        if (k === k0) {
          this.store(k, p, this.lowNode(k, p * 2 ** k, 2 ** k));
          work += 2 ** k;
        } else {
          const left = this.cached(k - 1, 2 * p), right = this.cached(k - 1, 2 * p + 1);
          // A reorg seen after the last yield dropped children; the next level pass or proof() redoes them.
          if (!left || !right) continue;
          this.store(k, p, hashPair(this.pair, left, right));
          work++;
        }
        if (work >= slice) {
          work = 0;
          await new Promise((resolve) => setTimeout(resolve, 0));
          // Anything cached before the pause covers headers up to the highest cached node's last one, so
          // checking that one header tells whether a reorg during the pause made any of it stale.
          this.checkReorg(this.source.state.height);
        }
      }
    }
  }

  /** Forgets cached nodes covering headers at or above `height`, e.g. after the chain was backed up. */
  invalidateFrom(height: number): void {
    this.invalidations++;
    this.preparedLeaves = Math.min(this.preparedLeaves, Math.max(0, height));
    for (let k = this.cacheLevel; k < this.levels.length; k++) {
      const level = this.levels[k];
      if (!level) continue;
      const first = Math.max(0, Math.floor(height / 2 ** k));
      if (first < level.have.length) level.have.fill(0, first);
    }
    this.maxLow = Math.min(this.maxLow, Math.floor(height / 2 ** this.cacheLevel) - 1);
  }

  /** Number of cached nodes (for tests and metrics). */
  get cachedNodes(): number {
    let n = 0;
    for (const level of this.levels) if (level) { for (const h of level.have) n += h; }
    return n;
  }

  // The node at level k, position p of the tree over n leaves: cached when complete, else built from its
  // children (the right child missing means the left one is paired with itself).
  private node(k: number, p: number, n: number, memo: Map<number, Uint8Array>): Uint8Array {
    const span = 2 ** k;
    const first = p * span;
    if (k < this.cacheLevel) return this.lowNode(k, first, Math.min(span, n - first));
    const complete = first + span <= n;
    const key = k * 2 ** 32 + p;
    const hit = complete ? this.cached(k, p) : memo.get(key);
    if (hit) return hit;
    const left = this.node(k - 1, 2 * p, n, memo);
    const right = first + span / 2 < n ? this.node(k - 1, 2 * p + 1, n, memo) : left;
    const h = hashPair(this.pair, left, right);
    if (complete) this.store(k, p, h);
    else memo.set(key, h);
    return h;
  }

  // A node below the cached levels: its (at most 2^k) leaves from one read, reduced k times.
  private lowNode(k: number, first: number, count: number): Uint8Array {
    const raw = this.source.headers(first, count);
    if (raw.length !== count * HEADER) {
      throw new RangeError(`headers ${first}..${first + count - 1} are not all available`);
    }
    this.headersRead += count;
    const level = new Uint8Array(count * HASH);
    for (let i = 0; i < count; i++) {
      level.set(sha256d(raw.subarray(i * HEADER, i * HEADER + HEADER)), i * HASH);
    }
    reduce(level, count, k);
    return level.slice(0, HASH);
  }

  private cached(k: number, p: number): Uint8Array | undefined {
    const level = this.levels[k];
    if (!level || p >= level.have.length || level.have[p] === 0) return undefined;
    return level.data.subarray(p * HASH, p * HASH + HASH);
  }

  private store(k: number, p: number, h: Uint8Array): void {
    let level = this.levels[k];
    if (!level || p >= level.have.length) {
      const size = Math.max(64, (p + 1) * 2);
      const grown: CachedLevel = { data: new Uint8Array(size * HASH), have: new Uint8Array(size) };
      if (level) {
        grown.data.set(level.data);
        grown.have.set(level.have);
      }
      this.levels[k] = level = grown;
    }
    level.data.set(h, p * HASH);
    level.have[p] = 1;
    if (k !== this.cacheLevel) return;
    // Remember the hash of the node's last header: it alone tells whether the node is still on the chain.
    if (this.lastLeafHashes.length < level.have.length * HASH) {
      const grown = new Uint8Array(level.have.length * HASH);
      grown.set(this.lastLeafHashes);
      this.lastLeafHashes = grown;
    }
    const last = (p + 1) * 2 ** k - 1;
    this.lastLeafHashes.set(sha256d(this.source.headers(last, 1)), p * HASH);
    this.headersRead++;
    if (p > this.maxLow) this.maxLow = p;
  }

  // A block hash commits to every header below it, so a lowest-level node whose last header still hashes
  // the same is valid, and so is everything cached below it. Check the highest one (one header read per
  // proof); after a reorg step down, doubling the stride, to one that still matches and drop what is above.
  private checkReorg(tip: number): void {
    // The Store replaces its state object on every flush and backup: the same object means the same chain.
    const state = this.source.state;
    if (state === this.verifiedState) return;
    this.verifiedState = state;
    const k = this.cacheLevel;
    const level = this.levels[k];
    if (!level || this.maxLow < 0) return;
    const span = 2 ** k;
    let step = 1;
    let p = this.maxLow;
    while (p >= 0) {
      if (level.have[p] === 1) {
        const last = (p + 1) * span - 1;
        if (last <= tip) {
          const raw = this.source.headers(last, 1);
          this.headersRead++;
          const now = sha256d(raw);
          const was = this.lastLeafHashes.subarray(p * HASH, p * HASH + HASH);
          if (now.every((b, i) => b === was[i])) break;
        }
        p -= step;
        step *= 2;
      } else {
        p--;
      }
    }
    if (p < this.maxLow) this.invalidateFrom((p + 1) * span);
  }
}
