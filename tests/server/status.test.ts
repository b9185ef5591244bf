import assert from "node:assert/strict";
import { fromHexReversed } from "../../src/chain/hex.ts";
import {
  addressStatus,
  compareMempool,
  historyLimit,
  type MempoolItem,
  sortedMempool,
  statusOf,
  statusString,
  withoutConfirmed,
} from "../../src/server/status.ts";
import { RpcError } from "../../src/server/types.ts";

// protocol.md §4.3's worked example (the spec's), txids in display order.
const SPEC: [string, number][] = [
  ["a6c9c361bd0bc536d6a22648efbf8f9b200e425ef6c3a7a9669dc444c532a347", 2472],
  ["9c42f84b2fcdaff676ba25d9d4941741cc0d1a01cce0c23fdc4c0b2afa38431c", 2473],
  ["770f2d4371b3fabb902dd9a103e2dd005fcd3971181078fca4a2a1d6ff127b30", 2473],
  ["80b19848aed792565ab7c5a79b7c2a00fbf985741579396ebe0ab6098e607311", 0],
  ["e02a1dadfa83b996b24175df807b271ea5d02937ef5b35c195fac1e1bdc3198f", 0],
  ["bb4c8ab438c13b89ca80d1d5bee25b0b6b7f55673f4d801998ba97db161d9e85", -1],
];
const SPEC_STATUS = "78e96c6562cafa71c115503b9411fdfdc595a45031e2ab76ff75162fe1b0590d";

function confirmed(i: number) {
  return { txHash: fromHexReversed(SPEC[i][0]), height: SPEC[i][1] };
}

function pool(i: number, fee = 100): MempoolItem {
  return {
    txid: fromHexReversed(SPEC[i][0]),
    txidHex: SPEC[i][0],
    fee,
    hasUnconfirmedParent: SPEC[i][1] === -1,
  };
}

Deno.test("status: the spec's worked example and its one-entry check", () => {
  const conf = [0, 1, 2].map(confirmed);
  const mem = [3, 4, 5].map((i) => pool(i));
  assert.equal(statusString(conf, mem), SPEC.map(([t, h]) => `${t}:${h}:`).join(""));
  assert.equal(statusOf(conf, mem), SPEC_STATUS);
  assert.equal(
    statusOf([confirmed(0)], []),
    "513031467e85abc1151e86a73c9f8987daefc0a0494e239df1ea8d3c8ac7800a",
  );
  assert.equal(statusOf([], []), null);
});

Deno.test("status: mempool order is height 0 before -1, then display txid, whatever the input order", () => {
  const shuffled = [pool(5), pool(4), pool(3)];
  const sorted = sortedMempool(shuffled);
  assert.deepEqual(sorted.map((m) => m.txidHex), [SPEC[3][0], SPEC[4][0], SPEC[5][0]]);
  assert.equal(statusOf([0, 1, 2].map(confirmed), sorted), SPEC_STATUS);
  // A -1 entry whose txid sorts first still goes last.
  const early: MempoolItem = { ...pool(3), txidHex: "00".repeat(32), hasUnconfirmedParent: true };
  assert.ok(compareMempool(early, pool(4)) > 0);
  // Already sorted input is returned as is (no copy).
  const inOrder = [pool(3), pool(4), pool(5)];
  assert.equal(sortedMempool(inOrder), inOrder);
});

Deno.test("status: a mempool tx the confirmed history already has is counted once", () => {
  const conf = [confirmed(0), { txHash: fromHexReversed(SPEC[3][0]), height: 2480 }];
  const mem = [pool(3), pool(4)];
  const kept = withoutConfirmed(mem, conf, 2480);
  assert.deepEqual(kept.map((m) => m.txidHex), [SPEC[4][0]]);
  // Entries deeper than the recent window are not searched (a stale mempool lags by a block or two).
  assert.equal(withoutConfirmed(mem, conf, 2600), mem);
});

Deno.test("status: addressStatus combines store and mempool, and enforces the history cap", async () => {
  const hist = [0, 1, 2].map((i) => ({ ...confirmed(i), txNum: i }));
  let asked: { limit?: number } | undefined;
  const store = {
    state: { height: 2500 },
    history(_h: Uint8Array, opts?: { limit?: number }) {
      asked = opts;
      return Promise.resolve(hist.slice(0, opts?.limit));
    },
  };
  const mempool = { history: () => [pool(5), pool(3), pool(4)] };
  const r = await addressStatus(store, mempool, new Uint8Array(11), 10);
  assert.equal(r.status, SPEC_STATUS);
  assert.equal(r.hasMempool, true);
  assert.equal(r.items, 6);
  assert.equal(asked?.limit, 11, "asks for one more than the cap to detect overflow");
  await assert.rejects(
    () => addressStatus(store, mempool, new Uint8Array(11), 5),
    (e) => e instanceof RpcError && e.code === 1 && e.message === "history too large",
  );
  const empty = await addressStatus(
    { ...store, history: () => Promise.resolve([]) },
    {
      history: () => [],
    },
    new Uint8Array(11),
    5,
  );
  assert.deepEqual(empty, { status: null, hasMempool: false, items: 0, length: 0 });
});

Deno.test("status: history cap follows MAX_SEND like ElectrumX", () => {
  assert.equal(historyLimit(8_100_000), 81_817);
  assert.equal(historyLimit(350_000), 3534);
});
