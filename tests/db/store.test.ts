import assert from "node:assert/strict";
import { sha256d } from "../../src/chain/hash.ts";
import { toHex } from "../../src/chain/hex.ts";
import { DbError } from "../../src/db/errors.ts";
import { Store } from "../../src/db/store.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import {
  answers,
  expectedAnswers,
  makeCoinbase,
  makeTx,
  modelHashX,
  replay,
  type SynthBlock,
  SynthChain,
  type SynthTx,
} from "./synth_chain.ts";

const REGTEST = { name: "regtest" };

function capture(lines: string[] = []) {
  return { info: (m: string) => lines.push(m), warn: (m: string) => lines.push("WARN " + m) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function processor(store: Store, reorgLimit = 10) {
  return new BlockProcessor(store, {
    reorgLimit,
    cacheMb: 64,
    flushSize: 1e9,
    log: capture(),
    network: REGTEST,
  });
}

const raw = (b: SynthBlock) => ({ height: b.height, hash: b.hash, raw: b.raw });

/** Every file under `dir` with its bytes, for "not modified" checks. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(d: string) {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else out.set(p.slice(dir.length), toHex(await Deno.readFile(p)));
    }
  }
  await walk(dir);
  return out;
}

async function syncedDb(dir: string, blocks: number): Promise<SynthChain> {
  const chain = SynthChain.create(11);
  chain.extend(blocks);
  const store = await Store.open(dir, REGTEST, { log: capture() });
  const p = processor(store);
  p.advance(chain.blocks.map(raw));
  await p.flush();
  await store.close();
  return chain;
}

Deno.test("a new database is created, logged once, and reopens with the same state", async () => {
  await withDir(async (base) => {
    const dir = `${base}/db`;
    const lines: string[] = [];
    const store = await Store.open(dir, REGTEST, { log: capture(lines) });
    assert.deepEqual(lines, [`created new database ${dir}`]);
    assert.equal(store.state.height, -1);
    assert.equal(store.state.txCount, 0);
    assert.equal(store.state.network, "regtest");
    assert.equal(store.state.firstSync, true);
    assert.deepEqual(store.headers(0, 10), new Uint8Array(0));
    assert.equal(store.blockHashAt(0), undefined);
    assert.deepEqual(await store.history(new Uint8Array(11)), []);
    await store.close();
    const again: string[] = [];
    const reopened = await Store.open(dir, REGTEST, { log: capture(again) });
    assert.deepEqual(again, []);
    assert.equal(reopened.state.height, -1);
    await reopened.close();
  });
});

Deno.test("a database of another network is refused and left untouched", async () => {
  await withDir(async (dir) => {
    await syncedDb(dir, 5);
    const before = await snapshot(dir);
    await assert.rejects(
      () => Store.open(dir, { name: "mainnet" }, { log: capture() }),
      (e) =>
        e instanceof DbError && e.code === "wrong-network" && /regtest/.test(e.message) &&
        /mainnet/.test(e.message),
    );
    assert.deepEqual(await snapshot(dir), before);
    const ok = await Store.open(dir, REGTEST, { log: capture() });
    assert.equal(ok.state.height, 4);
    await ok.close();
  });
});

Deno.test("a database of a newer format is refused and left untouched", async () => {
  await withDir(async (dir) => {
    await syncedDb(dir, 3);
    const marker = await Deno.readTextFile(`${dir}/COULOMB`);
    await Deno.writeTextFile(`${dir}/COULOMB`, marker.replace("version 1", "version 7"));
    // Leave junk after the flat files too: a refused open must not even cut those.
    await Deno.writeFile(`${dir}/txids`, new Uint8Array(5), { append: true });
    const before = await snapshot(dir);
    await assert.rejects(
      () => Store.open(dir, REGTEST, { log: capture() }),
      (e) => e instanceof DbError && e.code === "newer-format" && /version 7/.test(e.message),
    );
    assert.deepEqual(await snapshot(dir), before);
  });
});

Deno.test("a non-empty directory without a database is refused", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
    await assert.rejects(
      () => Store.open(dir, REGTEST, { log: capture() }),
      (e) => e instanceof DbError && e.code === "not-a-database",
    );
    assert.deepEqual([...(await snapshot(dir)).keys()], ["/notes.txt"]);
  });
});

Deno.test("a database already open elsewhere is refused as locked", async () => {
  await withDir(async (dir) => {
    const first = await Store.open(dir, REGTEST, { log: capture() });
    await assert.rejects(
      () => Store.open(dir, REGTEST, { log: capture() }),
      (e) => e instanceof DbError && e.code === "locked",
    );
    await first.close();
  });
});

Deno.test("a torn flush (flat files appended, LevelDB batch never written) reopens at the old state", async () => {
  await withDir(async (dir) => {
    const chain = await syncedDb(dir, 8);
    const scripts = chain.scripts;
    const old = expectedAnswers(replay(chain.blocks), scripts);
    const sizes = async () => [
      (await Deno.stat(`${dir}/headers`)).size,
      (await Deno.stat(`${dir}/txids`)).size,
      (await Deno.stat(`${dir}/tx_counts`)).size,
    ];
    const oldSizes = await sizes();
    let store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    chain.extend(4);
    p.advance(chain.blocks.slice(8).map(raw));
    // Make the batch fail after the flat files were appended and fsynced: exactly a kill between the two steps.
    const commit = store.commit.bind(store);
    store.commit = (u) =>
      commit({
        ...u,
        build: () => {
          throw new Error("killed");
        },
      });
    await assert.rejects(() => p.flush(), /killed/);
    assert.ok((await sizes())[0] > oldSizes[0], "the flat files were appended");
    assert.deepEqual(await answers(store, scripts), old, "readers still see the old state");
    await store.close();
    const lines: string[] = [];
    store = await Store.open(dir, REGTEST, { log: capture(lines) });
    assert.ok(lines.some((l) => /^WARN discarding \d+ bytes of an unfinished flush/.test(l)));
    assert.deepEqual(await sizes(), oldSizes);
    assert.equal(store.state.height, 7);
    assert.deepEqual(await answers(store, scripts), old);
    // And syncing resumes from there to the same result as a clean sync.
    const p2 = processor(store);
    p2.advance(chain.blocks.slice(8).map(raw));
    await p2.flush();
    assert.deepEqual(await answers(store, scripts), expectedAnswers(replay(chain.blocks), scripts));
    await store.close();
  });
});

Deno.test("flat files shorter than the state are reported as corruption", async () => {
  await withDir(async (dir) => {
    await syncedDb(dir, 4);
    await Deno.truncate(`${dir}/headers`, 100);
    await assert.rejects(
      () => Store.open(dir, REGTEST, { log: capture() }),
      (e) => e instanceof DbError && e.code === "corrupt" && /headers/.test(e.message),
    );
  });
});

function u32(b: Uint8Array): number {
  return (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
}

/** Two coinbases (for heights h1, h2) whose txids share their first 4 bytes: a birthday search. */
function collidingCoinbases(h1: number, h2: number, script: Uint8Array): [SynthTx, SynthTx] {
  const out = (v: number) => [{ script, value: v }];
  // The extra nonce sits at bytes 47..50 of a coinbase from makeCoinbase; patch it instead of re-serializing.
  const search = (height: number, value: number, visit: (txid: Uint8Array, e: number) => boolean) => {
    const raw = makeCoinbase(height, out(value), 0).raw.slice();
    const view = new DataView(raw.buffer);
    for (let e = 0;; e++) {
      view.setUint32(47, e, true);
      if (!visit(sha256d(raw), e)) return;
    }
  };
  const seen = new Map<number, number>();
  search(h1, 1000, (txid, e) => {
    seen.set(u32(txid), e);
    return e < (1 << 16) - 1;
  });
  let pair: [number, number] = [-1, -1];
  search(h2, 2000, (txid, e) => {
    const hit = seen.get(u32(txid));
    if (hit !== undefined) pair = [hit, e];
    return hit === undefined;
  });
  const a = makeCoinbase(h1, out(1000), pair[0]), b = makeCoinbase(h2, out(2000), pair[1]);
  return [a, b];
}

Deno.test("txids and outpoints whose first 4 bytes collide are told apart", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(12);
    chain.extend(2);
    const script = chain.scripts[0];
    const [a, b] = collidingCoinbases(2, 3, script);
    assert.deepEqual(a.txid.subarray(0, 4), b.txid.subarray(0, 4));
    assert.notDeepEqual(a.txid, b.txid);
    chain.append([], a);
    chain.append([], b);
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    p.advance(chain.blocks.map(raw));
    await p.flush();
    assert.deepEqual(await store.findTx(a.txid), {
      txNum: (await store.findTx(a.txid))!.txNum,
      height: 2,
      index: 0,
    });
    assert.equal((await store.findTx(b.txid))?.height, 3);
    const wrong = b.txid.slice();
    wrong[31] ^= 1;
    assert.equal(await store.findTx(wrong), undefined);
    assert.equal((await store.lookupUtxo(a.txid, 0))?.value, 1000);
    assert.equal((await store.lookupUtxo(b.txid, 0))?.value, 2000);

    // Spend a (from disk, sharing its 'u' key with b), then b stays and a is gone.
    const spend = makeTx([{ txid: a.txid, vout: 0 }], [{ script: chain.scripts[1], value: 900 }]);
    chain.append([spend]);
    p.advance([raw(chain.blocks[4])]);
    await p.flush();
    assert.equal(await store.lookupUtxo(a.txid, 0), undefined);
    assert.equal((await store.lookupUtxo(b.txid, 0))?.value, 2000);
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks), chain.scripts),
    );
    // Undo it: a comes back under the shared key.
    await p.backup(3);
    assert.equal((await store.lookupUtxo(a.txid, 0))?.value, 1000);
    assert.equal((await store.lookupUtxo(b.txid, 0))?.value, 2000);
    const model = replay(chain.blocks.slice(0, 4));
    assert.deepEqual(await answers(store, chain.scripts), expectedAnswers(model, chain.scripts));
    // And spend b instead, from the cache this time.
    const chain2 = chain.forkAt(3, 5, 77);
    chain2.append([makeTx([{ txid: b.txid, vout: 0 }], [{ script: chain.scripts[2], value: 1900 }])]);
    p.advance([raw(chain2.blocks[4])]);
    await p.flush();
    assert.equal((await store.lookupUtxo(a.txid, 0))?.value, 1000);
    assert.equal(await store.lookupUtxo(b.txid, 0), undefined);
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain2.blocks), chain.scripts),
    );
    await store.close();
  });
});

