// What an Electrum server must answer for a simnet node's chain and mempool, computed independently of
// src/server, src/mempool and the Store: G's ChainReference replays the raw blocks (confirmed history, UTXOs),
// and this file adds the mempool (decoded from simnet's raw entries), full script hashes, the protocol's
// status hashes (§4.3), merkle/checkpoint proof checks (§4.4, §4.5) and ElectrumX's fee histogram. Hashing
// is @noble/hashes directly; strings are the protocol's display-order hex.
import { sha256 } from "@noble/hashes/sha2.js";
import { parseBlock } from "../../src/chain/block.ts";
import { decodeTransaction, serializeTransaction } from "../../src/chain/tx.ts";
import type { SimNode } from "../../scripts/simnet/node.ts";
import { activeChain } from "./harness.ts";
import { ChainReference } from "./reference.ts";

/** A get_history / get_mempool entry. */
export interface HistoryEntry {
  tx_hash: string;
  height: number;
  fee?: number;
}

/** A listunspent entry. */
export interface UnspentEntry {
  tx_hash: string;
  tx_pos: number;
  height: number;
  value: number;
}

/** A coin the tests may spend: internal-order txid. */
export interface Coin {
  txid: Uint8Array;
  vout: number;
  value: number;
}

interface Owned {
  hashX: string;
  value: number;
}

interface PoolTx {
  /** Display-order hex. */
  txHash: string;
  fee: number;
  /** ceil(weight / 4). */
  vsize: number;
  height: 0 | -1;
  /** Outputs to indexed scripts: hashX and value, by vout. */
  outputs: Map<number, Owned>;
  /** The outputs it spends that belong to indexed scripts. */
  spends: Owned[];
}

const OP_RETURN = 0x6a;
const HEXES = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase hex, stored order. */
export function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEXES[x];
  return s;
}

/** Lowercase hex of the bytes reversed (display order of hashes). */
export function rhex(b: Uint8Array): string {
  let s = "";
  for (let i = b.length - 1; i >= 0; i--) s += HEXES[b[i]];
  return s;
}

/** Bytes of a hex string, stored order. */
export function unhex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Internal-order bytes of a display-order hash. */
export function unrhex(s: string): Uint8Array {
  return unhex(s).reverse();
}

/** Double SHA-256. */
export function sha256d(data: Uint8Array): Uint8Array {
  return sha256(sha256(data));
}

/** The Electrum script hash of an output script (display hex of its reversed SHA-256). */
export function scripthashOf(script: Uint8Array): string {
  return rhex(sha256(script));
}

function hashXOfScripthash(sh: string): string {
  return hex(unrhex(sh).subarray(0, 11));
}

// ElectrumX's rule (protocol.md §4.2): all but scripts starting OP_RETURN, or OP_0 then OP_RETURN.
function indexed(script: Uint8Array): boolean {
  return script[0] !== OP_RETURN && !(script[0] === 0 && script[1] === OP_RETURN);
}

/** sha256 of the §4.3 status string, or null for no history. */
export function statusOf(entries: readonly HistoryEntry[]): string | null {
  if (entries.length === 0) return null;
  const text = entries.map((e) => `${e.tx_hash}:${e.height}:`).join("");
  return hex(sha256(new TextEncoder().encode(text)));
}

/** The expected Electrum answers for a node's active chain and mempool at one moment. */
export class ElectrumModel {
  readonly chain: ChainReference;
  /** hashX → script hash, for every indexed script of the chain and the mempool. */
  private readonly scripthashByHashX = new Map<string, string>();
  /** Confirmed unspent outputs by "internal txid hex:vout". */
  private readonly confirmedCoins = new Map<string, Owned & { coinbase: boolean; height: number }>();
  /** Mempool transactions by internal txid hex, in acceptance order. */
  private readonly pool = new Map<string, PoolTx>();
  /** hashX → mempool transactions touching it. */
  private readonly poolByHashX = new Map<string, PoolTx[]>();
  /** Outpoints ("internal txid hex:vout") spent by mempool transactions. */
  private readonly poolSpent = new Set<string>();
  private readonly statuses = new Map<string, string | null>();

