// The sync loop: prefetched raw blocks go to the block processor in height order, flushes happen when the
// processor's cache asks for one and on reaching the tip, and a block that does not connect triggers a walk
// back to the daemon's chain. Everything else (parsing, storage) belongs to the processor; everything about
// talking to bitcoind belongs to the BlockSource.

import { isDaemonClosed, isPrunedBlock } from "../daemon/errors.ts";
import { formatCount, formatDuration } from "../log.ts";
import { type BlockSource, Prefetcher, type RawBlock } from "./prefetch.ts";
import { errorText } from "../error_text.ts";
import { SyncError } from "./errors.ts";

/** What the sync loop needs from the block processor. Heights include unflushed blocks. */
export interface SyncProcessor {
  /** Height of the last applied block (-1 for an empty database). */
  readonly height: number;
  /** Hash of the last applied block (internal byte order); undefined for an empty database. */
  readonly tipHash: Uint8Array | undefined;
  /** Applies blocks that connect to the tip, in order. */
  advance(blocks: RawBlock[]): void;
  /** True when the in-memory cache should be written out. */
  needsFlush(): boolean;
  /** Writes everything applied so far in one atomic step. */
  flush(): Promise<unknown>;
  /** Hash of the applied block at `height`, flushed or not; undefined above the tip. */
  blockHashAt(height: number): Uint8Array | undefined;
  /** Undoes every block above `height`; throws when that is deeper than the reorg limit. */
  backup(height: number): Promise<void>;
  /** True until the initial sync first reaches the tip; the loop clears it just before that flush. */
  firstSync?: boolean;
  /** Where the processor's time went, if it keeps count (for the `sync profile` line). */
  readonly timing?: ProcessorTiming;
}

/** Cumulative milliseconds a processor spent in each stage. */
export interface ProcessorTiming {
  /** Decoding blocks and hashing their transactions (txids). */
  parseMs: number;
  /** Applying decoded blocks: UTXOs, history, undo. */
  applyMs: number;
  /** Writing flushes. */
  flushMs: number;
  /** Parsing done in a Worker meanwhile (not on the loop's thread; parseMs is then mostly waiting for it). */
  workerParseMs?: number;
}

/** The log lines the sync loop writes. */
export interface SyncLog {
  info(message: string): void;
  warn(message: string): void;
}

/** Tuning of the sync loop. */
export interface SyncOptions {
  /** Byte bound of the prefetch queue. */
  maxQueueBytes: number;
  /** Tip poll interval once caught up, in milliseconds. */
  pollIntervalMs: number;
  /** Seconds between progress lines while catching up. */
  progressIntervalS?: number;
  /** Called after each flush at the tip, with the new height (new-tip notifications hook in here). */
  onTip?: (height: number) => void;
  /** Clock in milliseconds, replaceable for tests of rates. */
  now?: () => number;
}

/** Progress counters of a running sync, for logs and metrics. */
export interface SyncStats {
  blocks: number;
  txs: number;
  daemonHeight: number;
  caughtUp: boolean;
}

/** Drives a processor from a block source until stopped; see `run`. */
export class SyncLoop {
  private readonly prefetcher: Prefetcher;
  private stopping = false;
  private caughtUpOnce = false;
  private readonly now: () => number;
  readonly stats: SyncStats = { blocks: 0, txs: 0, daemonHeight: -1, caughtUp: false };
  // Rate window for progress lines.
  private windowStart = 0;
  private windowBlocks = 0;
  private windowTxs = 0;
  private lastPrefillLog = -Infinity;
  // Time the loop sat idle waiting for the prefetcher before the first catch-up: the daemon was the bottleneck.
  private fetchWaitMs = 0;
  private startedAt = 0;
  // Work that must not overlap applying, flushing or undoing blocks (admin commands), run between steps.
  private tasks: { run: () => Promise<void>; reject: (err: Error) => void }[] = [];
  private finished = false;
  private taskArrived: PromiseWithResolvers<void> | undefined;
  // The prefetcher's wait in progress. A task interrupts the loop's waiting, not the wait itself: the next wait
  // reuses it, so no abandoned waiter piles up per task.
  private consumerWait: Promise<void> | undefined;
  // Where the prefetcher found the daemon's chain to leave ours (see diverged), until step() handles it.
  private divergedAt: number | undefined;
  // A fetch failure that retrying cannot mend (a pruned block): run() ends with it.
  private fatal: Error | undefined;
  private readonly stopRequested = Promise.withResolvers<void>();

