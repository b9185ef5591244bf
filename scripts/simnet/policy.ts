// The parts of Bitcoin Core's relay policy simnet's mempool applies: dust, standard outputs, sigop cost
// and the sigop-adjusted virtual size, and FormatMoney for reject messages.
import { classifyScript, readOp, witnessProgram } from "../../src/chain/script.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { isCoinbase, type Transaction } from "../../src/chain/tx.ts";
import { COINBASE_MATURITY } from "./generator.ts";
import { RPC } from "./rpc_types.ts";

/** Core's -dustrelayfee default, sat/kvB. */
export const DUST_RELAY_FEE = 3000;
/** Core's -minrelaytxfee default, sat/kvB. */
export const MIN_RELAY_FEE = 1000;
/** Core's MAX_STANDARD_TX_WEIGHT. */
export const MAX_STANDARD_WEIGHT = 400_000;
/** Core's MAX_STANDARD_TX_SIGOPS_COST. */
export const MAX_STANDARD_SIGOPS_COST = 16_000;
/** Core's DEFAULT_BYTES_PER_SIGOP. */
export const BYTES_PER_SIGOP = 20;
/** Core's MAX_OP_RETURN_RELAY (v28): the whole OP_RETURN script. */
export const MAX_OP_RETURN_RELAY = 83;

/** CFeeRate::GetFee: fee for `size` vbytes at `satPerKvB`, rounded up (at least 1 sat for a positive rate). */
export function feeForSize(satPerKvB: number, size: number): number {
  const fee = Math.ceil(satPerKvB * size / 1000);
  return fee === 0 && size > 0 && satPerKvB > 0 ? 1 : fee;
}

/** Core's GetDustThreshold for an output, in sats (0 for unspendable OP_RETURN outputs). */
export function dustThreshold(script: Uint8Array): number {
  if (script.length > 0 && script[0] === 0x6a) return 0;
  if (script.length > 10_000) return 0;
  const lenSize = script.length < 0xfd ? 1 : script.length <= 0xffff ? 3 : 5;
  let size = 8 + lenSize + script.length;
  // Spending a witness program costs 32+4+1+(107/4)+4 vbytes, anything else 32+4+1+107+4.
  size += witnessProgram(script) !== null ? 32 + 4 + 1 + 26 + 4 : 32 + 4 + 1 + 107 + 4;
  return feeForSize(DUST_RELAY_FEE, size);
}

/** Core's FormatMoney: "-1.5" style with at least two decimals ("0.0001", "1.00"). */
export function formatMoney(sats: number): string {
  const neg = sats < 0;
  const abs = Math.abs(sats);
  const whole = Math.floor(abs / 1e8);
  let frac = String(abs % 1e8).padStart(8, "0");
  while (frac.length > 2 && frac.endsWith("0")) frac = frac.slice(0, -1);
  return `${neg ? "-" : ""}${whole}.${frac}`;
}

// CScript::GetSigOpCount: CHECKSIG(VERIFY) counts 1; CHECKMULTISIG(VERIFY) counts the preceding OP_n when
// `accurate`, else 20.
function countSigops(script: Uint8Array, accurate: boolean): number {
  let n = 0;
  let last = 0xff;
  for (let pos = 0; pos < script.length;) {
    const op = readOp(script, pos);
    if (op === null) break;
    if (op.opcode === 0xac || op.opcode === 0xad) n += 1;
    else if (op.opcode === 0xae || op.opcode === 0xaf) {
      n += accurate && last >= 0x51 && last <= 0x60 ? last - 0x50 : 20;
    }
    last = op.opcode;
    pos = op.end;
  }
  return n;
}

function lastPush(script: Uint8Array): Uint8Array | null {
  let data: Uint8Array | null = null;
  for (let pos = 0; pos < script.length;) {
    const op = readOp(script, pos);
    if (op === null || op.opcode > 0x60) return null; // not push-only
    data = op.data;
    pos = op.end;
  }
  return data;
}

function witnessSigops(program: { version: number; program: Uint8Array }, stack: Uint8Array[]): number {
  if (program.version !== 0) return 0;
  if (program.program.length === 20) return 1;
  if (program.program.length === 32 && stack.length > 0) return countSigops(stack[stack.length - 1], true);
  return 0;
}

