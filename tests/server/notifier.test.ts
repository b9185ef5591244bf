// The notifier with fake sessions, a fake store and a fake mempool: who is told what, and when.
import assert from "node:assert/strict";
import { Notifier } from "../../src/server/notifier.ts";
import { type MempoolItem, statusOf } from "../../src/server/status.ts";
import { hashXKey, packedHashXs, SubscriptionIndex } from "../../src/server/subscriptions.ts";
import type { SessionContext } from "../../src/server/types.ts";

const quiet = { info() {}, warn() {}, debug() {} };

class FakeSession implements SessionContext {
  static next = 1;
  readonly id = FakeSession.next++;
  readonly remoteAddress = "127.0.0.1:1";
  readonly protocolVersion = "1.6";
  readonly protocolTuple = [1, 6];
  notes: [string, unknown[]][] = [];
  closed = false;
  private closers: (() => void)[] = [];
  addCost(): void {}
  notify(method: string, params: unknown[]): void {
    this.notes.push([method, params]);
  }
  onClose(fn: () => void): void {
    this.closers.push(fn);
  }
  close(): void {
    this.closed = true;
    for (const f of this.closers) f();
  }
}

function hx(n: number): Uint8Array {
  return new Uint8Array(11).fill(n);
}
function txid(n: number): Uint8Array {
  return new Uint8Array(32).fill(n);
}
function mem(n: number, parent: boolean): MempoolItem {
  const id = txid(n);
  return { txid: id, txidHex: id.toHex(), fee: 100, hasUnconfirmedParent: parent };
}

/** In-memory chain history and mempool per hashX; counts history reads. */
class World {
  confirmed = new Map<string, { txHash: Uint8Array; height: number }[]>();
  pool = new Map<string, MempoolItem[]>();
  reads = 0;
  state = { height: 100 };
  /** While set, history reads wait for it (a slow read, during which the sync side can flush or back up). */
  gate: Promise<void> | undefined;
  /** Resolved when a read starts waiting at the gate. */
  onGate: (() => void) | undefined;
  store = {
    state: this.state,
    history: async (h: Uint8Array) => {
      this.reads++;
      if (this.gate) {
        this.onGate?.();
        await this.gate;
      }
      return this.confirmed.get(hashXKey(h)) ?? [];
    },
  };
  /** Set while a backup's undone transactions are in neither the store nor the mempool. */
  behind = false;
  mempool = {
    history: (h: Uint8Array) => this.pool.get(hashXKey(h)) ?? [],
    behindBackup: () => this.behind,
  };
  status(h: Uint8Array): string | null {
    return statusOf(this.confirmed.get(hashXKey(h)) ?? [], this.pool.get(hashXKey(h)) ?? []);
  }
}

function setup(historyLimit = 1000) {
  const world = new World();
  const subscriptions = new SubscriptionIndex({ maxSubs: 0, maxSessionSubs: 0 });
  const notifier = new Notifier({
    store: world.store,
    mempool: world.mempool,
    subscriptions,
    historyLimit,
    log: quiet,
  });
  return { world, subscriptions, notifier };
}

Deno.test("notifier: header subscribers hear each new tip once, a same-height reorg included", () => {
  const { subscriptions, notifier } = setup();
  const a = new FakeSession(), b = new FakeSession(), other = new FakeSession();
  subscriptions.subscribeHeaders(a);
  subscriptions.subscribeHeaders(b);
  const header = new Uint8Array(80).fill(1);
  notifier.onNewTip(101, header);
  notifier.onNewTip(101, header);
  const sibling = new Uint8Array(80).fill(2);
  notifier.onNewTip(101, sibling);
  const expected = [
    ["blockchain.headers.subscribe", [{ height: 101, hex: header.toHex() }]],
    ["blockchain.headers.subscribe", [{ height: 101, hex: sibling.toHex() }]],
  ];
  assert.deepEqual(a.notes, expected);
  assert.deepEqual(b.notes, expected);
  assert.deepEqual(other.notes, []);
  assert.deepEqual(notifier.tip, { height: 101, hex: sibling.toHex() });
  b.close();
  notifier.onNewTip(102, header);
  assert.equal(a.notes.length, 3);
  assert.equal(b.notes.length, 2, "a closed session is forgotten");
});

