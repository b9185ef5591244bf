import assert from "node:assert/strict";
import { Limiter } from "../../src/daemon/limiter.ts";

Deno.test("the limiter admits at most max holders and hands slots over in arrival order", async () => {
  const limiter = new Limiter(2);
  const signal = new AbortController().signal;
  const a = await limiter.acquire(signal);
  const b = await limiter.acquire(signal);
  const order: string[] = [];
  const c = limiter.acquire(signal).then((r) => (order.push("c"), r));
  const d = limiter.acquire(signal).then((r) => (order.push("d"), r));
  assert.equal(limiter.inUse, 2);
  a();
  a(); // releasing twice must not free a second slot
  const rc = await c;
  assert.deepEqual(order, ["c"]);
  assert.equal(limiter.inUse, 2);
  b();
  const rd = await d;
  assert.deepEqual(order, ["c", "d"]);
  rc();
  rd();
  assert.equal(limiter.inUse, 0);
});

Deno.test("an aborted waiter leaves the queue and rejects with the signal's reason", async () => {
  const limiter = new Limiter(1);
  const ac = new AbortController();
  const held = await limiter.acquire(new AbortController().signal);
  const waiting = limiter.acquire(ac.signal);
  const reason = new Error("closing");
  ac.abort(reason);
  await assert.rejects(waiting, (e) => e === reason);
  held();
  assert.equal(limiter.inUse, 0, "the abandoned waiter did not inherit the slot");
  await assert.rejects(limiter.acquire(ac.signal), (e) => e === reason);
  assert.throws(() => new Limiter(0), RangeError);
});
