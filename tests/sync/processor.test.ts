import assert from "node:assert/strict";
import { sha256 } from "../../src/chain/hash.ts";
import { fromHex, toHex } from "../../src/chain/hex.ts";
import { Store } from "../../src/db/store.ts";
import { hashXInto } from "../../src/sync/hashx.ts";
import { HistoryCache } from "../../src/sync/history_cache.ts";
import {
  BlockProcessor,
  ChainMismatchError,
  ReorgTooDeepError,
  SyncError,
} from "../../src/sync/processor.ts";
import type { BlockSource } from "../../src/sync/prefetch.ts";
import { SyncLoop, type SyncProcessor } from "../../src/sync/sync.ts";
import { UtxoCache } from "../../src/sync/utxo_cache.ts";
import {
  answers,
  expectedAnswers,
  makeCoinbase,
  makeTx,
  modelHashX,
  replay,
  Rng,
  type SynthBlock,
  SynthChain,
  walletScript,
} from "../db/synth_chain.ts";

const NET = { name: "regtest" };

function quietLog(lines: string[] = []) {
  return { info: (m: string) => lines.push(m), warn: (m: string) => lines.push("WARN " + m) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-proc-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function open(dir: string, lines?: string[]) {
  return Store.open(dir, NET, { log: quietLog(lines) });
}

function processor(
  store: Store,
  opts: Partial<{ reorgLimit: number; flushSize: number; lines: string[]; onFlush: () => void }> = {},
) {
  return new BlockProcessor(store, {
    reorgLimit: opts.reorgLimit ?? 10,
    cacheMb: 64,
    flushSize: opts.flushSize ?? 1_000_000,
    log: quietLog(opts.lines),
    network: NET,
    onFlush: opts.onFlush,
  });
}

const raw = (b: SynthBlock) => ({ height: b.height, hash: b.hash, raw: b.raw });

Deno.test("apply, flush and reopen equals the naive model", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(1);
    chain.extend(60);
    const scripts = [...chain.scripts, walletScript(chain.rng)];
    const lines: string[] = [];
    let store = await open(dir, lines);
    assert.ok(lines.includes(`created new database ${dir}`));
    const p = processor(store, { lines });
    p.advance(chain.blocks.slice(0, 25).map(raw));
    assert.equal(p.height, 24);
    assert.equal(store.state.height, -1, "nothing is visible before a flush");
    const s1 = await p.flush();
    assert.equal(s1.blocks, 25);
    assert.equal(s1.height, 24);
    assert.ok(
      lines.some((l) => /^flushing to levelDB [\d,]+ txs and 25 blocks to height 24 tx count: /.test(l)),
    );
    assert.ok(
      lines.some((l) =>
        /^flushed\. Cache hits [\d,]+ writes [\d,]+ deletes [\d,]+ elided [\d,]+ sync: \d+d/.test(l)
      ),
    );
    p.advance(chain.blocks.slice(25).map(raw));
    await p.flush();
    const model = replay(chain.blocks);
    assert.deepEqual(await answers(store, scripts), expectedAnswers(model, scripts));
    await store.close();

    store = await open(dir);
    assert.equal(store.state.height, 59);
    assert.deepEqual(store.state.tipHash, chain.tipHash);
    assert.deepEqual(await answers(store, scripts), expectedAnswers(model, scripts));
    for (const [txid, [height, index]] of model.txs) {
      const loc = await store.findTx(fromHex(txid));
      assert.ok(loc, txid);
      assert.deepEqual([loc.height, loc.index], [height, index]);
      assert.equal(toHex(store.txHash(loc.txNum)), txid);
      assert.deepEqual(store.txPosition(loc.txNum), { height, index });
    }
    assert.equal(await store.findTx(new Uint8Array(32).fill(7)), undefined);
    for (let h = 0; h < 60; h++) {
      assert.deepEqual(store.blockHashAt(h), chain.blocks[h].hash);
      assert.deepEqual(store.headerAt(h), chain.blocks[h].raw.subarray(0, 80));
      const { first, count } = store.txNumsOfBlock(h);
      assert.equal(count, chain.blocks[h].txs.length);
      assert.deepEqual(store.txHash(first), chain.blocks[h].txs[0].txid);
    }
    assert.equal(store.headers(58, 10).length, 160, "clipped to the tip");
    assert.equal(store.headerAt(60), undefined);
    await store.close();
  });
});

