// Unflushed changes to the 'u' (UTXO by outpoint) index. Its keys hold a list of entries, so every change is a
// read-modify-write of the whole value; the overlay remembers each rewritten value until the flush writes it,
// and later reads in the same window see the rewritten value rather than the stale one on disk.
import { DbError } from "./errors.ts";
import {
  getTxNum,
  HASHX_LEN,
  MAX_VOUT,
  OWNER_KEY_LEN,
  PREFIX_OWNER,
  putTxNum,
  putVout,
  TXNUM_LEN,
  UTXO_ENTRY_LEN,
  UTXO_KEY_LEN,
  utxoKeyInto,
} from "./layout.ts";

/** What the overlay reads: flushed 'u' values and flushed txids. */
export interface UtxoReader {
  /** The flushed value of a 'u' key, or undefined. */
  getUtxoEntries(key: Uint8Array): Uint8Array | undefined;
  /** True when the flushed txid of `txNum` equals `txid`. */
  txidEquals(txNum: number, txid: Uint8Array): boolean;
}

/** Where the overlay writes its changes (a LevelDB chained batch). */
export interface BatchSink {
  put(key: Uint8Array, value: Uint8Array): unknown;
  del(key: Uint8Array): unknown;
}

const EMPTY = new Uint8Array(0);

/** Pending 'u' rewrites plus the 'h' deletions of outputs spent from the database. */
export class UtxoOverlay {
  private readonly changed = new Map<string, Uint8Array>();
  private readonly key = new Uint8Array(UTXO_KEY_LEN);
  // 'h' keys to delete, OWNER_KEY_LEN bytes each, grown by doubling.
  private ownerDeletes = new Uint8Array(OWNER_KEY_LEN * 64);
  private ownerDeleteCount = 0;

  constructor(private readonly reader: UtxoReader) {}

  /** Number of rewritten 'u' keys plus pending 'h' deletions (for cache accounting). */
  get size(): number {
    return this.changed.size + this.ownerDeleteCount;
  }

  /** Approximate memory held, in bytes. */
  get bytes(): number {
    return this.changed.size * 120 + this.ownerDeletes.length;
  }

  /**
   * Spends the flushed output (txid, vout): removes it from the 'u' index and schedules its 'h' key for
   * deletion. Writes its hashX into `hashXOut` at `hashXOff` and returns its tx_num, or -1 when no such
   * unspent output is flushed. With duplicate txids (BIP30's two mainnet cases) the latest one is spent.
   */
  spend(txid: Uint8Array, vout: number, hashXOut: Uint8Array, hashXOff: number): number {
    if (vout > MAX_VOUT) return -1;
    const ks = this.lookupKey(txid, vout);
    const entries = this.entries(ks);
    let found = -1;
    let foundTxNum = -1;
    for (let off = 0; off < entries.length; off += UTXO_ENTRY_LEN) {
      const txNum = getTxNum(entries, off);
      if (txNum > foundTxNum && this.reader.txidEquals(txNum, txid)) {
        found = off;
        foundTxNum = txNum;
      }
    }
    if (found < 0) return -1;
    hashXOut.set(entries.subarray(found + TXNUM_LEN, found + UTXO_ENTRY_LEN), hashXOff);
    const rest = new Uint8Array(entries.length - UTXO_ENTRY_LEN);
    rest.set(entries.subarray(0, found), 0);
    rest.set(entries.subarray(found + UTXO_ENTRY_LEN), found);
    this.changed.set(ks, rest);
    this.deleteOwner(entries, found + TXNUM_LEN, foundTxNum, vout);
    return foundTxNum;
  }

