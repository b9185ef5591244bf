// The simulated bitcoind's state: a block tree (active chain plus stale blocks), a UTXO set with exact
// undo, a txid index, and a mempool with Core's acceptance rules (scripts aside). Control operations mine
// blocks, inject generator-made traffic and reorganise the chain. Hashes are internal byte order.
import { parseBlock } from "../../src/chain/block.ts";
import { ByteWriter } from "../../src/chain/bytes.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { bitsToTarget } from "../../src/chain/header.ts";
import { toHex } from "../../src/chain/hex.ts";
import { type Network, NETWORKS } from "../../src/chain/network.ts";
import { isUnspendable } from "../../src/chain/script.ts";
import { decodeTransaction, type Transaction, wtxid as computeWtxid } from "../../src/chain/tx.ts";
import { cacheFileName, type ChainData, readChainCache, writeChainCache } from "./cache.ts";
import {
  assembleBlock,
  ChainGenerator,
  COINBASE_MATURITY,
  genesisBlock,
  MAX_BLOCK_SIGOPS_COST,
  MAX_BLOCK_WEIGHT,
  nextBlockTime,
  ScriptChooser,
  TxFactory,
} from "./generator.ts";
import {
  adjustedVsize,
  checkAcceptance,
  checkReplacement,
  feeForSize,
  MAX_STANDARD_SIGOPS_COST,
  MIN_RELAY_FEE,
  sigopCost,
  standardnessError,
} from "./policy.ts";
import { Prng } from "./prng.ts";
import { CoreRpcError, RPC } from "./rpc_types.ts";
import { freshPayload, Kind, kindCodeOf, PAYLOAD_SIZE } from "./shapes.ts";
import { firstTxOffset, TxScanner } from "./txscan.ts";
import { COINBASE_FLAG, TxidIndex, TxTable, UtxoSet } from "./utxo_set.ts";

/** How to start a node. */
export interface SimNodeOptions {
  /** Directory for the chain cache file (created if missing). */
  datadir: string;
  seed: string;
  /** Height of the generated tip. */
  blocks: number;
  /** Approximate number of generated transactions (default 30 per block). */
  txs?: number;
  /** Whether the node claims -txindex (methods decide what that allows; lookups always work). */
  txindex?: boolean;
  /** Clock for mempool entry times, in Unix seconds (default: the wall clock). */
  now?: () => number;
}

/** A mempool transaction as getrawmempool/getmempoolentry need it. */
export interface MempoolEntry {
  txid: Uint8Array;
  wtxid: Uint8Array;
  raw: Uint8Array;
  /** Fee in sats. */
  fee: number;
  /** Sigop-adjusted virtual size. */
  vsize: number;
  weight: number;
  /** Entry time, Unix seconds. */
  time: number;
  /** Tip height when it entered. */
  height: number;
  /** Txids of in-mempool parents. */
  depends: Uint8Array[];
  /** Txids of in-mempool children. */
  spentBy: Uint8Array[];
}

/** What blockInfo returns for a known block. */
export interface BlockInfo {
  height: number;
  raw: Uint8Array;
  header: Uint8Array;
  inActiveChain: boolean;
  nextHash?: Uint8Array;
  chainwork: bigint;
  medianTime: number;
}

/** An output a transaction spent or may spend. */
export interface Coin {
  value: number;
  script: Uint8Array;
  height: number;
  coinbase: boolean;
}

/** What reorg did; every list holds txids or block hashes in internal order. */
export interface ReorgResult {
  oldHashes: Uint8Array[];
  newHashes: Uint8Array[];
  /** Old-branch transactions confirmed again in the new branch. */
  moved: Uint8Array[];
  /** Old-branch transactions now back in the mempool. */
  toMempool: Uint8Array[];
  /** Old-branch transactions replaced by a conflicting transaction in the new branch. */
  doubleSpent: Uint8Array[];
  /** The conflicting transactions that replaced them (same order). */
  conflicts: Uint8Array[];
  /** Transactions that became invalid: old-branch descendants of double spends and evicted mempool txs. */
  evicted: Uint8Array[];
}

// Spent outputs of one block, flat over the inputs of its non-coinbase transactions in block order.
interface Undo {
  /** txInputStart[i] = index of transaction i's first input (transaction 0, the coinbase, has none). */
  txInputStart: Uint32Array;
  ref: Uint32Array;
  vout: Uint32Array;
  value: Float64Array;
  height: Int32Array;
  flags: Uint8Array;
  code: Uint8Array;
  scriptOff: Uint32Array;
  scriptLen: Uint32Array;
}

interface BlockRec {
  id: number;
  hash: Uint8Array;
  raw: Uint8Array;
  height: number;
  prev: number;
  time: number;
  medianTime: number;
  chainwork: bigint;
  txids: Uint8Array;
  txCount: number;
  /** TxTable ref of the coinbase while (or since last) connected; -1 if never connected. */
  txRefBase: number;
  undo: Undo | null;
}

interface PoolTx {
  key: string;
  tx: Transaction;
  raw: Uint8Array;
  wtxid: Uint8Array;
  fee: number;
  vsize: number;
  sigops: number;
  time: number;
  height: number;
  parents: Set<string>;
  children: Set<string>;
}

function outpointKey(txid: Uint8Array, vout: number): string {
  return `${toHex(txid)}:${vout}`;
}

function blockWork(bits: number): bigint {
  const target = bitsToTarget(bits);
  return ((1n << 256n) - 1n - target) / (target + 1n) + 1n;
}

