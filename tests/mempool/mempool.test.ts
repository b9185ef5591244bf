// Mempool against a scripted daemon and database: transactions are built with bitcoinjs-lib, hashXs computed
// with node:crypto, so nothing here shares code with what it checks. Each test drives one behaviour the
// Electrum methods rely on (heights 0/-1 and their flips, pending inputs, races, batching, atomic updates).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as bitcoin from "bitcoinjs-lib";
import type { Settled } from "../../src/daemon/daemon.ts";
import { DaemonError } from "../../src/daemon/errors.ts";
import type { Log } from "../../src/log.ts";
import { BEHIND_MAX_MS, Mempool, MempoolError, type MempoolStore } from "../../src/mempool/mempool.ts";
import { compactHistogram } from "../../src/mempool/histogram.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g)!, (h) => parseInt(h, 16));
const reversed = (b: Uint8Array) => Uint8Array.from(b).reverse();
const sha = (data: Uint8Array | string) => new Uint8Array(createHash("sha256").update(data).digest());
const hashXOf = (script: Uint8Array) => sha(script).subarray(0, 11);

/** A standard P2WPKH script for wallet number n. */
function script(n: number): Uint8Array {
  const s = new Uint8Array(22);
  s[1] = 0x14;
  s.set(sha(`key ${n}`).subarray(0, 20), 2);
  return s;
}

/** The hash (internal order) of the fake chain's block at a height. */
const blockHash = (height: number) => sha(`block ${height}`);

/** A confirmed coin's txid (internal order) for a label. */
const coinTxid = (label: string) => sha(`coin ${label}`);

interface BuiltTx {
  raw: Uint8Array;
  /** Internal order. */
  txid: Uint8Array;
  /** Display hex. */
  id: string;
  vsize: number;
}

function makeTx(
  inputs: [Uint8Array, number][],
  outputs: [Uint8Array, number][],
  opts: { witness?: boolean; locktime?: number } = {},
): BuiltTx {
  const t = new bitcoin.Transaction();
  t.version = 2;
  t.locktime = opts.locktime ?? 0;
  for (const [txid, vout] of inputs) t.addInput(txid, vout);
  for (const [s, v] of outputs) t.addOutput(s, BigInt(v));
  if (opts.witness) t.setWitness(0, [new Uint8Array(71), new Uint8Array(33)]);
  const id = t.getId();
  return { raw: new Uint8Array(t.toBuffer()), txid: reversed(unhex(id)), id, vsize: t.virtualSize() };
}

class FakeStore implements MempoolStore {
  state = { height: 100, tipHash: blockHash(100) };
  lookups = 0;
  private coins = new Map<string, { hashX: Uint8Array; value: number }>();

  /** A flush: coins appear or disappear and the state object changes. */
  flush(add: [Uint8Array, number, Uint8Array, number][], remove: [Uint8Array, number][] = []): void {
    for (const [txid, vout, s, value] of add) {
      this.coins.set(`${hex(txid)}:${vout}`, { hashX: hashXOf(s), value });
    }
    for (const [txid, vout] of remove) this.coins.delete(`${hex(txid)}:${vout}`);
    this.state = { height: this.state.height + 1, tipHash: blockHash(this.state.height + 1) };
  }

  /** Runs after a lookup has read its coin and before the caller sees it. */
  afterLookup: ((txid: Uint8Array, vout: number) => void) | undefined;

  lookupUtxo(txid: Uint8Array, vout: number) {
    this.lookups++;
    const c = this.coins.get(`${hex(txid)}:${vout}`);
    const found = c && { hashX: c.hashX.slice(), value: c.value };
    this.afterLookup?.(txid, vout);
    return Promise.resolve(found);
  }
}

class FakeDaemon {
  /** Display txid → raw hex, in acceptance order. */
  pool = new Map<string, string>();
  calls: string[] = [];
  batchSizes: number[] = [];
  /** Replaces the getrawmempool reply. */
  listReply: unknown = undefined;
  /** Forced replies for getrawtransaction of some txids. */
  forced = new Map<string, Settled<unknown>>();
  /** Runs after getrawmempool answered and before getrawtransaction answers. */
  beforeFetch: (() => void | Promise<void>) | undefined;
  inFlight = 0;
  maxInFlight = 0;

  add(...txs: BuiltTx[]): void {
    for (const t of txs) this.pool.set(t.id, hex(t.raw));
  }

  drop(...txs: BuiltTx[]): void {
    for (const t of txs) this.pool.delete(t.id);
  }

  /** bitcoind's tip, display hex (setup makes it follow the store's: the database is in sync). */
  bestHash: () => string = () => "";
  /** getbestblockhash calls (not in `calls`). */
  tipCalls = 0;
  /** getmempoolinfo's `loaded` (false while a restarted bitcoind reloads mempool.dat); a thrown error if set. */
  loaded: boolean | Error = true;
  /** getmempoolinfo calls (not in `calls`). */
  infoCalls = 0;

  async call<T>(method: string, _params: unknown[] = []): Promise<T> {
    if (method === "getbestblockhash") {
      this.tipCalls++;
      await Promise.resolve();
      return this.bestHash() as T;
    }
    if (method === "getmempoolinfo") {
      this.infoCalls++;
      await Promise.resolve();
      if (this.loaded instanceof Error) throw this.loaded;
      return { loaded: this.loaded, size: this.pool.size } as T;
    }
    this.calls.push(method);
    assert.equal(method, "getrawmempool");
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    await Promise.resolve();
    this.inFlight--;
    return (this.listReply ?? [...this.pool.keys()]) as T;
  }

  async batchSettled<T>(method: string, paramsList: unknown[][]): Promise<Settled<T>[]> {
    this.calls.push(method);
    this.batchSizes.push(paramsList.length);
    assert.equal(method, "getrawtransaction");
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    await this.beforeFetch?.();
    this.inFlight--;
    return paramsList.map(([id, verbosity]) => {
      assert.equal(verbosity, 0);
      const forced = this.forced.get(id as string);
      if (forced) return forced as Settled<T>;
      const raw = this.pool.get(id as string);
      if (raw === undefined) {
        return { error: { code: -5, message: "No such mempool or blockchain transaction" } };
      }
      return { result: raw as T };
    });
  }
}

