// The block processor turns raw blocks into index changes: tx_nums, UTXO creation and spends, history and
// undo records. Everything since the last flush lives in memory (UtxoCache for outputs, HistoryCache);
// an output created and spent between two flushes never reaches the disk. flush() hands it all to the Store
// as one atomic commit. The hot loop allocates nothing per input or output: hashXs are computed straight into
// the block's undo buffer and every table is keyed by bytes.
import { toHexReversed } from "../chain/hex.ts";
import { DbError } from "../db/errors.ts";
import {
  encodeUndo,
  HASHX_LEN,
  HISTORY_KEY_LEN,
  OWNER_KEY_LEN,
  PREFIX_HISTORY,
  PREFIX_OWNER,
  PREFIX_TXID,
  putTxNum,
  putValue,
  putVout,
  TXID_KEY_LEN,
  TXID_PREFIX_LEN,
  TXNUM_LEN,
  UNDO_CREATED_LEN,
  UNDO_SPENT_LEN,
  undoKey,
} from "../db/layout.ts";
import type { DbState } from "../db/state.ts";
import type { Store } from "../db/store.ts";
import type { UtxoOverlay } from "../db/utxo_overlay.ts";
import { formatCount, formatDuration } from "../log.ts";
import type { RawBlock } from "./prefetch.ts";
import { SyncError } from "./errors.ts";
import type { ProcessorTiming } from "./sync.ts";
import { type BlockParser, InlineParser, WorkerParser, type WorkerParserOptions } from "./block_parser.ts";
import {
  getOutputValue,
  getU32,
  OUTPUT_UNSPENDABLE,
  RECORD_HASH,
  RECORD_HEADER,
  RECORD_INPUT_LEN,
  RECORD_OUTPUT_LEN,
  RECORD_TX_LEN,
  RECORD_TXS,
} from "./block_record.ts";
import { HashXSet, HistoryCache } from "./history_cache.ts";
import { UtxoCache } from "./utxo_cache.ts";

export { SyncError };

/** A block does not connect to the processor's tip: the chain reorganised under us. */
export class ChainMismatchError extends SyncError {
  override name = "ChainMismatchError";
  constructor(readonly height: number) {
    super("chain-mismatch", `block ${height} does not build on our tip at height ${height - 1}`);
  }
}

/** A reorg would undo more blocks than the undo information kept allows. */
export class ReorgTooDeepError extends SyncError {
  override name = "ReorgTooDeepError";
  /** `undoMissing`: within the limit, but a block's undo record is gone (see the message). */
  constructor(
    readonly fromHeight: number,
    readonly toHeight: number,
    readonly limit: number,
    undoMissing = false,
  ) {
    super(
      "reorg-too-deep",
      `cannot undo ${fromHeight - toHeight} blocks (from height ${fromHeight} back to ${toHeight}): ` +
        (undoMissing
          ? `undo records reach back only ${limit} blocks (REORG_LIMIT) from the highest tip this database ` +
            "has had, and an earlier reorg lowered the tip since"
          : `only the last ${limit} blocks can be undone (REORG_LIMIT)`) +
        `. The database is unchanged at height ${fromHeight}; delete it and resync, or raise REORG_LIMIT for ` +
        "future syncs",
    );
  }
}

/** The log lines the processor writes. */
export interface ProcessorLog {
  info(message: string): void;
  warn(message: string): void;
}

/** Tuning of the processor. */
export interface ProcessorOptions {
  /** Blocks that can be undone (REORG_LIMIT). */
  reorgLimit: number;
  /** Memory budget of unflushed data in MiB (CACHE_MB). */
  cacheMb: number;
  /** Flush once this many entries are pending (FLUSH_SIZE): cached outputs + flushed spends + history items. */
  flushSize: number;
  log: ProcessorLog;
  /** The network the store must belong to (and its BIP30 exceptions, see Network). */
  network: {
    readonly name: string;
    readonly overwritingCoinbases?: readonly { readonly height: number; readonly hash: Uint8Array }[];
  };
  /** Clock in milliseconds (tests). */
  now?: () => number;
  /** Called after each successful flush with what it did and how long it took (ms); for metrics. */
  onFlush?: (stats: FlushStats, ms: number) => void;
  /**
   * Parse and hash blocks in a Worker, ahead of applying them (see block_parser.ts). The owner must call
   * close() when done: a live Worker keeps the process running.
   */
  parseWorker?: boolean | WorkerParserOptions;
}

