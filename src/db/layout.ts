/**
 * Storage layout, format version 1.
 *
 * A database directory holds:
 *
 *   COULOMB     marker text written once at creation: format version and network. It is read before anything
 *               else is opened, so a database of another network or a newer format is refused untouched.
 *   headers     block headers, 80 bytes each, in height order          length = (height + 1) × 80
 *   txids       txids in internal byte order, 32 bytes each, by tx_num  length = tx_count × 32
 *   tx_counts   cumulative tx count after each height, 8 bytes LE       length = (height + 1) × 8
 *   leveldb/    the LevelDB database described below
 *
 * tx_num is a transaction's position in the chain (coinbase of genesis = 0). Inside keys every integer is big
 * endian so that keys sort numerically: tx_num 5 bytes, vout 3 bytes (consensus limits a transaction to far
 * fewer than 2^24 outputs), height 4 bytes. hashX is the first 11 bytes of sha256(output script).
 *
 * LevelDB keys (one-byte prefix):
 *
 *   'u' txid[0..4] vout          → (tx_num hashX)+, 16 bytes per entry
 *        UTXO by outpoint. The key is exact so that the block processor resolves a spend with one synchronous
 *        get (an iterator per spend costs ~60 µs in classic-level, a get ~5 µs, a miss ~1 µs thanks to the
 *        bloom filter). UTXOs whose txids share the 4-byte prefix and vout share the key; each entry is
 *        verified against the txids file. Normally there is exactly one entry.
 *   'h' hashX tx_num vout        → value, 8 bytes LE
 *        UTXO by owner, in chain order: listunspent and get_balance are one prefix scan.
 *   'H' hashX first_tx_num       → tx_num+, 5 bytes each, ascending
 *        History: one row per hashX per flush. Keyed by the row's first tx_num (not a flush number) so rows
 *        sort in chain order and a height range can seek straight to its first row.
 *   'U' height                   → undo record of that block (see encodeUndo), kept for the last REORG_LIMIT
 *        blocks: spent outputs (hashX tx_num vout value) and created outputs (hashX tx_num vout).
 *   't' txid[0..4] tx_num        → empty
 *        txid index, so transactions are found without bitcoind's -txindex; candidates are verified
 *        against the txids file.
 *   'S'                          → the state (see state.ts): version, network, height, tip, tx_count,
 *        flush_count, sync time, first-sync flag. It names the consistent cut: the flat files are truncated
 *        to the lengths it implies when the database is opened.
 *
 * A flush appends to the flat files and fsyncs them, then writes every LevelDB change since the previous
 * flush together with the new state in one batch with sync: true. A crash at any instant therefore leaves
 * either the old state or the new one.
 */

/** Current on-disk format version; databases with a higher one are refused. */
export const DB_VERSION = 1;

/** Key prefixes. */
export const PREFIX_UTXO = 0x75; // 'u'
export const PREFIX_OWNER = 0x68; // 'h'
export const PREFIX_HISTORY = 0x48; // 'H'
export const PREFIX_UNDO = 0x55; // 'U'
export const PREFIX_TXID = 0x74; // 't'
export const PREFIX_STATE = 0x53; // 'S'

/** Field sizes in bytes. */
export const HASHX_LEN = 11;
export const TXNUM_LEN = 5;
export const VOUT_LEN = 3;
export const TXID_PREFIX_LEN = 4;
export const HEADER_LEN = 80;
export const TXID_LEN = 32;
export const TX_COUNT_LEN = 8;

/** Largest output index a key can hold. */
export const MAX_VOUT = 0xffffff;
/** Size of one entry in a 'u' value: tx_num + hashX. */
export const UTXO_ENTRY_LEN = TXNUM_LEN + HASHX_LEN;
/** 'u' key length: prefix + txid prefix + vout. */
export const UTXO_KEY_LEN = 1 + TXID_PREFIX_LEN + VOUT_LEN;
/** 'h' key length: prefix + hashX + tx_num + vout. */
export const OWNER_KEY_LEN = 1 + HASHX_LEN + TXNUM_LEN + VOUT_LEN;
/** 'H' key length: prefix + hashX + first tx_num. */
export const HISTORY_KEY_LEN = 1 + HASHX_LEN + TXNUM_LEN;
/** 't' key length: prefix + txid prefix + tx_num. */
export const TXID_KEY_LEN = 1 + TXID_PREFIX_LEN + TXNUM_LEN;
/** One spent output in an undo record: hashX + tx_num + vout + value. */
export const UNDO_SPENT_LEN = HASHX_LEN + TXNUM_LEN + VOUT_LEN + 8;
/** One created output in an undo record: hashX + tx_num + vout. */
export const UNDO_CREATED_LEN = HASHX_LEN + TXNUM_LEN + VOUT_LEN;

/** The state key. */
export const STATE_KEY: Uint8Array = Uint8Array.of(PREFIX_STATE);

/** Writes a 5-byte big-endian tx_num at `off`. */
export function putTxNum(buf: Uint8Array, off: number, txNum: number): void {
  const hi = Math.floor(txNum / 0x100000000);
  buf[off] = hi;
  buf[off + 1] = txNum >>> 24;
  buf[off + 2] = txNum >>> 16;
  buf[off + 3] = txNum >>> 8;
  buf[off + 4] = txNum;
}

/** Reads a 5-byte big-endian tx_num at `off`. */
export function getTxNum(buf: Uint8Array, off: number): number {
  return buf[off] * 0x100000000 +
    ((buf[off + 1] << 24) >>> 0) + (buf[off + 2] << 16) + (buf[off + 3] << 8) + buf[off + 4];
}