function captureLog(lines: string[] = []): Log {
  return {
    debug: (m) => lines.push(`DEBUG ${m}`),
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARNING ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
    enabled: () => true,
  };
}

function setup(
  opts: { batchSize?: number; histogramRefreshMs?: number; now?: () => number; backupWaitMs?: number } = {},
) {
  const daemon = new FakeDaemon();
  const store = new FakeStore();
  daemon.bestHash = () => hex(reversed(store.state.tipHash));
  const lines: string[] = [];
  const mempool = new Mempool({
    daemon,
    store,
    log: captureLog(lines),
    network: { name: "regtest" },
    ...opts,
  });
  return { daemon, store, mempool, lines };
}

const keys = (hashXs: Uint8Array[]) => hashXs.map(hex).sort();
const hxs = (...scripts: Uint8Array[]) => [...new Set(scripts.map((s) => hex(hashXOf(s))))].sort();
const history = (m: Mempool, s: Uint8Array) =>
  m.history(hashXOf(s)).map((i) => `${i.txidHex}:${i.hasUnconfirmedParent ? -1 : 0}:${i.fee}`);

Deno.test("a chain of unconfirmed transactions: heights 0 and -1, fees, deltas, utxos, spends", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3), OPRET = Uint8Array.of(0x6a, 0x01, 0x07);
  const coin = coinTxid("a");
  store.flush([[coin, 3, A, 50_000]]);
  const p = makeTx([[coin, 3]], [[B, 30_000], [A, 19_000], [OPRET, 0]], { witness: true });
  const c = makeTx([[p.txid, 0]], [[C, 29_500]]);
  const d = makeTx([[c.txid, 0], [p.txid, 1]], [[A, 48_000]]);
  daemon.add(p, c, d);

  const touched = await mempool.refresh();
  assert.deepEqual(keys(touched), hxs(A, B, C));
  assert.equal(mempool.size, 3);
  assert.equal(mempool.vsizeTotal, p.vsize + c.vsize + d.vsize);
  assert.deepEqual(history(mempool, B), [`${p.id}:0:1000`, `${c.id}:-1:500`].sort(byHeightThenId));
  assert.deepEqual(
    history(mempool, A),
    [`${p.id}:0:1000`, `${d.id}:-1:${29_500 + 19_000 - 48_000}`].sort(byHeightThenId),
  );
  const info = mempool.history(hashXOf(A)).find((i) => i.txidHex === p.id)!;
  assert.deepEqual(info.txid, p.txid);
  assert.equal(info.vsize, p.vsize);
  // A: -50000 (spent coin) +19000 (p) -19000 (d spends p:1) +48000 (d) = -2000
  assert.equal(mempool.balanceDelta(hashXOf(A)), -2000);
  assert.equal(mempool.balanceDelta(hashXOf(B)), 0);
  assert.equal(mempool.balanceDelta(hashXOf(C)), 29_500 - 29_500);
  assert.equal(mempool.balanceDelta(hashXOf(script(99))), 0);
  assert.deepEqual(mempool.utxos(hashXOf(A)), [{ txHash: d.txid, vout: 0, value: 48_000 }]);
  assert.deepEqual(mempool.utxos(hashXOf(B)), []);
  assert.ok(mempool.isSpent(coin, 3) && mempool.isSpent(p.txid, 0) && mempool.isSpent(p.txid, 1));
  assert.ok(!mempool.isSpent(p.txid, 2) && !mempool.isSpent(d.txid, 0) && !mempool.isSpent(coin, 2));
  assert.ok(mempool.has(c.txid) && !mempool.has(coin));
  assert.deepEqual(mempool.rawTx(p.txid), p.raw);
  assert.equal(mempool.rawTx(coin), undefined);
  // A 32-byte script hash works too: only its first 11 bytes are the hashX.
  assert.equal(mempool.history(sha(A)).length, 2);
});

function byHeightThenId(a: string, b: string): number {
  const ha = a.includes(":-1:") ? 1 : 0, hb = b.includes(":-1:") ? 1 : 0;
  return ha - hb || (a < b ? -1 : 1);
}

Deno.test("mempool order is height 0 before -1, then display-order txid", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1);
  const txs: BuiltTx[] = [];
  for (let i = 0; i < 6; i++) {
    const coin = coinTxid(`o${i}`);
    store.flush([[coin, 0, A, 10_000]]);
    txs.push(makeTx([[coin, 0]], [[A, 9_000]]));
  }
  for (let i = 0; i < 6; i++) txs.push(makeTx([[txs[i].txid, 0]], [[A, 8_000 - i]]));
  daemon.add(...txs);
  await mempool.refresh();
  const got = mempool.history(hashXOf(A)).map((i) => [i.hasUnconfirmedParent ? -1 : 0, i.txidHex]);
  const want = txs.map((t, i) => [i < 6 ? 0 : -1, t.id]).sort((a, b) =>
    (b[0] as number) - (a[0] as number) || (a[1] < b[1] ? -1 : 1)
  );
  assert.deepEqual(got, want);
});

