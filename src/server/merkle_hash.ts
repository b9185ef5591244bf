// sha256d of 64-byte inputs (a merkle node: left ‖ right), written straight into a destination buffer. Merkle
// proofs hash thousands of such pairs per block, and a general-purpose hasher spends most of its time on
// per-call set-up (hasher objects, padding, output arrays). Here the input is always exactly one block
// followed by the same padding block, whose message schedule is therefore precomputed, and the second hash
// is one compression of the 32-byte digest: three compressions per node and no allocation.

const K = Int32Array.from([
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

/** Expands W[0..15] (already filled) to all 64 words in place. */
function expand(w: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
}

// Schedule of the padding block that follows a 64-byte message: 0x80, zeros, bit length 512.
const PAD64 = new Int32Array(64);
PAD64[0] = 0x80000000 | 0;
PAD64[15] = 512;
expand(PAD64);

/** One compression of schedule `w` into `state` (8 words). */
function compress(state: Int32Array, w: Int32Array): void {
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + s1 + ch + K[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (s0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

const W = new Int32Array(64);
const STATE = new Int32Array(8);

/**
 * Writes sha256d(src[srcOff .. srcOff+64]) to dst[dstOff .. dstOff+32]. `dst` may overlap the input (the
 * input is read completely before anything is written).
 */
export function sha256d64(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  for (let i = 0; i < 16; i++) {
    const o = srcOff + i * 4;
    W[i] = (src[o] << 24) | (src[o + 1] << 16) | (src[o + 2] << 8) | src[o + 3];
  }
  expand(W);
  STATE.set(IV);
  compress(STATE, W);
  compress(STATE, PAD64);
  // The second hash: the 32-byte digest, 0x80, zeros, bit length 256.
  for (let i = 0; i < 8; i++) W[i] = STATE[i];
  W[8] = 0x80000000 | 0;
  for (let i = 9; i < 15; i++) W[i] = 0;
  W[15] = 256;
  expand(W);
  STATE.set(IV);
  compress(STATE, W);
  for (let i = 0; i < 8; i++) {
    const v = STATE[i];
    const o = dstOff + i * 4;
    dst[o] = v >>> 24;
    dst[o + 1] = v >>> 16;
    dst[o + 2] = v >>> 8;
    dst[o + 3] = v;
  }
}
