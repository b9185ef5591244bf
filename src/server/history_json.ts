// The JSON of a confirmed history, written as bytes. Built from one template string per entry, a 58,000-entry
// history made ~120,000 short-lived strings (the hex, its slices, the entries) whose garbage collection cost more
// than building them; and a large history is written straight into its reply's buffer (see ByteJson).
import type { JsonWriter } from "./types.ts";

const ENTRY_HEAD = new TextEncoder().encode('{"tx_hash":"');
const ENTRY_MID = new TextEncoder().encode('","height":');
// Head, 64 hex digits, middle, "}" and the "," before every entry but the first; the height's digits vary.
const ENTRY_FIXED = ENTRY_HEAD.length + 64 + ENTRY_MID.length + 2;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const ZERO = 0x30;
// Each byte's two hex digits as one little-endian 16-bit store: a quarter faster than two table lookups and two
// byte stores (5.3 ms against 7.7 for 58,000 entries).
const HEX_PAIRS = new Uint16Array(256);
for (let b = 0; b < 256; b++) {
  const digits = "0123456789abcdef";
  HEX_PAIRS[b] = digits.charCodeAt(b >> 4) | (digits.charCodeAt(b & 15) << 8);
}

/**
 * `{"tx_hash":"<display hex>","height":<height>}` for each of `count` entries, comma-separated (no brackets):
 * `txids` holds them 32 bytes each in internal order, `heights` their heights. Written when the reply is.
 */
export function historyEntries(txids: Uint8Array, heights: ArrayLike<number>, count: number): JsonWriter {
  let size = count > 0 ? count * ENTRY_FIXED - 1 : 0;
  for (let i = 0; i < count; i++) size += integerLength(heights[i]);
  return { byteLength: size, writeTo: (out, at) => writeEntries(out, at, txids, heights, count) };
}

function writeEntries(
  out: Uint8Array,
  at: number,
  txids: Uint8Array,
  heights: ArrayLike<number>,
  count: number,
): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = at;
  for (let i = 0; i < count; i++) {
    if (i > 0) out[p++] = COMMA;
    // Byte loops: for a dozen bytes, cheaper than a call to set().
    for (let c = 0; c < ENTRY_HEAD.length; c++) out[p + c] = ENTRY_HEAD[c];
    p += ENTRY_HEAD.length;
    // Display order is the txid's bytes reversed.
    for (let k = i * 32 + 31, end = i * 32; k >= end; k--) {
      view.setUint16(p, HEX_PAIRS[txids[k]], true);
      p += 2;
    }
    for (let c = 0; c < ENTRY_MID.length; c++) out[p + c] = ENTRY_MID[c];
    p += ENTRY_MID.length;
    p = writeInteger(out, p, heights[i]);
    out[p++] = CLOSE_BRACE;
  }
}

// Characters of an integer in decimal.
function integerLength(value: number): number {
  let digits = value < 0 ? 2 : 1;
  for (let t = Math.abs(value); t >= 10; t = Math.floor(t / 10)) digits++;
  return digits;
}

// Writes an integer in decimal at `p`; returns the position after it.
function writeInteger(out: Uint8Array, p: number, value: number): number {
  let v = value;
  if (v < 0) {
    out[p++] = MINUS;
    v = -v;
  }
  const end = p + integerLength(v);
  for (let k = end - 1; k >= p; k--) {
    out[k] = ZERO + (v % 10);
    v = Math.floor(v / 10);
  }
  return end;
}
