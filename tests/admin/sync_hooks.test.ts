// The sync loop's hooks for the admin commands, with a scripted daemon and processor: exclusive work really
// excludes block processing, a waiting loop is interrupted for it, and the forced reorg backs up and re-syncs.
import assert from "node:assert/strict";
import type { BlockSource, RawBlock } from "../../src/sync/prefetch.ts";
import { SyncLoop, type SyncProcessor } from "../../src/sync/sync.ts";

/** A chain of 81-byte blocks; `gate` (when set) holds getRawBlocks until released, announcing each call. */
class Chain implements BlockSource {
  blocks: { hash: Uint8Array; raw: Uint8Array }[] = [];
  fetched: PromiseWithResolvers<void> | undefined;

  constructor(n: number) {
    this.extend(n);
  }

  extend(n: number): void {
    for (let i = 0; i < n; i++) {
      const height = this.blocks.length;
      const hash = new Uint8Array(32);
      hash[0] = height & 0xff;
      hash[1] = height >> 8;
      const raw = new Uint8Array(81);
      if (height > 0) raw.set(this.blocks[height - 1].hash, 4);
      raw[80] = 1;
      this.blocks.push({ hash, raw });
    }
  }

  getBlockCount(): Promise<number> {
    return Promise.resolve(this.blocks.length - 1);
  }

  getBlockHashes(from: number, count: number): Promise<Uint8Array[]> {
    return Promise.resolve(this.blocks.slice(from, from + count).map((b) => b.hash));
  }

  getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    const raws = hashes.map((h) => this.blocks.find((b) => b.hash.every((x, i) => x === h[i]))!.raw);
    const announce = this.fetched;
    // Resolved after the prefetcher has the blocks: its continuation runs before ours.
    if (announce) queueMicrotask(() => queueMicrotask(() => announce.resolve()));
    return Promise.resolve(raws);
  }
}

class Processor implements SyncProcessor {
  hashes: Uint8Array[] = [];
  backups: number[] = [];
  /** Set while exclusive work runs; advancing then is the bug the test looks for. */
  exclusive = false;
  advancedDuringExclusive = 0;

  constructor(private readonly limit = 50) {}

  get height(): number {
    return this.hashes.length - 1;
  }
  get tipHash(): Uint8Array | undefined {
    return this.hashes.at(-1);
  }
  advance(blocks: RawBlock[]): void {
    if (this.exclusive) this.advancedDuringExclusive++;
    for (const b of blocks) this.hashes.push(b.hash);
  }
  needsFlush(): boolean {
    return false;
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  blockHashAt(height: number): Uint8Array | undefined {
    return this.hashes[height];
  }
  backup(height: number): Promise<void> {
    if (this.height - height > this.limit) return Promise.reject(new Error("deeper than REORG_LIMIT"));
    this.backups.push(this.height - height);
    this.hashes.length = height + 1;
    return Promise.resolve();
  }
}

function start(chain: Chain, proc: Processor) {
  const tips: number[] = [];
  const waiters: { height: number; resolve: () => void }[] = [];
  const loop = new SyncLoop(chain, proc, { info() {}, warn() {} }, {
    maxQueueBytes: 100_000,
    pollIntervalMs: 60_000, // only pollNow() brings new blocks: nothing happens behind the test's back
    onTip: (h) => {
      tips.push(h);
      for (const w of waiters.splice(0)) (h >= w.height ? w.resolve : () => waiters.push(w))();
    },
  });
  const done = loop.run();
  const tip = (height: number) => {
    if (tips.at(-1) !== undefined && tips.at(-1)! >= height && proc.height >= height) {
      return Promise.resolve();
    }
    const w = Promise.withResolvers<void>();
    waiters.push({ height, resolve: w.resolve });
    return w.promise;
  };
  return { loop, done, tips, tip };
}

Deno.test("exclusive work interrupts a loop waiting at the tip, and no block is applied while it runs", async () => {
  const chain = new Chain(20);
  const proc = new Processor();
  const { loop, done, tip } = start(chain, proc);
  try {
    await tip(19);
    const result = await loop.runExclusive(async () => {
      proc.exclusive = true;
      try {
        chain.extend(3);
        chain.fetched = Promise.withResolvers();
        loop.pollNow();
        await chain.fetched.promise;
        // One full turn of the event loop: an unblocked loop would have applied the fetched blocks by now.
        await new Promise((resolve) => setTimeout(resolve, 0));
        return proc.height;
      } finally {
        proc.exclusive = false;
        chain.fetched = undefined;
      }
    });
    assert.equal(result, 19);
    assert.equal(proc.advancedDuringExclusive, 0);
    await tip(22);
    assert.equal(proc.height, 22);
  } finally {
    loop.stop();
    await done;
  }
});

Deno.test("a forced reorg deeper than the chain stops at genesis and says how many blocks it undid", async () => {
  const chain = new Chain(6);
  const proc = new Processor(100);
  const { loop, done, tip } = start(chain, proc);
  try {
    await tip(5);
    assert.deepEqual(await loop.reorg(99_999_999_999), { height: -1, undone: 6 });
    await tip(5);
  } finally {
    loop.stop();
    await done;
  }
});

Deno.test("a forced reorg backs up and the loop fetches the same blocks again", async () => {
  const chain = new Chain(30);
  const proc = new Processor(10);
  const { loop, done, tips, tip } = start(chain, proc);
  try {
    await tip(29);
    const before = tips.length;
    assert.deepEqual(await loop.reorg(4), { height: 25, undone: 4 });
    assert.deepEqual(proc.backups, [4]);
    await tip(29);
    assert.equal(proc.height, 29);
    assert.ok(tips.length > before, "the re-synced tip is announced again");
    assert.deepEqual(proc.hashes.map((h) => h[0]), chain.blocks.map((b) => b.hash[0]));
    await assert.rejects(() => loop.reorg(0), /positive number of blocks/);
    await assert.rejects(() => loop.reorg(11), /deeper than REORG_LIMIT/);
    assert.equal(proc.height, 29, "a refused reorg changes nothing");
    // The loop still follows the daemon afterwards.
    chain.extend(1);
    loop.pollNow();
    await tip(30);
  } finally {
    loop.stop();
    await done;
  }
});

Deno.test("work queued when the loop stops is refused, not left hanging", async () => {
  const chain = new Chain(5);
  const proc = new Processor();
  const { loop, done, tip } = start(chain, proc);
  await tip(4);
  loop.stop();
  await assert.rejects(() => loop.runExclusive(() => Promise.resolve(1)), /stopping/);
  await done;
  await assert.rejects(() => loop.reorg(1), /stopping/);
});

Deno.test("exclusive work that fails rejects its caller and the loop carries on", async () => {
  const chain = new Chain(5);
  const proc = new Processor();
  const { loop, done, tip } = start(chain, proc);
  try {
    await tip(4);
    await assert.rejects(() => loop.runExclusive(() => Promise.reject(new Error("boom"))), /boom/);
    chain.extend(2);
    loop.pollNow();
    await tip(6);
  } finally {
    loop.stop();
    await done;
  }
});
