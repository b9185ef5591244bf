// hashX (the first 11 bytes of sha256(script)) for every output of every block: the processor's single biggest
// CPU cost after parsing. Nearly all scripts fit one SHA-256 block (≤ 55 bytes: P2PKH 25, P2SH 23, P2WPKH 22,
// P2WSH/P2TR 34), so they get a one-block compression written straight into the caller's buffer: measured
// 0.33 µs against 1.18 µs for @noble/hashes' sha256 + slice, which also allocates two arrays per output.
// Longer scripts go through src/chain/hash.ts.
import { sha256, SHA256_K } from "../chain/hash.ts";

const K = SHA256_K;
const W = new Int32Array(64);

/** Writes hashX(script) (11 bytes) into `out` at `off`. */
export function hashXInto(script: Uint8Array, out: Uint8Array, off: number): void {
  const n = script.length;
  if (n > 55) {
    const d = sha256(script);
    for (let i = 0; i < 11; i++) out[off + i] = d[i];
    return;
  }
  W.fill(0, 0, 16);
  for (let i = 0; i < n; i++) W[i >> 2] |= script[i] << (24 - 8 * (i & 3));
  W[n >> 2] |= 0x80 << (24 - 8 * (n & 3));
  W[15] = n * 8;
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15], w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = 0x6a09e667, b = 0xbb67ae85 | 0, c = 0x3c6ef372, d = 0xa54ff53a | 0;
  let e = 0x510e527f, f = 0x9b05688c | 0, g = 0x1f83d9ab, h = 0x5be0cd19;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
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
  // Only the first 11 bytes of the digest are needed: words 0..2 (the last byte of word 2 is dropped).
  const h0 = (a + 0x6a09e667) | 0, h1 = (b + (0xbb67ae85 | 0)) | 0, h2 = (c + 0x3c6ef372) | 0;
  out[off] = h0 >>> 24;
  out[off + 1] = h0 >>> 16;
  out[off + 2] = h0 >>> 8;
  out[off + 3] = h0;
  out[off + 4] = h1 >>> 24;
  out[off + 5] = h1 >>> 16;
  out[off + 6] = h1 >>> 8;
  out[off + 7] = h1;
  out[off + 8] = h2 >>> 24;
  out[off + 9] = h2 >>> 16;
  out[off + 10] = h2 >>> 8;
}