Deno.test("a flush after every block gives the same answers as one flush at the end", async () => {
  const chain = SynthChain.create(2);
  chain.extend(40);
  const scripts = chain.scripts;
  const expected = expectedAnswers(replay(chain.blocks), scripts);
  await withDir(async (dir) => {
    const store = await open(dir);
    const p = processor(store);
    let flushes = 0;
    for (const b of chain.blocks) {
      p.advance([raw(b)]);
      await p.flush();
      flushes++;
    }
    assert.equal(store.state.flushCount, flushes);
    assert.deepEqual(await answers(store, scripts), expected);
    await store.close();
  });
  await withDir(async (dir) => {
    const store = await open(dir);
    const p = processor(store, { flushSize: 40 });
    let flushes = 0;
    for (const b of chain.blocks) {
      p.advance([raw(b)]);
      if (p.needsFlush()) {
        await p.flush();
        flushes++;
      }
    }
    await p.flush();
    assert.ok(flushes > 3, `FLUSH_SIZE triggers flushes (${flushes})`);
    assert.deepEqual(await answers(store, scripts), expected);
    await store.close();
  });
});

Deno.test("outputs created and spent between flushes are elided and counted as cache hits", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(3);
    const a = walletScript(chain.rng), b = walletScript(chain.rng);
    chain.extend(2);
    const coin = chain.pool[0];
    const t1 = makeTx([{ txid: coin.txid, vout: coin.vout }], [{ script: a, value: coin.value - 100 }]);
    const t2 = makeTx([{ txid: t1.txid, vout: 0 }], [{ script: b, value: coin.value - 200 }]);
    chain.append([t1]);
    chain.append([t2]);
    const store = await open(dir);
    const p = processor(store);
    p.advance(chain.blocks.slice(0, 2).map(raw));
    await p.flush();
    p.advance(chain.blocks.slice(2).map(raw));
    const stats = await p.flush();
    // t1's output was created in block 2 and spent in block 3, never written; coin was spent from disk.
    assert.equal(stats.cacheHits, 1);
    assert.equal(stats.elided, 2);
    assert.deepEqual(await store.utxos(modelHashX(a)), []);
    assert.equal((await store.history(modelHashX(a))).length, 2, "a still shows both transactions");
    assert.equal(await store.balance(modelHashX(b)), coin.value - 200);
    assert.equal(await store.lookupUtxo(t1.txid, 0), undefined);
    const u = await store.lookupUtxo(t2.txid, 0);
    assert.ok(u);
    assert.deepEqual(u.hashX, modelHashX(b));
    assert.equal(u.value, coin.value - 200);
    await store.close();
  });
});

Deno.test("backup across flushed and unflushed blocks restores the exact earlier state", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(4);
    chain.extend(30);
    const scripts = chain.scripts;
    const store = await open(dir);
    const p = processor(store, { reorgLimit: 12 });
    p.advance(chain.blocks.slice(0, 20).map(raw));
    await p.flush();
    const at19 = await answers(store, scripts);
    p.advance(chain.blocks.slice(20, 25).map(raw));
    await p.flush();
    p.advance(chain.blocks.slice(25).map(raw)); // 25..29 unflushed
    p.takeTouched();
    await p.backup(19);
    assert.equal(p.height, 19);
    assert.deepEqual(p.tipHash, chain.blocks[19].hash);
    assert.deepEqual(await answers(store, scripts), at19);
    assert.ok(p.takeTouched().length > 0, "backup reports touched hashXs");
    assert.equal(store.headers(0, 100).length, 20 * 80);

    // A different branch from 19 on, then the answers match the model of that branch.
    const fork = chain.forkAt(19, 7, 99);
    fork.extend(15);
    p.advance(fork.blocks.slice(20).map(raw));
    await p.flush();
    assert.deepEqual(await answers(store, scripts), expectedAnswers(replay(fork.blocks), scripts));
    // Transactions of the abandoned branch are gone from the txid index.
    for (const b of chain.blocks.slice(20)) {
      for (const tx of b.txs.slice(1)) assert.equal(await store.findTx(tx.txid), undefined);
    }
    // And the undo records written for the new branch work too.
    await p.backup(25);
    assert.deepEqual(
      await answers(store, scripts),
      expectedAnswers(replay(fork.blocks.slice(0, 26)), scripts),
    );
    await store.close();
    const again = await open(dir);
    assert.equal(again.state.height, 25);
    assert.deepEqual(
      await answers(again, scripts),
      expectedAnswers(replay(fork.blocks.slice(0, 26)), scripts),
    );
    await again.close();
  });
});