Deno.test("notifier: touched hashXs are recomputed once and told only to sessions whose status changed", async () => {
  const { world, subscriptions, notifier } = setup();
  const [s1, s2, s3] = [new FakeSession(), new FakeSession(), new FakeSession()];
  const x = hx(1), y = hx(2);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(1), height: 50 }]);
  subscriptions.subscribe(s1, x, "alias-one", world.status(x));
  subscriptions.subscribe(s2, x, "ALIAS-ONE", world.status(x));
  subscriptions.subscribe(s3, y, "alias-two", null);
  // y gains a mempool tx; x is touched but unchanged.
  world.pool.set(hashXKey(y), [mem(9, false)]);
  world.reads = 0;
  await notifier.onTouched([x, y, hx(3)]);
  assert.equal(world.reads, 2, "one computation per subscribed touched hashX, none for unsubscribed ones");
  assert.deepEqual(s1.notes, []);
  assert.deepEqual(s2.notes, []);
  assert.deepEqual(s3.notes, [["blockchain.scripthash.subscribe", ["alias-two", world.status(y)]]]);
  // x changes: both of its sessions hear it, each under its own alias.
  world.confirmed.get(hashXKey(x))!.push({ txHash: txid(2), height: 101 });
  await notifier.onTouched([x]);
  assert.deepEqual(s1.notes, [["blockchain.scripthash.subscribe", ["alias-one", world.status(x)]]]);
  assert.deepEqual(s2.notes, [["blockchain.scripthash.subscribe", ["ALIAS-ONE", world.status(x)]]]);
  // The computed status is cached for the subscribe path until the next invalidation.
  assert.equal(subscriptions.entry(x)!.status, world.status(x));
  subscriptions.invalidate([x]);
  assert.equal(subscriptions.entry(x)!.status, undefined);
});

Deno.test("notifier: after a new tip, statuses that held mempool txs are re-evaluated untouched", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(7);
  // x's only history: a mempool child (height -1) of a parent that does not touch x.
  world.pool.set(hashXKey(x), [mem(5, true)]);
  await notifier.onTouched([x]); // nothing subscribed yet: nothing computed
  subscriptions.subscribe(s, x, "x", world.status(x), true);
  // The parent confirms: x's tx is now height 0, yet nothing touched x.
  world.pool.set(hashXKey(x), [mem(5, false)]);
  world.reads = 0;
  await notifier.onTouched([]);
  assert.equal(world.reads, 0, "without a new tip nothing is re-evaluated");
  notifier.onNewTip(101, new Uint8Array(80));
  await notifier.onTouched([]);
  assert.equal(world.reads, 1);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", world.status(x)]]]);
  // The sweep happens once per new tip.
  await notifier.onTouched([]);
  assert.equal(world.reads, 1);
});

Deno.test("notifier: while the mempool is not settled after a backup, statuses wait for the run after it", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(4);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(1), height: 100 }]);
  subscriptions.subscribe(s, x, "x", world.status(x));
  // Block 100 is undone: its tx left the store and is back in bitcoind's mempool, not yet in ours.
  world.confirmed.set(hashXKey(x), []);
  world.behind = true;
  world.reads = 0;
  await notifier.onTouched([x]);
  assert.equal(world.reads, 0, "nothing computed from a store and mempool that disagree");
  assert.deepEqual(s.notes, [], "no null status for a payment that is only being re-mined");
  assert.equal(subscriptions.entry(x)!.status, undefined, "the cached status is dropped at once");
  // The refresh brings the tx back; the next run (here with nothing touched) computes what was deferred.
  world.behind = false;
  world.pool.set(hashXKey(x), [mem(1, false)]);
  await notifier.onTouched([]);
  assert.equal(world.reads, 1);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", world.status(x)]]]);
});

