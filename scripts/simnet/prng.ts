// A small, fast, seedable PRNG (xoshiro128**) so that every simnet chain is reproducible from its seed on
// any machine: Math.random cannot be seeded and crypto randomness would make the cache file meaningless.
import { sha256 } from "../../src/chain/hash.ts";

/** xoshiro128** over 32-bit state words; all arithmetic stays in int32 so V8 keeps it unboxed. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Seeds from any string or number; different labels give independent streams from one seed. */
  constructor(seed: string | number, label = "") {
    const digest = sha256(new TextEncoder().encode(`${String(seed)}\u0000${label}`));
    const v = new DataView(digest.buffer, digest.byteOffset, digest.byteLength);
    this.a = v.getUint32(0, true) | 0;
    this.b = v.getUint32(4, true) | 0;
    this.c = v.getUint32(8, true) | 0;
    this.d = v.getUint32(12, true) | 0;
    // An all-zero state would stay zero forever.
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** Next uniform uint32. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n) for n ≤ 2^32. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** Standard normal deviate (Box–Muller; one of the pair is dropped to keep the state simple). */
  normal(): number {
    const u = 1 - this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }

  /** Integer in [lo, hi] from a truncated Pareto tail with exponent `alpha`: many small, few huge. */
  pareto(lo: number, hi: number, alpha: number): number {
    // Inverse CDF of the Pareto distribution restricted to [lo, hi + 1).
    const a = Math.pow(lo, -alpha), b = Math.pow(hi + 1, -alpha);
    const x = Math.pow(a - this.float() * (a - b), -1 / alpha);
    return Math.min(hi, Math.max(lo, Math.floor(x)));
  }

  /** Fills `out[off .. off+n)` with random bytes. */
  fill(out: Uint8Array, off = 0, n = out.length - off): void {
    let i = off;
    const end = off + n;
    while (i + 4 <= end) {
      const r = this.u32();
      out[i] = r;
      out[i + 1] = r >>> 8;
      out[i + 2] = r >>> 16;
      out[i + 3] = r >>> 24;
      i += 4;
    }
    if (i < end) {
      let r = this.u32();
      while (i < end) {
        out[i++] = r;
        r >>>= 8;
      }
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