Deno.test("a parent confirming flips its child to 0; coming back in a reorg flips it to -1 again", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3), D = script(4);
  const coin = coinTxid("flip");
  store.flush([[coin, 0, A, 20_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  const c = makeTx([[p.txid, 0]], [[C, 18_000]]);
  const other = makeTx([[coinTxid("other"), 0]], [[D, 1]]);
  store.flush([[coinTxid("other"), 0, D, 5_000]]);
  daemon.add(p, c, other);
  await mempool.refresh();
  assert.deepEqual(history(mempool, C), [`${c.id}:-1:1000`]);

  // p is mined: bitcoind drops it, the database gains its output and loses the coin it spent.
  daemon.drop(p);
  store.flush([[p.txid, 0, B, 19_000]], [[coin, 0]]);
  const touched = await mempool.refresh();
  assert.deepEqual(keys(touched), hxs(A, B, C), "p's hashXs and the flipped child's, not D");
  assert.deepEqual(history(mempool, C), [`${c.id}:0:1000`]);
  assert.deepEqual(history(mempool, B), [`${c.id}:0:1000`]);
  assert.equal(mempool.balanceDelta(hashXOf(B)), -19_000, "c now spends a confirmed coin of B");
  assert.equal(mempool.history(hashXOf(A)).length, 0);
  assert.ok(!mempool.isSpent(coin, 0));
  assert.ok(mempool.isSpent(p.txid, 0));

  // The block is disconnected: p is back in the mempool, c keeps spending it and goes back to -1.
  store.flush([[coin, 0, A, 20_000]], [[p.txid, 0]]);
  daemon.pool = new Map([[p.id, hex(p.raw)], [c.id, hex(c.raw)], [other.id, hex(other.raw)]]);
  const back = await mempool.refresh();
  assert.deepEqual(keys(back), hxs(A, B, C));
  assert.deepEqual(history(mempool, C), [`${c.id}:-1:1000`]);
  assert.deepEqual(history(mempool, B), [`${p.id}:0:1000`, `${c.id}:-1:1000`].sort(byHeightThenId));
  assert.equal(mempool.balanceDelta(hashXOf(B)), 0);
});

const packed = (...txids: Uint8Array[]) => {
  const out = new Uint8Array(32 * txids.length);
  txids.forEach((t, i) => out.set(t, 32 * i));
  return out;
};

Deno.test("confirmed(): a flush's transactions leave at once, children flip to 0, the next refresh agrees", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3);
  const coin = coinTxid("conf");
  store.flush([[coin, 0, A, 20_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  const c = makeTx([[p.txid, 0]], [[C, 18_000]]);
  daemon.add(p, c);
  await mempool.refresh();
  assert.equal(mempool.balanceDelta(hashXOf(B)), 0);

  // The block with p is flushed; bitcoind has not been asked again yet.
  store.flush([[p.txid, 0, B, 19_000]], [[coin, 0]]);
  const touched = mempool.confirmed(packed(coinTxid("unrelated"), p.txid));
  assert.deepEqual(keys(touched), hxs(A, B, C));
  assert.ok(!mempool.has(p.txid) && mempool.has(c.txid));
  assert.equal(mempool.size, 1);
  assert.equal(mempool.vsizeTotal, c.vsize);
  assert.deepEqual(history(mempool, C), [`${c.id}:0:1000`]);
  assert.deepEqual(history(mempool, B), [`${c.id}:0:1000`]);
  assert.equal(mempool.balanceDelta(hashXOf(A)), 0, "A's spend is confirmed now, not unconfirmed");
  assert.equal(mempool.balanceDelta(hashXOf(B)), -19_000, "c spends a confirmed coin of B");
  assert.ok(!mempool.isSpent(coin, 0) && mempool.isSpent(p.txid, 0));

  daemon.drop(p);
  assert.deepEqual(await mempool.refresh(), [], "the refresh finds nothing left to change");
  assert.equal(mempool.balanceDelta(hashXOf(B)), -19_000);
  assert.deepEqual(mempool.confirmed(packed(p.txid)), [], "confirming it again changes nothing");
});

Deno.test("confirmed() during a refresh: nothing removed twice, and nothing confirmed added back", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3), D = script(4);
  const coin = coinTxid("race1"), coin2 = coinTxid("race2"), coin3 = coinTxid("race3");
  const coin4 = coinTxid("race4");
  store.flush([[coin, 0, A, 20_000], [coin2, 0, D, 7_000], [coin3, 0, D, 3_000], [coin4, 0, D, 4_000]]);
  const old = makeTx([[coin2, 0]], [[D, 6_000]]);
  const stays = makeTx([[coin4, 0]], [[D, 3_900]]);
  daemon.add(old, stays);
  await mempool.refresh();
  assert.equal(mempool.balanceDelta(hashXOf(D)), -1_100);

  // bitcoind's list is taken before the block (old gone from it, p and its child c new); while their bytes
  // are fetched, the block confirming old and p is flushed.
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  const c = makeTx([[p.txid, 0]], [[C, 18_000]]);
  const later = makeTx([[coin3, 0]], [[D, 2_500]]);
  daemon.drop(old);
  daemon.add(p, c, later);
  daemon.beforeFetch = () => {
    daemon.beforeFetch = undefined;
    store.flush([[old.txid, 0, D, 6_000], [p.txid, 0, B, 19_000]], [[coin2, 0], [coin, 0]]);
    mempool.confirmed(packed(old.txid, p.txid));
  };
  await mempool.refresh();
  assert.ok(!mempool.has(old.txid) && !mempool.has(p.txid), "neither is in the mempool");
  assert.equal(mempool.balanceDelta(hashXOf(D)), -600, "old's delta was taken out once; later's counts");
  assert.equal(mempool.history(hashXOf(B)).length, 0, "c waits: its parent failed against the new state");
  daemon.drop(p);
  await mempool.refresh();
  assert.deepEqual(history(mempool, C), [`${c.id}:0:1000`], "c resolves against the confirmed p");
  assert.equal(mempool.balanceDelta(hashXOf(B)), -19_000);
});

/** Packs outpoints as a flush's spends: txid (internal order), then the vout as a little-endian u32. */
const outpoints = (...ops: [Uint8Array, number][]) => {
  const out = new Uint8Array(36 * ops.length);
  ops.forEach(([txid, vout], i) => {
    out.set(txid, 36 * i);
    new DataView(out.buffer).setUint32(36 * i + 32, vout, true);
  });
  return out;
};

