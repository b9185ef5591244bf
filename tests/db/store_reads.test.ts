// The store's read paths added for serving speed: packed rows, batched txid reads and the per-state caches.
import assert from "node:assert/strict";
import { toHex } from "../../src/chain/hex.ts";
import { Store } from "../../src/db/store.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { answers, expectedAnswers, modelHashX, replay, type SynthBlock, SynthChain } from "./synth_chain.ts";

const REGTEST = { name: "regtest" };
const log = { info: () => {}, warn: () => {} };
const raw = (b: SynthBlock) => ({ height: b.height, hash: b.hash, raw: b.raw });

async function withStore(fn: (store: Store, p: BlockProcessor) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-reads-" });
  const store = await Store.open(dir, REGTEST, { log });
  const p = new BlockProcessor(store, { reorgLimit: 10, cacheMb: 64, flushSize: 1e9, log, network: REGTEST });
  try {
    await fn(store, p);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** withStore with a synthetic chain (SynthChain.create's arguments, then `blocks` blocks) synced and flushed. */
function withSyncedChain(
  create: Parameters<typeof SynthChain.create>,
  blocks: number,
  fn: (store: Store, chain: SynthChain) => Promise<void> | void,
): Promise<void> {
  return withStore(async (store, p) => {
    const chain = SynthChain.create(...create);
    chain.extend(blocks);
    p.advance(chain.blocks.map(raw));
    await p.flush();
    await fn(store, chain);
  });
}

Deno.test("cached answers never outlive a flush or a backup", async () => {
  await withStore(async (store, p) => {
    const chain = SynthChain.create(21, 6, 10);
    chain.extend(30);
    p.advance(chain.blocks.slice(0, 20).map(raw));
    await p.flush();
    const first = replay(chain.blocks.slice(0, 20));
    // Twice: the second round is served from the caches and must be the same.
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(await answers(store, chain.scripts), expectedAnswers(first, chain.scripts));
    }
    p.advance(chain.blocks.slice(20).map(raw));
    await p.flush();
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks), chain.scripts),
    );
    await p.backup(24);
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks.slice(0, 25)), chain.scripts),
    );
  });
});

Deno.test("once synced, a flush keeps the cached answers of every hashX it did not touch, and only those", async () => {
  await withStore(async (store, p) => {
    const chain = SynthChain.create(22, 6, 10);
    chain.extend(30);
    p.advance(chain.blocks.slice(0, 20).map(raw));
    await p.flush();
    // As the sync loop does on catching up: from now on flushes name the hashXs they change.
    p.firstSync = false;
    let kept = 0;
    for (let h = 20; h < 30; h++) {
      const before = expectedAnswers(replay(chain.blocks.slice(0, h)), chain.scripts) as Record<
        string,
        unknown
      >;
      assert.deepEqual(await answers(store, chain.scripts), before);
      p.advance([raw(chain.blocks[h])]);
      await p.flush();
      const after = expectedAnswers(replay(chain.blocks.slice(0, h + 1)), chain.scripts) as Record<
        string,
        unknown
      >;
      for (const script of chain.scripts) {
        const key = toHex(modelHashX(script));
        const cached = store.cachedHistory(modelHashX(script)) !== undefined;
        // A cached entry whose answer changed would be served stale.
        if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
          assert.ok(!cached, `stale cache for ${key}`);
        } else if (cached) kept++;
      }
      assert.deepEqual(await answers(store, chain.scripts), after);
    }
    assert.ok(kept > 0, "untouched hashXs stay cached across flushes");
    // A backup names nothing: everything cached goes.
    await answers(store, chain.scripts);
    await p.backup(25);
    assert.ok(chain.scripts.every((s) => store.cachedHistory(modelHashX(s)) === undefined));
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks.slice(0, 26)), chain.scripts),
    );
  });
});

Deno.test("a thousand concurrent cache misses reuse the iterators of the thousand before them", async () => {
  await withSyncedChain([23, 6, 10], 5, async (store) => {
    // Unknown hashXs: each one is a miss and a scan (an empty answer is cached, so every round needs new ones).
    const round = (seed: number) =>
      Promise.all(Array.from({ length: 1000 }, (_, i) => {
        const hashX = new Uint8Array(11);
        new DataView(hashX.buffer).setUint32(0, seed * 1000 + i);
        hashX[10] = 0xee;
        return i % 2 === 0 ? store.historyRows(hashX) : store.utxoRows(hashX);
      }));
    const before = store.scanIteratorsCreated;
    const first = await round(1);
    assert.ok(first.every((r) => r.count === 0));
    const made = store.scanIteratorsCreated - before;
    assert.ok(made > 0 && made <= 1000, `${made} iterators for 1,000 scans`);
    await round(2);
    await round(3);
    assert.equal(store.scanIteratorsCreated - before, made);
  });
});

Deno.test("a history of many rows is read whole, though LevelDB hands its rows over in byte-limited batches", async () => {
  await withStore(async (store, p) => {
    // Two scripts share every output; a flush every 25 blocks gives each a row of ~700 tx numbers (~3.5 KB),
    // more than LevelDB's 16 KB batches hold a few of.
    const chain = SynthChain.create(23, 2, 60);
    chain.extend(200);
    for (let h = 0; h < 200; h += 25) {
      p.advance(chain.blocks.slice(h, h + 25).map(raw));
      await p.flush();
    }
    const expected = expectedAnswers(replay(chain.blocks), chain.scripts) as Record<string, { history: [] }>;
    for (const s of chain.scripts) assert.ok(expected[toHex(modelHashX(s))].history.length > 4000);
    assert.deepEqual(await answers(store, chain.scripts), expected);
  });
});