  /** Adds an output under (txid[0..4], vout). The caller writes its 'h' key. */
  insert(
    txid: Uint8Array,
    txidOff: number,
    vout: number,
    txNum: number,
    hashX: Uint8Array,
    hashXOff: number,
  ): void {
    if (vout > MAX_VOUT) {
      throw new DbError(
        "vout-too-large",
        `output index ${vout} exceeds the 3-byte key field; the block is invalid`,
      );
    }
    const ks = this.lookupKey(txid.subarray(txidOff, txidOff + 4), vout);
    const entries = this.entries(ks);
    const next = new Uint8Array(entries.length + UTXO_ENTRY_LEN);
    next.set(entries, 0);
    putTxNum(next, entries.length, txNum);
    next.set(hashX.subarray(hashXOff, hashXOff + HASHX_LEN), entries.length + TXNUM_LEN);
    this.changed.set(ks, next);
  }

  /** Removes the entry with `txNum` under (txid[0..4], vout), if present (undoing a block's outputs). */
  remove(txidPrefix: Uint8Array, vout: number, txNum: number): boolean {
    const ks = this.lookupKey(txidPrefix, vout);
    const entries = this.entries(ks);
    for (let off = 0; off < entries.length; off += UTXO_ENTRY_LEN) {
      if (getTxNum(entries, off) !== txNum) continue;
      const rest = new Uint8Array(entries.length - UTXO_ENTRY_LEN);
      rest.set(entries.subarray(0, off), 0);
      rest.set(entries.subarray(off + UTXO_ENTRY_LEN), off);
      this.changed.set(ks, rest);
      return true;
    }
    return false;
  }

  /** Emits every change; returns the number of puts and deletes. */
  writeTo(batch: BatchSink): { puts: number; deletes: number } {
    let puts = 0, deletes = 0;
    for (const [ks, entries] of this.changed) {
      const key = new Uint8Array(UTXO_KEY_LEN);
      for (let i = 0; i < UTXO_KEY_LEN; i++) key[i] = ks.charCodeAt(i);
      if (entries.length === 0) {
        batch.del(key);
        deletes++;
      } else {
        batch.put(key, entries);
        puts++;
      }
    }
    for (let i = 0; i < this.ownerDeleteCount; i++) {
      batch.del(this.ownerDeletes.subarray(i * OWNER_KEY_LEN, (i + 1) * OWNER_KEY_LEN));
      deletes++;
    }
    return { puts, deletes };
  }

  /** Forgets everything (after a flush). */
  clear(): void {
    this.changed.clear();
    this.ownerDeleteCount = 0;
    if (this.ownerDeletes.length > OWNER_KEY_LEN * 4096) {
      this.ownerDeletes = new Uint8Array(OWNER_KEY_LEN * 64);
    }
  }

  // Fills the scratch key and returns its string form; the string is the Map key.
  private lookupKey(txid: Uint8Array, vout: number): string {
    const k = this.key;
    utxoKeyInto(k, 0, txid, vout);
    return String.fromCharCode(k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]);
  }

  // Entries of the key last passed to lookupKey: the rewritten value, else the flushed one.
  private entries(ks: string): Uint8Array {
    const pending = this.changed.get(ks);
    if (pending !== undefined) return pending;
    const flushed = this.reader.getUtxoEntries(this.key);
    if (flushed === undefined) return EMPTY;
    if (flushed.length % UTXO_ENTRY_LEN !== 0) {
      throw new DbError("corrupt", "a UTXO index value has a bad length; the database is damaged: resync");
    }
    return flushed;
  }

  private deleteOwner(hashXSrc: Uint8Array, hashXOff: number, txNum: number, vout: number): void {
    const need = (this.ownerDeleteCount + 1) * OWNER_KEY_LEN;
    if (need > this.ownerDeletes.length) {
      const grown = new Uint8Array(this.ownerDeletes.length * 2);
      grown.set(this.ownerDeletes);
      this.ownerDeletes = grown;
    }
    const off = this.ownerDeleteCount * OWNER_KEY_LEN;
    const k = this.ownerDeletes;
    k[off] = PREFIX_OWNER;
    k.set(hashXSrc.subarray(hashXOff, hashXOff + HASHX_LEN), off + 1);
    putTxNum(k, off + 1 + HASHX_LEN, txNum);
    putVout(k, off + 1 + HASHX_LEN + TXNUM_LEN, vout);
    this.ownerDeleteCount++;
  }
}
