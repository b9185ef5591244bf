// Synthetic chains for storage and processor tests, and a naive replay model computed straight from the
// generated transactions with plain Maps (never through the code under test).
import { sha256, sha256d } from "../../src/chain/hash.ts";
import { serializeHeader } from "../../src/chain/header.ts";
import { merkleRoot } from "../../src/chain/merkle.ts";
import { toHex } from "../../src/chain/hex.ts";
import { serializeTransaction } from "../../src/chain/tx.ts";

/** Deterministic PRNG (mulberry32). */
export class Rng {
  constructor(private s: number) {}
  /** Next uint32. */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) | 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  /** Random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/** A generated transaction. */
export interface SynthTx {
  inputs: { txid: Uint8Array; vout: number }[];
  outputs: { script: Uint8Array; value: number }[];
  raw: Uint8Array;
  txid: Uint8Array;
}

/** A generated block. */
export interface SynthBlock {
  height: number;
  hash: Uint8Array;
  raw: Uint8Array;
  txs: SynthTx[];
}

/** A spendable output as the generator tracks it. */
export interface Coin {
  txid: Uint8Array;
  vout: number;
  value: number;
  script: Uint8Array;
}

/** Builds a transaction; `witness` adds a dummy witness to every input (segwit serialization). */
export function makeTx(
  inputs: { txid: Uint8Array; vout: number }[],
  outputs: { script: Uint8Array; value: number }[],
  locktime = 0,
  witness = false,
  scriptSig: Uint8Array = new Uint8Array(0),
): SynthTx {
  const shape = {
    version: 2,
    locktime,
    inputs: inputs.map((i) => ({ prevTxid: i.txid, prevVout: i.vout, scriptSig, sequence: 0xfffffffe })),
    outputs,
    witnesses: witness ? inputs.map(() => [new Uint8Array(72).fill(0x30), new Uint8Array(33).fill(2)]) : null,
  };
  const raw = serializeTransaction(shape);
  const txid = sha256d(serializeTransaction(shape, false));
  return { inputs, outputs, raw, txid };
}

/** A coinbase paying `outputs`, unique by height and `extra`. */
export function makeCoinbase(
  height: number,
  outputs: { script: Uint8Array; value: number }[],
  extra = 0,
): SynthTx {
  const sig = new Uint8Array(9);
  sig[0] = 4;
  new DataView(sig.buffer).setUint32(1, height, true);
  new DataView(sig.buffer).setUint32(5, extra, true);
  return makeTx([{ txid: new Uint8Array(32), vout: 0xffffffff }], outputs, 0, false, sig);
}

/** Serializes a block with its merkle root (so blocks with different transactions hash differently). */
export function makeBlock(prevHash: Uint8Array, height: number, txs: SynthTx[], nonce = 0): SynthBlock {
  const header = serializeHeader({
    version: 0x20000000,
    prevHash,
    merkleRoot: merkleRoot(txs.map((t) => t.txid)),
    time: 1_600_000_000 + height * 600,
    bits: 0x207fffff,
    nonce,
  });
  let size = 80 + 5;
  for (const tx of txs) size += tx.raw.length;
  const raw = new Uint8Array(size);
  raw.set(header, 0);
  let o = 80;
  if (txs.length < 0xfd) raw[o++] = txs.length;
  else {
    raw[o++] = 0xfd;
    raw[o++] = txs.length & 0xff;
    raw[o++] = txs.length >> 8;
  }
  for (const tx of txs) {
    raw.set(tx.raw, o);
    o += tx.raw.length;
  }
  return { height, hash: sha256d(header), raw: raw.slice(0, o), txs };
}

/** P2WPKH-like script. */
export function walletScript(rng: Rng): Uint8Array {
  const s = new Uint8Array(22);
  s[1] = 0x14;
  s.set(rng.bytes(20), 2);
  return s;
}

/** Generates a chain whose transactions spend random earlier outputs (often in the same block). */
export class SynthChain {
  blocks: SynthBlock[] = [];
  private pools: Coin[][] = [];
  constructor(
    readonly rng: Rng,
    readonly scripts: Uint8Array[],
    private readonly tag = 0,
    private readonly txsPerBlock = 6,
  ) {}

  /** A chain with `nScripts` wallet scripts. */
  static create(seed: number, nScripts = 24, txsPerBlock = 6): SynthChain {
    const rng = new Rng(seed);
    const scripts = Array.from({ length: nScripts }, () => walletScript(rng));
    return new SynthChain(rng, scripts, 0, txsPerBlock);
  }

