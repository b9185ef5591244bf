// A block reduced to what the indexer applies, in one flat byte record: the block hash and header, and per
// transaction its txid, the outpoints it spends and, per output, value, hashX and whether it is unspendable.
// Parsing, txid hashing and hashX hashing — most of a block's CPU cost that does not touch the index — all
// happen while the record is written, so they can run in a Worker (see parse_worker.ts) while the main thread
// applies earlier records. Being flat bytes, a record crosses threads through shared memory without copying
// or structured cloning.
//
// Layout, little-endian:
//   0  u32 record length      4  u32 tx count      8  block hash [32]      40  header [80]
//   120 transactions: txid [32], u32 input count, u32 output count,
//       inputs:  previous txid [32], u32 previous vout
//       outputs: u32 value low, u32 value high, hashX [11], u8 flags (1 = unspendable: no hashX, never indexed)
import { parseBlock } from "../chain/block.ts";
import { isUnindexed } from "../chain/script.ts";
import { hashXInto } from "./hashx.ts";

/** Byte offsets of a record's fixed fields. */
export const RECORD_HASH = 8;
/** Offset of the 80-byte header. */
export const RECORD_HEADER = 40;
/** Offset of the first transaction. */
export const RECORD_TXS = 120;
/** Bytes of a transaction's fixed part: txid, input count, output count. */
export const RECORD_TX_LEN = 40;
/** Bytes per input: previous txid and vout. */
export const RECORD_INPUT_LEN = 36;
/** Bytes per output: value, hashX, flags. */
export const RECORD_OUTPUT_LEN = 20;
/** Output flag: the output can never be spent (OP_RETURN or oversized script) and is not indexed. */
export const OUTPUT_UNSPENDABLE = 1;

/**
 * Parses `raw` and writes its record into `out` at `off`, using at most `room` bytes. Returns the record's
 * length, or its negated length (writing nothing) when it does not fit. Throws ChainFormatError for bytes that
 * are not a block.
 */
export function encodeBlockRecord(raw: Uint8Array, out: Uint8Array, off: number, room: number): number {
  const block = parseBlock(raw);
  const txs = block.txs;
  let size = RECORD_TXS;
  for (let i = 0; i < txs.length; i++) {
    size += RECORD_TX_LEN + txs[i].inputs.length * RECORD_INPUT_LEN +
      txs[i].outputs.length * RECORD_OUTPUT_LEN;
  }
  if (size > room) return -size;
  putU32(out, off, size);
  putU32(out, off + 4, txs.length);
  out.set(block.hash, off + RECORD_HASH);
  out.set(block.headerBytes, off + RECORD_HEADER);
  let p = off + RECORD_TXS;
  for (let i = 0; i < txs.length; i++) {
    const tx = txs[i];
    const inputs = tx.inputs, outputs = tx.outputs;
    out.set(tx.txid, p);
    putU32(out, p + 32, inputs.length);
    putU32(out, p + 36, outputs.length);
    p += RECORD_TX_LEN;
    for (let j = 0; j < inputs.length; j++) {
      const input = inputs[j];
      out.set(input.prevTxid, p);
      putU32(out, p + 32, input.prevVout);
      p += RECORD_INPUT_LEN;
    }
    for (let j = 0; j < outputs.length; j++) {
      const output = outputs[j];
      const value = output.value;
      putU32(out, p, value % 0x100000000);
      putU32(out, p + 4, Math.floor(value / 0x100000000));
      if (isUnindexed(output.script)) {
        out.fill(0, p + 8, p + 19);
        out[p + 19] = OUTPUT_UNSPENDABLE;
      } else {
        hashXInto(output.script, out, p + 8);
        out[p + 19] = 0;
      }
      p += RECORD_OUTPUT_LEN;
    }
  }
  return size;
}

/** Reads a little-endian u32. */
export function getU32(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

/** Reads an output's value (8 bytes, little-endian) at `off`. */
export function getOutputValue(buf: Uint8Array, off: number): number {
  return getU32(buf, off + 4) * 0x100000000 + getU32(buf, off);
}

function putU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v;
  buf[off + 1] = v >>> 8;
  buf[off + 2] = v >>> 16;
  buf[off + 3] = v >>> 24;
}