function equalAt(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** Generates the chain for `opts` in memory (no cache). */
export function generateChainData(seed: string, blocks: number, txs: number): ChainData {
  const genesis = genesisBlock();
  const raws = [genesis.raw], hashes = [genesis.hash], txids = [genesis.txids];
  const gen = new ChainGenerator({ seed, blocks, txs });
  for (let b = gen.next(); b !== null; b = gen.next()) {
    raws.push(b.raw);
    hashes.push(b.hash);
    txids.push(b.txids);
  }
  return { raws, hashes, txids };
}

/** The simulated node. Create with SimNode.open. */
export class SimNode {
  /** Always regtest. */
  readonly network: Network = NETWORKS.regtest;
  readonly txindex: boolean;
  /** The options it was opened with (seed, blocks, effective txs). */
  readonly options: Readonly<{ seed: string; blocks: number; txs: number; datadir: string }>;

  private readonly blocks: BlockRec[] = [];
  private readonly byHash = new Map<string, number>();
  private readonly active: number[] = [];
  private readonly now: () => number;
  private readonly prng: Prng;
  private readonly chooser: ScriptChooser;
  private readonly factory: TxFactory;
  private readonly scanner = new TxScanner();
  private readonly prevScanner = new TxScanner();

  // Transaction-level state, built on first use by replaying the active chain.
  private stateBuilt = false;
  private readonly txs = new TxTable();
  private readonly txIndex: TxidIndex;
  private readonly utxos: UtxoSet;
  private readonly mempool = new Map<string, PoolTx>();
  /** Additions to and removals from the mempool so far: Core's mempool sequence counts every one. */
  private mempoolChanges = 0;

  /** Core's mempool_sequence: 1 at start, +1 for every transaction added to or removed from the mempool. */
  get mempoolSequence(): number {
    return 1 + this.mempoolChanges;
  }
  private readonly spends = new Map<string, string>();
  /** Transactions of blocks reorgs disconnected, by txid hex: the block -txindex still points at. */
  private readonly staleTxs = new Map<string, Uint8Array>();
  /**
   * The fee estimator's memory, as Core's: the tip height when each transaction entered the mempool by
   * submission (not a reorg's return), and for those later mined, their feerate and the blocks they waited.
   */
  private readonly enteredAt = new Map<string, number>();
  private readonly confirmations: { rate: number; blocks: number }[] = [];
  private confirmationsNext = 0;
  /** Height of the first block this node mined since it started: what the estimator has watched from. */
  private feeFirstHeight = -1;

  /** Loads the chain for `opts` from its cache file in `datadir`, generating and caching it if absent. */
  static async open(opts: SimNodeOptions): Promise<SimNode> {
    if (!Number.isInteger(opts.blocks) || opts.blocks < 0) {
      throw new RangeError(`bad block count ${opts.blocks}`);
    }
    const txs = opts.txs ?? 30 * opts.blocks;
    if (!Number.isInteger(txs) || txs < 0) throw new RangeError(`bad tx count ${opts.txs}`);
    const key = { seed: String(opts.seed), blocks: opts.blocks, txs };
    await Deno.mkdir(opts.datadir, { recursive: true });
    const path = `${opts.datadir}/${cacheFileName(key)}`;
    let chain = await readChainCache(path, key);
    if (chain === null) {
      chain = generateChainData(key.seed, key.blocks, key.txs);
      await writeChainCache(path, key, chain);
    }
    return new SimNode(opts, chain, txs);
  }

  /** Builds a node over chain data already in memory (open() is the usual way in). */
  constructor(opts: SimNodeOptions, chain: ChainData, txs = opts.txs ?? 30 * opts.blocks) {
    this.txindex = opts.txindex ?? false;
    this.options = Object.freeze({
      seed: String(opts.seed),
      blocks: opts.blocks,
      txs,
      datadir: opts.datadir,
    });
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.prng = new Prng(opts.seed, "node");
    this.chooser = new ScriptChooser(opts.seed);
    this.factory = new TxFactory(this.prng);
    this.txIndex = new TxidIndex(this.txs);
    this.utxos = new UtxoSet(this.txs, true);
    for (let i = 0; i < chain.raws.length; i++) {
      const id = this.addBlock(chain.raws[i], chain.hashes[i], chain.txids[i]);
      this.active.push(id);
    }
  }

  /** Height of the active tip. */
  get height(): number {
    return this.active.length - 1;
  }

  /** Hash of the active tip. */
  get tipHash(): Uint8Array {
    return this.blocks[this.active[this.active.length - 1]].hash;
  }

  /** Active-chain block hash at `height` (do not modify it), or undefined. */
  hashAt(height: number): Uint8Array | undefined {
    if (!Number.isInteger(height) || height < 0 || height >= this.active.length) return undefined;
    return this.blocks[this.active[height]].hash;
  }

  private rec(hash: Uint8Array): BlockRec | undefined {
    if (hash.length !== 32) return undefined;
    const id = this.byHash.get(toHex(hash));
    return id === undefined ? undefined : this.blocks[id];
  }

  private isActive(r: BlockRec): boolean {
    return this.active[r.height] === r.id;
  }

  /** Any known block (active or stale) by hash. */
  blockInfo(hash: Uint8Array): BlockInfo | undefined {
    const r = this.rec(hash);
    if (r === undefined) return undefined;
    const inActiveChain = this.isActive(r);
    const info: BlockInfo = {
      height: r.height,
      raw: r.raw,
      header: r.raw.subarray(0, 80),
      inActiveChain,
      chainwork: r.chainwork,
      medianTime: r.medianTime,
    };
    if (inActiveChain && r.height < this.height) info.nextHash = this.blocks[this.active[r.height + 1]].hash;
    return info;
  }

  /** A confirmed transaction of the active chain by txid (the genesis coinbase included). */
  findConfirmedTx(txid: Uint8Array): { blockHash: Uint8Array; height: number; raw: Uint8Array } | undefined {
    if (txid.length !== 32) return undefined;
    this.ensureState();
    const ref = this.txIndex.get(txid, 0);
    if (ref < 0) return undefined;
    const r = this.blocks[this.txs.block(ref)];
    const off = this.txs.offset(ref);
    return { blockHash: r.hash, height: r.height, raw: r.raw.subarray(off, off + this.txs.length(ref)) };
  }

  /**
   * What Core's -txindex finds for `txid`: the active chain's copy, else the block a reorg took it out of
   * (Core does not remove entries when it disconnects a block; only a node with `txindex` remembers those).
   */
  findIndexedTx(txid: Uint8Array): { blockHash: Uint8Array; raw: Uint8Array } | undefined {
    const active = this.findConfirmedTx(txid);
    if (active !== undefined) return active;
    const blockHash = this.staleTxs.get(toHex(txid));
    if (blockHash === undefined) return undefined;
    const raw = this.txInBlock(txid, blockHash);
    return raw === undefined ? undefined : { blockHash, raw };
  }

  /** Raw bytes of transaction `txid` if block `blockHash` (active or stale) contains it. */
  txInBlock(txid: Uint8Array, blockHash: Uint8Array): Uint8Array | undefined {
    const r = this.rec(blockHash);
    if (r === undefined || txid.length !== 32) return undefined;
    for (let i = 0; i < r.txCount; i++) {
      if (!equalAt(r.txids, 32 * i, txid, 0, 32)) continue;
      let off = firstTxOffset(r.raw);
      for (let k = 0; k < i; k++) off = this.scanner.scan(r.raw, off);
      const end = this.scanner.scan(r.raw, off);
      return r.raw.subarray(off, end);
    }
    return undefined;
  }

  /** A mempool transaction by txid. */
  mempoolTx(txid: Uint8Array): MempoolEntry | undefined {
    const p = this.mempool.get(toHex(txid));
    return p === undefined ? undefined : this.entryOf(p);
  }

  /** All mempool transactions in acceptance order. */
  mempoolEntries(): MempoolEntry[] {
    return [...this.mempool.values()].map((p) => this.entryOf(p));
  }

  private entryOf(p: PoolTx): MempoolEntry {
    return {
      txid: p.tx.txid,
      wtxid: p.wtxid,
      raw: p.raw,
      fee: p.fee,
      vsize: p.vsize,
      weight: p.tx.weight,
      time: p.time,
      height: p.height,
      depends: [...p.parents].map((k) => this.mempool.get(k)!.tx.txid),
      spentBy: [...p.children].map((k) => this.mempool.get(k)!.tx.txid),
    };
  }

  /** A confirmed unspent output (the mempool is not consulted). */
  utxo(txid: Uint8Array, vout: number): Coin | undefined {
    if (txid.length !== 32 || !Number.isInteger(vout) || vout < 0) return undefined;
    this.ensureState();
    const e = this.utxos.find(txid, 0, vout);
    return e < 0 ? undefined : this.coinAt(e);
  }

  /** Count and total value of the confirmed UTXO set. */
  utxoStats(): { count: number; totalValue: number } {
    this.ensureState();
    return { count: this.utxos.size, totalValue: this.utxos.totalValue };
  }

  private coinAt(e: number): Coin {
    const u = this.utxos;
    const ref = u.ref(e);
    const r = this.blocks[this.txs.block(ref)];
    const at = this.txs.offset(ref) + u.scriptOff(e);
    return {
      value: u.value(e),
      script: r.raw.subarray(at, at + u.scriptLen(e)),
      height: u.height(e),
      coinbase: (u.flags(e) & COINBASE_FLAG) !== 0,
    };
  }

  /**
   * The outputs each transaction of a block spent (index 0, the coinbase, is empty): Core's undo data, for
   * fees and getblock verbosity 3. Undefined for unknown blocks.
   */
  blockPrevouts(hash: Uint8Array): Coin[][] | undefined {
    const r = this.rec(hash);
    if (r === undefined) return undefined;
    this.ensureState();
    const undo = this.undoOf(r);
    const out: Coin[][] = [[]];
    for (let i = 1; i < r.txCount; i++) {
      const coins: Coin[] = [];
      for (let k = undo.txInputStart[i]; k < undo.txInputStart[i + 1]; k++) {
        const ref = undo.ref[k];
        const src = this.blocks[this.txs.block(ref)];
        const at = this.txs.offset(ref) + undo.scriptOff[k];
        coins.push({
          value: undo.value[k],
          script: src.raw.subarray(at, at + undo.scriptLen[k]),
          height: undo.height[k],
          coinbase: (undo.flags[k] & COINBASE_FLAG) !== 0,
        });
      }
      out.push(coins);
    }
    return out;
  }

  // ---- block tree and chain state ----

  private addBlock(raw: Uint8Array, hash: Uint8Array, txids: Uint8Array): number {
    const id = this.blocks.length;
    const v = new DataView(raw.buffer, raw.byteOffset, 80);
    const time = v.getUint32(68, true);
    const bits = v.getUint32(72, true);
    let prev = -1, height = 0, chainwork = blockWork(bits);
    const times = [time];
    if (id > 0) {
      prev = this.byHash.get(toHex(raw.subarray(4, 36))) ?? -1;
      if (prev < 0) throw new Error("simnet: block does not extend a known block");
      const p = this.blocks[prev];
      height = p.height + 1;
      chainwork += p.chainwork;
      for (let q: BlockRec | undefined = p; q !== undefined && times.length < 11; q = this.blocks[q.prev]) {
        times.push(q.time);
      }
    }
    times.sort((a, b) => a - b);
    this.blocks.push({
      id,
      hash,
      raw,
      height,
      prev,
      time,
      medianTime: times[Math.floor(times.length / 2)],
      chainwork,
      txids,
      txCount: txids.length / 32,
      txRefBase: -1,
      undo: null,
    });
    this.byHash.set(toHex(hash), id);
    return id;
  }

  // Builds the txid index and UTXO set by replaying the active chain (txids come from the chain data).
  private ensureState(): void {
    if (this.stateBuilt) return;
    this.stateBuilt = true;
    for (const id of this.active) this.connect(this.blocks[id], false);
  }

  private connect(r: BlockRec, recordUndo: boolean): void {
    const s = this.scanner, raw = r.raw, u = this.utxos;
    const undo = recordUndo ? this.newUndo(r) : null;
    let nUndo = 0;
    let off = firstTxOffset(raw);
    for (let i = 0; i < r.txCount; i++) {
      const end = s.scan(raw, off);
      const ref = this.txs.add(r.txids, 32 * i, r.id, off, end - off);
      if (i === 0) r.txRefBase = ref;
      this.txIndex.set(ref);
      if (undo !== null) undo.txInputStart[i] = nUndo;
      if (i > 0) {
        for (let k = 0; k < s.nIn; k++) {
          const e = u.find(raw, s.inPrevOff[k], s.inVout[k]);
          if (e < 0) throw new Error(`simnet: block ${r.height} tx ${i} spends a missing output`);
          if (undo !== null) {
            undo.ref[nUndo] = u.ref(e);
            undo.vout[nUndo] = u.vout(e);
            undo.value[nUndo] = u.value(e);
            undo.height[nUndo] = u.height(e);
            undo.flags[nUndo] = u.flags(e);
            undo.code[nUndo] = u.code(e);
            undo.scriptOff[nUndo] = u.scriptOff(e);
            undo.scriptLen[nUndo] = u.scriptLen(e);
            nUndo++;
          }
          u.removeAt(e);
        }
      }
      // The genesis coinbase never enters the UTXO set (Core quirk).
      if (r.height > 0) {
        for (let j = 0; j < s.nOut; j++) {
          const so = s.outScriptOff[j], sl = s.outScriptLen[j];
          const code = kindCodeOf(raw.subarray(so, so + sl));
          if (code < 0) continue;
          u.add(ref, j, s.outValue[j], r.height, i === 0 ? COINBASE_FLAG : 0, code, so - off, sl);
        }
      }
      off = end;
    }
    if (undo !== null) {
      undo.txInputStart[r.txCount] = nUndo;
      r.undo = undo;
    }
  }

  private newUndo(r: BlockRec): Undo {
    // Count inputs first so the columns are allocated once.
    let n = 0;
    let off = firstTxOffset(r.raw);
    for (let i = 0; i < r.txCount; i++) {
      off = this.prevScanner.scan(r.raw, off);
      if (i > 0) n += this.prevScanner.nIn;
    }
    return {
      txInputStart: new Uint32Array(r.txCount + 1),
      ref: new Uint32Array(n),
      vout: new Uint32Array(n),
      value: new Float64Array(n),
      height: new Int32Array(n),
      flags: new Uint8Array(n),
      code: new Uint8Array(n),
      scriptOff: new Uint32Array(n),
      scriptLen: new Uint32Array(n),
    };
  }

  // Undo data of a block: recorded when it was connected or disconnected, else derived (for an active
  // block) from the transactions its inputs point to.
  private undoOf(r: BlockRec): Undo {
    if (r.undo !== null) return r.undo;
    if (!this.isActive(r)) throw new Error("simnet: stale block without undo data");
    const undo = this.newUndo(r);
    const s = this.scanner, ps = this.prevScanner;
    let n = 0;
    let off = firstTxOffset(r.raw);
    for (let i = 0; i < r.txCount; i++) {
      const end = s.scan(r.raw, off);
      undo.txInputStart[i] = n;
      if (i > 0) {
        for (let k = 0; k < s.nIn; k++) {
          const prevRef = this.txIndex.get(r.raw, s.inPrevOff[k]);
          if (prevRef < 0) throw new Error(`simnet: block ${r.height} spends an unknown transaction`);
          const src = this.blocks[this.txs.block(prevRef)];
          const txOff = this.txs.offset(prevRef);
          ps.scan(src.raw, txOff);
          const vout = s.inVout[k];
          undo.ref[n] = prevRef;
          undo.vout[n] = vout;
          undo.value[n] = ps.outValue[vout];
          undo.height[n] = src.height;
          undo.flags[n] = prevRef === src.txRefBase ? COINBASE_FLAG : 0;
          const so = ps.outScriptOff[vout], sl = ps.outScriptLen[vout];
          undo.code[n] = Math.max(0, kindCodeOf(src.raw.subarray(so, so + sl)));
          undo.scriptOff[n] = so - txOff;
          undo.scriptLen[n] = sl;
          n++;
        }
      }
      off = end;
    }
    undo.txInputStart[r.txCount] = n;
    r.undo = undo;
    return undo;
  }

  private disconnectTip(): void {
    const r = this.blocks[this.active[this.active.length - 1]];
    const undo = this.undoOf(r);
    const s = this.scanner, u = this.utxos, raw = r.raw;
    const starts = new Uint32Array(r.txCount);
    let off = firstTxOffset(raw);
    for (let i = 0; i < r.txCount; i++) {
      starts[i] = off;
      off = s.scan(raw, off);
    }
    // Newest first, so an output created and spent inside this block is restored, then removed.
    for (let i = r.txCount - 1; i >= 0; i--) {
      s.scan(raw, starts[i]);
      for (let j = 0; j < s.nOut; j++) {
        const e = u.find(r.txids, 32 * i, j);
        if (e >= 0) u.removeAt(e);
      }
      for (let k = undo.txInputStart[i]; k < undo.txInputStart[i + 1]; k++) {
        u.add(
          undo.ref[k],
          undo.vout[k],
          undo.value[k],
          undo.height[k],
          undo.flags[k],
          undo.code[k],
          undo.scriptOff[k],
          undo.scriptLen[k],
        );
      }
      this.txIndex.delete(r.txRefBase + i);
      // Core's -txindex keeps its entry for a transaction of a disconnected block (it points at that block
      // until a block of the new branch confirms the transaction again).
      if (this.txindex) this.staleTxs.set(toHex(r.txids.subarray(32 * i, 32 * i + 32)), r.hash);
    }
    this.active.pop();
  }

  // ---- mempool ----

  /**
   * sendrawtransaction's acceptance (scripts are not checked): returns the txid or throws CoreRpcError
   * with Core's code and reject reason. A transaction that conflicts with the mempool replaces what it
   * conflicts with under Core's full-RBF rules; `replaced` then receives the txids it evicted.
   */
  acceptTx(raw: Uint8Array, replaced?: Uint8Array[], opts: { package?: boolean } = {}): Uint8Array {
    this.ensureState();
    const changes = this.mempoolChanges;
    const p = this.accept(raw, this.now(), replaced, !(opts.package ?? false));
    // Already in the mempool: nothing changed, and it keeps the entry it had.
    if (this.mempoolChanges !== changes) this.trackForFees(p, opts.package ?? false);
    return p.tx.txid;
  }

  /**
   * Core's estimator learns only from transactions that entered with no parent in the mempool and not as part
   * of a package (their own feerate then says when they confirm).
   */
  private trackForFees(p: PoolTx, inPackage: boolean): void {
    if (!inPackage && p.parents.size === 0) this.enteredAt.set(p.key, this.height);
  }

  /** Adds a transaction to the mempool; one that conflicts replaces (full RBF) and lists what it evicted. */
  private accept(rawIn: Uint8Array, time: number, replaced?: Uint8Array[], allowCarveouts = true): PoolTx {
    const raw = rawIn.slice();
    let tx: Transaction;
    try {
      tx = decodeTransaction(raw);
    } catch (e) {
      if (e instanceof ChainFormatError) {
        throw new CoreRpcError(
          RPC.DESERIALIZATION_ERROR,
          "TX decode failed. Make sure the tx has at least one input.",
        );
      }
      throw e;
    }
    const key = toHex(tx.txid);
    const existing = this.mempool.get(key);
    if (existing !== undefined) return existing;
    for (let j = 0; j < tx.outputs.length; j++) {
      if (this.utxos.find(tx.txid, 0, j) >= 0) {
        throw new CoreRpcError(RPC.VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set");
      }
    }
    const tip = this.blocks[this.active[this.height]];
    const spendHeight = this.height + 1;
    const verdict = checkAcceptance(tx, {
      spendHeight,
      medianTime: tip.medianTime,
      spender: (txid, vout) => this.spends.get(outpointKey(txid, vout)),
      allowReplacement: true,
      poolEntry: (k) => this.mempool.get(k),
      allowCarveouts,
      coin: (txid, vout) => {
        const e = this.utxos.find(txid, 0, vout);
        if (e >= 0) return this.coinAt(e);
        const parent = this.mempool.get(toHex(txid));
        const out = parent?.tx.outputs[vout];
        if (parent === undefined || out === undefined || isUnspendable(out.script)) return undefined;
        return {
          value: out.value,
          script: out.script,
          height: spendHeight,
          coinbase: false,
          parent: parent.key,
        };
      },
    });
    if (!verdict.ok) throw new CoreRpcError(verdict.code, verdict.reason);
    const { fee, vsize, sigops, parents, conflicts } = verdict;
    if (conflicts.size > 0) {
      const replacement = checkReplacement(tx, fee, vsize, conflicts, (k) => {
        const p = this.mempool.get(k);
        if (p === undefined) return undefined;
        return {
          fee: p.fee,
          vsize: p.vsize,
          inputTxids: p.tx.inputs.map((i) => toHex(i.prevTxid)),
          children: p.children,
        };
      });
      if (!replacement.ok) throw new CoreRpcError(replacement.code, replacement.reason);
      for (const k of replacement.replaced) {
        const p = this.mempool.get(k)!;
        this.removeFromMempool(p);
        replaced?.push(p.tx.txid);
      }
    }

    const entry: PoolTx = {
      key,
      tx,
      raw,
      wtxid: tx.witnesses === null ? tx.txid : computeWtxid(tx),
      fee,
      vsize,
      sigops,
      time,
      height: this.height,
      parents,
      children: new Set(),
    };
    this.mempool.set(key, entry);
    this.mempoolChanges++;
    for (const i of tx.inputs) this.spends.set(outpointKey(i.prevTxid, i.prevVout), key);
    for (const p of parents) this.mempool.get(p)!.children.add(key);
    return entry;
  }

  private removeFromMempool(p: PoolTx): void {
    if (this.mempool.delete(p.key)) this.mempoolChanges++;
    this.enteredAt.delete(p.key);
    for (const i of p.tx.inputs) this.spends.delete(outpointKey(i.prevTxid, i.prevVout));
    for (const k of p.parents) this.mempool.get(k)?.children.delete(p.key);
    for (const k of p.children) this.mempool.get(k)?.parents.delete(p.key);
  }

  // ---- mining ----

  private mineBlock(
    txs: { raw: Uint8Array; txid: Uint8Array; wtxid: Uint8Array; segwit: boolean }[],
    fees: number,
  ): BlockRec {
    let bodyLen = 0;
    for (const t of txs) bodyLen += t.raw.length;
    const body = new Uint8Array(bodyLen);
    const txids = new Uint8Array(32 * txs.length), wtxids = new Uint8Array(32 * txs.length);
    let off = 0, anyWitness = false;
    txs.forEach((t, i) => {
      body.set(t.raw, off);
      off += t.raw.length;
      txids.set(t.txid, 32 * i);
      wtxids.set(t.wtxid, 32 * i);
      if (t.segwit) anyWitness = true;
    });
    const tip = this.blocks[this.active[this.height]];
    const payout = new Uint8Array(PAYLOAD_SIZE);
    const payoutCode = this.chooser.miner(this.prng, payout, 0);
    const block = assembleBlock({
      prevHash: tip.hash,
      height: tip.height + 1,
      time: Math.max(nextBlockTime(this.prng, tip.time), tip.medianTime + 1),
      body,
      txCount: txs.length,
      txids,
      wtxids,
      anyWitness,
      fees,
      payoutCode,
      payout,
      payoutOff: 0,
      extraNonce: this.prng.u32(),
    });
    const r = this.blocks[this.addBlock(block.raw, block.hash, block.txids)];
    this.connect(r, true);
    this.active.push(r.id);
    return r;
  }

  /** Mines `n` blocks on the tip (by default filled from the mempool in acceptance order). */
  mine(n: number, opts: { includeMempool?: boolean } = {}): Uint8Array[] {
    if (!Number.isInteger(n) || n < 0) throw new CoreRpcError(RPC.INVALID_PARAMETER, `bad block count ${n}`);
    this.ensureState();
    const includeMempool = opts.includeMempool ?? true;
    const hashes: Uint8Array[] = [];
    for (let b = 0; b < n; b++) {
      const chosen: PoolTx[] = [];
      if (includeMempool) {
        const included = new Set<string>();
        let weight = 4000, sigops = 400, fees = 0;
        for (const p of this.mempool.values()) {
          if ([...p.parents].some((k) => !included.has(k))) continue;
          if (weight + p.tx.weight > MAX_BLOCK_WEIGHT || sigops + p.sigops > MAX_BLOCK_SIGOPS_COST) continue;
          weight += p.tx.weight;
          sigops += p.sigops;
          fees += p.fee;
          included.add(p.key);
          chosen.push(p);
        }
        const r = this.mineBlock(
          chosen.map((p) => ({
            raw: p.raw,
            txid: p.tx.txid,
            wtxid: p.wtxid,
            segwit: p.tx.witnesses !== null,
          })),
          fees,
        );
        for (const p of chosen) {
          const entered = this.enteredAt.get(p.key);
          if (entered !== undefined) this.noteConfirmation(p.fee / p.vsize, this.height - entered);
          this.removeFromMempool(p);
        }
        if (this.feeFirstHeight < 0) this.feeFirstHeight = this.height;
        hashes.push(r.hash);
      } else {
        hashes.push(this.mineBlock([], 0).hash);
        if (this.feeFirstHeight < 0) this.feeFirstHeight = this.height;
      }
    }
    return hashes;
  }

  // ---- traffic ----

  /**
   * Adds `n` generator-made valid transactions (some spending each other) to the mempool; returns their txids,
   * fewer than `n` when the node runs out of outputs to spend within Core's chain limits.
   */
  addMempoolTraffic(n: number): Uint8Array[] {
    if (!Number.isInteger(n) || n < 0) {
      throw new CoreRpcError(RPC.INVALID_PARAMETER, `bad transaction count ${n}`);
    }
    this.ensureState();
    const out: Uint8Array[] = [];
    const memOutputs: [string, number][] = [];
    for (const p of this.mempool.values()) {
      p.tx.outputs.forEach((o, j) => {
        if (!isUnspendable(o.script)) memOutputs.push([p.key, j]);
      });
    }
    for (let k = 0; k < n; k++) {
      let made: PoolTx | null = null;
      for (let attempt = 0; attempt < 20 && made === null; attempt++) made = this.trafficTx(memOutputs);
      if (made === null) break; // nothing left to spend within Core's chain limits
      out.push(made.tx.txid);
      made.tx.outputs.forEach((o, j) => {
        if (!isUnspendable(o.script)) memOutputs.push([made!.key, j]);
      });
    }
    return out;
  }

  private trafficTx(memOutputs: [string, number][]): PoolTx | null {
    const f = this.factory, p = this.prng, u = this.utxos;
    f.randomHeaderFields(this.height);
    const u1 = p.float();
    const want = u1 < 0.75 ? 1 : u1 < 0.93 ? 2 : p.range(3, 5);
    const used = new Set<string>();
    const memParents = new Set<string>();
    for (let tries = 0; f.nIn < want && tries < 40; tries++) {
      if (memOutputs.length > 0 && p.chance(0.3)) {
        const [key, vout] = memOutputs[p.int(memOutputs.length)];
        const parent = this.mempool.get(key);
        if (parent === undefined) continue;
        const ok = outpointKey(parent.tx.txid, vout);
        if (this.spends.has(ok) || used.has(ok)) continue;
        used.add(ok);
        memParents.add(key);
        const o = parent.tx.outputs[vout];
        f.addInput(parent.tx.txid, 0, vout, o.value, Math.max(0, kindCodeOf(o.script)));
      } else {
        if (u.size === 0) break;
        const e = p.int(u.size);
        if ((u.flags(e) & COINBASE_FLAG) && this.height + 1 - u.height(e) < COINBASE_MATURITY) continue;
        const at = this.txs.txidAt(u.ref(e));
        const txid = at.store.subarray(at.off, at.off + 32);
        const ok = outpointKey(txid, u.vout(e));
        if (this.spends.has(ok) || used.has(ok)) continue;
        used.add(ok);
        f.addInput(at.store, at.off, u.vout(e), u.value(e), u.code(e));
      }
    }
    if (f.nIn === 0) return null;
    const u2 = p.float();
    const nOut = u2 < 0.2 ? 1 : u2 < 0.9 ? 2 : 3;
    for (let j = 0; j < nOut; j++) {
      let code = this.chooser.choose(p, f.outPayload, j * PAYLOAD_SIZE);
      // Core would not relay non-standard outputs; traffic keeps to standard ones.
      if ((code & 0x0f) === Kind.NONSTANDARD) {
        code = freshPayload(p, Kind.P2WPKH, f.outPayload, j * PAYLOAD_SIZE);
      }
      f.addOutput(code);
    }
    if (p.chance(0.02)) f.addNullData(p.range(0, 40));
    f.measure();
    const vsize = adjustedVsize(f.weight, f.sigops);
    if (f.weight > 100_000 || !f.setValues(Math.ceil(f.feeRate() * vsize))) return null;
    const w = new ByteWriter(f.size + 16);
    f.write(w);
    let added: PoolTx;
    try {
      added = this.accept(w.written(), this.now());
    } catch (e) {
      if (!(e instanceof CoreRpcError) || !e.message.startsWith("too-long-mempool-chain")) throw e;
      // Those parents' chains are at Core's limits: traffic stops offering their outputs and tries another spend.
      for (let i = memOutputs.length - 1; i >= 0; i--) {
        if (memParents.has(memOutputs[i][0])) memOutputs.splice(i, 1);
      }
      return null;
    }
    this.trackForFees(added, false);
    return added;
  }

  // ---- reorganisation ----

  /**
   * Disconnects the last `depth` blocks and mines depth+1+extraBlocks (or a few more if moved transactions
   * need the room) on the fork point. Old-branch transactions are re-confirmed ("moved"), except
   * `toMempool` of them that go back to the mempool and `doubleSpend` of them that a conflicting
   * transaction replaces (their descendants become invalid and are evicted). The mempool keeps every
   * transaction that is still valid.
   */
  reorg(
    depth: number,
    opts: { extraBlocks?: number; toMempool?: number; doubleSpend?: number } = {},
  ): ReorgResult {
    const extra = opts.extraBlocks ?? 0, wantMem = opts.toMempool ?? 0, wantDs = opts.doubleSpend ?? 0;
    for (
      const [name, v] of [["extraBlocks", extra], ["toMempool", wantMem], ["doubleSpend", wantDs]] as const
    ) {
      if (!Number.isInteger(v) || v < 0) {
        throw new CoreRpcError(RPC.INVALID_PARAMETER, `${name} must be a non-negative integer`);
      }
    }
    if (!Number.isInteger(depth) || depth < 1 || depth > this.height) {
      throw new CoreRpcError(RPC.INVALID_PARAMETER, `reorg depth must be between 1 and ${this.height}`);
    }
    this.ensureState();
    const fork = this.height - depth;
    const oldRecs = this.active.slice(fork + 1).map((id) => this.blocks[id]);

    // The old branch's transactions, their in-branch parents and children.
    interface OldTx {
      tx: Transaction;
      wtxid: Uint8Array;
      block: number;
      status: "move" | "mempool" | "ds" | "dropped";
      parents: number[];
      children: number[];
      prevScripts: Uint8Array[];
      fee: number;
      sigops: number;
    }
    const old: OldTx[] = [];
    const oldIndex = new Map<string, number>();
    oldRecs.forEach((r, b) => {
      for (const tx of parseBlock(r.raw).txs.slice(1)) {
        oldIndex.set(toHex(tx.txid), old.length);
        old.push({
          tx,
          wtxid: tx.witnesses === null ? tx.txid : computeWtxid(tx),
          block: b,
          status: "move",
          parents: [],
          children: [],
          prevScripts: [],
          fee: 0,
          sigops: 0,
        });
      }
    });
    const oldPool = [...this.mempool.values()];
    this.mempool.clear();
    this.spends.clear();
    for (let i = 0; i < depth; i++) this.disconnectTip();

    // Which old transactions can still be valid: every input is below the fork or from a kept parent.
    const evicted: Uint8Array[] = [];
    const drop = (i: number) => {
      if (old[i].status === "dropped") return;
      old[i].status = "dropped";
      for (const c of old[i].children) drop(c);
    };
    old.forEach((o, i) => {
      let valueIn = 0;
      for (const input of o.tx.inputs) {
        const pi = oldIndex.get(toHex(input.prevTxid));
        if (pi !== undefined) {
          if (!o.parents.includes(pi)) {
            o.parents.push(pi);
            old[pi].children.push(i);
          }
          const out = old[pi].tx.outputs[input.prevVout];
          o.prevScripts.push(out.script);
          valueIn += out.value;
          if (old[pi].status !== "move") o.status = "dropped";
          continue;
        }
        const e = this.utxos.find(input.prevTxid, 0, input.prevVout);
        if (e < 0) {
          o.status = "dropped"; // e.g. it spent a coinbase of the old branch
          o.prevScripts.push(new Uint8Array(0));
          continue;
        }
        const c = this.coinAt(e);
        o.prevScripts.push(c.script);
        valueIn += c.value;
      }
      o.fee = valueIn - o.tx.outputs.reduce((s, x) => s + x.value, 0);
      o.sigops = sigopCost(o.tx, o.prevScripts);
    });
    const pick = (eligible: number[]): number => eligible[this.prng.int(eligible.length)];

    // Double spends: a transaction with an input below the fork, preferring ones without kept children.
    const doubleSpent: number[] = [];
    const conflictOf = new Map<
      number,
      { raw: Uint8Array; txid: Uint8Array; wtxid: Uint8Array; fee: number }
    >();
    for (let k = 0; k < wantDs; k++) {
      const ok = (i: number) =>
        old[i].status === "move" &&
        old[i].tx.inputs.some((x) => this.utxos.find(x.prevTxid, 0, x.prevVout) >= 0);
      let eligible = old.map((_, i) => i).filter((i) => ok(i) && old[i].children.length === 0);
      if (eligible.length === 0) eligible = old.map((_, i) => i).filter(ok);
      if (eligible.length === 0) break;
      const i = pick(eligible);
      for (const c of old[i].children) drop(c);
      old[i].status = "ds";
      doubleSpent.push(i);
      conflictOf.set(i, this.conflictFor(old[i].tx));
    }
    // Back to the mempool: relayable transactions none of whose kept descendants stay confirmed.
    const toMempool: number[] = [];
    for (let k = 0; k < wantMem; k++) {
      const eligible = old.map((_, i) => i).filter((i) => {
        const o = old[i];
        return o.status === "move" && o.children.every((c) => old[c].status !== "move") &&
          standardnessError(o.tx) === null && o.sigops <= MAX_STANDARD_SIGOPS_COST &&
          o.fee >= feeForSize(MIN_RELAY_FEE, adjustedVsize(o.tx.weight, o.sigops));
      });
      if (eligible.length === 0) break;
      const i = pick(eligible);
      old[i].status = "mempool";
      toMempool.push(i);
    }

    // Lay the kept transactions (and the conflicts, where their victims were) into the new blocks in the
    // old order; some slip one block later. Weight and sigops stay within consensus limits.
    type Item = { raw: Uint8Array; txid: Uint8Array; wtxid: Uint8Array; segwit: boolean; fee: number };
    const layout: { items: Item[]; weight: number; sigops: number; fees: number }[] = [];
    const newBlock = () => layout.push({ items: [], weight: 4000, sigops: 400, fees: 0 });
    for (let b = 0; b < depth + 1 + extra; b++) newBlock();
    let cursor = 0;
    const place = (at: number, item: Item, weight: number, sigops: number) => {
      let b = Math.max(cursor, at);
      for (;; b++) {
        if (b >= layout.length) newBlock();
        const l = layout[b];
        if (l.weight + weight <= MAX_BLOCK_WEIGHT && l.sigops + sigops <= MAX_BLOCK_SIGOPS_COST) break;
      }
      const l = layout[b];
      l.items.push(item);
      l.weight += weight;
      l.sigops += sigops;
      l.fees += item.fee;
      cursor = b;
    };
    const moved: Uint8Array[] = [];
    old.forEach((o, i) => {
      const at = o.block + (this.prng.chance(0.25) ? 1 : 0);
      if (o.status === "ds") {
        const c = conflictOf.get(i)!;
        const ctx = decodeTransaction(c.raw);
        place(
          at,
          { raw: c.raw, txid: c.txid, wtxid: c.wtxid, segwit: ctx.witnesses !== null, fee: c.fee },
          ctx.weight,
          400,
        );
      } else if (o.status === "move") {
        place(
          at,
          { raw: o.tx.raw, txid: o.tx.txid, wtxid: o.wtxid, segwit: o.tx.witnesses !== null, fee: o.fee },
          o.tx.weight,
          o.sigops,
        );
        moved.push(o.tx.txid);
      } else if (o.status === "dropped") {
        evicted.push(o.tx.txid);
      }
    });
    const newHashes = layout.map((l) => this.mineBlock(l.items, l.fees).hash);

    // The mempool: returning transactions first (older), then what was there, each re-validated.
    const now = this.now();
    const back: Uint8Array[] = [];
    toMempool.sort((a, b) => a - b); // parents before children
    for (const i of toMempool) {
      try {
        this.accept(old[i].tx.raw, now);
        back.push(old[i].tx.txid);
      } catch (e) {
        if (!(e instanceof CoreRpcError)) throw e;
        evicted.push(old[i].tx.txid);
      }
    }
    for (const p of oldPool) {
      try {
        // Core keeps these and then drops those a returning chain puts over its limits: re-adding them in order
        // under the limits leaves the same mempool.
        this.accept(p.raw, p.time);
      } catch (e) {
        if (!(e instanceof CoreRpcError)) throw e;
        evicted.push(p.tx.txid);
      }
    }
    // The mempool was rebuilt without removeFromMempool: forget what the estimator tracked for evicted ones.
    for (const key of this.enteredAt.keys()) if (!this.mempool.has(key)) this.enteredAt.delete(key);
    return {
      oldHashes: oldRecs.map((r) => r.hash),
      newHashes,
      moved,
      toMempool: back,
      doubleSpent: doubleSpent.map((i) => old[i].tx.txid),
      conflicts: doubleSpent.map((i) => conflictOf.get(i)!.txid),
      evicted,
    };
  }

  // A transaction spending the first still-unspent input of `victim` to fresh outputs.
  private conflictFor(
    victim: Transaction,
  ): { raw: Uint8Array; txid: Uint8Array; wtxid: Uint8Array; fee: number } {
    const f = this.factory, u = this.utxos;
    f.reset(2, 0, 0xfffffffd);
    for (const x of victim.inputs) {
      const e = u.find(x.prevTxid, 0, x.prevVout);
      if (e >= 0) {
        f.addInput(x.prevTxid, 0, x.prevVout, u.value(e), u.code(e));
        break;
      }
    }
    f.addOutput(freshPayload(this.prng, Kind.P2WPKH, f.outPayload, 0));
    f.measure();
    let fee = Math.ceil(f.feeRate() * f.vsize);
    if (!f.setValues(fee)) {
      // Too small to pay anyone: all of it goes to the miner, with an OP_RETURN as the only output.
      f.nOut = 0;
      f.addNullData(4);
      f.measure();
      f.outValue[0] = 0;
      fee = f.sumIn;
    }
    const w = new ByteWriter(f.size + 16);
    f.write(w);
    const txid = f.txid(w);
    return { raw: w.finish(), txid, wtxid: f.wtxid(w, txid), fee };
  }

  // ---- fees ----

  private noteConfirmation(rate: number, blocks: number): void {
    // A ring: once FEE_MEMORY are held, each new one overwrites the oldest.
    if (this.confirmations.length < FEE_MEMORY) this.confirmations.push({ rate, blocks });
    else this.confirmations[this.confirmationsNext] = { rate, blocks };
    this.confirmationsNext = (this.confirmationsNext + 1) % FEE_MEMORY;
  }

  /**
   * estimatesmartfee's answer: a feerate in sat/vB (none for Core's "Insufficient data or no feerate found")
   * and the target it answers for. Like Core's estimator (policy/fees.cpp), and unlike an estimate from mined
   * blocks, it learns only from transactions it saw enter its mempool and then confirm, and it answers no
   * target beyond half the blocks it has watched (a target of 1 counts as 2): a freshly started node knows
   * nothing. In outline of Core's method: the transactions it learned from, from the highest feerate down, in
   * groups of FEE_GROUP; the answer is the median feerate of the lowest group in an unbroken run from the top
   * of which at least 85% confirmed within the target.
   */
  estimateFeeRate(target: number): { satPerVb?: number; blocks: number } {
    this.ensureState();
    const watched = this.feeFirstHeight < 0 ? 0 : this.height - this.feeFirstHeight;
    const within = Math.min(Math.max(2, target), Math.floor(watched / 2));
    if (within <= 1) return { blocks: within };
    const seen = [...this.confirmations].sort((a, b) => b.rate - a.rate);
    let answer: number | undefined;
    for (let from = 0; from + FEE_GROUP <= seen.length; from += FEE_GROUP) {
      const group = seen.slice(from, from + FEE_GROUP);
      const quick = group.filter((c) => c.blocks <= within).length;
      if (quick < FEE_SUCCESS * FEE_GROUP) break;
      answer = group[FEE_GROUP >> 1].rate;
    }
    if (answer === undefined) return { blocks: within };
    return { satPerVb: Math.max(1, Math.round(answer * 1000) / 1000), blocks: within };
  }
}

/** Confirmations the fee estimator remembers (the oldest are forgotten, as Core's decay forgets them). */
const FEE_MEMORY = 5000;
/** Transactions per feerate group the estimator judges at once. */
const FEE_GROUP = 20;
/** Share of a group that must have confirmed within the target. */
const FEE_SUCCESS = 0.85;

/** The chain-cache path `open` uses for these options. */
export function cachePathFor(opts: SimNodeOptions): string {
  const txs = opts.txs ?? 30 * opts.blocks;
  return `${opts.datadir}/${cacheFileName({ seed: String(opts.seed), blocks: opts.blocks, txs })}`;
}
