// Unflushed transactions and their unspent outputs. Outputs live in parallel typed arrays and are found through
// an open-addressing table keyed by (txid, vout) bytes: no strings or objects per output, ~40 bytes each, and
// the table hash is seeded per process so a crafted chain cannot aim at its probe sequences.

const TXID = 32;
const HASHX = 11;
const EMPTY = 0;
const TOMBSTONE = -1;

/** Receives one live output; byte fields are views into the cache's slabs. */
export type LiveOutputFn = (
  txids: Uint8Array,
  txidOff: number,
  vout: number,
  txNum: number,
  hashXs: Uint8Array,
  hashXOff: number,
  value: number,
) => void;

/** Txids and outputs created since the last flush. */
export class UtxoCache {
  /** tx_num of the first cached transaction. */
  baseTxNum = 0;
  private txCount = 0;
  private txids: Uint8Array;
  private count = 0;
  private liveCount = 0;
  private txIdx: Int32Array;
  private vouts: Uint32Array;
  private values: Float64Array;
  private hashXs: Uint8Array;
  private table: Int32Array;
  private mask: number;
  private used = 0; // slots that are not EMPTY (live + tombstones)
  private readonly seed1: number;
  private readonly seed2: number;

  constructor() {
    this.txids = new Uint8Array(TXID * 1024);
    this.txIdx = new Int32Array(1024);
    this.vouts = new Uint32Array(1024);
    this.values = new Float64Array(1024);
    this.hashXs = new Uint8Array(HASHX * 1024);
    this.table = new Int32Array(4096);
    this.mask = this.table.length - 1;
    const seeds = crypto.getRandomValues(new Uint32Array(2));
    this.seed1 = seeds[0] | 1;
    this.seed2 = seeds[1];
  }

  /** Number of cached transactions. */
  get txs(): number {
    return this.txCount;
  }

  /** Number of unspent cached outputs. */
  get live(): number {
    return this.liveCount;
  }

  /** Approximate bytes held. */
  get bytes(): number {
    return this.txids.length + this.table.length * 4 + this.txIdx.length * (4 + 4 + 8 + HASHX);
  }

  /** The cached txids, 32 bytes each in tx_num order (a view). */
  txidBytes(): Uint8Array {
    return this.txids.subarray(0, this.txCount * TXID);
  }

  /** Records the next transaction's txid; returns its tx_num. */
  addTx(txid: Uint8Array): number {
    return this.addTxAt(txid, 0);
  }

  /** Records the next transaction's txid, `buf[off..off+32]`; returns its tx_num. */
  addTxAt(buf: Uint8Array, off: number): number {
    if ((this.txCount + 1) * TXID > this.txids.length) {
      this.txids = grow(this.txids, (this.txCount + 1) * TXID);
    }
    const txids = this.txids;
    for (let k = 0, o = this.txCount * TXID; k < TXID; k++) txids[o + k] = buf[off + k];
    return this.baseTxNum + this.txCount++;
  }

  /** Adds an unspent output of the transaction `txNum`; its hashX is `hashX[hashXOff..+11]`. */
  addOutput(txNum: number, vout: number, hashX: Uint8Array, hashXOff: number, value: number): void {
    const e = this.count;
    if (e === this.txIdx.length) this.growEntries();
    const t = txNum - this.baseTxNum;
    this.txIdx[e] = t;
    this.vouts[e] = vout;
    this.values[e] = value;
    const hx = this.hashXs;
    for (let k = 0, o = e * HASHX; k < HASHX; k++) hx[o + k] = hashX[hashXOff + k];
    if ((this.used + 1) * 2 > this.table.length) this.rehash(this.liveCount + 1);
    let i = this.hash(this.txids, t * TXID, vout) & this.mask;
    while (this.table[i] > 0) i = (i + 1) & this.mask;
    if (this.table[i] === EMPTY) this.used++;
    this.table[i] = e + 1;
    this.count++;
    this.liveCount++;
  }

  /**
   * Removes the cached output (txid, vout) if present and returns its entry number (valid until the next
   * clear), else -1. Read it with txNumOf / valueOf / hashXOf.
   */
  spend(txid: Uint8Array, vout: number): number {
    return this.spendAt(txid, 0, vout);
  }

