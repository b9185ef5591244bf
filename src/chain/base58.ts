// Base58 and Base58Check (legacy addresses, WIF keys).
import { ChainFormatError } from "./errors.ts";
import { sha256d } from "./hash.ts";

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;

/** Longest string base58Decode accepts; the work is quadratic in length and addresses are ~34 chars. */
export const MAX_BASE58_LENGTH = 256;

/** Encodes bytes as Base58 (leading zero bytes become '1'). */
export function base58Encode(bytes: Uint8Array): string {
  let zeros = 0;
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++;
  // Base-58 digits, least significant first; each input byte multiplies the number by 256.
  const digits: number[] = [];
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i];
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] * 256;
      digits[j] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = "1".repeat(zeros);
  for (let i = digits.length - 1; i >= 0; i--) out += ALPHABET[digits[i]];
  return out;
}

/** Decodes Base58; throws ChainFormatError on a character outside the alphabet or an overlong string. */
export function base58Decode(s: string): Uint8Array {
  if (s.length > MAX_BASE58_LENGTH) {
    throw new ChainFormatError("bad-base58", `base58 string longer than ${MAX_BASE58_LENGTH} characters`, 0);
  }
  let zeros = 0;
  while (zeros < s.length && s[zeros] === "1") zeros++;
  const bytes: number[] = []; // least significant first
  for (let i = zeros; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const d = c < 128 ? DIGIT[c] : -1;
    if (d < 0) throw new ChainFormatError("bad-base58", `'${s[i]}' is not a base58 character`, i);
    let carry = d;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  const out = new Uint8Array(zeros + bytes.length);
  for (let i = 0; i < bytes.length; i++) out[out.length - 1 - i] = bytes[i];
  return out;
}

/** Base58 of payload ‖ first 4 bytes of sha256d(payload). */
export function base58CheckEncode(payload: Uint8Array): string {
  const full = new Uint8Array(payload.length + 4);
  full.set(payload);
  full.set(sha256d(payload).subarray(0, 4), payload.length);
  return base58Encode(full);
}

/** Decodes Base58Check and returns the payload; throws ChainFormatError("bad-checksum") on a mismatch. */
export function base58CheckDecode(s: string): Uint8Array {
  const full = base58Decode(s);
  if (full.length < 4) {
    throw new ChainFormatError("bad-base58", "base58check data shorter than its checksum", 0);
  }
  const payload = full.subarray(0, full.length - 4);
  const check = sha256d(payload);
  for (let i = 0; i < 4; i++) {
    if (full[payload.length + i] !== check[i]) {
      throw new ChainFormatError("bad-checksum", "base58check checksum does not match", 0);
    }
  }
  return payload;
}