/** GetTransactionSigOpCost: legacy ×4, P2SH ×4 and witness ×1, given the scripts the inputs spend. */
export function sigopCost(tx: Transaction, prevScripts: Uint8Array[]): number {
  let legacy = 0;
  for (const i of tx.inputs) legacy += countSigops(i.scriptSig, false);
  for (const o of tx.outputs) legacy += countSigops(o.script, false);
  let cost = legacy * 4;
  tx.inputs.forEach((input, k) => {
    const prev = prevScripts[k];
    const stack = tx.witnesses?.[k] ?? [];
    const isP2sh = prev.length === 23 && prev[0] === 0xa9 && prev[1] === 20 && prev[22] === 0x87;
    if (isP2sh) {
      const redeem = lastPush(input.scriptSig);
      if (redeem !== null) {
        cost += 4 * countSigops(redeem, true);
        const wp = witnessProgram(redeem);
        if (wp !== null) cost += witnessSigops(wp, stack);
      }
      return;
    }
    const wp = witnessProgram(prev);
    if (wp !== null) cost += witnessSigops(wp, stack);
  });
  return cost;
}

/** GetVirtualTransactionSize with the sigop adjustment the mempool uses. */
export function adjustedVsize(weight: number, sigops: number): number {
  return Math.ceil(Math.max(weight, sigops * BYTES_PER_SIGOP) / 4);
}

/**
 * IsStandardTx's checks that matter for simnet's traffic, returning Core's reject reason or null:
 * version, tx-size, scriptsig-size, scriptsig-not-pushonly, scriptpubkey, dust, multi-op-return.
 */
export function standardnessError(tx: Transaction): string | null {
  if (tx.version < 1 || tx.version > 3) return "version";
  if (tx.weight > MAX_STANDARD_WEIGHT) return "tx-size";
  for (const i of tx.inputs) {
    if (i.scriptSig.length > 1650) return "scriptsig-size";
    if (i.scriptSig.length > 0 && lastPush(i.scriptSig) === null) return "scriptsig-not-pushonly";
  }
  let dataOutputs = 0;
  for (const o of tx.outputs) {
    const type = classifyScript(o.script);
    if (type === "nonstandard") return "scriptpubkey";
    if (type === "nulldata") {
      if (o.script.length > MAX_OP_RETURN_RELAY) return "scriptpubkey";
      dataOutputs++;
    } else if (o.value < dustThreshold(o.script)) return "dust";
  }
  if (dataOutputs > 1) return "multi-op-return";
  return null;
}

/** Core's MAX_MONEY, in satoshis. */
export const MAX_MONEY = 21_000_000 * 100_000_000;

/** An output a transaction spends, as acceptance needs it. */
export interface SpentCoin {
  value: number;
  script: Uint8Array;
  /** Confirmed at (or, for a mempool parent, the next block's height). */
  height: number;
  coinbase: boolean;
  /** The mempool parent's txid key (hex), when the coin is unconfirmed. */
  parent?: string;
}

/** A mempool transaction as the chain limits see it. */
export interface PoolNode {
  vsize: number;
  parents: Iterable<string>;
  children: Iterable<string>;
}

/** What acceptance looks up: the chain tip, the mempool's spends and the outputs inputs name. */
export interface AcceptanceView {
  /** Height of the block that would confirm the transaction. */
  spendHeight: number;
  /** Median time past of the tip, for time locks. */
  medianTime: number;
  /** The mempool transaction (its key, internal-order txid hex) that already spends this outpoint, if any. */
  spender(txid: Uint8Array, vout: number): string | undefined;
  /**
   * Whether a conflict may be a replacement (single transactions, full RBF as in Core 28) or is refused
   * outright (testmempoolaccept of several transactions: "bip125-replacement-disallowed").
   */
  allowReplacement: boolean;
  /** A mempool transaction by key: its size and its in-mempool parents and children (undefined if absent). */
  poolEntry(key: string): PoolNode | undefined;
  /**
   * The chain limits' two allowances (CPFP carve-out, single-replacement) apply to single transactions only;
   * Core turns them off for packages (m_allow_carveouts).
   */
  allowCarveouts: boolean;
  /** The unspent output, confirmed or in the mempool (never an unspendable one), or undefined. */
  coin(txid: Uint8Array, vout: number): SpentCoin | undefined;
}

/**
 * Acceptance's verdict: fee, size, parents and the mempool transactions it conflicts with (to be checked as a
 * replacement with checkReplacement), or Core's reject code and reason.
 */
export type Acceptance =
  | { ok: true; fee: number; vsize: number; sigops: number; parents: Set<string>; conflicts: Set<string> }
  | Rejection;

/** Core's reject: the RPC error code and the message sendrawtransaction shows (reason, then details). */
export type Rejection = { ok: false; code: number; reason: string };