  /** spend() for the txid at `buf[off..off+32]`. */
  spendAt(buf: Uint8Array, off: number, vout: number): number {
    const table = this.table, mask = this.mask, txids = this.txids, vouts = this.vouts, txIdx = this.txIdx;
    let i = this.hash(buf, off, vout) & mask;
    while (true) {
      const slot = table[i];
      if (slot === EMPTY) return -1;
      if (slot > 0) {
        const e = slot - 1;
        if (vouts[e] === vout && sameTxid(txids, txIdx[e] * TXID, buf, off)) {
          table[i] = TOMBSTONE;
          this.liveCount--;
          return e;
        }
      }
      i = (i + 1) & mask;
    }
  }

  /** tx_num of entry `e`. */
  txNumOf(e: number): number {
    return this.baseTxNum + this.txIdx[e];
  }

  /** Value of entry `e`. */
  valueOf(e: number): number {
    return this.values[e];
  }

  /** Output index of entry `e`. */
  voutOf(e: number): number {
    return this.vouts[e];
  }

  /** The hashX slab (entry e at e * 11). */
  get hashXSlab(): Uint8Array {
    return this.hashXs;
  }

  /** Calls `fn` for every unspent cached output. */
  forEachLive(fn: LiveOutputFn): void {
    const table = this.table;
    for (let i = 0; i < table.length; i++) {
      const slot = table[i];
      if (slot <= 0) continue;
      const e = slot - 1;
      const t = this.txIdx[e];
      fn(this.txids, t * TXID, this.vouts[e], this.baseTxNum + t, this.hashXs, e * HASHX, this.values[e]);
    }
  }

  /**
   * Empties the cache; the next transaction gets tx_num `baseTxNum`. `release` gives back all memory beyond the
   * initial size (otherwise only a big table is given back).
   */
  clear(baseTxNum: number, release = false): void {
    this.baseTxNum = baseTxNum;
    this.txCount = 0;
    this.count = 0;
    this.liveCount = 0;
    this.used = 0;
    // Give back memory after a big initial-sync window; keep it when it is modest.
    if (this.table.length > 1 << 20 || (release && this.table.length > 4096)) {
      this.table = new Int32Array(4096);
      this.mask = this.table.length - 1;
    } else {
      this.table.fill(0);
    }
    if (release && this.txIdx.length > 1024) {
      this.txids = new Uint8Array(TXID * 1024);
      this.txIdx = new Int32Array(1024);
      this.vouts = new Uint32Array(1024);
      this.values = new Float64Array(1024);
      this.hashXs = new Uint8Array(HASHX * 1024);
    }
  }

  private hash(txid: Uint8Array, off: number, vout: number): number {
    const a = txid[off] | (txid[off + 1] << 8) | (txid[off + 2] << 16) | (txid[off + 3] << 24);
    const b = txid[off + 4] | (txid[off + 5] << 8) | (txid[off + 6] << 16) | (txid[off + 7] << 24);
    let h = Math.imul(a ^ this.seed2, this.seed1) ^ b;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ Math.imul(vout + 1, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  private rehash(live: number): void {
    let size = this.table.length;
    while (size < live * 4) size *= 2;
    const old = this.table;
    const table = new Int32Array(size);
    const mask = size - 1;
    for (let j = 0; j < old.length; j++) {
      const slot = old[j];
      if (slot <= 0) continue;
      const e = slot - 1;
      let i = this.hash(this.txids, this.txIdx[e] * TXID, this.vouts[e]) & mask;
      while (table[i] !== EMPTY) i = (i + 1) & mask;
      table[i] = slot;
    }
    this.table = table;
    this.mask = mask;
    this.used = this.liveCount;
  }

  private growEntries(): void {
    const n = this.txIdx.length * 2;
    const txIdx = new Int32Array(n);
    txIdx.set(this.txIdx);
    this.txIdx = txIdx;
    const vouts = new Uint32Array(n);
    vouts.set(this.vouts);
    this.vouts = vouts;
    const values = new Float64Array(n);
    values.set(this.values);
    this.values = values;
    this.hashXs = grow(this.hashXs, n * HASHX);
  }
}

function grow(buf: Uint8Array, atLeast: number): Uint8Array {
  let n = buf.length * 2;
  while (n < atLeast) n *= 2;
  const out = new Uint8Array(n);
  out.set(buf);
  return out;
}

function sameTxid(slab: Uint8Array, off: number, txid: Uint8Array, txidOff: number): boolean {
  for (let i = 0; i < TXID; i++) if (slab[off + i] !== txid[txidOff + i]) return false;
  return true;
}