Deno.test("confirmed() with the block's spends: a conflicting tx and its descendants leave with the flush", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3), D = script(4), E = script(5), F = script(6);
  const coin = coinTxid("rbf1"), coin2 = coinTxid("rbf2");
  store.flush([[coin, 0, A, 20_000], [coin2, 1, D, 5_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  const c = makeTx([[p.txid, 0]], [[C, 18_000]]);
  const g = makeTx([[c.txid, 0]], [[E, 17_000]]);
  const u = makeTx([[coin2, 1]], [[D, 4_000]]);
  daemon.add(p, c, g, u);
  await mempool.refresh();
  assert.equal(mempool.size, 4);

  // A replacement of p that we never saw (r) is mined: bitcoind drops p, c and g with the block.
  const r = makeTx([[coin, 0]], [[F, 18_500]]);
  store.flush([[r.txid, 0, F, 18_500]], [[coin, 0]]);
  const touched = mempool.confirmed(
    packed(coinTxid("coinbase"), r.txid),
    outpoints([coinTxid("x"), 7], [coin, 0]),
  );
  assert.deepEqual(keys(touched), hxs(A, B, C, E));
  assert.ok(!mempool.has(p.txid) && !mempool.has(c.txid) && !mempool.has(g.txid) && mempool.has(u.txid));
  assert.equal(mempool.size, 1);
  assert.equal(mempool.vsizeTotal, u.vsize);
  for (const s of [A, B, C, E]) {
    assert.equal(mempool.balanceDelta(hashXOf(s)), 0);
    assert.deepEqual(mempool.history(hashXOf(s)), []);
    assert.deepEqual(mempool.utxos(hashXOf(s)), []);
  }
  assert.ok(!mempool.isSpent(coin, 0) && !mempool.isSpent(p.txid, 0) && !mempool.isSpent(c.txid, 0));
  assert.equal(mempool.balanceDelta(hashXOf(D)), -1_000, "the unrelated transaction stays");

  daemon.drop(p, c, g);
  assert.deepEqual(await mempool.refresh(), [], "the refresh finds nothing left to change");
  assert.equal(mempool.size, 1);
});

Deno.test("confirmed() with conflicts during a refresh: what resolved before the block is not added after it", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3), D = script(4), E = script(5);
  const coin = coinTxid("race-rbf1"), coin5 = coinTxid("race-rbf5"), coin6 = coinTxid("race-rbf6");
  store.flush([[coin, 0, A, 20_000], [coin5, 0, D, 9_000], [coin6, 2, E, 8_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  daemon.add(p);
  await mempool.refresh();

  // Listed before the block: c (p's child), x (spends coin6) and d. While they resolve, after c (against p)
  // and x (against coin6) have, a block is flushed whose transactions spend coin (a replacement of p) and coin6.
  const c = makeTx([[p.txid, 0]], [[C, 18_000]]);
  const x = makeTx([[coin6, 2]], [[E, 7_000]]);
  const d = makeTx([[coin5, 0]], [[D, 8_500]]);
  daemon.add(c, x, d);
  const r = makeTx([[coin, 0]], [[A, 18_000]]), y = makeTx([[coin6, 2]], [[A, 7_500]]);
  store.afterLookup = (txid) => {
    if (hex(txid) !== hex(coin6)) return;
    store.afterLookup = undefined;
    store.flush([[r.txid, 0, A, 18_000], [y.txid, 0, A, 7_500]], [[coin, 0], [coin6, 2]]);
    mempool.confirmed(packed(r.txid, y.txid), outpoints([coin, 0], [coin6, 2]));
  };
  await mempool.refresh();
  assert.ok(!mempool.has(p.txid), "p conflicts with r");
  assert.ok(!mempool.has(c.txid), "c's parent was dropped");
  assert.ok(!mempool.has(x.txid), "x conflicts with y");
  assert.ok(mempool.has(d.txid));
  assert.equal(mempool.size, 1);
  for (const s of [B, C, E]) assert.deepEqual(mempool.history(hashXOf(s)), []);
  assert.equal(mempool.balanceDelta(hashXOf(E)), 0);

  // bitcoind's next list agrees.
  daemon.drop(p, c, x);
  await mempool.refresh();
  assert.equal(mempool.size, 1);
  assert.equal(mempool.pendingCount, 0);
});

Deno.test("a list taken while bitcoind's tip is not the database's is not applied", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2);
  const coin = coinTxid("tip");
  store.flush([[coin, 0, A, 20_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  daemon.add(p);
  await mempool.refresh();
  assert.equal(mempool.balanceDelta(hashXOf(B)), 19_000);

  // bitcoind mines p before we have the block: its list no longer has p, and neither does our database.
  daemon.drop(p);
  const mined = hex(reversed(blockHash(store.state.height + 1)));
  daemon.bestHash = () => mined;
  assert.deepEqual(await mempool.refresh(), []);
  assert.ok(mempool.has(p.txid), "p stays unconfirmed until we have its block");
  assert.equal(mempool.balanceDelta(hashXOf(B)), 19_000);
  assert.equal(mempool.behindTip, 1);

  // A list taken across a block (tip before it differs from the tip after it) is not applied either.
  let n = 0;
  const ours = hex(reversed(store.state.tipHash));
  daemon.bestHash = () => n++ === 0 ? ours : mined;
  assert.deepEqual(await mempool.refresh(), []);
  assert.ok(mempool.has(p.txid));
  assert.equal(mempool.behindTip, 2);

  // Our flush of the block confirms p; bitcoind's tip is ours again and its list applies.
  store.flush([[p.txid, 0, B, 19_000]], [[coin, 0]]);
  mempool.confirmed(packed(p.txid));
  daemon.bestHash = () => hex(reversed(store.state.tipHash));
  assert.equal(mempool.size, 0);
  const q = makeTx([[p.txid, 0]], [[A, 18_000]]);
  daemon.add(q);
  assert.deepEqual(keys(await mempool.refresh()), hxs(A, B));
  assert.equal(mempool.balanceDelta(hashXOf(B)), -19_000);
  assert.equal(mempool.behindTip, 2);
});

Deno.test("after a backup, settled() holds answers until the next refresh has brought the undone txs back", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2);
  const coin = coinTxid("undo");
  store.flush([[coin, 0, A, 20_000]]);
  await mempool.refresh();
  assert.equal(mempool.settled(), undefined, "nothing to wait for");
  // A block is undone: p, which it held, is back in bitcoind's mempool but not yet in ours.
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  store.flush([]);
  mempool.backedUp();
  daemon.add(p);
  const waiting = mempool.settled();
  assert.ok(waiting !== undefined);
  let settled = false;
  waiting.then(() => settled = true);
  await Promise.resolve();
  assert.equal(settled, false);
  assert.equal(mempool.behindBackup(), true);
  await mempool.refresh();
  await waiting;
  assert.ok(mempool.has(p.txid), "the answers that waited see p");
  assert.equal(mempool.settled(), undefined);
  assert.equal(mempool.behindBackup(), false);
});

Deno.test("when the wait for answers times out, the mempool still counts as behind until a refresh catches up", async () => {
  const { daemon, store, mempool } = setup({ backupWaitMs: 1 });
  const A = script(1), B = script(2);
  const coin = coinTxid("timeout");
  store.flush([[coin, 0, A, 20_000]]);
  await mempool.refresh();
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  store.flush([]);
  mempool.backedUp();
  daemon.add(p);
  // bitcoind too slow: answers go ahead after the wait. (Its timer does not hold the process open; this does.)
  const alive = setTimeout(() => {}, 60_000);
  await mempool.settled();
  clearTimeout(alive);
  assert.equal(mempool.settled(), undefined);
  assert.equal(mempool.behindBackup(), true, "notifications must not be computed yet");
  await mempool.refresh();
  assert.equal(mempool.behindBackup(), false);
});

Deno.test("notifications stop waiting for the refresh after a reorg when none has come through for 2 minutes", () => {
  let clock = 1_000_000;
  const { mempool, lines } = setup({ now: () => clock });
  mempool.backedUp();
  assert.equal(mempool.behindBackup(), true);
  clock += BEHIND_MAX_MS - 1;
  mempool.backedUp(); // a second backup meanwhile does not restart the clock
  assert.equal(mempool.behindBackup(), true);
  clock += 1;
  assert.equal(mempool.behindBackup(), false, "bitcoind refuses refreshes: notifications go out anyway");
  assert.ok(lines.some((l) => l.includes("no refresh since a reorg")));
});

Deno.test("a refresh whose list was taken before a backup does not end settled(); the next one does", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3);
  const coin = coinTxid("stale-list"), other = coinTxid("stale-other");
  store.flush([[coin, 0, A, 20_000], [other, 0, C, 30_000]]);
  await mempool.refresh();
  // A refresh lists q; while it fetches q a block is undone, returning p to bitcoind's mempool.
  const q = makeTx([[other, 0]], [[C, 29_000]]);
  const p = makeTx([[coin, 0]], [[B, 19_000]]);
  daemon.add(q);
  daemon.beforeFetch = () => {
    daemon.beforeFetch = undefined;
    store.flush([]);
    mempool.backedUp();
    daemon.add(p);
  };
  await mempool.refresh();
  assert.ok(mempool.has(q.txid));
  assert.equal(mempool.has(p.txid), false, "the list predates the backup");
  const waiting = mempool.settled();
  assert.ok(waiting !== undefined, "answers still wait for p");
  assert.equal(mempool.behindBackup(), true);
  await mempool.refresh();
  await waiting;
  assert.ok(mempool.has(p.txid));
  assert.equal(mempool.settled(), undefined);
});

