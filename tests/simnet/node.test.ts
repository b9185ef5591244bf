import assert from "node:assert/strict";
import { parseBlock } from "../../src/chain/block.ts";
import { fromHex, toHex } from "../../src/chain/hex.ts";
import { blockSubsidy, NETWORKS } from "../../src/chain/network.ts";
import {
  decodeTransaction,
  serializeTransaction,
  type Transaction,
  type TxOutput,
} from "../../src/chain/tx.ts";
import { CACHE_FORMAT_VERSION, cacheFileName, parseChainCache } from "../../scripts/simnet/cache.ts";
import { cachePathFor, type Coin, SimNode } from "../../scripts/simnet/node.ts";
import { CoreRpcError } from "../../scripts/simnet/rpc_types.ts";
import { checkChain } from "./chain_checker.ts";

const P2WPKH = (fill: number) => Uint8Array.of(0x00, 0x14, ...new Array(20).fill(fill));
const NULL_TXID = new Uint8Array(32);

async function tempNode(blocks: number, seed = "node-test", txs?: number): Promise<SimNode> {
  return await SimNode.open({
    datadir: await Deno.makeTempDir({ prefix: "simnet-node-" }),
    seed,
    blocks,
    txs,
    now: () => 1_800_000_000,
  });
}

function activeRaws(node: SimNode): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let h = 0; h <= node.height; h++) out.push(node.blockInfo(node.hashAt(h)!)!.raw);
  return out;
}

/** Checks the node's active chain with the independent checker and compares its UTXO set with the replay. */
function assertConsistent(node: SimNode): void {
  const { utxos } = checkChain(activeRaws(node));
  const stats = node.utxoStats();
  assert.equal(stats.count, utxos.size);
  let total = 0;
  for (const [key, coin] of utxos) {
    const [txidHex, vout] = key.split(":");
    const got = node.utxo(fromHex(txidHex), Number(vout));
    assert.ok(got !== undefined, `node lacks ${key}`);
    assert.equal(got.value, coin.value);
    assert.deepEqual(got.script, coin.script);
    assert.equal(got.height, coin.height);
    assert.equal(got.coinbase, coin.coinbase);
    total += coin.value;
  }
  assert.equal(stats.totalValue, total);
}

/** Confirmed, mature, unspent outputs found by walking the chain (coinbases from old blocks first). */
function spendable(node: SimNode, n: number): { txid: Uint8Array; vout: number; coin: Coin }[] {
  const out: { txid: Uint8Array; vout: number; coin: Coin }[] = [];
  for (let h = node.height; h >= 1 && out.length < n; h--) {
    const block = parseBlock(node.blockInfo(node.hashAt(h)!)!.raw);
    for (const tx of block.txs) {
      tx.outputs.forEach((_, vout) => {
        const coin = node.utxo(tx.txid, vout);
        if (coin === undefined || out.length >= n || out.some((x) => toHex(x.txid) === toHex(tx.txid))) {
          return;
        }
        if (coin.coinbase && node.height + 1 - coin.height < 100) return;
        out.push({ txid: tx.txid, vout, coin });
      });
    }
  }
  assert.equal(out.length, n, "not enough spendable outputs");
  return out;
}

function buildTx(
  inputs: { txid: Uint8Array; vout: number }[],
  outputs: TxOutput[],
  locktime = 0,
): Uint8Array {
  return serializeTransaction({
    version: 2,
    locktime,
    inputs: inputs.map((i) => ({
      prevTxid: i.txid,
      prevVout: i.vout,
      scriptSig: Uint8Array.of(1, 0x51),
      sequence: 0xfffffffd,
    })),
    outputs,
    witnesses: null,
  });
}

