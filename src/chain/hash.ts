// Hashes. Every caller goes through these functions so the choice of engine lives in one place. Measured on
// 2 cores (deno 2.9.6): a native call (node:crypto) costs ~2 µs whatever the size and then hashes very fast;
// the allocation-free SHA-256 below costs ~0.25 µs per 64-byte block and nothing per call, so it wins below
// ~512 bytes — most transactions — by about 2x over @noble/hashes, whose per-call objects cost more than the
// compression itself on small inputs. Double hashing finishes in one extra block from the first digest's words.
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { ripemd160 } from "@noble/hashes/legacy.js";
import { createHash } from "node:crypto";

const NATIVE_THRESHOLD = 512;

/** SHA-256's round constants (FIPS 180-4), shared with src/sync/hashx.ts. */
export const SHA256_K: Int32Array = Int32Array.from([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

const IV = Int32Array.from([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** Extends the first 16 words of a message schedule to all 64, in place. */
function expandSchedule(w: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const w15 = w[i - 15], w2 = w[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
}

// The schedule of the padding block after a 64-byte message (0x80, zeros, bit length 512) never changes:
// merkle nodes hash exactly 64 bytes, so precomputing it saves a quarter of each node's work.
const PAD64_SCHEDULE = new Int32Array(64);
PAD64_SCHEDULE[0] = 0x80000000 | 0;
PAD64_SCHEDULE[15] = 512;
expandSchedule(PAD64_SCHEDULE);

/**
 * An allocation-free SHA-256: the state, message schedule and partial block are reused for every message,
 * so a hash costs its compressions and nothing else. Synchronous and single-threaded, so one per module is
 * safe to share.
 */
class Sha256Engine {
  private readonly state = new Int32Array(8);
  private readonly w = new Int32Array(64);
  private readonly buf = new Uint8Array(64);
  private bufLen = 0;
  private length = 0;

  begin(): void {
    this.state.set(IV);
    this.bufLen = 0;
    this.length = 0;
  }

  /** Hashes `d[start..end)` onward from the message so far. */
  feed(d: Uint8Array, start: number, end: number): void {
    let p = start;
    this.length += end - start;
    if (this.bufLen > 0) {
      const buf = this.buf;
      let n = this.bufLen;
      while (n < 64 && p < end) buf[n++] = d[p++];
      this.bufLen = n;
      if (n < 64) return;
      this.load(buf, 0);
      this.compress();
      this.bufLen = 0;
    }
    while (end - p >= 64) {
      this.load(d, p);
      this.compress();
      p += 64;
    }
    const buf = this.buf;
    let n = this.bufLen;
    while (p < end) buf[n++] = d[p++];
    this.bufLen = n;
  }

  /** Pads and finishes the message; the digest is in the state words. */
  finish(): void {
    const buf = this.buf;
    let n = this.bufLen;
    buf[n++] = 0x80;
    if (n > 56) {
      buf.fill(0, n);
      this.load(buf, 0);
      this.compress();
      n = 0;
    }
    buf.fill(0, n, 56);
    this.load(buf, 0);
    const bits = this.length * 8;
    this.w[14] = Math.floor(bits / 0x100000000);
    this.w[15] = bits | 0;
    this.compress();
  }

  /** Replaces the state by SHA-256 of the current 32-byte digest (the second half of a double hash). */
  rehashDigest(): void {
    const w = this.w, s = this.state;
    for (let i = 0; i < 8; i++) w[i] = s[i];
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = 256;
    s.set(IV);
    this.compress();
  }

  /** Starts a double hash from a first digest computed elsewhere (32 bytes at `d[off]`). */
  rehashBytes(d: Uint8Array, off: number): void {
    const s = this.state;
    for (let i = 0; i < 8; i++, off += 4) {
      s[i] = (d[off] << 24) | (d[off + 1] << 16) | (d[off + 2] << 8) | d[off + 3];
    }
    this.rehashDigest();
  }

  /** Writes the 32-byte digest big-endian into `out` at `off`. */
  digestInto(out: Uint8Array, off: number): void {
    const s = this.state;
    for (let i = 0; i < 8; i++, off += 4) {
      const v = s[i];
      out[off] = v >>> 24;
      out[off + 1] = v >>> 16;
      out[off + 2] = v >>> 8;
      out[off + 3] = v;
    }
  }

  /** Hashes one 64-byte block at `d[o]` into the state (the message so far must be whole blocks). */
  block(d: Uint8Array, o: number): void {
    this.load(d, o);
    this.compress();
  }

  /** Compresses the padding block of a message of exactly 64 bytes (its schedule is precomputed). */
  padAfter64(): void {
    this.rounds(PAD64_SCHEDULE);
  }

  private load(d: Uint8Array, o: number): void {
    const w = this.w;
    for (let i = 0; i < 16; i++, o += 4) w[i] = (d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3];
  }

  private compress(): void {
    expandSchedule(this.w);
    this.rounds(this.w);
  }

  private rounds(w: Int32Array): void {
    const s = this.state, k = SHA256_K;
    let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + s1 + ((e & f) ^ (~e & g)) + k[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    s[0] = (s[0] + a) | 0;
    s[1] = (s[1] + b) | 0;
    s[2] = (s[2] + c) | 0;
    s[3] = (s[3] + d) | 0;
    s[4] = (s[4] + e) | 0;
    s[5] = (s[5] + f) | 0;
    s[6] = (s[6] + g) | 0;
    s[7] = (s[7] + h) | 0;
  }
}

const engine = new Sha256Engine();

/** Single SHA-256. */
export function sha256(data: Uint8Array): Uint8Array {
  if (data.length < NATIVE_THRESHOLD) return nobleSha256(data);
  const d = createHash("sha256").update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

/** Double SHA-256 (txids, block hashes, merkle nodes), in internal byte order. */
export function sha256d(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  sha256dSpansInto(data, 0, data.length, 0, 0, 0, 0, out, 0);
  return out;
}

/**
 * Double SHA-256 of up to three byte ranges of `data` as if concatenated — `[a0, a1)`, `[b0, b1)`, `[c0, c1)`,
 * empty ranges allowed — written into `out` at `off`. A segwit transaction's txid is its version, body and
 * locktime without the witness: three ranges of the raw block, hashed where they lie.
 */
export function sha256dSpansInto(
  data: Uint8Array,
  a0: number,
  a1: number,
  b0: number,
  b1: number,
  c0: number,
  c1: number,
  out: Uint8Array,
  off: number,
): void {
  const total = (a1 - a0) + (b1 - b0) + (c1 - c0);
  if (total >= NATIVE_THRESHOLD) {
    const h = createHash("sha256").update(data.subarray(a0, a1));
    if (b1 > b0) h.update(data.subarray(b0, b1));
    if (c1 > c0) h.update(data.subarray(c0, c1));
    engine.rehashBytes(h.digest(), 0);
  } else {
    engine.begin();
    engine.feed(data, a0, a1);
    engine.feed(data, b0, b1);
    engine.feed(data, c0, c1);
    engine.finish();
    engine.rehashDigest();
  }
  engine.digestInto(out, off);
}

/** Double SHA-256 of several byte ranges as if concatenated (e.g. a segwit tx without its witness). */
export function sha256dParts(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  if (total >= NATIVE_THRESHOLD) {
    const h = createHash("sha256");
    for (const p of parts) h.update(p);
    engine.rehashBytes(h.digest(), 0);
  } else {
    engine.begin();
    for (const p of parts) engine.feed(p, 0, p.length);
    engine.finish();
    engine.rehashDigest();
  }
  const out = new Uint8Array(32);
  engine.digestInto(out, 0);
  return out;
}

/**
 * Writes sha256d(src[srcOff .. srcOff+64]) — a merkle node from its two children — to dst[dstOff ..]. `dst`
 * may overlap the input: the input is read completely before anything is written.
 */
export function sha256d64(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  engine.begin();
  engine.block(src, srcOff);
  engine.padAfter64();
  engine.rehashDigest();
  engine.digestInto(dst, dstOff);
}

/** Writes the first `len` bytes of sha256(data[start..end)) into `out` at `off` (hashX: len 11). */
export function sha256Into(
  data: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  off: number,
  len = 32,
): void {
  if (end - start >= NATIVE_THRESHOLD) {
    const d = createHash("sha256").update(data.subarray(start, end)).digest();
    for (let i = 0; i < len; i++) out[off + i] = d[i];
    return;
  }
  engine.begin();
  engine.feed(data, start, end);
  engine.finish();
  if (len === 32) {
    engine.digestInto(out, off);
  } else {
    engine.digestInto(scratch, 0);
    for (let i = 0; i < len; i++) out[off + i] = scratch[i];
  }
}
const scratch = new Uint8Array(32);

/** RIPEMD-160 of SHA-256, the 20-byte hash inside P2PKH, P2SH and P2WPKH scripts. */
export function hash160(data: Uint8Array): Uint8Array {
  return ripemd160(sha256(data));
}
