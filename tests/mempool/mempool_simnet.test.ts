// Mempool end to end: simnet's bitcoind over real JSON-RPC, a real Store kept at the tip by the real processor
// and sync loop. After traffic, blocks, a reorg and a fetch race, every hashX's mempool answers are compared
// with an independent model built from SimNode's own mempool, parsed by bitcoinjs-lib and hashed by node:crypto.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as bitcoin from "bitcoinjs-lib";
import { NETWORKS } from "../../src/chain/network.ts";
import { Daemon, type Settled } from "../../src/daemon/daemon.ts";
import { Store } from "../../src/db/store.ts";
import type { Log } from "../../src/log.ts";
import { compactHistogram } from "../../src/mempool/histogram.ts";
import { MempoolFollower } from "../../src/mempool/follower.ts";
import { Mempool, type MempoolDaemon } from "../../src/mempool/mempool.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { SyncLoop } from "../../src/sync/sync.ts";
import { startSimnet } from "../../scripts/simnet/main.ts";
import type { SimNode } from "../../scripts/simnet/node.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
const displayHex = (b: Uint8Array) => hex(Uint8Array.from(b).reverse());
const hashXHex = (script: Uint8Array) =>
  createHash("sha256").update(script).digest().subarray(0, 11).toString("hex");
const unspendable = (s: Uint8Array) => (s.length > 0 && s[0] === 0x6a) || s.length > 10_000;

function captureLog(lines: string[]): Log {
  return {
    debug: () => {},
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARNING ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
    enabled: () => false,
  };
}

interface ModelTx {
  fee: number;
  vsize: number;
  minusOne: boolean;
  raw: Uint8Array;
  hashXs: Set<string>;
}

/** What the mempool should hold, computed naively from the node's own mempool and confirmed UTXO set. */
interface Model {
  txs: Map<string, ModelTx>;
  hashXs: Map<string, { txs: Set<string>; delta: number; outputs: [string, number, number][] }>;
  spent: Set<string>;
}

function model(node: SimNode): Model {
  const parsed = new Map<string, bitcoin.Transaction>();
  const raws = new Map<string, Uint8Array>();
  for (const e of node.mempoolEntries()) {
    const t = bitcoin.Transaction.fromBuffer(e.raw);
    parsed.set(t.getId(), t);
    raws.set(t.getId(), e.raw);
  }
  const m: Model = { txs: new Map(), hashXs: new Map(), spent: new Set() };
  const at = (h: string) => {
    let s = m.hashXs.get(h);
    if (!s) m.hashXs.set(h, s = { txs: new Set(), delta: 0, outputs: [] });
    return s;
  };
  for (const [id, t] of parsed) {
    let valueIn = 0, valueOut = 0, minusOne = false;
    const touched = new Set<string>();
    for (const input of t.ins) {
      const prevId = displayHex(input.hash);
      const parent = parsed.get(prevId);
      let script: Uint8Array, value: number;
      if (parent) {
        minusOne = true;
        script = parent.outs[input.index].script;
        value = Number(parent.outs[input.index].value);
      } else {
        const coin = node.utxo(input.hash, input.index);
        assert.ok(coin, `the node's mempool tx ${id} spends a coin the node has`);
        script = coin.script;
        value = coin.value;
      }
      valueIn += value;
      const h = hashXHex(script);
      at(h).delta -= value;
      at(h).txs.add(id);
      touched.add(h);
      m.spent.add(`${prevId}:${input.index}`);
    }
    t.outs.forEach((o, vout) => {
      valueOut += Number(o.value);
      if (unspendable(o.script)) return;
      const h = hashXHex(o.script);
      at(h).delta += Number(o.value);
      at(h).txs.add(id);
      at(h).outputs.push([id, vout, Number(o.value)]);
      touched.add(h);
    });
    m.txs.set(id, {
      fee: valueIn - valueOut,
      vsize: t.virtualSize(),
      minusOne,
      raw: raws.get(id)!,
      hashXs: touched,
    });
  }
  return m;
}