Deno.test("notifier: a status computed across a backup is not told; the run after the mempool catches up tells it", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(5);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(1), height: 100 }]);
  subscriptions.subscribe(s, x, "x", world.status(x));
  const gate = Promise.withResolvers<void>();
  const reading = Promise.withResolvers<void>();
  world.gate = gate.promise;
  world.onGate = reading.resolve;
  const run = notifier.onTouched([x]); // e.g. a mempool poll's run
  await reading.promise;
  // Meanwhile block 100 is undone (Store.onBackup): its tx is in neither the store nor, until the next
  // refresh, the mempool.
  world.confirmed.set(hashXKey(x), []);
  world.behind = true;
  subscriptions.invalidateChanged([x]);
  world.gate = undefined;
  gate.resolve();
  await run;
  assert.deepEqual(s.notes, [], "no null status for a payment that is only being mined again");
  // Answers stop waiting after BACKUP_WAIT_MS, but while no refresh has brought the undone transactions back
  // (bitcoind slow or unreachable) runs still tell nothing.
  await notifier.onTouched([]);
  assert.deepEqual(s.notes, []);
  // The refresh that brings them back runs the notifier: now the status is told. (The tx was not mined again.)
  world.behind = false;
  await notifier.onTouched([]);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", null]]]);
});

Deno.test("notifier: a script hash touched many times while deferred is computed once", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(8);
  subscriptions.subscribe(s, x, "x", null);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(3), height: 100 }]);
  world.behind = true;
  for (let i = 0; i < 5; i++) await notifier.onTouched([x, x]);
  world.behind = false;
  world.reads = 0;
  await notifier.onTouched([]);
  assert.equal(world.reads, 1);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", world.status(x)]]]);
});

Deno.test("notifier: a run that fails on a read leaves its script hashes to the next run", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(6);
  subscriptions.subscribe(s, x, "x", null);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(2), height: 100 }]);
  const history = world.store.history;
  world.store.history = () => Promise.reject(new Error("store closed"));
  await assert.rejects(notifier.onTouched([x]), /store closed/);
  assert.deepEqual(s.notes, []);
  world.store.history = history;
  await notifier.onTouched([]);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", world.status(x)]]]);
});

Deno.test("notifier: runs are serialized, so notifications about a hashX keep their order", async () => {
  const { world, subscriptions, notifier } = setup();
  const s = new FakeSession();
  const x = hx(4);
  subscriptions.subscribe(s, x, "x", null);
  // Reads are held until released, each seeing the history as it was when it started.
  const held: (() => void)[] = [];
  let started: () => void = () => {};
  world.store.history = (h: Uint8Array) => {
    const snapshot = [...(world.confirmed.get(hashXKey(h)) ?? [])];
    return new Promise((resolve) => {
      held.push(() => resolve(snapshot));
      started();
    });
  };
  const readStarted = () => new Promise<void>((r) => started = r);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(1), height: 10 }]);
  const firstRead = readStarted();
  const first = notifier.onTouched([x]);
  await firstRead;
  const s1 = world.status(x);
  world.confirmed.get(hashXKey(x))!.push({ txHash: txid(2), height: 11 });
  const s2 = world.status(x);
  const second = notifier.onTouched([x]);
  assert.equal(held.length, 1, "the second run waits for the first");
  const secondRead = readStarted();
  held[0]();
  await first;
  await secondRead;
  held[1]();
  await second;
  assert.deepEqual(s.notes, [
    ["blockchain.scripthash.subscribe", ["x", s1]],
    ["blockchain.scripthash.subscribe", ["x", s2]],
  ]);
});

Deno.test("notifier: a history grown past the cap ends the subscription with a null status (ElectrumX)", async () => {
  const { world, subscriptions, notifier } = setup(2);
  const s = new FakeSession();
  const x = hx(8);
  world.confirmed.set(hashXKey(x), [{ txHash: txid(1), height: 10 }]);
  subscriptions.subscribe(s, x, "x", world.status(x));
  world.confirmed.get(hashXKey(x))!.push({ txHash: txid(2), height: 11 }, { txHash: txid(3), height: 12 });
  await notifier.onTouched([x]);
  assert.deepEqual(s.notes, [["blockchain.scripthash.subscribe", ["x", null]]]);
  assert.equal(subscriptions.count, 0);
  assert.equal(subscriptions.entry(x), undefined);
});

