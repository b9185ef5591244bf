// The protocol methods against a real synced store: simnet (a Core-compatible bitcoind) → Daemon → block
// processor → Store, plus the real Mempool. Expected answers come from a naive replay of simnet's raw blocks
// and mempool written here (maps of outpoints, one pass), never from the code under test.
import assert from "node:assert/strict";
import { startSimnet } from "../../scripts/simnet/main.ts";
import { parseBlock } from "../../src/chain/block.ts";
import { NETWORKS } from "../../src/chain/network.ts";
import { merkleRoot, rootFromBranch } from "../../src/chain/merkle.ts";
import { decodeTransaction } from "../../src/chain/tx.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { Daemon, DaemonError } from "../../src/daemon/daemon.ts";
import { Store } from "../../src/db/store.ts";
import type { Log } from "../../src/log.ts";
import { Mempool } from "../../src/mempool/mempool.ts";
import {
  bucketEstimateFeeTarget,
  createMethods,
  type MethodDaemon,
  type MethodMempool,
  nonNegativeInteger,
  pyRepr,
  pyStr,
} from "../../src/server/methods.ts";
import { type Server, startServer } from "../../src/server/listeners.ts";
import { Notifier } from "../../src/server/notifier.ts";
import { bindArgs, methodInVersion, prepareMethods } from "../../src/server/rpc.ts";
import { historyLimit } from "../../src/server/status.ts";
import { SubscriptionIndex } from "../../src/server/subscriptions.ts";
import {
  ByteJson,
  jsonBytes,
  type MethodTable,
  RawJson,
  RpcError,
  type SessionContext,
} from "../../src/server/types.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { SyncLoop } from "../../src/sync/sync.ts";
import { LineReader } from "../line_reader.ts";
import { spendTx } from "../integration/server_model.ts";

const NET = NETWORKS.regtest;

const quiet: Log = { debug() {}, info() {}, warn() {}, error() {}, enabled: () => false };

// ---- independent helpers ----------------------------------------------------------------------------------

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function rhex(b: Uint8Array): string {
  return hex(b.slice().reverse());
}
function unhex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)!.map((x) => parseInt(x, 16)));
}
async function sha256hex(data: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", data.slice())));
}
/** OP_RETURN-led and oversized scripts are never indexed. */
function indexed(script: Uint8Array): boolean {
  return !(script.length > 0 && script[0] === 0x6a) && script.length <= 10_000;
}

interface NaiveUtxo {
  txid: Uint8Array;
  vout: number;
  value: number;
  height: number;
  seq: number;
  sh: string;
  script: Uint8Array;
  coinbase: boolean;
}

/** Confirmed state rebuilt from simnet's raw blocks; scripthashes are client-style (display hex). */
class NaiveChain {
  history = new Map<string, { txid: Uint8Array; height: number }[]>();
  utxos = new Map<string, NaiveUtxo>();
  headers: Uint8Array[] = [];
  blockTxids: Uint8Array[][] = [];
  private seq = 0;

  static async of(
    node: {
      height: number;
      hashAt(h: number): Uint8Array | undefined;
      blockInfo(h: Uint8Array): { raw: Uint8Array } | undefined;
    },
  ): Promise<NaiveChain> {
    const c = new NaiveChain();
    for (let h = 0; h <= node.height; h++) await c.add(node.blockInfo(node.hashAt(h)!)!.raw, h);
    return c;
  }

  private async add(raw: Uint8Array, height: number): Promise<void> {
    const block = parseBlock(raw);
    this.headers.push(raw.slice(0, 80));
    this.blockTxids.push(block.txs.map((t) => t.txid));
    for (let i = 0; i < block.txs.length; i++) {
      const tx = block.txs[i];
      const touched = new Set<string>();
      if (i > 0) {
        for (const input of tx.inputs) {
          const key = `${rhex(input.prevTxid)}:${input.prevVout}`;
          const u = this.utxos.get(key);
          if (u) {
            this.utxos.delete(key);
            touched.add(u.sh);
          }
        }
      }
      for (let v = 0; v < tx.outputs.length; v++) {
        const out = tx.outputs[v];
        if (!indexed(out.script)) continue;
        const sh = rhex(unhex(await sha256hex(out.script)));
        this.utxos.set(`${rhex(tx.txid)}:${v}`, {
          txid: tx.txid,
          vout: v,
          value: out.value,
          height,
          seq: this.seq++,
          sh,
          script: out.script.slice(),
          coinbase: i === 0,
        });
        touched.add(sh);
      }
      for (const sh of touched) {
        let list = this.history.get(sh);
        if (!list) this.history.set(sh, list = []);
        list.push({ txid: tx.txid, height });
      }
    }
  }
}

/** The mempool rebuilt from simnet's entries over a NaiveChain. */
async function naivePool(
  entries: { txid: Uint8Array; raw: Uint8Array; fee: number; depends: Uint8Array[] }[],
  chain: NaiveChain,
) {
  const txs = new Map(entries.map((e) => [rhex(e.txid), { e, tx: decodeTransaction(e.raw) }]));
  const byScript = new Map<string, { txid: string; height: number; fee: number }[]>();
  const delta = new Map<string, number>();
  const spent = new Set<string>();
  const outputs: { sh: string; txid: string; vout: number; value: number }[] = [];
  const add = (sh: string, item: { txid: string; height: number; fee: number }) => {
    let l = byScript.get(sh);
    if (!l) byScript.set(sh, l = []);
    if (!l.some((x) => x.txid === item.txid)) l.push(item);
  };
  for (const [txid, { e, tx }] of txs) {
    const item = { txid, height: e.depends.length > 0 ? -1 : 0, fee: e.fee };
    for (const input of tx.inputs) {
      const key = `${rhex(input.prevTxid)}:${input.prevVout}`;
      spent.add(key);
      let sh: string | undefined, value = 0;
      const conf = chain.utxos.get(key);
      if (conf) [sh, value] = [conf.sh, conf.value];
      const parent = txs.get(rhex(input.prevTxid));
      if (parent) {
        const out = parent.tx.outputs[input.prevVout];
        if (indexed(out.script)) [sh, value] = [rhex(unhex(await sha256hex(out.script))), out.value];
      }
      if (sh) {
        add(sh, item);
        delta.set(sh, (delta.get(sh) ?? 0) - value);
      }
    }
    for (let v = 0; v < tx.outputs.length; v++) {
      const out = tx.outputs[v];
      if (!indexed(out.script)) continue;
      const sh = rhex(unhex(await sha256hex(out.script)));
      add(sh, item);
      delta.set(sh, (delta.get(sh) ?? 0) + out.value);
      outputs.push({ sh, txid, vout: v, value: out.value });
    }
  }
  for (const l of byScript.values()) {
    l.sort((a, b) => b.height - a.height || (a.txid < b.txid ? -1 : a.txid > b.txid ? 1 : 0));
  }
  return { byScript, delta, spent, outputs };
}

type Pool = Awaited<ReturnType<typeof naivePool>>;

