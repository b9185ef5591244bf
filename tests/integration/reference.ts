// The naive reference model the integration tests judge the indexer by. It replays raw blocks with plain Maps
// keyed by hex strings and hashes scripts with node:crypto, sharing nothing with the block processor or the
// store except the transaction parser (parseBlock), so a bug in the indexer's caches, key layout or undo
// logic cannot hide by being repeated here. Scripts are hashed with @noble/hashes directly, not through the
// processor's own SHA-256.
import { sha256 } from "@noble/hashes/sha2.js";
import { parseBlock } from "../../src/chain/block.ts";
import { fromHex, toHex } from "../../src/chain/hex.ts";
import type { Store } from "../../src/db/store.ts";

/** One unspent output as the model tracks it; txid/hashX are hex of internal byte order. */
export interface RefUtxo {
  hashX: string;
  txid: string;
  vout: number;
  height: number;
  value: number;
  txNum: number;
}

/** A confirmed transaction's place in the model's chain. */
export interface RefTx {
  height: number;
  index: number;
  txNum: number;
}

// Outputs not indexed, as ElectrumX (protocol.md §4.2): scripts starting OP_RETURN, or OP_0 then OP_RETURN.
const OP_RETURN = 0x6a;

function unindexed(script: Uint8Array): boolean {
  return script[0] === OP_RETURN || (script[0] === 0 && script[1] === OP_RETURN);
}

/** hashX of an output script: the first 11 bytes of its SHA-256, as hex. */
export function refHashX(script: Uint8Array): string {
  return toHex(sha256(script).subarray(0, 11));
}

/** The expected answers for a chain, built block by block. */
export class ChainReference {
  /** Height of the last applied block (-1 before genesis). */
  height = -1;
  txCount = 0;
  readonly headers: Uint8Array[] = [];
  /** Block hashes, hex of internal order, by height. */
  readonly blockHashes: string[] = [];
  readonly txs = new Map<string, RefTx>();
  /** hashX → [txid, height] in chain order, each transaction once. */
  readonly history = new Map<string, [string, number][]>();
  /** hashX → outpoint ("txid:vout") → output. */
  private readonly unspentByOwner = new Map<string, Map<string, RefUtxo>>();
  private readonly unspent = new Map<string, RefUtxo>();

  /** Builds the model of `raws` (genesis first). */
  static of(raws: readonly Uint8Array[]): ChainReference {
    const ref = new ChainReference();
    for (const raw of raws) ref.apply(raw);
    return ref;
  }

  /** Applies the next block; throws if it does not build on the model's tip or spends a missing output. */
  apply(raw: Uint8Array): void {
    const block = parseBlock(raw);
    const height = this.height + 1;
    const prev = toHex(block.header.prevHash);
    if (height > 0 && prev !== this.blockHashes[height - 1]) {
      throw new Error(`reference: block ${height} does not build on ${this.blockHashes[height - 1]}`);
    }
    block.txs.forEach((tx, index) => {
      const txid = toHex(tx.txid);
      if (this.txs.has(txid)) throw new Error(`reference: duplicate txid ${txid} (BIP30) is not modelled`);
      const txNum = this.txCount++;
      this.txs.set(txid, { height, index, txNum });
      const touched = new Set<string>();
      if (index > 0) {
        for (const input of tx.inputs) {
          const key = `${toHex(input.prevTxid)}:${input.prevVout}`;
          const spent = this.unspent.get(key);
          if (spent === undefined) throw new Error(`reference: block ${height} spends missing ${key}`);
          this.unspent.delete(key);
          this.unspentByOwner.get(spent.hashX)!.delete(key);
          touched.add(spent.hashX);
        }
      }
      tx.outputs.forEach((out, vout) => {
        if (unindexed(out.script)) {
          return;
        }
        const hashX = refHashX(out.script);
        const utxo: RefUtxo = { hashX, txid, vout, height, value: out.value, txNum };
        const key = `${txid}:${vout}`;
        this.unspent.set(key, utxo);
        let mine = this.unspentByOwner.get(hashX);
        if (mine === undefined) this.unspentByOwner.set(hashX, mine = new Map());
        mine.set(key, utxo);
        touched.add(hashX);
      });
      for (const hashX of touched) {
        let items = this.history.get(hashX);
        if (items === undefined) this.history.set(hashX, items = []);
        items.push([txid, height]);
      }
    });
    this.headers.push(raw.slice(0, 80));
    this.blockHashes.push(toHex(block.hash));
    this.height = height;
  }

  /** Count and total value of the unspent (indexed) outputs. */
  utxoStats(): { count: number; totalValue: number } {
    let totalValue = 0;
    for (const u of this.unspent.values()) totalValue += u.value;
    return { count: this.unspent.size, totalValue };
  }

  /** Every hashX that ever received an output. */
  hashXs(): string[] {
    return [...this.history.keys()];
  }