Deno.test("outputs are indexed as ElectrumX indexes them: all but OP_RETURN and OP_0 OP_RETURN scripts", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(19);
    chain.extend(3);
    const odd = [
      Uint8Array.of(0x6a, 2, 1, 2), // OP_RETURN: left out
      Uint8Array.of(0x00, 0x6a, 2, 1, 2), // OP_0 OP_RETURN: left out
      new Uint8Array(0), // empty: indexed
      new Uint8Array(10_001).fill(0x51), // over Core's script size limit: indexed all the same
      Uint8Array.of(0x00, 0x14, ...new Uint8Array(20).fill(9)), // P2WPKH starting with OP_0: indexed
    ];
    chain.append([], makeCoinbase(3, odd.map((script, i) => ({ script, value: 1000 + i }))));
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    p.advance(chain.blocks.map(raw));
    await p.flush();
    const model = replay(chain.blocks);
    assert.deepEqual(await answers(store, odd), expectedAnswers(model, odd));
    const counts = await Promise.all(odd.map((s) => store.history(modelHashX(s)).then((h) => h.length)));
    assert.deepEqual(counts, [0, 0, 1, 1, 1]);
    await store.close();
  });
});

Deno.test("history honours fromHeight, toHeight and limit", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(13, 4, 8);
    chain.extend(50);
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    // Several flushes so that a script's history spans several rows.
    for (let i = 0; i < 50; i += 7) {
      p.advance(chain.blocks.slice(i, i + 7).map(raw));
      await p.flush();
    }
    const model = replay(chain.blocks);
    for (const s of chain.scripts) {
      const hx = modelHashX(s);
      const full = model.history.get(toHex(hx)) ?? [];
      const got = async (o: { fromHeight?: number; toHeight?: number; limit?: number }) =>
        (await store.history(hx, o)).map((h) => [toHex(h.txHash), h.height]);
      assert.deepEqual(await got({}), full);
      assert.deepEqual(
        await got({ fromHeight: 13, toHeight: 29 }),
        full.filter(([, h]) => h >= 13 && h <= 29),
      );
      assert.deepEqual(await got({ fromHeight: 40 }), full.filter(([, h]) => h >= 40));
      assert.deepEqual(await got({ toHeight: 0 }), full.filter(([, h]) => h === 0));
      assert.deepEqual(await got({ fromHeight: 20, limit: 3 }), full.filter(([, h]) => h >= 20).slice(0, 3));
      assert.deepEqual(await got({ fromHeight: 30, toHeight: 10 }), []);
    }
    await store.close();
  });
});