function expectedHistory(chain: NaiveChain, pool: Pool, sh: string) {
  return [
    ...(chain.history.get(sh) ?? []).map((h) => ({ tx_hash: rhex(h.txid), height: h.height })),
    ...(pool.byScript.get(sh) ?? []).map((m) => ({ tx_hash: m.txid, height: m.height, fee: m.fee })),
  ];
}

async function expectedStatus(chain: NaiveChain, pool: Pool, sh: string): Promise<string | null> {
  const items = expectedHistory(chain, pool, sh);
  if (items.length === 0) return null;
  return await sha256hex(new TextEncoder().encode(items.map((i) => `${i.tx_hash}:${i.height}:`).join("")));
}

function expectedUnspent(chain: NaiveChain, pool: Pool, sh: string) {
  const conf = [...chain.utxos.values()].filter((u) =>
    u.sh === sh && !pool.spent.has(`${rhex(u.txid)}:${u.vout}`)
  )
    .sort((a, b) => a.seq - b.seq)
    .map((u) => ({ tx_hash: rhex(u.txid), tx_pos: u.vout, height: u.height, value: u.value }));
  const mem = pool.outputs.filter((o) => o.sh === sh && !pool.spent.has(`${o.txid}:${o.vout}`))
    .map((o) => ({ tx_hash: o.txid, tx_pos: o.vout, height: 0, value: o.value }));
  return { conf, mem };
}

// ---- a session as the dispatcher sees it --------------------------------------------------------------

class FakeSession implements SessionContext {
  static next = 1;
  readonly id = FakeSession.next++;
  readonly remoteAddress = "127.0.0.1:50000";
  cost = 0;
  notes: [string, unknown[]][] = [];
  closed = false;
  private closers: (() => void)[] = [];
  constructor(readonly protocolVersion = "1.6") {}
  get protocolTuple(): number[] {
    return this.protocolVersion.split(".").map(Number);
  }
  addCost(c: number): void {
    this.cost += c;
  }
  notify(method: string, params: unknown[]): void {
    this.notes.push([method, JSON.parse(JSON.stringify(params))]);
  }
  onClose(fn: () => void): void {
    this.closers.push(fn);
  }
  close(): void {
    this.closed = true;
    for (const f of this.closers) f();
  }
}

/** Calls a method the way the session's dispatcher does (version gate, parameter binding, base cost). */
async function call(
  table: MethodTable,
  ctx: FakeSession,
  name: string,
  params: unknown[] | Record<string, unknown> = [],
) {
  const prepared = prepareMethods(table).get(name);
  if (!prepared || !methodInVersion(prepared, ctx.protocolTuple)) {
    throw new RpcError(-32601, `unknown method "${name}"`);
  }
  const args = bindArgs(prepared, params);
  ctx.addCost(prepared.spec.cost);
  const result = await prepared.spec.handler(ctx, args);
  return JSON.parse(JSON.stringify(result ?? null));
}

/** A handler's result as the session writes it: RawJson and ByteJson as they are, anything else stringified. */
function wireText(result: unknown): string {
  if (result instanceof RawJson) return result.json;
  if (!(result instanceof ByteJson)) return JSON.stringify(result);
  return new TextDecoder().decode(jsonBytes(result));
}

async function rejects(p: Promise<unknown>, code: number, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof RpcError, `expected RpcError, got ${e}`);
    assert.equal(e.code, code);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

// ---- harness -----------------------------------------------------------------------------------------------

interface HarnessOptions {
  blocks?: number;
  seed: string;
  maxSend?: number;
  maxSubs?: number;
  maxSessionSubs?: number;
  bannerFile?: string;
  daemon?: (d: Daemon) => MethodDaemon;
  now?: () => number;
}

