// Measured on 2 cores (deno 2.9.6): @noble/hashes wins below ~500 bytes (no native call overhead),
// node:crypto wins above. Every caller goes through these functions so the split lives in one place.
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { ripemd160 } from "@noble/hashes/legacy.js";
import { createHash } from "node:crypto";

const NATIVE_THRESHOLD = 512;

/** Single SHA-256. */
export function sha256(data: Uint8Array): Uint8Array {
  if (data.length < NATIVE_THRESHOLD) return nobleSha256(data);
  const d = createHash("sha256").update(data).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.length);
}

/** Double SHA-256 (txids, block hashes, merkle nodes), in internal byte order. */
export function sha256d(data: Uint8Array): Uint8Array {
  return nobleSha256(sha256(data));
}

/** Double SHA-256 of several byte ranges as if concatenated (e.g. a segwit tx without its witness). */
export function sha256dParts(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  if (total < NATIVE_THRESHOLD) {
    const h = nobleSha256.create();
    for (const p of parts) h.update(p);
    return nobleSha256(h.digest());
  }
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  const d = h.digest();
  return nobleSha256(new Uint8Array(d.buffer, d.byteOffset, d.length));
}

/** RIPEMD-160 of SHA-256, the 20-byte hash inside P2PKH, P2SH and P2WPKH scripts. */
export function hash160(data: Uint8Array): Uint8Array {
  return ripemd160(sha256(data));
}