  private constructor(readonly tipHeight: number, blocks: Uint8Array[], entries: { raw: Uint8Array }[]) {
    this.chain = ChainReference.of(blocks);
    for (const raw of blocks) {
      for (const tx of parseBlock(raw).txs) {
        for (const out of tx.outputs) if (indexed(out.script)) this.learn(out.script);
      }
    }
    for (const hashX of this.chain.hashXs()) {
      for (const u of this.chain.utxosOf(hashX)) {
        const coinbase = this.chain.txs.get(u.txid)!.index === 0;
        this.confirmedCoins.set(`${u.txid}:${u.vout}`, { hashX, value: u.value, coinbase, height: u.height });
      }
    }
    // Simnet lists its mempool in acceptance order, so parents come before their children.
    const poolOutputs = new Map<string, Owned>();
    for (const e of entries) {
      const tx = decodeTransaction(e.raw);
      const key = hex(tx.txid);
      let valueIn = 0, valueOut = 0, hasParent = false;
      const spends: Owned[] = [];
      for (const input of tx.inputs) {
        const prev = hex(input.prevTxid);
        const outpoint = `${prev}:${input.prevVout}`;
        if (this.pool.has(prev)) hasParent = true;
        const source = this.confirmedCoins.get(outpoint) ?? poolOutputs.get(outpoint);
        if (source === undefined) {
          throw new Error(`model: mempool tx ${rhex(tx.txid)} spends unknown ${outpoint}`);
        }
        valueIn += source.value;
        spends.push(source);
        this.poolSpent.add(outpoint);
      }
      const outputs = new Map<number, Owned>();
      tx.outputs.forEach((out, vout) => {
        valueOut += out.value;
        if (!indexed(out.script)) return;
        const owned = { hashX: this.learn(out.script), value: out.value };
        outputs.set(vout, owned);
        poolOutputs.set(`${key}:${vout}`, owned);
      });
      const p: PoolTx = {
        txHash: rhex(tx.txid),
        fee: valueIn - valueOut,
        vsize: Math.ceil(tx.weight / 4),
        height: hasParent ? -1 : 0,
        outputs,
        spends,
      };
      this.pool.set(key, p);
      const touched = new Set([...spends.map((s) => s.hashX), ...[...outputs.values()].map((o) => o.hashX)]);
      for (const h of touched) {
        let list = this.poolByHashX.get(h);
        if (!list) this.poolByHashX.set(h, list = []);
        list.push(p);
      }
    }
  }

  /** The model of `node` now. */
  static of(node: SimNode): ElectrumModel {
    return new ElectrumModel(node.height, activeChain(node), node.mempoolEntries());
  }

  private learn(script: Uint8Array): string {
    const digest = sha256(script);
    const hashX = hex(digest.subarray(0, 11));
    if (!this.scripthashByHashX.has(hashX)) this.scripthashByHashX.set(hashX, rhex(digest));
    return hashX;
  }

  /** Every script hash that has or had coins, confirmed or in the mempool. */
  scripthashes(): string[] {
    return [...this.scripthashByHashX.values()];
  }

  /** Number of mempool transactions, and how many of them have an unconfirmed parent. */
  mempoolStats(): { size: number; withParent: number } {
    let withParent = 0;
    for (const p of this.pool.values()) if (p.height === -1) withParent++;
    return { size: this.pool.size, withParent };
  }

  /** Confirmed history in chain order. */
  confirmedHistory(sh: string): HistoryEntry[] {
    return (this.chain.history.get(hashXOfScripthash(sh)) ?? []).map(([txid, height]) => ({
      tx_hash: rhex(unhex(txid)),
      height,
    }));
  }