Deno.test("nothing changed: one getrawmempool, no fetch, no database read, nothing touched", async () => {
  const { daemon, store, mempool } = setup();
  const coin = coinTxid("q");
  store.flush([[coin, 0, script(1), 9_000]]);
  daemon.add(makeTx([[coin, 0]], [[script(2), 8_000]]));
  await mempool.refresh();
  daemon.calls.length = 0;
  store.lookups = 0;
  assert.deepEqual(await mempool.refresh(), []);
  assert.deepEqual(await mempool.refresh(), []);
  assert.deepEqual(daemon.calls, ["getrawmempool", "getrawmempool"]);
  assert.equal(store.lookups, 0);
});

Deno.test("unknown prevouts wait without refetching, and resolve parents first once the database has them", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3);
  const coin = coinTxid("late");
  const e = makeTx([[coin, 1]], [[B, 7_000]]);
  const f = makeTx([[e.txid, 0]], [[C, 6_000]]);
  daemon.add(f, e); // child listed first
  assert.deepEqual(await mempool.refresh(), []);
  assert.equal(mempool.size, 0);
  assert.equal(mempool.pendingCount, 2);
  assert.ok(!mempool.has(e.txid) && !mempool.isSpent(coin, 1));

  daemon.calls.length = 0;
  store.lookups = 0;
  assert.deepEqual(await mempool.refresh(), []);
  assert.deepEqual(daemon.calls, ["getrawmempool"], "pending transactions are not fetched again");
  assert.equal(store.lookups, 0, "and not retried while the database has not changed");

  store.flush([[coin, 1, A, 8_000]]);
  const touched = await mempool.refresh();
  assert.deepEqual(daemon.calls, ["getrawmempool", "getrawmempool"]);
  assert.deepEqual(keys(touched), hxs(A, B, C));
  assert.equal(mempool.pendingCount, 0);
  assert.deepEqual(history(mempool, C), [`${f.id}:-1:1000`]);

  // A pending transaction that leaves bitcoind's mempool is forgotten.
  const g = makeTx([[coinTxid("never"), 0]], [[A, 1]]);
  daemon.add(g);
  await mempool.refresh();
  assert.equal(mempool.pendingCount, 1);
  daemon.drop(g);
  await mempool.refresh();
  assert.equal(mempool.pendingCount, 0);
});

