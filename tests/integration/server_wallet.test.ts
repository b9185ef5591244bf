// Guarantee: an Electrum client library we did not write (npm:@mempool/electrum-client) can use Coulomb as a
// wallet uses a server. Coulomb runs as `deno run main.ts` (a child process configured by environment, as an
// operator runs it) over simnet; the library connects, negotiates, subscribes to headers and to its script
// hash, reads history, coins and balance, fetches and proves its funding transaction, broadcasts a spend built
// from that coin, and hears about it in the mempool and again once it is mined.
import assert from "node:assert/strict";
import ElectrumClient from "@mempool/electrum-client";
import { decodeTransaction } from "../../src/chain/tx.ts";
import { freePort, indexerEnv, IndexerProcess, simnet, withTempDir } from "./harness.ts";
import { WAIT_MS } from "./server_client.ts";
import {
  ElectrumModel,
  headerMerkleRoot,
  hex,
  p2wpkh,
  rhex,
  rootFromBranch,
  scripthashOf,
  spendTx,
  txHashOf,
  unhex,
  unrhex,
} from "./server_model.ts";
import { childPort, within } from "./server_stack.ts";

/** The part of the library's API a wallet uses (it ships no types). */
interface Client {
  versionInfo: [string, string];
  subscribe: { on(event: string, fn: (params: unknown[]) => void): void };
  initElectrum(
    config: { client: string; version: unknown },
    policy: Record<string, unknown>,
  ): Promise<unknown>;
  request(method: string, params: unknown[]): Promise<unknown>;
  blockchainHeaders_subscribe(): Promise<unknown>;
  blockchainScripthash_subscribe(sh: string): Promise<string | null>;
  blockchainScripthash_getHistory(sh: string): Promise<{ tx_hash: string; height: number }[]>;
  blockchainScripthash_getMempool(sh: string): Promise<{ tx_hash: string; height: number; fee: number }[]>;
  blockchainScripthash_listunspent(
    sh: string,
  ): Promise<{ tx_hash: string; tx_pos: number; height: number; value: number }[]>;
  blockchainScripthash_getBalance(sh: string): Promise<{ confirmed: number; unconfirmed: number }>;
  blockchainTransaction_get(txHash: string, verbose?: boolean): Promise<string>;
  blockchainTransaction_getMerkle(
    txHash: string,
    height: number,
  ): Promise<{ block_height: number; merkle: string[]; pos: number }>;
  blockchainTransaction_broadcast(raw: string): Promise<string>;
  server_ping(): Promise<unknown>;
  close(): void;
}

/** A null result as the library returns it: the reply object itself. */
function nullResult(v: unknown): unknown {
  return v !== null && typeof v === "object" && "result" in v ? (v as { result: unknown }).result : v;
}

/** Notifications the library emitted, awaitable by predicate. */
class Events {
  readonly seen: { method: string; params: unknown[] }[] = [];
  private waiters: { pred: (m: string, p: unknown[]) => boolean; resolve: (p: unknown[]) => void }[] = [];

  constructor(client: Client, methods: string[]) {
    for (const method of methods) {
      client.subscribe.on(method, (params) => {
        this.seen.push({ method, params });
        this.waiters = this.waiters.filter((w) => {
          if (!w.pred(method, params)) return true;
          w.resolve(params);
          return false;
        });
      });
    }
  }

  /** The first notification from index `from` of `seen` on (now or later) that `pred` accepts. */
  next(pred: (method: string, params: unknown[]) => boolean, what: string, from = 0): Promise<unknown[]> {
    const found = this.seen.slice(from).find((e) => pred(e.method, e.params));
    if (found) return Promise.resolve(found.params);
    return within(new Promise((resolve) => this.waiters.push({ pred, resolve })), what, WAIT_MS);
  }
}

