import assert from "node:assert/strict";
import { type BlockSource, Prefetcher, type RawBlock } from "../../src/sync/prefetch.ts";

/** An in-memory chain whose blocks are `size` bytes, each filled with its height so order is checkable. */
class FakeSource implements BlockSource {
  hashes: Uint8Array[] = [];
  sizes: number[] = [];
  calls = 0;
  failNext = 0;
  // Resolvers for a fetch the test wants to hold in flight.
  hold: (() => void) | null = null;
  holding = false;
  held: (() => void) | null = null;
  onFetch: ((from: number, count: number) => void) | null = null;

  constructor(count: number, private sizeOf: (h: number) => number = () => 1000, private tag = 0) {
    this.extend(count);
  }

  extend(n: number): void {
    const start = this.hashes.length;
    for (let h = start; h < start + n; h++) {
      this.hashes.push(Uint8Array.of(h & 0xff, (h >> 8) & 0xff, this.tag));
      this.sizes.push(this.sizeOf(h));
    }
  }

  /** Replaces every block from `height` up with a branch of `n` blocks tagged differently. */
  fork(height: number, n: number, tag: number): void {
    this.hashes.length = height;
    this.sizes.length = height;
    this.tag = tag;
    this.extend(n);
  }

  getBlockCount(): Promise<number> {
    this.calls++;
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error("daemon down"));
    }
    return Promise.resolve(this.hashes.length - 1);
  }

  async getBlockHashes(from: number, count: number): Promise<Uint8Array[]> {
    this.onFetch?.(from, count);
    // As Core's getblockhash: -8 for a height above the tip.
    if (from + count > this.hashes.length) throw new Error("Block height out of range (-8)");
    const out = this.hashes.slice(from, from + count);
    if (this.holding) {
      const inFlight = new Promise<void>((r) => (this.hold = r));
      this.held?.();
      await inFlight;
    }
    return out;
  }

  getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    return Promise.resolve(hashes.map((h) => {
      const height = h[0] | (h[1] << 8);
      return new Uint8Array(this.sizes[height]).fill(h[2]);
    }));
  }
}

async function drain(p: Prefetcher, until: (got: RawBlock[]) => boolean): Promise<RawBlock[]> {
  const got: RawBlock[] = [];
  for (let i = 0; i < 10_000 && !until(got); i++) {
    got.push(...p.take());
    if (until(got)) break;
    await p.waitForBlocks();
  }
  return got;
}

Deno.test("prefetcher hands out every block once, in height order, then reports caught up", async () => {
  const src = new FakeSource(251);
  const p = new Prefetcher(src, 1, { maxQueueBytes: 20_000, pollIntervalMs: 60_000 });
  p.start();
  const got = await drain(p, (g) => g.length >= 250);
  assert.deepEqual(got.map((b) => b.height), Array.from({ length: 250 }, (_, i) => i + 1));
  for (const b of got) assert.deepEqual(b.hash, src.hashes[b.height]);
  await p.waitForBlocks(); // returns once the tip poll finds nothing new
  assert.equal(p.tipHeight, 250);
  assert.equal(p.caughtUp, true);
  await p.stop();
});

Deno.test("prefetcher never queues more bytes than its cap when it knows block sizes", async () => {
  const src = new FakeSource(400, () => 1000);
  const p = new Prefetcher(src, 0, { maxQueueBytes: 10_000, pollIntervalMs: 60_000 });
  let maxSeen = 0;
  const inner = src.getRawBlocks.bind(src);
  src.getRawBlocks = (hashes) => {
    // Once the first blocks have shown their size, a fetch never asks for more than fits.
    if (p.bytesQueued > 0) maxSeen = Math.max(maxSeen, p.bytesQueued + hashes.length * 1000);
    return inner(hashes);
  };
  p.start();
  const got = await drain(p, (g) => g.length >= 400);
  assert.equal(got.length, 400);
  assert.ok(maxSeen <= 10_000, `queue reached ${maxSeen} bytes`);
  await p.stop();
});

Deno.test("the first batch of a run stays near the byte limit although block sizes are not known yet", async () => {
  const src = new FakeSource(600, () => 50_000);
  const p = new Prefetcher(src, 0, { maxQueueBytes: 1_000_000, pollIntervalMs: 60_000 });
  let peak = 0;
  const inner = src.getRawBlocks.bind(src);
  src.getRawBlocks = async (hashes) => {
    const out = await inner(hashes);
    peak = Math.max(peak, p.bytesQueued + out.reduce((n, r) => n + r.length, 0));
    return out;
  };
  p.start();
  const got = await drain(p, (g) => g.length >= 600);
  await p.stop();
  assert.equal(got.length, 600);
  // 500 blocks of 50 kB asked for at once would be 25 MB against a limit of 1 MB.
  assert.ok(peak <= 1_000_000 + 10 * 50_000, `queue reached ${peak} bytes`);
});