Deno.test("a transaction that leaves between getrawmempool and getrawtransaction (-5) is ignored quietly", async () => {
  const { daemon, store, mempool, lines } = setup();
  const coin = coinTxid("race");
  store.flush([[coin, 0, script(1), 9_000]]);
  const gone = makeTx([[coin, 0]], [[script(2), 8_000]]);
  const child = makeTx([[gone.txid, 0]], [[script(3), 7_000]]);
  const stays = makeTx([[coinTxid("s"), 0]], [[script(4), 1_000]]);
  store.flush([[coinTxid("s"), 0, script(5), 2_000]]);
  daemon.add(gone, child, stays);
  daemon.beforeFetch = () => daemon.drop(gone);
  const touched = await mempool.refresh();
  assert.deepEqual(keys(touched), hxs(script(4), script(5)));
  assert.ok(!mempool.has(gone.txid) && mempool.has(stays.txid));
  assert.equal(mempool.pendingCount, 1, "its child waits: its input is nowhere yet");
  assert.ok(!lines.some((l) => l.startsWith("WARNING")));
  daemon.beforeFetch = undefined;
  daemon.drop(child);
  await mempool.refresh();
  assert.equal(mempool.pendingCount, 0);
});

Deno.test("other fetch errors are logged and retried; undecodable or mismatched bytes are not refetched", async () => {
  const { daemon, store, mempool, lines } = setup();
  const coins = ["e1", "e2", "e3"].map(coinTxid);
  store.flush(coins.map((c, i) => [c, 0, script(i), 5_000]));
  const [busy, garbled, wrong] = coins.map((c, i) => makeTx([[c, 0]], [[script(10 + i), 4_000]]));
  daemon.add(busy, garbled, wrong);
  daemon.forced.set(busy.id, { error: { code: -1, message: "something odd" } });
  daemon.forced.set(garbled.id, { result: "00ff" });
  daemon.forced.set(wrong.id, { result: hex(busy.raw) });
  await mempool.refresh();
  assert.equal(mempool.size, 0);
  assert.ok(
    lines.some((l) => l.includes("could not return 1 of 3") && l.includes("something odd (code -1)")),
  );
  assert.ok(lines.some((l) => l.includes(`ignoring transaction ${garbled.id}`)));
  assert.ok(lines.some((l) => l.includes(`ignoring transaction ${wrong.id}`) && l.includes(busy.id)));

  daemon.forced.clear();
  daemon.batchSizes.length = 0;
  await mempool.refresh();
  assert.deepEqual(daemon.batchSizes, [1], "only the one that failed transiently is fetched again");
  assert.ok(mempool.has(busy.txid) && !mempool.has(garbled.txid));
});

Deno.test("new transactions are fetched in batches of batchSize", async () => {
  const { daemon, store, mempool } = setup({ batchSize: 100 });
  const txs: BuiltTx[] = [];
  for (let i = 0; i < 250; i++) {
    const coin = coinTxid(`b${i}`);
    store.flush([[coin, 0, script(i % 7), 10_000]]);
    txs.push(makeTx([[coin, 0]], [[script(100 + i), 9_000]]));
  }
  daemon.add(...txs);
  await mempool.refresh();
  assert.deepEqual(daemon.calls, ["getrawmempool", ...Array(3).fill("getrawtransaction")]);
  assert.deepEqual(daemon.batchSizes.sort((a, b) => b - a), [100, 100, 50]);
  assert.equal(mempool.size, 250);
});

Deno.test("a bad getrawmempool reply is a MempoolError and changes nothing", async () => {
  const { daemon, store, mempool } = setup();
  const coin = coinTxid("x");
  store.flush([[coin, 0, script(1), 9_000]]);
  const t = makeTx([[coin, 0]], [[script(2), 8_000]]);
  daemon.add(t);
  await mempool.refresh();
  for (const reply of [{ txids: [] }, ["nothex"], [t.id, t.id.toUpperCase()], [42]]) {
    daemon.listReply = reply;
    await assert.rejects(mempool.refresh(), (e) => e instanceof MempoolError && e.code === "bad-reply");
    assert.ok(mempool.has(t.txid));
  }
  daemon.listReply = undefined;
  assert.deepEqual(await mempool.refresh(), []);
  assert.equal(mempool.size, 1);
});

Deno.test("readers see the old mempool until a refresh completes; concurrent refreshes run in turn", async () => {
  const { daemon, store, mempool } = setup();
  const coin1 = coinTxid("r1"), coin2 = coinTxid("r2");
  store.flush([[coin1, 0, script(1), 9_000], [coin2, 0, script(2), 9_000]]);
  const old = makeTx([[coin1, 0]], [[script(3), 8_000]]);
  const next = makeTx([[coin2, 0]], [[script(4), 8_000]]);
  daemon.add(old);
  await mempool.refresh();
  daemon.drop(old);
  daemon.add(next);
  let release!: () => void;
  let fetching!: () => void;
  const fetchStarted = new Promise<void>((r) => (fetching = r));
  daemon.beforeFetch = () => {
    fetching();
    return new Promise<void>((r) => (release = r));
  };
  const first = mempool.refresh();
  const second = mempool.refresh();
  await fetchStarted;
  assert.ok(mempool.has(old.txid) && !mempool.has(next.txid), "mid-refresh: still the old state");
  assert.equal(mempool.balanceDelta(hashXOf(script(3))), 8_000);
  release();
  assert.deepEqual(keys(await first), hxs(script(1), script(2), script(3), script(4)));
  assert.deepEqual(await second, []);
  assert.ok(!mempool.has(old.txid) && mempool.has(next.txid));
  assert.equal(daemon.maxInFlight, 1);
});