  /** Unspent outputs of `hashX` in chain order. */
  utxosOf(hashX: string): RefUtxo[] {
    const mine = [...(this.unspentByOwner.get(hashX)?.values() ?? [])];
    return mine.sort((a, b) => a.txNum - b.txNum || a.vout - b.vout);
  }

  /** Confirmed balance of `hashX`. */
  balanceOf(hashX: string): number {
    let sum = 0;
    for (const u of this.unspentByOwner.get(hashX)?.values() ?? []) sum += u.value;
    return sum;
  }
}

/** What compareStore checks beyond the model's own hashXs and txids. */
export interface CompareOptions {
  /** hashXs to query as well; those the model does not know must have no history, UTXOs or balance. */
  extraHashXs?: Iterable<string>;
  /** Txids (hex, internal order) that must not be found. */
  absentTxids?: Iterable<string>;
  /** Check only this many hashXs and txids, picked with `pick` (for cheap checks between crashes). */
  sample?: { count: number; pick: (n: number) => number };
  /** Most mismatches to report. */
  maxReports?: number;
}

/**
 * Asks `store` everything the model knows and returns a description of each disagreement (empty when the store
 * answers exactly like the model): state, headers, history, UTXOs and balance of every hashX, and findTx.
 */
export async function compareStore(
  store: Store,
  ref: ChainReference,
  opts: CompareOptions = {},
): Promise<string[]> {
  const bad: string[] = [];
  const max = opts.maxReports ?? 12;
  const report = (msg: string) => {
    if (bad.length < max) bad.push(msg);
  };
  const s = store.state;
  if (s.height !== ref.height) report(`height ${s.height}, expected ${ref.height}`);
  if (s.txCount !== ref.txCount) report(`tx count ${s.txCount}, expected ${ref.txCount}`);
  if (ref.height >= 0 && toHex(s.tipHash) !== ref.blockHashes[ref.height]) {
    report(`tip ${toHex(s.tipHash)}, expected ${ref.blockHashes[ref.height]}`);
  }
  const headers = store.headers(0, ref.height + 2);
  if (headers.length !== (ref.height + 1) * 80) {
    report(`headers: ${headers.length} bytes, expected ${(ref.height + 1) * 80}`);
  } else {
    for (let h = 0; h <= ref.height; h++) {
      if (toHex(headers.subarray(h * 80, h * 80 + 80)) !== toHex(ref.headers[h])) {
        report(`header ${h} differs`);
        break;
      }
    }
  }

  let hashXs = ref.hashXs();
  let txids = [...ref.txs.keys()];
  if (opts.sample) {
    hashXs = pickSome(hashXs, opts.sample.count, opts.sample.pick);
    txids = pickSome(txids, opts.sample.count, opts.sample.pick);
  }
  const known = new Set(ref.history.keys());
  for (const h of opts.extraHashXs ?? []) if (!known.has(h)) hashXs.push(h);

  // Independent reads, a few in flight at once: the store serves concurrent readers.
  await inParallel(hashXs, 32, async (hx) => {
    const key = fromHex(hx);
    const [history, utxos, balance] = await Promise.all([
      store.history(key),
      store.utxos(key),
      store.balance(key),
    ]);
    const gotH = history.map((i) => `${toHex(i.txHash)}@${i.height}`).join(" ");
    const wantH = (ref.history.get(hx) ?? []).map(([t, h]) => `${t}@${h}`).join(" ");
    if (gotH !== wantH) report(`history of ${hx}: got [${gotH}], expected [${wantH}]`);
    const gotU = utxos.map((u) => `${toHex(u.txHash)}:${u.vout}@${u.height}=${u.value}`).join(" ");
    const wantU = ref.utxosOf(hx).map((u) => `${u.txid}:${u.vout}@${u.height}=${u.value}`).join(" ");
    if (gotU !== wantU) report(`utxos of ${hx}: got [${gotU}], expected [${wantU}]`);
    const wantB = ref.balanceOf(hx);
    if (balance !== wantB) report(`balance of ${hx}: got ${balance}, expected ${wantB}`);
  });
  await inParallel(txids, 32, async (txid) => {
    const loc = await store.findTx(fromHex(txid));
    const want = ref.txs.get(txid)!;
    if (
      loc === undefined || loc.height !== want.height || loc.index !== want.index || loc.txNum !== want.txNum
    ) {
      report(`findTx ${txid}: got ${JSON.stringify(loc)}, expected ${JSON.stringify(want)}`);
    }
  });
  await inParallel([...(opts.absentTxids ?? [])], 16, async (txid) => {
    if (ref.txs.has(txid)) return;
    const loc = await store.findTx(fromHex(txid));
    if (loc !== undefined) report(`findTx ${txid}: got ${JSON.stringify(loc)}, expected not found`);
  });
  return bad;
}

function pickSome<T>(all: T[], count: number, pick: (n: number) => number): T[] {
  if (all.length <= count) return all;
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(all[pick(all.length)]);
  return out;
}

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