async function harness(opts: HarnessOptions) {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-methods-" });
  const sim = await startSimnet({
    blocks: opts.blocks ?? 120,
    seed: opts.seed,
    port: 0,
    datadir: `${dir}/sim`,
  });
  const daemon = new Daemon({
    urls: [`http://127.0.0.1:${sim.port}/`],
    cookieFile: sim.cookiePath,
    timeoutMs: 10_000,
    log: quiet,
  });
  const store = await Store.open(`${dir}/db`, NET, { log: quiet });
  const processor = new BlockProcessor(store, {
    reorgLimit: 50,
    cacheMb: 64,
    flushSize: 1_000_000,
    log: quiet,
    network: NET,
  });
  const waiting: { height: number; resolve: () => void }[] = [];
  const loop = new SyncLoop(daemon, processor, quiet, {
    maxQueueBytes: 8 << 20,
    pollIntervalMs: 60_000,
    onTip: (h) => {
      for (const w of waiting.splice(0)) w.height === h ? w.resolve() : waiting.push(w);
    },
  });
  const first = new Promise<void>((resolve) => waiting.push({ height: sim.node.height, resolve }));
  const running = loop.run();
  await first;
  processor.takeTouched();
  const mempool = new Mempool({ daemon, store, log: quiet, network: NET });
  await mempool.refresh();
  const subscriptions = new SubscriptionIndex({
    maxSubs: opts.maxSubs ?? 250_000,
    maxSessionSubs: opts.maxSessionSubs ?? 50_000,
  });
  const maxSend = opts.maxSend ?? 8_100_000;
  const notifier = new Notifier({
    store,
    mempool,
    subscriptions,
    historyLimit: historyLimit(maxSend),
    log: quiet,
  });
  const methodsWith = (byteReplyMin?: number) =>
    createMethods({
      store,
      mempool,
      daemon: opts.daemon ? opts.daemon(daemon) : daemon,
      byteReplyMin,
      config: {
        maxSend,
        bannerFile: opts.bannerFile,
        donationAddress: "bcrt1qdonate",
        services: [{ protocol: "tcp", host: "127.0.0.1", port: 50001 }, {
          protocol: "rpc",
          host: "127.0.0.1",
          port: 8000,
        }],
        reportServices: [],
      },
      network: NET,
      log: quiet,
      subscriptions,
      now: opts.now,
    });
  const methods = methodsWith();
  const h = {
    sim,
    node: sim.node,
    daemon,
    store,
    processor,
    mempool,
    subscriptions,
    notifier,
    methods,
    /** The same methods sending every non-empty history as bytes (ByteJson), as long histories go. */
    byteMethods: methodsWith(0),
    /** Follows simnet after mining/reorgs: sync, refresh the mempool, run the notifier like main would. */
    async follow(): Promise<void> {
      const target = sim.node.height;
      if (store.state.height !== target || !same(store.state.tipHash, sim.node.tipHash)) {
        const reached = new Promise<void>((resolve) => waiting.push({ height: target, resolve }));
        loop.pollNow();
        await reached;
        notifier.onNewTip(store.state.height, store.headerAt(store.state.height)!);
      }
      const touched = [...processor.takeTouched(), ...await mempool.refresh()];
      await notifier.onTouched(touched);
    },
    async naive() {
      const chain = await NaiveChain.of(sim.node);
      return { chain, pool: await naivePool(sim.node.mempoolEntries(), chain) };
    },
    async close(): Promise<void> {
      loop.stop();
      await running;
      daemon.close();
      await store.close();
      await sim.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  return h;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function p2wpkh(tag: number): Uint8Array {
  const s = new Uint8Array(22);
  s[1] = 20;
  s.fill(tag, 2);
  return s;
}

async function scripthashOf(script: Uint8Array): Promise<string> {
  return rhex(unhex(await sha256hex(script)));
}

/** A mature, mempool-unspent confirmed output worth spending. */
function spendable(chain: NaiveChain, pool: Pool, tip: number, skip = new Set<string>()): NaiveUtxo {
  for (const u of chain.utxos.values()) {
    const key = `${rhex(u.txid)}:${u.vout}`;
    if (skip.has(key) || pool.spent.has(key) || u.value < 100_000 || u.height === 0) continue;
    if (u.coinbase && tip - u.height < 100) continue;
    skip.add(key);
    return u;
  }
  throw new Error("no spendable output");
}

// ---- tests -------------------------------------------------------------------------------------------------

Deno.test("methods: script hash queries match a naive replay of simnet's chain and mempool", async () => {
  const h = await harness({ seed: "methods-scripthash" });
  try {
    h.node.addMempoolTraffic(40);
    await h.follow();
    const { chain, pool } = await h.naive();
    assert.ok(pool.byScript.size > 10, "the mempool touches scripts");
    assert.ok([...pool.byScript.values()].some((l) => l.some((m) => m.height === -1)), "some -1 heights");
    const all = [...chain.history.keys()];
    const sample = new Set([...pool.byScript.keys(), ...all.filter((_, i) => i % 7 === 0)]);
    // The scripts with the longest histories too.
    for (const [sh] of [...chain.history].sort((a, b) => b[1].length - a[1].length).slice(0, 5)) {
      sample.add(sh);
    }
    const ctx = new FakeSession();
    let asBytes = 0;
    for (const sh of sample) {
      const history = await call(h.methods, ctx, "blockchain.scripthash.get_history", [sh]);
      assert.deepEqual(history, expectedHistory(chain, pool, sh), `history of ${sh}`);
      // As bytes: the same JSON, text for text, first built and then from the cache.
      for (let i = 0; i < 2; i++) {
        const raw = await h.byteMethods.get("blockchain.scripthash.get_history")!.handler(ctx, [sh]);
        if (raw instanceof ByteJson) asBytes++;
        assert.equal(
          wireText(raw),
          JSON.stringify(expectedHistory(chain, pool, sh)),
          `history of ${sh} as bytes`,
        );
      }
      const mem = await call(h.methods, ctx, "blockchain.scripthash.get_mempool", [sh]);
      assert.deepEqual(
        mem,
        (pool.byScript.get(sh) ?? []).map((m) => ({ tx_hash: m.txid, height: m.height, fee: m.fee })),
      );
      const balance = await call(h.methods, ctx, "blockchain.scripthash.get_balance", { scripthash: sh });
      const confirmed = [...chain.utxos.values()].filter((u) => u.sh === sh).reduce((s, u) => s + u.value, 0);
      assert.deepEqual(balance, { confirmed, unconfirmed: pool.delta.get(sh) ?? 0 }, `balance of ${sh}`);
      const unspent = await call(h.methods, ctx, "blockchain.scripthash.listunspent", [sh]);
      const want = expectedUnspent(chain, pool, sh);
      assert.deepEqual(unspent.slice(0, want.conf.length), want.conf, `confirmed utxos of ${sh}`);
      const key = (u: { tx_hash: string; tx_pos: number }) => `${u.tx_hash}:${u.tx_pos}`;
      assert.deepEqual(
        unspent.slice(want.conf.length).sort((a: { tx_hash: string }, b: { tx_hash: string }) =>
          key(a as never) < key(b as never) ? -1 : 1
        ),
        want.mem.sort((a, b) => key(a) < key(b) ? -1 : 1),
        `mempool utxos of ${sh}`,
      );
      const status = await call(h.methods, ctx, "blockchain.scripthash.subscribe", [sh]);
      assert.equal(status, await expectedStatus(chain, pool, sh), `status of ${sh}`);
    }
    // Upper-case hex is the same script hash; the notification alias keeps the client's spelling.
    const some = [...sample][0];
    assert.deepEqual(
      await call(h.methods, ctx, "blockchain.scripthash.get_history", [some.toUpperCase()]),
      expectedHistory(chain, pool, some),
    );
    // An unused script hash.
    const unused = "00".repeat(32);
    assert.deepEqual(await call(h.methods, ctx, "blockchain.scripthash.get_history", [unused]), []);
    assert.equal(await call(h.methods, ctx, "blockchain.scripthash.subscribe", [unused]), null);
    assert.deepEqual(await call(h.methods, ctx, "blockchain.scripthash.get_balance", [unused]), {
      confirmed: 0,
      unconfirmed: 0,
    });
    assert.ok(ctx.cost > sample.size * 2, "methods charge their costs");
    assert.ok(asBytes > sample.size, `${asBytes} histories came as bytes`);
  } finally {
    await h.close();
  }
});

Deno.test("methods: get_history paging (Fulcrum's from_height inclusive, to_height exclusive) and the cap", async () => {
  const h = await harness({ seed: "methods-paging", maxSend: 99 * 12 + 100 });
  try {
    h.node.addMempoolTraffic(30);
    await h.follow();
    const { chain, pool } = await h.naive();
    const ctx = new FakeSession();
    const limit = historyLimit(99 * 12 + 100);
    assert.equal(limit, 12);
    const small = [...chain.history].find(([sh, l]) =>
      l.length >= 3 && l.length + (pool.byScript.get(sh)?.length ?? 0) <= limit
    )!;
    const [sh, list] = small;
    const heights = list.map((x) => x.height);
    const from = heights[1], to = heights[heights.length - 1];
    const page = await call(h.methods, ctx, "blockchain.scripthash.get_history", [sh, from, to]);
    assert.deepEqual(
      page,
      list.filter((x) => x.height >= from && x.height < to).map((x) => ({
        tx_hash: rhex(x.txid),
        height: x.height,
      })),
    );
    const tail = await call(h.methods, ctx, "blockchain.scripthash.get_history", {
      scripthash: sh,
      from_height: from,
      to_height: -1,
    });
    assert.deepEqual(tail, expectedHistory(chain, pool, sh).filter((x) => x.height >= from || x.height <= 0));
    assert.deepEqual(await call(h.methods, ctx, "blockchain.scripthash.get_history", [sh, 5, 5]), []);
    await rejects(
      call(h.methods, ctx, "blockchain.scripthash.get_history", [sh, -1]),
      1,
      "-1 should be a non-negative integer",
    );
    await rejects(
      call(h.methods, ctx, "blockchain.scripthash.get_history", [sh, 0, "x"]),
      1,
      "x should be a non-negative integer",
    );
    // A history over the cap is refused, for get_history and subscribe alike; a page of it is fine.
    const [bigSh, bigList] = [...chain.history].sort((a, b) => b[1].length - a[1].length)[0];
    assert.ok(bigList.length > limit, `longest history has ${bigList.length} entries`);
    await rejects(call(h.methods, ctx, "blockchain.scripthash.get_history", [bigSh]), 1, "history too large");
    await rejects(call(h.methods, ctx, "blockchain.scripthash.subscribe", [bigSh]), 1, "history too large");
    assert.equal(h.subscriptions.count, 0, "a refused subscription is not recorded");
    const perHeight = new Map<number, number>();
    for (const x of bigList) perHeight.set(x.height, (perHeight.get(x.height) ?? 0) + 1);
    const firstHeight = [...perHeight].find(([, n]) => n <= limit)![0];
    const one = await call(h.methods, ctx, "blockchain.scripthash.get_history", [
      bigSh,
      firstHeight,
      firstHeight + 1,
    ]);
    assert.deepEqual(
      one,
      bigList.filter((x) => x.height === firstHeight).map((x) => ({
        tx_hash: rhex(x.txid),
        height: x.height,
      })),
    );
  } finally {
    await h.close();
  }
});

Deno.test("methods: headers, checkpoint proofs and their errors, for 1.4 and 1.6 shapes", async () => {
  const h = await harness({ seed: "methods-headers" });
  try {
    const { chain } = await h.naive();
    const tip = h.node.height;
    const v16 = new FakeSession("1.6"), v14 = new FakeSession("1.4");
    assert.equal(await call(h.methods, v16, "blockchain.block.header", [7]), hex(chain.headers[7]));
    const leafHashes: Uint8Array[] = [];
    for (let i = 0; i <= tip; i++) leafHashes.push(h.node.hashAt(i)!.slice());
    for (const [height, cp] of [[0, 1], [7, 7], [5, 100], [tip, tip], [33, tip]]) {
      const r = await call(h.methods, v16, "blockchain.block.header", { height, cp_height: cp });
      assert.equal(r.header, hex(chain.headers[height]));
      const root = merkleRoot(leafHashes.slice(0, cp + 1));
      assert.equal(r.root, rhex(root));
      const branch = r.branch.map((b: string) => unhex(b).reverse());
      assert.deepEqual(rootFromBranch(h.node.hashAt(height)!, branch, height), root);
    }
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [tip + 1]),
      1,
      `height ${(tip + 1).toLocaleString("en-US")} out of range`,
    );
    // Python's ints have no limit: a height past 2^53 is out of range, not a malformed argument.
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [1e20]),
      1,
      "height 100,000,000,000,000,000,000 out of range",
    );
    // null is ElectrumX's None, an argument that is not an integer, not an omitted one.
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [1, null]),
      1,
      "None should be a non-negative integer",
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [10, 5]),
      1,
      `require header height 10 <= cp_height 5 <= chain height ${tip}`,
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [10, tip + 1]),
      1,
      `require header height 10 <= cp_height ${tip + 1} <= chain height ${tip}`,
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.header", ["ten"]),
      1,
      "ten should be a non-negative integer",
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [-3]),
      1,
      "-3 should be a non-negative integer",
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.header", [null]),
      1,
      "None should be a non-negative integer",
    );

    const r16 = await call(h.methods, v16, "blockchain.block.headers", [10, 5]);
    assert.deepEqual(r16, { headers: chain.headers.slice(10, 15).map(hex), count: 5, max: 2016 });
    const r14 = await call(h.methods, v14, "blockchain.block.headers", [10, 5]);
    assert.deepEqual(r14, { hex: chain.headers.slice(10, 15).map(hex).join(""), count: 5, max: 2016 });
    // Capped to what exists; past the tip there is nothing.
    const rest = await call(h.methods, v16, "blockchain.block.headers", [tip - 2, 5000]);
    assert.equal(rest.count, 3);
    assert.equal(rest.max, 2016);
    assert.deepEqual(await call(h.methods, v14, "blockchain.block.headers", [tip + 5, 10]), {
      hex: "",
      count: 0,
      max: 2016,
    });
    // With a checkpoint the last returned header is proven.
    const withCp = await call(h.methods, v16, "blockchain.block.headers", {
      start_height: 20,
      count: 10,
      cp_height: 60,
    });
    const root60 = merkleRoot(leafHashes.slice(0, 61));
    assert.equal(withCp.root, rhex(root60));
    assert.deepEqual(
      rootFromBranch(leafHashes[29], withCp.branch.map((b: string) => unhex(b).reverse()), 29),
      root60,
    );
    await rejects(
      call(h.methods, v16, "blockchain.block.headers", [20, 10, 25]),
      1,
      `require header height 29 <= cp_height 25 <= chain height ${tip}`,
    );
    // Cost follows the requested count (ElectrumX: count / 50).
    const c = new FakeSession();
    await call(h.methods, c, "blockchain.block.headers", [0, 1000]);
    assert.ok(Math.abs(c.cost - 20) < 1e-9, `cost ${c.cost}`);

    const sub = new FakeSession();
    assert.deepEqual(await call(h.methods, sub, "blockchain.headers.subscribe"), {
      hex: hex(chain.headers[tip]),
      height: tip,
    });
    h.node.mine(2);
    await h.follow();
    const tipHeader = h.store.headerAt(tip + 2)!;
    assert.deepEqual(sub.notes, [["blockchain.headers.subscribe", [{
      height: tip + 2,
      hex: hex(tipHeader),
    }]]]);
    assert.equal(v16.notes.length, 0, "sessions that did not subscribe hear nothing");
    // Same tip again: no second notification.
    h.notifier.onNewTip(tip + 2, tipHeader);
    assert.equal(sub.notes.length, 1);
    // A closed session is dropped from the index.
    sub.close();
    h.node.mine(1);
    await h.follow();
    assert.equal(sub.notes.length, 1);
  } finally {
    await h.close();
  }
});