  /** Coins spendable after the last block. */
  get pool(): Coin[] {
    return this.pools.length ? this.pools[this.pools.length - 1] : [];
  }

  /** The tip hash (zeros when empty). */
  get tipHash(): Uint8Array {
    return this.blocks.length ? this.blocks[this.blocks.length - 1].hash : new Uint8Array(32);
  }

  /** Appends `n` random blocks. */
  extend(n: number): SynthBlock[] {
    const out: SynthBlock[] = [];
    for (let k = 0; k < n; k++) out.push(this.append(this.randomTxs()));
    return out;
  }

  /** Appends a block with the given non-coinbase txs (a coinbase is added in front) and tracks its coins. */
  append(txs: SynthTx[], coinbase?: SynthTx): SynthBlock {
    const height = this.blocks.length;
    const cb = coinbase ?? makeCoinbase(height, [
      { script: this.scripts[this.rng.int(this.scripts.length)], value: 50_0000_0000 },
      { script: Uint8Array.of(0x6a, 0x24, ...this.rng.bytes(36)), value: 0 },
    ], this.tag);
    const pool = this.pool.slice();
    const spentKeys = new Set<string>();
    for (const tx of txs) for (const i of tx.inputs) spentKeys.add(outpointKey(i.txid, i.vout));
    const kept = pool.filter((c) => !spentKeys.has(outpointKey(c.txid, c.vout)));
    for (const tx of [cb, ...txs]) {
      tx.outputs.forEach((o, vout) => {
        // Only outputs a real node could spend later: indexed ones of at most 10,000 bytes.
        if (
          modelIndexed(o.script) && o.script.length <= 10000 && !spentKeys.has(outpointKey(tx.txid, vout))
        ) {
          kept.push({ txid: tx.txid, vout, value: o.value, script: o.script });
        }
      });
    }
    const block = makeBlock(this.tipHash, height, [cb, ...txs], this.tag);
    this.blocks.push(block);
    this.pools.push(kept);
    return block;
  }

  /** A new chain sharing blocks 0..height, diverging afterwards (different hashes via `tag`). */
  forkAt(height: number, tag: number, seed: number): SynthChain {
    const f = new SynthChain(new Rng(seed), this.scripts, tag, this.txsPerBlock);
    f.blocks = this.blocks.slice(0, height + 1);
    f.pools = this.pools.slice(0, height + 1);
    return f;
  }

  private randomTxs(): SynthTx[] {
    const pool = this.pool.slice();
    const txs: SynthTx[] = [];
    const n = this.rng.int(this.txsPerBlock + 1);
    for (let t = 0; t < n && pool.length > 0; t++) {
      const nIn = 1 + this.rng.int(Math.min(3, pool.length));
      const inputs: Coin[] = [];
      for (let i = 0; i < nIn; i++) {
        const j = this.rng.int(pool.length);
        inputs.push(pool[j]);
        pool[j] = pool[pool.length - 1];
        pool.pop();
      }
      let total = inputs.reduce((a, c) => a + c.value, 0) - 1000;
      const nOut = 1 + this.rng.int(3);
      const outputs: { script: Uint8Array; value: number }[] = [];
      for (let o = 0; o < nOut; o++) {
        const value = o === nOut - 1 ? total : Math.floor(total / 2);
        total -= value;
        // Reusing a spender's script makes a tx pay to and spend from the same hashX.
        const script = this.rng.int(5) === 0
          ? inputs[0].script
          : this.scripts[this.rng.int(this.scripts.length)];
        outputs.push({ script, value: Math.max(0, value) });
      }
      if (this.rng.int(4) === 0) outputs.push({ script: Uint8Array.of(0x6a, 4, 1, 2, 3, 4), value: 0 });
      const tx = makeTx(inputs, outputs, this.rng.int(100), this.rng.int(2) === 0);
      txs.push(tx);
      outputs.forEach((o, vout) => {
        if (o.script[0] !== 0x6a) pool.push({ txid: tx.txid, vout, value: o.value, script: o.script });
      });
    }
    return txs;
  }
}

/** "txidhex:vout". */
/** ElectrumX's rule, written out again: every output is indexed except those starting 6a or 006a. */
export function modelIndexed(script: Uint8Array): boolean {
  const hex = Array.from(script.subarray(0, 2), (b) => b.toString(16).padStart(2, "0")).join("");
  return !hex.startsWith("6a") && !hex.startsWith("006a");
}

