import assert from "node:assert/strict";
import { DAEMON_ERROR, DaemonError } from "../../src/daemon/errors.ts";
import type { BlockSource, RawBlock } from "../../src/sync/prefetch.ts";
import { blockTxCount, SyncLoop, type SyncProcessor } from "../../src/sync/sync.ts";
import { SyncError } from "../../src/sync/errors.ts";

/** A daemon whose chain is a list of raw 81-byte blocks; branches differ by a tag byte in the hash. */
class FakeChain implements BlockSource {
  blocks: { hash: Uint8Array; raw: Uint8Array }[] = [];
  onCount: (() => void) | null = null;

  constructor(length: number) {
    this.extend(length, 0);
  }

  extend(n: number, tag: number): void {
    for (let i = 0; i < n; i++) {
      const height = this.blocks.length;
      const hash = new Uint8Array(32);
      hash[0] = height & 0xff;
      hash[1] = height >> 8;
      hash[2] = tag;
      const raw = new Uint8Array(81);
      if (height > 0) raw.set(this.blocks[height - 1].hash, 4);
      raw[80] = 1 + (height % 3);
      this.blocks.push({ hash, raw });
    }
  }

  /** Replaces everything above `fork` by `n` blocks of branch `tag`. */
  reorg(fork: number, n: number, tag: number): void {
    this.blocks.length = fork + 1;
    this.extend(n, tag);
  }

  getBlockCount(): Promise<number> {
    this.onCount?.();
    return Promise.resolve(this.blocks.length - 1);
  }

  getBlockHashes(from: number, count: number): Promise<Uint8Array[]> {
    return Promise.resolve(this.blocks.slice(from, from + count).map((b) => b.hash));
  }

  getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    return Promise.resolve(hashes.map((h) => {
      const found = this.blocks.find((b) => b.hash.every((x, i) => x === h[i]));
      if (!found) return Promise.reject(new Error("unknown block"));
      return found.raw;
    }) as Uint8Array[]);
  }
}

/** Keeps applied hashes in memory; counts flushes; refuses backups deeper than `limit`. */
class FakeProcessor implements SyncProcessor {
  hashes: Uint8Array[] = [];
  flushed = 0;
  flushes = 0;
  backups: number[] = [];
  constructor(private limit = 100, private flushEvery = 1_000_000) {}
  get height(): number {
    return this.hashes.length - 1;
  }
  get tipHash(): Uint8Array | undefined {
    return this.hashes.at(-1);
  }
  advance(blocks: RawBlock[]): void {
    for (const b of blocks) {
      assert.equal(b.height, this.hashes.length, "blocks arrive in height order");
      if (b.height > 0) assert.deepEqual(b.raw.subarray(4, 36), this.tipHash, "blocks connect");
      this.hashes.push(b.hash);
    }
  }
  needsFlush(): boolean {
    return this.hashes.length - this.flushed >= this.flushEvery;
  }
  flush(): Promise<void> {
    this.flushes++;
    this.flushed = this.hashes.length;
    return Promise.resolve();
  }
  blockHashAt(height: number): Uint8Array | undefined {
    return this.hashes[height];
  }
  backup(height: number): Promise<void> {
    if (this.height - height > this.limit) return Promise.reject(new Error("reorg too deep"));
    this.backups.push(this.height - height);
    this.hashes.length = height + 1;
    this.flushed = Math.min(this.flushed, this.hashes.length);
    return Promise.resolve();
  }
}

function quietLog(lines: string[] = []) {
  return { info: (m: string) => lines.push(m), warn: (m: string) => lines.push(m) };
}

// Each test installs a check that runs after every tip notification.
const tipHooks = new Map<SyncLoop, () => void>();

function makeLoop(chain: FakeChain, proc: FakeProcessor, tips: number[], lines: string[] = []): SyncLoop {
  const loop: SyncLoop = new SyncLoop(chain, proc, quietLog(lines), {
    maxQueueBytes: 2_000,
    pollIntervalMs: 60_000,
    onTip: (h) => {
      tips.push(h);
      tipHooks.get(loop)?.();
    },
  });
  return loop;
}

/** A running loop that has caught up with `chain` (its first tip announced). */
async function caughtUp(chain: FakeChain, proc: FakeProcessor) {
  const tips: number[] = [];
  const lines: string[] = [];
  const loop = makeLoop(chain, proc, tips, lines);
  const finished = loop.run();
  await new Promise<void>((resolve) => tipHooks.set(loop, () => tips.length === 1 && resolve()));
  return { loop, finished, tips, lines };
}

Deno.test("sync applies every block in order, flushes at the tip and logs caught up", async () => {
  const chain = new FakeChain(120);
  const proc = new FakeProcessor(100, 50);
  const tips: number[] = [];
  const lines: string[] = [];
  const loop = makeLoop(chain, proc, tips, lines);
  const finished = loop.run();
  await new Promise<void>((resolve) => tipHooks.set(loop, () => tips.length === 1 && resolve()));
  loop.stop();
  await finished;
  assert.equal(proc.height, 119);
  assert.deepEqual(proc.hashes, chain.blocks.map((b) => b.hash));
  assert.ok(proc.flushes >= 3, "cache-size flushes plus the one at the tip");
  assert.ok(lines.includes("caught up to height 119"));
  assert.equal(loop.stats.blocks, 120);
  assert.equal(loop.stats.txs, chain.blocks.reduce((n, b) => n + b.raw[80], 0));
});