Deno.test("a tx paying and spending the same hashX appears once; OP_RETURN outputs are not indexed", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), OPRET = Uint8Array.of(0x6a, 0x04, 1, 2, 3, 4), BIG = new Uint8Array(10_001);
  const OP0RET = Uint8Array.of(0x00, 0x6a, 0x01, 7);
  const coin = coinTxid("self");
  store.flush([[coin, 0, A, 10_000]]);
  const t = makeTx([[coin, 0]], [[A, 6_000], [OPRET, 0], [BIG, 1_000], [A, 2_000], [OP0RET, 0]]);
  daemon.add(t);
  const touched = await mempool.refresh();
  // As ElectrumX: scripts starting OP_RETURN or OP_0 OP_RETURN are left out, an oversized one is not.
  assert.deepEqual(keys(touched), hxs(A, BIG));
  assert.deepEqual(history(mempool, A), [`${t.id}:0:1000`]);
  assert.equal(mempool.balanceDelta(hashXOf(A)), -2_000);
  assert.deepEqual(mempool.history(hashXOf(OPRET)), []);
  assert.deepEqual(mempool.history(hashXOf(OP0RET)), []);
  assert.deepEqual(history(mempool, BIG), [`${t.id}:0:1000`]);
  assert.deepEqual(mempool.utxos(hashXOf(A)).map((u) => u.vout), [0, 3]);
  // Spending an unspendable output can never be valid: such a child waits forever, it is never indexed.
  const bad = makeTx([[t.txid, 1]], [[A, 1]]);
  daemon.add(bad);
  await mempool.refresh();
  assert.ok(!mempool.has(bad.txid));
  assert.equal(mempool.pendingCount, 1);
});

Deno.test("the fee histogram is ElectrumX's binning of the current mempool, recomputed only when stale", async () => {
  let now = 1_000;
  const { daemon, store, mempool } = setup({ histogramRefreshMs: 60_000, now: () => now });
  assert.deepEqual(mempool.feeHistogram(), []);
  const all: BuiltTx[] = [];
  const fees: number[] = [];
  const add = (n: number) => {
    for (let i = 0; i < n; i++) {
      const k = all.length;
      const coin = coinTxid(`h${k}`);
      // Wide outputs make each tx large enough that a few hundred of them fill several bins.
      const outs: [Uint8Array, number][] = Array.from({ length: 20 }, (_, j) => [script(j), 1_000]);
      const fee = 100 + ((k * 7919) % 40_000);
      store.flush([[coin, 0, script(1), 20_000 + fee]]);
      all.push(makeTx([[coin, 0]], outs));
      fees.push(fee);
    }
    daemon.add(...all.slice(-n));
  };
  add(300);
  await mempool.refresh();
  const naive = (count: number) => {
    const sizes = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const tenths = Math.floor((fees[i] * 10) / all[i].vsize);
      sizes.set(tenths, (sizes.get(tenths) ?? 0) + all[i].vsize);
    }
    return compactHistogram(sizes);
  };
  const first = mempool.feeHistogram();
  assert.ok(first.length >= 3);
  assert.deepEqual(first, naive(300));
  add(200);
  now += 59_999;
  await mempool.refresh();
  assert.equal(mempool.feeHistogram(), first, "not stale yet: the same answer");
  now += 1;
  await mempool.refresh();
  assert.deepEqual(mempool.feeHistogram(), naive(500));
});

Deno.test("a replacement (RBF) takes over its outpoint; two listed spends of one outpoint never both count", async () => {
  const { daemon, store, mempool } = setup();
  const A = script(1), B = script(2), C = script(3);
  const coin = coinTxid("rbf");
  store.flush([[coin, 0, A, 10_000]]);
  const x = makeTx([[coin, 0]], [[B, 9_000]]);
  const y = makeTx([[coin, 0]], [[C, 8_000]]);
  daemon.add(x);
  await mempool.refresh();
  daemon.drop(x);
  daemon.add(y);
  const touched = await mempool.refresh();
  assert.deepEqual(keys(touched), hxs(A, B, C));
  assert.ok(!mempool.has(x.txid) && mempool.has(y.txid));
  assert.deepEqual(history(mempool, A), [`${y.id}:0:2000`]);
  assert.equal(mempool.balanceDelta(hashXOf(B)), 0);
  assert.equal(mempool.balanceDelta(hashXOf(A)), -10_000);

  // An inconsistent list (both spends at once): the known one stays, the other waits until the conflict ends.
  daemon.add(x);
  assert.deepEqual(await mempool.refresh(), []);
  assert.ok(mempool.has(y.txid) && !mempool.has(x.txid));
  assert.equal(mempool.pendingCount, 1);
  assert.equal(mempool.balanceDelta(hashXOf(A)), -10_000);
  daemon.drop(y);
  await mempool.refresh();
  assert.ok(mempool.has(x.txid) && !mempool.has(y.txid));
  assert.equal(mempool.pendingCount, 0);
  assert.deepEqual(history(mempool, A), [`${x.id}:0:1000`]);

  // Two new spends of one outpoint in the same refresh: exactly one is taken.
  const coin2 = coinTxid("rbf2");
  store.flush([[coin2, 0, A, 5_000]]);
  const u = makeTx([[coin2, 0]], [[B, 4_000]]);
  const v = makeTx([[coin2, 0]], [[C, 4_500]]);
  daemon.add(u, v);
  await mempool.refresh();
  assert.equal(Number(mempool.has(u.txid)) + Number(mempool.has(v.txid)), 1);
  assert.equal(mempool.pendingCount, 1);
});

Deno.test("a transaction spending one outpoint twice is never indexed", async () => {
  const { daemon, store, mempool } = setup();
  const coin = coinTxid("twice");
  store.flush([[coin, 0, script(1), 10_000]]);
  const w = makeTx([[coin, 0], [coin, 0]], [[script(2), 15_000]]);
  daemon.add(w);
  assert.deepEqual(await mempool.refresh(), []);
  assert.ok(!mempool.has(w.txid) && !mempool.isSpent(coin, 0));
  assert.equal(mempool.pendingCount, 1);
});

