// Batcher: how per-connection entries leave for the other side (one post per turn, or per full batch).
import assert from "node:assert/strict";
import { Batcher, ENTRY, LINE, THREAD_BATCH_ENTRIES, WRITTEN } from "../../src/server/socket_messages.ts";

// Resolves after the microtasks queued so far (and those they queue) have run: the end of the current turn.
function endOfTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function ids(batch: unknown[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < batch.length; i += ENTRY) out.push(batch[i + 1] as number);
  return out;
}

Deno.test("without a limit, everything added in one turn leaves as one batch at its end, in order", async () => {
  const posted: unknown[][] = [];
  const b = new Batcher((batch) => posted.push(batch));
  for (let id = 0; id < 1000; id++) b.add(LINE, id, `line ${id}`, 6);
  assert.equal(posted.length, 0, "nothing leaves before the turn ends");
  await endOfTurn();
  assert.equal(posted.length, 1);
  assert.deepEqual(ids(posted[0]), [...Array(1000).keys()]);
  assert.deepEqual(posted[0].slice(0, ENTRY), [LINE, 0, "line 0", 6]);
  b.add(WRITTEN, 7, 120, 0);
  await endOfTurn();
  assert.equal(posted.length, 2, "the next turn's entries make the next batch");
  assert.deepEqual(posted[1], [WRITTEN, 7, 120, 0]);
});

Deno.test("with a limit, a full batch leaves at once and the rest at the end of the turn", async () => {
  const posted: unknown[][] = [];
  const b = new Batcher((batch) => posted.push(batch), THREAD_BATCH_ENTRIES);
  const n = 3 * THREAD_BATCH_ENTRIES + 5;
  for (let id = 0; id < n; id++) b.add(LINE, id, "x", 1);
  assert.deepEqual(posted.map((p) => p.length / ENTRY), [64, 64, 64], "full batches do not wait");
  await endOfTurn();
  assert.deepEqual(posted.map((p) => p.length / ENTRY), [64, 64, 64, 5]);
  assert.deepEqual(posted.flatMap(ids), [...Array(n).keys()]);
  // A turn that ends exactly on a full batch posts nothing empty afterwards.
  for (let id = 0; id < THREAD_BATCH_ENTRIES; id++) b.add(LINE, id, "x", 1);
  await endOfTurn();
  assert.deepEqual(posted.map((p) => p.length / ENTRY), [64, 64, 64, 5, 64]);
});

Deno.test("flush posts what is pending now, and never an empty batch", async () => {
  const posted: unknown[][] = [];
  const b = new Batcher((batch) => posted.push(batch));
  b.flush();
  assert.equal(posted.length, 0);
  b.add(LINE, 1, "a", 1);
  b.flush();
  assert.deepEqual(posted, [[LINE, 1, "a", 1]]);
  b.add(LINE, 2, "b", 1);
  await endOfTurn();
  assert.deepEqual(posted, [[LINE, 1, "a", 1], [LINE, 2, "b", 1]], "an entry after a flush still leaves");
});

Deno.test("buffers handed over leave with the batch that carries the next entry, and only with it", async () => {
  const posted: { batch: unknown[]; transfer: ArrayBuffer[] }[] = [];
  const b = new Batcher((batch, transfer) => posted.push({ batch, transfer }), 2);
  const first = new ArrayBuffer(8), second = new ArrayBuffer(8);
  b.add(LINE, 1, "a", 1);
  b.transfer(first);
  b.add(LINE, 2, "b", 1);
  b.transfer(second);
  b.add(LINE, 3, "c", 1);
  await endOfTurn();
  assert.deepEqual(posted.map((p) => ids(p.batch)), [[1, 2], [3]]);
  assert.deepEqual(posted.map((p) => p.transfer), [[first], [second]]);
  b.add(LINE, 4, "d", 1);
  await endOfTurn();
  assert.deepEqual(posted[2].transfer, [], "nothing is handed over twice");
});
