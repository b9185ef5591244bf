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
}

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
  // Running estimate of raw block size, so a batch fills the free space without overshooting it much.
  private avgBlockSize = 1_000;
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

  /** One round: refresh the tip if needed and fetch one batch. Returns true if it fetched anything. */
  private async fetchSome(): Promise<boolean> {
    this.fetcherPending = false;
    const generation = this.generation;
    if (this.nextHeight > this.daemonHeight) {
      this.daemonHeight = await this.source.getBlockCount();
      if (this.nextHeight > this.daemonHeight) {
        this.signalConsumer();
        return false;
      }
    }
    const free = this.opts.maxQueueBytes - this.queueBytes;
    if (free <= 0) return false;
    const want = Math.max(1, Math.min(this.maxBatch, Math.floor(free / this.avgBlockSize)));
    const count = Math.min(want, this.daemonHeight - this.nextHeight + 1);
    const from = this.nextHeight;
    const hashes = await this.source.getBlockHashes(from, count);
    if (generation !== this.generation) return true;
    const raws = await this.source.getRawBlocks(hashes);
    if (generation !== this.generation) return true;
    let bytes = 0;
    for (let i = 0; i < raws.length; i++) {
      this.queue.push({ height: from + i, hash: hashes[i], raw: raws[i] });
      bytes += raws[i].length;
    }
    this.queueBytes += bytes;
    this.nextHeight = from + raws.length;
    if (raws.length > 0) {
      // Weight the running average towards recent blocks: sizes trend over the chain's history.
      this.avgBlockSize = Math.max(100, Math.round(this.avgBlockSize * 0.5 + (bytes / raws.length) * 0.5));
    }
    this.opts.onFetched?.(raws.length, this.nextHeight - 1, this.daemonHeight, this.queueBytes);
    this.signalConsumer();
    return true;
  }
}
