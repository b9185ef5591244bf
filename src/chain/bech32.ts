// Bech32 (BIP173) and Bech32m (BIP350) strings, and segwit addresses built on them.
import { ChainFormatError } from "./errors.ts";

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const CHARSET_REV = new Int8Array(128).fill(-1);
for (let i = 0; i < CHARSET.length; i++) CHARSET_REV[CHARSET.charCodeAt(i)] = i;
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const BECH32_CONST = 1;
const BECH32M_CONST = 0x2bc830a3;

/** Which checksum constant a string uses. */
export type Bech32Encoding = "bech32" | "bech32m";

/** BIP173's limit on the whole string. */
export const MAX_BECH32_LENGTH = 90;

function polymodStep(chk: number, value: number): number {
  const top = chk >>> 25;
  chk = ((chk & 0x1ffffff) << 5) ^ value;
  for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i];
  return chk >>> 0;
}

function hrpChecksumState(hrp: string): number {
  let chk = 1;
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk, hrp.charCodeAt(i) >> 5);
  chk = polymodStep(chk, 0);
  for (let i = 0; i < hrp.length; i++) chk = polymodStep(chk, hrp.charCodeAt(i) & 31);
  return chk;
}

/** Encodes an HRP and 5-bit values; the result is lowercase. */
export function bech32Encode(hrp: string, data: ArrayLike<number>, encoding: Bech32Encoding): string {
  hrp = hrp.toLowerCase();
  let chk = hrpChecksumState(hrp);
  let out = hrp + "1";
  for (let i = 0; i < data.length; i++) {
    chk = polymodStep(chk, data[i]);
    out += CHARSET[data[i]];
  }
  for (let i = 0; i < 6; i++) chk = polymodStep(chk, 0);
  chk ^= encoding === "bech32" ? BECH32_CONST : BECH32M_CONST;
  for (let i = 0; i < 6; i++) out += CHARSET[(chk >>> (5 * (5 - i))) & 31];
  return out;
}

/** Decodes a Bech32 or Bech32m string into its lowercase HRP and 5-bit data (checksum removed). */
export function bech32Decode(s: string): { hrp: string; data: Uint8Array; encoding: Bech32Encoding } {
  if (s.length > MAX_BECH32_LENGTH) {
    throw new ChainFormatError("bad-bech32", `bech32 string longer than ${MAX_BECH32_LENGTH} characters`, 0);
  }
  let lower = false, upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 33 || c > 126) throw new ChainFormatError("bad-bech32", "bech32 character out of range", i);
    if (c >= 97 && c <= 122) lower = true;
    else if (c >= 65 && c <= 90) upper = true;
  }
  if (lower && upper) throw new ChainFormatError("bad-bech32", "bech32 string mixes upper and lower case", 0);
  const str = s.toLowerCase();
  const sep = str.lastIndexOf("1");
  if (sep < 1) throw new ChainFormatError("bad-bech32", "bech32 string has no human-readable part", 0);
  if (sep + 7 > str.length) throw new ChainFormatError("bad-bech32", "bech32 checksum too short", sep);
  const hrp = str.slice(0, sep);
  let chk = hrpChecksumState(hrp);
  const values = new Uint8Array(str.length - sep - 1);
  for (let i = 0; i < values.length; i++) {
    const c = str.charCodeAt(sep + 1 + i);
    const v = c < 128 ? CHARSET_REV[c] : -1;
    if (v < 0) {
      throw new ChainFormatError(
        "bad-bech32",
        `'${str[sep + 1 + i]}' is not a bech32 character`,
        sep + 1 + i,
      );
    }
    values[i] = v;
    chk = polymodStep(chk, v);
  }
  let encoding: Bech32Encoding;
  if (chk === BECH32_CONST) encoding = "bech32";
  else if (chk === BECH32M_CONST) encoding = "bech32m";
  else throw new ChainFormatError("bad-checksum", "bech32 checksum does not match", 0);
  return { hrp, data: values.subarray(0, values.length - 6), encoding };
}

/** Regroups bits (e.g. 8→5 or 5→8); without padding, leftover bits must be fewer than `from` and zero. */
export function convertBits(
  data: ArrayLike<number>,
  from: number,
  to: number,
  pad: boolean,
): Uint8Array | null {
  let acc = 0, bits = 0;
  const out: number[] = [];
  const maxv = (1 << to) - 1;
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i];
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & maxv);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv);
  } else if (bits >= from || ((acc << (to - bits)) & maxv) !== 0) {
    return null;
  }
  return Uint8Array.from(out);
}

/** Encodes a segwit address: bech32 for version 0, bech32m for 1..16. */
export function encodeSegwitAddress(hrp: string, version: number, program: Uint8Array): string {
  if (!Number.isInteger(version) || version < 0 || version > 16) {
    throw new ChainFormatError("bad-witness-version", `witness version ${version} is not 0..16`, 0);
  }
  if (
    program.length < 2 || program.length > 40 ||
    (version === 0 && program.length !== 20 && program.length !== 32)
  ) {
    throw new ChainFormatError("bad-witness-program", `bad witness program length ${program.length}`, 0);
  }
  const five = convertBits(program, 8, 5, true)!;
  const data = new Uint8Array(five.length + 1);
  data[0] = version;
  data.set(five, 1);
  return bech32Encode(hrp, data, version === 0 ? "bech32" : "bech32m");
}

/** Decodes a segwit address of any HRP under BIP173/BIP350 rules. */
export function decodeSegwitAddress(s: string): { hrp: string; version: number; program: Uint8Array } {
  const { hrp, data, encoding } = bech32Decode(s);
  if (data.length < 1) throw new ChainFormatError("bad-witness-program", "segwit address has no data", 0);
  const version = data[0];
  if (version > 16) {
    throw new ChainFormatError("bad-witness-version", `witness version ${version} is not 0..16`, 0);
  }
  const program = convertBits(data.subarray(1), 5, 8, false);
  if (program === null) {
    throw new ChainFormatError("bad-witness-program", "segwit address has bad padding", 0);
  }
  if (program.length < 2 || program.length > 40) {
    throw new ChainFormatError("bad-witness-program", `witness program of ${program.length} bytes`, 0);
  }
  if (version === 0 && program.length !== 20 && program.length !== 32) {
    throw new ChainFormatError("bad-witness-program", `version 0 program of ${program.length} bytes`, 0);
  }
  if ((version === 0) !== (encoding === "bech32")) {
    throw new ChainFormatError(
      "bad-checksum",
      `witness version ${version} requires ${version === 0 ? "bech32" : "bech32m"}, got ${encoding}`,
      0,
    );
  }
  return { hrp, version, program };
}