Deno.test("prefetcher adapts batch size to block size", async () => {
  const src = new FakeSource(300, (h) => (h < 100 ? 100 : 50_000));
  const counts: number[] = [];
  src.onFetch = (_from, count) => counts.push(count);
  const raws: number[] = [];
  const inner = src.getRawBlocks.bind(src);
  src.getRawBlocks = (hashes) => (raws.push(hashes.length), inner(hashes));
  const p = new Prefetcher(src, 0, { maxQueueBytes: 200_000, pollIntervalMs: 60_000 });
  p.start();
  await drain(p, (g) => g.length >= 300);
  await p.stop();
  assert.deepEqual(raws.slice(0, 4), [10, 10, 20, 40], "a batch's fetches start small and double");
  assert.ok(raws.at(-1)! <= 8, `big blocks come in small batches (${raws.at(-1)})`);
});

Deno.test("prefetcher follows a growing tip when polled", async () => {
  const src = new FakeSource(11);
  const p = new Prefetcher(src, 1, { maxQueueBytes: 1_000_000, pollIntervalMs: 60_000 });
  p.start();
  const first = await drain(p, (g) => g.length >= 10);
  assert.equal(first.length, 10);
  src.extend(5);
  p.pollNow();
  const more = await drain(p, (g) => g.length >= 5);
  assert.deepEqual(more.map((b) => b.height), [11, 12, 13, 14, 15]);
  await p.stop();
});

Deno.test("reset drops queued and in-flight blocks of the old branch", async () => {
  const src = new FakeSource(21);
  const p = new Prefetcher(src, 1, { maxQueueBytes: 1_000_000, pollIntervalMs: 60_000, maxBatch: 5 });
  p.start();
  const first = await drain(p, (g) => g.length >= 5);
  assert.deepEqual(first.map((b) => b.height), [1, 2, 3, 4, 5]);
  // Hold the next batch in flight, then reorg under it.
  const held = new Promise<void>((resolve) => (src.held = resolve));
  src.holding = true;
  p.pollNow();
  await held;
  src.fork(4, 30, 7);
  p.reset(4);
  src.holding = false;
  src.hold!();
  const after = await drain(p, (g) => g.length >= 30);
  assert.equal(after[0].height, 4);
  assert.ok(after.every((b) => b.hash[2] === 7 && b.raw[0] === 7), "only blocks of the new branch");
  assert.deepEqual(after.map((b) => b.height), Array.from({ length: 30 }, (_, i) => i + 4));
  await p.stop();
});

Deno.test("with everything fetched, a tip replaced at the same height or gone down is reported", async () => {
  const src = new FakeSource(21);
  const ours: Uint8Array[] = [...src.hashes];
  const diverged: number[] = [];
  const p = new Prefetcher(src, 1, {
    maxQueueBytes: 1_000_000,
    pollIntervalMs: 60_000,
    hashAt: (h) => ours[h],
    onDiverged: (h) => diverged.push(h),
  });
  p.start();
  await drain(p, (g) => g.length >= 20);
  await p.waitForBlocks();
  assert.deepEqual(diverged, [], "nothing while the chains agree");
  // Same height, another block (as testnet's minimum-difficulty blocks get replaced).
  src.fork(20, 1, 5);
  p.pollNow();
  while (diverged.length === 0) await p.waitForBlocks();
  assert.deepEqual(diverged, [20]);
  // The daemon's tip goes below ours (invalidateblock): reported at the first height it lacks.
  ours[20] = src.hashes[20];
  src.hashes.length = 18;
  p.pollNow();
  while (diverged.length === 1) await p.waitForBlocks();
  assert.deepEqual(diverged, [20, 18]);
  await p.stop();
});

Deno.test("a tip that went down during catch-up: -8 makes the next round read it again", async () => {
  const src = new FakeSource(101);
  const errors: unknown[] = [];
  const diverged: number[] = [];
  const p = new Prefetcher(src, 1, {
    maxQueueBytes: 1_000_000,
    pollIntervalMs: 1,
    maxBatch: 10,
    onError: (e) => errors.push(e),
    onDiverged: (h) => diverged.push(h),
    hashAt: () => undefined,
  });
  p.start();
  const first = await drain(p, (g) => g.length >= 20);
  assert.equal(first.at(-1)!.height, 20);
  src.hashes.length = 16; // tip now 15, below what was handed out
  while (diverged.length === 0) {
    p.take();
    await p.waitForBlocks();
  }
  assert.ok(
    errors.length >= 1 && errors.length <= 2,
    `${errors.length} failed rounds, not one per poll for ever`,
  );
  assert.equal(diverged[0], 16);
  await p.stop();
});

Deno.test("daemon errors are reported and fetching resumes", async () => {
  const src = new FakeSource(6);
  src.failNext = 3;
  const errors: unknown[] = [];
  const p = new Prefetcher(src, 1, {
    maxQueueBytes: 1_000_000,
    pollIntervalMs: 1,
    onError: (e) => errors.push(e),
  });
  p.start();
  const got = await drain(p, (g) => g.length >= 5);
  assert.equal(got.length, 5);
  assert.equal(errors.length, 3);
  await p.stop();
});