  /** get_mempool: height 0 before -1, then by display txid; with fees. */
  mempool(sh: string): HistoryEntry[] {
    const list = (this.poolByHashX.get(hashXOfScripthash(sh)) ?? []).map((p) => ({
      tx_hash: p.txHash,
      height: p.height,
      fee: p.fee,
    }));
    return list.sort((a, b) =>
      b.height - a.height || (a.tx_hash < b.tx_hash ? -1 : a.tx_hash > b.tx_hash ? 1 : 0)
    );
  }

  /** get_history: confirmed then mempool. */
  history(sh: string): HistoryEntry[] {
    return [...this.confirmedHistory(sh), ...this.mempool(sh)];
  }

  /** The subscription status (§4.3). */
  status(sh: string): string | null {
    let s = this.statuses.get(sh);
    if (s === undefined) {
      s = statusOf(this.history(sh).map(({ tx_hash, height }) => ({ tx_hash, height })));
      this.statuses.set(sh, s);
    }
    return s;
  }

  /** get_balance. */
  balance(sh: string): { confirmed: number; unconfirmed: number } {
    const hashX = hashXOfScripthash(sh);
    let unconfirmed = 0;
    for (const p of this.poolByHashX.get(hashX) ?? []) {
      for (const o of p.outputs.values()) if (o.hashX === hashX) unconfirmed += o.value;
      for (const s of p.spends) if (s.hashX === hashX) unconfirmed -= s.value;
    }
    return { confirmed: this.chain.balanceOf(hashX), unconfirmed };
  }

  /** listunspent: confirmed coins not spent by the mempool in chain order, then unspent mempool outputs. */
  listunspent(sh: string): UnspentEntry[] {
    const hashX = hashXOfScripthash(sh);
    const out: UnspentEntry[] = [];
    for (const u of this.chain.utxosOf(hashX)) {
      if (this.poolSpent.has(`${u.txid}:${u.vout}`)) continue;
      out.push({ tx_hash: rhex(unhex(u.txid)), tx_pos: u.vout, height: u.height, value: u.value });
    }
    for (const [key, p] of this.pool) {
      for (const [vout, o] of p.outputs) {
        if (o.hashX !== hashX || this.poolSpent.has(`${key}:${vout}`)) continue;
        out.push({ tx_hash: p.txHash, tx_pos: vout, height: 0, value: o.value });
      }
    }
    return out;
  }

  /** A confirmed coin worth at least `minValue` that a transaction may spend now (mature, unspent). */
  spendableCoin(minValue: number): Coin & { scripthash: string } {
    for (const [key, c] of this.confirmedCoins) {
      // The genesis coinbase is indexed but, as in Core, never spendable.
      if (c.value < minValue || c.height === 0 || this.poolSpent.has(key)) continue;
      if (c.coinbase && this.tipHeight + 1 - c.height < 100) continue;
      const [txid, vout] = key.split(":");
      return {
        txid: unhex(txid),
        vout: Number(vout),
        value: c.value,
        scripthash: this.scripthashByHashX.get(c.hashX)!,
      };
    }
    throw new Error(`model: no spendable coin of ${minValue} sats`);
  }

  /** Where a confirmed transaction is (display txid). */
  location(txHash: string): { height: number; pos: number } | undefined {
    const t = this.chain.txs.get(hex(unrhex(txHash)));
    return t && { height: t.height, pos: t.index };
  }

  /** Every confirmed transaction, display txid, with its place. */
  confirmedTxs(): { txHash: string; height: number; pos: number }[] {
    return [...this.chain.txs].map(([txid, t]) => ({
      txHash: rhex(unhex(txid)),
      height: t.height,
      pos: t.index,
    }));
  }

