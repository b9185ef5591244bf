// The prefetcher keeps raw blocks ahead of the block processor so that the daemon round trip overlaps with
// parsing and applying. Its queue is bounded by bytes, not blocks: mainnet blocks range from 200 B to 4 MB, so
// a block count alone would either starve the processor early in the chain or blow memory late.

/** What the prefetcher needs from the daemon. Hashes are in internal byte order. */
export interface BlockSource {
  /** Height of the daemon's active tip. */
  getBlockCount(): Promise<number>;
  /** Active-chain hashes for heights `from .. from+count-1`. */
  getBlockHashes(from: number, count: number): Promise<Uint8Array[]>;
  /** Raw serialized blocks for the given hashes, in the same order. */
  getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]>;
}

/** A fetched block waiting for the processor. */
export interface RawBlock {
  height: number;
  hash: Uint8Array;
  raw: Uint8Array;
}

/** Tuning of the prefetcher; all sizes in bytes. */
export interface PrefetchOptions {
  /** Upper bound on queued raw block bytes. */
  maxQueueBytes: number;
  /** How long to wait between tip polls once caught up, in milliseconds. */
  pollIntervalMs: number;
  /** Largest number of blocks asked for in one round trip. */
  maxBatch?: number;
  /** Called when a fetch fails; the prefetcher retries after `pollIntervalMs` (the client already backed off). */
  onError?: (err: unknown) => void;
  /** Called after each batch lands: how many blocks, the height reached, the daemon's height, bytes queued. */
  onFetched?: (count: number, height: number, daemonHeight: number, queuedBytes: number) => void;
  /** Our chain's hash at a height once that block is applied (else undefined): enables the tip check. */
  hashAt?: (height: number) => Uint8Array | undefined;
  /**
   * Called when, with nothing new to fetch, the daemon's chain no longer holds our block at `height` (or its
   * tip is below it): a reorg that brings no new block, which nothing else would notice.
   */
  onDiverged?: (height: number) => void;
}

/**
 * Blocks fetched at once while their size is unknown (the first of a run): on mainnet a whole batch of 500
 * blocks of ~1.5 MB would be several times the queue's byte limit.
 */
const FIRST_CHUNK = 10;

/** Byte-bounded queue of future blocks, filled from a BlockSource in adaptively sized batches. */
export class Prefetcher {
  private queue: RawBlock[] = [];
  private queueBytes = 0;
  private nextHeight: number;
  private daemonHeight = -1;
  // Bumped by reset(): batches that were in flight when the chain changed under us are dropped on arrival.
  private generation = 0;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeFetcher: (() => void) | null = null;
  private wakeConsumer: (() => void) | null = null;
  // Wake-ups that arrive while the other side is busy rather than waiting must not be lost.
  private fetcherPending = false;
  private consumerPending = false;
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  // Running estimate of raw block size, so a batch fills the free space without overshooting it much; 0 until
  // the first batch has measured it.
  private avgBlockSize = 0;
  private readonly maxBatch: number;

  constructor(
    private readonly source: BlockSource,
    startHeight: number,
    private readonly opts: PrefetchOptions,
  ) {
    this.nextHeight = startHeight;
    this.maxBatch = opts.maxBatch ?? 500;
  }

  /** Starts the background fetch loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stops fetching and waits for the loop to finish; queued blocks stay available. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loopDone;
  }

  /** The daemon tip height as last seen (-1 before the first poll). */
  get tipHeight(): number {
    return this.daemonHeight;
  }

  /** Bytes of raw blocks currently queued. */
  get bytesQueued(): number {
    return this.queueBytes;
  }

  /** Number of blocks currently queued. */
  get blocksQueued(): number {
    return this.queue.length;
  }

  /** True when nothing is queued and every block up to the daemon's last known tip has been handed out. */
  get caughtUp(): boolean {
    return this.queue.length === 0 && this.daemonHeight >= 0 && this.nextHeight > this.daemonHeight;
  }

  /**
   * Takes every queued block (in height order); [] when none is queued. After [] and `caughtUp`, the caller
   * flushes and notifies, then waits with `waitForNewBlocks`.
   */
  take(): RawBlock[] {
    const out = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    this.wakeLoop();
    return out;
  }

  /** Waits until at least one block is queued, the daemon's tip has been reached, or the prefetcher stops. */
  async waitForBlocks(): Promise<void> {
    while (this.running && this.queue.length === 0 && !this.caughtUp) await this.consumerSignal();
  }

  /** Waits, past the tip, until the daemon has a new block queued or the prefetcher stops. */
  async waitForNewBlocks(): Promise<void> {
    while (this.running && this.queue.length === 0) await this.consumerSignal();
  }

  /**
   * Discards everything queued and continues from `height`: the processor found that the chain it was fed no
   * longer connects (a reorg) and has backed up to `height - 1`.
   */
  reset(height: number): void {
    this.generation++;
    this.queue = [];
    this.queueBytes = 0;
    this.nextHeight = height;
    this.wake();
  }

  /** Asks the loop to poll the daemon's tip now instead of at the next interval (e.g. on a ZMQ-like hint). */
  pollNow(): void {
    this.wake();
  }

  private consumerSignal(): Promise<void> {
    if (this.consumerPending) {
      this.consumerPending = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => (this.wakeConsumer = resolve));
  }

