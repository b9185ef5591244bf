// Compact, typed-array tables for simnet's chain state. A 1M-transaction chain has millions of outputs; an
// object or string key per output would cost hundreds of MB and most of the generation time.

/** Every transaction instance simnet knows: its txid and where its bytes live. Rows are never removed. */
export class TxTable {
  private txids = new Uint8Array(32 * 1024);
  private blockCol = new Int32Array(1024);
  private offsetCol = new Uint32Array(1024);
  private lengthCol = new Uint32Array(1024);
  count = 0;

  /** Appends a row; `txid` is read from `src[srcOff..srcOff+32)`. Returns its ref. */
  add(src: Uint8Array, srcOff: number, block: number, offset: number, length: number): number {
    if (this.count === this.blockCol.length) this.grow();
    const ref = this.count++;
    this.txids.set(src.subarray(srcOff, srcOff + 32), ref * 32);
    this.blockCol[ref] = block;
    this.offsetCol[ref] = offset;
    this.lengthCol[ref] = length;
    return ref;
  }

  private grow(): void {
    const cap = this.blockCol.length * 2;
    const t = new Uint8Array(cap * 32);
    t.set(this.txids);
    this.txids = t;
    const b = new Int32Array(cap);
    b.set(this.blockCol);
    this.blockCol = b;
    const o = new Uint32Array(cap);
    o.set(this.offsetCol);
    this.offsetCol = o;
    const l = new Uint32Array(cap);
    l.set(this.lengthCol);
    this.lengthCol = l;
  }

  /** A view of the txid of `ref` (valid until the next add). */
  txid(ref: number): Uint8Array {
    return this.txids.subarray(ref * 32, ref * 32 + 32);
  }

  /** The whole txid store and the offset of `ref` in it, for copying without a view allocation. */
  txidAt(ref: number): { store: Uint8Array; off: number } {
    return { store: this.txids, off: ref * 32 };
  }

  /** The store backing all txids (row r at r*32); replaced when the table grows. */
  get store(): Uint8Array {
    return this.txids;
  }

  /** Block id the row lives in. */
  block(ref: number): number {
    return this.blockCol[ref];
  }

  /** Byte offset of the transaction inside its block. */
  offset(ref: number): number {
    return this.offsetCol[ref];
  }

  /** Serialized length of the transaction. */
  length(ref: number): number {
    return this.lengthCol[ref];
  }

  /** A 32-bit hash of a row's txid (txids are uniformly random already). */
  hash(ref: number): number {
    const t = this.txids, o = ref * 32;
    return (t[o] | (t[o + 1] << 8) | (t[o + 2] << 16) | (t[o + 3] << 24)) >>> 0;
  }

  /** True when row `ref` has the txid at `buf[off..off+32)`. */
  equals(ref: number, buf: Uint8Array, off: number): boolean {
    const t = this.txids, o = ref * 32;
    for (let i = 0; i < 32; i++) if (t[o + i] !== buf[off + i]) return false;
    return true;
  }
}