export function outpointKey(txid: Uint8Array, vout: number): string {
  return `${toHex(txid)}:${vout}`;
}

/** First 11 bytes of sha256(script). */
export function modelHashX(script: Uint8Array): Uint8Array {
  return sha256(script).slice(0, 11);
}

/** What the naive model knows about one chain. */
export interface Model {
  height: number;
  txCount: number;
  /** hashX hex → [txid hex, height] in chain order, once per tx. */
  history: Map<string, [string, number][]>;
  /** hashX hex → "txid:vout:value:height" sorted in chain order. */
  utxos: Map<string, string[]>;
  /** txid hex → [height, index in block]; the later of duplicates. */
  txs: Map<string, [number, number]>;
}

/** Replays blocks with plain Maps. */
export function replay(blocks: SynthBlock[]): Model {
  const utxo = new Map<
    string,
    { hx: string; value: number; height: number; order: number; txid: string; vout: number }
  >();
  const history = new Map<string, [string, number][]>();
  const txs = new Map<string, [number, number]>();
  let order = 0;
  for (const b of blocks) {
    b.txs.forEach((tx, index) => {
      const txid = toHex(tx.txid);
      txs.set(txid, [b.height, index]);
      const touched: string[] = [];
      if (index > 0) {
        for (const i of tx.inputs) {
          const k = outpointKey(i.txid, i.vout);
          const u = utxo.get(k);
          if (!u) throw new Error(`model: missing ${k}`);
          utxo.delete(k);
          if (!touched.includes(u.hx)) touched.push(u.hx);
        }
      }
      tx.outputs.forEach((o, vout) => {
        if (!modelIndexed(o.script)) return;
        const hx = toHex(modelHashX(o.script));
        utxo.set(outpointKey(tx.txid, vout), {
          hx,
          value: o.value,
          height: b.height,
          order: order,
          txid,
          vout,
        });
        if (!touched.includes(hx)) touched.push(hx);
      });
      for (const hx of touched) {
        if (!history.has(hx)) history.set(hx, []);
        history.get(hx)!.push([txid, b.height]);
      }
      order++;
    });
  }
  const utxos = new Map<string, string[]>();
  const sorted = [...utxo.values()].sort((a, b) => a.order - b.order || a.vout - b.vout);
  for (const u of sorted) {
    if (!utxos.has(u.hx)) utxos.set(u.hx, []);
    utxos.get(u.hx)!.push(`${u.txid}:${u.vout}:${u.value}:${u.height}`);
  }
  return { height: blocks.length - 1, txCount: order, history, utxos, txs };
}

/** Minimal view of the store's read API used by the comparisons. */
export interface ReadApi {
  state: { height: number; txCount: number };
  history(hashX: Uint8Array): Promise<{ txHash: Uint8Array; height: number }[]>;
  utxos(hashX: Uint8Array): Promise<{ txHash: Uint8Array; vout: number; value: number; height: number }[]>;
  balance(hashX: Uint8Array): Promise<number>;
  findTx(txid: Uint8Array): Promise<{ height: number; index: number } | undefined>;
}

/** Every answer the store gives for `scripts`, in a comparable form. */
export async function answers(store: ReadApi, scripts: Uint8Array[]): Promise<unknown> {
  const out: Record<string, unknown> = {
    height: store.state.height,
    txCount: store.state.txCount,
  };
  for (const s of scripts) {
    const hx = modelHashX(s);
    out[toHex(hx)] = {
      history: (await store.history(hx)).map((h) => [toHex(h.txHash), h.height]),
      utxos: (await store.utxos(hx)).map((u) => `${toHex(u.txHash)}:${u.vout}:${u.value}:${u.height}`),
      balance: await store.balance(hx),
    };
  }
  return out;
}

/** What the model says `answers` should be. */
export function expectedAnswers(model: Model, scripts: Uint8Array[]): unknown {
  const out: Record<string, unknown> = { height: model.height, txCount: model.txCount };
  for (const s of scripts) {
    const hx = toHex(modelHashX(s));
    const utxos = model.utxos.get(hx) ?? [];
    out[hx] = {
      history: model.history.get(hx) ?? [],
      utxos,
      balance: utxos.reduce((a, u) => a + Number(u.split(":")[2]), 0),
    };
  }
  return out;
}