Deno.test("a third-party Electrum client library uses the server as a wallet would, main.ts as a child process", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 130, seed: "server-wallet", txs: 1500 });
    const node = sim.node;
    node.addMempoolTraffic(30);
    const port = freePort();
    const proc = IndexerProcess.start(indexerEnv(`${dir}/db`, sim, { SERVICES: `tcp://127.0.0.1:${port}` }));
    let client: Client | undefined;
    try {
      assert.equal(await childPort(proc), port);
      const errors: unknown[] = [];
      client = new (ElectrumClient as unknown as new (...a: unknown[]) => Client)(
        port,
        "127.0.0.1",
        "tcp",
        undefined,
        {
          onError: (e: unknown) => errors.push(e),
          onLog: () => {},
        },
      );
      const events = new Events(client, ["blockchain.headers.subscribe", "blockchain.scripthash.subscribe"]);
      // No reconnecting and no keep-alive pings during the test.
      await client.initElectrum({ client: "mempool-electrum-client", version: ["1.4", "1.6"] }, {
        retryPeriod: 1000,
        maxRetry: 0,
        pingPeriod: 10 * 60_000,
        callback: null,
      });
      assert.match(client.versionInfo[0], /^Coulomb /);
      assert.equal(client.versionInfo[1], "1.6");

      // The library's own headers helper sends a stray `false` argument, which ElectrumX (aiorpcX) refuses for
      // protocol 1.4+ as well; wallets on this library use the plain request.
      await assert.rejects(client.blockchainHeaders_subscribe(), (e: { code: number }) => e.code === -32602);
      const tip = await client.request("blockchain.headers.subscribe", []) as { height: number; hex: string };
      assert.deepEqual(tip, { height: node.height, hex: hex(node.blockInfo(node.tipHash)!.header) });

      // The wallet: a script with a mature coin of the chain.
      let model = ElectrumModel.of(node);
      const coin = model.spendableCoin(5_000_000);
      const sh = coin.scripthash;
      assert.equal(await client.blockchainScripthash_subscribe(sh), model.status(sh));
      assert.deepEqual(await client.blockchainScripthash_getHistory(sh), model.history(sh));
      assert.deepEqual(await client.blockchainScripthash_getBalance(sh), model.balance(sh));
      const utxos = await client.blockchainScripthash_listunspent(sh);
      assert.deepEqual(utxos, model.listunspent(sh));
      const utxo = utxos.find((u) => u.tx_hash === rhex(coin.txid) && u.tx_pos === coin.vout)!;
      assert.ok(utxo, "the coin is listed");

      // As the spec advises, check the coin against its funding transaction, and that it is in the chain.
      const fundingRaw = unhex(await client.blockchainTransaction_get(utxo.tx_hash));
      const funding = decodeTransaction(fundingRaw);
      assert.equal(rhex(funding.txid), utxo.tx_hash);
      const out = funding.outputs[utxo.tx_pos];
      assert.equal(out.value, utxo.value);
      assert.equal(scripthashOf(out.script), sh);
      const proof = await client.blockchainTransaction_getMerkle(utxo.tx_hash, utxo.height);
      const header = unhex(await client.request("blockchain.block.header", [utxo.height]) as string);
      assert.equal(
        rhex(rootFromBranch(funding.txid, proof.merkle, proof.pos)),
        rhex(headerMerkleRoot(header)),
      );

      // Pay someone (subscribed first, as a wallet watching a new address), with change back to the wallet.
      const payee = p2wpkh(0x77, 4);
      const payeeSh = scripthashOf(payee);
      // The library hands back the whole reply when the result is null (`msg.result || msg`).
      assert.equal(nullResult(await client.blockchainScripthash_subscribe(payeeSh)), null);
      const raw = spendTx([{ txid: funding.txid, vout: utxo.tx_pos, value: utxo.value }], [
        { value: 1_000_000, script: payee },
        { value: utxo.value - 1_000_000 - 3_000, script: out.script },
      ]);
      const txid = txHashOf(raw);
      assert.equal(await client.blockchainTransaction_broadcast(hex(raw)), txid);
      model = ElectrumModel.of(node);
      const statusOf = (s: string) => (m: string, p: unknown[]) =>
        m === "blockchain.scripthash.subscribe" && p[0] === s && p[1] === model.status(s);
      await events.next(statusOf(payeeSh), "the payee's mempool status");
      await events.next(statusOf(sh), "the wallet's mempool status");
      assert.deepEqual(await client.blockchainScripthash_getMempool(payeeSh), [{
        tx_hash: txid,
        height: 0,
        fee: 3_000,
      }]);
      assert.deepEqual(await client.blockchainScripthash_getBalance(sh), model.balance(sh));
      assert.equal(await client.blockchainTransaction_get(txid), hex(raw));

      // Mined: a new header, and both statuses change again (the tx now has a height). Meanwhile the wallet
      // keeps asking, and bitcoind answers slowly for a while so that it and Coulomb's database disagree for
      // longer: every answer is the state before the block or the state after it, never the payment counted
      // twice or not at all.
      sim.server.faults.delayMs = 200;
      node.mine(1);
      model = ElectrumModel.of(node);
      let confirmedSeen = false;
      const confirmed = events.next(statusOf(payeeSh), "the payee's confirmed status").then(() =>
        confirmedSeen = true
      );
      let asked = 0;
      while (!confirmedSeen) {
        const [balance, pool] = await Promise.all([
          client.blockchainScripthash_getBalance(payeeSh),
          client.blockchainScripthash_getMempool(payeeSh),
        ]);
        asked++;
        assert.ok(
          [
            JSON.stringify({ confirmed: 0, unconfirmed: 1_000_000 }),
            JSON.stringify({ confirmed: 1_000_000, unconfirmed: 0 }),
          ]
            .includes(JSON.stringify(balance)),
          `balance ${JSON.stringify(balance)} after ${asked} requests`,
        );
        assert.ok(pool.length <= 1 && pool.every((e) => e.tx_hash === txid && e.height === 0));
      }
      await confirmed;
      sim.server.faults.delayMs = 0;
      assert.ok(asked > 1);
      assert.deepEqual(await client.blockchainScripthash_getBalance(payeeSh), model.balance(payeeSh));
      assert.deepEqual(await client.blockchainScripthash_getMempool(payeeSh), []);
      const newTip = { height: node.height, hex: hex(node.blockInfo(node.tipHash)!.header) };
      const heads = await events.next(
        (m, p) =>
          m === "blockchain.headers.subscribe" && (p[0] as { height: number }).height === newTip.height,
        "the new header",
      );
      assert.deepEqual(heads, [newTip]);
      await events.next(statusOf(payeeSh), "the payee's confirmed status");
      await events.next(statusOf(sh), "the wallet's confirmed status");
      assert.deepEqual(await client.blockchainScripthash_getHistory(payeeSh), [{
        tx_hash: txid,
        height: node.height,
      }]);
      const mined = await client.blockchainTransaction_getMerkle(txid, node.height);
      assert.equal(
        rhex(rootFromBranch(unrhex(txid), mined.merkle, mined.pos)),
        rhex(headerMerkleRoot(unhex(newTip.hex))),
      );
      assert.equal(events.seen.filter((e) => e.method === "blockchain.headers.subscribe").length, 1);

      // A reorg takes that block away and the payment goes back to the mempool. While Coulomb undoes the block
      // and refetches the mempool (bitcoind slow again), the wallet keeps asking: every answer is the state
      // before the reorg or after it, never the payment gone from both.
      sim.server.faults.delayMs = 200;
      const reorged = node.reorg(1, { toMempool: 1_000 }); // every transaction of the block goes back
      assert.ok(reorged.toMempool.map((t) => rhex(t)).includes(txid));
      model = ElectrumModel.of(node);
      let backSeen = false;
      // (The same status as before it was mined: only notifications from now on count.)
      const back = events.next(statusOf(payeeSh), "the payee's status after the reorg", events.seen.length)
        .then(() => backSeen = true);
      let askedAfter = 0;
      while (!backSeen) {
        const balance = await client.blockchainScripthash_getBalance(payeeSh);
        askedAfter++;
        assert.ok(
          [
            JSON.stringify({ confirmed: 1_000_000, unconfirmed: 0 }),
            JSON.stringify({ confirmed: 0, unconfirmed: 1_000_000 }),
          ]
            .includes(JSON.stringify(balance)),
          `balance ${JSON.stringify(balance)} after ${askedAfter} requests in the reorg`,
        );
      }
      await back;
      sim.server.faults.delayMs = 0;
      assert.deepEqual(await client.blockchainScripthash_getBalance(payeeSh), model.balance(payeeSh));
      assert.ok(askedAfter > 1);
      assert.equal(nullResult(await client.server_ping()), null);
      assert.deepEqual(errors, []);
      client.close();
      client = undefined;
      proc.kill("SIGTERM");
      assert.equal((await proc.finish()).code, 0, proc.tail());
    } finally {
      client?.close();
      await proc.close();
      await sim.close();
    }
  });
});
