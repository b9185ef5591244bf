// The database: flat files for headers, txids and per-block tx counts, LevelDB for everything keyed. The read
// API is what the server uses; commit() and backup() are for the block processor only. Reads see flushed data
// only, and always one consistent cut: an async read never overlaps a commit (see Gate).
import { ClassicLevel } from "classic-level";
import { sha256d } from "../chain/hash.ts";
import { DbError } from "./errors.ts";
import { FlatFile } from "./flat_file.ts";
import {
  DB_VERSION,
  decodeUndo,
  getTxNum,
  getValue,
  getVout,
  HASHX_LEN,
  HEADER_LEN,
  historyKey,
  ownerKey,
  PREFIX_HISTORY,
  PREFIX_OWNER,
  PREFIX_TXID,
  prefixEnd,
  prefixKey,
  putValue,
  STATE_KEY,
  TX_COUNT_LEN,
  TXID_LEN,
  TXID_PREFIX_LEN,
  txidKey,
  TXNUM_LEN,
  UNDO_CREATED_LEN,
  UNDO_SPENT_LEN,
  undoKey,
  UTXO_ENTRY_LEN,
  UTXO_KEY_LEN,
  utxoKeyInto,
} from "./layout.ts";
import { type DbState, decodeState, emptyState, encodeState, stateVersion } from "./state.ts";
import { type BatchSink, UtxoOverlay } from "./utxo_overlay.ts";
import { SortedBatch } from "./sorted_batch.ts";
import { HashXCache, ReadCache } from "./read_cache.ts";
import { ScanPool, type SeekableIterator } from "./scan_pool.ts";

/** The log lines the store writes. */
export interface StoreLog {
  info(message: string): void;
  warn(message: string): void;
}

/** Options of Store.open. */
export interface StoreOptions {
  log: StoreLog;
  /** LevelDB block cache in bytes (default 64 MiB). */
  readCacheBytes?: number;
  /** LevelDB memtable size in bytes (default 32 MiB); larger means fewer compactions during sync. */
  writeBufferBytes?: number;
}

/** A confirmed transaction's place. */
export interface TxLocation {
  txNum: number;
  height: number;
  index: number;
}

/** One entry of a script hash's history. */
export interface HistoryItem {
  txHash: Uint8Array;
  height: number;
  txNum: number;
}

/** One unspent output of a script hash. */
export interface UtxoItem {
  txHash: Uint8Array;
  vout: number;
  height: number;
  value: number;
  txNum: number;
}

/** A confirmed history in packed form (Store.historyRows): entry i is txNums[i], heights[i] and the 32 bytes
 * of txids at i × 32 (internal order). */
export interface HistoryRows {
  readonly count: number;
  readonly txNums: Float64Array;
  readonly heights: Int32Array;
  readonly txids: Uint8Array;
}

/** Unspent outputs in packed form (Store.utxoRows), in chain order. */
export interface UtxoRows {
  readonly count: number;
  readonly txNums: Float64Array;
  readonly vouts: Int32Array;
  readonly values: Float64Array;
  readonly heights: Int32Array;
  readonly txids: Uint8Array;
}

const EMPTY_HISTORY: HistoryRows = {
  count: 0,
  txNums: new Float64Array(0),
  heights: new Int32Array(0),
  txids: new Uint8Array(0),
};
const EMPTY_UTXOS: UtxoRows = {
  count: 0,
  txNums: new Float64Array(0),
  vouts: new Int32Array(0),
  values: new Float64Array(0),
  heights: new Int32Array(0),
  txids: new Uint8Array(0),
};

// readTxids reads neighbouring txids with one system call when they are at most this many records apart (8 KB:
// copying that much costs about what one more read system call does) and a run spans at most TXID_RUN_MAX
// records.
const TXID_RUN_GAP = 256;
const TXID_RUN_MAX = 16384;
/** Default bounds of the read caches (see read_cache.ts). */
const HISTORY_CACHE_BYTES = 64 << 20;
const OWNER_CACHE_BYTES = 48 << 20;
// What a cached entry costs besides its columns, measured as RSS growth over 200,000 entries: the object, the
// ArrayBuffer and its typed array views.
const HISTORY_ENTRY_BYTES = 900;
const OWNER_ENTRY_BYTES = 1300;
const BLOCK_HASH_CACHE_BYTES = 8 << 20;
// Where confirmed transactions are: wallets ask for the proofs of their own transactions at every sync, and a
// lookup is a LevelDB scan. A location object costs ~150 bytes of heap.
const TX_LOCATION_CACHE_ENTRIES = 1 << 17;
const TX_LOCATION_ENTRY_BYTES = 150;
/** Most script hashes each of the history and UTXO caches holds. */
const CACHE_ENTRIES = 1 << 18;
// Idle LevelDB iterators kept for reuse: as many as there are scans at once when every one of MAX_SESSIONS'
// default 1,000 sessions misses the caches. Creating an iterator costs the main thread 11-23 us and closing one
// ~4 us, about what the whole request costs otherwise; with 64 kept, 1,000 busy sessions made and closed one
// per miss (measured: 16-17k -> 21-23k req/s on a cold server, 23-25k -> 26-32k warm). Idle ones cost no
// measurable memory, and closing 1,024 stale ones after a new block takes ~4 ms.
const SCAN_ITERATORS_KEPT = 1024;

/** Everything a flush writes: the new blocks' flat-file records, the LevelDB changes and the new state. */
export interface FlushUpdate {
  /** Headers of the new blocks, 80 bytes each. */
  headers: Uint8Array;
  /** Txids of the new transactions, 32 bytes each, in tx_num order. */
  txids: Uint8Array;
  /** Cumulative tx count after each new block. */
  txCounts: ArrayLike<number>;
  /** The state after this flush. */
  state: DbState;
  /**
   * Every hashX (packed, HASHX_LEN bytes each) whose history or UTXOs this flush changes. With it, read caches
   * keep what they hold for all other hashXs; without it they are emptied.
   */
  touched?: Uint8Array;
  /**
   * The outpoints the new blocks' inputs spend, 36 bytes each (txid in internal order, then the vout as a
   * little-endian u32), coinbases excluded; undefined when the writer did not collect them all.
   */
  spends?: Uint8Array;
  /**
   * Adds every LevelDB change of the flush to the batch (the state is added by commit); calling
   * `batch.section()` between kinds of keys keeps the memory held twice small.
   */
  build(batch: SortedBatch): void;
}