/**
 * Core's mempool acceptance without scripts, in Core's order (CheckTransaction, IsStandardTx, finality,
 * conflicts, coins present, CheckTxInputs, sigops, relay fee). The checks that need the node's state (already
 * known, outputs already in the UTXO set) are the caller's. sendrawtransaction and testmempoolaccept share it.
 */
export function checkAcceptance(tx: Transaction, view: AcceptanceView): Acceptance {
  const no = (reason: string, code: number = RPC.VERIFY_REJECTED) => ({ ok: false as const, code, reason });
  // CheckTransaction
  if (tx.outputs.length === 0) return no("bad-txns-vout-empty");
  let valueOut = 0;
  for (const o of tx.outputs) {
    if (o.value < 0) return no("bad-txns-vout-negative");
    if (o.value > MAX_MONEY) return no("bad-txns-vout-toolarge");
    valueOut += o.value;
    if (valueOut > MAX_MONEY) return no("bad-txns-txouttotal-toolarge");
  }
  const seen = new Set<string>();
  for (const i of tx.inputs) {
    const k = `${toHex(i.prevTxid)}:${i.prevVout}`;
    if (seen.has(k)) return no("bad-txns-inputs-duplicate");
    seen.add(k);
  }
  if (isCoinbase(tx)) return no("coinbase");
  if (tx.inputs.some((i) => i.prevVout === 0xffffffff && i.prevTxid.every((b) => b === 0))) {
    return no("bad-txns-prevout-null");
  }
  // Policy
  const nonStandard = standardnessError(tx);
  if (nonStandard !== null) return no(nonStandard);
  if (tx.baseSize < 65) return no("tx-size-small");
  const spendHeight = view.spendHeight;
  if (tx.locktime !== 0 && tx.inputs.some((i) => i.sequence !== 0xffffffff)) {
    const limit = tx.locktime < 500_000_000 ? spendHeight : view.medianTime;
    if (tx.locktime >= limit) return no("non-final");
  }
  const conflicts = new Set<string>();
  for (const i of tx.inputs) {
    const spender = view.spender(i.prevTxid, i.prevVout);
    if (spender === undefined) continue;
    if (!view.allowReplacement) return no("bip125-replacement-disallowed");
    conflicts.add(spender);
  }
  // Every input's coin first (a missing one is reported before any other input's problem), then their values.
  const coins: SpentCoin[] = [];
  const parents = new Set<string>();
  for (const i of tx.inputs) {
    const c = view.coin(i.prevTxid, i.prevVout);
    if (c === undefined) return no("bad-txns-inputs-missingorspent", RPC.VERIFY_ERROR);
    if (c.parent !== undefined) parents.add(c.parent);
    coins.push(c);
  }
  let valueIn = 0;
  for (const c of coins) {
    if (c.coinbase && spendHeight - c.height < COINBASE_MATURITY) {
      return no(
        `bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth ${spendHeight - c.height}`,
      );
    }
    valueIn += c.value;
  }
  if (valueIn < valueOut) {
    return no(
      `bad-txns-in-belowout, value in (${formatMoney(valueIn)}) < value out (${formatMoney(valueOut)})`,
    );
  }
  const sigops = sigopCost(tx, coins.map((c) => c.script));
  if (sigops > MAX_STANDARD_SIGOPS_COST) return no(`bad-txns-too-many-sigops, ${sigops}`);
  const vsize = adjustedVsize(tx.weight, sigops);
  const fee = valueIn - valueOut;
  const minFee = feeForSize(MIN_RELAY_FEE, vsize);
  if (fee < minFee) return no(`min relay fee not met, ${fee} < ${minFee}`);
  const chain = chainLimitsError(parents, vsize, conflicts, view);
  if (chain !== null) return no(`too-long-mempool-chain, ${chain}`);
  if (conflicts.size > 0) {
    // Spending an output of a transaction it replaces (or of one of that one's descendants) would leave it
    // without its inputs (Core: EntriesAndTxidsDisjoint, over the ancestors in txid order).
    const ancestors = new Set<string>();
    const stack = [...parents];
    while (stack.length > 0) {
      const k = stack.pop()!;
      if (ancestors.has(k)) continue;
      ancestors.add(k);
      for (const p of view.poolEntry(k)?.parents ?? []) stack.push(p);
    }
    const spent = byTxid(ancestors).find((k) => conflicts.has(k));
    if (spent !== undefined) {
      return no(
        `bad-txns-spends-conflicting-tx, ${toHexReversed(tx.txid)} spends conflicting transaction ${
          displayKey(spent)
        }`,
      );
    }
  }
  return { ok: true, fee, vsize, sigops, parents, conflicts };
}

