// Deterministic regtest chain generator: from a seed, a chain that Bitcoin Core's consensus rules accept
// (signatures aside) with traffic shaped like the real thing. Transactions are written straight into the
// block buffer from precomputed shapes; each costs one txid hash (plus a wtxid hash when it has witnesses)
// and its share of the two merkle trees. The spendable-output pool lives in typed columns.
import { ByteWriter, compactSizeLength } from "../../src/chain/bytes.ts";
import { sha256d, sha256dParts } from "../../src/chain/hash.ts";
import { checkProofOfWork } from "../../src/chain/header.ts";
import { fromHex } from "../../src/chain/hex.ts";
import { merkleRoot } from "../../src/chain/merkle.ts";
import { blockSubsidy, NETWORKS } from "../../src/chain/network.ts";
import { Prng } from "./prng.ts";
import {
  freshPayload,
  inputSigops,
  Kind,
  nullDataScriptLength,
  outputSigops,
  PAYLOAD_SIZE,
  scriptLength,
  scriptSigLength,
  ShapeWriter,
  spendHasWitness,
  witnessLength,
  writeNullData,
  writeOutputScript,
} from "./shapes.ts";
import { COINBASE_FLAG, TxTable, UtxoSet } from "./utxo_set.ts";

/** Regtest's compact difficulty target (powLimit); every simnet block uses it. */
export const REGTEST_BITS = 0x207fffff;
/** Time of block 1: 2026-01-01T00:00:00Z. */
export const CHAIN_START_TIME = 1_767_225_600;
/** Blocks before a coinbase output may be spent (Core's COINBASE_MATURITY). */
export const COINBASE_MATURITY = 100;
/** Consensus block weight limit. */
export const MAX_BLOCK_WEIGHT = 4_000_000;
/** Consensus limit on signature-operation cost per block. */
export const MAX_BLOCK_SIGOPS_COST = 80_000;
/** Core's standardness limit on one transaction's weight. */
export const MAX_STANDARD_TX_WEIGHT = 400_000;
/** Smallest output the generator creates: above every standard type's dust threshold. */
export const MIN_OUTPUT_VALUE = 1000;
/** Block header version (BIP9 top bits, no signalling). */
export const BLOCK_VERSION = 0x20000000;

// Room kept in every block for the header, the tx count and the coinbase (weight and sigop cost).
const COINBASE_RESERVE_WEIGHT = 4000;
const COINBASE_RESERVE_SIGOPS = 400;

// The 2009 coinbase that regtest's genesis block shares with mainnet (bitcoind-rpc.md §7).
const GENESIS_COINBASE_HEX =
  "01000000010000000000000000000000000000000000000000000000000000000000000000ffffff" +
  "ff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e" +
  "6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe" +
  "5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d" +
  "578a4c702b6bf11d5fac00000000";

/** Options of a generated chain. */
export interface ChainOptions {
  seed: string | number;
  /** Height of the tip (block 0 is the genesis block). */
  blocks: number;
  /** Approximate number of non-coinbase transactions; default 30 per block. */
  txs?: number;
}

/** One block of a generated chain. */
export interface GeneratedBlock {
  height: number;
  raw: Uint8Array;
  /** Block hash, internal order. */
  hash: Uint8Array;
  /** Txids (internal order) packed 32 bytes each, coinbase first. */
  txids: Uint8Array;
}

/** The real regtest genesis block. */
export function genesisBlock(): GeneratedBlock {
  const net = NETWORKS.regtest;
  const coinbase = fromHex(GENESIS_COINBASE_HEX);
  const raw = new Uint8Array(80 + 1 + coinbase.length);
  raw.set(net.genesisHeader, 0);
  raw[80] = 1;
  raw.set(coinbase, 81);
  return { height: 0, raw, hash: net.genesisHash.slice(), txids: sha256d(coinbase) };
}

/** The BIP34 height push exactly as Core's `CScript() << nHeight` encodes it (OP_1..OP_16 for 1–16). */
export function bip34HeightPush(height: number): Uint8Array {
  if (height === 0) return Uint8Array.of(0);
  if (height >= 1 && height <= 16) return Uint8Array.of(0x50 + height);
  const bytes: number[] = [];
  let h = height;
  while (h > 0) {
    bytes.push(h & 0xff);
    h = Math.floor(h / 256);
  }
  if (bytes[bytes.length - 1] & 0x80) bytes.push(0);
  return Uint8Array.of(bytes.length, ...bytes);
}

