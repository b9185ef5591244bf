// Transactions decoded as views into the buffer they came from: scripts, hashes and witness items are
// subarrays, never copies, so a block's transactions cost one pass and a few small objects each.
import { ByteReader, ByteWriter } from "./bytes.ts";
import { ChainFormatError } from "./errors.ts";
import { sha256d, sha256dSpansInto } from "./hash.ts";

/** One input: the outpoint it spends (txid in internal order), its scriptSig and sequence. */
export interface TxInput {
  prevTxid: Uint8Array;
  prevVout: number;
  scriptSig: Uint8Array;
  sequence: number;
}

/** One output: value in satoshis and its scriptPubKey. */
export interface TxOutput {
  value: number;
  script: Uint8Array;
}

/** A decoded transaction; byte fields are views into `raw`'s buffer. */
export interface Transaction {
  version: number;
  locktime: number;
  inputs: TxInput[];
  outputs: TxOutput[];
  /** Per-input witness stacks, or null when the transaction was serialized without witness data. */
  witnesses: Uint8Array[][] | null;
  /** sha256d of the non-witness serialization, internal byte order. */
  txid: Uint8Array;
  /** View of the full serialization exactly as it appeared in the input. */
  raw: Uint8Array;
  size: number;
  baseSize: number;
  weight: number;
  vsize: number;
}

// Smallest encodings, used to reject counts that cannot fit before allocating anything for them.
const MIN_INPUT_SIZE = 32 + 4 + 1 + 4;
const MIN_OUTPUT_SIZE = 8 + 1;
const MIN_WITNESS_ITEM_SIZE = 1;
const MAX_SAFE_HI = 0x1fffff;

function checkCount(r: ByteReader, count: number, minSize: number, what: string, at: number): void {
  if (count * minSize > r.remaining) {
    throw new ChainFormatError(
      "bad-count",
      `${what} count ${count} needs at least ${count * minSize} bytes, only ${r.remaining} left`,
      at,
    );
  }
}

/** Reads one transaction at the reader's cursor, leaving the cursor just past it. */
export function readTransaction(r: ByteReader): Transaction {
  const data = r.data;
  const start = r.pos;
  const version = r.i32();

  let segwit = false;
  if (r.remaining >= 1 && data[r.pos] === 0) {
    const markerPos = r.pos;
    r.skip(1);
    const flag = r.u8();
    if (flag !== 1) {
      throw new ChainFormatError("bad-segwit-flag", `segwit flag must be 1, got ${flag}`, markerPos + 1);
    }
    segwit = true;
  }
  const bodyStart = r.pos;

  let at = r.pos;
  const nIn = r.compactSize();
  if (nIn === 0) {
    throw new ChainFormatError("no-inputs", "transaction has no inputs", at);
  }
  checkCount(r, nIn, MIN_INPUT_SIZE, "input", at);
  const view = r.view;
  const inputs: TxInput[] = new Array(nIn);
  for (let i = 0; i < nIn; i++) {
    r.need(36);
    const p = r.pos;
    const prevTxid = data.subarray(p, p + 32);
    const prevVout = view.getUint32(p + 32, true);
    r.pos = p + 36;
    const scriptSig = r.varBytes();
    const sequence = r.u32();
    inputs[i] = { prevTxid, prevVout, scriptSig, sequence };
  }

  at = r.pos;
  const nOut = r.compactSize();
  checkCount(r, nOut, MIN_OUTPUT_SIZE, "output", at);
  const outputs: TxOutput[] = new Array(nOut);
  for (let i = 0; i < nOut; i++) {
    r.need(8);
    const p = r.pos;
    const lo = view.getUint32(p, true);
    const hi = view.getInt32(p + 4, true);
    if (hi < 0) throw new ChainFormatError("negative-value", `output ${i} has a negative value`, p);
    if (hi > MAX_SAFE_HI) throw new ChainFormatError("value-too-large", `output ${i} value exceeds 2^53`, p);
    r.pos = p + 8;
    outputs[i] = { value: hi * 0x100000000 + lo, script: r.varBytes() };
  }
  const bodyEnd = r.pos;

  let witnesses: Uint8Array[][] | null = null;
  if (segwit) {
    witnesses = new Array(nIn);
    let anyWitness = false;
    for (let i = 0; i < nIn; i++) {
      at = r.pos;
      const nItems = r.compactSize();
      checkCount(r, nItems, MIN_WITNESS_ITEM_SIZE, "witness item", at);
      const stack: Uint8Array[] = new Array(nItems);
      for (let j = 0; j < nItems; j++) stack[j] = r.varBytes();
      if (nItems > 0) anyWitness = true;
      witnesses[i] = stack;
    }
    if (!anyWitness) {
      throw new ChainFormatError("superfluous-witness", "segwit flag set but every witness is empty", at);
    }
  }
  const lockPos = r.pos;
  const locktime = r.u32();
  const end = r.pos;

  const raw = data.subarray(start, end);
  const size = end - start;
  const txid = new Uint8Array(32);
  let baseSize: number;
  if (segwit) {
    // Hash the legacy form straight from the source bytes: version, inputs+outputs, locktime.
    sha256dSpansInto(data, start, start + 4, bodyStart, bodyEnd, lockPos, end, txid, 0);
    baseSize = 4 + (bodyEnd - bodyStart) + 4;
  } else {
    sha256dSpansInto(data, start, end, 0, 0, 0, 0, txid, 0);
    baseSize = size;
  }
  const weight = 3 * baseSize + size;
  return {
    version,
    locktime,
    inputs,
    outputs,
    witnesses,
    txid,
    raw,
    size,
    baseSize,
    weight,
    vsize: Math.ceil(weight / 4),
  };
}