/** -limitancestorcount / -limitdescendantcount defaults. */
const CHAIN_COUNT_LIMIT = 25;
/** -limitancestorsize / -limitdescendantsize defaults (101 kvB). */
const CHAIN_SIZE_LIMIT = 101_000;
/** A child this small may exceed a parent's descendant limits by one (Core's CPFP carve-out). */
const EXTRA_DESCENDANT_TX_SIZE_LIMIT = 10_000;

interface ChainLimits {
  ancestorCount: number;
  ancestorSize: number;
  descendantCount: number;
  descendantSize: number;
}

/**
 * Core's mempool chain limits for a new transaction (CalculateMemPoolAncestors in PreChecks), with its two
 * relaxations: a replacement of a single transaction does not count that one and its descendants, and a small
 * transaction with a single unconfirmed ancestor may be one descendant over the limit (the CPFP carve-out).
 * Returns the message after "too-long-mempool-chain, ", or null.
 */
function chainLimitsError(
  parents: ReadonlySet<string>,
  vsize: number,
  conflicts: ReadonlySet<string>,
  view: AcceptanceView,
): string | null {
  const limits: ChainLimits = {
    ancestorCount: CHAIN_COUNT_LIMIT,
    ancestorSize: CHAIN_SIZE_LIMIT,
    descendantCount: CHAIN_COUNT_LIMIT,
    descendantSize: CHAIN_SIZE_LIMIT,
  };
  if (view.allowCarveouts && conflicts.size === 1) {
    const [only] = conflicts;
    limits.descendantCount += 1;
    limits.descendantSize += descendantTotals(only, view).size;
  }
  const error = ancestorLimitsError(parents, vsize, limits, view);
  if (error === null || !view.allowCarveouts || vsize > EXTRA_DESCENDANT_TX_SIZE_LIMIT) return error;
  const carveOut: ChainLimits = {
    ancestorCount: 2,
    ancestorSize: limits.ancestorSize,
    descendantCount: limits.descendantCount + 1,
    descendantSize: limits.descendantSize + EXTRA_DESCENDANT_TX_SIZE_LIMIT,
  };
  return ancestorLimitsError(parents, vsize, carveOut, view) === null ? null : error;
}

/** Core's CalculateAncestorsAndCheckLimits: ancestors visited in txid order, each checked as it is reached. */
function ancestorLimitsError(
  parents: ReadonlySet<string>,
  vsize: number,
  limits: ChainLimits,
  view: AcceptanceView,
): string | null {
  if (parents.size + 1 > limits.ancestorCount) {
    return `too many unconfirmed parents [limit: ${limits.ancestorCount}]`;
  }
  const ancestors = new Set<string>();
  const staged = new Set<string>(parents);
  let totalSize = vsize;
  while (staged.size > 0) {
    const key = [...staged].sort()[0];
    staged.delete(key);
    ancestors.add(key);
    const entry = view.poolEntry(key);
    if (entry === undefined) continue;
    totalSize += entry.vsize;
    const family = descendantTotals(key, view);
    if (family.size + vsize > limits.descendantSize) {
      return `exceeds descendant size limit for tx ${displayKey(key)} [limit: ${limits.descendantSize}]`;
    }
    if (family.count + 1 > limits.descendantCount) {
      return `too many descendants for tx ${displayKey(key)} [limit: ${limits.descendantCount}]`;
    }
    if (totalSize > limits.ancestorSize) return `exceeds ancestor size limit [limit: ${limits.ancestorSize}]`;
    for (const p of entry.parents) {
      if (!ancestors.has(p)) staged.add(p);
      if (staged.size + ancestors.size + 1 > limits.ancestorCount) {
        return `too many unconfirmed ancestors [limit: ${limits.ancestorCount}]`;
      }
    }
  }
  return null;
}

/** A mempool transaction with all its descendants: how many, and their total vsize. */
function descendantTotals(key: string, view: AcceptanceView): { count: number; size: number } {
  const family = descendantsOf(key, (k) => view.poolEntry(k));
  let size = 0;
  for (const k of family) size += view.poolEntry(k)!.vsize;
  return { count: family.size, size };
}

/** Transactions one replacement may evict, counting each direct conflict with its descendants (Core's rule 5). */
export const MAX_REPLACEMENT_CANDIDATES = 100;
/** -incrementalrelayfee's default (sat/kvB): what a replacement must add per vbyte of its own. */
export const INCREMENTAL_RELAY_FEE = 1000;