  constructor(
    private readonly source: BlockSource,
    private readonly processor: SyncProcessor,
    private readonly log: SyncLog,
    private readonly opts: SyncOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.prefetcher = new Prefetcher(source, processor.height + 1, {
      maxQueueBytes: opts.maxQueueBytes,
      pollIntervalMs: opts.pollIntervalMs,
      onError: (err) => {
        if (isPrunedBlock(err)) {
          // Retrying cannot help: bitcoind deleted the block. The loop stops with this (see step()).
          this.fatal ??= new SyncError(
            "pruned",
            `bitcoind no longer has a block Coulomb needs (${
              errorText(err)
            }): Coulomb indexes every block from ` +
              "its database height on, so run bitcoind without -prune (or pruned only below that height)",
          );
          this.taskArrived?.resolve();
          return;
        }
        // Shutting down closes the daemon client first; the fetch it cut short is no failure.
        if (!isDaemonClosed(err)) this.log.warn(`fetching blocks failed: ${errorText(err)}; will retry`);
      },
      onFetched: (count, height, daemonHeight, bytes) => this.logPrefill(count, height, daemonHeight, bytes),
      hashAt: (height) => processor.blockHashAt(height),
      onDiverged: (height) => this.diverged(height),
    });
  }

  /** The prefetcher found our tip gone from the daemon's chain with no new block to show it: see step(). */
  private diverged(height: number): void {
    this.divergedAt = Math.min(this.divergedAt ?? height, height);
    this.taskArrived?.resolve();
  }

  /** Syncs to the daemon's tip, then follows it; resolves after `stop()` once everything is flushed. */
  async run(): Promise<void> {
    this.windowStart = this.now();
    this.startedAt = performance.now();
    this.prefetcher.start();
    try {
      while (!this.stopping) {
        try {
          await this.step();
        } catch (err) {
          // Shutting down closes the daemon client first and stops this loop only once sessions have drained
          // (they read the database meanwhile): a daemon call cut short by that (say, while looking for a fork)
          // is no failure. Wait for stop(), then flush what was applied.
          if (!isDaemonClosed(err)) throw err;
          await this.stopRequested.promise;
        }
      }
    } finally {
      this.finished = true;
      for (const t of this.tasks.splice(0)) {
        t.reject(new Error("the sync loop stopped before it could run this"));
      }
      await this.prefetcher.stop();
    }
    await this.processor.flush();
  }

  private async step(): Promise<void> {
    if (this.fatal !== undefined) throw this.fatal;
    if (this.tasks.length > 0) {
      await this.runTasks();
      return;
    }
    if (this.divergedAt !== undefined) {
      const height = this.divergedAt;
      this.divergedAt = undefined;
      if (height <= this.processor.height) {
        await this.handleReorg(height);
        // Subscribers learn the new tip now: there may be no new block to announce it.
        if (this.caughtUpOnce) this.opts.onTip?.(this.processor.height);
      }
      return;
    }
    const blocks = this.prefetcher.take();
    this.stats.daemonHeight = this.prefetcher.tipHeight;
    if (blocks.length > 0) {
      await this.apply(blocks);
      return;
    }
    if (this.prefetcher.caughtUp) {
      await this.reachedTip();
      await this.waitUnlessTask(() => this.prefetcher.waitForNewBlocks());
    } else {
      const waitFrom = performance.now();
      await this.waitUnlessTask(() => this.prefetcher.waitForBlocks());
      if (!this.caughtUpOnce) this.fetchWaitMs += performance.now() - waitFrom;
    }
  }