/** The message of the CoreRpcError `fn` throws. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CoreRpcError, String(e));
    return e.message;
  }
  throw new Error("no error");
}

function rpcError(fn: () => unknown, code: number, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CoreRpcError, String(e));
    assert.equal(e.code, code);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

Deno.test("open generates, caches, and reloads the identical chain", async () => {
  const dir = await Deno.makeTempDir({ prefix: "simnet-cache-" });
  const opts = { datadir: dir, seed: "cache test/ü", blocks: 180, txs: 1500 };
  const a = await SimNode.open(opts);
  const path = cachePathFor(opts);
  assert.ok(path.endsWith(`/${cacheFileName({ seed: opts.seed, blocks: 180, txs: 1500 })}`));
  assert.match(path, new RegExp(`chain-cache_20test_2F_C3_BC-180-1500-v${CACHE_FORMAT_VERSION}\\.bin$`));
  const bytes = await Deno.readFile(path);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [path.split("/").pop()]); // no temp left
  const b = await SimNode.open(opts);
  assert.equal(b.height, 180);
  assert.equal(a.height, 180);
  for (let h = 0; h <= 180; h++) {
    assert.deepEqual(b.hashAt(h), a.hashAt(h));
    assert.deepEqual(b.blockInfo(b.hashAt(h)!)!.raw, a.blockInfo(a.hashAt(h)!)!.raw);
  }
  assertConsistent(b);
  // The same options elsewhere give a byte-identical file.
  const dir2 = await Deno.makeTempDir({ prefix: "simnet-cache-" });
  await SimNode.open({ ...opts, datadir: dir2 });
  assert.deepEqual(await Deno.readFile(cachePathFor({ ...opts, datadir: dir2 })), bytes);
  // A damaged or foreign cache is never used: it is regenerated and rewritten.
  assert.equal(parseChainCache(bytes.subarray(0, bytes.length - 1), opts), null);
  assert.equal(parseChainCache(bytes, { ...opts, txs: 1501 }), null);
  const flipped = bytes.slice();
  flipped[bytes.length - 40] ^= 1; // inside the tip's txids
  assert.equal(parseChainCache(flipped, opts), null);
  await Deno.writeFile(path, bytes.subarray(0, 1000));
  const c = await SimNode.open(opts);
  assert.deepEqual(c.tipHash, a.tipHash);
  assert.deepEqual(await Deno.readFile(path), bytes);
});

Deno.test("chain queries: blocks, txs, genesis, chainwork, median time", async () => {
  const node = await tempNode(150);
  assert.deepEqual(node.hashAt(0), NETWORKS.regtest.genesisHash);
  assert.equal(node.hashAt(151), undefined);
  assert.equal(node.hashAt(-1), undefined);
  const info = node.blockInfo(node.hashAt(120)!)!;
  assert.equal(info.height, 120);
  assert.equal(info.inActiveChain, true);
  assert.deepEqual(info.nextHash, node.hashAt(121));
  assert.equal(info.chainwork, 2n * 121n); // regtest: each block adds 2
  assert.equal(node.blockInfo(node.tipHash)!.nextHash, undefined);
  assert.equal(node.blockInfo(new Uint8Array(32)), undefined);
  const block = parseBlock(info.raw);
  const times = [];
  for (let h = 110; h <= 120; h++) times.push(parseBlock(node.blockInfo(node.hashAt(h)!)!.raw).header.time);
  assert.equal(info.medianTime, times.sort((x, y) => x - y)[5]);
  const tx = block.txs[block.txs.length - 1];
  const hit = node.findConfirmedTx(tx.txid)!;
  assert.equal(hit.height, 120);
  assert.deepEqual(hit.raw, tx.raw);
  assert.deepEqual(node.txInBlock(tx.txid, node.hashAt(120)!), tx.raw);
  assert.equal(node.txInBlock(tx.txid, node.hashAt(119)!), undefined);
  assert.equal(node.findConfirmedTx(new Uint8Array(32).fill(7)), undefined);
  const genesisCoinbase = parseBlock(node.blockInfo(node.hashAt(0)!)!.raw).txs[0];
  assert.equal(node.findConfirmedTx(genesisCoinbase.txid)!.height, 0);
  assert.equal(node.utxo(genesisCoinbase.txid, 0), undefined); // never spendable
  // Prevouts (undo data) give every transaction's fee; the coinbase claims subsidy + fees.
  const prevouts = node.blockPrevouts(node.hashAt(120)!)!;
  let fees = 0;
  block.txs.forEach((t, i) => {
    if (i === 0) return;
    fees += prevouts[i].reduce((s, c) => s + c.value, 0) - t.outputs.reduce((s, o) => s + o.value, 0);
  });
  assert.equal(
    block.txs[0].outputs.reduce((s, o) => s + o.value, 0),
    blockSubsidy(120, NETWORKS.regtest) + fees,
  );
});

Deno.test("acceptTx applies Core's rules and reject reasons", async () => {
  const node = await tempNode(200);
  const [a, b, c, d] = spendable(node, 4);
  rpcError(
    () => node.acceptTx(Uint8Array.of(1, 2, 3)),
    -22,
    "TX decode failed. Make sure the tx has at least one input.",
  );

  const good = buildTx([a], [{ value: a.coin.value - 500, script: P2WPKH(1) }]);
  const txid = node.acceptTx(good);
  assert.deepEqual(node.acceptTx(good), txid); // already in the mempool: not an error
  const entry = node.mempoolTx(txid)!;
  assert.equal(entry.fee, 500);
  assert.equal(entry.vsize, decodeTransaction(good).vsize);
  assert.equal(entry.time, 1_800_000_000);
  assert.equal(entry.height, 200);

  // A conflict is a replacement (full RBF, Core 28's default): at a feerate no higher than the original's it is
  // refused with Core's message.
  rpcError(
    () => node.acceptTx(buildTx([a], [{ value: a.coin.value - 400, script: P2WPKH(2) }])),
    -26,
    /^insufficient fee, rejecting replacement [0-9a-f]{64}; new feerate 0\.0000\d{4} BTC\/kvB <= old feerate 0\.0000\d{4} BTC\/kvB$/,
  );
  rpcError(
    () =>
      node.acceptTx(
        buildTx([{ txid: new Uint8Array(32).fill(9), vout: 0 }], [{ value: 1000, script: P2WPKH(3) }]),
      ),
    -25,
    "bad-txns-inputs-missingorspent",
  );
  // An output the chain already spent.
  const spentBlock = parseBlock(node.blockInfo(node.hashAt(150)!)!.raw);
  const spentIn = spentBlock.txs[1].inputs[0];
  rpcError(
    () =>
      node.acceptTx(
        buildTx([{ txid: spentIn.prevTxid, vout: spentIn.prevVout }], [{ value: 1000, script: P2WPKH(4) }]),
      ),
    -25,
    "bad-txns-inputs-missingorspent",
  );
  // A confirmed transaction whose outputs are still unspent.
  const tip = parseBlock(node.blockInfo(node.tipHash)!.raw);
  const confirmed = tip.txs.find((t, i) =>
    i > 0 && t.outputs.some((_, v) => node.utxo(t.txid, v) !== undefined)
  )!;
  rpcError(() => node.acceptTx(confirmed.raw), -27, "Transaction outputs already in utxo set");
  rpcError(
    () => node.acceptTx(buildTx([b], [{ value: b.coin.value + 1, script: P2WPKH(5) }])),
    -26,
    /^bad-txns-in-belowout, value in \(\d+\.\d{2,8}\) < value out \(\d+\.\d{2,8}\)$/,
  );
  const coinbase = serializeTransaction({
    version: 2,
    locktime: 0,
    inputs: [{
      prevTxid: NULL_TXID,
      prevVout: 0xffffffff,
      scriptSig: Uint8Array.of(2, 0x10, 0x27),
      sequence: 0xffffffff,
    }],
    outputs: [{ value: 5000, script: P2WPKH(6) }],
    witnesses: null,
  });
  rpcError(() => node.acceptTx(coinbase), -26, "coinbase");
  const young = parseBlock(node.blockInfo(node.hashAt(180)!)!.raw).txs[0];
  assert.ok(node.utxo(young.txid, 0)!.coinbase);
  rpcError(
    () => node.acceptTx(buildTx([{ txid: young.txid, vout: 0 }], [{ value: 10_000, script: P2WPKH(7) }])),
    -26,
    "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 21",
  );
  const lowFee = buildTx([c], [{ value: c.coin.value - 50, script: P2WPKH(8) }]);
  const vsize = decodeTransaction(lowFee).vsize;
  rpcError(() => node.acceptTx(lowFee), -26, `min relay fee not met, 50 < ${vsize}`);
  rpcError(
    () =>
      node.acceptTx(
        buildTx([d], [{ value: 293, script: P2WPKH(9) }, {
          value: d.coin.value - 10_000,
          script: P2WPKH(10),
        }]),
      ),
    -26,
    "dust",
  );
  // 294 sats is exactly the P2WPKH dust threshold, so this one is fine.
  node.acceptTx(
    buildTx([d], [{ value: 294, script: P2WPKH(9) }, { value: d.coin.value - 10_000, script: P2WPKH(10) }]),
  );
  rpcError(
    () => node.acceptTx(buildTx([b], [{ value: 5000, script: P2WPKH(11) }], node.height + 1)),
    -26,
    "non-final",
  );
  assert.equal(node.mempoolEntries().length, 2);
});

Deno.test("traffic fills the mempool with valid, partly chained txs; mining confirms them", async () => {
  const node = await tempNode(220);
  const ids = node.addMempoolTraffic(150);
  assert.equal(ids.length, 150);
  const entries = node.mempoolEntries();
  assert.deepEqual(entries.map((e) => toHex(e.txid)), ids.map(toHex)); // acceptance order
  const chained = entries.filter((e) => e.depends.length > 0);
  assert.ok(chained.length > 10, `chained ${chained.length}`);
  for (const e of chained) {
    for (const p of e.depends) assert.ok(node.mempoolTx(p)!.spentBy.some((c) => toHex(c) === toHex(e.txid)));
  }
  const feeTotal = entries.reduce((s, e) => s + e.fee, 0);
  assert.deepEqual(node.estimateFeeRate(6), { blocks: 0 }, "nothing watched yet");

  const [empty] = node.mine(1, { includeMempool: false });
  assert.equal(parseBlock(node.blockInfo(empty)!.raw).txs.length, 1);
  assert.equal(node.mempoolEntries().length, 150);
  const [hash] = node.mine(1);
  assert.equal(node.height, 222);
  assert.deepEqual(node.tipHash, hash);
  const block = parseBlock(node.blockInfo(hash)!.raw);
  assert.equal(block.txs.length, 151);
  assert.deepEqual(block.txs.slice(1).map((t) => toHex(t.txid)), ids.map(toHex));
  assert.equal(
    block.txs[0].outputs.reduce((s, o) => s + o.value, 0),
    blockSubsidy(222, NETWORKS.regtest) + feeTotal,
  );
  assert.equal(node.mempoolEntries().length, 0);
  assert.equal(node.findConfirmedTx(ids[0])!.height, 222);
  assertConsistent(node);
  // The traffic waited two blocks (the empty one, then this). Core answers no target beyond half the blocks
  // watched since the first (and 1 counts as 2): one block watched answers none, four answer up to 2.
  assert.deepEqual(node.estimateFeeRate(2), { blocks: 0 });
  node.mine(3, { includeMempool: false });
  const estimate = node.estimateFeeRate(2);
  assert.ok(estimate.satPerVb !== undefined && estimate.satPerVb >= 1, JSON.stringify(estimate));
  assert.equal(estimate.blocks, 2);
  assert.deepEqual(node.estimateFeeRate(100), estimate);
});

Deno.test("reorgs of depth 1, 6 and 100 move, return and double-spend txs exactly", async () => {
  const node = await tempNode(330, "reorg-test", 9000);
  node.addMempoolTraffic(40);
  for (const depth of [1, 6, 100]) {
    const before = node.height;
    const mempoolBefore = node.mempoolEntries().map((e) => toHex(e.txid));
    const oldTxids = new Set<string>();
    const oldTxs: Transaction[] = [];
    let stale: { tx: Transaction; block: Uint8Array } | undefined;
    for (let h = before - depth + 1; h <= before; h++) {
      for (const tx of parseBlock(node.blockInfo(node.hashAt(h)!)!.raw).txs.slice(1)) {
        oldTxids.add(toHex(tx.txid));
        oldTxs.push(tx);
        stale = { tx, block: node.hashAt(h)! };
      }
    }
    const want = depth === 1 ? 1 : 3;
    const r = node.reorg(depth, { toMempool: want, doubleSpend: want, extraBlocks: depth === 6 ? 2 : 0 });
    assert.equal(r.oldHashes.length, depth);
    assert.ok(r.newHashes.length >= depth + 1 + (depth === 6 ? 2 : 0));
    assert.equal(node.height, before - depth + r.newHashes.length);
    assert.equal(r.toMempool.length, want, "toMempool");
    assert.equal(r.doubleSpent.length, want, "doubleSpent");
    assert.ok(r.moved.length > 0.5 * oldTxids.size, `moved ${r.moved.length} of ${oldTxids.size}`);
    // Every old-branch tx is accounted for exactly once.
    assert.equal(
      r.moved.length + r.toMempool.length + r.doubleSpent.length +
        r.evicted.filter((t) => oldTxids.has(toHex(t))).length,
      oldTxids.size,
    );
    for (const h of r.oldHashes) {
      const info = node.blockInfo(h)!;
      assert.equal(info.inActiveChain, false);
      assert.equal(info.nextHash, undefined);
      assert.ok(node.blockPrevouts(h)!.length > 0);
    }
    r.newHashes.forEach((h, i) => assert.deepEqual(node.hashAt(before - depth + 1 + i), h));
    const newBlockKeys = new Set(r.newHashes.map(toHex));
    for (const t of r.moved) assert.ok(newBlockKeys.has(toHex(node.findConfirmedTx(t)!.blockHash)));
    for (const t of r.toMempool) {
      assert.ok(node.mempoolTx(t));
      assert.equal(node.findConfirmedTx(t), undefined);
    }
    r.doubleSpent.forEach((t, i) => {
      assert.equal(node.findConfirmedTx(t), undefined);
      assert.equal(node.mempoolTx(t), undefined);
      const conflict = decodeTransaction(node.findConfirmedTx(r.conflicts[i])!.raw);
      const victim = oldTxs.find((x) => toHex(x.txid) === toHex(t))!;
      assert.ok(
        conflict.inputs.some((ci) =>
          victim.inputs.some((vi) => toHex(vi.prevTxid) === toHex(ci.prevTxid) && vi.prevVout === ci.prevVout)
        ),
      );
    });
    for (const t of r.evicted) assert.equal(node.mempoolTx(t), undefined);
    // Stale blocks still serve their transactions.
    if (stale !== undefined) assert.deepEqual(node.txInBlock(stale.tx.txid, stale.block), stale.tx.raw);
    // The mempool kept what stayed valid.
    const now = new Set(node.mempoolEntries().map((e) => toHex(e.txid)));
    for (const k of mempoolBefore) assert.ok(now.has(k) || r.evicted.some((t) => toHex(t) === k));
    assertConsistent(node);
  }
  // The reorganised chain keeps working.
  node.mine(2);
  assert.equal(node.mempoolEntries().length, 0);
  assertConsistent(node);
});

Deno.test("reorg and mine reject bad arguments", async () => {
  const node = await tempNode(20);
  rpcError(() => node.reorg(0), -8, "reorg depth must be between 1 and 20");
  rpcError(() => node.reorg(21), -8, "reorg depth must be between 1 and 20");
  rpcError(() => node.reorg(1, { toMempool: -1 }), -8, "toMempool must be a non-negative integer");
  rpcError(() => node.mine(-1), -8, "bad block count -1");
  const r = node.reorg(20);
  assert.equal(node.height, 21);
  assert.equal(r.moved.length, 0);
  assertConsistent(node);
});

Deno.test("acceptTx replaces conflicting transactions under Core's full-RBF rules", async () => {
  const node = await tempNode(200, "rbf");
  const [a, b, c] = spendable(node, 3);
  const display = (txid: Uint8Array) => toHex(txid.slice().reverse());
  const vsizeOf = (raw: Uint8Array) => decodeTransaction(raw).vsize;

  // The original: spends a, fee 1,000; its child spends the original's output, fee 20,000.
  const original = buildTx([a], [{ value: a.coin.value - 1000, script: P2WPKH(1) }]);
  const originalId = node.acceptTx(original);
  const child = buildTx([{ txid: originalId, vout: 0 }], [{
    value: a.coin.value - 21_000,
    script: P2WPKH(2),
  }]);
  const childId = node.acceptTx(child);
  // Another mempool transaction, whose output a replacement must not newly depend on.
  const other = buildTx([b], [{ value: b.coin.value - 3000, script: P2WPKH(3) }]);
  const otherId = node.acceptTx(other);

  // A higher feerate than the original but less than the fees of everything it would evict (original + child).
  const cheap = buildTx([a], [{ value: a.coin.value - 5000, script: P2WPKH(4) }]);
  rpcError(
    () => node.acceptTx(cheap),
    -26,
    `insufficient fee, rejecting replacement ${
      display(decodeTransaction(cheap).txid)
    }, less fees than conflicting txs; 0.00005 < 0.00021`,
  );
  // Enough to cover them, but not its own relay on top (1 sat/vB of its size).
  const justOver = buildTx([a], [{ value: a.coin.value - 21_001, script: P2WPKH(4) }]);
  rpcError(
    () => node.acceptTx(justOver),
    -26,
    `insufficient fee, rejecting replacement ${
      display(decodeTransaction(justOver).txid)
    }, not enough additional fees to relay; 0.00000001 < ${
      (vsizeOf(justOver) / 1e8).toFixed(8).replace(/0+$/, "")
    }`,
  );
  // A new unconfirmed input (other's output) is refused, even paying well.
  const addsUnconfirmed = buildTx(
    [a, { txid: otherId, vout: 0 }],
    [{ value: a.coin.value + b.coin.value - 100_000, script: P2WPKH(5) }],
  );
  rpcError(
    () => node.acceptTx(addsUnconfirmed),
    -26,
    `replacement-adds-unconfirmed, replacement ${
      display(decodeTransaction(addsUnconfirmed).txid)
    } adds unconfirmed input, idx 1`,
  );
  // Spending the output of the transaction it replaces cannot work.
  const selfDefeating = buildTx(
    [c, { txid: originalId, vout: 0 }, a],
    [{ value: c.coin.value - 100_000, script: P2WPKH(6) }],
  );
  rpcError(
    () => node.acceptTx(selfDefeating),
    -26,
    `bad-txns-spends-conflicting-tx, ${
      display(decodeTransaction(selfDefeating).txid)
    } spends conflicting transaction ${display(originalId)}`,
  );
  assert.ok(node.mempoolTx(originalId) && node.mempoolTx(childId) && node.mempoolTx(otherId));
  // Conflicting with two, the first to fail a rule is the lower txid's (Core's sets are ordered by txid),
  // whatever the order of the inputs.
  const lowRate = (inputs: typeof a[]) =>
    buildTx(inputs, [{ value: inputs.reduce((sum, i) => sum + i.coin.value, 0) - 1200, script: P2WPKH(8) }]);
  const oldRate = (raw: Uint8Array) =>
    /old feerate (\S+ BTC\/kvB)$/.exec(errorOf(() => node.acceptTx(raw)))![1];
  const lower = toHex(originalId) < toHex(otherId) ? originalId : otherId;
  const expected = (e: { fee: number; vsize: number }) =>
    `${(Math.floor((e.fee * 1000) / e.vsize) / 1e8).toFixed(8)} BTC/kvB`;
  assert.equal(oldRate(lowRate([a, b])), expected(node.mempoolTx(lower)!));
  assert.equal(oldRate(lowRate([b, a])), expected(node.mempoolTx(lower)!));

  // A replacement that pays for everything it evicts and for itself goes in; the original and its child go.
  const before = node.mempoolSequence;
  const bump = buildTx([a], [{ value: a.coin.value - 30_000, script: P2WPKH(7) }]);
  const replaced: Uint8Array[] = [];
  const bumpId = node.acceptTx(bump, replaced);
  assert.deepEqual(new Set(replaced.map(toHex)), new Set([toHex(originalId), toHex(childId)]));
  assert.equal(node.mempoolTx(originalId), undefined);
  assert.equal(node.mempoolTx(childId), undefined);
  assert.equal(node.mempoolTx(bumpId)!.fee, 30_000);
  assert.ok(node.mempoolTx(otherId));
  assert.equal(node.mempoolSequence, before + 3, "two removals and one addition");
  // Mining confirms the replacement, not the original.
  const height = node.height;
  node.mine(1);
  assert.equal(node.findConfirmedTx(bumpId)!.height, height + 1);
  assert.equal(node.findConfirmedTx(originalId), undefined);
});

Deno.test("the fee estimate learns, as Core's, only from transactions seen entering the mempool", async () => {
  const node = await tempNode(300, "fees");
  // The generated chain's transactions were never in this node's mempool: nothing to go on yet.
  assert.deepEqual(node.estimateFeeRate(6), { blocks: 0 });
  const coins = spendable(node, 600).filter((c) => c.coin.value > 100_000);
  assert.ok(coins.length >= 79);
  let next = 0;
  const pay = (satPerVb: number) => {
    const c = coins[next++];
    const vsize = decodeTransaction(buildTx([c], [{ value: c.coin.value - 1, script: P2WPKH(9) }])).vsize;
    return buildTx([c], [{ value: c.coin.value - satPerVb * vsize, script: P2WPKH(9) }]);
  };
  // Core answers no target beyond half the blocks it has watched (a target of 1 counts as 2).
  node.mine(4, { includeMempool: false });
  assert.deepEqual(node.estimateFeeRate(6), { blocks: 1 }, "three blocks watched since the first");
  // A child of an unconfirmed parent says little about its own feerate (it may pay for its parent): Core does
  // not learn from it. 19 parents (learned from) and their 19 children (not) are one short of a group.
  for (let i = 0; i < 19; i++) {
    const parentId = node.acceptTx(pay(2));
    const parent = node.mempoolTx(parentId)!;
    const value = decodeTransaction(parent.raw).outputs[0].value;
    node.acceptTx(buildTx([{ txid: parentId, vout: 0 }], [{ value: value - 20_000, script: P2WPKH(9) }]));
  }
  node.mine(1);
  assert.deepEqual(node.estimateFeeRate(6), { blocks: 2 }, "19 learned from, fewer than a group");
  // 20 at 50 sat/vB and 20 at 2 sat/vB, all confirmed in the next block.
  for (let i = 0; i < 20; i++) node.acceptTx(pay(50));
  for (let i = 0; i < 20; i++) node.acceptTx(pay(2));
  node.mine(1);
  assert.deepEqual(node.estimateFeeRate(2), { satPerVb: 2, blocks: 2 }, "all at once: the lowest group's");
  // 20 more at 10 sat/vB that wait four blocks.
  for (let i = 0; i < 20; i++) node.acceptTx(pay(10));
  node.mine(3, { includeMempool: false });
  node.mine(1);
  // Within 2 blocks only the 50 sat/vB group made it before the slow group breaks the run; within 4 (the most
  // that nine watched blocks allow for a target of 6), all did.
  assert.deepEqual(node.estimateFeeRate(2), { satPerVb: 50, blocks: 2 });
  assert.deepEqual(node.estimateFeeRate(1), { satPerVb: 50, blocks: 2 });
  assert.deepEqual(node.estimateFeeRate(6), { satPerVb: 2, blocks: 4 });
});

Deno.test("acceptTx keeps Core's mempool chain limits, with the CPFP carve-out", async () => {
  const node = await tempNode(200, "chain-limits");
  const [a, b] = spendable(node, 2);
  const display = (txid: Uint8Array) => toHex(txid.slice().reverse());
  // A chain: the 25th may have 24 unconfirmed ancestors; the 26th would have 25.
  let prev = { txid: a.txid, vout: a.vout, value: a.coin.value };
  for (let i = 0; i < 25; i++) {
    const value = prev.value - 1000;
    const txid = node.acceptTx(buildTx([prev], [{ value, script: P2WPKH(1) }]));
    prev = { txid, vout: 0, value };
  }
  rpcError(
    () => node.acceptTx(buildTx([prev], [{ value: prev.value - 1000, script: P2WPKH(1) }])),
    -26,
    "too-long-mempool-chain, too many unconfirmed ancestors [limit: 25]",
  );
  // A parent with 24 children is at its descendant limit; one more small child still goes in (the carve-out
  // keeps room for one), a second does not.
  const fanout = 27;
  const parentRaw = buildTx(
    [b],
    Array.from(
      { length: fanout },
      () => ({ value: Math.floor((b.coin.value - 10_000) / fanout), script: P2WPKH(2) }),
    ),
  );
  const parentId = node.acceptTx(parentRaw);
  const share = Math.floor((b.coin.value - 10_000) / fanout);
  const child = (vout: number) =>
    buildTx([{ txid: parentId, vout }], [{ value: share - 1000, script: P2WPKH(3) }]);
  for (let vout = 0; vout < 24; vout++) node.acceptTx(child(vout));
  // In a package the carve-out does not apply (Core's m_allow_carveouts).
  rpcError(
    () => node.acceptTx(child(24), undefined, { package: true }),
    -26,
    `too-long-mempool-chain, too many descendants for tx ${display(parentId)} [limit: 25]`,
  );
  node.acceptTx(child(24));
  rpcError(
    () => node.acceptTx(child(25)),
    -26,
    `too-long-mempool-chain, too many descendants for tx ${display(parentId)} [limit: 25]`,
  );
  assert.equal(node.mempoolTx(parentId)!.spentBy.length, 25);
});

Deno.test("a reorg returns transactions to the mempool only within Core's chain limits", async () => {
  const node = await tempNode(200, "reorg-limits");
  const [a] = spendable(node, 1);
  let prev = { txid: a.txid, vout: a.vout, value: a.coin.value };
  const step = () => {
    const value = prev.value - 1000;
    const txid = node.acceptTx(buildTx([prev], [{ value, script: P2WPKH(1) }]));
    prev = { txid, vout: 0, value };
  };
  // A chain of 35 confirmed over two blocks: undone, it would be 35 deep in the mempool.
  for (let i = 0; i < 25; i++) step();
  node.mine(1);
  for (let i = 0; i < 10; i++) step();
  node.mine(1);
  const r = node.reorg(2, { toMempool: 35 });
  assert.equal(node.mempoolEntries().length, 25, "the first 25 come back");
  assert.equal(r.evicted.length, 10, "the rest would exceed 25 unconfirmed ancestors");
});
