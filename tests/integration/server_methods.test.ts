// Guarantee: over real TCP sessions to the wired server (indexer + mempool follower + methods + notifier +
// listeners, as main.ts composes them) following a simnet, every protocol method answers what the chain, the
// mempool and bitcoind say, with ElectrumX's errors, and each negotiated version (1.4, 1.4.2, 1.6) gets its
// own method set and result shapes — after the first sync, after mempool changes and after mining. Unit-level
// corner cases live in tests/server; this file is about what only the full stack shows.
import assert from "node:assert/strict";
import { simnet, withTempDir } from "./harness.ts";
import { LineClient, type Reply, ReplyError } from "./server_client.ts";
import {
  ElectrumModel,
  feeHistogram,
  headerHash,
  headerMerkleRoot,
  hex,
  merkleRootOf,
  p2wpkh,
  rhex,
  rootFromBranch,
  scripthashOf,
  spendTx,
  txHashOf,
  unhex,
  unrhex,
} from "./server_model.ts";
import { coreRpc, isStatus, Settler, startStack } from "./server_stack.ts";

const DONATION = "bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3";

async function rejects(p: Promise<unknown>, code: number, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ReplyError, `expected an error reply, got ${e}`);
    assert.equal(e.code, code, `code of "${e.message}"`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

function unknownMethod(c: LineClient, method: string, params: unknown[] = []): Promise<void> {
  return rejects(c.request(method, params), -32601, `unknown method "${method}"`);
}

Deno.test("the wired server answers every method like the chain, mempool and bitcoind, per protocol version", async (t) => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 130, seed: "server-methods", txs: 1500 });
    const node = sim.node;
    // Traffic before the server starts: its first mempool snapshot (and fee histogram) already has it.
    node.addMempoolTraffic(400);
    const startModel = ElectrumModel.of(node);
    const banner = `${dir}/banner.txt`;
    await Deno.writeTextFile(
      banner,
      "v=$SERVER_VERSION d=$DAEMON_VERSION s=$DAEMON_SUBVERSION a=$DONATION_ADDRESS",
    );
    const stack = await startStack(sim, `${dir}/db`, {
      DONATION_ADDRESS: DONATION,
      BANNER_FILE: banner,
      COST_SOFT_LIMIT: "1000000",
      COST_HARD_LIMIT: "1000000",
    });
    const clients: LineClient[] = [];
    const connect = async () => {
      const c = await LineClient.connect(stack.port);
      clients.push(c);
      return c;
    };
    try {
      const v16 = await connect();
      const v14 = await connect();
      const v142 = await connect();

      await t.step("version negotiation", async () => {
        const [software, version] = await v16.hello(["1.4", "1.6"]);
        assert.match(software, /^Coulomb \d+\.\d+\.\d+/);
        assert.equal(version, "1.6");
        assert.deepEqual(await v14.hello("1.4"), [software, "1.4"]);
        assert.deepEqual(await v142.hello("1.4.2"), [software, "1.4.2"]);
        const range = await connect();
        assert.deepEqual(await range.hello(["1.4", "1.5"]), [software, "1.4.3"], "1.5 does not exist");
        await rejects(range.hello("1.6"), 1, "server.version already sent");
        assert.equal(await range.request("server.ping"), null, "the session stays open");
        // A 1.4.x that was never published is echoed (protocol.md's min of the maxima) and speaks 1.4.3.
        const unnamed = await connect();
        assert.deepEqual(await unnamed.hello("1.4.9"), [software, "1.4.9"]);
        assert.equal(typeof await unnamed.request("blockchain.relayfee"), "number");
        assert.equal(await unnamed.request("blockchain.scripthash.unsubscribe", ["00".repeat(32)]), false);
        await rejects(unnamed.request("mempool.get_info"), -32601, 'unknown method "mempool.get_info"');
        for (const bad of ["1.3", "1.5", "2.0", ["1.7", "1.9"]]) {
          const c = await connect();
          await rejects(c.hello(bad), 1, /^unsupported protocol version: /);
          await c.ended;
        }
        const early = await connect();
        await rejects(
          early.request("blockchain.headers.subscribe"),
          1,
          "use server.version to identify client",
        );
        await early.ended;
      });

      await t.step("server information", async () => {
        const features = await v16.request<Record<string, unknown>>("server.features");
        const [software] = await (await connect()).hello();
        assert.deepEqual(features, {
          hosts: { "127.0.0.1": { tcp_port: stack.port, ssl_port: null } },
          pruning: null,
          server_version: software,
          protocol_min: "1.4",
          protocol_max: "1.6",
          genesis_hash: rhex(node.hashAt(0)!),
          hash_function: "sha256",
          services: [`tcp://127.0.0.1:${stack.port}`],
          history_paging: true,
        });
        const net = await coreRpc<{ subversion: string }>(sim, "getnetworkinfo");
        assert.equal(
          await v14.request("server.banner"),
          `v=${software.split(" ")[1]} d=28.1.0 s=${net.subversion} a=${DONATION}`,
        );
        assert.equal(await v16.request("server.donation_address"), DONATION);
        assert.deepEqual(await v16.request("server.peers.subscribe"), []);
        assert.equal(await v14.request("server.ping"), null);
      });

      await t.step("headers after the first sync", async () => {
        const tip = node.height;
        const header = (h: number) => hex(node.blockInfo(node.hashAt(h)!)!.header);
        for (const c of [v14, v16]) {
          assert.deepEqual(await c.request("blockchain.headers.subscribe"), {
            height: tip,
            hex: header(tip),
          });
        }
        assert.equal(await v14.request("blockchain.block.header", [0]), header(0));
        assert.equal(await v16.request("blockchain.block.header", { height: tip }), header(tip));
        const all = Array.from({ length: tip + 1 }, (_, h) => header(h));
        // 1.6 lists headers; earlier versions concatenate them. Both cap at what exists.
        assert.deepEqual(await v16.request("blockchain.block.headers", [0, 5000]), {
          headers: all,
          count: tip + 1,
          max: 2016,
        });
        assert.deepEqual(await v14.request("blockchain.block.headers", [3, 4]), {
          hex: all.slice(3, 7).join(""),
          count: 4,
          max: 2016,
        });
        assert.deepEqual(await v142.request("blockchain.block.headers", [tip + 1, 10]), {
          hex: "",
          count: 0,
          max: 2016,
        });
        const cp = tip - 3;
        const proof = await v16.request<{ header: string; root: string; branch: string[] }>(
          "blockchain.block.header",
          [7, cp],
        );
        const root = merkleRootOf(all.slice(0, cp + 1).map((h) => headerHash(unhex(h))));
        assert.equal(proof.header, all[7]);
        assert.equal(proof.root, rhex(root));
        assert.equal(rhex(rootFromBranch(headerHash(unhex(all[7])), proof.branch, 7)), rhex(root));
        const range = await v14.request<{ hex: string; root: string; branch: string[] }>(
          "blockchain.block.headers",
          [cp - 1, 2, cp],
        );
        assert.equal(range.hex, all[cp - 1] + all[cp]);
        assert.equal(rhex(rootFromBranch(headerHash(unhex(all[cp])), range.branch, cp)), rhex(root));
        await rejects(v16.request("blockchain.block.header", [tip + 1]), 1, `height ${tip + 1} out of range`);
        await rejects(v16.request("blockchain.block.header", [-1]), 1, "-1 should be a non-negative integer");
        await rejects(
          v16.request("blockchain.block.header", ["abc"]),
          1,
          "abc should be a non-negative integer",
        );
        await rejects(
          v16.request("blockchain.block.header", [tip, cp]),
          1,
          `require header height ${tip} <= cp_height ${cp} <= chain height ${tip}`,
        );
      });

      await t.step("fees and mempool information from bitcoind and the first mempool snapshot", async () => {
        // The histogram is refreshed every two minutes, so it is the one of the mempool the server started with.
        const histogram = await v16.request<[number, number][]>("mempool.get_fee_histogram");
        assert.deepEqual(histogram, feeHistogram(startModel.mempoolTxs()));
        assert.ok(histogram.length >= 2, `a histogram with bins: ${JSON.stringify(histogram)}`);
        // A node that has not yet seen its mempool's transactions confirm has no estimate (Core's "Insufficient
        // data"), which Electrum's estimatefee reports as -1.
        for (const target of [2, 6, 25]) {
          const want = await coreRpc<{ feerate?: number; errors?: string[] }>(sim, "estimatesmartfee", [
            target,
          ]);
          assert.deepEqual(want.errors, ["Insufficient data or no feerate found"]);
          assert.equal(await v14.request("blockchain.estimatefee", [target]), -1, `target ${target}`);
        }
        const eco = await coreRpc<{ feerate?: number }>(sim, "estimatesmartfee", [2, "ECONOMICAL"]);
        assert.equal(await v16.request("blockchain.estimatefee", [2, "economical"]), eco.feerate ?? -1);
        await rejects(
          v16.request("blockchain.estimatefee", [2, "fastest"]),
          1,
          "unknown estimatefee mode: FASTEST",
        );
        const netInfo = await coreRpc<{ relayfee: number }>(sim, "getnetworkinfo");
        assert.equal(await v14.request("blockchain.relayfee"), netInfo.relayfee);
        assert.equal(await v142.request("blockchain.relayfee"), netInfo.relayfee);
        await unknownMethod(v16, "blockchain.relayfee");
        const info = await coreRpc<Record<string, number>>(sim, "getmempoolinfo");
        assert.deepEqual(await v16.request("mempool.get_info"), {
          mempoolminfee: info.mempoolminfee,
          minrelaytxfee: info.minrelaytxfee,
          incrementalrelayfee: info.incrementalrelayfee,
        });
        await unknownMethod(v14, "mempool.get_info");
        await unknownMethod(v142, "mempool.get_info");
      });

      // From here on the test changes the mempool and the chain; the settler says when the server has caught up.
      const settler = new Settler(node, v16, 3);
      let model = await settler.start();

      await t.step("script hashes after mempool changes and mining", async () => {
        // A payment to a fresh script, then a child spending it: 0 then -1 in the canonical mempool order.
        const w = p2wpkh(0x31, 3);
        const sh = scripthashOf(w);
        assert.equal(await v142.request("blockchain.scripthash.subscribe", [sh]), null);
        const coin = model.spendableCoin(2_000_000);
        const parentRaw = spendTx([coin], [{ value: coin.value - 5_000, script: w }]);
        const parent = txHashOf(parentRaw);
        assert.equal(await v16.request("blockchain.transaction.broadcast", [hex(parentRaw)]), parent);
        const childRaw = spendTx([{ txid: unrhex(parent), vout: 0, value: coin.value - 5_000 }], [
          { value: 1_000_000, script: w },
          { value: coin.value - 1_010_000, script: p2wpkh(0x32, 3) },
        ]);
        const child = txHashOf(childRaw);
        assert.equal(await v14.request("blockchain.transaction.broadcast", [hex(childRaw)]), child);
        model = await settler.settle();
        const pool = [{ tx_hash: parent, height: 0, fee: 5_000 }, { tx_hash: child, height: -1, fee: 5_000 }];
        assert.deepEqual(model.mempool(sh), pool, "the model agrees with what was sent");
        assert.deepEqual(await v16.request("blockchain.scripthash.get_mempool", [sh]), pool);
        assert.deepEqual(await v14.request("blockchain.scripthash.get_history", [sh]), pool);
        assert.deepEqual(await v16.request("blockchain.scripthash.get_balance", [sh]), {
          confirmed: 0,
          unconfirmed: 1_000_000,
        });
        assert.deepEqual(await v16.request("blockchain.scripthash.listunspent", [sh]), [
          { tx_hash: child, tx_pos: 0, height: 0, value: 1_000_000 },
        ]);
        // The 1.4.2 session was told, with the status the protocol defines.
        const status = model.status(sh);
        await v142.waitNotification((n) => isStatus(n, sh, status));
        assert.equal(await v16.request("blockchain.transaction.get", [parent]), hex(parentRaw));
        const spentOwner = coin.scripthash;
        assert.deepEqual(
          await v16.request("blockchain.scripthash.get_balance", [spentOwner]),
          model.balance(spentOwner),
        );

        // A conflicting spend of the same coin that pays less than the two it would replace: bitcoind's reason
        // comes through, in ElectrumX's words.
        const conflictRaw = spendTx([coin], [{ value: coin.value - 9_000, script: p2wpkh(0x33, 3) }]);
        const conflict = hex(conflictRaw);
        await rejects(
          v16.request("blockchain.transaction.broadcast", [conflict]),
          1,
          `the transaction was rejected by network rules.\n\ninsufficient fee, rejecting replacement ${
            txHashOf(conflictRaw)
          }, less fees than conflicting txs; 0.00009 < 0.0001\n[${conflict}]`,
        );
        await rejects(
          v16.request("blockchain.transaction.broadcast", ["zz"]),
          1,
          "zz should be a hex string",
        );
        await rejects(
          v16.request("blockchain.transaction.broadcast", ["00"]),
          1,
          /^the transaction was rejected by network rules\.\n\nTX decode failed/,
        );

        // Mining confirms both: one headers notification per session that asked, statuses change again.
        const mark = v14.notifications.length;
        node.mine(1);
        model = await settler.settle();
        const tip = node.height;
        const header = hex(node.blockInfo(node.tipHash)!.header);
        const heads = await v14.waitNotification((n) => n.method === "blockchain.headers.subscribe", mark);
        assert.deepEqual(heads.params, [{ height: tip, hex: header }]);
        const confirmed = [{ tx_hash: parent, height: tip }, { tx_hash: child, height: tip }];
        assert.deepEqual(await v14.request("blockchain.scripthash.get_history", [sh]), confirmed);
        assert.deepEqual(await v16.request("blockchain.scripthash.get_mempool", [sh]), []);
        assert.deepEqual(await v142.request("blockchain.scripthash.listunspent", [sh]), [
          { tx_hash: child, tx_pos: 0, height: tip, value: 1_000_000 },
        ]);
        await v142.waitNotification((n) => isStatus(n, sh, model.status(sh)));
        // Unsubscribing exists from 1.4.2 on.
        assert.equal(await v142.request("blockchain.scripthash.unsubscribe", [sh]), true);
        assert.equal(await v142.request("blockchain.scripthash.unsubscribe", [sh]), false);
        await unknownMethod(v14, "blockchain.scripthash.unsubscribe", [sh]);
        await rejects(
          v16.request("blockchain.scripthash.get_balance", ["xyz"]),
          1,
          "xyz is not a valid script hash",
        );

        // The new block's transactions are proven against the header the server serves for it.
        const served = await v16.request<string>("blockchain.block.header", [tip]);
        assert.equal(served, header);
        for (const txHash of [parent, child]) {
          const { pos } = model.location(txHash)!;
          const m = await v14.request<{ block_height: number; merkle: string[]; pos: number }>(
            "blockchain.transaction.get_merkle",
            [txHash, tip],
          );
          assert.deepEqual([m.block_height, m.pos], [tip, pos]);
          assert.equal(
            rhex(rootFromBranch(unrhex(txHash), m.merkle, pos)),
            rhex(headerMerkleRoot(unhex(served))),
          );
          assert.equal(await v16.request("blockchain.transaction.id_from_pos", [tip, pos]), txHash);
        }
        // Confirmed now: fetched from bitcoind with the block hash, which simnet (no -txindex) needs.
        assert.equal(await v16.request("blockchain.transaction.get", [parent]), hex(parentRaw));
      });

      await t.step(
        "a fee bump replaces a payment and its child (full RBF); every script involved is told",
        async () => {
          const payee = p2wpkh(0x51, 3), change = p2wpkh(0x52, 3), bumpedTo = p2wpkh(0x53, 3);
          const [shPayee, shChange, shBumped] = [payee, change, bumpedTo].map(scripthashOf);
          for (const sh of [shPayee, shChange, shBumped]) {
            assert.equal(await v142.request("blockchain.scripthash.subscribe", [sh]), null);
          }
          const coin = model.spendableCoin(2_000_000);
          const firstRaw = spendTx([coin], [{ value: coin.value - 2_000, script: payee }]);
          const first = txHashOf(firstRaw);
          assert.equal(await v16.request("blockchain.transaction.broadcast", [hex(firstRaw)]), first);
          const childRaw = spendTx([{ txid: unrhex(first), vout: 0, value: coin.value - 2_000 }], [
            { value: coin.value - 4_000, script: change },
          ]);
          const child = txHashOf(childRaw);
          assert.equal(await v16.request("blockchain.transaction.broadcast", [hex(childRaw)]), child);
          model = await settler.settle();
          await v142.waitNotification((n) => isStatus(n, shChange, model.status(shChange)));

          // A bump that does not pay for both is refused with bitcoind's reason; nothing changes.
          const smallRaw = spendTx([coin], [{ value: coin.value - 3_000, script: bumpedTo }]);
          await rejects(
            v16.request("blockchain.transaction.broadcast", [hex(smallRaw)]),
            1,
            `the transaction was rejected by network rules.\n\ninsufficient fee, rejecting replacement ${
              txHashOf(smallRaw)
            }, less fees than conflicting txs; 0.00003 < 0.00004\n[${hex(smallRaw)}]`,
          );
          assert.deepEqual(await v16.request("blockchain.scripthash.get_mempool", [shChange]), [
            { tx_hash: child, height: -1, fee: 2_000 },
          ]);

          // One that does replaces both: the payee and the child's script are left with nothing, the bump's
          // script holds it, and each subscriber hears of its script's new status.
          const bumpRaw = spendTx([coin], [{ value: coin.value - 10_000, script: bumpedTo }]);
          const bump = txHashOf(bumpRaw);
          const mark = v142.notifications.length;
          assert.equal(await v16.request("blockchain.transaction.broadcast", [hex(bumpRaw)]), bump);
          model = await settler.settle();
          for (const sh of [shPayee, shChange]) {
            assert.deepEqual(model.history(sh), [], "the model agrees the replaced ones are gone");
            assert.deepEqual(await v16.request("blockchain.scripthash.get_history", [sh]), []);
            assert.deepEqual(await v16.request("blockchain.scripthash.get_balance", [sh]), {
              confirmed: 0,
              unconfirmed: 0,
            });
            await v142.waitNotification((n) => isStatus(n, sh, null), mark);
          }
          const bumped = [{ tx_hash: bump, height: 0, fee: 10_000 }];
          assert.deepEqual(model.mempool(shBumped), bumped);
          assert.deepEqual(await v16.request("blockchain.scripthash.get_mempool", [shBumped]), bumped);
          assert.deepEqual(await v16.request("blockchain.scripthash.get_balance", [shBumped]), {
            confirmed: 0,
            unconfirmed: coin.value - 10_000,
          });
          await v142.waitNotification((n) => isStatus(n, shBumped, model.status(shBumped)), mark);
          assert.deepEqual(
            await v16.request("blockchain.scripthash.get_balance", [coin.scripthash]),
            model.balance(coin.scripthash),
          );
        },
      );

      await t.step("transactions", async () => {
        const tip = node.height;
        const { txHash, height, pos } = model.confirmedTxs().find((x) => x.height > 100 && x.pos === 2)!;
        const raw = hex(node.findConfirmedTx(unrhex(txHash))!.raw);
        assert.equal(await v14.request("blockchain.transaction.get", [txHash]), raw);
        const verbose = await v16.request<Record<string, unknown>>("blockchain.transaction.get", [
          txHash,
          true,
        ]);
        assert.equal(verbose.txid, txHash);
        assert.equal(verbose.hex, raw);
        assert.equal(verbose.blockhash, rhex(node.hashAt(height)!));
        assert.equal(verbose.confirmations, tip - height + 1);
        assert.equal("in_active_chain" in verbose, false, "a -txindex node would not say it");
        const mempoolTx = model.mempoolTxs()[0]?.txHash;
        if (mempoolTx) {
          assert.equal(
            await v16.request("blockchain.transaction.get", [mempoolTx]),
            hex(node.mempoolTx(unrhex(mempoolTx))!.raw),
          );
        }
        await rejects(
          v16.request("blockchain.transaction.get", ["ab".repeat(32)]),
          2,
          /^daemon error: DaemonError\(\{'code': -5, 'message': '/,
        );
        await rejects(
          v16.request("blockchain.transaction.get", [txHash, "yes"]),
          1,
          '"verbose" must be a boolean',
        );
        await rejects(
          v16.request("blockchain.transaction.get", ["12"]),
          1,
          "12 should be a transaction hash",
        );
        await rejects(
          v16.request("blockchain.transaction.get_merkle", [txHash, height + 1]),
          1,
          `tx ${txHash} not in block at height ${height + 1}`,
        );
        await rejects(
          v16.request("blockchain.transaction.get_merkle", [txHash, tip + 1]),
          1,
          `height ${tip + 1} out of range`,
        );
        const withProof = await v14.request<{ tx_hash: string; merkle: string[] }>(
          "blockchain.transaction.id_from_pos",
          [height, pos, true],
        );
        assert.equal(withProof.tx_hash, txHash);
        const header = unhex(await v14.request<string>("blockchain.block.header", [height]));
        assert.equal(
          rhex(rootFromBranch(unrhex(txHash), withProof.merkle, pos)),
          rhex(headerMerkleRoot(header)),
        );
        await rejects(
          v16.request("blockchain.transaction.id_from_pos", [height, 5000]),
          1,
          `no tx at position 5,000 in block at height ${height}`,
        );
        await rejects(
          v16.request("blockchain.transaction.id_from_pos", [height, 0, "yes"]),
          1,
          '"merkle" must be a boolean',
        );
      });

      await t.step("broadcast_package exists from 1.6 and goes through bitcoind", async () => {
        const w = p2wpkh(0x41, 3);
        const coin = model.spendableCoin(2_000_000);
        const parentRaw = spendTx([coin], [{ value: coin.value - 5_000, script: w }]);
        const parent = txHashOf(parentRaw);
        const childRaw = spendTx([{ txid: unrhex(parent), vout: 0, value: coin.value - 5_000 }], [
          { value: coin.value - 15_000, script: w },
        ]);
        const pkg = [hex(parentRaw), hex(childRaw)];
        await unknownMethod(v14, "blockchain.transaction.broadcast_package", [pkg]);
        await unknownMethod(v142, "blockchain.transaction.broadcast_package", [pkg]);
        assert.deepEqual(await v16.request("blockchain.transaction.broadcast_package", [pkg]), {
          success: true,
        });
        model = await settler.settle();
        assert.deepEqual(
          (await v16.request<{ tx_hash: string }[]>("blockchain.scripthash.get_mempool", [scripthashOf(w)]))
            .map((e) => e.tx_hash),
          [parent, txHashOf(childRaw)],
        );
      });

      await t.step("parameter errors", async () => {
        await rejects(
          v16.request("blockchain.block.header", []),
          -32602,
          '0 arguments passed to method "blockchain.block.header" but it requires 1',
        );
        await rejects(
          v16.request("blockchain.block.header", { height: 1, foo: 2 }),
          -32602,
          'method "blockchain.block.header" does not take parameter "foo"',
        );
        await unknownMethod(v16, "blockchain.address.get_balance", ["x"]);
        const replies: Reply[] = await v14.batch([
          ["server.ping", []],
          ["blockchain.nonsense", []],
          ["blockchain.block.header", [0]],
        ]);
        assert.equal(replies[0].result, null);
        assert.equal(replies[1].error?.code, -32601);
        assert.equal(replies[2].result, hex(node.blockInfo(node.hashAt(0)!)!.header));
      });
    } finally {
      for (const c of clients) c.close();
      await stack.close();
      await sim.close();
    }
  });
});
