// Blocks: header plus transactions, decoded in one pass over the raw bytes.
import { ByteReader } from "./bytes.ts";
import { ChainFormatError } from "./errors.ts";
import { sha256d } from "./hash.ts";
import { type BlockHeader, HEADER_SIZE, parseHeader } from "./header.ts";
import { merkleRootMutated } from "./merkle.ts";
import { isCoinbase, readTransaction, type Transaction, wtxid } from "./tx.ts";

/** A decoded block; `headerBytes` and everything inside `txs` are views into the raw block. */
export interface Block {
  header: BlockHeader;
  headerBytes: Uint8Array;
  /** Block hash, internal order. */
  hash: Uint8Array;
  txs: Transaction[];
  size: number;
  weight: number;
}

// version + 1 input + output count + locktime: nothing shorter can parse as a transaction.
const MIN_TX_SIZE = 4 + 1 + 41 + 1 + 4;

/** Decodes a whole raw block; checks the format only (see checkBlock). Trailing bytes are an error. */
export function parseBlock(raw: Uint8Array): Block {
  const header = parseHeader(raw, 0);
  const headerBytes = raw.subarray(0, HEADER_SIZE);
  const r = new ByteReader(raw, HEADER_SIZE);
  const countAt = r.pos;
  const count = r.compactSize();
  if (count === 0) throw new ChainFormatError("no-transactions", "block has no transactions", countAt);
  if (count * MIN_TX_SIZE > r.remaining) {
    throw new ChainFormatError(
      "bad-count",
      `transaction count ${count} cannot fit in the ${r.remaining} bytes left`,
      countAt,
    );
  }
  const txs: Transaction[] = new Array(count);
  let strippedSize = r.pos;
  for (let i = 0; i < count; i++) {
    const tx = readTransaction(r);
    strippedSize += tx.baseSize;
    txs[i] = tx;
  }
  if (r.pos !== raw.length) {
    throw new ChainFormatError(
      "trailing-bytes",
      `${raw.length - r.pos} bytes after the last transaction`,
      r.pos,
    );
  }
  return {
    header,
    headerBytes,
    hash: sha256d(headerBytes),
    txs,
    size: raw.length,
    weight: 3 * strippedSize + raw.length,
  };
}

const COMMITMENT_PREFIX = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/** The 32-byte witness commitment from the coinbase's last matching output (BIP141), or null. */
export function witnessCommitment(block: Block): Uint8Array | null {
  const coinbase = block.txs[0];
  if (coinbase === undefined) return null;
  const outputs = coinbase.outputs;
  for (let i = outputs.length - 1; i >= 0; i--) {
    const s = outputs[i].script;
    if (s.length < 38) continue;
    let match = true;
    for (let k = 0; k < 6; k++) {
      if (s[k] !== COMMITMENT_PREFIX[k]) {
        match = false;
        break;
      }
    }
    if (match) return s.subarray(6, 38);
  }
  return null;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Checks what a block's own bytes commit to: the coinbase position, the merkle root (rejecting the
 * duplicate-pair mutation) and, when any transaction carries a witness, the BIP141 witness commitment.
 */
export function checkBlock(b: Block): void {
  if (b.txs.length === 0 || !isCoinbase(b.txs[0])) {
    throw new ChainFormatError("bad-coinbase", "first transaction is not a coinbase", HEADER_SIZE);
  }
  for (let i = 1; i < b.txs.length; i++) {
    if (isCoinbase(b.txs[i])) {
      throw new ChainFormatError("bad-coinbase", `transaction ${i} is a second coinbase`, HEADER_SIZE);
    }
  }
  const { root, mutated } = merkleRootMutated(b.txs.map((tx) => tx.txid));
  if (!equalBytes(root, b.header.merkleRoot)) {
    throw new ChainFormatError("bad-merkle-root", "transactions do not match the header's merkle root", 36);
  }
  if (mutated) {
    throw new ChainFormatError("duplicate-transactions", "merkle tree pairs identical hashes (mutated)", 36);
  }
  if (!b.txs.some((tx) => tx.witnesses !== null)) return;

  const commitment = witnessCommitment(b);
  if (commitment === null) {
    throw new ChainFormatError(
      "missing-witness-commitment",
      "block has witnesses but no commitment",
      HEADER_SIZE,
    );
  }
  const reserved = b.txs[0].witnesses?.[0];
  if (reserved === undefined || reserved.length !== 1 || reserved[0].length !== 32) {
    throw new ChainFormatError(
      "bad-witness-nonce",
      "coinbase witness must be a single 32-byte reserved value",
      HEADER_SIZE,
    );
  }
  const leaves = b.txs.map((tx, i) => (i === 0 ? new Uint8Array(32) : wtxid(tx)));
  const witnessRoot = merkleRootMutated(leaves).root;
  const joined = new Uint8Array(64);
  joined.set(witnessRoot, 0);
  joined.set(reserved[0], 32);
  if (!equalBytes(sha256d(joined), commitment)) {
    throw new ChainFormatError(
      "bad-witness-commitment",
      "witness merkle root does not match the commitment",
      0,
    );
  }
}

/**
 * The height a coinbase declares in its scriptSig (BIP34): OP_0, OP_1..OP_16 or a minimal little-endian push
 * of up to 8 bytes. Blocks before BIP34 activation may hold arbitrary data here.
 */
export function coinbaseHeight(coinbase: Transaction): number {
  if (!isCoinbase(coinbase)) throw new ChainFormatError("not-coinbase", "transaction is not a coinbase", 0);
  const s = coinbase.inputs[0].scriptSig;
  if (s.length === 0) throw new ChainFormatError("no-height", "coinbase scriptSig is empty", 0);
  const op = s[0];
  if (op === 0x00) return 0;
  if (op >= 0x51 && op <= 0x60) return op - 0x50;
  if (op < 1 || op > 8) {
    throw new ChainFormatError("no-height", `coinbase scriptSig does not start with a height push`, 0);
  }
  if (s.length < 1 + op) throw new ChainFormatError("no-height", "coinbase height push is truncated", 1);
  if (s[op] & 0x80) throw new ChainFormatError("no-height", "coinbase height is negative", op);
  let height = 0;
  for (let i = op; i >= 1; i--) height = height * 256 + s[i];
  if (!Number.isSafeInteger(height)) {
    throw new ChainFormatError("no-height", "coinbase height is too large", 1);
  }
  return height;
}
