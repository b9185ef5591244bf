// Bitcoin Core runs RPCs on a fixed pool of threads behind a bounded queue and answers 503 once the queue is
// full, so the client must bound its own concurrency rather than rely on the server to push back.

/** A counting semaphore whose waiters can be abandoned through an AbortSignal. */
export class Limiter {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!(max >= 1)) throw new RangeError(`limiter size must be at least 1, got ${max}`);
  }

  /** Number of holders right now. */
  get inUse(): number {
    return this.active;
  }

  /** Waits for a slot; resolves to its release function (idempotent); rejects with the signal's reason. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.active < this.max) {
      this.active++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    // The releasing holder handed its slot over directly, so `active` already counts us.
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    };
  }
}