Deno.test("methods: transactions — get (raw, verbose, mempool, unknown), get_merkle, id_from_pos", async () => {
  const h = await harness({ seed: "methods-tx" });
  try {
    h.node.addMempoolTraffic(5);
    await h.follow();
    const { chain } = await h.naive();
    const ctx = new FakeSession();
    const height = 50;
    const txids = chain.blockTxids[height];
    const pos = txids.length - 1;
    const txid = rhex(txids[pos]);
    const found = h.node.findConfirmedTx(txids[pos])!;
    // simnet runs without -txindex: these only work because Coulomb passes the block hash it knows.
    assert.equal(await call(h.methods, ctx, "blockchain.transaction.get", [txid]), hex(found.raw));
    const verbose = await call(h.methods, ctx, "blockchain.transaction.get", [txid, true]);
    assert.equal(verbose.txid, txid);
    assert.equal(verbose.hex, hex(found.raw));
    assert.equal(verbose.blockhash, rhex(h.node.hashAt(height)!));
    assert.equal(verbose.confirmations, h.node.height - height + 1);
    assert.equal("in_active_chain" in verbose, false);
    const memTx = h.node.mempoolEntries()[0];
    assert.equal(
      await call(h.methods, ctx, "blockchain.transaction.get", [rhex(memTx.txid)]),
      hex(memTx.raw),
    );
    assert.equal(
      (await call(h.methods, ctx, "blockchain.transaction.get", { tx_hash: rhex(memTx.txid), verbose: true }))
        .txid,
      rhex(memTx.txid),
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.get", ["ab".repeat(32)]),
      2,
      /^daemon error: DaemonError\(\{'code': -5, 'message': 'No such mempool transaction\. Use -txindex/,
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.get", ["xyz"]),
      1,
      "xyz should be a transaction hash",
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.get", [txid, "yes"]),
      1,
      '"verbose" must be a boolean',
    );

    const block = parseBlock(h.node.blockInfo(h.node.hashAt(height)!)!.raw);
    for (const p of [0, Math.floor(pos / 2), pos]) {
      const m = await call(h.methods, ctx, "blockchain.transaction.get_merkle", [rhex(txids[p]), height]);
      assert.equal(m.block_height, height);
      assert.equal(m.pos, p);
      const branch = m.merkle.map((b: string) => unhex(b).reverse());
      assert.deepEqual(rootFromBranch(txids[p], branch, p), block.header.merkleRoot);
      const byPos = await call(h.methods, ctx, "blockchain.transaction.id_from_pos", [height, p, true]);
      assert.deepEqual(byPos, { tx_hash: rhex(txids[p]), merkle: m.merkle });
      assert.equal(
        await call(h.methods, ctx, "blockchain.transaction.id_from_pos", [height, p]),
        rhex(txids[p]),
      );
    }
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.get_merkle", [txid, height + 1]),
      1,
      `tx ${txid} not in block at height ${height + 1}`,
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.get_merkle", [txid, 10_000]),
      1,
      "height 10,000 out of range",
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.id_from_pos", [height, 5000]),
      1,
      `no tx at position 5,000 in block at height ${height}`,
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.id_from_pos", [height, 0, "no"]),
      1,
      '"merkle" must be a boolean',
    );
  } finally {
    await h.close();
  }
});

Deno.test("methods: broadcast and broadcast_package through simnet, with ElectrumX's error texts", async () => {
  const h = await harness({ seed: "methods-broadcast" });
  try {
    const { chain, pool } = await h.naive();
    const ctx = new FakeSession();
    const used = new Set<string>();
    const u = spendable(chain, pool, h.node.height, used);
    const payTo = p2wpkh(0x42);
    const raw = spendTx([u], [{ value: u.value - 2000, script: payTo }]);
    const txid = rhex(decodeTransaction(raw).txid);
    const watcher = new FakeSession();
    const sh = await scripthashOf(payTo);
    assert.equal(await call(h.methods, watcher, "blockchain.scripthash.subscribe", [sh]), null);
    assert.equal(await call(h.methods, ctx, "blockchain.transaction.broadcast", [hex(raw)]), txid);
    // The new mempool tx reaches the subscriber once the mempool is refreshed.
    await h.follow();
    const status = await sha256hex(new TextEncoder().encode(`${txid}:0:`));
    assert.deepEqual(watcher.notes, [["blockchain.scripthash.subscribe", [sh, status]]]);
    // Broadcasting it again is fine (bitcoind answers with the txid); a conflicting spend at a lower fee is
    // rejected with bitcoind's replacement rule.
    assert.equal(await call(h.methods, ctx, "blockchain.transaction.broadcast", [hex(raw)]), txid);
    const conflict = hex(spendTx([u], [{ value: u.value - 1500, script: p2wpkh(0x43) }]));
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.broadcast", [conflict]),
      1,
      new RegExp(
        `^the transaction was rejected by network rules\\.\\n\\ninsufficient fee, rejecting replacement [0-9a-f]{64}; new feerate .*\\n\\[${conflict}\\]$`,
      ),
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.broadcast", ["zz"]),
      1,
      "zz should be a hex string",
    );
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.broadcast", ["00"]),
      1,
      /^the transaction was rejected by network rules\.\n\nTX decode failed/,
    );

    // A package: a parent and its child (1.6 only).
    const v = spendable(chain, pool, h.node.height, used);
    const parent = spendTx([v], [{ value: v.value - 3000, script: p2wpkh(0x44) }]);
    const parentTx = decodeTransaction(parent);
    const child = spendTx([{ txid: parentTx.txid, vout: 0 }], [{
      value: v.value - 6000,
      script: p2wpkh(0x45),
    }]);
    await rejects(
      call(h.methods, new FakeSession("1.4.2"), "blockchain.transaction.broadcast_package", [[
        hex(parent),
        hex(child),
      ]]),
      -32601,
      'unknown method "blockchain.transaction.broadcast_package"',
    );
    assert.deepEqual(
      await call(h.methods, ctx, "blockchain.transaction.broadcast_package", [[hex(parent), hex(child)]]),
      { success: true },
    );
    assert.ok(h.node.mempoolTx(decodeTransaction(child).txid), "child accepted");
    // A package whose child conflicts: bitcoind reports a per-tx error, which comes back by txid.
    const w = spendable(chain, pool, h.node.height, used);
    const p2 = spendTx([w], [{ value: w.value - 3000, script: p2wpkh(0x46) }]);
    const badChild = spendTx(
      [{ txid: decodeTransaction(p2).txid, vout: 0 }, { txid: parentTx.txid, vout: 0 }],
      [{ value: 1000, script: p2wpkh(0x47) }],
    );
    const r = await call(h.methods, ctx, "blockchain.transaction.broadcast_package", [[
      hex(p2),
      hex(badChild),
    ]]);
    assert.equal(r.success, false);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0].txid, rhex(decodeTransaction(badChild).txid));
    const verbose = await call(h.methods, ctx, "blockchain.transaction.broadcast_package", [[
      hex(p2),
      hex(badChild),
    ], true]);
    assert.ok("tx-results" in verbose, "verbose is bitcoind's object");
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.broadcast_package", [["00zz"]]),
      1,
      `not a valid hex encoded transaction package: ['00zz']`,
    );
    // One transaction is not a package for bitcoind: an RPC error becomes ElectrumX's text.
    await rejects(
      call(h.methods, ctx, "blockchain.transaction.broadcast_package", [[hex(p2)]]),
      1,
      `the tx package was rejected by network rules.\n\nArray must contain between 2 and 25 transactions..`,
    );
  } finally {
    await h.close();
  }
});