Deno.test("onAppend gets each flush's txids in chain order, when readers already see the flush", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(17, 4, 8);
    chain.extend(12);
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    const seen: { height: number; txids: string[] }[] = [];
    store.onAppend((txids) => {
      const ids: string[] = [];
      for (let i = 0; i < txids.length; i += 32) ids.push(toHex(txids.subarray(i, i + 32)));
      seen.push({ height: store.state.height, txids: ids });
    });
    p.advance(chain.blocks.slice(0, 5).map(raw));
    await p.flush();
    p.advance(chain.blocks.slice(5).map(raw));
    await p.flush();
    const ids = (from: number, to: number) =>
      chain.blocks.slice(from, to).flatMap((b) => b.txs.map((t) => toHex(t.txid)));
    assert.deepEqual(seen, [{ height: 4, txids: ids(0, 5) }, { height: 11, txids: ids(5, 12) }]);
    await store.close();
  });
});

Deno.test("reads issued while a flush commits see the old state or the new one, never a mix", async () => {
  await withDir(async (dir) => {
    const chain = SynthChain.create(14, 6, 12);
    chain.extend(30);
    const scripts = chain.scripts;
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    p.advance(chain.blocks.slice(0, 15).map(raw));
    await p.flush();
    const oldModel = expectedAnswers(replay(chain.blocks.slice(0, 15)), scripts) as Record<string, unknown>;
    const newModel = expectedAnswers(replay(chain.blocks), scripts) as Record<string, unknown>;
    p.advance(chain.blocks.slice(15).map(raw));
    let done = false;
    const flushing = p.flush().then(() => (done = true));
    // Each call must be consistent on its own; compare every call with the old and the new answer.
    const reads: Promise<void>[] = [];
    let mixed = 0, sawOld = 0, sawNew = 0;
    const check = (hx: string, field: string, got: unknown) => {
      const o = JSON.stringify((oldModel[hx] as Record<string, unknown>)[field]);
      const n = JSON.stringify((newModel[hx] as Record<string, unknown>)[field]);
      const g = JSON.stringify(got);
      if (g === o) sawOld++;
      else if (g === n) sawNew++;
      else mixed++;
    };
    const readAll = () => {
      for (const s of scripts) {
        const hx = modelHashX(s), key = toHex(hx);
        reads.push(
          store.history(hx).then((h) => check(key, "history", h.map((x) => [toHex(x.txHash), x.height]))),
        );
        reads.push(
          store.utxos(hx).then((u) =>
            check(key, "utxos", u.map((x) => `${toHex(x.txHash)}:${x.vout}:${x.value}:${x.height}`))
          ),
        );
        reads.push(store.balance(hx).then((b) => check(key, "balance", b)));
      }
    };
    while (!done) {
      readAll();
      await new Promise((r) => setTimeout(r, 0));
    }
    await flushing;
    readAll();
    await Promise.all(reads);
    assert.equal(mixed, 0, "a read saw a mixed state");
    assert.ok(sawOld > 0, "some reads started before the commit");
    assert.ok(sawNew > 0);
    await store.close();
  });
});