function compare(mempool: Mempool, m: Model): void {
  assert.equal(mempool.size, m.txs.size);
  assert.equal(mempool.pendingCount, 0);
  let vsize = 0;
  for (const [id, t] of m.txs) {
    const txid = unhex(id).reverse();
    assert.ok(mempool.has(txid), `${id} is in the mempool`);
    assert.deepEqual(mempool.rawTx(txid), t.raw);
    vsize += t.vsize;
  }
  assert.equal(mempool.vsizeTotal, vsize);
  for (const [h, s] of m.hashXs) {
    const hashX = unhex(h);
    const want = [...s.txs]
      .map((id) => {
        const t = m.txs.get(id)!;
        return { id, height: t.minusOne ? -1 : 0, fee: t.fee, vsize: t.vsize };
      })
      .sort((a, b) => b.height - a.height || (a.id < b.id ? -1 : 1));
    const got = mempool.history(hashX).map((i) => ({
      id: i.txidHex,
      height: i.hasUnconfirmedParent ? -1 : 0,
      fee: i.fee,
      vsize: i.vsize,
    }));
    assert.deepEqual(got, want, `history of ${h}`);
    assert.equal(mempool.balanceDelta(hashX), s.delta, `balance delta of ${h}`);
    const utxos = s.outputs
      .filter(([id, vout]) => !m.spent.has(`${id}:${vout}`))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]))
      .map(([id, vout, value]) => ({ txHash: id, vout, value }));
    assert.deepEqual(
      mempool.utxos(hashX).map((u) => ({ ...u, txHash: displayHex(u.txHash) })),
      utxos,
      `utxos of ${h}`,
    );
    for (const [id, vout] of s.outputs) {
      assert.equal(mempool.isSpent(unhex(id).reverse(), vout), m.spent.has(`${id}:${vout}`));
    }
  }
  for (const op of m.spent) {
    const [id, vout] = op.split(":");
    assert.ok(mempool.isSpent(unhex(id).reverse(), Number(vout)), `${op} is spent`);
  }
}

/** Counts the daemon calls the mempool makes; `beforeBatch` runs once, before the next batch is sent. */
class CountingDaemon implements MempoolDaemon {
  calls: { method: string; size: number }[] = [];
  beforeBatch: (() => void) | undefined;
  constructor(private readonly inner: Daemon) {}
  call<T>(method: string, params: unknown[] = []): Promise<T> {
    // Every refresh asks for the tip around its list; the steps count the other calls.
    if (method !== "getbestblockhash") this.calls.push({ method, size: 1 });
    return this.inner.call<T>(method, params);
  }
  batchSettled<T>(method: string, paramsList: unknown[][]): Promise<Settled<T>[]> {
    this.calls.push({ method, size: paramsList.length });
    const hook = this.beforeBatch;
    this.beforeBatch = undefined;
    hook?.();
    return this.inner.batchSettled<T>(method, paramsList);
  }
}

const touchedSet = (t: Uint8Array[]) => new Set(t.map(hex));