/** Decodes the transaction starting at `offset`; `end` is the offset just past it. */
export function parseTransaction(buf: Uint8Array, offset = 0): { tx: Transaction; end: number } {
  if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) {
    throw new ChainFormatError("bad-offset", `offset ${offset} is outside the ${buf.length}-byte buffer`, 0);
  }
  const r = new ByteReader(buf, offset);
  const tx = readTransaction(r);
  return { tx, end: r.pos };
}

/** Decodes a buffer holding exactly one transaction; trailing bytes are an error. */
export function decodeTransaction(raw: Uint8Array): Transaction {
  const { tx, end } = parseTransaction(raw, 0);
  if (end !== raw.length) {
    throw new ChainFormatError("trailing-bytes", `${raw.length - end} bytes after the transaction`, end);
  }
  return tx;
}

/** The witness txid: sha256d of the full serialization (the txid itself when there is no witness). */
export function wtxid(tx: Transaction): Uint8Array {
  return tx.witnesses === null ? tx.txid : sha256d(tx.raw);
}

/** True for a coinbase: a single input spending the null outpoint (zero txid, index 0xffffffff). */
export function isCoinbase(tx: Transaction): boolean {
  if (tx.inputs.length !== 1) return false;
  const input = tx.inputs[0];
  if (input.prevVout !== 0xffffffff) return false;
  const h = input.prevTxid;
  for (let i = 0; i < 32; i++) if (h[i] !== 0) return false;
  return true;
}

function hasWitnessData(witnesses: Uint8Array[][] | null): boolean {
  if (witnesses === null) return false;
  for (const stack of witnesses) if (stack.length > 0) return true;
  return false;
}

/**
 * Encodes a transaction. Witness form is used only when `withWitness` is not false and some input has
 * a non-empty witness, because the flag with all witnesses empty is not a valid serialization.
 */
export function serializeTransaction(
  tx: Pick<Transaction, "version" | "locktime" | "inputs" | "outputs" | "witnesses">,
  withWitness?: boolean,
): Uint8Array {
  const segwit = withWitness !== false && hasWitnessData(tx.witnesses);
  if (segwit && tx.witnesses!.length > tx.inputs.length) {
    throw new ChainFormatError("bad-witness-count", "more witness stacks than inputs", 0);
  }
  let estimate = 4 + 2 + 9 + 9 + 4;
  for (const input of tx.inputs) estimate += 41 + 8 + input.scriptSig.length;
  for (const output of tx.outputs) estimate += 9 + 8 + output.script.length;
  const w = new ByteWriter(estimate);
  w.i32(tx.version);
  if (segwit) w.u8(0).u8(1);
  w.compactSize(tx.inputs.length);
  for (const input of tx.inputs) {
    if (input.prevTxid.length !== 32) {
      throw new ChainFormatError("bad-hash-length", "an input's previous txid must be 32 bytes", w.length);
    }
    w.bytes(input.prevTxid).u32(input.prevVout).varBytes(input.scriptSig).u32(input.sequence);
  }
  w.compactSize(tx.outputs.length);
  for (const output of tx.outputs) w.i64(output.value).varBytes(output.script);
  if (segwit) {
    const witnesses = tx.witnesses!;
    for (let i = 0; i < tx.inputs.length; i++) {
      const stack = witnesses[i] ?? [];
      w.compactSize(stack.length);
      for (const item of stack) w.varBytes(item);
    }
  }
  w.u32(tx.locktime);
  return w.finish();
}
