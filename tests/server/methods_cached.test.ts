// The scripthash methods answer from the store's cache without awaiting, and that answer is the same JSON as
// the one read from the database. Uses a real synced store (the synthetic chain of tests/db) and a stub
// mempool holding one unconfirmed transaction for one script.
import assert from "node:assert/strict";
import { NETWORKS } from "../../src/chain/network.ts";
import { toHexReversed } from "../../src/chain/hex.ts";
import { sha256 } from "../../src/chain/hash.ts";
import { Store } from "../../src/db/store.ts";
import { createMethods } from "../../src/server/methods.ts";
import { SubscriptionIndex } from "../../src/server/subscriptions.ts";
import { RawJson, type SessionContext } from "../../src/server/types.ts";
import { BlockProcessor } from "../../src/sync/processor.ts";
import { type SynthBlock, SynthChain } from "../db/synth_chain.ts";

const REGTEST = { name: "regtest" };
const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };
const raw = (b: SynthBlock) => ({ height: b.height, hash: b.hash, raw: b.raw });

const ctx: SessionContext = {
  id: 1,
  remoteAddress: "127.0.0.1:1",
  protocolVersion: "1.4",
  protocolTuple: [1, 4],
  addCost: () => {},
  notify: () => {},
  onClose: () => {},
  closed: false,
};

// What the session would send: RawJson as is, anything else through JSON.stringify.
async function wire(result: unknown): Promise<string> {
  const r = await result;
  return r instanceof RawJson ? r.json : JSON.stringify(r);
}

Deno.test("scripthash methods: answers from the cache (no await) equal answers read from the database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-methods-cached-" });
  const store = await Store.open(dir, REGTEST, { log: quiet });
  try {
    const chain = SynthChain.create(31, 6, 10);
    chain.extend(30);
    const p = new BlockProcessor(store, {
      reorgLimit: 10,
      cacheMb: 64,
      flushSize: 1e9,
      log: quiet,
      network: REGTEST,
    });
    p.advance(chain.blocks.map(raw));
    await p.flush();
    const pendingTxid = new Uint8Array(32).fill(7);
    const mempoolScript = chain.scripts[0];
    const mempoolHashX = sha256(mempoolScript).subarray(0, 11);
    const sameHashX = (h: Uint8Array) => h.every((b, i) => b === mempoolHashX[i]);
    const methods = createMethods({
      store,
      mempool: {
        history: (h) =>
          sameHashX(h)
            ? [{
              txid: pendingTxid,
              txidHex: toHexReversed(pendingTxid),
              fee: 141,
              hasUnconfirmedParent: true,
            }]
            : [],
        balanceDelta: (h) => (sameHashX(h) ? 5000 : 0),
        utxos: (h) => (sameHashX(h) ? [{ txHash: pendingTxid, vout: 1, value: 5000 }] : []),
        isSpent: () => false,
        feeHistogram: () => [],
        rawTx: () => undefined,
      },
      daemon: { call: () => Promise.reject(new Error("no daemon in this test")) },
      config: {
        maxSend: 1_000_000,
        bannerFile: undefined,
        donationAddress: "",
        services: [],
        reportServices: [],
      },
      network: NETWORKS.regtest,
      log: quiet,
      subscriptions: new SubscriptionIndex({ maxSubs: 10, maxSessionSubs: 10 }),
    });
    const call = (name: string, params: unknown[]) => methods.get(name)!.handler(ctx, params);
    let cachedAnswers = 0;
    for (const script of chain.scripts) {
      const sh = toHexReversed(sha256(script));
      for (const name of ["get_history", "get_balance", "listunspent"]) {
        const method = `blockchain.scripthash.${name}`;
        const params = name === "get_history" ? [sh, undefined, undefined] : [sh];
        const first = await wire(call(method, params));
        // The first read filled the cache (get_balance and listunspent share one); the second is answered at once.
        const second = call(method, params);
        if (!(second instanceof Promise)) cachedAnswers++;
        assert.equal(await wire(second), first, `${name} of ${sh}`);
      }
      // A height range is read from the database even when the whole history is cached, and agrees with it.
      const all = JSON.parse(
        await wire(call("blockchain.scripthash.get_history", [sh, undefined, undefined])),
      );
      const ranged = JSON.parse(await wire(call("blockchain.scripthash.get_history", [sh, 10, 20])));
      assert.deepEqual(ranged, all.filter((e: { height: number }) => e.height >= 10 && e.height < 20));
    }
    assert.equal(cachedAnswers, chain.scripts.length * 3);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