/** The 32-bit hash of a txid at `buf[off..)`, matching TxTable.hash. */
export function txidHash(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

function mixOutpoint(txHash: number, vout: number): number {
  return (Math.imul(txHash ^ Math.imul(vout + 1, 0x9e3779b1), 0x85ebca6b) ^ (txHash >>> 15)) >>> 0;
}

/**
 * Open-addressing hash table (linear probing, backward-shift deletion) of non-negative ints. The caller
 * supplies each stored value's hash, so the table itself holds nothing but an Int32Array.
 */
class IntTable {
  slots = new Int32Array(1024); // value + 1; 0 = empty
  mask = 1023;
  size = 0;

  constructor(private readonly hashOf: (value: number) => number) {}

  /** First slot index for a hash. */
  home(h: number): number {
    return h & this.mask;
  }

  insert(h: number, value: number): void {
    if ((this.size + 1) * 2 > this.slots.length) this.resize(this.slots.length * 2);
    let i = h & this.mask;
    while (this.slots[i] !== 0) i = (i + 1) & this.mask;
    this.slots[i] = value + 1;
    this.size++;
  }

  /** Slot index holding `value`, or -1. */
  slotOf(h: number, value: number): number {
    let i = h & this.mask;
    for (;;) {
      const s = this.slots[i];
      if (s === 0) return -1;
      if (s === value + 1) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** Empties slot `i`, shifting later entries of the probe run back so lookups keep working. */
  clearSlot(i: number): void {
    const slots = this.slots, mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const s = slots[j];
      if (s === 0) break;
      const k = this.hashOf(s - 1) & mask;
      // Entry at j may move to i only if its home k is not cyclically within (i, j].
      if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
      slots[i] = s;
      i = j;
    }
    slots[i] = 0;
    this.size--;
  }

  private resize(cap: number): void {
    const old = this.slots;
    this.slots = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < old.length; i++) {
      const s = old[i];
      if (s === 0) continue;
      let j = this.hashOf(s - 1) & this.mask;
      while (this.slots[j] !== 0) j = (j + 1) & this.mask;
      this.slots[j] = s;
    }
  }
}

/** txid → TxTable ref, for the transactions of the active chain. */
export class TxidIndex {
  private readonly table: IntTable;

  constructor(private readonly txs: TxTable) {
    this.table = new IntTable((ref) => txs.hash(ref));
  }

  /** Number of indexed transactions. */
  get size(): number {
    return this.table.size;
  }

  /** Ref of the indexed transaction with the txid at `buf[off..off+32)`, or -1. */
  get(buf: Uint8Array, off = 0): number {
    const t = this.table;
    let i = txidHash(buf, off) & t.mask;
    for (;;) {
      const s = t.slots[i];
      if (s === 0) return -1;
      if (this.txs.equals(s - 1, buf, off)) return s - 1;
      i = (i + 1) & t.mask;
    }
  }

  /** Indexes `ref` (replacing another ref with the same txid). */
  set(ref: number): void {
    const t = this.txs.txidAt(ref);
    const old = this.get(t.store, t.off);
    if (old === ref) return;
    if (old >= 0) this.delete(old);
    this.table.insert(this.txs.hash(ref), ref);
  }

  /** Removes `ref` if it is indexed. */
  delete(ref: number): void {
    const slot = this.table.slotOf(this.txs.hash(ref), ref);
    if (slot >= 0) this.table.clearSlot(slot);
  }
}

/** Flag bit: the output was created by a coinbase. */
export const COINBASE_FLAG = 1;

/**
 * A set of unspent outputs in parallel typed columns. Entries are dense (removal swaps the last entry
 * in), so a uniformly random entry is one index away. With `indexed`, outpoint lookups are O(1).
 */
export class UtxoSet {
  private refCol = new Uint32Array(1024);
  private voutCol = new Uint32Array(1024);
  private valueCol = new Float64Array(1024);
  private heightCol = new Int32Array(1024);
  private flagCol = new Uint8Array(1024);
  private codeCol = new Uint8Array(1024);
  private scriptOffCol = new Uint32Array(1024);
  private scriptLenCol = new Uint32Array(1024);
  private readonly index: IntTable | null;
  size = 0;
  /** Sum of all values (sats). */
  totalValue = 0;

  constructor(private readonly txs: TxTable, indexed: boolean) {
    this.index = indexed ? new IntTable((i) => this.entryHash(i)) : null;
  }

  private entryHash(i: number): number {
    return mixOutpoint(this.txs.hash(this.refCol[i]), this.voutCol[i]);
  }

  /** Adds an output; returns its entry index (stable until a removal moves it). */
  add(
    ref: number,
    vout: number,
    value: number,
    height: number,
    flags: number,
    code: number,
    scriptOff: number,
    scriptLen: number,
  ): number {
    if (this.size === this.refCol.length) this.grow();
    const i = this.size++;
    this.refCol[i] = ref;
    this.voutCol[i] = vout;
    this.valueCol[i] = value;
    this.heightCol[i] = height;
    this.flagCol[i] = flags;
    this.codeCol[i] = code;
    this.scriptOffCol[i] = scriptOff;
    this.scriptLenCol[i] = scriptLen;
    this.totalValue += value;
    if (this.index) this.index.insert(this.entryHash(i), i);
    return i;
  }

  private grow(): void {
    const cap = this.refCol.length * 2;
    const g = <T extends Uint32Array | Float64Array | Int32Array | Uint8Array>(a: T, n: T): T => {
      n.set(a as never);
      return n;
    };
    this.refCol = g(this.refCol, new Uint32Array(cap));
    this.voutCol = g(this.voutCol, new Uint32Array(cap));
    this.valueCol = g(this.valueCol, new Float64Array(cap));
    this.heightCol = g(this.heightCol, new Int32Array(cap));
    this.flagCol = g(this.flagCol, new Uint8Array(cap));
    this.codeCol = g(this.codeCol, new Uint8Array(cap));
    this.scriptOffCol = g(this.scriptOffCol, new Uint32Array(cap));
    this.scriptLenCol = g(this.scriptLenCol, new Uint32Array(cap));
  }

  /** Entry index of outpoint (txid at `buf[off..off+32)`, vout), or -1. Requires `indexed`. */
  find(buf: Uint8Array, off: number, vout: number): number {
    const t = this.index;
    if (t === null) throw new Error("UtxoSet.find needs an indexed set");
    let i = mixOutpoint(txidHash(buf, off), vout) & t.mask;
    for (;;) {
      const s = t.slots[i];
      if (s === 0) return -1;
      const e = s - 1;
      if (this.voutCol[e] === vout && this.txs.equals(this.refCol[e], buf, off)) return e;
      i = (i + 1) & t.mask;
    }
  }

  /** Removes entry `i`; the last entry takes its index. */
  removeAt(i: number): void {
    const last = this.size - 1;
    this.totalValue -= this.valueCol[i];
    if (this.index) {
      this.index.clearSlot(this.index.slotOf(this.entryHash(i), i));
      if (i !== last) {
        const slot = this.index.slotOf(this.entryHash(last), last);
        this.index.slots[slot] = i + 1;
      }
    }
    if (i !== last) {
      this.refCol[i] = this.refCol[last];
      this.voutCol[i] = this.voutCol[last];
      this.valueCol[i] = this.valueCol[last];
      this.heightCol[i] = this.heightCol[last];
      this.flagCol[i] = this.flagCol[last];
      this.codeCol[i] = this.codeCol[last];
      this.scriptOffCol[i] = this.scriptOffCol[last];
      this.scriptLenCol[i] = this.scriptLenCol[last];
    }
    this.size = last;
  }

  /** TxTable ref of the creating transaction. */
  ref(i: number): number {
    return this.refCol[i];
  }
  /** Output index. */
  vout(i: number): number {
    return this.voutCol[i];
  }
  /** Value in sats. */
  value(i: number): number {
    return this.valueCol[i];
  }
  /** Height of the block that created it. */
  height(i: number): number {
    return this.heightCol[i];
  }
  /** Flag bits (COINBASE_FLAG). */
  flags(i: number): number {
    return this.flagCol[i];
  }
  /** Kind code (see shapes.ts). */
  code(i: number): number {
    return this.codeCol[i];
  }
  /** Offset of the output script inside its transaction's bytes. */
  scriptOff(i: number): number {
    return this.scriptOffCol[i];
  }
  /** Length of the output script. */
  scriptLen(i: number): number {
    return this.scriptLenCol[i];
  }
}