/**
 * A listener of Store.onAppend: a flush's new txids, the outpoints they spend and the hashXs it changed (see
 * FlushUpdate; `spends` and `touched` may be undefined).
 */
export type AppendListener = (
  txids: Uint8Array,
  spends: Uint8Array | undefined,
  touched: Uint8Array | undefined,
) => void;

/** A listener of Store.onBackup: the hashXs whose history or UTXOs the backup changed. */
export type BackupListener = (touched: readonly Uint8Array[]) => void;

/** What a backup changed. */
export interface BackupResult {
  /** hashXs whose history or UTXOs changed. */
  touched: Uint8Array[];
  puts: number;
  deletes: number;
}

/** What one chunk of history compaction did. */
export interface HistoryCompaction {
  /** Key to continue from; undefined once the whole history index has been visited. */
  next: Uint8Array | undefined;
  /** Rows visited. */
  rowsRead: number;
  /** Merged rows written (each replaces the first row of its run). */
  rowsWritten: number;
  /** Rows deleted because their entries moved into a merged row. */
  rowsDeleted: number;
}

/** Entries a merged history row may hold (5 bytes each): big rows mean few keys, but each read decodes a whole row. */
export const MAX_MERGED_ROW_TXNUMS = 10_000;

const MARKER = "COULOMB";
const MARKER_MAGIC = "coulomb-db";

/**
 * Reads wait while a commit is being applied; a commit waits for reads already running. A read therefore sees
 * the state and LevelDB contents of one flush, even across its several awaits.
 */
class Gate {
  private readers = 0;
  private writer: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async read<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    this.readers++;
    try {
      return await fn();
    } finally {
      if (--this.readers === 0 && this.drained) {
        const d = this.drained;
        this.drained = null;
        d();
      }
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.writer;
    let release!: () => void;
    this.writer = new Promise<void>((r) => (release = r));
    try {
      if (this.readers > 0) await new Promise<void>((r) => (this.drained = r));
      return await fn();
    } finally {
      this.writer = null;
      release();
    }
  }
}