Deno.test("the mempool follows simnet through traffic, blocks, a reorg and a fetch race", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-mempool-" });
  const lines: string[] = [];
  const log = captureLog(lines);
  const sim = await startSimnet({ blocks: 110, seed: "mempool-test", port: 0, datadir: `${dir}/sim` });
  const node = sim.node;
  const daemon = new Daemon({
    urls: [`http://127.0.0.1:${sim.port}/`],
    cookieFile: sim.cookiePath,
    timeoutMs: 30_000,
    log,
  });
  const store = await Store.open(`${dir}/db`, NETWORKS.regtest, { log });
  const processor = new BlockProcessor(store, {
    reorgLimit: 20,
    cacheMb: 64,
    flushSize: 1_000_000,
    log,
    network: NETWORKS.regtest,
  });
  const waiting: { height: number; resolve: () => void }[] = [];
  const loop = new SyncLoop(daemon, processor, log, {
    maxQueueBytes: 16 << 20,
    pollIntervalMs: 3_600_000,
    onTip: (h) => {
      for (const w of waiting.splice(0)) h === w.height ? w.resolve() : waiting.push(w);
    },
  });
  const atTip = (height: number) => new Promise<void>((resolve) => waiting.push({ height, resolve }));
  const syncStore = async () => {
    const reached = atTip(node.height);
    loop.pollNow();
    await reached;
    assert.equal(store.state.height, node.height);
  };
  const first = atTip(node.height);
  const running = loop.run();
  const counting = new CountingDaemon(daemon);
  const mempool = new Mempool({
    daemon: counting,
    store,
    log,
    network: NETWORKS.regtest,
    batchSize: 100,
    histogramRefreshMs: 0,
  });
  // As main.ts wires it: each flush takes what it confirmed out of the mempool.
  let confirmedTouched: Uint8Array[] = [];
  store.onAppend((txids, spends) =>
    confirmedTouched = confirmedTouched.concat(mempool.confirmed(txids, spends))
  );
  try {
    await first;

    await t.step("an empty mempool", async () => {
      assert.deepEqual(await mempool.refresh(), []);
      assert.equal(mempool.size, 0);
      assert.deepEqual(mempool.feeHistogram(), []);
      assert.ok(lines.includes("INFO mempool (regtest) synced: 0 txs, 0 vbytes"));
    });

    await t.step("traffic with chains of unconfirmed txs, fetched in batches of 100", async () => {
      node.addMempoolTraffic(450);
      counting.calls.length = 0;
      const touched = await mempool.refresh();
      const m = model(node);
      assert.equal(m.txs.size, 450);
      assert.ok([...m.txs.values()].filter((x) => x.minusOne).length > 20, "some txs have mempool parents");
      compare(mempool, m);
      assert.deepEqual(touchedSet(touched), new Set(m.hashXs.keys()));
      assert.equal(counting.calls[0].method, "getrawmempool");
      const batches = counting.calls.slice(1);
      assert.equal(batches.length, 5);
      assert.ok(batches.every((c) => c.method === "getrawtransaction" && c.size <= 100));
      assert.equal(batches.reduce((s, c) => s + c.size, 0), 450);

      counting.calls.length = 0;
      assert.deepEqual(await mempool.refresh(), []);
      assert.deepEqual(counting.calls, [{ method: "getrawmempool", size: 1 }]);
    });

    await t.step("a mempool bigger than a block; the fee histogram", async () => {
      node.addMempoolTraffic(6500);
      await mempool.refresh();
      const m = model(node);
      compare(mempool, m);
      const sizes = new Map<number, number>();
      for (const e of node.mempoolEntries()) {
        const vsize = Math.ceil(e.weight / 4);
        const r = Math.floor((e.fee * 10) / vsize);
        sizes.set(r, (sizes.get(r) ?? 0) + vsize);
      }
      const histogram = mempool.feeHistogram();
      assert.ok(histogram.length >= 5);
      assert.deepEqual(histogram, compactHistogram(sizes));
    });

    await t.step("a block: confirmed txs leave, children of confirmed parents go from -1 to 0", async () => {
      const before = model(node);
      node.mine(1);
      // bitcoind is at a block the database does not have yet: its list is not used, nothing changes.
      const skipped = mempool.behindTip;
      assert.deepEqual(await mempool.refresh(), []);
      assert.equal(mempool.behindTip, skipped + 1);
      compare(mempool, before);
      // The flush of the block takes its transactions out at once.
      confirmedTouched = [];
      await syncStore();
      const touched = touchedSet(confirmedTouched);
      const after = model(node);
      assert.ok(after.txs.size > 0 && after.txs.size < before.txs.size, "the block did not take everything");
      compare(mempool, after);
      const flipped = [...after.txs].filter(([id, x]) => !x.minusOne && before.txs.get(id)!.minusOne);
      assert.ok(flipped.length > 0);
      for (const [id, x] of flipped) {
        const info = mempool.history(unhex([...x.hashXs][0])).find((i) => i.txidHex === id)!;
        assert.equal(info.hasUnconfirmedParent, false);
        for (const h of x.hashXs) assert.ok(touched.has(h), "a flipped tx's hashXs are reported");
      }
      assert.deepEqual(await mempool.refresh(), [], "the next refresh finds nothing more to change");
      compare(mempool, after);
    });

    await t.step(
      "a reorg returns txs to the mempool; they wait for the database, then children go -1",
      async () => {
        const before = model(node);
        const result = node.reorg(1, { toMempool: 400 });
        assert.ok(result.toMempool.length > 0);
        // The database still has the old block: bitcoind's list waits for it.
        assert.deepEqual(await mempool.refresh(), []);
        compare(mempool, before);
        await syncStore();
        await mempool.refresh();
        const m = model(node);
        compare(mempool, m);
        const returned = new Set(result.toMempool.map(displayHex));
        const children = [...m.txs].filter(([id, x]) => x.minusOne && !returned.has(id));
        assert.ok(children.length > 0, "txs that stayed in the mempool have parents again");
      },
    );

    await t.step("txs mined between getrawmempool and getrawtransaction are ignored (-5)", async () => {
      const fresh = node.addMempoolTraffic(60).map(displayHex);
      const inNodeMempool = (id: string) => node.mempoolTx(unhex(id).reverse()) !== undefined;
      counting.beforeBatch = () => {
        while (fresh.some(inNodeMempool)) node.mine(1);
      };
      counting.calls.length = 0;
      await mempool.refresh();
      for (const id of fresh) assert.ok(!mempool.has(unhex(id).reverse()), id);
      assert.equal(counting.calls.filter((c) => c.method === "getrawtransaction").length, 1);
      assert.equal(mempool.pendingCount, 0);
      await syncStore();
      await mempool.refresh();
      compare(mempool, model(node));
    });

    await t.step("the follower reports exactly the hashXs new txs touch", async () => {
      const reported: Uint8Array[][] = [];
      const follower = new MempoolFollower(mempool, {
        pollMs: 3_600_000,
        log,
        onRefresh: (touched) => void reported.push(touched),
      });
      follower.start();
      await follower.refreshNow();
      const fresh = node.addMempoolTraffic(15).map(displayHex);
      const touched = await follower.refreshNow();
      const m = model(node);
      const want = new Set(fresh.flatMap((id) => [...m.txs.get(id)!.hashXs]));
      assert.deepEqual(touchedSet(touched), want);
      assert.equal(reported.at(-1), touched);
      await follower.stop();
      compare(mempool, m);
    });

    assert.deepEqual(lines.filter((l) => l.startsWith("WARNING") || l.startsWith("ERROR")), []);
  } finally {
    loop.stop();
    await running;
    daemon.close();
    await store.close();
    await sim.close();
    await Deno.remove(dir, { recursive: true });
  }
});