Deno.test("methods: notifications follow mempool and blocks, only on change, only to subscribers", async () => {
  const h = await harness({ seed: "methods-notify", maxSessionSubs: 3 });
  try {
    const { chain, pool } = await h.naive();
    const a = new FakeSession(), b = new FakeSession(), bystander = new FakeSession();
    const used = new Set<string>();
    const u = spendable(chain, pool, h.node.height, used);
    const script = p2wpkh(0x51);
    const sh = await scripthashOf(script);
    assert.equal(await call(h.methods, a, "blockchain.scripthash.subscribe", [sh]), null);
    const entry = h.subscriptions.entry(unhex(sh).reverse().slice(0, 11))!;
    assert.equal(entry.status, null, "the computed status is cached for the next subscriber");
    const costBefore = b.cost;
    assert.equal(await call(h.methods, b, "blockchain.scripthash.subscribe", [sh.toUpperCase()]), null);
    assert.ok(b.cost - costBefore < 0.31, "a cached status costs less than a computed one");
    const other = [...chain.history.keys()][3];
    await call(h.methods, bystander, "blockchain.scripthash.subscribe", [other]);
    // Parent pays the script; a child spends the parent (height -1), paying the script again.
    const parent = spendTx([u], [{ value: u.value - 2000, script }]);
    const parentTx = decodeTransaction(parent);
    const child = spendTx([{ txid: parentTx.txid, vout: 0 }], [{ value: u.value - 4000, script }]);
    const childTx = decodeTransaction(child);
    h.node.acceptTx(parent);
    h.node.acceptTx(child);
    await h.follow();
    const [p, c] = [rhex(parentTx.txid), rhex(childTx.txid)];
    const s1 = await sha256hex(new TextEncoder().encode(`${p}:0:${c}:-1:`));
    assert.deepEqual(a.notes, [["blockchain.scripthash.subscribe", [sh, s1]]]);
    assert.deepEqual(b.notes, [["blockchain.scripthash.subscribe", [sh.toUpperCase(), s1]]], "alias echoed");
    assert.equal(bystander.notes.length, 0);
    // Nothing changed: nothing is sent.
    await h.notifier.onTouched([]);
    await h.follow();
    assert.equal(a.notes.length, 1);
    // A block confirms both: every subscriber hears the confirmed status once.
    h.node.mine(1);
    await h.follow();
    const height = h.node.height;
    const s2 = await sha256hex(new TextEncoder().encode(`${p}:${height}:${c}:${height}:`));
    assert.deepEqual(a.notes.at(-1), ["blockchain.scripthash.subscribe", [sh, s2]]);
    assert.equal(a.notes.length, 2);
    const late = new FakeSession();
    assert.equal(await call(h.methods, late, "blockchain.scripthash.subscribe", [sh]), s2);
    // Unsubscribe (1.4.2+): true once, then false; no more notifications.
    assert.equal(await call(h.methods, a, "blockchain.scripthash.unsubscribe", [sh]), true);
    assert.equal(await call(h.methods, a, "blockchain.scripthash.unsubscribe", [sh]), false);
    await rejects(
      call(h.methods, new FakeSession("1.4.1"), "blockchain.scripthash.unsubscribe", [sh]),
      -32601,
      'unknown method "blockchain.scripthash.unsubscribe"',
    );
    // An unsubscribe sent right after a subscribe, before its status is known, ends it: the subscribe still
    // answers, and registers nothing.
    const quick = new FakeSession();
    const uncached = [...chain.history.keys()][8];
    const subscribing = call(h.methods, quick, "blockchain.scripthash.subscribe", [uncached]);
    assert.equal(await call(h.methods, quick, "blockchain.scripthash.unsubscribe", [uncached]), true);
    assert.equal(
      await call(h.methods, quick, "blockchain.scripthash.unsubscribe", [uncached]),
      false,
      "the first ended it",
    );
    assert.equal(typeof await subscribing, "string");
    assert.equal(h.subscriptions.sessionCount(quick), 0);
    assert.equal(h.subscriptions.entry(unhex(uncached).reverse().slice(0, 11)), undefined);
    assert.equal(await call(h.methods, quick, "blockchain.scripthash.unsubscribe", [uncached]), false);
    const spendIt = spendTx([{ txid: childTx.txid, vout: 0 }], [{
      value: u.value - 6000,
      script: p2wpkh(0x52),
    }]);
    h.node.acceptTx(spendIt);
    await h.follow();
    assert.equal(a.notes.length, 2);
    assert.equal(b.notes.length, 3);
    // Per-session limit (MAX_SESSION_SUBS=3): the fourth distinct script hash is refused.
    const keys = [...chain.history.keys()];
    await call(h.methods, bystander, "blockchain.scripthash.subscribe", [keys[4]]);
    await call(h.methods, bystander, "blockchain.scripthash.subscribe", [keys[5]]);
    await call(h.methods, bystander, "blockchain.scripthash.subscribe", [keys[5]]);
    await rejects(
      call(h.methods, bystander, "blockchain.scripthash.subscribe", [keys[6]]),
      1,
      "your address subscription limit 3 reached",
    );
    assert.equal(h.subscriptions.sessionCount(bystander), 3);
    bystander.close();
    b.close();
    late.close();
    assert.equal(h.subscriptions.count, 0, "closing sessions removes their subscriptions");
    await rejects(
      call(h.methods, a, "blockchain.scripthash.subscribe", ["12"]),
      1,
      "12 is not a valid script hash",
    );
    await rejects(
      call(h.methods, a, "blockchain.scripthash.get_balance", [12]),
      1,
      "12 is not a valid script hash",
    );
  } finally {
    await h.close();
  }
});

