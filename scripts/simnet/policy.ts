// The parts of Bitcoin Core's relay policy simnet's mempool applies: dust, standard outputs, sigop cost
// and the sigop-adjusted virtual size, and FormatMoney for reject messages.
import { classifyScript, readOp, witnessProgram } from "../../src/chain/script.ts";
import type { Transaction } from "../../src/chain/tx.ts";

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