/** Proportions of output types in fresh scripts (mostly P2WPKH, P2TR and P2PKH, as on mainnet today). */
const KIND_MIX: [number, number][] = [
  [Kind.P2WPKH, 42],
  [Kind.P2TR, 22],
  [Kind.P2PKH, 18],
  [Kind.P2SH, 9],
  [Kind.P2WSH, 6],
  [Kind.P2PK, 1.5],
  [Kind.MULTISIG, 1],
  [Kind.NONSTANDARD, 0.5],
];
const KIND_CDF = (() => {
  const total = KIND_MIX.reduce((s, [, w]) => s + w, 0);
  let acc = 0;
  return KIND_MIX.map(([k, w]) => [k, (acc += w) / total] as [number, number]);
})();

const HOT = 16;
const WARM = 4096;
const MINERS = 4;

/**
 * Picks output scripts with realistic reuse: a handful of "hot" scripts (exchanges, miners) take a
 * Zipf-shaped share of all outputs, recently used scripts come back often, the rest are fresh.
 * Hot and miner scripts depend only on the seed, so traffic made later by a node reuses them too.
 */
export class ScriptChooser {
  private readonly hotCodes = new Uint8Array(HOT);
  private readonly hotPayload = new Uint8Array(HOT * PAYLOAD_SIZE);
  private readonly hotCdf = new Float64Array(HOT);
  private readonly warmCodes = new Uint8Array(WARM);
  private readonly warmPayload = new Uint8Array(WARM * PAYLOAD_SIZE);
  private warmCount = 0;
  private warmNext = 0;
  private readonly minerCodes = new Uint8Array(MINERS);
  private readonly minerPayload = new Uint8Array(MINERS * PAYLOAD_SIZE);

  constructor(seed: string | number) {
    const p = new Prng(seed, "static-scripts");
    let total = 0;
    for (let k = 0; k < HOT; k++) {
      const base = k % 3 === 0 ? Kind.P2PKH : k % 3 === 1 ? Kind.P2WPKH : Kind.P2TR;
      this.hotCodes[k] = freshPayload(p, base, this.hotPayload, k * PAYLOAD_SIZE);
      total += 1 / (k + 1);
      this.hotCdf[k] = total;
    }
    for (let k = 0; k < HOT; k++) this.hotCdf[k] /= total;
    for (let k = 0; k < MINERS; k++) {
      this.minerCodes[k] = freshPayload(
        p,
        k === 1 ? Kind.P2PKH : Kind.P2WPKH,
        this.minerPayload,
        k * PAYLOAD_SIZE,
      );
    }
  }

  /** Chooses an output script: writes its payload at `out[off..]` and returns its kind code. */
  choose(prng: Prng, out: Uint8Array, off: number): number {
    const u = prng.float();
    if (u < 0.04) {
      const v = prng.float();
      let k = 0;
      while (k < HOT - 1 && this.hotCdf[k] < v) k++;
      copyPayload(this.hotPayload, k * PAYLOAD_SIZE, out, off);
      return this.hotCodes[k];
    }
    if (u < 0.24 && this.warmCount > 0) {
      const k = prng.int(this.warmCount);
      copyPayload(this.warmPayload, k * PAYLOAD_SIZE, out, off);
      return this.warmCodes[k];
    }
    const v = prng.float();
    let base: number = Kind.P2WPKH;
    for (const [k, c] of KIND_CDF) {
      if (v < c) {
        base = k;
        break;
      }
    }
    const code = freshPayload(prng, base, out, off);
    const slot = this.warmNext;
    this.warmNext = (slot + 1) % WARM;
    if (this.warmCount < WARM) this.warmCount++;
    this.warmCodes[slot] = code;
    copyPayload(out, off, this.warmPayload, slot * PAYLOAD_SIZE);
    return code;
  }

  /** Chooses the payout script of a coinbase (a few pools mine everything). */
  miner(prng: Prng, out: Uint8Array, off: number): number {
    const u = prng.float();
    const k = u < 0.5 ? 0 : u < 0.8 ? 1 : u < 0.95 ? 2 : 3;
    copyPayload(this.minerPayload, k * PAYLOAD_SIZE, out, off);
    return this.minerCodes[k];
  }
}

function copyPayload(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  for (let i = 0; i < PAYLOAD_SIZE; i++) dst[dstOff + i] = src[srcOff + i];
}

/** Most inputs and outputs one transaction built by TxFactory may have. */
export const FACTORY_MAX_INPUTS = 1000;
/** Most outputs (one more for an OP_RETURN). */
export const FACTORY_MAX_OUTPUTS = 3001;

