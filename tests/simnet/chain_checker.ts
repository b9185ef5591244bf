// An independent consensus checker for simnet chains, shared by the generator and node tests. It parses
// with src/chain and re-derives every rule itself; it never calls simnet code.
import { parseBlock } from "../../src/chain/block.ts";
import { sha256d } from "../../src/chain/hash.ts";
import { checkProofOfWork, parseHeader } from "../../src/chain/header.ts";
import { toHex } from "../../src/chain/hex.ts";
import { merkleRoot } from "../../src/chain/merkle.ts";
import { blockSubsidy, NETWORKS } from "../../src/chain/network.ts";
import { isUnspendable } from "../../src/chain/script.ts";
import { isCoinbase, type Transaction, wtxid } from "../../src/chain/tx.ts";

/** One unspent output in the checker's own UTXO map. */
export interface CheckerCoin {
  value: number;
  script: Uint8Array;
  height: number;
  coinbase: boolean;
}

/** Key of an outpoint in the checker's map. */
export function outpointKey(txid: Uint8Array, vout: number): string {
  return `${toHex(txid)}:${vout}`;
}

function bip34(height: number): Uint8Array {
  if (height >= 1 && height <= 16) return Uint8Array.of(0x50 + height);
  const b: number[] = [];
  for (let h = height; h > 0; h = Math.floor(h / 256)) b.push(h & 0xff);
  if (b[b.length - 1] & 0x80) b.push(0);
  return Uint8Array.of(b.length, ...b);
}

function legacySigops(script: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < script.length;) {
    const op = script[i++];
    if (op >= 1 && op <= 0x4b) i += op;
    else if (op === 0x4c) i += 1 + script[i];
    else if (op === 0x4d) i += 2 + (script[i] | (script[i + 1] << 8));
    else if (op === 0x4e) break;
    else if (op === 0xac || op === 0xad) n += 1;
    else if (op === 0xae || op === 0xaf) n += 20;
  }
  return n;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Result of checking a chain: the final UTXO map and per-block facts the tests look at. */
export interface CheckedChain {
  utxos: Map<string, CheckerCoin>;
  blocks: { height: number; weight: number; txs: Transaction[]; fees: number }[];
}

/**
 * Checks raw blocks 0..n (block 0 must be regtest's genesis) against Core's consensus rules except
 * scripts: PoW and bits, prev links, merkle root, witness commitment, BIP34, timestamps above the median
 * of the last 11, subsidy + fees, inputs that exist/unspent/mature, no double spends, finality, weight
 * and (legacy-counted) sigops. Throws an Error naming the block and rule on the first violation.
 */
