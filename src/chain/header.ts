// The 80-byte block header: decoding, encoding, hashing and the compact difficulty target.
import { ChainFormatError } from "./errors.ts";
import { sha256d } from "./hash.ts";

/** Size in bytes of a serialized block header. */
export const HEADER_SIZE = 80;

/** A decoded block header; hashes are in internal byte order and may be views into the source buffer. */
export interface BlockHeader {
  version: number;
  prevHash: Uint8Array;
  merkleRoot: Uint8Array;
  time: number;
  bits: number;
  nonce: number;
}

/** Decodes the 80-byte header at `offset`; throws ChainFormatError if fewer than 80 bytes remain. */
export function parseHeader(buf: Uint8Array, offset = 0): BlockHeader {
  if (!Number.isInteger(offset) || offset < 0 || buf.length - offset < HEADER_SIZE) {
    throw new ChainFormatError(
      "truncated",
      `block header needs ${HEADER_SIZE} bytes, ${Math.max(0, buf.length - offset)} available`,
      offset,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset + offset, HEADER_SIZE);
  return {
    version: view.getInt32(0, true),
    prevHash: buf.subarray(offset + 4, offset + 36),
    merkleRoot: buf.subarray(offset + 36, offset + 68),
    time: view.getUint32(68, true),
    bits: view.getUint32(72, true),
    nonce: view.getUint32(76, true),
  };
}

/** Encodes a header into a fresh 80-byte array. */
export function serializeHeader(h: BlockHeader): Uint8Array {
  if (h.prevHash.length !== 32 || h.merkleRoot.length !== 32) {
    throw new ChainFormatError("bad-hash-length", "header hashes must be 32 bytes", 0);
  }
  const out = new Uint8Array(HEADER_SIZE);
  const view = new DataView(out.buffer);
  view.setInt32(0, h.version | 0, true);
  out.set(h.prevHash, 4);
  out.set(h.merkleRoot, 36);
  view.setUint32(68, h.time >>> 0, true);
  view.setUint32(72, h.bits >>> 0, true);
  view.setUint32(76, h.nonce >>> 0, true);
  return out;
}

/** The block hash (sha256d of the 80 header bytes) in internal byte order. */
export function headerHash(header80: Uint8Array): Uint8Array {
  if (header80.length !== HEADER_SIZE) {
    throw new ChainFormatError(
      "bad-header-length",
      `a header is ${HEADER_SIZE} bytes, got ${header80.length}`,
      0,
    );
  }
  return sha256d(header80);
}

/**
 * Expands compact `bits` into the target (mantissa · 256^(exponent−3)); the sign bit is ignored here,
 * checkProofOfWork rejects it.
 */
export function bitsToTarget(bits: number): bigint {
  const size = bits >>> 24;
  const word = BigInt(bits & 0x007fffff);
  return size <= 3 ? word >> BigInt(8 * (3 - size)) : word << BigInt(8 * (size - 3));
}

/** Compresses a target into compact bits the way Bitcoin Core's GetCompact does (lossy, never negative). */
export function targetToBits(target: bigint): number {
  if (target < 0n) throw new RangeError("target must be non-negative");
  let size = target === 0n ? 0 : Math.ceil(target.toString(16).length / 2);
  let compact = size <= 3
    ? Number(target << BigInt(8 * (3 - size)))
    : Number(target >> BigInt(8 * (size - 3)));
  // A set 0x00800000 would read back as negative, so move one byte into the exponent.
  if (compact & 0x00800000) {
    compact >>>= 8;
    size++;
  }
  return ((size << 24) | compact) >>> 0;
}

/** True when `hash` (internal order, read as a little-endian uint256) is at most the target of `bits`. */
export function checkProofOfWork(hash: Uint8Array, bits: number): boolean {
  if (hash.length !== 32) return false;
  const negative = (bits & 0x00800000) !== 0 && (bits & 0x007fffff) !== 0;
  const target = bitsToTarget(bits);
  if (negative || target === 0n || target >> 256n !== 0n) return false;
  // Compare big-endian from the most significant byte, which is the last one in internal order.
  let t = target;
  const targetBytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    targetBytes[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  for (let i = 31; i >= 0; i--) {
    if (hash[i] !== targetBytes[i]) return hash[i] < targetBytes[i];
  }
  return true;
}