Deno.test("onFlush reports flushes that wrote something, not the empty ones backups and reorgs make", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(8);
    chain.extend(12);
    const store = await open(dir);
    let reported = 0;
    const p = processor(store, { onFlush: () => reported++ });
    p.advance(chain.blocks.slice(0, 10).map(raw));
    await p.flush();
    assert.equal(reported, 1);
    await p.flush();
    assert.equal(reported, 1, "nothing pending: not a flush to report");
    await p.backup(7);
    const afterBackup = reported;
    await p.flush();
    assert.equal(reported, afterBackup);
    p.advance(chain.blocks.slice(8).map(raw));
    await p.flush();
    assert.equal(reported, afterBackup + 1);
    await store.close();
  });
});

// BIP30's two mainnet exceptions, in miniature: block 3 repeats block 1's coinbase (same txid) and its outputs
// replace the unspent ones, as in bitcoind's UTXO set; history keeps both heights.
for (const flushBetween of [false, true]) {
  Deno.test(`a coinbase repeated at a BIP30 exception replaces the earlier outputs (flushed between: ${flushBetween})`, async () => {
    await withDir(async (dir) => {
      const chain = SynthChain.create(21);
      chain.extend(1);
      const payee = chain.scripts[0];
      const repeated = makeCoinbase(1, [{ script: payee, value: 50_0000_0000 }]);
      chain.append([], repeated); // height 1
      chain.append([]); // height 2: empty, so block 1's output is still unspent at height 3
      chain.append([], repeated); // height 3: same txid
      chain.append([]);
      chain.append([]);
      const net = { name: "regtest", overwritingCoinbases: [{ height: 3, hash: chain.blocks[3].hash }] };
      const store = await open(dir);
      try {
        const p = new BlockProcessor(store, {
          reorgLimit: 10,
          cacheMb: 64,
          flushSize: 1e6,
          log: quietLog(),
          network: net,
        });
        p.advance(chain.blocks.slice(0, 3).map(raw));
        if (flushBetween) await p.flush();
        p.advance(chain.blocks.slice(3).map(raw));
        await p.flush();
        const scripts = chain.scripts;
        assert.deepEqual(await answers(store, scripts), expectedAnswers(replay(chain.blocks), scripts));
        const coins = await store.utxos(modelHashX(payee));
        assert.equal(
          coins.filter((c) => toHex(c.txHash) === toHex(repeated.txid)).length,
          1,
          "one coin, not two",
        );
        // Spending it leaves none behind.
        chain.append([
          makeTx([{ txid: repeated.txid, vout: 0 }], [{ script: scripts[1], value: 49_0000_0000 }]),
        ]);
        p.advance([raw(chain.blocks[6])]);
        await p.flush();
        assert.deepEqual(await answers(store, scripts), expectedAnswers(replay(chain.blocks), scripts));
        // Undoing block 3 brings block 1's output back.
        await p.backup(2);
        assert.deepEqual(
          await answers(store, scripts),
          expectedAnswers(replay(chain.blocks.slice(0, 3)), scripts),
        );
      } finally {
        await store.close();
      }
    });
  });
}