/**
 * Builds one transaction at a time in scratch columns: add inputs (outpoint, value, kind code), add
 * outputs (kind codes with payloads), measure the exact size/weight/sigops, give it a fee, write it.
 */
export class TxFactory {
  readonly shapes: ShapeWriter;
  readonly inTxid = new Uint8Array(32 * FACTORY_MAX_INPUTS);
  readonly inVout = new Uint32Array(FACTORY_MAX_INPUTS);
  readonly inValue = new Float64Array(FACTORY_MAX_INPUTS);
  readonly inCode = new Uint8Array(FACTORY_MAX_INPUTS);
  readonly inSig = new Uint8Array(FACTORY_MAX_INPUTS);
  /** Caller bookkeeping carried with each input (the generator restores aborted inputs from it). */
  readonly inRef = new Uint32Array(FACTORY_MAX_INPUTS);
  readonly inHeight = new Int32Array(FACTORY_MAX_INPUTS);
  readonly inFlags = new Uint8Array(FACTORY_MAX_INPUTS);
  nIn = 0;
  sumIn = 0;
  readonly outCode = new Uint8Array(FACTORY_MAX_OUTPUTS);
  readonly outPayload = new Uint8Array(FACTORY_MAX_OUTPUTS * PAYLOAD_SIZE);
  readonly outValue = new Float64Array(FACTORY_MAX_OUTPUTS);
  /** OP_RETURN data length for NULLDATA outputs. */
  readonly outData = new Uint8Array(FACTORY_MAX_OUTPUTS);
  /** Offset of each output script (after its length byte) from the start of the transaction. */
  readonly outScriptOff = new Uint32Array(FACTORY_MAX_OUTPUTS);
  nOut = 0;
  version = 2;
  locktime = 0;
  sequence = 0xffffffff;
  segwit = false;
  baseSize = 0;
  size = 0;
  weight = 0;
  vsize = 0;
  sigops = 0;
  /** Offsets in the writer of the last written transaction. */
  start = 0;
  prefixEnd = 0;
  end = 0;
  private readonly nullScratch = new Uint8Array(80);

  constructor(private readonly prng: Prng) {
    this.shapes = new ShapeWriter(prng);
  }

  /** Starts a new transaction. */
  reset(version: number, locktime: number, sequence: number): void {
    this.nIn = 0;
    this.sumIn = 0;
    this.nOut = 0;
    this.version = version;
    this.locktime = locktime;
    this.sequence = sequence;
  }

  /** Adds an input spending (txid at `src[off..off+32)`, vout) worth `value` with kind code `code`. */
  addInput(src: Uint8Array, off: number, vout: number, value: number, code: number): number {
    const i = this.nIn++;
    this.inTxid.set(src.subarray(off, off + 32), i * 32);
    this.inVout[i] = vout;
    this.inValue[i] = value;
    this.inCode[i] = code;
    this.inSig[i] = this.prng.chance(0.5) ? 72 : 71;
    this.sumIn += value;
    return i;
  }

  /** Drops the last input. */
  popInput(): void {
    this.nIn--;
    this.sumIn -= this.inValue[this.nIn];
  }

  /** Adds an output of kind `code` whose payload is already at outPayload[j*PAYLOAD_SIZE]; returns j. */
  addOutput(code: number): number {
    const j = this.nOut++;
    this.outCode[j] = code;
    return j;
  }

  /** Adds an output chosen by `chooser`. */
  addChosenOutput(chooser: ScriptChooser): number {
    const j = this.nOut;
    return this.addOutput(chooser.choose(this.prng, this.outPayload, j * PAYLOAD_SIZE));
  }

  /** Adds an OP_RETURN output with `n` (0–80) data bytes. */
  addNullData(n: number): number {
    const j = this.addOutput(Kind.NULLDATA);
    this.outData[j] = n;
    return j;
  }

  /** Outputs that carry value (everything but OP_RETURN). */
  spendableOutputs(): number {
    let k = 0;
    for (let j = 0; j < this.nOut; j++) if (this.outCode[j] !== Kind.NULLDATA) k++;
    return k;
  }