  /** The mempool in acceptance order: display txid, fee and virtual size. */
  mempoolTxs(): { txHash: string; fee: number; vsize: number; height: number }[] {
    return [...this.pool.values()].map((p) => ({
      txHash: p.txHash,
      fee: p.fee,
      vsize: p.vsize,
      height: p.height,
    }));
  }
}

// ---- proofs -----------------------------------------------------------------------------------------------

/** The merkle root (internal order) that a branch (display hex, deepest first) proves for `leaf` at `index`. */
export function rootFromBranch(leaf: Uint8Array, branch: readonly string[], index: number): Uint8Array {
  let h = leaf;
  let pos = index;
  for (const e of branch) {
    const sibling = unrhex(e);
    const pair = new Uint8Array(64);
    if (pos & 1) {
      pair.set(sibling, 0);
      pair.set(h, 32);
    } else {
      pair.set(h, 0);
      pair.set(sibling, 32);
    }
    h = sha256d(pair);
    pos >>= 1;
  }
  return h;
}

/** The merkle root (internal order) of leaves, duplicating the last of an odd level. */
export function merkleRootOf(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) throw new Error("no leaves");
  let level = [...leaves];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) {
      const pair = new Uint8Array(64);
      pair.set(level[i], 0);
      pair.set(level[i + 1] ?? level[i], 32);
      next.push(sha256d(pair));
    }
    level = next;
  }
  return level[0];
}

/** A header's block hash, internal order. */
export function headerHash(header: Uint8Array): Uint8Array {
  return sha256d(header);
}

/** The merkle root field of an 80-byte header, internal order. */
export function headerMerkleRoot(header: Uint8Array): Uint8Array {
  return header.slice(36, 68);
}

// ---- fee histogram ----------------------------------------------------------------------------------------

/** ElectrumX's mempool.get_fee_histogram for transactions of these fees and virtual sizes (protocol.md §5). */
export function feeHistogram(txs: readonly { fee: number; vsize: number }[]): [number, number][] {
  const byRate = new Map<number, number>();
  for (const t of txs) {
    const r = Math.floor((10 * t.fee) / t.vsize) / 10;
    byRate.set(r, (byRate.get(r) ?? 0) + t.vsize);
  }
  const out: [number, number][] = [];
  let bin = 30_000, cum = 0;
  let prev: number | null = null;
  for (const r of [...byRate.keys()].sort((a, b) => b - a)) {
    const size = byRate.get(r)!;
    if (size > 2 * bin && prev !== null && cum > 0) {
      out.push([prev, cum]);
      cum = 0;
      bin *= 1.1;
    }
    cum += size;
    if (cum > bin) {
      out.push([r, cum]);
      cum = 0;
      bin *= 1.1;
    }
    prev = r;
  }
  return out;
}

// ---- transactions the tests make ---------------------------------------------------------------------------

/** A P2WPKH output script whose key hash is 20 bytes of `tag` mixed with `salt` (unique per test). */
export function p2wpkh(tag: number, salt = 0): Uint8Array {
  const s = new Uint8Array(22);
  s[1] = 20;
  for (let i = 0; i < 20; i++) s[2 + i] = (tag + i * 7 + salt * 131) & 0xff;
  return s;
}

/** A version-2 transaction spending `inputs` to `outputs` (simnet checks no signatures). */
export function spendTx<C extends { txid: Uint8Array; vout: number }>(
  inputs: readonly C[],
  outputs: readonly { value: number; script: Uint8Array }[],
): Uint8Array {
  return serializeTransaction({
    version: 2,
    locktime: 0,
    inputs: inputs.map((c) => ({
      prevTxid: c.txid,
      prevVout: c.vout,
      scriptSig: new Uint8Array(0),
      sequence: 0xfffffffd,
    })),
    outputs: [...outputs],
    witnesses: null,
  });
}

/** The display txid of a raw transaction without witness data (all the tests make). */
export function txHashOf(raw: Uint8Array): string {
  return rhex(sha256d(raw));
}