/** What one flush did. */
export interface FlushStats {
  blocks: number;
  txs: number;
  height: number;
  txCount: number;
  /** Spends resolved from unflushed outputs. */
  cacheHits: number;
  /** LevelDB puts, including the state. */
  writes: number;
  /** LevelDB deletes. */
  deletes: number;
  /** LevelDB writes avoided: two per output created and spent since the previous flush. */
  elided: number;
  /** Wall-clock seconds of syncing so far, as stored. */
  syncTime: number;
}

// One applied, unflushed block's undo data.
interface PendingUndo {
  height: number;
  spent: Uint8Array;
  created: Uint8Array;
  // Offsets (in `spent`) of outputs spent from the database, whose value is read at flush time: the value is
  // needed only for blocks within reorgLimit of the flushed tip, so most spends during sync never pay for it.
  unresolved: number[];
}

const ZERO_HASH = new Uint8Array(32);
// A window whose tables hold more than this gives them back at flush time rather than keeping them for reuse.
const RELEASE_BYTES = 64 << 20;
// Most outpoints a window collects for the mempool (36 MB): beyond it the mempool learns of conflicts only at
// its next refresh (a window that big is a catch-up after downtime, when the mempool is stale anyway).
const MAX_WINDOW_SPENDS = 1 << 20;

/** Applies blocks in order on top of a Store, flushes them atomically, and undoes them on reorgs. */
export class BlockProcessor {
  /** True until the initial sync reaches the daemon's tip; the sync loop clears it. Persisted on flush. */
  firstSync: boolean;
  /** Cumulative time spent parsing, applying and flushing (the sync loop's `sync profile` line). */
  readonly timing: ProcessorTiming = { parseMs: 0, applyMs: 0, flushMs: 0 };

  private readonly cache = new UtxoCache();
  private overlay: UtxoOverlay;
  private readonly history = new HistoryCache();
  // Touched hashXs not yet taken: from flushed windows and backups. Those of the current window are the
  // history entries whose last tx_num is >= touchedFrom.
  private readonly pendingTouched = new HashXSet();
  private touchedFrom: number;
  private undo: PendingUndo[] = [];
  private headers: Uint8Array = new Uint8Array(80 * 64);
  private blockHashes: Uint8Array[] = [];
  private txCounts: number[] = [];
  private tipHeight: number;
  private tip: Uint8Array | undefined;
  private txCount: number;
  private hits = 0;
  private broken: Error | null = null;
  private busy = false;
  private lastFlushAt: number;
  private syncTime: number;
  private readonly now: () => number;
  // Scratch space reused for every block.
  private spentBuf: Uint8Array = new Uint8Array(UNDO_SPENT_LEN * 256);
  private createdBuf: Uint8Array = new Uint8Array(UNDO_CREATED_LEN * 256);
  // The outpoints the window's blocks spend (RECORD_INPUT_LEN each), for the flush to hand to the mempool,
  // which drops its transactions that conflict with them. Not collected during the first sync (nobody is
  // served, the windows are huge) or past MAX_WINDOW_SPENDS; spendsComplete then says the list is not whole.
  private spendsBuf: Uint8Array = new Uint8Array(RECORD_INPUT_LEN * 256);
  private spendsLen = 0;
  private spendsComplete = true;
  private readonly hashXScratch = new Uint8Array(HASHX_LEN);
  private readonly parser: BlockParser;