  /** Computes exact sizes, weight, vsize and sigop cost for the current inputs and outputs. */
  measure(): void {
    let segwit = false;
    let base = 4 + compactSizeLength(this.nIn) + compactSizeLength(this.nOut) + 4;
    let wit = 0;
    let sigops = 0;
    for (let i = 0; i < this.nIn; i++) {
      const code = this.inCode[i], sig = this.inSig[i];
      const ss = scriptSigLength(code, sig);
      base += 32 + 4 + compactSizeLength(ss) + ss + 4;
      wit += witnessLength(code, sig);
      sigops += inputSigops(code);
      if (spendHasWitness(code)) segwit = true;
    }
    for (let j = 0; j < this.nOut; j++) {
      const code = this.outCode[j];
      base += 8 + 1 + (code === Kind.NULLDATA ? nullDataScriptLength(this.outData[j]) : scriptLength(code));
      sigops += outputSigops(code);
    }
    this.segwit = segwit;
    this.baseSize = base;
    this.size = segwit ? base + 2 + wit : base;
    this.weight = 3 * base + this.size;
    this.vsize = Math.ceil(this.weight / 4);
    this.sigops = sigops;
  }

  /**
   * Splits sumIn − fee over the value-carrying outputs (each ≥ MIN_OUTPUT_VALUE, exponential shares so
   * most transactions have one big and one small output). False when the inputs cannot cover it.
   */
  setValues(fee: number): boolean {
    const k = this.spendableOutputs();
    const avail = this.sumIn - fee;
    if (k === 0 || avail < k * MIN_OUTPUT_VALUE) return false;
    const extra = avail - k * MIN_OUTPUT_VALUE;
    let total = 0;
    for (let j = 0; j < this.nOut; j++) {
      if (this.outCode[j] === Kind.NULLDATA) {
        this.outValue[j] = 0;
        continue;
      }
      const w = -Math.log(1 - this.prng.float()) + 1e-9;
      this.outValue[j] = w;
      total += w;
    }
    let sum = 0, first = -1;
    for (let j = 0; j < this.nOut; j++) {
      if (this.outCode[j] === Kind.NULLDATA) continue;
      if (first < 0) first = j;
      const v = MIN_OUTPUT_VALUE + Math.floor(extra * this.outValue[j] / total);
      this.outValue[j] = v;
      sum += v;
    }
    this.outValue[first] += avail - sum;
    return true;
  }

  /** Serializes the transaction at the writer's end; records start/prefixEnd/end and script offsets. */
  write(w: ByteWriter): void {
    const start = w.length;
    this.start = start;
    w.i32(this.version);
    if (this.segwit) w.u8(0).u8(1);
    w.compactSize(this.nIn);
    for (let i = 0; i < this.nIn; i++) {
      w.bytes(this.inTxid.subarray(i * 32, i * 32 + 32));
      w.u32(this.inVout[i]);
      this.shapes.writeScriptSig(w, this.inCode[i], this.inSig[i]);
      w.u32(this.sequence);
    }
    w.compactSize(this.nOut);
    for (let j = 0; j < this.nOut; j++) {
      w.i64(this.outValue[j]);
      this.outScriptOff[j] = w.length - start + 1;
      const code = this.outCode[j];
      if (code === Kind.NULLDATA) writeNullData(w, this.prng, this.outData[j], this.nullScratch);
      else writeOutputScript(w, code, this.outPayload, j * PAYLOAD_SIZE);
    }
    this.prefixEnd = w.length;
    if (this.segwit) {
      for (let i = 0; i < this.nIn; i++) this.shapes.writeWitness(w, this.inCode[i], this.inSig[i]);
    }
    w.u32(this.locktime);
    this.end = w.length;
  }

  /** Txid of the transaction just written into `w` (hashes the non-witness parts in place). */
  txid(w: ByteWriter): Uint8Array {
    const all = w.written();
    if (!this.segwit) return sha256d(all.subarray(this.start, this.end));
    return sha256dParts([
      all.subarray(this.start, this.start + 4),
      all.subarray(this.start + 6, this.prefixEnd),
      all.subarray(this.end - 4, this.end),
    ]);
  }

  /** Wtxid of the transaction just written (equals `txid` when it has no witness). */
  wtxid(w: ByteWriter, txid: Uint8Array): Uint8Array {
    if (!this.segwit) return txid;
    return sha256d(w.written().subarray(this.start, this.end));
  }

  /** Random fee rate in sat/vB: mostly 1–10, sometimes up to ~60. */
  feeRate(): number {
    const u = this.prng.float();
    return 1 + 60 * u * u * u * u;
  }

  /** Random nVersion/nLockTime/nSequence as wallets set them (anti-fee-sniping locktime = tip height). */
  randomHeaderFields(tipHeight: number): void {
    const u = this.prng.float();
    const version = this.prng.chance(0.85) ? 2 : 1;
    if (u < 0.7) this.reset(version, 0, 0xffffffff);
    else if (u < 0.95) this.reset(version, Math.max(0, tipHeight - this.prng.int(3)), 0xfffffffd);
    else this.reset(version, 0, 0xfffffffe);
  }
}