Deno.test("a reorg within the limit but past the undo records an earlier reorg used says why it cannot", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(9);
    chain.extend(10);
    const store = await open(dir);
    try {
      const p = processor(store, { reorgLimit: 3 });
      p.advance(chain.blocks.map(raw));
      await p.flush();
      await p.backup(7); // undo records remain for block 7 only (7, 8 and 9 were kept)
      await assert.rejects(
        () => p.backup(5),
        (e: unknown) =>
          e instanceof ReorgTooDeepError && /an earlier reorg lowered the tip/.test(e.message) &&
          /unchanged at height 7/.test(e.message),
      );
      assert.equal(store.state.height, 7);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a reorg deeper than the limit is refused and the database stays intact", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(5);
    chain.extend(20);
    const store = await open(dir);
    const p = processor(store, { reorgLimit: 5 });
    p.advance(chain.blocks.map(raw));
    await p.flush();
    const before = await answers(store, chain.scripts);
    await assert.rejects(
      () => p.backup(13),
      (e) => e instanceof ReorgTooDeepError && /REORG_LIMIT/.test(e.message),
    );
    assert.equal(p.height, 19);
    assert.deepEqual(await answers(store, chain.scripts), before);
    await p.backup(14); // exactly the limit works
    const model = replay(chain.blocks.slice(0, 15));
    assert.deepEqual(await answers(store, chain.scripts), expectedAnswers(model, chain.scripts));
    await store.close();
  });
});

Deno.test("a block that does not connect throws ChainMismatchError and applies nothing of it", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(6);
    chain.extend(5);
    const other = SynthChain.create(7);
    other.extend(5);
    const store = await open(dir);
    const p = processor(store);
    p.advance(chain.blocks.slice(0, 3).map(raw));
    assert.throws(
      () => p.advance([raw(other.blocks[3])]),
      (e) => e instanceof ChainMismatchError && e.height === 3,
    );
    assert.equal(p.height, 2);
    p.advance(chain.blocks.slice(3).map(raw));
    await p.flush();
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks), chain.scripts),
    );
    await store.close();
  });
});

Deno.test("spending an output that exists nowhere is fatal and never reaches the disk", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(8);
    chain.extend(4);
    const store = await open(dir);
    const p = processor(store);
    p.advance(chain.blocks.map(raw));
    await p.flush();
    const before = await answers(store, chain.scripts);
    const coin = chain.pool[0];
    const good = makeTx([{ txid: coin.txid, vout: coin.vout }], [{ script: chain.scripts[0], value: 1 }]);
    const bad = makeTx([{ txid: new Uint8Array(32).fill(9), vout: 0 }], [{
      script: chain.scripts[1],
      value: 1,
    }]);
    const block = chain.append([good, bad]);
    assert.throws(
      () => p.advance([raw(block)]),
      (e) => e instanceof SyncError && e.code === "missing-output",
    );
    await assert.rejects(() => p.flush(), (e) => e instanceof SyncError && e.code === "broken");
    assert.deepEqual(await answers(store, chain.scripts), before);
    await store.close();
  });
});

Deno.test("hashXInto equals the first 11 bytes of sha256 for every script length", () => {
  const rng = new Rng(31);
  for (let len = 0; len <= 130; len++) {
    for (let k = 0; k < 4; k++) {
      const script = rng.bytes(len);
      const out = new Uint8Array(20).fill(0xaa);
      hashXInto(script, out, 3);
      assert.deepEqual(out.subarray(3, 14), sha256(script).subarray(0, 11), `length ${len}`);
      assert.equal(out[2], 0xaa);
      assert.equal(out[14], 0xaa, "writes exactly 11 bytes");
    }
  }
});