/** Writes a 3-byte big-endian vout at `off`. */
export function putVout(buf: Uint8Array, off: number, vout: number): void {
  buf[off] = vout >>> 16;
  buf[off + 1] = vout >>> 8;
  buf[off + 2] = vout;
}

/** Reads a 3-byte big-endian vout at `off`. */
export function getVout(buf: Uint8Array, off: number): number {
  return (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2];
}

/** Writes a 4-byte big-endian height at `off`. */
export function putHeight(buf: Uint8Array, off: number, height: number): void {
  buf[off] = height >>> 24;
  buf[off + 1] = height >>> 16;
  buf[off + 2] = height >>> 8;
  buf[off + 3] = height;
}

/** Writes an 8-byte little-endian amount (a non-negative safe integer) at `off`. */
export function putValue(buf: Uint8Array, off: number, value: number): void {
  const lo = value >>> 0;
  const hi = Math.floor(value / 0x100000000);
  buf[off] = lo;
  buf[off + 1] = lo >>> 8;
  buf[off + 2] = lo >>> 16;
  buf[off + 3] = lo >>> 24;
  buf[off + 4] = hi;
  buf[off + 5] = hi >>> 8;
  buf[off + 6] = hi >>> 16;
  buf[off + 7] = hi >>> 24;
}

/** Reads an 8-byte little-endian amount at `off`. */
export function getValue(buf: Uint8Array, off: number): number {
  const lo = (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
  const hi = (buf[off + 4] | (buf[off + 5] << 8) | (buf[off + 6] << 16) | (buf[off + 7] << 24)) >>> 0;
  return hi * 0x100000000 + lo;
}

/** 'u' key of an outpoint, written into `out` (UTXO_KEY_LEN bytes) at `off`. */
export function utxoKeyInto(out: Uint8Array, off: number, txid: Uint8Array, vout: number): void {
  out[off] = PREFIX_UTXO;
  out[off + 1] = txid[0];
  out[off + 2] = txid[1];
  out[off + 3] = txid[2];
  out[off + 4] = txid[3];
  putVout(out, off + 5, vout);
}

/** 'h' key of a UTXO. */
export function ownerKey(hashX: Uint8Array, txNum: number, vout: number): Uint8Array {
  const k = new Uint8Array(OWNER_KEY_LEN);
  k[0] = PREFIX_OWNER;
  k.set(hashX.subarray(0, HASHX_LEN), 1);
  putTxNum(k, 1 + HASHX_LEN, txNum);
  putVout(k, 1 + HASHX_LEN + TXNUM_LEN, vout);
  return k;
}

/** 'H' key of a history row. */
export function historyKey(hashX: Uint8Array, firstTxNum: number): Uint8Array {
  const k = new Uint8Array(HISTORY_KEY_LEN);
  k[0] = PREFIX_HISTORY;
  k.set(hashX.subarray(0, HASHX_LEN), 1);
  putTxNum(k, 1 + HASHX_LEN, firstTxNum);
  return k;
}

/** 'U' key of a block's undo record. */
export function undoKey(height: number): Uint8Array {
  const k = new Uint8Array(5);
  k[0] = PREFIX_UNDO;
  putHeight(k, 1, height);
  return k;
}

/** 't' key of a transaction. */
export function txidKey(txid: Uint8Array, txNum: number): Uint8Array {
  const k = new Uint8Array(TXID_KEY_LEN);
  k[0] = PREFIX_TXID;
  k.set(txid.subarray(0, TXID_PREFIX_LEN), 1);
  putTxNum(k, 1 + TXID_PREFIX_LEN, txNum);
  return k;
}

/** A key prefix (prefix byte + bytes) for range scans. */
export function prefixKey(prefix: number, bytes: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + bytes.length);
  k[0] = prefix;
  k.set(bytes, 1);
  return k;
}

/** The smallest key greater than every key starting with `prefix` (for `lt` bounds). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff: nothing sorts after the prefix within the key space we use.
  return Uint8Array.of(
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
  );
}

/** Spent and created outputs of one block, as kept for undoing it. */
export interface UndoRecord {
  /** UNDO_SPENT_LEN bytes per spent output: hashX, tx_num, vout, value. */
  spent: Uint8Array;
  /** UNDO_CREATED_LEN bytes per created (stored) output: hashX, tx_num, vout. */
  created: Uint8Array;
}

/** Serializes an undo record: u32 LE count of spent entries, spent entries, created entries. */
export function encodeUndo(rec: UndoRecord): Uint8Array {
  const out = new Uint8Array(4 + rec.spent.length + rec.created.length);
  const n = rec.spent.length / UNDO_SPENT_LEN;
  out[0] = n;
  out[1] = n >>> 8;
  out[2] = n >>> 16;
  out[3] = n >>> 24;
  out.set(rec.spent, 4);
  out.set(rec.created, 4 + rec.spent.length);
  return out;
}

/** Parses an undo record; returns undefined when its lengths do not add up. */
export function decodeUndo(buf: Uint8Array): UndoRecord | undefined {
  if (buf.length < 4) return undefined;
  const n = (buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)) >>> 0;
  const spentEnd = 4 + n * UNDO_SPENT_LEN;
  if (spentEnd > buf.length || (buf.length - spentEnd) % UNDO_CREATED_LEN !== 0) return undefined;
  return { spent: buf.subarray(4, spentEnd), created: buf.subarray(spentEnd) };
}