/** Everything assembleBlock needs besides the coinbase it builds itself. */
export interface BlockTemplate {
  prevHash: Uint8Array;
  height: number;
  time: number;
  /** Non-coinbase transactions, serialized back to back, in block order. */
  body: Uint8Array;
  txCount: number;
  /** Their txids and wtxids, packed 32 bytes each. */
  txids: Uint8Array;
  wtxids: Uint8Array;
  anyWitness: boolean;
  fees: number;
  /** Coinbase payout script (kind code and payload). */
  payoutCode: number;
  payout: Uint8Array;
  payoutOff: number;
  /** Random extra-nonce bytes for the coinbase scriptSig. */
  extraNonce: number;
}

const WITNESS_COMMITMENT_HEADER = Uint8Array.of(0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed);

/**
 * Builds the coinbase (BIP34 height, subsidy + fees, witness commitment when any tx has a witness),
 * the header (merkle root, regtest bits, nonce ground until the PoW holds) and the raw block.
 */
export function assembleBlock(t: BlockTemplate): GeneratedBlock {
  const cb = new ByteWriter(256);
  cb.i32(2);
  if (t.anyWitness) cb.u8(0).u8(1);
  cb.u8(1).bytes(new Uint8Array(32)).u32(0xffffffff);
  const heightPush = bip34HeightPush(t.height);
  // Core's miner appends an extra nonce; the "/simnet/" tag is what pools put here.
  const tag = new TextEncoder().encode("/simnet/");
  cb.u8(heightPush.length + 5 + 1 + tag.length).bytes(heightPush).u8(4).u32(t.extraNonce).u8(tag.length)
    .bytes(tag);
  cb.u32(0xffffffff);
  cb.u8(t.anyWitness ? 2 : 1);
  cb.i64(blockSubsidy(t.height, NETWORKS.regtest) + t.fees);
  writeOutputScript(cb, t.payoutCode, t.payout, t.payoutOff);
  const reserved = new Uint8Array(32);
  if (t.anyWitness) {
    const leaves: Uint8Array[] = [new Uint8Array(32)];
    for (let i = 0; i < t.txCount; i++) leaves.push(t.wtxids.subarray(i * 32, i * 32 + 32));
    const joined = new Uint8Array(64);
    joined.set(merkleRoot(leaves), 0);
    joined.set(reserved, 32);
    cb.i64(0).u8(38).bytes(WITNESS_COMMITMENT_HEADER).bytes(sha256d(joined));
  }
  const prefixEnd = cb.length;
  if (t.anyWitness) cb.u8(1).u8(32).bytes(reserved);
  cb.u32(0);
  const coinbase = cb.written();
  const cbTxid = t.anyWitness
    ? sha256dParts([
      coinbase.subarray(0, 4),
      coinbase.subarray(6, prefixEnd),
      coinbase.subarray(coinbase.length - 4),
    ])
    : sha256d(coinbase);

  const txids = new Uint8Array(32 * (t.txCount + 1));
  txids.set(cbTxid, 0);
  txids.set(t.txids.subarray(0, 32 * t.txCount), 32);
  const leaves: Uint8Array[] = new Array(t.txCount + 1);
  for (let i = 0; i <= t.txCount; i++) leaves[i] = txids.subarray(i * 32, i * 32 + 32);
  const root = merkleRoot(leaves);

  const countLen = compactSizeLength(t.txCount + 1);
  const raw = new Uint8Array(80 + countLen + coinbase.length + t.body.length);
  const view = new DataView(raw.buffer);
  view.setInt32(0, BLOCK_VERSION, true);
  raw.set(t.prevHash, 4);
  raw.set(root, 36);
  view.setUint32(68, t.time, true);
  view.setUint32(72, REGTEST_BITS, true);
  const count = new ByteWriter(16).compactSize(t.txCount + 1).written();
  raw.set(count, 80);
  raw.set(coinbase, 80 + countLen);
  raw.set(t.body, 80 + countLen + coinbase.length);
  const header = raw.subarray(0, 80);
  for (let nonce = 0;; nonce++) {
    view.setUint32(76, nonce, true);
    const hash = sha256d(header);
    // Half of all hashes clear regtest's target; the cheap byte test rejects most of the others.
    if (hash[31] < 0x7f || (hash[31] === 0x7f && checkProofOfWork(hash, REGTEST_BITS))) {
      return { height: t.height, raw, hash, txids };
    }
  }
}