Deno.test("methods: fees, mempool info, server info; caches per tip and per minute; version gates", async () => {
  let calls: string[] = [];
  let clock = 1_000_000;
  const h = await harness({
    seed: "methods-fees",
    now: () => clock,
    daemon: (d) => ({
      call<T>(method: string, params: unknown[] = []) {
        calls.push(`${method}${JSON.stringify(params)}`);
        return d.call<T>(method, params);
      },
    }),
  });
  const bannerDir = await Deno.makeTempDir();
  try {
    const ctx = new FakeSession("1.6"), old = new FakeSession("1.4");
    // Give bitcoind's estimator transactions it saw enter its mempool and confirm, over blocks enough to
    // answer a target: then it has a feerate.
    h.node.addMempoolTraffic(40);
    h.node.mine(1);
    h.node.mine(4, { includeMempool: false });
    await h.follow();
    const fee = await call(h.methods, ctx, "blockchain.estimatefee", [6]);
    const core = await h.daemon.call<{ feerate?: number }>("estimatesmartfee", [6]);
    assert.ok(core.feerate !== undefined && core.feerate > 0, JSON.stringify(core));
    assert.equal(fee, core.feerate);
    assert.equal(await call(h.methods, ctx, "blockchain.estimatefee", [6]), fee);
    assert.deepEqual(
      calls.filter((c) => c.startsWith("estimatesmartfee")),
      ["estimatesmartfee[6]"],
      "cached per tip",
    );
    // Targets are bucketed (2000 asks for 1008) and the mode is passed on, upper-cased.
    await call(h.methods, ctx, "blockchain.estimatefee", [2000]);
    await call(h.methods, ctx, "blockchain.estimatefee", { number: 6, mode: "economical" });
    assert.deepEqual(calls.filter((c) => c.startsWith("estimatesmartfee")).slice(1), [
      "estimatesmartfee[1008]",
      'estimatesmartfee[6,"ECONOMICAL"]',
    ]);
    await rejects(
      call(h.methods, ctx, "blockchain.estimatefee", [6, "fast"]),
      1,
      "unknown estimatefee mode: FAST",
    );
    // A mode that is not a string is no mode (ElectrumX's None).
    await call(h.methods, ctx, "blockchain.estimatefee", [7, 5]);
    assert.equal(calls.filter((c) => c.startsWith("estimatesmartfee")).at(-1), "estimatesmartfee[7]");
    await rejects(
      call(h.methods, ctx, "blockchain.estimatefee", [-1]),
      1,
      "-1 should be a non-negative integer",
    );
    h.node.mine(1);
    await h.follow();
    await call(h.methods, ctx, "blockchain.estimatefee", [6]);
    assert.equal(
      calls.filter((c) => c === "estimatesmartfee[6]").length,
      2,
      "a new tip invalidates the cache",
    );
    assert.deepEqual([0, 1, 2, 12, 13, 25, 26, 47, 49, 1000, 1008, 5000].map(bucketEstimateFeeTarget), [
      1,
      1,
      2,
      12,
      12,
      25,
      26,
      46,
      48,
      984,
      1008,
      1008,
    ]);

    // relayfee only below 1.6; mempool.get_info only from 1.6; both reuse bitcoind's answer for 60 s.
    assert.equal(await call(h.methods, old, "blockchain.relayfee"), 0.00001);
    await rejects(
      call(h.methods, ctx, "blockchain.relayfee"),
      -32601,
      'unknown method "blockchain.relayfee"',
    );
    await rejects(call(h.methods, old, "mempool.get_info"), -32601, 'unknown method "mempool.get_info"');
    calls = [];
    const info = await call(h.methods, ctx, "mempool.get_info");
    assert.deepEqual(info, { mempoolminfee: 0.00001, minrelaytxfee: 0.00001, incrementalrelayfee: 0.00001 });
    await call(h.methods, ctx, "mempool.get_info");
    clock += 59_000;
    await call(h.methods, ctx, "mempool.get_info");
    assert.equal(calls.length, 1);
    clock += 2_000;
    await call(h.methods, ctx, "mempool.get_info");
    assert.equal(calls.length, 2);

    assert.deepEqual(await call(h.methods, ctx, "mempool.get_fee_histogram"), h.mempool.feeHistogram());

    const features = await call(h.methods, ctx, "server.features");
    assert.deepEqual(features, {
      hosts: { "127.0.0.1": { tcp_port: 50001, ssl_port: null } },
      pruning: null,
      server_version: "Coulomb 0.1.0",
      protocol_min: "1.4",
      protocol_max: "1.6",
      genesis_hash: "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
      hash_function: "sha256",
      services: ["tcp://127.0.0.1:50001"],
      history_paging: true,
    });
    assert.equal(await call(h.methods, ctx, "server.donation_address"), "bcrt1qdonate");
    assert.deepEqual(await call(h.methods, ctx, "server.peers.subscribe"), []);
    assert.equal(await call(h.methods, ctx, "server.add_peer", [{ hosts: {} }]), false);
    assert.equal(await call(h.methods, ctx, "server.banner"), "You are connected to a Coulomb 0.1.0 server.");
  } finally {
    await h.close();
    await Deno.remove(bannerDir, { recursive: true });
  }
});

