// The store's read caches. A LevelDB range scan costs ~50 µs of CPU through classic-level (iterator set-up and
// an asynchronous native call), against ~1 µs for a point read, so the server keeps what it scanned last:
// wallets ask about the same script hashes again and again. Entries are only good for the database state they
// were read under; the first access under a new state (after a flush or a reorg) empties the cache, so a
// stale answer is impossible by construction.

/**
 * A byte-bounded map from key to value, valid for one database state at a time. Eviction is "second chance"
 * (CLOCK), close to least-recently-used but without reordering anything on a hit: a hit only sets a flag.
 */
export class ReadCache<V> {
  readonly #map = new Map<string, { value: V; bytes: number; used: boolean }>();
  #bytes = 0;
  #state: object | undefined;
  hits = 0;
  misses = 0;

  /** `maxBytes` bounds the sum of the sizes given to set(); one value may take at most an eighth of it. */
  constructor(readonly maxBytes: number) {}

  /** The value cached for `key` under `state`, or undefined. */
  get(state: object, key: string): V | undefined {
    if (state !== this.#state) {
      this.#reset(state);
      this.misses++;
      return undefined;
    }
    const e = this.#map.get(key);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    e.used = true;
    return e.value;
  }

  /** Caches `value` (about `bytes` bytes of memory) for `key` under `state`, evicting entries not used lately. */
  set(state: object, key: string, value: V, bytes: number): void {
    if (state !== this.#state) this.#reset(state);
    if (bytes > this.maxBytes / 8) return;
    const old = this.#map.get(key);
    if (old !== undefined) {
      this.#bytes -= old.bytes;
      this.#map.delete(key);
    }
    this.#map.set(key, { value, bytes, used: false });
    this.#bytes += bytes;
    // Oldest first; an entry used since it was last looked at goes to the back once (the Map keeps insertion
    // order), so every entry is passed over at most once and the loop ends.
    for (const [k, e] of this.#map) {
      if (this.#bytes <= this.maxBytes) break;
      if (k === key) continue;
      this.#map.delete(k);
      if (e.used) {
        e.used = false;
        this.#map.set(k, e);
      } else {
        this.#bytes -= e.bytes;
      }
    }
  }

  /** Number of cached values. */
  get size(): number {
    return this.#map.size;
  }

  /** Bytes accounted to cached values. */
  get bytes(): number {
    return this.#bytes;
  }

  #reset(state: object): void {
    this.#map.clear();
    this.#bytes = 0;
    this.#state = state;
  }
}