  /**
   * Runs `fn` between two steps of the loop, when no block is being applied, flushed or undone, so that it sees
   * (and may change) a database nothing else writes meanwhile. Rejects if the loop stops first.
   */
  runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.stopping || this.finished) return Promise.reject(new Error("the sync loop is stopping"));
    return new Promise<T>((resolve, reject) => {
      this.tasks.push({ run: () => fn().then(resolve, reject), reject });
      this.taskArrived?.resolve();
    });
  }

  /**
   * Testing aid (the admin RPC's `reorg`): undoes the last `blocks` blocks as a reorg would, then lets the loop
   * fetch and apply them again from the daemon. Resolves to the height backed up to and how many blocks
   * that undid (fewer than asked for near genesis).
   */
  reorg(blocks: number): Promise<{ height: number; undone: number }> {
    if (!Number.isSafeInteger(blocks) || blocks < 1) {
      return Promise.reject(new RangeError(`a reorg needs a positive number of blocks, got ${blocks}`));
    }
    return this.runExclusive(async () => {
      const from = this.processor.height;
      const target = Math.max(-1, from - blocks);
      const undone = from - target;
      this.log.info(
        `forced reorg: undoing ${undone} block${undone === 1 ? "" : "s"} back to height ${target}`,
      );
      await this.processor.backup(target);
      if (this.caughtUpOnce) await this.processor.flush();
      this.stats.caughtUp = false;
      this.prefetcher.reset(target + 1);
      return { height: this.processor.height, undone };
    });
  }

  /** Waits as `wait` does, but returns early when a task is queued. */
  private async waitUnlessTask(wait: () => Promise<void>): Promise<void> {
    this.consumerWait ??= wait().finally(() => this.consumerWait = undefined);
    if (this.tasks.length > 0 || this.divergedAt !== undefined || this.fatal !== undefined) return;
    this.taskArrived = Promise.withResolvers<void>();
    try {
      await Promise.race([this.consumerWait, this.taskArrived.promise]);
    } finally {
      this.taskArrived = undefined;
    }
  }

  private async runTasks(): Promise<void> {
    while (this.tasks.length > 0 && !this.stopping) await this.tasks.shift()!.run();
  }

  /** Asks `run` to finish: the block being applied completes, then one final flush. */
  stop(): void {
    this.stopping = true;
    this.stopRequested.resolve();
    // stop() wakes any waiter; run's finally awaits the loop itself.
    void this.prefetcher.stop();
  }

  /** Checks the daemon's tip now rather than at the next poll (e.g. after a block notification). */
  pollNow(): void {
    this.prefetcher.pollNow();
  }

  private async apply(blocks: RawBlock[]): Promise<void> {
    let start = 0;
    while (start < blocks.length && !this.stopping) {
      // Find the longest prefix that connects; a block that does not is the sign of a reorg.
      let end = start;
      let tip = this.processor.tipHash;
      while (end < blocks.length && connects(blocks[end], tip)) {
        tip = blocks[end].hash;
        end++;
      }
      // Applied in slices so that FLUSH_SIZE/CACHE_MB are checked every few MB rather than once per prefetch
      // batch (up to 500 blocks), and so the thread gets back to its other work (sessions) in between.
      let i = start;
      while (i < end && !this.stopping) {
        let j = i;
        let bytes = 0;
        while (j < end && (j === i || bytes + blocks[j].raw.length <= APPLY_SLICE_BYTES)) {
          bytes += blocks[j++].raw.length;
        }
        const run = blocks.slice(i, j);
        this.processor.advance(run);
        this.count(run);
        // At the tip every block is flushed at once so that answers and notifications are current.
        if (this.caughtUpOnce || this.processor.needsFlush()) await this.processor.flush();
        if (this.caughtUpOnce) this.opts.onTip?.(this.processor.height);
        this.maybeLogProgress();
        i = j;
      }
      if (i < end) return; // stopping
      if (end < blocks.length && !this.stopping) {
        await this.handleReorg(blocks[end].height);
        return; // the rest of this batch belongs to the old branch or was refetched after reset
      }
      start = end;
    }
  }

  private async reachedTip(): Promise<void> {
    this.stats.caughtUp = true;
    if (this.caughtUpOnce) return;
    this.processor.firstSync = false;
    await this.processor.flush();
    this.caughtUpOnce = true;
    this.log.info(`caught up to height ${this.processor.height}`);
    this.log.info(this.profileLine());
    this.opts.onTip?.(this.processor.height);
  }

  private async handleReorg(badHeight: number): Promise<void> {
    this.log.info(`chain reorganisation detected at height ${badHeight}; finding the common ancestor`);
    const fork = await this.findForkHeight();
    const depth = this.processor.height - fork;
    this.log.info(`undoing ${depth} block${depth === 1 ? "" : "s"} back to height ${fork}`);
    await this.processor.backup(fork);
    if (this.caughtUpOnce) await this.processor.flush();
    this.prefetcher.reset(fork + 1);
  }

  /** Highest height at which our chain and the daemon's agree, found by doubling steps backwards. */
  private async findForkHeight(): Promise<number> {
    const daemonTip = await this.source.getBlockCount();
    let top = Math.min(this.processor.height, daemonTip);
    let step = 8;
    while (top >= 0) {
      const from = Math.max(0, top - step + 1);
      const theirs = await this.source.getBlockHashes(from, top - from + 1);
      for (let h = top; h >= from; h--) {
        const ours = this.processor.blockHashAt(h);
        if (ours && equalBytes(ours, theirs[h - from])) return h;
      }
      top = from - 1;
      step *= 2;
    }
    throw new Error(
      "the daemon's chain shares no block with ours, not even genesis: is DAEMON_URL on the right network?",
    );
  }

  // One line that says where the initial sync's time went; `scripts/bench.ts` parses it, so keep the keys.
  private profileLine(): string {
    const wall = (performance.now() - this.startedAt) / 1000;
    const t = this.processor.timing;
    const s = (ms: number) => (ms / 1000).toFixed(2);
    const parts = [
      `blocks=${this.stats.blocks}`,
      `txs=${this.stats.txs}`,
      `wall=${wall.toFixed(2)}s`,
      `fetch-wait=${s(this.fetchWaitMs)}s`,
    ];
    if (t) {
      parts.push(`parse+hash=${s(t.parseMs)}s`, `process=${s(t.applyMs)}s`, `flush=${s(t.flushMs)}s`);
      const other = wall * 1000 - this.fetchWaitMs - t.parseMs - t.applyMs - t.flushMs;
      parts.push(`other=${s(Math.max(0, other))}s`);
      if (t.workerParseMs) parts.push(`worker-parse=${s(t.workerParseMs)}s`);
    }
    return `sync profile: ${parts.join(" ")}`;
  }

  private logPrefill(count: number, height: number, daemonHeight: number, bytes: number): void {
    // Once per progress interval is enough to show the prefetcher is ahead; every batch would flood the log.
    const now = this.now();
    if (this.caughtUpOnce || now - this.lastPrefillLog < (this.opts.progressIntervalS ?? 10) * 1000) return;
    this.lastPrefillLog = now;
    this.log.info(
      `prefilled ${formatCount(count)} blocks to height ${formatCount(height)} daemon height ` +
        `${formatCount(daemonHeight)} block cache size ${formatCount(bytes)}`,
    );
  }

  private count(blocks: RawBlock[]): void {
    let txs = 0;
    for (const b of blocks) txs += blockTxCount(b.raw);
    this.stats.blocks += blocks.length;
    this.stats.txs += txs;
    this.windowBlocks += blocks.length;
    this.windowTxs += txs;
  }

  private maybeLogProgress(): void {
    if (this.caughtUpOnce) return;
    const now = this.now();
    const elapsed = (now - this.windowStart) / 1000;
    if (elapsed < (this.opts.progressIntervalS ?? 10)) return;
    const bps = this.windowBlocks / elapsed;
    const tps = this.windowTxs / elapsed;
    const height = this.processor.height;
    const target = this.prefetcher.tipHeight;
    const left = Math.max(0, target - height);
    const eta = bps > 0 ? formatDuration(left / bps) : "unknown";
    this.log.info(
      `height ${height}/${target}: ${bps.toFixed(1)} blocks/s, ${Math.round(tps)} tx/s, ETA ${eta}`,
    );
    this.windowStart = now;
    this.windowBlocks = 0;
    this.windowTxs = 0;
  }
}

// Raw block bytes applied between flush checks.
const APPLY_SLICE_BYTES = 8 * 1024 * 1024;

/** Number of transactions in a raw block, read from the CompactSize after the header. */
export function blockTxCount(raw: Uint8Array): number {
  if (raw.length < 81) return 0;
  const first = raw[80];
  if (first < 0xfd) return first;
  if (first === 0xfd && raw.length >= 83) return raw[81] | (raw[82] << 8);
  if (first === 0xfe && raw.length >= 85) {
    return (raw[81] | (raw[82] << 8) | (raw[83] << 16)) + raw[84] * 0x1000000;
  }
  return 0;
}

function connects(block: RawBlock, tip: Uint8Array | undefined): boolean {
  if (tip === undefined) return block.height === 0;
  if (block.raw.length < 36) return false;
  return equalBytes(block.raw.subarray(4, 36), tip);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
