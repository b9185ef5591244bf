import assert from "node:assert/strict";
import type { Log } from "../../src/log.ts";
import { MempoolFollower, type Refreshable } from "../../src/mempool/follower.ts";

function captureLog(lines: string[]): Log {
  return {
    debug: (m) => lines.push(`DEBUG ${m}`),
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARNING ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
    enabled: () => true,
  };
}

/** A mempool whose refreshes the test finishes by hand, one at a time. */
class ManualMempool implements Refreshable {
  started = 0;
  active = 0;
  maxActive = 0;
  private finishers: { resolve: (t: Uint8Array[]) => void; reject: (e: unknown) => void }[] = [];
  private onStart: (() => void)[] = [];

  refresh(): Promise<Uint8Array[]> {
    this.started++;
    this.maxActive = Math.max(this.maxActive, ++this.active);
    for (const f of this.onStart.splice(0)) f();
    return new Promise<Uint8Array[]>((resolve, reject) => this.finishers.push({ resolve, reject }))
      .finally(() => this.active--);
  }

  /** Resolves when refresh number `n` (1-based) has started. */
  startedCount(n: number): Promise<void> {
    if (this.started >= n) return Promise.resolve();
    return new Promise((r) => this.onStart.push(() => this.startedCount(n).then(r)));
  }

  finish(touched: Uint8Array[]): void {
    this.finishers.shift()!.resolve(touched);
  }

  fail(err: Error): void {
    this.finishers.shift()!.reject(err);
  }
}

Deno.test("refreshNow waits for a refresh that starts after it, and onRefresh sees every refresh in order", async () => {
  const mempool = new ManualMempool();
  const seen: number[][] = [];
  const f = new MempoolFollower(mempool, {
    pollMs: 3_600_000,
    log: captureLog([]),
    onRefresh: (t) => void seen.push(t.map((x) => x[0])),
  });
  f.start();
  await mempool.startedCount(1);
  // A block arrives while the first (startup) refresh is still running: that one does not count.
  let answered: number[] | undefined;
  const now = f.refreshNow().then((t) => (answered = t.map((x) => x[0])));
  mempool.finish([Uint8Array.of(1)]);
  await mempool.startedCount(2);
  assert.equal(answered, undefined);
  mempool.finish([Uint8Array.of(2)]);
  await now;
  assert.deepEqual(answered, [2]);
  assert.deepEqual(seen, [[1], [2]]);
  assert.equal(mempool.maxActive, 1);
  const stopped = f.stop();
  await stopped;
  assert.equal(mempool.started, 2, "an hour-long poll interval: no third refresh");
  await assert.rejects(f.refreshNow(), /stopped/);
});

Deno.test("it keeps polling through failures, logging each distinct failure once; refreshNow rejects with it", async () => {
  const mempool = new ManualMempool();
  const lines: string[] = [];
  const f = new MempoolFollower(mempool, { pollMs: 1, log: captureLog(lines) });
  const first = f.refreshNow();
  await mempool.startedCount(1);
  mempool.fail(new Error("daemon client closed"));
  await assert.rejects(first, /daemon client closed/);
  await mempool.startedCount(2);
  mempool.fail(new Error("daemon client closed"));
  await mempool.startedCount(3);
  mempool.fail(new Error("something else"));
  await mempool.startedCount(4);
  mempool.finish([]);
  await mempool.startedCount(5);
  assert.deepEqual(lines, [
    "WARNING mempool refresh failed: daemon client closed; retrying every 1 ms",
    "WARNING mempool refresh failed: something else; retrying every 1 ms",
  ]);
  const stopped = f.stop();
  mempool.finish([]);
  await stopped;
  assert.equal(mempool.started, 5);
});

Deno.test("stop waits for the refresh in progress and rejects waiting callers", async () => {
  const mempool = new ManualMempool();
  const f = new MempoolFollower(mempool, { pollMs: 3_600_000, log: captureLog([]) });
  f.start();
  await mempool.startedCount(1);
  const waiting = f.refreshNow();
  let done = false;
  const stopped = f.stop().then(() => (done = true));
  await Promise.resolve();
  assert.equal(done, false);
  mempool.finish([]);
  await stopped;
  await assert.rejects(waiting, /stopped/);
  assert.equal(mempool.started, 1);
});