Deno.test("methods: banner file with substitutions, and the default when it cannot be read", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/banner.txt`;
  await Deno.writeTextFile(
    file,
    "Welcome to $SERVER_SUBVERSION ($SERVER_VERSION) on Core $DAEMON_VERSION $DAEMON_SUBVERSION; tips: $DONATION_ADDRESS",
  );
  const h = await harness({ seed: "methods-banner", blocks: 5, bannerFile: file });
  try {
    const ctx = new FakeSession();
    assert.equal(
      await call(h.methods, ctx, "server.banner"),
      "Welcome to Coulomb 0.1.0 (0.1.0) on Core 28.1.0 /Satoshi:28.1.0/; tips: bcrt1qdonate",
    );
    await Deno.remove(file);
    assert.equal(await call(h.methods, ctx, "server.banner"), "You are connected to a Coulomb 0.1.0 server.");
  } finally {
    await h.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("methods: argument helpers behave like ElectrumX's", () => {
  assert.equal(nonNegativeInteger(5), 5);
  assert.equal(nonNegativeInteger("17"), 17);
  assert.equal(nonNegativeInteger(7.9), 7, "Python's int() truncates");
  assert.throws(() => nonNegativeInteger(true), /True should be a non-negative integer/);
  assert.throws(() => nonNegativeInteger([1]), /\[1\] should be a non-negative integer/);
  assert.throws(() => nonNegativeInteger(null), /None should be a non-negative integer/);
  assert.throws(() => nonNegativeInteger(-3), /-3 should be a non-negative integer/);
  assert.equal(nonNegativeInteger(2 ** 60), 2 ** 60, "no 2^53 limit: callers answer out of range");
  assert.ok(Object.is(nonNegativeInteger("-0"), 0), '"-0" is 0, not -0');
  assert.equal(
    pyStr(["x", 1, null, true, { k: "v" }]),
    "['x', 1, None, True, {'k': 'v'}]",
    "as Python's str()",
  );
  assert.equal(pyStr("plain"), "plain");
  assert.equal(pyRepr("it's"), `"it's"`);
  assert.equal(pyRepr('say "hi"'), `'say "hi"'`);
  assert.equal(pyRepr("a\nb\\"), `'a\\nb\\\\'`);
});

/** A newline-delimited JSON-RPC client over TCP that sets notifications aside. */
class LineClient {
  private readonly lines: LineReader;
  readonly notifications: { method: string; params: unknown[] }[] = [];
  private constructor(private readonly conn: Deno.TcpConn) {
    this.lines = new LineReader(conn.readable);
  }

  static async connect(port: number): Promise<LineClient> {
    return new LineClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async request(id: number, method: string, params: unknown = []): Promise<Record<string, unknown>> {
    await this.conn.write(
      new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n"),
    );
    for (;;) {
      const msg = await this.next();
      if ("id" in msg && msg.id === id) return msg;
    }
  }

  /** The next notification of `method` (already received or arriving). */
  async notification(method: string): Promise<unknown[]> {
    for (;;) {
      const i = this.notifications.findIndex((n) => n.method === method);
      if (i >= 0) return this.notifications.splice(i, 1)[0].params;
      await this.next();
    }
  }

  private async next(): Promise<Record<string, unknown>> {
    const line = await this.lines.next();
    if (line === null) throw new Error("connection closed");
    const msg = JSON.parse(line);
    if (!("id" in msg)) this.notifications.push(msg);
    return msg;
  }

  close(): void {
    this.conn.close();
  }
}

Deno.test("methods: end to end over a real TCP session (S1's server), notifications included", async () => {
  const h = await harness({ seed: "methods-e2e" });
  const base = loadConfig({ DB_DIRECTORY: "/tmp/coulomb-e2e", DAEMON_URL: "http://u:p@127.0.0.1:8332/" }, []);
  assert.ok(!("help" in base) && !("version" in base));
  const config: Config = { ...base, services: [{ protocol: "tcp", host: "127.0.0.1", port: 0 }] };
  // The table needs the server's bound ports, the server needs the table.
  const bound: { server?: Server } = {};
  const methods = createMethods({
    store: h.store,
    mempool: h.mempool,
    daemon: h.daemon,
    config,
    network: NET,
    log: quiet,
    subscriptions: h.subscriptions,
    listening: () => bound.server?.addresses ?? [],
  });
  const server = bound.server = await startServer({
    config,
    methods,
    log: quiet,
    serverVersion: "Coulomb 0.1.0",
  });
  const port = server.addresses[0].port;
  const client = await LineClient.connect(port);
  try {
    assert.deepEqual((await client.request(1, "server.version", ["e2e", ["1.4", "1.6"]])).result, [
      "Coulomb 0.1.0",
      "1.6",
    ]);
    const features = (await client.request(2, "server.features")).result as Record<string, unknown>;
    assert.deepEqual(features.hosts, { "127.0.0.1": { tcp_port: port, ssl_port: null } });
    const tip = h.store.state.height;
    assert.deepEqual((await client.request(3, "blockchain.headers.subscribe")).result, {
      hex: hex(h.store.headerAt(tip)!),
      height: tip,
    });
    const script = p2wpkh(0x61);
    const sh = await scripthashOf(script);
    assert.equal(
      (await client.request(4, "blockchain.scripthash.subscribe", { scripthash: sh })).result,
      null,
    );
    const { chain, pool } = await h.naive();
    const u = spendable(chain, pool, tip);
    const raw = spendTx([u], [{ value: u.value - 2000, script }]);
    const txid = rhex(decodeTransaction(raw).txid);
    assert.equal((await client.request(5, "blockchain.transaction.broadcast", [hex(raw)])).result, txid);
    await h.follow();
    assert.deepEqual(await client.notification("blockchain.scripthash.subscribe"), [
      sh,
      await sha256hex(new TextEncoder().encode(`${txid}:0:`)),
    ]);
    h.node.mine(1);
    await h.follow();
    assert.deepEqual(await client.notification("blockchain.headers.subscribe"), [
      { height: tip + 1, hex: hex(h.store.headerAt(tip + 1)!) },
    ]);
    assert.deepEqual(await client.notification("blockchain.scripthash.subscribe"), [
      sh,
      await sha256hex(new TextEncoder().encode(`${txid}:${tip + 1}:`)),
    ]);
    assert.deepEqual((await client.request(6, "blockchain.block.header", [-1])).error, {
      code: 1,
      message: "-1 should be a non-negative integer",
    });
    assert.deepEqual((await client.request(7, "blockchain.relayfee")).error, {
      code: -32601,
      message: 'unknown method "blockchain.relayfee"',
    });
    const merkle = (await client.request(8, "blockchain.transaction.get_merkle", [txid, tip + 1])).result as {
      merkle: string[];
      pos: number;
    };
    const block = parseBlock(h.node.blockInfo(h.node.hashAt(tip + 1)!)!.raw);
    assert.deepEqual(
      rootFromBranch(unhex(txid).reverse(), merkle.merkle.map((b) => unhex(b).reverse()), merkle.pos),
      block.header.merkleRoot,
    );
  } finally {
    client.close();
    await server.close();
    await h.close();
  }
});

/** A method table over a stand-in store (only what a test's methods touch), with a minimal configuration. */
function bareMethods(store: object, mempool: MethodMempool, daemon: MethodDaemon) {
  return createMethods({
    store: store as Parameters<typeof createMethods>[0]["store"],
    mempool,
    daemon,
    config: {
      maxSend: 1_000_000,
      bannerFile: undefined,
      donationAddress: "",
      services: [],
      reportServices: [],
    },
    network: NET,
    log: quiet,
    subscriptions: new SubscriptionIndex({ maxSubs: 0, maxSessionSubs: 0 }),
  });
}

Deno.test("methods: an answer during which a reorg landed is computed again once the mempool has caught up", async () => {
  // The reorg's write begins after get_history has passed the wait for the mempool and while it waits for the
  // database: it reads the database after the reorg (the payment no longer confirmed) and the mempool before
  // the refresh that brings the payment back. It must not answer from that pair.
  const txid = new Uint8Array(32).fill(7);
  const payment = { txid, txidHex: rhex(txid), fee: 500, hasUnconfirmedParent: false };
  let pool: (typeof payment)[] = [];
  let backups = 0;
  let refresh: PromiseWithResolvers<void> | undefined;
  let read: PromiseWithResolvers<unknown> | undefined;
  const empty = {
    count: 0,
    txNums: new Float64Array(0),
    heights: new Int32Array(0),
    txids: new Uint8Array(0),
  };
  const state = { height: 100, tipHash: new Uint8Array(32), txCount: 1000 };
  const store = {
    state,
    followCache: () => {},
    cachedHistory: () => undefined,
    historyRows: () => (read = Promise.withResolvers()).promise,
  };
  const methods = bareMethods(store, {
    history: () => pool,
    balanceDelta: () => 0,
    utxos: () => [],
    isSpent: () => false,
    feeHistogram: () => [],
    rawTx: () => undefined,
    settled: () => refresh?.promise,
    backupCount: () => backups,
  }, { call: () => Promise.reject(new Error("no daemon")) });
  const sh = "ab".repeat(32);
  const answer = call(methods, new FakeSession("1.4"), "blockchain.scripthash.get_history", [sh]);
  await Promise.resolve();
  assert.ok(read, "waiting for the database");
  // The reorg lands: the database no longer holds the payment, and the mempool will have it after its refresh.
  state.height = 99;
  backups++;
  refresh = Promise.withResolvers();
  const first = read;
  first.resolve(empty);
  await new Promise((resolve) => setTimeout(resolve, 0));
  pool = [payment];
  const refreshed = refresh;
  refresh = undefined;
  refreshed.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.notEqual(read, first, "read again after the refresh");
  read!.resolve(empty);
  assert.deepEqual(await answer, [{ tx_hash: rhex(txid), height: 0, fee: 500 }]);
});

Deno.test("methods: estimatefee is -1 without an estimate; bitcoind errors become code 2 with ElectrumX's text", async () => {
  const replies: Record<string, () => unknown> = {
    estimatesmartfee: () => ({ errors: ["Insufficient data or no feerate found"], blocks: 0 }),
    getnetworkinfo: () => {
      throw new DaemonError(-28, "Loading block index…");
    },
  };
  const daemon: MethodDaemon = {
    call<T>(method: string): Promise<T> {
      try {
        return Promise.resolve(replies[method]() as T);
      } catch (e) {
        return Promise.reject(e);
      }
    },
  };
  const state = { height: 0, tipHash: new Uint8Array(32) };
  const methods = bareMethods({ state, followCache: () => {} }, {
    history: () => [],
    balanceDelta: () => 0,
    utxos: () => [],
    isSpent: () => false,
    feeHistogram: () => [],
    rawTx: () => undefined,
  }, daemon);
  const ctx = new FakeSession("1.4");
  assert.equal(await call(methods, ctx, "blockchain.estimatefee", [3]), -1);
  await rejects(
    call(methods, ctx, "blockchain.relayfee"),
    2,
    "daemon error: DaemonError({'code': -28, 'message': 'Loading block index…'})",
  );
  replies.estimatesmartfee = () => {
    throw new DaemonError(-8, "it's broken");
  };
  await rejects(
    call(methods, ctx, "blockchain.estimatefee", [4]),
    2,
    `daemon error: DaemonError({'code': -8, 'message': "it's broken"})`,
  );
  // A failed estimate is not cached: the next call asks again.
  replies.estimatesmartfee = () => ({ feerate: 0.0002, blocks: 4 });
  assert.equal(await call(methods, ctx, "blockchain.estimatefee", [4]), 0.0002);
});