/** Next block time: ~600 s later with jitter, always strictly after `prev`. */
export function nextBlockTime(prng: Prng, prev: number): number {
  return prev + Math.max(1, Math.round(600 + 300 * prng.normal()));
}

// Outcome of trying to add one transaction to the block being filled.
const Made = { Ok: 0, Retry: 1, Full: 2 } as const;
type Made = typeof Made[keyof typeof Made];

/** Generates a chain block by block (see ChainOptions); `next()` returns heights 1, 2, …, blocks. */
export class ChainGenerator {
  private readonly prng: Prng;
  private readonly chooser: ScriptChooser;
  private readonly factory: TxFactory;
  private readonly txs = new TxTable();
  private readonly pool: UtxoSet;
  private readonly blocks: number;
  private readonly basePool: number;
  private txsLeft: number;
  private readonly pendingRef: Uint32Array;
  private readonly pendingValue: Float64Array;
  private readonly pendingCode: Uint8Array;
  height = 0;
  private prevHash: Uint8Array;
  private prevTime: number;
  /** Non-coinbase transactions generated so far. */
  txCount = 0;

  // Per-block state while a block is being filled.
  private body = new ByteWriter(1 << 16);
  private blockTxids = new ByteWriter(1 << 12);
  private blockWtxids = new ByteWriter(1 << 12);
  private blockTxCount = 0;
  private blockWeight = 0;
  private blockSigops = 0;
  private blockFees = 0;
  private blockWitness = false;

  constructor(opts: ChainOptions) {
    if (!Number.isInteger(opts.blocks) || opts.blocks < 0) {
      throw new RangeError(`bad block count ${opts.blocks}`);
    }
    this.blocks = opts.blocks;
    this.prng = new Prng(opts.seed, "chain");
    this.chooser = new ScriptChooser(opts.seed);
    this.factory = new TxFactory(this.prng);
    this.pool = new UtxoSet(this.txs, false);
    const active = Math.max(1, opts.blocks - COINBASE_MATURITY);
    this.txsLeft = opts.txs ?? 30 * opts.blocks;
    this.basePool = Math.max(300, Math.round(40 * this.txsLeft / active));
    this.pendingRef = new Uint32Array(opts.blocks + 1);
    this.pendingValue = new Float64Array(opts.blocks + 1);
    this.pendingCode = new Uint8Array(opts.blocks + 1);
    const genesis = genesisBlock();
    this.prevHash = genesis.hash;
    this.prevTime = CHAIN_START_TIME - 600;
  }

  /** The next block, or null after the last one. */
  next(): GeneratedBlock | null {
    if (this.height >= this.blocks) return null;
    const h = ++this.height;
    const matured = h - COINBASE_MATURITY;
    if (matured >= 1) {
      this.pool.add(
        this.pendingRef[matured],
        0,
        this.pendingValue[matured],
        matured,
        COINBASE_FLAG,
        this.pendingCode[matured],
        0,
        0,
      );
    }
    const time = h === 1 ? CHAIN_START_TIME : nextBlockTime(this.prng, this.prevTime);
    this.startBlock();
    const count = this.blockTxTarget(h);
    let failures = 0;
    while (this.blockTxCount < count && failures < 30) {
      const r = this.makeNormalTx(h);
      if (r === Made.Full) break;
      failures = r === Made.Ok ? 0 : failures + 1;
    }
    if (h > COINBASE_MATURITY + 40 && (h % 400 === 250 || this.prng.chance(1 / 1000))) this.fillBigBlock(h);
    this.txsLeft = Math.max(0, this.txsLeft - this.blockTxCount);
    this.txCount += this.blockTxCount;

    const payout = new Uint8Array(PAYLOAD_SIZE);
    const payoutCode = this.chooser.miner(this.prng, payout, 0);
    const block = assembleBlock({
      prevHash: this.prevHash,
      height: h,
      time,
      body: this.body.written(),
      txCount: this.blockTxCount,
      txids: this.blockTxids.written(),
      wtxids: this.blockWtxids.written(),
      anyWitness: this.blockWitness,
      fees: this.blockFees,
      payoutCode,
      payout,
      payoutOff: 0,
      extraNonce: this.prng.u32(),
    });
    const cbRef = this.txs.add(block.txids, 0, h, 0, 0);
    this.pendingRef[h] = cbRef;
    this.pendingValue[h] = blockSubsidy(h, NETWORKS.regtest) + this.blockFees;
    this.pendingCode[h] = payoutCode;
    this.prevHash = block.hash;
    this.prevTime = time;
    return block;
  }