Deno.test("subscriptions: limits, repeated subscriptions, unsubscribe and cleanup on close", () => {
  const subs = new SubscriptionIndex({ maxSubs: 3, maxSessionSubs: 2 });
  const a = new FakeSession(), b = new FakeSession();
  subs.subscribe(a, hx(1), "1", null);
  subs.subscribe(a, hx(1), "1-again", null);
  assert.equal(subs.count, 1, "a repeated subscription does not count twice");
  assert.equal(subs.entry(hx(1))!.sessions.get(a)!.alias, "1-again", "the newest alias wins");
  subs.subscribe(a, hx(2), "2", null);
  assert.throws(() => subs.subscribe(a, hx(3), "3", null), /your address subscription limit 2 reached/);
  subs.subscribe(b, hx(1), "1", null);
  assert.throws(() => subs.subscribe(b, hx(4), "4", null), /server subscription limit 3 reached/);
  assert.equal(subs.unsubscribe(a, hx(2)), true);
  assert.equal(subs.unsubscribe(a, hx(2)), false);
  subs.subscribe(b, hx(4), "4", null);
  assert.equal(subs.hashXCount, 2);
  a.close();
  assert.equal(subs.count, 2);
  b.close();
  assert.equal(subs.count, 0);
  assert.equal(subs.hashXCount, 0);
  // A session that closed before its subscription landed is not recorded.
  subs.subscribe(a, hx(5), "5", null);
  assert.equal(subs.count, 0);
  const big = new SubscriptionIndex({ maxSubs: 250_000, maxSessionSubs: 1 });
  big.subscribe(b, hx(1), "1", null);
  const c = new FakeSession();
  big.subscribe(c, hx(1), "1", null);
  assert.throws(() => big.subscribe(c, hx(2), "2", null), /your address subscription limit 1 reached/);
  const wide = new SubscriptionIndex({ maxSubs: 250_000, maxSessionSubs: 0 });
  for (let i = 0; i < 300; i++) wide.subscribe(c, hx(i & 255).fill(i >> 8, 0, 1), String(i), null);
  assert.equal(wide.count, 300, "0 means no per-session limit");
  const thousand = new SubscriptionIndex({ maxSubs: 1000, maxSessionSubs: 0 });
  for (let i = 0; i < 1000; i++) thousand.subscribe(new FakeSession(), hx(1), "1", null);
  assert.throws(() => thousand.checkLimits(c, hx(1)), /^RpcError: server subscription limit 1,000 reached$/);
});

Deno.test("subscriptions: what a flush or backup changed drops its cached statuses, and those with mempool txs", () => {
  const subscriptions = new SubscriptionIndex({ maxSubs: 0, maxSessionSubs: 0 });
  const s = new FakeSession();
  const [a, b, c] = [hx(1), hx(2), hx(3)];
  subscriptions.subscribe(s, a, "a", "status-a");
  subscriptions.subscribe(s, b, "b", "status-b", true);
  subscriptions.subscribe(s, c, "c", "status-c");
  for (const [h, st] of [[a, "status-a"], [b, "status-b"], [c, "status-c"]] as const) {
    subscriptions.entry(h)!.status = st;
  }
  const epoch = subscriptions.epoch;
  const packed = new Uint8Array(22);
  packed.set(a, 0);
  packed.set(hx(9), 11);
  assert.deepEqual([...packedHashXs(packed)], [a, hx(9)]);
  subscriptions.invalidateChanged(packedHashXs(packed));
  assert.equal(subscriptions.entry(a)!.status, undefined, "touched");
  assert.equal(subscriptions.entry(b)!.status, undefined, "held mempool transactions");
  assert.equal(subscriptions.entry(c)!.status, "status-c", "untouched and confirmed only: still current");
  assert.ok(subscriptions.epoch > epoch, "a status computed across it is not cached as current");
  subscriptions.invalidateChanged(undefined);
  assert.equal(subscriptions.entry(c)!.status, undefined, "unknown changes drop everything");
});