  constructor(private readonly store: Store, private readonly opts: ProcessorOptions) {
    const s = store.state;
    if (s.network !== opts.network.name) {
      throw new DbError(
        "wrong-network",
        `the store holds ${s.network} data, the processor was given ${opts.network.name}`,
      );
    }
    if (!Number.isSafeInteger(opts.reorgLimit) || opts.reorgLimit < 1) {
      throw new SyncError("bad-option", `REORG_LIMIT must be a positive integer, got ${opts.reorgLimit}`);
    }
    this.now = opts.now ?? Date.now;
    this.tipHeight = s.height;
    this.tip = s.height >= 0 ? s.tipHash.slice() : undefined;
    this.txCount = s.txCount;
    this.touchedFrom = s.txCount;
    this.firstSync = s.firstSync;
    this.syncTime = s.syncTime;
    this.lastFlushAt = this.now();
    this.cache.clear(s.txCount);
    this.overlay = store.newUtxoOverlay();
    const pw = opts.parseWorker;
    this.parser = pw
      ? new WorkerParser({ warn: (m) => opts.log.warn(m), ...(pw === true ? {} : pw) })
      : new InlineParser();
  }

  /**
   * Resolves once the parse Worker (if asked for) is running: true, or false when parsing stays on this thread
   * (no worker asked for, or it could not start — that is logged). Blocks are processed correctly either way.
   */
  ready(): Promise<boolean> {
    return this.parser.ready();
  }

  /** Stops the parse Worker, if any; the processor must not be used afterwards. */
  close(): void {
    this.parser.close();
  }

  /** Height of the last applied block, flushed or not (-1 when empty). */
  get height(): number {
    return this.tipHeight;
  }

  /** Hash of the last applied block (internal order); undefined when empty. */
  get tipHash(): Uint8Array | undefined {
    return this.tip;
  }

  /** Hash of the applied block at `height`, flushed or not; undefined above the tip. */
  blockHashAt(height: number): Uint8Array | undefined {
    const flushed = this.store.state.height;
    if (height > flushed && height <= this.tipHeight) return this.blockHashes[height - flushed - 1];
    return this.store.blockHashAt(height);
  }

  /** Number of applied blocks not yet flushed. */
  get unflushedBlocks(): number {
    return this.blockHashes.length;
  }

  /**
   * Applies blocks in order. Throws ChainMismatchError when a block does not build on the tip (blocks before it
   * stay applied), ChainFormatError for undecodable bytes, and SyncError "missing-output" when a block spends
   * an output that does not exist: that is bad data, and the processor then refuses to continue or flush so
   * that nothing half-applied reaches the disk.
   */
  advance(blocks: RawBlock[]): void {
    this.checkUsable();
    const parser = this.parser;
    const waitBefore = parser.waitMs, workerBefore = parser.workerMs;
    const raws = new Array<Uint8Array>(blocks.length);
    for (let i = 0; i < blocks.length; i++) raws[i] = blocks[i].raw;
    try {
      parser.forEach(raws, (i, rec, off) => this.advanceOne(blocks[i], rec, off));
    } finally {
      this.timing.parseMs += parser.waitMs - waitBefore;
      this.timing.workerParseMs = (this.timing.workerParseMs ?? 0) + parser.workerMs - workerBefore;
    }
  }

  /** hashXs whose history changed (flushed or not) since the previous call, each once. */
  takeTouched(): Uint8Array[] {
    this.history.forEachTouchedSince(this.touchedFrom, (slab, off) => this.pendingTouched.add(slab, off));
    const out = this.pendingTouched.toArrays();
    this.pendingTouched.clear();
    this.touchedFrom = this.txCount;
    return out;
  }

  /** Approximate bytes of unflushed data. */
  cacheBytes(): number {
    let undo = 0;
    for (const u of this.undo) undo += u.spent.length + u.created.length + 64;
    return this.cache.bytes + this.overlay.bytes + this.history.bytes + this.headers.length + undo;
  }