Deno.test("UtxoCache finds, spends and forgets outputs exactly like a Map, across rehashes", () => {
  const rng = new Rng(32);
  const cache = new UtxoCache();
  cache.clear(1000);
  const model = new Map<string, { txNum: number; value: number; hashX: string }>();
  const txids: Uint8Array[] = [];
  for (let round = 0; round < 20_000; round++) {
    if (rng.int(3) > 0 || txids.length === 0) {
      const txid = rng.bytes(32);
      // Share the first 8 bytes with an earlier txid now and then: the table must still compare all 32.
      if (txids.length > 0 && rng.int(10) === 0) txid.set(txids[rng.int(txids.length)].subarray(0, 8));
      const txNum = cache.addTx(txid);
      txids.push(txid);
      const outs = 1 + rng.int(4);
      for (let vout = 0; vout < outs; vout++) {
        const hx = rng.bytes(11);
        cache.addOutput(txNum, vout, hx, 0, round);
        model.set(`${toHex(txid)}:${vout}`, { txNum, value: round, hashX: toHex(hx) });
      }
    } else {
      const txid = txids[rng.int(txids.length)], vout = rng.int(5);
      const key = `${toHex(txid)}:${vout}`;
      const e = cache.spend(txid, vout);
      const want = model.get(key);
      if (want === undefined) {
        assert.equal(e, -1, key);
        continue;
      }
      assert.ok(e >= 0, key);
      assert.equal(cache.txNumOf(e), want.txNum);
      assert.equal(cache.valueOf(e), want.value);
      assert.equal(toHex(cache.hashXSlab.subarray(e * 11, e * 11 + 11)), want.hashX);
      model.delete(key);
      assert.equal(cache.spend(txid, vout), -1, "spent twice");
    }
  }
  assert.equal(cache.live, model.size);
  const live = new Map<string, number>();
  cache.forEachLive((slab, off, vout, txNum, _hx, _ho, value) => {
    assert.deepEqual(slab.subarray(off, off + 32), txids[txNum - 1000]);
    live.set(`${toHex(txids[txNum - 1000])}:${vout}`, value);
  });
  assert.deepEqual(live, new Map([...model].map(([k, v]) => [k, v.value])));
  cache.clear(5);
  assert.equal(cache.live, 0);
  assert.equal(cache.spend(txids[0], 0), -1);
  assert.equal(cache.addTx(txids[0]), 5);
});

Deno.test("HistoryCache keeps each hashX's tx_nums in order, once per transaction", () => {
  const rng = new Rng(33);
  const hist = new HistoryCache();
  const keys = Array.from({ length: 300 }, () => rng.bytes(11));
  const model = new Map<string, number[]>();
  for (let txNum = 10; txNum < 5000; txNum++) {
    for (let k = 0; k < 1 + rng.int(6); k++) {
      const hx = keys[rng.int(keys.length)];
      const buf = new Uint8Array(20);
      buf.set(hx, 4);
      hist.add(buf, 4, txNum);
      const list = model.get(toHex(hx)) ?? [];
      if (list[list.length - 1] !== txNum) list.push(txNum);
      model.set(toHex(hx), list);
    }
  }
  const got = new Map<string, number[]>();
  hist.forEachRow((slab, off, first, row) => {
    const nums: number[] = [];
    for (let o = 0; o < row.length; o += 5) {
      nums.push(row[o] * 2 ** 32 + new DataView(row.buffer, o + 1, 4).getUint32(0));
    }
    assert.equal(first, nums[0]);
    got.set(toHex(slab.subarray(off, off + 11)), nums);
  });
  assert.deepEqual(got, model);
  assert.equal(hist.items, [...model.values()].reduce((a, l) => a + l.length, 0));
  const recent = new Set<string>();
  hist.forEachTouchedSince(4990, (slab, off) => recent.add(toHex(slab.subarray(off, off + 11))));
  assert.deepEqual(recent, new Set([...model].filter(([, l]) => l[l.length - 1] >= 4990).map(([k]) => k)));
  hist.clear();
  assert.equal(hist.size, 0);
  assert.equal(hist.items, 0);
});

Deno.test("takeTouched reports each changed hashX once, across flushes, and not during the first sync", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(34);
    chain.extend(12);
    const store = await open(dir);
    const p = processor(store);
    p.advance(chain.blocks.slice(0, 6).map(raw));
    await p.flush();
    assert.equal(p.firstSync, true);
    assert.deepEqual(p.takeTouched(), [], "a first-sync flush drops touched hashXs");
    p.firstSync = false;
    const expected = (blocks: SynthBlock[], before: SynthBlock[]) => {
      const a = replay(before).history, b = replay([...before, ...blocks]).history;
      return [...b].filter(([k, l]) => (a.get(k)?.length ?? 0) !== l.length).map(([k]) => k).sort();
    };
    p.advance(chain.blocks.slice(6, 8).map(raw));
    await p.flush();
    p.advance(chain.blocks.slice(8, 10).map(raw)); // unflushed
    const touched = p.takeTouched().map(toHex).sort();
    assert.deepEqual(touched, expected(chain.blocks.slice(6, 10), chain.blocks.slice(0, 6)));
    assert.deepEqual(p.takeTouched(), []);
    p.advance(chain.blocks.slice(10).map(raw));
    await p.flush();
    assert.deepEqual(
      p.takeTouched().map(toHex).sort(),
      expected(chain.blocks.slice(10), chain.blocks.slice(0, 10)),
    );
    assert.equal(store.state.firstSync, false, "the flag is persisted");
    await store.close();
  });
});