  private wake(): void {
    this.wakeLoop();
    this.signalConsumer();
  }

  private wakeLoop(): void {
    if (this.sleepTimer !== undefined) {
      clearTimeout(this.sleepTimer);
      this.sleepTimer = undefined;
    }
    const f = this.wakeFetcher;
    this.wakeFetcher = null;
    if (f) f();
    else this.fetcherPending = true;
  }

  private signalConsumer(): void {
    const c = this.wakeConsumer;
    this.wakeConsumer = null;
    if (c) c();
    else this.consumerPending = true;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const fetched = await this.fetchSome();
        if (fetched) continue;
      } catch (err) {
        this.opts.onError?.(err);
      }
      if (!this.running) break;
      if (this.fetcherPending) {
        this.fetcherPending = false;
        continue;
      }
      // Nothing to do (tip reached or queue full) or the daemon failed: sleep until woken or the poll interval.
      await new Promise<void>((resolve) => {
        this.wakeFetcher = resolve;
        const full = this.queueBytes >= this.opts.maxQueueBytes;
        // A full queue waits for take(); an idle one polls the tip.
        if (!full) {
          this.sleepTimer = setTimeout(() => this.wakeLoop(), this.opts.pollIntervalMs);
        }
      });
    }
    this.signalConsumer();
  }

  /**
   * With everything fetched: our last block must still be in the daemon's chain. A tip that went down
   * (invalidateblock) or was replaced at the same height (testnet's minimum-difficulty blocks) brings no new
   * block whose parent would not connect, so it is looked for here, once per poll.
   */
  private async checkTip(generation: number): Promise<void> {
    const { hashAt, onDiverged } = this.opts;
    const ours = this.nextHeight - 1;
    if (hashAt === undefined || onDiverged === undefined || ours < 0 || this.daemonHeight < 0) return;
    if (this.daemonHeight < ours) {
      onDiverged(this.daemonHeight + 1);
      return;
    }
    const mine = hashAt(ours);
    if (mine === undefined) return; // not applied yet: the processor's own check covers it
    const [theirs] = await this.source.getBlockHashes(ours, 1);
    if (generation !== this.generation || theirs === undefined) return;
    for (let i = 0; i < 32; i++) {
      if (theirs[i] !== mine[i]) {
        onDiverged(ours);
        return;
      }
    }
  }

  /** One round: refresh the tip if needed and fetch one batch. Returns true if it fetched anything. */
  private async fetchSome(): Promise<boolean> {
    this.fetcherPending = false;
    const generation = this.generation;
    if (this.nextHeight > this.daemonHeight) {
      this.daemonHeight = await this.source.getBlockCount();
      if (this.nextHeight > this.daemonHeight) {
        if (this.queue.length === 0) await this.checkTip(generation);
        this.signalConsumer();
        return false;
      }
    }
    const free = this.opts.maxQueueBytes - this.queueBytes;
    if (free <= 0) return false;
    const want = Math.max(
      1,
      Math.min(this.maxBatch, this.avgBlockSize === 0 ? this.maxBatch : Math.floor(free / this.avgBlockSize)),
    );
    const count = Math.min(want, this.daemonHeight - this.nextHeight + 1);
    const from = this.nextHeight;
    let hashes: Uint8Array[];
    try {
      hashes = await this.source.getBlockHashes(from, count);
    } catch (err) {
      // E.g. -8 "Block height out of range": the daemon's tip went down since we read it. Read it again next
      // time rather than asking for the same heights for ever.
      this.daemonHeight = -1;
      throw err;
    }
    if (generation !== this.generation) return true;
    // In chunks that at most double what this batch has fetched so far and fit the free space by the size
    // estimate, stopping once the space is used: blocks bigger than estimated (or of unknown size) overshoot
    // the limit by one chunk, about what the batch already holds. Hashes not fetched are asked for again.
    let got = 0;
    let bytes = 0;
    while (got < hashes.length && bytes < free) {
      const fits = this.avgBlockSize === 0 ? FIRST_CHUNK : Math.floor((free - bytes) / this.avgBlockSize);
      const chunk = hashes.slice(got, got + Math.max(1, Math.min(fits, Math.max(FIRST_CHUNK, got))));
      const raws = await this.source.getRawBlocks(chunk);
      if (generation !== this.generation) return true;
      let chunkBytes = 0;
      for (let i = 0; i < raws.length; i++) {
        this.queue.push({ height: from + got + i, hash: chunk[i], raw: raws[i] });
        chunkBytes += raws[i].length;
      }
      if (raws.length === 0) break;
      got += raws.length;
      bytes += chunkBytes;
      this.queueBytes += chunkBytes;
      this.nextHeight = from + got;
      // Weight the running average towards recent blocks: sizes trend over the chain's history.
      const size = chunkBytes / raws.length;
      this.avgBlockSize = Math.max(
        100,
        Math.round(this.avgBlockSize === 0 ? size : this.avgBlockSize * 0.5 + size * 0.5),
      );
      // The processor may start on these while the rest of the batch is fetched.
      this.signalConsumer();
    }
    this.opts.onFetched?.(got, this.nextHeight - 1, this.daemonHeight, this.queueBytes);
    this.signalConsumer();
    return true;
  }
}