/** One mempool transaction as checkReplacement needs it. */
export interface ReplacedEntry {
  fee: number;
  vsize: number;
  /** Keys of the transactions its inputs spend (confirmed ones too). */
  inputTxids: Iterable<string>;
  /** Keys of its in-mempool children. */
  children: Iterable<string>;
}

/**
 * Core's ReplacementChecks under full RBF (the default since v28), in its order: a higher feerate than each
 * direct conflict, at most MAX_REPLACEMENT_CANDIDATES evicted, no unconfirmed input its conflicts did not
 * already spend, and fees covering everything evicted plus its own relay. Returns the keys it evicts.
 */
export function checkReplacement(
  tx: Transaction,
  fee: number,
  vsize: number,
  conflicts: ReadonlySet<string>,
  /** A mempool transaction by key; undefined when it is not in the mempool. */
  entry: (key: string) => ReplacedEntry | undefined,
): { ok: true; replaced: Set<string> } | Rejection {
  const no = (reason: string) => ({ ok: false as const, code: RPC.VERIFY_REJECTED, reason });
  const txid = toHexReversed(tx.txid);
  const rate = feeRate(fee, vsize);
  // Core keeps conflicts in sets ordered by txid, so the first one to fail a rule is the lowest txid's.
  const direct = byTxid(conflicts);
  for (const k of direct) {
    const c = entry(k)!;
    const old = feeRate(c.fee, c.vsize);
    if (rate <= old) {
      return no(
        `insufficient fee, rejecting replacement ${txid}; new feerate ${formatFeeRate(rate)} <= old feerate ${
          formatFeeRate(old)
        }`,
      );
    }
  }
  const replaced = new Set<string>();
  let candidates = 0;
  for (const k of direct) {
    const family = descendantsOf(k, entry);
    candidates += family.size;
    if (candidates > MAX_REPLACEMENT_CANDIDATES) {
      return no(
        `too many potential replacements, rejecting replacement ${txid}; too many potential replacements (${candidates} > ${MAX_REPLACEMENT_CANDIDATES})`,
      );
    }
    for (const d of family) replaced.add(d);
  }
  const spentByReplaced = new Set<string>();
  for (const k of replaced) for (const t of entry(k)!.inputTxids) spentByReplaced.add(t);
  for (let j = 0; j < tx.inputs.length; j++) {
    const parent = toHex(tx.inputs[j].prevTxid);
    if (!spentByReplaced.has(parent) && entry(parent) !== undefined) {
      return no(`replacement-adds-unconfirmed, replacement ${txid} adds unconfirmed input, idx ${j}`);
    }
  }
  let replacedFees = 0;
  for (const k of replaced) replacedFees += entry(k)!.fee;
  if (fee < replacedFees) {
    return no(
      `insufficient fee, rejecting replacement ${txid}, less fees than conflicting txs; ${
        formatMoney(fee)
      } < ${formatMoney(replacedFees)}`,
    );
  }
  const relay = feeForSize(INCREMENTAL_RELAY_FEE, vsize);
  if (fee - replacedFees < relay) {
    return no(
      `insufficient fee, rejecting replacement ${txid}, not enough additional fees to relay; ${
        formatMoney(fee - replacedFees)
      } < ${formatMoney(relay)}`,
    );
  }
  return { ok: true, replaced };
}

/** A mempool transaction and every in-mempool descendant of it (keys `entry` does not know are left out). */
function descendantsOf(
  key: string,
  entry: (key: string) => { children: Iterable<string> } | undefined,
): Set<string> {
  const out = new Set<string>();
  const stack = [key];
  while (stack.length > 0) {
    const k = stack.pop()!;
    if (out.has(k)) continue;
    const e = entry(k);
    if (e === undefined) continue;
    out.add(k);
    for (const c of e.children) stack.push(c);
  }
  return out;
}

/** CFeeRate(fee, size): sat per 1,000 vbytes, truncated. */
function feeRate(fee: number, vsize: number): number {
  return vsize > 0 ? Math.floor((fee * 1000) / vsize) : 0;
}

/** CFeeRate::ToString(): "0.00001000 BTC/kvB". */
function formatFeeRate(satPerKvB: number): string {
  return `${Math.floor(satPerKvB / 1e8)}.${String(satPerKvB % 1e8).padStart(8, "0")} BTC/kvB`;
}

/** Keys (internal-order hex) in the order of Core's txid sets: their bytes compared in order. */
function byTxid(keys: Iterable<string>): string[] {
  return [...keys].sort();
}

/** A key (internal-order hex) as Core prints txids. */
function displayKey(key: string): string {
  return toHexReversed(fromHex(key));
}