Deno.test("each flush hands the store the outpoints its blocks spend, except first-sync windows", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(35);
    chain.extend(10);
    const store = await open(dir);
    const seen: { txids: number; spends: string[] | undefined }[] = [];
    store.onAppend((txids, spends) => {
      let list: string[] | undefined;
      if (spends !== undefined) {
        const view = new DataView(spends.buffer, spends.byteOffset, spends.byteLength);
        list = [];
        for (let i = 0; i < spends.length; i += 36) {
          list.push(`${toHex(spends.subarray(i, i + 32))}:${view.getUint32(i + 32, true)}`);
        }
      }
      seen.push({ txids: txids.length / 32, spends: list });
    });
    // What the blocks' non-coinbase inputs spend, from the generator's own record of them.
    const expected = (blocks: SynthBlock[]) =>
      blocks.flatMap((b) => b.txs.slice(1).flatMap((t) => t.inputs.map((i) => `${toHex(i.txid)}:${i.vout}`)));
    const p = processor(store);
    p.advance(chain.blocks.slice(0, 4).map(raw));
    await p.flush();
    assert.equal(seen[0].spends, undefined, "not collected during the first sync");
    p.firstSync = false;
    p.advance(chain.blocks.slice(4, 7).map(raw));
    await p.flush();
    p.advance(chain.blocks.slice(7).map(raw));
    await p.flush();
    assert.ok(expected(chain.blocks.slice(4, 7)).length > 0);
    assert.deepEqual(seen[1].spends, expected(chain.blocks.slice(4, 7)));
    assert.deepEqual(seen[2].spends, expected(chain.blocks.slice(7)), "each flush has only its own window's");
    await store.close();
  });
});

/** A daemon serving a SynthChain whose blocks can be replaced (a reorg). */
class SynthSource implements BlockSource {
  constructor(public chain: SynthChain) {}
  getBlockCount(): Promise<number> {
    return Promise.resolve(this.chain.blocks.length - 1);
  }
  getBlockHashes(from: number, count: number): Promise<Uint8Array[]> {
    return Promise.resolve(this.chain.blocks.slice(from, from + count).map((b) => b.hash));
  }
  getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    return Promise.resolve(hashes.map((h) => {
      const b = this.chain.blocks.find((x) => toHex(x.hash) === toHex(h));
      if (!b) throw new Error("unknown block");
      return b.raw;
    }));
  }
}

Deno.test("the sync loop drives the real processor to the tip and through a reorg", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(35);
    chain.extend(80);
    const source = new SynthSource(chain);
    const store = await open(dir);
    const p = processor(store, { reorgLimit: 20, flushSize: 60 });
    const wanted: { height: number; resolve: () => void }[] = [];
    const reached = (height: number) => new Promise<void>((resolve) => wanted.push({ height, resolve }));
    const processorAsSeenBySync: SyncProcessor = p;
    const loop = new SyncLoop(source, processorAsSeenBySync, quietLog(), {
      maxQueueBytes: 50_000,
      pollIntervalMs: 60_000,
      onTip: (h) => {
        for (const w of wanted.splice(0)) {
          if (h === w.height) w.resolve();
          else wanted.push(w);
        }
      },
    });
    const atTip = reached(79);
    const running = loop.run();
    await atTip;
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks), chain.scripts),
    );
    assert.equal(store.state.firstSync, false, "reaching the tip ends the first sync, persistently");

    const fork = chain.forkAt(70, 3, 36);
    fork.extend(15);
    source.chain = fork;
    const afterReorg = reached(85);
    loop.pollNow();
    await afterReorg;
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(fork.blocks), chain.scripts),
    );
    loop.stop();
    await running;
    await store.close();
  });
});