  private startBlock(): void {
    this.body.length = 0;
    this.blockTxids.length = 0;
    this.blockWtxids.length = 0;
    this.blockTxCount = 0;
    this.blockWeight = COINBASE_RESERVE_WEIGHT;
    this.blockSigops = COINBASE_RESERVE_SIGOPS;
    this.blockFees = 0;
    this.blockWitness = false;
  }

  // How many transactions this block should carry: the remaining budget spread over the remaining
  // blocks, with lognormal variance and some empty blocks.
  private blockTxTarget(h: number): number {
    if (h <= COINBASE_MATURITY) return 0;
    if (this.prng.chance(0.06)) return 0;
    const mean = this.txsLeft / (this.blocks - h + 1);
    const mult = Math.exp(0.9 * this.prng.normal() - 0.405);
    return Math.min(20_000, Math.round(mean / 0.94 * mult));
  }

  // Index of a pool entry to spend: usually uniform, sometimes among the newest (which makes chains of
  // spends inside one block, since this block's outputs are the newest).
  private pickIndex(): number {
    const n = this.pool.size;
    if (n > 8 && this.prng.chance(0.3)) return n - 1 - this.prng.int(Math.min(n, 24));
    return this.prng.int(n);
  }

  private takeInput(index: number): void {
    const p = this.pool, f = this.factory;
    const ref = p.ref(index);
    const at = this.txs.txidAt(ref);
    const i = f.addInput(at.store, at.off, p.vout(index), p.value(index), p.code(index));
    f.inRef[i] = ref;
    f.inHeight[i] = p.height(index);
    f.inFlags[i] = p.flags(index);
    p.removeAt(index);
  }

  private returnInput(): void {
    const f = this.factory, i = f.nIn - 1;
    this.pool.add(f.inRef[i], f.inVout[i], f.inValue[i], f.inHeight[i], f.inFlags[i], f.inCode[i], 0, 0);
    f.popInput();
  }

  private abort(): void {
    while (this.factory.nIn > 0) this.returnInput();
  }

  // The spendable pool the input/output counts steer towards: it grows with the chain, as the real UTXO
  // set does (about 0.15 unspent outputs per transaction ever made on mainnet).
  private get targetPool(): number {
    return Math.max(this.basePool, Math.round(0.15 * this.txCount));
  }

  private inputCount(): number {
    const p = this.prng;
    const u = p.float();
    let n = u < 0.58
      ? 1
      : u < 0.8
      ? 2
      : u < 0.88
      ? 3
      : u < 0.94
      ? p.range(4, 10)
      : u < 0.955
      ? p.range(11, 50)
      : u < 0.958
      ? p.pareto(51, 1000, 1.1)
      : 1;
    const ratio = this.pool.size / this.targetPool;
    if (ratio > 1.5 && p.chance(Math.min(0.6, (ratio - 1.5) * 0.2))) n = Math.max(n, p.pareto(3, 200, 1.2));
    if (ratio < 0.5 && n > 1) n = Math.max(1, Math.round(n * ratio * 2));
    return Math.min(n, this.pool.size, FACTORY_MAX_INPUTS);
  }

  private outputCount(): number {
    const p = this.prng;
    const u = p.float();
    let n = u < 0.15
      ? 1
      : u < 0.75
      ? 2
      : u < 0.85
      ? 3
      : u < 0.93
      ? p.range(4, 10)
      : u < 0.945
      ? p.pareto(11, 100, 0.8)
      : u < 0.9458
      ? p.pareto(101, 3000, 0.9)
      : 2;
    if (this.pool.size < this.targetPool / 2) n += p.int(3);
    return n;
  }

  // Builds one ordinary transaction into the block, if it fits.
  private makeNormalTx(h: number): Made {
    if (this.pool.size === 0) return Made.Full;
    const f = this.factory;
    f.randomHeaderFields(h - 1);
    const nIn = this.inputCount();
    for (let i = 0; i < nIn; i++) this.takeInput(this.pickIndex());
    const nOut = this.outputCount();
    for (let j = 0; j < nOut; j++) f.addChosenOutput(this.chooser);
    if (this.prng.chance(0.03)) f.addNullData(this.prng.chance(0.5) ? this.prng.range(0, 80) : 32);
    return this.finishTx(Math.min(MAX_STANDARD_TX_WEIGHT, MAX_BLOCK_WEIGHT - this.blockWeight));
  }