Deno.test("a restarted bitcoind still loading its mempool: what it has not listed again is kept until the load is done", async () => {
  const { daemon, store, mempool, lines } = setup();
  const w = script(1), v = script(2);
  const coins = [coinTxid("restart-a"), coinTxid("restart-b")];
  store.flush([[coins[0], 0, script(9), 100_000], [coins[1], 0, script(9), 50_000]]);
  const pay = makeTx([[coins[0], 0]], [[w, 90_000]]);
  const other = makeTx([[coins[1], 0]], [[v, 40_000]]);
  daemon.add(pay, other);
  await mempool.refresh();
  assert.equal(daemon.infoCalls, 0, "nothing left the list: no need to ask");
  // Restarted: its list holds `other` again, not `pay` yet.
  daemon.drop(pay);
  daemon.loaded = false;
  assert.deepEqual(keys(await mempool.refresh()), []);
  assert.deepEqual(history(mempool, w), [`${pay.id}:0:10000`]);
  assert.equal(mempool.balanceDelta(hashXOf(w)), 90_000);
  assert.equal(daemon.infoCalls, 1);
  assert.ok(lines.some((l) => l.includes("still loading its mempool; keeping 1 transaction")));
  // Reloaded: nothing to fetch again, nothing to tell.
  daemon.add(pay);
  assert.deepEqual(keys(await mempool.refresh()), []);
  assert.deepEqual(daemon.calls.filter((c) => c === "getrawtransaction").length, 1, "fetched once, at first");
  // Still loading, and a fee bump of `pay` is listed (accepted from a peer meanwhile): bitcoind holds no two
  // spends of one coin, so `pay` is gone and the bump takes its place at once.
  daemon.drop(pay);
  const bump = makeTx([[coins[0], 0]], [[w, 80_000]]);
  daemon.add(bump);
  assert.deepEqual(keys(await mempool.refresh()), hxs(w, script(9)), "the payee and the coin's owner");
  assert.deepEqual(history(mempool, w), [`${bump.id}:0:20000`]);
  // Loaded, and the bump really gone (evicted, say): it leaves.
  daemon.loaded = true;
  daemon.drop(bump);
  assert.deepEqual(keys(await mempool.refresh()), hxs(w, script(9)));
  assert.deepEqual(history(mempool, w), []);
  // Still loading, and a reorg took away the coin a kept transaction spends (its block undone, the transaction
  // that made it not back): bitcoind cannot hold the spend, so it leaves.
  const coin3 = coinTxid("restart-c");
  store.flush([[coin3, 0, script(8), 70_000]]);
  const doomed = makeTx([[coin3, 0]], [[w, 60_000]]);
  daemon.add(doomed);
  await mempool.refresh();
  assert.deepEqual(history(mempool, w), [`${doomed.id}:0:10000`]);
  daemon.loaded = false;
  daemon.drop(doomed);
  assert.deepEqual(keys(await mempool.refresh()), [], "kept while loading");
  store.flush([], [[coin3, 0]]);
  mempool.backedUp();
  assert.deepEqual(keys(await mempool.refresh()), hxs(w, script(8)));
  assert.deepEqual(history(mempool, w), []);
  daemon.loaded = true;
  // A node that cannot say (getmempoolinfo refused) counts as loaded, as before.
  daemon.loaded = new DaemonError(-32601, "Method not found");
  daemon.drop(other);
  assert.deepEqual(keys(await mempool.refresh()), hxs(v, script(9)));
});

Deno.test("while bitcoind reloads: a kept child stays when a reorg puts its parent back in the same refresh", async () => {
  const { daemon, store, mempool } = setup();
  const w = script(1), v = script(2);
  const coin = coinTxid("reload-base");
  store.flush([[coin, 0, script(9), 100_000]]);
  const parent = makeTx([[coin, 0]], [[v, 90_000]]);
  store.flush([[parent.txid, 0, v, 90_000]], [[coin, 0]]); // the parent confirmed
  const child = makeTx([[parent.txid, 0]], [[w, 80_000]]);
  daemon.add(child);
  await mempool.refresh();
  daemon.loaded = false;
  daemon.drop(child);
  await mempool.refresh();
  assert.ok(mempool.has(child.txid), "kept while loading");
  // A reorg undoes the parent's block; bitcoind lists the parent again, not yet the child.
  store.flush([[coin, 0, script(9), 100_000]], [[parent.txid, 0]]);
  mempool.backedUp();
  daemon.add(parent);
  await mempool.refresh();
  assert.ok(mempool.has(parent.txid));
  assert.ok(mempool.has(child.txid), "its parent is listed: bitcoind can hold it");
  assert.deepEqual(history(mempool, w), [`${child.id}:-1:10000`]);
});

Deno.test("while bitcoind reloads: a block confirming a kept parent during the reorg check leaves its child", async () => {
  const { daemon, store, mempool } = setup();
  const u = script(3), v = script(2), w = script(1);
  const cx = coinTxid("reload-x"), ce = coinTxid("reload-e");
  store.flush([[cx, 0, script(9), 100_000], [ce, 0, script(9), 100_000]]);
  const x = makeTx([[cx, 0]], [[u, 90_000]]);
  const e = makeTx([[ce, 0]], [[v, 90_000]]);
  const f = makeTx([[e.txid, 0]], [[w, 80_000]]);
  daemon.add(x, e, f);
  await mempool.refresh();
  daemon.loaded = false;
  daemon.drop(x, e, f);
  await mempool.refresh();
  store.flush([]);
  mempool.backedUp();
  // While x's coin is looked up, a block confirming e is flushed.
  store.afterLookup = (txid) => {
    if (hex(txid) !== hex(cx) || !mempool.has(e.txid)) return;
    store.flush([[e.txid, 0, v, 90_000]], [[ce, 0]]);
    const spends = new Uint8Array(36);
    spends.set(ce, 0);
    mempool.confirmed(e.txid, spends);
  };
  await mempool.refresh();
  assert.ok(!mempool.has(e.txid), "confirmed");
  assert.ok(mempool.has(x.txid) && mempool.has(f.txid), "f spends a coin of the database now");
  assert.deepEqual(history(mempool, w), [`${f.id}:0:10000`]);
});