Deno.test("sync follows new blocks at the tip and notifies once per new tip", async () => {
  const chain = new FakeChain(10);
  const proc = new FakeProcessor();
  const tips: number[] = [];
  const loop = makeLoop(chain, proc, tips);
  const finished = loop.run();
  await new Promise<void>((resolve) => tipHooks.set(loop, () => tips.length === 1 && resolve()));
  chain.extend(3, 0);
  await new Promise<void>((resolve) => {
    tipHooks.set(loop, () => tips.at(-1) === 12 && resolve());
    // The loop polls at 60 s; a hint makes it look now, as a block notification would.
    loop.pollNow();
  });
  loop.stop();
  await finished;
  assert.deepEqual(proc.hashes, chain.blocks.map((b) => b.hash));
  assert.equal(tips[0], 9);
  assert.equal(tips.at(-1), 12);
});

for (const depth of [1, 6, 100]) {
  Deno.test(`sync walks back a reorg of depth ${depth} at the tip and applies the new branch`, async () => {
    const chain = new FakeChain(150);
    const proc = new FakeProcessor(100);
    const tips: number[] = [];
    const loop = makeLoop(chain, proc, tips);
    const finished = loop.run();
    await new Promise<void>((resolve) => tipHooks.set(loop, () => tips.length === 1 && resolve()));
    chain.reorg(149 - depth, depth + 1, 9);
    await new Promise<void>((resolve) => {
      tipHooks.set(loop, () => proc.height === 150 && resolve());
      loop.pollNow();
    });
    loop.stop();
    await finished;
    assert.deepEqual(proc.backups, [depth]);
    assert.deepEqual(proc.hashes, chain.blocks.map((b) => b.hash));
  });
}

Deno.test("a tip replaced at the same height, then one that went down, are followed with no new block", async () => {
  const chain = new FakeChain(20);
  const proc = new FakeProcessor();
  const { loop, finished, tips, lines } = await caughtUp(chain, proc);
  chain.reorg(18, 1, 5); // block 19 replaced
  await new Promise<void>((resolve) => {
    tipHooks.set(loop, () => proc.tipHash?.[2] === 5 && resolve());
    loop.pollNow();
  });
  assert.deepEqual(proc.hashes, chain.blocks.map((b) => b.hash));
  chain.blocks.length = 17; // the daemon's tip is now 16 (invalidateblock)
  await new Promise<void>((resolve) => {
    tipHooks.set(loop, () => proc.height === 16 && resolve());
    loop.pollNow();
  });
  loop.stop();
  await finished;
  assert.deepEqual(proc.backups, [1, 3]);
  assert.deepEqual(proc.hashes, chain.blocks.map((b) => b.hash));
  assert.deepEqual(tips.slice(-2), [19, 16], "subscribers hear of each new tip");
  assert.equal(lines.filter((l) => l.startsWith("chain reorganisation detected")).length, 2);
});

Deno.test("stopping while a reorg waits for a daemon that was closed still flushes, without an error", async () => {
  const chain = new FakeChain(30);
  const proc = new FakeProcessor();
  const { loop, finished, lines } = await caughtUp(chain, proc);
  const flushes = proc.flushes;
  // The daemon client is closed (shutdown) while the loop looks for the fork of a reorg.
  chain.reorg(25, 6, 3);
  const cut = Promise.withResolvers<void>();
  let counted = 0;
  chain.onCount = () => {
    // The prefetcher's poll finds the new blocks; from then on the client is closed, as at shutdown.
    if (++counted >= 2) {
      cut.resolve();
      throw new DaemonError(DAEMON_ERROR.CLOSED, "daemon client closed");
    }
  };
  loop.pollNow();
  await cut.promise;
  // Let the loop reach findForkHeight's call, which fails, before it is told to stop.
  while (!lines.some((l) => l.startsWith("chain reorganisation detected"))) {
    await new Promise((r) => setTimeout(r, 0));
  }
  loop.stop();
  await finished;
  assert.ok(proc.flushes > flushes, "the final flush ran");
  assert.equal(proc.height, 29, "nothing was undone");
});

Deno.test("a reorg deeper than the processor allows ends the loop with its error", async () => {
  const chain = new FakeChain(50);
  const proc = new FakeProcessor(5);
  const tips: number[] = [];
  const loop = makeLoop(chain, proc, tips);
  const finished = loop.run();
  await new Promise<void>((resolve) => tipHooks.set(loop, () => tips.length === 1 && resolve()));
  chain.reorg(40, 12, 4);
  loop.pollNow();
  await assert.rejects(finished, /reorg too deep/);
  assert.equal(proc.height, 49, "nothing was undone");
});

Deno.test("a block bitcoind has pruned stops the loop with a message saying so, instead of retrying for ever", async () => {
  const chain = new FakeChain(12);
  const proc = new FakeProcessor();
  const inner = chain.getRawBlocks.bind(chain);
  chain.getRawBlocks = (hashes) =>
    hashes.some((h) => h[0] === 7)
      ? Promise.reject(new DaemonError(-1, "Block not available (pruned data)"))
      : inner(hashes);
  const loop = makeLoop(chain, proc, []);
  await assert.rejects(
    loop.run(),
    (e: unknown) => e instanceof SyncError && e.code === "pruned" && /without -prune/.test(e.message),
  );
  assert.ok(proc.height < 7, "nothing past the missing block");
});

Deno.test("blockTxCount reads every CompactSize width", () => {
  const raw = new Uint8Array(90);
  raw[80] = 0xfc;
  assert.equal(blockTxCount(raw), 252);
  raw.set([0xfd, 0x34, 0x12], 80);
  assert.equal(blockTxCount(raw), 0x1234);
  raw.set([0xfe, 0x78, 0x56, 0x34, 0x12], 80);
  assert.equal(blockTxCount(raw), 0x12345678);
});