  // Trims the planned transaction to `maxWeight`, prices it, and writes it if the inputs can pay.
  private finishTx(maxWeight: number): Made {
    const f = this.factory;
    f.measure();
    while (f.weight > maxWeight && f.nOut > 1) {
      f.nOut = Math.max(1, Math.floor(f.nOut * 0.8));
      f.measure();
    }
    while (f.weight > maxWeight && f.nIn > 1) {
      this.returnInput();
      f.measure();
    }
    if (f.spendableOutputs() === 0) {
      this.abort();
      return Made.Retry;
    }
    if (f.weight > maxWeight || this.blockSigops + f.sigops > MAX_BLOCK_SIGOPS_COST) {
      this.abort();
      return Made.Full;
    }
    let fee = Math.ceil(f.feeRate() * f.vsize);
    if (f.sumIn - fee < f.spendableOutputs() * MIN_OUTPUT_VALUE) {
      // Fewer outputs first, then the cheapest fee, then more inputs.
      const fit = Math.floor((f.sumIn - fee) / (4 * MIN_OUTPUT_VALUE));
      while (f.spendableOutputs() > Math.max(1, fit) && f.nOut > 1) f.nOut--;
      f.measure();
      fee = f.vsize;
      while (f.sumIn - fee < f.spendableOutputs() * MIN_OUTPUT_VALUE && this.pool.size > 0 && f.nIn < 50) {
        this.takeInput(this.prng.int(this.pool.size));
        f.measure();
        fee = f.vsize;
      }
      if (f.weight > maxWeight || !f.setValues(fee)) {
        this.abort();
        return Made.Retry;
      }
    } else {
      f.setValues(fee);
    }
    f.write(this.body);
    const txid = f.txid(this.body);
    const wtxid = f.wtxid(this.body, txid);
    this.blockTxids.bytes(txid);
    this.blockWtxids.bytes(wtxid);
    const ref = this.txs.add(txid, 0, this.height, 0, 0);
    for (let j = 0; j < f.nOut; j++) {
      const code = f.outCode[j];
      if (code !== Kind.NULLDATA) this.pool.add(ref, j, f.outValue[j], this.height, 0, code, 0, 0);
    }
    this.blockTxCount++;
    this.blockWeight += f.weight;
    this.blockSigops += f.sigops;
    this.blockFees += fee;
    if (f.segwit) this.blockWitness = true;
    f.nIn = 0;
    return Made.Ok;
  }

  // Fills the block to just under 4 MWU with exchange-style batch payouts (1000–3000 outputs) and
  // wallet consolidations (hundreds of inputs), the shapes that make real blocks full.
  private fillBigBlock(h: number): void {
    const f = this.factory;
    for (let guard = 0; guard < 64; guard++) {
      const room = MAX_BLOCK_WEIGHT - this.blockWeight - 1000;
      if (room < 20_000 || this.pool.size < 2) return;
      const maxWeight = Math.min(MAX_STANDARD_TX_WEIGHT, room);
      f.randomHeaderFields(h - 1);
      if (guard === 0 || this.prng.chance(0.25) || this.pool.size < 400) {
        // One rich input, as many outputs as fit.
        let best = this.prng.int(this.pool.size);
        for (let k = 0; k < 6; k++) {
          const c = this.prng.int(this.pool.size);
          if (this.pool.value(c) > this.pool.value(best)) best = c;
        }
        this.takeInput(best);
        const byValue = Math.floor(f.sumIn / (3 * MIN_OUTPUT_VALUE));
        const byWeight = Math.floor((maxWeight - 600) / (4 * 44));
        const nOut = Math.min(3000, byValue, Math.max(1, byWeight));
        for (let j = 0; j < nOut; j++) f.addChosenOutput(this.chooser);
      } else {
        const nIn = Math.min(
          FACTORY_MAX_INPUTS,
          this.pool.size - 1,
          Math.floor(maxWeight / 700),
          100 + this.prng.int(900),
        );
        for (let i = 0; i < nIn; i++) this.takeInput(this.prng.int(this.pool.size));
        f.addChosenOutput(this.chooser);
        if (this.prng.chance(0.5)) f.addChosenOutput(this.chooser);
      }
      if (this.finishTx(maxWeight) === Made.Full) return;
    }
  }
}

/** Generates a whole chain: element i is the block at height i (element 0 is the genesis block). */
export function generateChain(opts: ChainOptions): GeneratedBlock[] {
  const gen = new ChainGenerator(opts);
  const out: GeneratedBlock[] = [genesisBlock()];
  for (let b = gen.next(); b !== null; b = gen.next()) out.push(b);
  return out;
}
