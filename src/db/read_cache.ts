// The store's read caches. A LevelDB range scan costs ~50 µs of CPU through classic-level (iterator set-up and
// an asynchronous native call), against ~1 µs for a point read, so the server keeps what it scanned last:
// wallets ask about the same script hashes again and again. Entries are only good for the database state they
// were read under; the first access under a new state empties the cache, so a stale answer is impossible by
// construction — except that a flush which names the hashXs it changed carries the others over (carry()).

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

  /**
   * Moves the entries cached under `from` to `to` when the caller knows none of them changed (a flush that only
   * appended); a cache already behind `from` is left to empty itself on its next use.
   */
  carry(from: object, to: object): void {
    if (this.#state === from) this.#state = to;
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

/**
 * A byte-bounded cache keyed by hashXs (the first `keyLength` bytes of the key given), valid for one database
 * state at a time, with CLOCK eviction like ReadCache. Every scripthash request looks things up here, so it
 * avoids what a Map with string keys costs per lookup (building the key string, hashing it: about a
 * microsecond): keys live in one byte array, an open-addressing table (linear probing, backward-shift
 * deletion) maps them to entries, and the hashX's own first bytes, being a hash already, index the table.
 */
export class HashXCache<V> {
  readonly #keyLength: number;
  readonly #capacity: number;
  readonly #keys: Uint8Array;
  readonly #values: (V | undefined)[];
  readonly #sizes: Float64Array;
  readonly #live: Uint8Array;
  readonly #used: Uint8Array;
  /** Entry index + 1 per table slot; 0 = empty. */
  readonly #slots: Int32Array;
  readonly #slotOf: Int32Array;
  readonly #mask: number;
  readonly #free: Int32Array;
  #freeCount = 0;
  #count = 0;
  #bytes = 0;
  #hand = 0;
  #state: object | undefined;
  hits = 0;
  misses = 0;

  /** At most `maxEntries` entries and `maxBytes` of the sizes given to set() (one value: an eighth of it). */
  constructor(readonly maxBytes: number, maxEntries = 1 << 16, keyLength = 11) {
    this.#keyLength = keyLength;
    this.#capacity = Math.max(1, maxEntries);
    this.#keys = new Uint8Array(this.#capacity * keyLength);
    this.#values = new Array(this.#capacity).fill(undefined);
    this.#sizes = new Float64Array(this.#capacity);
    this.#live = new Uint8Array(this.#capacity);
    this.#used = new Uint8Array(this.#capacity);
    let tableSize = 2;
    while (tableSize < this.#capacity * 2) tableSize *= 2;
    this.#slots = new Int32Array(tableSize);
    this.#slotOf = new Int32Array(this.#capacity);
    this.#mask = tableSize - 1;
    this.#free = new Int32Array(this.#capacity);
    this.#reset(undefined);
  }

  /** The value cached for `key` under `state`, or undefined. */
  get(state: object, key: Uint8Array): V | undefined {
    if (state !== this.#state) {
      this.#reset(state);
      this.misses++;
      return undefined;
    }
    const e = this.#find(key);
    if (e < 0) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.#used[e] = 1;
    return this.#values[e];
  }

  /** Whether set() keeps a value of about `bytes` bytes: one value may take at most an eighth of the bound. */
  accepts(bytes: number): boolean {
    return bytes <= this.maxBytes / 8;
  }

  /** Caches `value` (about `bytes` bytes) for `key` under `state`, evicting entries not used lately. */
  set(state: object, key: Uint8Array, value: V, bytes: number): void {
    if (state !== this.#state) this.#reset(state);
    if (!this.accepts(bytes)) return;
    const old = this.#find(key);
    if (old >= 0) this.#remove(old);
    while (this.#count >= this.#capacity || (this.#count > 0 && this.#bytes + bytes > this.maxBytes)) {
      this.#evictOne();
    }
    const e = this.#free[--this.#freeCount];
    this.#keys.set(key.subarray(0, this.#keyLength), e * this.#keyLength);
    this.#values[e] = value;
    this.#sizes[e] = bytes;
    this.#live[e] = 1;
    this.#used[e] = 0;
    let slot = this.#home(this.#keys, e * this.#keyLength);
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = e + 1;
    this.#slotOf[e] = slot;
    this.#count++;
    this.#bytes += bytes;
  }

  /**
   * Moves the entries cached under `from` to `to`, dropping those of the hashXs in `touched` (packed, `keyLength`
   * bytes each): the ones a flush changed. Without `touched`, or for a cache already behind `from`, nothing is
   * carried and the cache empties itself on its next use.
   */
  carry(from: object, to: object, touched: Uint8Array | undefined): void {
    if (this.#state !== from || touched === undefined) return;
    this.#state = to;
    const len = this.#keyLength;
    for (let at = 0; at + len <= touched.length; at += len) {
      const e = this.#find(touched.subarray(at, at + len));
      if (e >= 0) this.#remove(e);
    }
  }

  /** Number of cached values. */
  get size(): number {
    return this.#count;
  }

  /** Bytes accounted to cached values. */
  get bytes(): number {
    return this.#bytes;
  }

  // The table slot a key hashes to: its first four bytes, mixed (hashXs are uniform already; other keys may not be).
  #home(bytes: Uint8Array, off: number): number {
    const x = bytes[off] | (bytes[off + 1] << 8) | (bytes[off + 2] << 16) | (bytes[off + 3] << 24);
    return (Math.imul(x, 0x9e3779b1) >>> 8) & this.#mask;
  }

  #find(key: Uint8Array): number {
    const len = this.#keyLength;
    const keys = this.#keys;
    let slot = this.#home(key, 0);
    for (;;) {
      const s = this.#slots[slot];
      if (s === 0) return -1;
      const e = s - 1;
      const at = e * len;
      let k = 0;
      while (k < len && keys[at + k] === key[k]) k++;
      if (k === len) return e;
      slot = (slot + 1) & this.#mask;
    }
  }

  #evictOne(): void {
    for (;;) {
      const e = this.#hand;
      this.#hand = (this.#hand + 1) % this.#capacity;
      if (this.#live[e] === 0) continue;
      if (this.#used[e] === 1) {
        this.#used[e] = 0;
        continue;
      }
      this.#remove(e);
      return;
    }
  }

  #remove(e: number): void {
    const mask = this.#mask;
    const slots = this.#slots;
    let hole = this.#slotOf[e];
    slots[hole] = 0;
    // Backward shift: later entries of the probe run move into the hole unless they hash between it and them.
    let j = hole;
    for (;;) {
      j = (j + 1) & mask;
      const s = slots[j];
      if (s === 0) break;
      const home = this.#home(this.#keys, (s - 1) * this.#keyLength);
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (stays) continue;
      slots[hole] = s;
      this.#slotOf[s - 1] = hole;
      slots[j] = 0;
      hole = j;
    }
    this.#values[e] = undefined;
    this.#live[e] = 0;
    this.#used[e] = 0;
    this.#bytes -= this.#sizes[e];
    this.#sizes[e] = 0;
    this.#count--;
    this.#free[this.#freeCount++] = e;
  }

  #reset(state: object | undefined): void {
    this.#state = state;
    if (this.#count === 0 && this.#freeCount === this.#capacity) return;
    this.#slots.fill(0);
    this.#values.fill(undefined);
    this.#live.fill(0);
    this.#used.fill(0);
    this.#sizes.fill(0);
    for (let i = 0; i < this.#capacity; i++) this.#free[i] = this.#capacity - 1 - i;
    this.#freeCount = this.#capacity;
    this.#count = 0;
    this.#bytes = 0;
    this.#hand = 0;
  }
}
