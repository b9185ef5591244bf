// The sync-progress history behind the status page's chart. It covers the whole uptime in bounded memory:
// when full, every other sample is dropped and the sampling interval doubles, so a month-long run keeps as
// many points as a one-hour run, just further apart.

/** One point of the chart. */
export interface ProgressSample {
  /** Unix time in milliseconds. */
  readonly t: number;
  /** Database height (-1 when empty). */
  readonly height: number;
  /** The daemon's height as last seen (-1 before the first poll). */
  readonly daemonHeight: number;
  /** Transactions indexed since start-up. */
  readonly txs: number;
}

/** How far back every offered sample is kept, unthinned, for rate(): windows up to this long are exact. */
export const RECENT_MS = 300_000;

/** A bounded, self-thinning series of progress samples. */
export class ProgressHistory {
  readonly #capacity: number;
  #samples: ProgressSample[] = [];
  #intervalMs: number;
  // Every sample of the last RECENT_MS: once the chart's spacing has doubled a few times, a "last minute"
  // rate taken from it would span several minutes.
  #recent: ProgressSample[] = [];

  /** `intervalMs` is the starting spacing between kept samples; `capacity` (at least 4) bounds the series. */
  constructor(intervalMs: number, capacity = 512) {
    this.#intervalMs = Math.max(1, intervalMs);
    this.#capacity = Math.max(4, Math.floor(capacity));
  }

  /** Current spacing between kept samples (ms). */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /**
   * Offers a sample. It is kept when at least the current interval has passed since the last kept one;
   * otherwise it replaces the newest point, so the series always ends at the latest state.
   */
  add(s: ProgressSample): void {
    const samples = this.#samples;
    const last = samples[samples.length - 1];
    if (last && s.t < last.t) return;
    const recent = this.#recent;
    recent.push(s);
    // Drop what is older than RECENT_MS, keeping the newest sample beyond it so the window stays covered.
    let drop = 0;
    while (drop < recent.length - 2 && s.t - recent[drop + 1].t >= RECENT_MS) drop++;
    if (drop > 0) recent.splice(0, drop);
    if (samples.length >= 2 && last && s.t - samples[samples.length - 2].t < this.#intervalMs) {
      samples[samples.length - 1] = s;
      return;
    }
    samples.push(s);
    if (samples.length > this.#capacity) {
      // Keep the first point and every second one after it, plus the newest: the chart's ends stay exact.
      const thinned: ProgressSample[] = [];
      for (let i = 0; i < samples.length - 1; i += 2) thinned.push(samples[i]);
      thinned.push(samples[samples.length - 1]);
      this.#samples = thinned;
      this.#intervalMs *= 2;
    }
  }

  /** The samples, oldest first (a copy). */
  samples(): ProgressSample[] {
    return [...this.#samples];
  }

  /** Blocks and transactions per second over the last `windowMs` (at most RECENT_MS). */
  rate(windowMs: number): { blocksPerSec: number; txsPerSec: number } {
    const s = this.#recent;
    if (s.length < 2) return { blocksPerSec: 0, txsPerSec: 0 };
    const last = s[s.length - 1];
    let i = s.length - 2;
    while (i > 0 && last.t - s[i].t < windowMs) i--;
    const first = s[i];
    const dt = (last.t - first.t) / 1000;
    if (dt <= 0) return { blocksPerSec: 0, txsPerSec: 0 };
    return {
      blocksPerSec: Math.max(0, last.height - first.height) / dt,
      txsPerSec: Math.max(0, last.txs - first.txs) / dt,
    };
  }
}
