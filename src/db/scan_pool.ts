// Range scans over a few long-lived LevelDB iterators, repositioned with seek(), instead of a new iterator per
// scan. Every cache miss of the server is a scan (a script hash's history, its UTXOs, a txid's candidates), and
// each classic-level iterator is a native object freed by a finalizer after V8's next major GC: with a new one
// per scan, the finalizers of a burst of misses ran together and held the event loop for ~250 ms (measured with
// 1,000 paced sessions on a fresh server: p99 331 ms, against 13 ms once the caches were warm).
//
// An iterator reads the database as it was when the iterator was created, so each is tagged with the store's
// state object at creation and reused only while that state is current: every write that changes an answer
// replaces the state object. Only iterators of the newest state a scan asked for are kept: an idle iterator
// holds on to LevelDB's memtables and table files of its time, and a pool of hundreds could otherwise keep
// those of many past states alive.

/** The part of a classic-level iterator a pool needs. */
export interface SeekableIterator {
  seek(target: Uint8Array): void;
  nextv(size: number): Promise<[Uint8Array, Uint8Array][]>;
  close(): Promise<void>;
}

interface Pooled {
  it: SeekableIterator;
  state: object;
}

// Entries read by a scan's first step, then by each further one. Most scans are one script hash's one or two
// rows, and every entry read (including those past the range, which only tell where it ends) becomes two
// fresh buffers, each ~0.3 us in Deno. Measured on the benchmark database (96% of script hashes with one
// history row, 93% with one UTXO row), 60,000 cache misses 64 at a time: 35-42k scans/s with a first step of
// 8, 45-51k with 4, the same with 2 or 3; 4 still reads three rows in one step.
const FIRST_STEP = 4;
const STEP = 64;

/** A pool of reusable iterators for range scans under one database state at a time. */
export class ScanPool {
  readonly #free: Pooled[] = [];
  /** The newest state a scan asked for; every pooled iterator was made under it. */
  #state: object | undefined;
  #closed = false;
  /** Iterators created (for tests and metrics). */
  created = 0;

  /** `open` makes a fresh iterator over the whole database; at most `keep` idle ones are kept. */
  constructor(private readonly open: () => SeekableIterator, private readonly keep = 64) {}

  /**
   * Calls `fn` for every entry with a key in [gte, lt) in key order, as the database is under `state`, until
   * `fn` returns false. The arrays passed are fresh copies, which `fn` may keep.
   */
  async scan(
    state: object,
    gte: Uint8Array,
    lt: Uint8Array,
    fn: (key: Uint8Array, value: Uint8Array) => boolean | void,
  ): Promise<void> {
    const p = this.#acquire(state);
    let ok = false;
    try {
      p.it.seek(gte);
      let step = FIRST_STEP;
      scan: for (;;) {
        const rows = await p.it.nextv(step);
        if (rows.length === 0) break;
        for (const [key, value] of rows) {
          if (compareBytes(key, lt) >= 0 || fn(key, value) === false) break scan;
        }
        // A short batch is no end: classic-level also stops a batch at a byte budget (16 KB), which a few
        // merged history rows fill. Only an empty batch or a key past the range ends the scan.
        step = STEP;
      }
      ok = true;
    } finally {
      // An iterator that failed mid-read is not trusted again.
      this.#release(p, ok);
    }
  }

  /** Closes the idle iterators; later scans make fresh ones (the database is about to close). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#free.splice(0).map((p) => p.it.close()));
  }

  #acquire(state: object): Pooled {
    if (state !== this.#state) {
      // A new state: every idle iterator is of an older one.
      this.#state = state;
      for (const p of this.#free.splice(0)) void p.it.close().catch(() => {});
    }
    const p = this.#free.pop();
    if (p !== undefined) return p;
    this.created++;
    return { it: this.open(), state };
  }

  #release(p: Pooled, reusable: boolean): void {
    // One made under an older state (a scan that was running when the state changed) is not kept either.
    if (reusable && !this.#closed && p.state === this.#state && this.#free.length < this.keep) {
      this.#free.push(p);
    } else {
      void p.it.close().catch(() => {});
    }
  }
}

/** Lexicographic order of two byte strings, as LevelDB's default comparator. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}