/** The Coulomb database of one network. */
export class Store {
  private current: DbState;
  // Cumulative tx count after each height, for tx_num → height by binary search; kept in memory (8 B/block).
  private txCounts: Float64Array;
  private readonly gate = new Gate();
  private readonly txidScratch = new Uint8Array(TXID_LEN);
  private readonly txidRun = new Uint8Array(TXID_RUN_MAX * TXID_LEN);
  private readonly historyCache = new HashXCache<HistoryRows>(HISTORY_CACHE_BYTES, CACHE_ENTRIES);
  private readonly ownerCache = new HashXCache<UtxoRows>(OWNER_CACHE_BYTES, CACHE_ENTRIES);
  private readonly blockHashCache = new ReadCache<Uint8Array>(BLOCK_HASH_CACHE_BYTES);
  private readonly txLocationCache = new HashXCache<TxLocation>(
    TX_LOCATION_CACHE_ENTRIES * TX_LOCATION_ENTRY_BYTES,
    TX_LOCATION_CACHE_ENTRIES,
    TXID_LEN,
  );
  // Caches of answers per hashX kept elsewhere (the server's history JSON), carried across flushes like ours.
  private readonly followers: HashXCache<unknown>[] = [];
  private readonly appendListeners: AppendListener[] = [];
  private readonly backupListeners: BackupListener[] = [];
  private readonly scans: ScanPool;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly db: ClassicLevel<Uint8Array, Uint8Array>,
    private readonly headersFile: FlatFile,
    private readonly txidsFile: FlatFile,
    private readonly txCountsFile: FlatFile,
    state: DbState,
    txCounts: Float64Array,
    private readonly writeBufferBytes: number,
  ) {
    this.current = state;
    this.txCounts = txCounts;
    this.scans = new ScanPool(
      () => db.iterator({ fillCache: true }) as unknown as SeekableIterator,
      SCAN_ITERATORS_KEPT,
    );
  }

  /**
   * Has a cache keyed by hashX and by `state` (like the store's own) keep its entries across flushes, losing only
   * the hashXs each flush changed. Without this it empties at every flush, which is also correct.
   */
  followCache(cache: HashXCache<unknown>): void {
    this.followers.push(cache);
  }

  /**
   * Calls `fn` with the txids (32 bytes each, internal order) of every flush's new transactions and the
   * outpoints they spend (FlushUpdate.spends), in the same synchronous step that makes the flush visible to
   * readers, so that state kept beside the database (the mempool) changes with it. `fn` must not throw: the
   * flush has already been committed.
   */
  onAppend(fn: AppendListener): void {
    this.appendListeners.push(fn);
  }

  /**
   * Calls `fn` with the hashXs a backup (blocks undone) changed, in the same synchronous step that makes it
   * visible; `fn` must not throw.
   */
  onBackup(fn: BackupListener): void {
    this.backupListeners.push(fn);
  }

  /**
   * Opens (or creates) the database in `dir` for `network`. Refuses, without touching anything, a database of
   * another network ("wrong-network"), of a newer format ("newer-format"), or a non-empty directory that is not
   * a Coulomb database ("not-a-database"). Flat files are cut back to the lengths the state implies.
   */
  static async open(dir: string, network: { readonly name: string }, opts: StoreOptions): Promise<Store> {
    const created = checkMarker(dir, network.name);
    const writeBufferBytes = opts.writeBufferBytes ?? 32 << 20;
    const db = new ClassicLevel<Uint8Array, Uint8Array>(`${dir}/leveldb`, {
      keyEncoding: "view",
      valueEncoding: "view",
      createIfMissing: true,
      cacheSize: opts.readCacheBytes ?? 64 << 20,
      writeBufferSize: writeBufferBytes,
      maxFileSize: 16 << 20,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? String(err);
      if (/lock/i.test(cause)) {
        throw new DbError("locked", `database ${dir} is in use by another process (${cause})`);
      }
      throw new DbError("open-failed", `cannot open LevelDB in ${dir}: ${cause}`);
    }
    const files: FlatFile[] = [];
    try {
      let state: DbState;
      const raw = db.getSync(STATE_KEY);
      if (raw === undefined) {
        state = emptyState(network.name);
        await db.put(STATE_KEY, encodeState(state), { sync: true });
      } else {
        const version = stateVersion(raw);
        if (version > DB_VERSION) throw newerFormat(dir, version);
        state = decodeState(raw);
        if (state.network !== network.name) throw wrongNetwork(dir, state.network, network.name);
      }
      const headersFile = FlatFile.open(`${dir}/headers`, HEADER_LEN);
      files.push(headersFile);
      const txidsFile = FlatFile.open(`${dir}/txids`, TXID_LEN);
      files.push(txidsFile);
      const txCountsFile = FlatFile.open(`${dir}/tx_counts`, TX_COUNT_LEN);
      files.push(txCountsFile);
      const blocks = state.height + 1;
      cutTo(headersFile, blocks * HEADER_LEN, opts.log);
      cutTo(txidsFile, state.txCount * TXID_LEN, opts.log);
      cutTo(txCountsFile, blocks * TX_COUNT_LEN, opts.log);
      const counts = new Float64Array(Math.max(1024, blocks * 2));
      if (blocks > 0) {
        const bytes = txCountsFile.read(0, blocks);
        const view = new DataView(bytes.buffer);
        for (let h = 0; h < blocks; h++) counts[h] = view.getFloat64(h * 8, true);
        if (counts[blocks - 1] !== state.txCount) {
          throw new DbError(
            "corrupt",
            `tx_counts in ${dir} ends at ${
              counts[blocks - 1]
            } transactions but the state says ${state.txCount}; ` +
              "delete the database and resync",
          );
        }
      }
      if (created) opts.log.info(`created new database ${dir}`);
      return new Store(dir, db, headersFile, txidsFile, txCountsFile, state, counts, writeBufferBytes);
    } catch (err) {
      for (const f of files) f.close();
      await db.close();
      throw err;
    }
  }

  /** LevelDB iterators made for range scans so far; they are pooled and reused (for tests and metrics). */
  get scanIteratorsCreated(): number {
    return this.scans.created;
  }

  /** The flushed state: height (-1 when empty), tip hash, tx count, flush count, sync time, first-sync flag. */
  get state(): Readonly<DbState> {
    return this.current;
  }

  /** Headers `from .. from+count-1` concatenated, clipped to the flushed height. */
  headers(from: number, count: number): Uint8Array {
    const height = this.current.height;
    if (
      !Number.isSafeInteger(from) || !Number.isSafeInteger(count) || from < 0 || count <= 0 || from > height
    ) {
      return new Uint8Array(0);
    }
    const n = Math.min(count, height - from + 1);
    return this.headersFile.read(from, n);
  }

  /** The 80-byte header at `height`, or undefined above the tip. */
  headerAt(height: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(height) || height < 0 || height > this.current.height) return undefined;
    return this.headersFile.read(height, 1);
  }

  /** The block hash at `height` (internal order), or undefined above the tip. */
  blockHashAt(height: number): Uint8Array | undefined {
    const s = this.current;
    if (height === s.height) return s.tipHash.slice();
    const key = String(height);
    const cached = this.blockHashCache.get(s, key);
    if (cached !== undefined) return cached.slice();
    const h = this.headerAt(height);
    if (h === undefined) return undefined;
    const hash = sha256d(h);
    this.blockHashCache.set(s, key, hash, 256);
    return hash.slice();
  }

  /** The txid (internal order) of `txNum`; throws DbError "not-found" beyond the flushed tx count. */
  txHash(txNum: number): Uint8Array {
    this.checkTxNum(txNum);
    return this.txidsFile.read(txNum, 1);
  }

  /** The txids (internal order, 32 bytes each) of tx numbers `first .. first+count-1`; DbError "not-found" past
   * the flushed tx count. */
  txidRange(first: number, count: number): Uint8Array {
    if (count <= 0) return new Uint8Array(0);
    this.checkTxNum(first);
    this.checkTxNum(first + count - 1);
    return this.txidsFile.read(first, count);
  }

  /** Height of the block holding `txNum` and its index in that block. */
  txPosition(txNum: number): { height: number; index: number } {
    this.checkTxNum(txNum);
    const height = this.heightOf(txNum);
    return { height, index: txNum - (height > 0 ? this.txCounts[height - 1] : 0) };
  }

  /** First tx_num and tx count of the block at `height` (for merkle branches). */
  txNumsOfBlock(height: number): { first: number; count: number } {
    if (!Number.isSafeInteger(height) || height < 0 || height > this.current.height) {
      throw new DbError(
        "not-found",
        `no block at height ${height}; the database is at ${this.current.height}`,
      );
    }
    const first = height > 0 ? this.txCounts[height - 1] : 0;
    return { first, count: this.txCounts[height] - first };
  }

  /** The txids of the block at `height`, concatenated in block order. */
  blockTxids(height: number): Uint8Array {
    const { first, count } = this.txNumsOfBlock(height);
    return this.txidsFile.read(first, count);
  }

  /** Where a confirmed transaction is; undefined if it is not in the flushed chain. */
  findTx(txid: Uint8Array): Promise<TxLocation | undefined> {
    return this.gate.read(async () => {
      if (txid.length !== TXID_LEN) return undefined;
      const s = this.current;
      const cached = this.txLocationCache.get(s, txid);
      if (cached !== undefined) return { ...cached };
      const found = await this.locateTx(txid);
      // Only hits are kept: a txid not found now may be confirmed by the next block.
      if (found !== undefined) this.txLocationCache.set(s, txid, found, TX_LOCATION_ENTRY_BYTES);
      return found === undefined ? undefined : { ...found };
    });
  }

  // The txid's candidates by its key prefix, then the flat file decides. Runs inside a gated read.
  private async locateTx(txid: Uint8Array): Promise<TxLocation | undefined> {
    const prefix = prefixKey(PREFIX_TXID, txid.subarray(0, TXID_PREFIX_LEN));
    const txNums: number[] = [];
    await this.scans.scan(this.current, prefix, prefixEnd(prefix), (key) => {
      txNums.push(getTxNum(key, 1 + TXID_PREFIX_LEN));
    });
    // Later duplicates (BIP30) shadow earlier ones, as in bitcoind.
    for (let i = txNums.length - 1; i >= 0; i--) {
      const txNum = txNums[i];
      if (txNum < this.current.txCount && this.txidEquals(txNum, txid)) {
        return { txNum, ...this.txPosition(txNum) };
      }
    }
    return undefined;
  }

  /**
   * Confirmed history of a hashX in chain order. `fromHeight`/`toHeight` are inclusive; `limit` caps the
   * number of items returned.
   */
  async history(
    hashX: Uint8Array,
    opts: { fromHeight?: number; toHeight?: number; limit?: number } = {},
  ): Promise<HistoryItem[]> {
    const rows = await this.historyRows(hashX, opts);
    // A copy: rows may be the cache's own.
    const txids = rows.txids.slice();
    const out: HistoryItem[] = new Array(rows.count);
    for (let i = 0; i < rows.count; i++) {
      out[i] = {
        txHash: txids.subarray(i * TXID_LEN, i * TXID_LEN + TXID_LEN),
        height: rows.heights[i],
        txNum: rows.txNums[i],
      };
    }
    return out;
  }

  /**
   * history() in packed form: no object per entry, and the txids in one buffer (for JSON and status hashing).
   * The result may be shared with the cache: read it, never write to it.
   */
  historyRows(
    hashX: Uint8Array,
    opts: { fromHeight?: number; toHeight?: number; limit?: number } = {},
  ): Promise<HistoryRows> {
    return this.gate.read(async () => {
      const s = this.current;
      if (hashX.length !== HASHX_LEN || s.height < 0) return EMPTY_HISTORY;
      const fromHeight = Math.max(0, opts.fromHeight ?? 0);
      const toHeight = Math.min(s.height, opts.toHeight ?? s.height);
      const limit = opts.limit ?? Infinity;
      if (fromHeight > toHeight || limit <= 0) return EMPTY_HISTORY;
      const lo = fromHeight > 0 ? this.txCounts[fromHeight - 1] : 0;
      const hi = this.txCounts[toHeight];
      const cached = this.historyCache.get(s, hashX);
      if (cached === undefined) {
        const whole = lo === 0 && hi === s.txCount;
        const scanned = await this.scanHistory(hashX, lo, hi, limit);
        const rows = this.packHistory(scanned);
        // Only a complete history is worth keeping: a partial one answers nothing else.
        if (whole && scanned.length < limit) {
          this.historyCache.set(s, hashX, rows, HISTORY_ENTRY_BYTES + rows.count * 44);
        }
        return rows;
      }
      const start = lo === 0 ? 0 : lowerBound(cached.txNums, lo);
      const stop = hi === s.txCount ? cached.count : lowerBound(cached.txNums, hi);
      const end = Math.min(stop, start + limit);
      if (start === 0 && end === cached.count) return cached;
      return {
        count: end - start,
        txNums: cached.txNums.subarray(start, end),
        heights: cached.heights.subarray(start, end),
        txids: cached.txids.subarray(start * TXID_LEN, end * TXID_LEN),
      };
    });
  }

  /**
   * The whole confirmed history of a hashX when the cache holds it, else undefined; never touches the database,
   * so a caller can answer without awaiting. Shared with the cache: read it, never write to it.
   */
  cachedHistory(hashX: Uint8Array): HistoryRows | undefined {
    return hashX.length === HASHX_LEN ? this.historyCache.get(this.current, hashX) : undefined;
  }

  /** The unspent outputs of a hashX when the cache holds them, else undefined (see cachedHistory). */
  cachedUtxos(hashX: Uint8Array): UtxoRows | undefined {
    return hashX.length === HASHX_LEN ? this.ownerCache.get(this.current, hashX) : undefined;
  }

  // Tx numbers of hashX's history in [lo, hi), at most `limit` of them.
  private async scanHistory(hashX: Uint8Array, lo: number, hi: number, limit: number): Promise<number[]> {
    const out: number[] = [];
    const prefix = prefixKey(PREFIX_HISTORY, hashX);
    const end = prefixEnd(prefix);
    // The row holding `lo` is the last one whose first tx_num is <= lo.
    let start = prefix;
    if (lo > 0) {
      const before = await this.db.keys({ gte: prefix, lte: historyKey(hashX, lo), reverse: true, limit: 1 })
        .all();
      if (before.length > 0) start = before[0];
    }
    await this.scans.scan(this.current, start, end, (_key, row) => {
      for (let off = 0; off < row.length; off += TXNUM_LEN) {
        const txNum = getTxNum(row, off);
        if (txNum < lo) continue;
        if (txNum >= hi) return false;
        out.push(txNum);
        if (out.length >= limit) return false;
      }
    });
    return out;
  }

  // The rows of ascending tx numbers, in one buffer: each typed array costs a few hundred bytes of its own, and a
  // cache holds hundreds of thousands of small histories.
  private packHistory(nums: ArrayLike<number>): HistoryRows {
    const count = nums.length;
    const buf = new ArrayBuffer(count * (8 + 4 + TXID_LEN));
    const txNums = new Float64Array(buf, 0, count);
    const heights = new Int32Array(buf, count * 8, count);
    const txids = new Uint8Array(buf, count * 12, count * TXID_LEN);
    txNums.set(nums);
    let height = -1, blockEnd = 0;
    for (let i = 0; i < count; i++) {
      const txNum = txNums[i];
      if (txNum >= blockEnd) {
        height = this.heightOf(txNum);
        blockEnd = this.txCounts[height];
      }
      heights[i] = height;
    }
    this.readTxids(txNums, txids);
    return { count, txNums, txids, heights };
  }

  /**
   * The txids of ascending tx numbers, 32 bytes each. Neighbours are read together: one read of a run costs
   * about what the system calls for a single txid cost, so a long history is a few hundred reads, not one
   * per entry.
   */
  readTxids(
    txNums: ArrayLike<number>,
    out: Uint8Array = new Uint8Array(txNums.length * TXID_LEN),
  ): Uint8Array {
    const n = txNums.length;
    let i = 0;
    while (i < n) {
      const first = txNums[i];
      let j = i + 1;
      while (
        j < n && txNums[j] - txNums[j - 1] <= TXID_RUN_GAP && txNums[j] - first < TXID_RUN_MAX &&
        txNums[j] >= txNums[j - 1]
      ) j++;
      if (j === i + 1) {
        this.checkTxNum(first);
        this.txidsFile.readInto(first * TXID_LEN, out.subarray(i * TXID_LEN, j * TXID_LEN));
      } else {
        const last = txNums[j - 1];
        this.checkTxNum(last);
        const run = this.txidRun.length >= (last - first + 1) * TXID_LEN
          ? this.txidRun.subarray(0, (last - first + 1) * TXID_LEN)
          : new Uint8Array((last - first + 1) * TXID_LEN);
        this.txidsFile.readInto(first * TXID_LEN, run);
        for (let k = i; k < j; k++) {
          const at = (txNums[k] - first) * TXID_LEN;
          const to = k * TXID_LEN;
          for (let b = 0; b < TXID_LEN; b++) out[to + b] = run[at + b];
        }
      }
      i = j;
    }
    return out;
  }

  /** Unspent outputs of a hashX, in chain order. */
  async utxos(hashX: Uint8Array): Promise<UtxoItem[]> {
    const rows = await this.utxoRows(hashX);
    // A copy: rows may be the cache's own.
    const txids = rows.txids.slice();
    const out: UtxoItem[] = new Array(rows.count);
    for (let i = 0; i < rows.count; i++) {
      out[i] = {
        txHash: txids.subarray(i * TXID_LEN, i * TXID_LEN + TXID_LEN),
        vout: rows.vouts[i],
        height: rows.heights[i],
        value: rows.values[i],
        txNum: rows.txNums[i],
      };
    }
    return out;
  }

  /** utxos() in packed form. The result may be shared with the cache: read it, never write to it. */
  utxoRows(hashX: Uint8Array): Promise<UtxoRows> {
    return this.gate.read(() =>
      hashX.length !== HASHX_LEN ? Promise.resolve(EMPTY_UTXOS) : this.ownerRows(hashX)
    );
  }

  /** Confirmed balance of a hashX in satoshis. */
  balance(hashX: Uint8Array): Promise<number> {
    return this.gate.read(async () => {
      if (hashX.length !== HASHX_LEN) return 0;
      const rows = await this.ownerRows(hashX);
      let sum = 0;
      for (let i = 0; i < rows.count; i++) sum += rows.values[i];
      return sum;
    });
  }

  // The unspent outputs of a hashX from the cache or one prefix scan of its 'h' keys. Runs inside a gated read.
  private async ownerRows(hashX: Uint8Array): Promise<UtxoRows> {
    const s = this.current;
    const cached = this.ownerCache.get(s, hashX);
    if (cached !== undefined) return cached;
    const prefix = prefixKey(PREFIX_OWNER, hashX);
    const entries: [Uint8Array, Uint8Array][] = [];
    await this.scans.scan(s, prefix, prefixEnd(prefix), (key, value) => {
      entries.push([key, value]);
    });
    const count = entries.length;
    // One buffer for all columns (see packHistory).
    const buf = new ArrayBuffer(count * (8 + 8 + 4 + 4 + TXID_LEN));
    const txNums = new Float64Array(buf, 0, count);
    const values = new Float64Array(buf, count * 8, count);
    const vouts = new Int32Array(buf, count * 16, count);
    const heights = new Int32Array(buf, count * 20, count);
    const txids = new Uint8Array(buf, count * 24, count * TXID_LEN);
    // 'h' keys sort by tx_num, so the entries ascend and a block's bounds serve all its outputs.
    let height = -1, blockStart = 0, blockEnd = 0;
    for (let i = 0; i < count; i++) {
      const [k, v] = entries[i];
      const txNum = getTxNum(k, 1 + HASHX_LEN);
      txNums[i] = txNum;
      vouts[i] = getVout(k, 1 + HASHX_LEN + TXNUM_LEN);
      values[i] = getValue(v, 0);
      if (txNum >= blockEnd || txNum < blockStart) {
        height = this.heightOf(txNum);
        blockStart = height > 0 ? this.txCounts[height - 1] : 0;
        blockEnd = this.txCounts[height];
      }
      heights[i] = height;
    }
    this.readTxids(txNums, txids);
    const rows = { count, txNums, vouts, values, heights, txids };
    this.ownerCache.set(s, hashX, rows, OWNER_ENTRY_BYTES + count * 56);
    return rows;
  }

  /** The flushed unspent output (txid, vout), e.g. for the mempool to price an input; undefined if spent. */
  lookupUtxo(
    txid: Uint8Array,
    vout: number,
  ): Promise<{ hashX: Uint8Array; value: number; txNum: number } | undefined> {
    return this.gate.read(() => {
      if (txid.length !== TXID_LEN || !Number.isSafeInteger(vout) || vout < 0 || vout > 0xffffff) {
        return Promise.resolve(undefined);
      }
      const key = new Uint8Array(UTXO_KEY_LEN);
      utxoKeyInto(key, 0, txid, vout);
      const entries = this.db.getSync(key);
      if (entries === undefined) return Promise.resolve(undefined);
      for (let off = entries.length - UTXO_ENTRY_LEN; off >= 0; off -= UTXO_ENTRY_LEN) {
        const txNum = getTxNum(entries, off);
        if (!this.txidEquals(txNum, txid)) continue;
        const hashX = copyOf(entries.subarray(off + TXNUM_LEN, off + UTXO_ENTRY_LEN));
        const value = this.utxoValue(hashX, txNum, vout);
        if (value === undefined) break;
        return Promise.resolve({ hashX, value, txNum });
      }
      return Promise.resolve(undefined);
    });
  }

  /**
   * Merges runs of consecutive history rows of each hashX into rows of up to MAX_MERGED_ROW_TXNUMS entries,
   * visiting at most `maxRows` rows from key `from` (the start of the history index when undefined), and writes
   * the result in one atomic batch. A merged row keeps the key (first tx_num) of the first row of its run, so
   * reads and backups work on it unchanged. Nothing else may write history meanwhile: the sync loop runs it
   * between its steps (SyncLoop.runExclusive).
   */
  async compactHistory(from: Uint8Array | undefined, maxRows: number): Promise<HistoryCompaction> {
    const start = from ?? Uint8Array.of(PREFIX_HISTORY);
    const rows = await this.db.iterator({
      gte: start,
      lt: Uint8Array.of(PREFIX_HISTORY + 1),
      limit: Math.max(1, maxRows) + 1,
    }).all();
    // The extra row only tells where the next chunk starts.
    let next = rows.length > maxRows ? copyOf(rows.pop()![0]) : undefined;
    let read = rows.length;
    const maxBytes = MAX_MERGED_ROW_TXNUMS * TXNUM_LEN;
    const batch = this.db.batch();
    let written = 0, deleted = 0;
    let run: { keys: Uint8Array[]; rows: Uint8Array[]; bytes: number } | undefined;
    const finishRun = () => {
      if (!run || run.rows.length < 2) return;
      const merged = new Uint8Array(run.bytes);
      let off = 0;
      for (const r of run.rows) {
        merged.set(r, off);
        off += r.length;
      }
      batch.put(copyOf(run.keys[0]), merged);
      written++;
      for (let i = 1; i < run.keys.length; i++) batch.del(copyOf(run.keys[i]));
      deleted += run.keys.length - 1;
    };
    try {
      for (const [key, row] of rows) {
        if (run && sameHashX(run.keys[0], key) && run.bytes + row.length <= maxBytes) {
          run.keys.push(key);
          run.rows.push(row);
          run.bytes += row.length;
          continue;
        }
        finishRun();
        run = { keys: [key], rows: [row], bytes: row.length };
      }
      // A run the chunk boundary cuts is left whole for the next chunk (which starts at its first row), so one
      // pass merges everything; unless it is the chunk's only run, which must be taken to make progress.
      if (run && next && sameHashX(run.keys[0], next) && run.keys.length < read) {
        read -= run.keys.length;
        next = copyOf(run.keys[0]);
      } else {
        finishRun();
      }
    } catch (err) {
      await batch.close();
      throw err;
    }
    if (written === 0) {
      await batch.close();
    } else {
      await this.gate.write(() => batch.write({ sync: true }));
    }
    return { next, rowsRead: read, rowsWritten: written, rowsDeleted: deleted };
  }

  /** Closes the database; in-flight reads finish first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.gate.write(async () => {
      this.headersFile.close();
      this.txidsFile.close();
      this.txCountsFile.close();
      await this.scans.close();
      await this.db.close();
    });
  }

  // ---- writer side: the block processor only ----

  /** The flushed value of a 'u' key (synchronous; used while applying blocks). */
  getUtxoEntries(key: Uint8Array): Uint8Array | undefined {
    return this.db.getSync(key);
  }

  /** True when the flushed txid of `txNum` equals `txid` (no allocation). */
  txidEquals(txNum: number, txid: Uint8Array): boolean {
    if (txNum >= this.current.txCount) return false;
    const buf = this.txidScratch;
    this.txidsFile.readInto(txNum * TXID_LEN, buf);
    for (let i = 0; i < TXID_LEN; i++) if (buf[i] !== txid[i]) return false;
    return true;
  }

  /** Value of a flushed UTXO from its 'h' key, or undefined. */
  utxoValue(hashX: Uint8Array, txNum: number, vout: number): number | undefined {
    const v = this.db.getSync(ownerKey(hashX, txNum, vout));
    return v === undefined ? undefined : getValue(v, 0);
  }

  /** A fresh overlay for the unflushed changes to the UTXO-by-outpoint index. */
  newUtxoOverlay(): UtxoOverlay {
    return new UtxoOverlay(this);
  }

  /**
   * Writes one flush: appends the flat files and fsyncs them, then writes every LevelDB change and the new
   * state in one synchronous batch. If anything fails before the batch is written the database keeps its old
   * state (the appended bytes are cut off on the next open).
   */
  async commit(update: FlushUpdate): Promise<void> {
    const s = this.current;
    const blocks = update.txCounts.length;
    if (
      update.state.height !== s.height + blocks || update.headers.length !== blocks * HEADER_LEN ||
      update.txids.length !== (update.state.txCount - s.txCount) * TXID_LEN
    ) {
      throw new DbError("bad-update", "flush update does not extend the flushed state; this is a bug");
    }
    const counts = new Uint8Array(blocks * TX_COUNT_LEN);
    const view = new DataView(counts.buffer);
    for (let i = 0; i < blocks; i++) view.setFloat64(i * 8, update.txCounts[i], true);
    this.headersFile.writeAt((s.height + 1) * HEADER_LEN, update.headers);
    this.txidsFile.writeAt(s.txCount * TXID_LEN, update.txids);
    this.txCountsFile.writeAt((s.height + 1) * TX_COUNT_LEN, counts);
    await Promise.all([this.headersFile.sync(), this.txidsFile.sync(), this.txCountsFile.sync()]);
    const batch = this.db.batch();
    const stateBytes = encodeState(update.state);
    let batchBytes: number;
    try {
      // Handed to LevelDB in key order, a section at a time: see SortedBatch.
      const sorted = new SortedBatch(batch);
      update.build(sorted);
      sorted.put(STATE_KEY, stateBytes);
      sorted.section();
      batchBytes = sorted.writtenBytes;
    } catch (err) {
      await batch.close();
      throw err;
    }
    await this.gate.write(async () => {
      await batch.write({ sync: true });
      this.ensureCountCapacity(update.state.height + 1);
      for (let i = 0; i < blocks; i++) this.txCounts[s.height + 1 + i] = update.txCounts[i];
      this.current = update.state;
      // A flush only appends: what other hashXs and earlier transactions read as stays true.
      for (const c of [this.historyCache, this.ownerCache, ...this.followers]) {
        c.carry(s, update.state, update.touched);
      }
      this.blockHashCache.carry(s, update.state);
      // A flush appends transactions; those already found stay where they are (txids repeat only before BIP34).
      this.txLocationCache.carry(s, update.state, new Uint8Array(0));
      for (const fn of this.appendListeners) fn(update.txids, update.spends, update.touched);
    });
    // LevelDB leaves a batch bigger than its write buffer in the memtable until the next write, which during
    // a sync is the next flush: hundreds of MB held for nothing. Rewriting the state (same bytes) now makes it
    // move the memtable to disk in the background.
    if (batchBytes > this.writeBufferBytes) await this.db.put(STATE_KEY, stateBytes);
  }

  /**
   * Undoes the flushed blocks above `toHeight` from their undo records, in one batch. Throws DbError
   * "undo-missing" (changing nothing) when a record is missing, i.e. the reorg is deeper than the limit the
   * database was synced with.
   */
  async backup(toHeight: number, next: Pick<DbState, "syncTime" | "firstSync">): Promise<BackupResult> {
    const s = this.current;
    if (!Number.isSafeInteger(toHeight) || toHeight < -1 || toHeight >= s.height) {
      throw new DbError("bad-backup", `cannot back up from height ${s.height} to ${toHeight}`);
    }
    const records = [];
    for (let h = s.height; h > toHeight; h--) {
      const raw = this.db.getSync(undoKey(h));
      const rec = raw && decodeUndo(raw);
      if (!rec) {
        throw new DbError(
          "undo-missing",
          `no undo information for block ${h}: cannot back up from ${s.height} to ${toHeight}`,
        );
      }
      records.push(rec);
    }
    const cutoff = toHeight >= 0 ? this.txCounts[toHeight] : 0;
    const overlay = this.newUtxoOverlay();
    const touched = new Map<string, Uint8Array>();
    const batch = this.db.batch();
    let puts = 0, deletes = 0;
    const prefixBuf = new Uint8Array(TXID_PREFIX_LEN);
    const value = new Uint8Array(8);
    try {
      for (const rec of records) {
        for (let off = 0; off < rec.spent.length; off += UNDO_SPENT_LEN) {
          const hashX = rec.spent.subarray(off, off + HASHX_LEN);
          const txNum = getTxNum(rec.spent, off + HASHX_LEN);
          const vout = getVout(rec.spent, off + HASHX_LEN + TXNUM_LEN);
          this.txidsFile.readInto(txNum * TXID_LEN, prefixBuf);
          overlay.insert(prefixBuf, 0, vout, txNum, hashX, 0);
          value.set(rec.spent.subarray(off + HASHX_LEN + TXNUM_LEN + 3, off + UNDO_SPENT_LEN));
          batch.put(ownerKey(hashX, txNum, vout), value.slice());
          puts++;
          touched.set(keyOf(hashX), hashX);
        }
        for (let off = 0; off < rec.created.length; off += UNDO_CREATED_LEN) {
          const hashX = rec.created.subarray(off, off + HASHX_LEN);
          const txNum = getTxNum(rec.created, off + HASHX_LEN);
          const vout = getVout(rec.created, off + HASHX_LEN + TXNUM_LEN);
          this.txidsFile.readInto(txNum * TXID_LEN, prefixBuf);
          overlay.remove(prefixBuf, vout, txNum);
          batch.del(ownerKey(hashX, txNum, vout));
          deletes++;
          touched.set(keyOf(hashX), hashX);
        }
      }
      const u = overlay.writeTo(batch);
      puts += u.puts;
      deletes += u.deletes;
      for (let txNum = cutoff; txNum < s.txCount; txNum++) {
        batch.del(txidKey(this.txidsFile.read(txNum, 1), txNum));
        deletes++;
      }
      for (const hashX of touched.values()) {
        const r = await this.truncateHistory(hashX, cutoff, batch);
        puts += r.puts;
        deletes += r.deletes;
      }
      for (let h = s.height; h > toHeight; h--) {
        batch.del(undoKey(h));
        deletes++;
      }
    } catch (err) {
      await batch.close();
      throw err;
    }
    const state: DbState = {
      ...s,
      height: toHeight,
      tipHash: toHeight >= 0 ? sha256d(this.headersFile.read(toHeight, 1)) : new Uint8Array(32),
      txCount: cutoff,
      flushCount: s.flushCount + 1,
      syncTime: next.syncTime,
      firstSync: next.firstSync,
    };
    batch.put(STATE_KEY, encodeState(state));
    const changed = [...touched.values()].map(copyOf);
    await this.gate.write(async () => {
      await batch.write({ sync: true });
      this.current = state;
      // The state no longer covers these bytes; cutting them now keeps the files equal to what open() expects.
      this.headersFile.truncate((toHeight + 1) * HEADER_LEN);
      this.txidsFile.truncate(cutoff * TXID_LEN);
      this.txCountsFile.truncate((toHeight + 1) * TX_COUNT_LEN);
      for (const fn of this.backupListeners) fn(changed);
    });
    return { touched: changed, puts, deletes };
  }

  // Removes tx_nums >= cutoff from a hashX's history: rows starting at or after the cutoff go, and the one row
  // before them is cut short if it straddles it. Seeks rather than scans, so a long history costs nothing.
  private async truncateHistory(
    hashX: Uint8Array,
    cutoff: number,
    batch: BatchSink,
  ): Promise<{ puts: number; deletes: number }> {
    const prefix = prefixKey(PREFIX_HISTORY, hashX);
    const from = historyKey(hashX, cutoff);
    let puts = 0, deletes = 0;
    const before = await this.db.iterator({ gte: prefix, lt: from, reverse: true, limit: 1 }).all();
    for (const [key, row] of before) {
      if (row.length === 0 || getTxNum(row, row.length - TXNUM_LEN) < cutoff) continue;
      let keep = 0;
      while (keep < row.length && getTxNum(row, keep) < cutoff) keep += TXNUM_LEN;
      batch.put(key, copyOf(row.subarray(0, keep)));
      puts++;
    }
    const after = await this.db.keys({ gte: from, lt: prefixEnd(prefix) }).all();
    for (const key of after) {
      batch.del(key);
      deletes++;
    }
    return { puts, deletes };
  }

  private checkTxNum(txNum: number): void {
    if (!Number.isSafeInteger(txNum) || txNum < 0 || txNum >= this.current.txCount) {
      throw new DbError(
        "not-found",
        `no transaction number ${txNum}; the database has ${this.current.txCount}`,
      );
    }
  }

  // Height of the block containing txNum: the first height whose cumulative count exceeds it.
  private heightOf(txNum: number): number {
    let lo = 0, hi = this.current.height;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.txCounts[mid] > txNum) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private ensureCountCapacity(blocks: number): void {
    if (blocks <= this.txCounts.length) return;
    const grown = new Float64Array(Math.max(blocks, this.txCounts.length * 2));
    grown.set(this.txCounts);
    this.txCounts = grown;
  }
}

