// Unflushed history: for every hashX touched since the last flush, the tx_nums that touched it, in order.
// Byte-keyed open addressing over typed arrays (no strings, no per-hashX arrays): building a JS string per
// hashX and a Map/Set entry for it cost more than everything else the processor does per transaction.

const HASHX = 11;

function hashXHash(buf: Uint8Array, off: number, seed: number): number {
  // hashX bytes are uniformly random (a sha256 prefix); mixing two words with a per-process seed is enough.
  const a = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24);
  const b = buf[off + 4] | (buf[off + 5] << 8) | (buf[off + 6] << 16) | (buf[off + 7] << 24);
  let h = Math.imul(a ^ seed, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function sameHashX(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < HASHX; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

function grownU8(buf: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  out.set(buf);
  return out;
}

function grownI32(buf: Int32Array, n: number): Int32Array<ArrayBuffer> {
  const out = new Int32Array(n);
  out.set(buf);
  return out;
}

function grownF64(buf: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const out = new Float64Array(n);
  out.set(buf);
  return out;
}

/** A set of hashXs (11-byte keys) without per-key allocations. */
export class HashXSet {
  private keys = new Uint8Array(HASHX * 256);
  private count = 0;
  private table = new Int32Array(1024);
  private readonly seed = crypto.getRandomValues(new Uint32Array(1))[0];

  /** Number of members. */
  get size(): number {
    return this.count;
  }

  /** Adds the hashX at `buf[off..off+11]`; returns its index (stable until clear). */
  add(buf: Uint8Array, off: number): number {
    let mask = this.table.length - 1;
    let i = hashXHash(buf, off, this.seed) & mask;
    while (true) {
      const slot = this.table[i];
      if (slot === 0) break;
      if (sameHashX(this.keys, (slot - 1) * HASHX, buf, off)) return slot - 1;
      i = (i + 1) & mask;
    }
    const e = this.count++;
    if (this.count * HASHX > this.keys.length) this.keys = grownU8(this.keys, this.keys.length * 2);
    for (let k = 0; k < HASHX; k++) this.keys[e * HASHX + k] = buf[off + k];
    if (this.count * 2 > this.table.length) {
      this.rehash(this.table.length * 2);
      mask = this.table.length - 1;
      i = hashXHash(buf, off, this.seed) & mask;
      while (this.table[i] !== 0) i = (i + 1) & mask;
    }
    this.table[i] = e + 1;
    return e;
  }

  /** The members as separate 11-byte arrays. */
  toArrays(): Uint8Array[] {
    const out: Uint8Array[] = new Array(this.count);
    for (let e = 0; e < this.count; e++) out[e] = this.keys.slice(e * HASHX, e * HASHX + HASHX);
    return out;
  }

  /** The key slab: member e at e * 11. */
  get slab(): Uint8Array {
    return this.keys;
  }

  /** Removes every member; `release` also gives back a grown table. */
  clear(release = false): void {
    this.count = 0;
    if (this.table.length > (release ? 1024 : 1 << 16)) {
      this.table = new Int32Array(1024);
      this.keys = new Uint8Array(HASHX * 256);
    } else {
      this.table.fill(0);
    }
  }

  private rehash(size: number): void {
    const table = new Int32Array(size);
    const mask = size - 1;
    for (let e = 0; e < this.count - 1; e++) {
      let i = hashXHash(this.keys, e * HASHX, this.seed) & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = e + 1;
    }
    this.table = table;
  }
}

/** For each hashX, the ascending tx_nums that touched it since the last flush (each tx once). */
export class HistoryCache {
  private readonly set = new HashXSet();
  // Per hashX (indexed like the set): first and last node, node count, last tx_num appended.
  private head = new Int32Array(256);
  private tail = new Int32Array(256);
  private length = new Int32Array(256);
  private last = new Float64Array(256);
  // Nodes: one per (hashX, tx).
  private nodeTxNum = new Float64Array(1024);
  private nodeNext = new Int32Array(1024);
  private nodes = 0;

  /** Number of distinct hashXs. */
  get size(): number {
    return this.set.size;
  }

  /** Number of (hashX, tx) items. */
  get items(): number {
    return this.nodes;
  }

  /** Approximate bytes held. */
  get bytes(): number {
    return this.head.length * (4 + 4 + 4 + 8 + HASHX + 8) + this.nodeTxNum.length * 12;
  }

  /**
   * Records that `txNum` touched the hashX at `buf[off..off+11]`. Calls must come in tx_num order; a repeat
   * for the same tx is ignored, which is how a tx touches each hashX once however many outputs it has there.
   */
  add(buf: Uint8Array, off: number, txNum: number): void {
    const before = this.set.size;
    const e = this.set.add(buf, off);
    if (e === before) {
      if (e === this.head.length) this.growEntries();
      this.head[e] = -1;
      this.length[e] = 0;
    } else if (this.last[e] === txNum) {
      return;
    }
    const n = this.nodes++;
    if (n === this.nodeTxNum.length) {
      this.nodeTxNum = grownF64(this.nodeTxNum, n * 2);
      this.nodeNext = grownI32(this.nodeNext, n * 2);
    }
    this.nodeTxNum[n] = txNum;
    this.nodeNext[n] = -1;
    if (this.head[e] < 0) this.head[e] = n;
    else this.nodeNext[this.tail[e]] = n;
    this.tail[e] = n;
    this.length[e]++;
    this.last[e] = txNum;
  }

  /** Calls `fn` for every hashX with its tx_nums packed as 5-byte big-endian values (a history row). */
  forEachRow(
    fn: (hashXSlab: Uint8Array, hashXOff: number, firstTxNum: number, row: Uint8Array) => void,
  ): void {
    const slab = this.set.slab;
    for (let e = 0; e < this.set.size; e++) {
      const row = new Uint8Array(this.length[e] * 5);
      this.writeRow(e, row, 0);
      fn(slab, e * HASHX, this.firstTxNum(e), row);
    }
  }

  /** The hashX slab: hashX number e (0 .. size-1) at e * 11. */
  get hashXSlab(): Uint8Array {
    return this.set.slab;
  }

  /** Number of tx_nums recorded for hashX number `e`. */
  rowLength(e: number): number {
    return this.length[e];
  }

  /** First tx_num recorded for hashX number `e`. */
  firstTxNum(e: number): number {
    return this.nodeTxNum[this.head[e]];
  }

  /** Writes hashX number `e`'s tx_nums as a history row (5-byte big-endian each) into `out` at `off`. */
  writeRow(e: number, out: Uint8Array, off: number): void {
    const txNums = this.nodeTxNum, next = this.nodeNext;
    let o = off;
    for (let n = this.head[e]; n >= 0; n = next[n]) {
      const v = txNums[n];
      out[o] = Math.floor(v / 0x100000000);
      out[o + 1] = v >>> 24;
      out[o + 2] = v >>> 16;
      out[o + 3] = v >>> 8;
      out[o + 4] = v;
      o += 5;
    }
  }

  /** Calls `fn` for every hashX whose last tx_num is at least `txNum`. */
  forEachTouchedSince(txNum: number, fn: (hashXSlab: Uint8Array, hashXOff: number) => void): void {
    const slab = this.set.slab;
    for (let e = 0; e < this.set.size; e++) if (this.last[e] >= txNum) fn(slab, e * HASHX);
  }

  /** Forgets everything (after a flush); `release` also gives back every grown table. */
  clear(release = false): void {
    this.set.clear(release);
    this.nodes = 0;
    if (this.nodeTxNum.length > (release ? 1024 : 1 << 20)) {
      this.nodeTxNum = new Float64Array(1024);
      this.nodeNext = new Int32Array(1024);
    }
    if (this.head.length > (release ? 256 : 1 << 16)) {
      this.head = new Int32Array(256);
      this.tail = new Int32Array(256);
      this.length = new Int32Array(256);
      this.last = new Float64Array(256);
    }
  }

  private growEntries(): void {
    const n = this.head.length * 2;
    this.head = grownI32(this.head, n);
    this.tail = grownI32(this.tail, n);
    this.length = grownI32(this.length, n);
    this.last = grownF64(this.last, n);
  }
}
