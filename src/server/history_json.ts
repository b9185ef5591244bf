// The JSON text of a confirmed history, written as bytes and decoded once. Built from one template string per
// entry, a 58,000-entry history made ~120,000 short-lived strings (the hex, its slices, the entries) whose
// garbage collection cost more than building them: a third of the first get_history of a large history.
const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");
const ENTRY_HEAD = new TextEncoder().encode('{"tx_hash":"');
const ENTRY_MID = new TextEncoder().encode('","height":');
// Head, 64 hex digits, middle, up to 11 characters of height (a sign and ten digits), "}" and ",".
const MAX_ENTRY = ENTRY_HEAD.length + 64 + ENTRY_MID.length + 11 + 2;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const ZERO = 0x30;
const ASCII = new TextDecoder();

/**
 * `{"tx_hash":"<display hex>","height":<height>}` for each of `count` entries, comma-separated (no brackets):
 * `txids` holds them 32 bytes each in internal order, `heights` their heights.
 */
export function historyEntriesJson(txids: Uint8Array, heights: ArrayLike<number>, count: number): string {
  if (count === 0) return "";
  const out = new Uint8Array(count * MAX_ENTRY);
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (i > 0) out[p++] = COMMA;
    out.set(ENTRY_HEAD, p);
    p += ENTRY_HEAD.length;
    // Display order is the txid's bytes reversed.
    for (let k = i * 32 + 31, end = i * 32; k >= end; k--) {
      const b = txids[k];
      out[p++] = HEX_DIGITS[b >> 4];
      out[p++] = HEX_DIGITS[b & 15];
    }
    out.set(ENTRY_MID, p);
    p += ENTRY_MID.length;
    p = writeInteger(out, p, heights[i]);
    out[p++] = CLOSE_BRACE;
  }
  return ASCII.decode(out.subarray(0, p));
}

// Writes a 32-bit integer in decimal at `p`; returns the position after it.
function writeInteger(out: Uint8Array, p: number, value: number): number {
  let v = value;
  if (v < 0) {
    out[p++] = MINUS;
    v = -v;
  }
  let digits = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let k = p + digits - 1; k >= p; k--) {
    out[k] = ZERO + (v % 10);
    v = Math.floor(v / 10);
  }
  return p + digits;
}