// Index of the first element >= x in ascending `a`.
function lowerBound(a: Float64Array, x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// LevelDB returns Buffers, whose slice() shares memory; callers get plain, independent Uint8Arrays.
function copyOf(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

// True when two 'H' keys belong to the same hashX.
function sameHashX(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 1; i <= HASHX_LEN; i++) if (a[i] !== b[i]) return false;
  return true;
}

// One call rather than a concatenation: a flat string hashes and compares faster as a Map key.
function keyOf(h: Uint8Array): string {
  return String.fromCharCode(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10]);
}

function newerFormat(dir: string, version: number): DbError {
  return new DbError(
    "newer-format",
    `database ${dir} has format version ${version} but this Coulomb reads up to ${DB_VERSION}; ` +
      "upgrade Coulomb or point DB_DIRECTORY elsewhere",
  );
}

function wrongNetwork(dir: string, theirs: string, ours: string): DbError {
  return new DbError(
    "wrong-network",
    `database ${dir} holds ${theirs} data but Coulomb is configured for ${ours}; ` +
      "set NET to match or point DB_DIRECTORY elsewhere",
  );
}

// Reads or creates the marker. Returns true when the database is new. Throws before anything is modified.
function checkMarker(dir: string, network: string): boolean {
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(`${dir}/${MARKER}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new DbError("open-failed", `cannot read ${dir}/${MARKER}: ${(err as Error).message}`);
    }
  }
  if (text !== undefined) {
    const fields = new Map<string, string>();
    const lines = text.split("\n");
    for (const line of lines.slice(1)) {
      const sp = line.indexOf(" ");
      if (sp > 0) fields.set(line.slice(0, sp), line.slice(sp + 1).trim());
    }
    const version = Number(fields.get("version"));
    if (lines[0] !== MARKER_MAGIC || !Number.isSafeInteger(version) || version < 1) {
      throw new DbError("not-a-database", `${dir}/${MARKER} is not a Coulomb database marker`);
    }
    if (version > DB_VERSION) throw newerFormat(dir, version);
    const theirs = fields.get("network") ?? "";
    if (theirs !== network) throw wrongNetwork(dir, theirs, network);
    return false;
  }
  let entries: string[] = [];
  try {
    // A leftover marker temp file means an earlier creation was interrupted: the directory is still ours.
    entries = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n !== `${MARKER}.tmp`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new DbError("open-failed", `cannot read directory ${dir}: ${(err as Error).message}`);
    }
    Deno.mkdirSync(dir, { recursive: true });
  }
  if (entries.length > 0) {
    throw new DbError(
      "not-a-database",
      `${dir} is not empty and holds no Coulomb database (no ${MARKER} file); point DB_DIRECTORY at an empty ` +
        "or missing directory",
    );
  }
  // Written first and fsynced via rename so that a half-created database is still recognised as ours.
  const tmp = `${dir}/${MARKER}.tmp`;
  const f = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  try {
    f.writeSync(new TextEncoder().encode(`${MARKER_MAGIC}\nversion ${DB_VERSION}\nnetwork ${network}\n`));
    f.syncDataSync();
  } finally {
    f.close();
  }
  Deno.renameSync(tmp, `${dir}/${MARKER}`);
  return true;
}

function cutTo(file: FlatFile, bytes: number, log: StoreLog): void {
  const size = file.byteLength();
  if (size < bytes) {
    throw new DbError(
      "corrupt",
      `${file.path} has ${size} bytes but the database state needs ${bytes}; the database is damaged: ` +
        "delete it and resync",
    );
  }
  if (size > bytes) {
    log.warn(`discarding ${size - bytes} bytes of an unfinished flush from ${file.path}`);
    file.truncate(bytes);
  }
}

/** Writes `value` as the 8-byte LE 'h' value. */
export function encodeValue(value: number): Uint8Array {
  const out = new Uint8Array(8);
  putValue(out, 0, value);
  return out;
}