  /** Entries pending for the next flush: cached outputs, flushed outputs spent, history items. */
  pendingEntries(): number {
    return this.cache.live + this.overlay.size + this.history.items;
  }

  /** True when the cache is over CACHE_MB or FLUSH_SIZE. */
  needsFlush(): boolean {
    return this.cacheBytes() > this.opts.cacheMb * 1024 * 1024 || this.pendingEntries() > this.opts.flushSize;
  }

  /** Writes everything applied since the last flush in one atomic commit. */
  async flush(): Promise<FlushStats> {
    this.checkUsable();
    this.busy = true;
    const started = performance.now();
    try {
      const stats = await this.flushInner();
      // Only flushes that wrote something: backups and reorgs also call flush() with nothing pending.
      if (stats.blocks > 0 || stats.writes > 0 || stats.deletes > 0) {
        this.opts.onFlush?.(stats, performance.now() - started);
      }
      return stats;
    } catch (err) {
      // A failed commit leaves the database at the previous flush; our memory no longer matches a clean resume.
      this.broken = err as Error;
      throw err;
    } finally {
      this.busy = false;
      this.timing.flushMs += performance.now() - started;
    }
  }

  /**
   * Undoes every block above `toHeight`, flushing first. Deeper than REORG_LIMIT throws ReorgTooDeepError and
   * leaves the database as it was.
   */
  async backup(toHeight: number): Promise<void> {
    this.checkUsable();
    if (!Number.isSafeInteger(toHeight) || toHeight < -1) {
      throw new SyncError("bad-height", `cannot back up to height ${toHeight}`);
    }
    if (toHeight >= this.tipHeight) return;
    const from = this.tipHeight;
    if (from - toHeight > this.opts.reorgLimit) {
      throw new ReorgTooDeepError(from, toHeight, this.opts.reorgLimit);
    }
    await this.flush();
    this.busy = true;
    try {
      this.tickSyncTime();
      const r = await this.store.backup(toHeight, { syncTime: this.syncTime, firstSync: this.firstSync });
      for (const h of r.touched) this.pendingTouched.add(h, 0);
      const s = this.store.state;
      this.tipHeight = s.height;
      this.tip = s.height >= 0 ? s.tipHash.slice() : undefined;
      this.txCount = s.txCount;
      // The new branch reuses tx_nums from the cutoff on; ones below the old mark must still count as touched.
      this.touchedFrom = Math.min(this.touchedFrom, s.txCount);
      this.cache.clear(s.txCount);
      this.opts.log.info(
        `backed up ${from - toHeight} block${from - toHeight === 1 ? "" : "s"} to height ${toHeight}: ` +
          `writes ${formatCount(r.puts)} deletes ${formatCount(r.deletes)}`,
      );
    } catch (err) {
      if (err instanceof DbError && err.code === "undo-missing") {
        throw new ReorgTooDeepError(from, toHeight, this.opts.reorgLimit, true);
      }
      this.broken = err as Error;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private checkUsable(): void {
    if (this.broken) {
      throw new SyncError(
        "broken",
        `the block processor stopped after an error (${this.broken.message}); restart to resume from the last ` +
          `flushed height ${this.store.state.height}`,
      );
    }
    if (this.busy) {
      throw new SyncError("busy", "the block processor is flushing or backing up; await it first");
    }
  }

  private advanceOne(b: RawBlock, rec: Uint8Array, off: number): void {
    const applyStart = performance.now();
    if (b.height !== this.tipHeight + 1) {
      throw new SyncError("bad-height", `got block ${b.height} but the next height is ${this.tipHeight + 1}`);
    }
    const hashAt = off + RECORD_HASH, headerAt = off + RECORD_HEADER;
    if (!sameBytesAt(rec, hashAt, b.hash, 0, 32)) {
      throw new SyncError(
        "hash-mismatch",
        `block ${b.height} hashes to ${toHexReversed(rec.subarray(hashAt, hashAt + 32))}, not the ${
          toHexReversed(b.hash)
        } asked for`,
      );
    }
    if (this.tip !== undefined && !sameBytesAt(rec, headerAt + 4, this.tip, 0, 32)) {
      throw new ChainMismatchError(b.height);
    }
    if (!startsWithCoinbase(rec, off)) {
      throw new SyncError("bad-block", `block ${b.height} does not start with a coinbase transaction`);
    }
    // From here on a failure leaves a half-applied block in memory.
    try {
      this.applyBlock(b.height, rec, off);
    } catch (err) {
      this.broken = err as Error;
      throw err;
    } finally {
      this.timing.applyMs += performance.now() - applyStart;
    }
  }

  /** Whether the block at `height`, whose hash is at rec[hashAt..], is one of the network's BIP30 exceptions. */
  private overwritesCoinbase(height: number, rec: Uint8Array, hashAt: number): boolean {
    const list = this.opts.network.overwritingCoinbases;
    return list !== undefined &&
      list.some((b) => b.height === height && sameBytesAt(rec, hashAt, b.hash, 0, 32));
  }

  /**
   * Spends the output `vout` of the transaction whose txid is at rec[txidAt..] on behalf of transaction
   * `txNum`: from the cache, else from disk (its value is then read at flush time). Writes its undo entry at
   * `spentLen` of spentBuf and adds `txNum` to the output's history. False if the output exists nowhere.
   */
  private spendInto(
    rec: Uint8Array,
    txidAt: number,
    vout: number,
    txNum: number,
    spentLen: number,
    unresolved: number[],
  ): boolean {
    const cache = this.cache;
    if ((spentLen + UNDO_SPENT_LEN) > this.spentBuf.length) this.spentBuf = grow(this.spentBuf);
    const sb = this.spentBuf;
    const e = cache.spendAt(rec, txidAt, vout);
    if (e >= 0) {
      this.hits++;
      const slab = cache.hashXSlab;
      for (let k = 0, from = e * HASHX_LEN; k < HASHX_LEN; k++) sb[spentLen + k] = slab[from + k];
      putTxNum(sb, spentLen + HASHX_LEN, cache.txNumOf(e));
      putVout(sb, spentLen + HASHX_LEN + TXNUM_LEN, vout);
      putValue(sb, spentLen + HASHX_LEN + TXNUM_LEN + 3, cache.valueOf(e));
    } else {
      const spentTxNum = this.overlay.spend(rec.subarray(txidAt, txidAt + 32), vout, this.hashXScratch, 0);
      if (spentTxNum < 0) return false;
      sb.set(this.hashXScratch, spentLen);
      putTxNum(sb, spentLen + HASHX_LEN, spentTxNum);
      putVout(sb, spentLen + HASHX_LEN + TXNUM_LEN, vout);
      unresolved.push(spentLen);
    }
    this.history.add(sb, spentLen, txNum);
    return true;
  }

  // Applies a block record (block_record.ts): tx_nums, spends, new outputs, history, undo.
  private applyBlock(height: number, rec: Uint8Array, off: number): void {
    const cache = this.cache, history = this.history;
    let spentLen = 0, createdLen = 0;
    const overwrites = this.overwritesCoinbase(height, rec, off + RECORD_HASH);
    const unresolved: number[] = [];
    const txCount = getU32(rec, off + 4);
    let p = off + RECORD_TXS;
    let collect = this.spendsComplete && !this.firstSync;
    if (this.firstSync) this.spendsComplete = false;
    for (let i = 0; i < txCount; i++) {
      const txidAt = p;
      const nIn = getU32(rec, p + 32), nOut = getU32(rec, p + 36);
      const txNum = cache.addTxAt(rec, txidAt);
      p += RECORD_TX_LEN;
      if (i === 0) {
        p += nIn * RECORD_INPUT_LEN; // the coinbase spends nothing
        if (overwrites) {
          // One of BIP30's two exceptions: this coinbase repeats an earlier coinbase's txid while that one's
          // outputs are unspent, and replaces them in the UTXO set (as bitcoind's coins view does). Undone as
          // spends are, so a backup brings them back.
          for (let vout = 0; vout < nOut; vout++) {
            if (rec[p + vout * RECORD_OUTPUT_LEN + 19] & OUTPUT_UNSPENDABLE) continue;
            if (this.spendInto(rec, txidAt, vout, txNum, spentLen, unresolved)) spentLen += UNDO_SPENT_LEN;
          }
        }
      } else {
        if (collect) {
          const bytes = nIn * RECORD_INPUT_LEN;
          if (this.spendsLen + bytes > MAX_WINDOW_SPENDS * RECORD_INPUT_LEN) {
            collect = false;
            this.spendsComplete = false;
          } else {
            if (this.spendsLen + bytes > this.spendsBuf.length) {
              this.spendsBuf = growTo(this.spendsBuf, this.spendsLen + bytes);
            }
            this.spendsBuf.set(rec.subarray(p, p + bytes), this.spendsLen);
            this.spendsLen += bytes;
          }
        }
        for (let j = 0; j < nIn; j++, p += RECORD_INPUT_LEN) {
          const vout = getU32(rec, p + 32);
          if (!this.spendInto(rec, p, vout, txNum, spentLen, unresolved)) {
            throw new SyncError(
              "missing-output",
              `block ${height} transaction ${toHexReversed(rec.subarray(txidAt, txidAt + 32))} spends ` +
                `${toHexReversed(rec.subarray(p, p + 32))}:${vout}, which is not an unspent output; ` +
                "the daemon served inconsistent data",
            );
          }
          spentLen += UNDO_SPENT_LEN;
        }
      }
      for (let vout = 0; vout < nOut; vout++, p += RECORD_OUTPUT_LEN) {
        if (rec[p + 19] & OUTPUT_UNSPENDABLE) continue;
        if ((createdLen + UNDO_CREATED_LEN) > this.createdBuf.length) this.createdBuf = grow(this.createdBuf);
        const cb = this.createdBuf;
        for (let k = 0; k < HASHX_LEN; k++) cb[createdLen + k] = rec[p + 8 + k];
        cache.addOutput(txNum, vout, cb, createdLen, getOutputValue(rec, p));
        history.add(cb, createdLen, txNum);
        putTxNum(cb, createdLen + HASHX_LEN, txNum);
        putVout(cb, createdLen + HASHX_LEN + TXNUM_LEN, vout);
        createdLen += UNDO_CREATED_LEN;
      }
    }
    this.undo.push({
      height,
      spent: this.spentBuf.slice(0, spentLen),
      created: this.createdBuf.slice(0, createdLen),
      unresolved,
    });
    // Only the newest reorgLimit blocks can ever need their undo record.
    if (this.undo.length > this.opts.reorgLimit) this.undo.shift();
    const hash = rec.slice(off + RECORD_HASH, off + RECORD_HASH + 32);
    this.appendHeader(rec.subarray(off + RECORD_HEADER, off + RECORD_HEADER + 80));
    this.blockHashes.push(hash);
    this.txCount += txCount;
    this.txCounts.push(this.txCount);
    this.tipHeight = height;
    this.tip = hash;
  }

  private appendHeader(header: Uint8Array): void {
    const off = this.blockHashes.length * 80;
    if (off + 80 > this.headers.length) this.headers = grow(this.headers);
    this.headers.set(header, off);
  }

  private tickSyncTime(): void {
    const now = this.now();
    this.syncTime += Math.max(0, now - this.lastFlushAt) / 1000;
    this.lastFlushAt = now;
  }

  private async flushInner(): Promise<FlushStats> {
    const blocks = this.blockHashes.length;
    const prev = this.store.state;
    const txs = this.txCount - prev.txCount;
    this.tickSyncTime();
    if (blocks === 0 && prev.firstSync === this.firstSync) {
      return {
        blocks: 0,
        txs: 0,
        height: this.tipHeight,
        txCount: this.txCount,
        cacheHits: 0,
        writes: 0,
        deletes: 0,
        elided: 0,
        syncTime: prev.syncTime,
      };
    }
    const log = this.opts.log;
    log.info(
      `flushing to levelDB ${formatCount(txs)} txs and ${formatCount(blocks)} blocks to height ` +
        `${this.tipHeight} tx count: ${formatCount(this.txCount)}`,
    );
    const height = this.tipHeight;
    const limit = this.opts.reorgLimit;
    const undoFrom = height - limit + 1; // lowest height whose undo record must exist after this flush
    const undo = this.undo.filter((u) => u.height >= undoFrom);
    for (const u of undo) {
      for (const off of u.unresolved) {
        const hx = u.spent.subarray(off, off + HASHX_LEN);
        const txNum = readTxNum(u.spent, off + HASHX_LEN);
        const vout = (u.spent[off + 16] << 16) | (u.spent[off + 17] << 8) | u.spent[off + 18];
        const value = this.store.utxoValue(hx, txNum, vout);
        if (value === undefined) {
          throw new DbError(
            "corrupt",
            `UTXO ${txNum}:${vout} is indexed by outpoint but not by owner; resync`,
          );
        }
        putValue(u.spent, off + HASHX_LEN + TXNUM_LEN + 3, value);
      }
    }
    let writes = 0, deletes = 0;
    const cache = this.cache, overlay = this.overlay;
    const elided = this.hits * 2;
    const state: DbState = {
      ...prev,
      height,
      tipHash: this.tip ?? ZERO_HASH,
      txCount: this.txCount,
      flushCount: prev.flushCount + 1,
      syncTime: this.syncTime,
      firstSync: this.firstSync,
    };
    const txids = cache.txidBytes();
    await this.store.commit({
      headers: this.headers.subarray(0, blocks * 80),
      txids,
      txCounts: this.txCounts,
      state,
      // The window's history rows name every hashX whose history or UTXOs change (a spend is history too), so
      // the server's caches keep the rest. During the first sync nothing is served and nothing is cached.
      touched: this.firstSync ? undefined : this.history.hashXSlab.slice(0, this.history.size * HASHX_LEN),
      spends: this.spendsComplete ? this.spendsBuf.subarray(0, this.spendsLen) : undefined,
      build: (batch) => {
        cache.forEachLive((txidSlab, txidOff, vout, txNum, hashXs, hashXOff, value) => {
          overlay.insert(txidSlab, txidOff, vout, txNum, hashXs, hashXOff);
          const at = batch.reservePut(OWNER_KEY_LEN, 8);
          const b = batch.bytes;
          b[at] = PREFIX_OWNER;
          for (let k = 0; k < HASHX_LEN; k++) b[at + 1 + k] = hashXs[hashXOff + k];
          putTxNum(b, at + 1 + HASHX_LEN, txNum);
          putVout(b, at + 1 + HASHX_LEN + TXNUM_LEN, vout);
          putValue(b, at + OWNER_KEY_LEN, value);
          writes++;
        });
        batch.section();
        const u = overlay.writeTo(batch);
        writes += u.puts;
        deletes += u.deletes;
        batch.section();
        const base = prev.txCount;
        for (let t = 0; t < cache.txs; t++) {
          const at = batch.reservePut(TXID_KEY_LEN, 0);
          const b = batch.bytes;
          b[at] = PREFIX_TXID;
          for (let k = 0; k < TXID_PREFIX_LEN; k++) b[at + 1 + k] = txids[t * 32 + k];
          putTxNum(b, at + 1 + TXID_PREFIX_LEN, base + t);
        }
        writes += cache.txs;
        batch.section();
        const history = this.history, hashXs = history.hashXSlab;
        for (let e = 0; e < history.size; e++) {
          const at = batch.reservePut(HISTORY_KEY_LEN, history.rowLength(e) * TXNUM_LEN);
          const b = batch.bytes;
          b[at] = PREFIX_HISTORY;
          for (let k = 0; k < HASHX_LEN; k++) b[at + 1 + k] = hashXs[e * HASHX_LEN + k];
          putTxNum(b, at + 1 + HASHX_LEN, history.firstTxNum(e));
          history.writeRow(e, b, at + HISTORY_KEY_LEN);
        }
        writes += history.size;
        batch.section();
        // Nobody listens for notifications before the first sync completes; do not let the set grow unbounded.
        if (!this.firstSync) {
          history.forEachTouchedSince(this.touchedFrom, (slab, off) => this.pendingTouched.add(slab, off));
        }
        // Everything below is small; let a big window's tables go before LevelDB copies the batch in.
        if (this.cacheBytes() > RELEASE_BYTES) this.releaseWindow();
        for (const u of undo) {
          batch.put(undoKey(u.height), encodeUndo(u));
          writes++;
        }
        // Records that fell out of the window since the last flush; older ones were deleted then.
        const dropFrom = Math.max(0, prev.height - limit + 1);
        const dropTo = Math.min(prev.height, height - limit);
        for (let h = dropFrom; h <= dropTo; h++) {
          batch.del(undoKey(h));
          deletes++;
        }
        writes++; // the state
      },
    });
    const stats: FlushStats = {
      blocks,
      txs,
      height,
      txCount: this.txCount,
      cacheHits: this.hits,
      writes,
      deletes,
      elided,
      syncTime: this.syncTime,
    };
    this.resetWindow();
    log.info(
      `flushed. Cache hits ${formatCount(stats.cacheHits)} writes ${formatCount(writes)} deletes ` +
        `${formatCount(deletes)} elided ${formatCount(elided)} sync: ${formatDuration(this.syncTime)}`,
    );
    return stats;
  }

  // Drops the window's big tables (their contents are in the batch by now) so that their memory is not held
  // during LevelDB's write; the next window grows fresh ones.
  private releaseWindow(): void {
    this.cache.clear(this.txCount, true);
    this.overlay.clear();
    this.history.clear(true);
  }

  private resetWindow(): void {
    this.cache.clear(this.txCount);
    this.overlay.clear();
    this.history.clear();
    this.undo = [];
    this.blockHashes = [];
    this.txCounts = [];
    this.hits = 0;
    if (this.headers.length > 80 * 4096) this.headers = new Uint8Array(80 * 64);
    this.spendsLen = 0;
    this.spendsComplete = true;
    if (this.spendsBuf.length > RELEASE_BYTES) this.spendsBuf = new Uint8Array(RECORD_INPUT_LEN * 256);
  }
}

function readTxNum(buf: Uint8Array, off: number): number {
  return buf[off] * 0x100000000 +
    ((buf[off + 1] << 24) >>> 0) + (buf[off + 2] << 16) + (buf[off + 3] << 8) + buf[off + 4];
}

function growTo(buf: Uint8Array, min: number): Uint8Array {
  let n = buf.length * 2;
  while (n < min) n *= 2;
  const out = new Uint8Array(n);
  out.set(buf);
  return out;
}

function grow(buf: Uint8Array): Uint8Array {
  const out = new Uint8Array(buf.length * 2);
  out.set(buf);
  return out;
}

function sameBytesAt(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  if (a.length < aOff + n || b.length < bOff + n) return false;
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

// True when the record's first transaction has a single input spending the null outpoint.
function startsWithCoinbase(rec: Uint8Array, off: number): boolean {
  if (getU32(rec, off + 4) === 0) return false;
  const tx = off + RECORD_TXS;
  if (getU32(rec, tx + 32) !== 1) return false;
  const input = tx + RECORD_TX_LEN;
  if (getU32(rec, input + 32) !== 0xffffffff) return false;
  for (let i = 0; i < 32; i++) if (rec[input + i] !== 0) return false;
  return true;
}