Deno.test("findTx answers from its cache across flushes, and forgets what a backup removed", async () => {
  await withStore(async (store, p) => {
    const chain = SynthChain.create(24, 6, 10);
    chain.extend(25);
    const where = (upTo: number) => {
      const m = new Map<string, { height: number; index: number }>();
      for (const b of chain.blocks.slice(0, upTo)) {
        b.txs.forEach((tx, index) => m.set(toHex(tx.txid), { height: b.height, index }));
      }
      return m;
    };
    const check = async (upTo: number) => {
      const expected = where(upTo);
      for (const b of chain.blocks) {
        for (const tx of b.txs) {
          const got = await store.findTx(tx.txid);
          const want = expected.get(toHex(tx.txid));
          assert.deepEqual(got && { height: got.height, index: got.index }, want, `${toHex(tx.txid)}`);
        }
      }
    };
    p.advance(chain.blocks.slice(0, 20).map(raw));
    await p.flush();
    p.firstSync = false;
    // Twice: the second round comes from the cache.
    await check(20);
    await check(20);
    p.advance(chain.blocks.slice(20).map(raw));
    await p.flush();
    await check(25);
    await p.backup(21);
    await check(22);
  });
});

Deno.test("history ranges and limits answer the same from the cache as from a scan", async () => {
  await withStore(async (store, p) => {
    const chain = SynthChain.create(22, 4, 8);
    chain.extend(40);
    for (let i = 0; i < 40; i += 9) {
      p.advance(chain.blocks.slice(i, i + 9).map(raw));
      await p.flush();
    }
    const model = replay(chain.blocks);
    const cases = [
      { fromHeight: 5, toHeight: 17 },
      { fromHeight: 30 },
      { toHeight: 3 },
      { fromHeight: 9, limit: 4 },
      { limit: 2 },
      { fromHeight: 39, toHeight: 39 },
    ];
    for (const s of chain.scripts) {
      const hx = modelHashX(s);
      const full = model.history.get(toHex(hx)) ?? [];
      const want = (o: { fromHeight?: number; toHeight?: number; limit?: number }) =>
        full.filter(([, h]) => h >= (o.fromHeight ?? 0) && h <= (o.toHeight ?? Infinity)).slice(0, o.limit);
      const got = async (o: { fromHeight?: number; toHeight?: number; limit?: number }) =>
        (await store.history(hx, o)).map((h) => [toHex(h.txHash), h.height]);
      // Before the whole history is cached, ranges and limits are scans (and a limited read is not cached)...
      for (const o of cases) assert.deepEqual(await got(o), want(o), JSON.stringify(o));
      // ...after it, they are cut from the cached list.
      assert.deepEqual(await got({}), full);
      for (const o of cases) assert.deepEqual(await got(o), want(o), JSON.stringify(o));
      const rows = await store.historyRows(hx);
      assert.equal(rows.count, full.length);
      for (let i = 0; i < rows.count; i++) {
        assert.equal(toHex(rows.txids.subarray(i * 32, i * 32 + 32)), full[i][0]);
        assert.equal(rows.heights[i], full[i][1]);
        assert.deepEqual(store.txHash(rows.txNums[i]), rows.txids.subarray(i * 32, i * 32 + 32));
      }
    }
  });
});

Deno.test("readTxids reads runs, gaps, repeats and descending numbers like single reads", async () => {
  await withSyncedChain([23, 4, 12], 60, (store) => {
    const n = store.state.txCount;
    assert.ok(n > 300, `chain too small: ${n} txs`);
    const lists = [
      [],
      [0],
      [n - 1],
      Array.from({ length: n }, (_, i) => i),
      [0, 1, 2, 3, 250, 260, n - 2, n - 1],
      [5, 5, 5, 6],
      [9, 3, 8, 1],
      [0, 300, 1],
    ];
    for (const list of lists) {
      const got = store.readTxids(list);
      assert.equal(got.length, list.length * 32);
      list.forEach((txNum, i) => assert.deepEqual(got.subarray(i * 32, i * 32 + 32), store.txHash(txNum)));
    }
    assert.throws(() => store.readTxids([n]), /no transaction number/);
    assert.throws(() => store.readTxids([0, 1, n]), /no transaction number/);
  });
});

Deno.test("utxoRows and balance agree with utxos", async () => {
  await withSyncedChain([24, 5, 10], 25, async (store, chain) => {
    for (const s of chain.scripts) {
      const hx = modelHashX(s);
      const items = await store.utxos(hx);
      const rows = await store.utxoRows(hx);
      assert.equal(rows.count, items.length);
      let sum = 0;
      items.forEach((u, i) => {
        assert.deepEqual(rows.txids.subarray(i * 32, i * 32 + 32), u.txHash);
        assert.equal(rows.vouts[i], u.vout);
        assert.equal(rows.values[i], u.value);
        assert.equal(rows.heights[i], u.height);
        assert.equal(rows.txNums[i], u.txNum);
        sum += u.value;
      });
      assert.equal(await store.balance(hx), sum);
    }
    assert.equal((await store.historyRows(new Uint8Array(5))).count, 0);
    assert.equal((await store.utxoRows(new Uint8Array(5))).count, 0);
  });
});