export function checkChain(raws: Uint8Array[]): CheckedChain {
  const net = NETWORKS.regtest;
  const utxos = new Map<string, CheckerCoin>();
  const times: number[] = [];
  const blocks: CheckedChain["blocks"] = [];
  let prev: Uint8Array | null = null;
  for (let height = 0; height < raws.length; height++) {
    const fail = (msg: string): never => {
      throw new Error(`block ${height}: ${msg}`);
    };
    const raw = raws[height];
    const b = parseBlock(raw);
    const hash = sha256d(raw.subarray(0, 80));
    if (height === 0) {
      if (!equal(hash, net.genesisHash)) fail("not the regtest genesis block");
      prev = hash;
      times.push(parseHeader(raw).time);
      blocks.push({ height, weight: b.weight, txs: b.txs, fees: 0 });
      continue; // the genesis coinbase output is not spendable
    }
    const h = b.header;
    if (!equal(h.prevHash, prev!)) fail("prev hash does not link");
    if (h.bits !== 0x207fffff) fail(`bits ${h.bits.toString(16)}`);
    if (!checkProofOfWork(hash, h.bits)) fail("proof of work");
    const mtp = [...times.slice(-11)].sort((x, y) => x - y)[Math.floor(Math.min(11, times.length) / 2)];
    if (h.time <= mtp) fail(`time ${h.time} not above median time past ${mtp}`);
    if (h.time <= times[times.length - 1]) fail("time not strictly increasing");
    if (!equal(merkleRoot(b.txs.map((t) => t.txid)), h.merkleRoot)) fail("merkle root");
    if (b.weight > 4_000_000) fail(`weight ${b.weight}`);
    const cb = b.txs[0];
    if (!isCoinbase(cb)) fail("first tx is not a coinbase");
    const push = bip34(height);
    if (!equal(cb.inputs[0].scriptSig.subarray(0, push.length), push)) fail("BIP34 height");
    const ssLen = cb.inputs[0].scriptSig.length;
    if (ssLen < 2 || ssLen > 100) fail("coinbase scriptSig size");

    // Witness commitment: required when any tx has a witness.
    if (b.txs.some((t) => t.witnesses !== null)) {
      let commitment: Uint8Array | null = null;
      for (const o of cb.outputs) {
        const s = o.script;
        if (
          s.length >= 38 && s[0] === 0x6a && s[1] === 0x24 && s[2] === 0xaa && s[3] === 0x21 &&
          s[4] === 0xa9 &&
          s[5] === 0xed
        ) commitment = s.subarray(6, 38);
      }
      if (commitment === null) fail("missing witness commitment");
      const reserved = cb.witnesses?.[0];
      if (!reserved || reserved.length !== 1 || reserved[0].length !== 32) {
        fail("coinbase witness reserved value");
      }
      const leaves = b.txs.map((t, i) => (i === 0 ? new Uint8Array(32) : wtxid(t)));
      const joined = new Uint8Array(64);
      joined.set(merkleRoot(leaves));
      joined.set(reserved![0], 32);
      if (!equal(sha256d(joined), commitment!)) fail("witness commitment");
    } else if (cb.witnesses !== null) fail("coinbase witness without witness txs");

    let fees = 0;
    let sigops = 0;
    for (let i = 0; i < b.txs.length; i++) {
      const tx = b.txs[i];
      const txFail = (msg: string) => fail(`tx ${i} ${toHex(tx.txid)}: ${msg}`);
      for (const o of tx.outputs) sigops += 4 * legacySigops(o.script);
      for (const inp of tx.inputs) sigops += 4 * legacySigops(inp.scriptSig);
      if (i > 0 && isCoinbase(tx)) txFail("second coinbase");
      if (
        tx.locktime !== 0 && tx.locktime < 500_000_000 && tx.locktime >= height &&
        tx.inputs.some((x) => x.sequence !== 0xffffffff)
      ) txFail("non-final locktime");
      let outSum = 0;
      for (const o of tx.outputs) {
        if (!Number.isSafeInteger(o.value) || o.value < 0 || o.value > 21e14) txFail("bad output value");
        outSum += o.value;
      }
      if (i === 0) continue;
      let inSum = 0;
      for (const inp of tx.inputs) {
        const key = outpointKey(inp.prevTxid, inp.prevVout);
        const coin = utxos.get(key);
        if (coin === undefined) txFail(`input ${key} missing or spent`);
        if (coin!.coinbase && height - coin!.height < 100) txFail(`immature coinbase spend ${key}`);
        inSum += coin!.value;
        utxos.delete(key);
      }
      if (inSum < outSum) txFail(`fee < 0 (${inSum} < ${outSum})`);
      fees += inSum - outSum;
      tx.outputs.forEach((o, vout) => {
        if (!isUnspendable(o.script)) {
          utxos.set(outpointKey(tx.txid, vout), {
            value: o.value,
            script: o.script,
            height,
            coinbase: false,
          });
        }
      });
    }
    if (sigops > 80_000) fail(`sigop cost ${sigops}`);
    const cbOut = cb.outputs.reduce((s, o) => s + o.value, 0);
    if (cbOut !== blockSubsidy(height, net) + fees) {
      fail(`coinbase pays ${cbOut}, subsidy + fees = ${blockSubsidy(height, net) + fees}`);
    }
    cb.outputs.forEach((o, vout) => {
      if (!isUnspendable(o.script)) {
        utxos.set(outpointKey(cb.txid, vout), { value: o.value, script: o.script, height, coinbase: true });
      }
    });
    times.push(h.time);
    prev = hash;
    blocks.push({ height, weight: b.weight, txs: b.txs, fees });
  }
  return { utxos, blocks };
}
