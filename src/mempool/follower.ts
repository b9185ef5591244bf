// Keeps a Mempool current: a refresh every poll interval, and one on demand (after each new block, so that
// confirmed transactions leave at once). Refreshes never overlap, and each one's touched hashXs go to one
// callback in order — the notifier's single entry point for mempool changes.
import { isDaemonClosed } from "../daemon/errors.ts";
import type { Log } from "../log.ts";
import { errorText } from "../error_text.ts";

/** What the follower drives (Mempool provides it). */
export interface Refreshable {
  refresh(): Promise<Uint8Array[]>;
}

/** Options of a MempoolFollower. */
export interface MempoolFollowerOptions {
  /** Milliseconds between polls (DAEMON_POLL_MS). */
  pollMs: number;
  log: Log;
  /** Receives the hashXs each refresh touched (also when empty); awaited before the next refresh. */
  onRefresh?: (touched: Uint8Array[]) => void | Promise<void>;
}

interface Waiter {
  resolve(touched: Uint8Array[]): void;
  reject(err: unknown): void;
}

/** Polls a mempool until stopped; see refreshNow for block-driven refreshes. */
export class MempoolFollower {
  private running: Promise<void> | undefined;
  private stopping = false;
  private waiters: Waiter[] = [];
  private wake: (() => void) | undefined;
  private lastError = "";

  constructor(private readonly mempool: Refreshable, private readonly opts: MempoolFollowerOptions) {}

  /** Starts polling (the first refresh runs at once); calling it again does nothing. */
  start(): void {
    if (this.running === undefined && !this.stopping) this.running = this.loop();
  }

  /**
   * Asks for a refresh that starts after this call (one already running does not count) and resolves with
   * its touched hashXs once onRefresh has seen them; rejects if that refresh fails or the follower stops.
   */
  refreshNow(): Promise<Uint8Array[]> {
    if (this.stopping) return Promise.reject(new Error("mempool follower stopped"));
    const p = new Promise<Uint8Array[]>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.start();
    this.wake?.();
    return p;
  }

  /** Stops polling; resolves when the refresh in progress (if any) has finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
    for (const w of this.waiters.splice(0)) w.reject(new Error("mempool follower stopped"));
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const served = this.waiters.splice(0);
      try {
        const touched = await this.mempool.refresh();
        await this.opts.onRefresh?.(touched);
        this.lastError = "";
        for (const w of served) w.resolve(touched);
      } catch (err) {
        for (const w of served) w.reject(err);
        const message = errorText(err);
        // One line per distinct failure, not one per poll while bitcoind keeps failing the same way.
        if (message !== this.lastError && !isDaemonClosed(err)) {
          this.lastError = message;
          this.opts.log.warn(`mempool refresh failed: ${message}; retrying every ${this.opts.pollMs} ms`);
        }
      }
      if (this.waiters.length === 0 && !this.stopping) await this.pause();
    }
  }

  private pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.opts.pollMs);
      this.wake = done;
    });
  }
}