Deno.test("killing a syncing process at arbitrary moments always leaves a state a clean sync agrees with", async () => {
  await withDir(async (dir) => {
    const SEED = 21, BLOCKS = 200;
    const chain = SynthChain.create(SEED, 16, 12);
    chain.extend(BLOCKS);
    const child = new URL("./crash_child.ts", import.meta.url).pathname;
    // Kill after these many progress lines of each run (varied so kills land at different flush phases).
    for (const after of [1, 7, 3, 12]) {
      const proc = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-check", "-A", child, dir, String(SEED), String(BLOCKS)],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let seen = 0, last = -1, text = "";
      const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
      while (seen < after) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        const lines = text.split("\n");
        text = lines.pop()!;
        for (const l of lines) {
          seen++;
          last = Number(l.split(" ")[1]);
        }
      }
      proc.kill("SIGKILL");
      await reader.cancel();
      await proc.status;
      const store = await Store.open(dir, REGTEST, { log: capture() });
      const h = store.state.height;
      assert.ok(h >= last, `state ${h} is at least the last reported flush ${last}`);
      const model = replay(chain.blocks.slice(0, h + 1));
      assert.deepEqual(await answers(store, chain.scripts), expectedAnswers(model, chain.scripts));
      await store.close();
    }
    const store = await Store.open(dir, REGTEST, { log: capture() });
    const p = processor(store);
    p.advance(chain.blocks.slice(store.state.height + 1).map(raw));
    await p.flush();
    assert.deepEqual(
      await answers(store, chain.scripts),
      expectedAnswers(replay(chain.blocks), chain.scripts),
    );
    await store.close();
  });
});
