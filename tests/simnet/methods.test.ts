// simnet's Core RPC methods, end to end over real HTTP: every result is checked against values computed
// independently from the raw bytes (parsed with src/chain, addresses with bitcoinjs-lib) or against
// bitcoind's own JSON output in tests/testdata.
import assert from "node:assert/strict";
import * as bitcoin from "bitcoinjs-lib";
import {
  blockSizes,
  coreHeaderJson,
  coreTxJson,
  descriptorChecksum,
  difficulty,
  isValidXOnly,
  parseFixedPoint,
  scriptPubKeyJson,
} from "../../scripts/simnet/methods.ts";
import { type Simnet, startSimnet } from "../../scripts/simnet/main.ts";
import { parseBlock } from "../../src/chain/block.ts";
import { headerHash, parseHeader } from "../../src/chain/header.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { sha256d } from "../../src/chain/hash.ts";
import { NETWORKS } from "../../src/chain/network.ts";
import {
  decodeTransaction,
  isCoinbase,
  serializeTransaction,
  type Transaction,
  wtxid,
} from "../../src/chain/tx.ts";

const TESTDATA = new URL("../testdata", import.meta.url).pathname;
const readJson = (path: string) => JSON.parse(Deno.readTextFileSync(`${TESTDATA}/${path}`));

// ---------------------------------------------------------------------------------------------------
// Pure pieces against bitcoind's own output.

Deno.test("descriptor checksums match BIP380 and bitcoind", () => {
  assert.equal(descriptorChecksum("raw(deadbeef)"), "89f8spxm");
  assert.equal(descriptorChecksum("addr(bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3)"), "r898r4mt");
  assert.equal(descriptorChecksum("addr(mg2jk6S5WGDhUPA8mLSxDLWpUoQnX1zzoG)"), "zgqlerq9");
  assert.equal(descriptorChecksum("raw(deadbeef)\u00e9"), "");
});

Deno.test("amount parsing follows ParseFixedPoint with 8 decimals", () => {
  assert.equal(parseFixedPoint("0.1"), 10_000_000);
  assert.equal(parseFixedPoint("0.100000000"), 10_000_000);
  assert.equal(parseFixedPoint("1e-8"), 1);
  assert.equal(parseFixedPoint("21000000"), 2_100_000_000_000_000);
  assert.equal(parseFixedPoint("-1"), -100_000_000);
  for (const bad of ["1e-9", "0.000000001", "1.", ".5", "00.1", "1,0", "", "abc", "123456789012345678"]) {
    assert.equal(parseFixedPoint(bad), null, bad);
  }
});

Deno.test("difficulty and x-only key validity", () => {
  assert.equal(difficulty(0x1702068f), 138955357012247.3);
  assert.equal(difficulty(0x1d00ffff), 1);
  assert.equal(difficulty(0x207fffff), 4.656542373906925e-10);
  assert.equal(
    isValidXOnly(fromHex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")),
    true,
  );
  assert.equal(isValidXOnly(new Uint8Array(32).fill(0xff)), false); // not a field element
  assert.equal(
    isValidXOnly(fromHex("0000000000000000000000000000000000000000000000000000000000000005")),
    false,
  );
});

Deno.test("transactions render exactly as bitcoind's getrawtransaction", () => {
  const cases: [string, keyof typeof NETWORKS][] = [
    ["transactions/bitcoin_regtest_001_p2wpkh.json", "regtest"],
    ["transactions/bitcoin_testnet_001_mixed_nonsegwit_segwit_inputs.json", "testnet"],
    ["transactions/bitcoin_testnet_002_presegwit.json", "testnet"],
  ];
  for (const [file, net] of cases) {
    const expected = readJson(file);
    for (const key of ["blockhash", "confirmations", "time", "blocktime"]) delete expected[key];
    const actual = coreTxJson(decodeTransaction(fromHex(expected.hex)), NETWORKS[net], null, false, true);
    assert.equal(JSON.stringify(actual), JSON.stringify(expected), file);
  }
});

Deno.test("a real mainnet block's header fields and sizes match bitcoind's getblock", () => {
  const expected = readJson("blocks/bitcoin_mainnet_951658.json");
  const raw = fromHex(expected.block);
  const block = parseBlock(raw);
  const header = coreHeaderJson(raw.subarray(0, 80), {
    height: expected.height,
    confirmations: expected.confirmations,
    medianTime: expected.mediantime,
    chainwork: BigInt("0x" + expected.chainwork),
    nTx: block.txs.length,
    nextHash: fromHex(expected.nextblockhash).reverse(),
  });
  const keys = Object.keys(header);
  assert.deepEqual(keys, Object.keys(expected).slice(0, keys.length));
  for (const k of keys) assert.deepEqual(header[k], expected[k], k);
  assert.deepEqual(blockSizes(block, raw), {
    strippedsize: expected.strippedsize,
    size: expected.size,
    weight: expected.weight,
  });
  // Every output of the block renders, and the address agrees with bitcoinjs-lib's.
  for (const tx of block.txs) {
    for (const out of tx.outputs) {
      const spk = scriptPubKeyJson(out.script, NETWORKS.mainnet);
      assert.equal(spk.address, jsAddress(out.script, bitcoin.networks.bitcoin));
      assert.match(spk.desc as string, /^[a-z]+\(.*\)#[a-z0-9]{8}$/);
    }
  }
});

Deno.test("scriptPubKey types, addresses and descriptors for every output kind", () => {
  const pub33 = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
  const cases: [string, string, string | null, RegExp][] = [
    ["21" + pub33 + "ac", "pubkey", null, /^pk\(02/],
    ["76a914" + "11".repeat(20) + "88ac", "pubkeyhash", "jsaddr", /^addr\(/],
    ["a914" + "22".repeat(20) + "87", "scripthash", "jsaddr", /^addr\(2/],
    ["0014" + "33".repeat(20), "witness_v0_keyhash", "jsaddr", /^addr\(bcrt1q/],
    ["0020" + "44".repeat(32), "witness_v0_scripthash", "jsaddr", /^addr\(bcrt1q/],
    ["5120" + pub33.slice(2), "witness_v1_taproot", "jsaddr", /^rawtr\(79be/],
    ["5120" + "ff".repeat(32), "witness_v1_taproot", "jsaddr", /^addr\(bcrt1p/],
    ["5221" + pub33 + "21" + pub33 + "52ae", "multisig", null, /^multi\(2,02/],
    ["6a0401020304", "nulldata", null, /^raw\(6a0401020304\)/],
    ["51024e73", "anchor", "bcrt1pfeesnyr2tx", /^addr\(bcrt1pfeesnyr2tx\)/],
    ["5203000102", "witness_unknown", "jsaddr", /^addr\(bcrt1z/],
    ["0013" + "55".repeat(19), "nonstandard", null, /^raw\(/],
    ["ac", "nonstandard", null, /^raw\(ac\)/],
  ];
  for (const [hex, type, addr, desc] of cases) {
    const script = fromHex(hex);
    const spk = scriptPubKeyJson(script, NETWORKS.regtest);
    assert.equal(spk.type, type, hex);
    assert.equal(spk.hex, hex);
    const want = addr === "jsaddr" ? jsAddress(script, bitcoin.networks.regtest) : addr;
    assert.equal(spk.address, want ?? undefined, hex);
    assert.match(spk.desc as string, desc, hex);
    const [body, sum] = (spk.desc as string).split("#");
    assert.equal(sum, descriptorChecksum(body));
    assert.deepEqual(
      Object.keys(spk),
      want ? ["asm", "desc", "hex", "address", "type"] : ["asm", "desc", "hex", "type"],
    );
  }
});

/** bitcoinjs-lib's address; its p2tr needs an ECC library, so v1+ programs go through its bech32m encoder. */
function jsAddress(script: Uint8Array, network: bitcoin.Network): string | undefined {
  const n = script.length;
  if (n >= 4 && n <= 42 && script[0] >= 0x51 && script[0] <= 0x60 && script[1] + 2 === n) {
    return bitcoin.address.toBech32(script.subarray(2), script[0] - 0x50, network.bech32);
  }
  try {
    return bitcoin.address.fromOutputScript(script, network);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// End to end over HTTP.

interface RpcReply {
  result: unknown;
  error: { code: number; message: string } | null;
}

function client(sim: Simnet, user: string, password: string) {
  const auth = "Basic " + btoa(`${user}:${password}`);
  let id = 0;
  return async (method: string, params: unknown = []): Promise<RpcReply> => {
    const res = await fetch(sim.url, {
      method: "POST",
      headers: { Authorization: auth, "Content-Type": "application/json" },
      body: JSON.stringify({ method, params, id: ++id }),
    });
    const body = await res.json();
    return { result: body.result, error: body.error };
  };
}

// deno-lint-ignore no-explicit-any
async function ok<T = any>(
  call: ReturnType<typeof client>,
  method: string,
  params: unknown = [],
): Promise<T> {
  const r = await call(method, params);
  assert.equal(r.error, null, `${method} ${JSON.stringify(params)}: ${JSON.stringify(r.error)}`);
  return r.result as T;
}

async function fails(
  call: ReturnType<typeof client>,
  method: string,
  params: unknown,
  code: number,
  message: string | RegExp,
): Promise<void> {
  const r = await call(method, params);
  assert.ok(r.error !== null, `${method} ${JSON.stringify(params)} should fail`);
  assert.equal(r.error.code, code, `${method}: ${r.error.message}`);
  if (typeof message === "string") assert.equal(r.error.message, message);
  else assert.match(r.error.message, message);
}

async function restBytes(sim: Simnet, path: string): Promise<Uint8Array> {
  const res = await fetch(sim.url + path);
  assert.equal(res.status, 200, path);
  return new Uint8Array(await res.arrayBuffer());
}

/** The whole active chain, fetched over REST and parsed independently of the RPC methods. */
async function loadChain(sim: Simnet, height: number) {
  const txs = new Map<string, { tx: Transaction; height: number; index: number; block: string }>();
  const blocks: Uint8Array[] = [];
  for (let h = 0; h <= height; h++) {
    const hash = await restBytes(sim, `/rest/blockhashbyheight/${h}.bin`);
    const raw = await restBytes(sim, `/rest/block/${toHexReversed(hash)}.bin`);
    blocks.push(raw);
    parseBlock(raw).txs.forEach((tx, index) =>
      txs.set(toHexReversed(tx.txid), { tx, height: h, index, block: toHexReversed(hash) })
    );
  }
  return { txs, blocks };
}

/** A mature coinbase output of the initial chain that nothing (chain since, mempool) has spent yet. */
async function spendableCoinbase(
  call: ReturnType<typeof client>,
  chain: Awaited<ReturnType<typeof loadChain>>,
  initialHeight: number,
): Promise<[string, number]> {
  const spenders: Transaction[] = [...chain.txs.values()].map((e) => e.tx);
  for (const id of await ok<string[]>(call, "getrawmempool")) {
    spenders.push(decodeTransaction(fromHex(await ok(call, "getrawtransaction", [id]))));
  }
  const tip = await ok<number>(call, "getblockcount");
  for (let h = initialHeight + 1; h <= tip; h++) {
    const hash = await ok<string>(call, "getblockhash", [h]);
    spenders.push(...parseBlock(fromHex(await ok(call, "getblock", [hash, 0]))).txs);
  }
  const spent = new Set<string>();
  for (const tx of spenders) {
    for (const i of tx.inputs) spent.add(toHexReversed(i.prevTxid) + ":" + i.prevVout);
  }
  for (const [id, e] of chain.txs) {
    if (e.index !== 0 || e.height < 1 || e.height > tip - 100) continue;
    const vout = e.tx.outputs.findIndex((o, n) => o.value > 100_000 && !spent.has(id + ":" + n));
    if (vout >= 0) return [id, vout];
  }
  throw new Error("no spendable coinbase output in the test chain");
}

const USER = "alice", PASSWORD = "secret";

Deno.test("Core RPC methods over HTTP", async (t) => {
  const datadir = await Deno.makeTempDir({ prefix: "simnet-methods-" });
  const sim = await startSimnet({
    blocks: 130,
    seed: "methods-test",
    txs: 1500,
    port: 0,
    datadir,
    rpcuser: USER,
    rpcpassword: PASSWORD,
  });
  const call = client(sim, USER, PASSWORD);
  try {
    const height = await ok<number>(call, "getblockcount");
    const chain = await loadChain(sim, height);

    await t.step("getblockchaininfo", async () => {
      const info = await ok(call, "getblockchaininfo");
      assert.deepEqual(Object.keys(info), [
        "chain",
        "blocks",
        "headers",
        "bestblockhash",
        "bits",
        "target",
        "difficulty",
        "time",
        "mediantime",
        "verificationprogress",
        "initialblockdownload",
        "chainwork",
        "size_on_disk",
        "pruned",
        "warnings",
      ]);
      const tip = chain.blocks[height];
      assert.equal(info.chain, "regtest");
      assert.equal(info.blocks, height);
      assert.equal(info.headers, height);
      assert.equal(info.bestblockhash, toHexReversed(headerHash(tip.subarray(0, 80))));
      assert.equal(info.bestblockhash, await ok(call, "getbestblockhash"));
      assert.equal(info.bits, "207fffff");
      assert.equal(info.target, "7fffff" + "0".repeat(58));
      assert.equal(info.difficulty, 4.656542373906925e-10);
      assert.equal(info.time, parseHeader(tip).time);
      // Every regtest block adds work 2 (2^256 / (target + 1)).
      assert.equal(info.chainwork, (2 * (height + 1)).toString(16).padStart(64, "0"));
      assert.equal(info.verificationprogress, 1);
      assert.equal(info.initialblockdownload, false);
      assert.equal(info.pruned, false);
      assert.deepEqual(info.warnings, []);
      const times = chain.blocks.slice(-11).map((b) => parseHeader(b).time).sort((a, b) => a - b);
      assert.equal(info.mediantime, times[Math.floor(times.length / 2)]);
      assert.ok(info.size_on_disk >= chain.blocks.reduce((a, b) => a + b.length, 0));
    });

    await t.step("getblockhash and getblockheader", async () => {
      for (const h of [0, 1, height - 1, height]) {
        const raw = chain.blocks[h];
        const hash = toHexReversed(headerHash(raw.subarray(0, 80)));
        assert.equal(await ok(call, "getblockhash", [h]), hash);
        assert.equal(await ok(call, "getblockheader", [hash, false]), toHex(raw.subarray(0, 80)));
        const hdr = await ok(call, "getblockheader", { blockhash: hash });
        const p = parseHeader(raw);
        assert.equal(hdr.hash, hash);
        assert.equal(hdr.height, h);
        assert.equal(hdr.confirmations, height - h + 1);
        assert.equal(hdr.version, p.version);
        assert.equal(hdr.versionHex, (p.version >>> 0).toString(16).padStart(8, "0"));
        assert.equal(hdr.merkleroot, toHexReversed(p.merkleRoot));
        assert.equal(hdr.time, p.time);
        assert.equal(hdr.nonce, p.nonce);
        assert.equal(hdr.nTx, parseBlock(raw).txs.length);
        assert.equal(hdr.chainwork, (2 * (h + 1)).toString(16).padStart(64, "0"));
        assert.equal(hdr.previousblockhash, h === 0 ? undefined : toHexReversed(p.prevHash));
        assert.equal(
          hdr.nextblockhash,
          h === height ? undefined : toHexReversed(headerHash(chain.blocks[h + 1].subarray(0, 80))),
        );
      }
      await fails(call, "getblockhash", [height + 1], -8, "Block height out of range");
      await fails(call, "getblockhash", [-1], -8, "Block height out of range");
      await fails(call, "getblockhash", [1.5], -1, "JSON integer out of range");
      await fails(
        call,
        "getblockhash",
        ["1"],
        -3,
        'Wrong type passed:\n{\n    "Position 1 (height)": "JSON value of type string is not of expected type number"\n}',
      );
      await fails(call, "getblockheader", ["abc"], -8, "hash must be of length 64 (not 3, for 'abc')");
      await fails(
        call,
        "getblockheader",
        ["zz".repeat(32)],
        -8,
        `hash must be hexadecimal string (not '${"zz".repeat(32)}')`,
      );
      await fails(call, "getblockheader", ["00".repeat(32)], -5, "Block not found");
      await fails(
        call,
        "getblockheader",
        ["00".repeat(32), 1],
        -3,
        'Wrong type passed:\n{\n    "Position 2 (verbose)": "JSON value of type number is not of expected type bool"\n}',
      );
    });

    await t.step("getblock at every verbosity, REST bytes equal RPC hex", async () => {
      const h = chain.blocks.findIndex((b, i) => i > 100 && parseBlock(b).txs.length > 3);
      assert.ok(h > 0, "the test chain needs a block with transactions");
      const raw = chain.blocks[h];
      const block = parseBlock(raw);
      const hash = toHexReversed(block.hash);
      assert.equal(await ok(call, "getblock", [hash, 0]), toHex(raw));
      assert.equal(await ok(call, "getblock", [hash, false]), toHex(raw));
      assert.equal(await ok(call, "getblock", { blockhash: hash, verbose: 0 }), toHex(raw));
      const restHex = new TextDecoder().decode(await restBytes(sim, `/rest/block/${hash}.hex`));
      assert.equal(restHex, toHex(raw) + "\n");
      const v1 = await ok(call, "getblock", [hash]);
      assert.deepEqual(v1, await ok(call, "getblock", [hash, true]));
      assert.deepEqual(v1.tx, block.txs.map((tx) => toHexReversed(tx.txid)));
      assert.equal(v1.size, raw.length);
      const stripped = raw.length - block.txs.reduce((a, tx) => a + tx.size - tx.baseSize, 0);
      assert.equal(v1.strippedsize, stripped);
      assert.equal(v1.weight, 3 * stripped + raw.length);
      assert.deepEqual(Object.keys(v1).slice(-4), ["strippedsize", "size", "weight", "tx"]);
      const v2 = await ok(call, "getblock", [hash, 2]);
      const v3 = await ok(call, "getblock", { blockhash: hash, verbosity: 3 });
      block.txs.forEach((tx, i) => {
        const j2 = v2.tx[i], j3 = v3.tx[i];
        assert.equal(j2.txid, toHexReversed(tx.txid));
        assert.equal(j2.hash, toHexReversed(sha256d(tx.raw)));
        assert.equal(j2.hex, toHex(tx.raw));
        assert.equal(j2.blockhash, undefined);
        if (i === 0) {
          assert.equal(j2.fee, undefined);
          assert.equal(j2.vin[0].coinbase, toHex(tx.inputs[0].scriptSig));
          return;
        }
        let inSum = 0;
        tx.inputs.forEach((input, k) => {
          const prev = chain.txs.get(toHexReversed(input.prevTxid))!;
          const out = prev.tx.outputs[input.prevVout];
          inSum += out.value;
          assert.equal(j2.vin[k].prevout, undefined);
          assert.deepEqual(j3.vin[k].prevout, {
            generated: prev.index === 0,
            height: prev.height,
            value: out.value / 1e8,
            scriptPubKey: scriptPubKeyJson(out.script, NETWORKS.regtest),
          });
        });
        const outSum = tx.outputs.reduce((a, o) => a + o.value, 0);
        assert.equal(j2.fee, (inSum - outSum) / 1e8);
        assert.equal(j3.fee, j2.fee);
      });
      await fails(call, "getblock", ["abc"], -8, "blockhash must be of length 64 (not 3, for 'abc')");
      await fails(call, "getblock", ["11".repeat(32)], -5, "Block not found");
      await fails(
        call,
        "getblock",
        [hash, "x"],
        -1,
        "JSON value of type string is not of expected type number",
      );
    });

    await t.step("getrawtransaction without txindex", async () => {
      const [txid, entry] = [...chain.txs].find(([, e]) => e.index > 0 && e.tx.witnesses !== null)!;
      const tx = entry.tx;
      await fails(
        call,
        "getrawtransaction",
        [txid],
        -5,
        "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions.",
      );
      assert.equal(await ok(call, "getrawtransaction", [txid, 0, entry.block]), toHex(tx.raw));
      const v = await ok(call, "getrawtransaction", [txid, true, entry.block]);
      assert.deepEqual(Object.keys(v), [
        "in_active_chain",
        "txid",
        "hash",
        "version",
        "size",
        "vsize",
        "weight",
        "locktime",
        "vin",
        "vout",
        "hex",
        "blockhash",
        "confirmations",
        "time",
        "blocktime",
      ]);
      assert.equal(v.in_active_chain, true);
      assert.equal(v.txid, txid);
      assert.equal(v.hash, toHexReversed(wtxid(tx)));
      assert.equal(v.size, tx.raw.length);
      assert.equal(v.weight, tx.baseSize * 3 + tx.raw.length);
      assert.equal(v.vsize, Math.ceil(v.weight / 4));
      assert.equal(v.version, tx.version);
      assert.equal(v.locktime, tx.locktime);
      assert.equal(v.confirmations, height - entry.height + 1);
      assert.equal(v.blocktime, parseHeader(chain.blocks[entry.height]).time);
      assert.equal(v.time, v.blocktime);
      tx.inputs.forEach((input, k) => {
        assert.equal(v.vin[k].txid, toHexReversed(input.prevTxid));
        assert.equal(v.vin[k].vout, input.prevVout);
        assert.equal(v.vin[k].scriptSig.hex, toHex(input.scriptSig));
        assert.equal(v.vin[k].sequence, input.sequence);
        const w = tx.witnesses![k];
        assert.deepEqual(v.vin[k].txinwitness, w.length > 0 ? w.map(toHex) : undefined);
      });
      tx.outputs.forEach((out, n) => {
        assert.equal(v.vout[n].n, n);
        assert.equal(v.vout[n].value, out.value / 1e8);
        assert.equal(v.vout[n].scriptPubKey.hex, toHex(out.script));
        assert.equal(v.vout[n].scriptPubKey.address, jsAddress(out.script, bitcoin.networks.regtest));
      });
      const v2 = await ok(call, "getrawtransaction", { txid, verbosity: 2, blockhash: entry.block });
      const inSum = tx.inputs.reduce(
        (a, i) => a + chain.txs.get(toHexReversed(i.prevTxid))!.tx.outputs[i.prevVout].value,
        0,
      );
      assert.equal(v2.fee, (inSum - tx.outputs.reduce((a, o) => a + o.value, 0)) / 1e8);
      assert.ok(v2.vin.every((i: { prevout?: unknown }) => i.prevout !== undefined));
      // The coinbase has no undo data: level-1 shape even at verbosity 2.
      const cb = [...chain.txs].find(([, e]) => e.height === entry.height && e.index === 0)!;
      const cbv = await ok(call, "getrawtransaction", [cb[0], 2, entry.block]);
      assert.equal(cbv.fee, undefined);
      assert.equal(cbv.vin[0].coinbase, toHex(chain.txs.get(cb[0])!.tx.inputs[0].scriptSig));
      assert.equal(cbv.vin[0].txid, undefined);

      const other = chain.blocks[entry.height === 1 ? 2 : 1];
      await fails(
        call,
        "getrawtransaction",
        [txid, 0, toHexReversed(headerHash(other.subarray(0, 80)))],
        -5,
        "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
      );
      await fails(call, "getrawtransaction", [txid, 0, "00".repeat(32)], -5, "Block hash not found");
      await fails(
        call,
        "getrawtransaction",
        ["4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"],
        -5,
        "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",
      );
      await fails(
        call,
        "getrawtransaction",
        ["xy"],
        -8,
        "parameter 1 must be of length 64 (not 2, for 'xy')",
      );
      await fails(
        call,
        "getrawtransaction",
        [txid, 0, "xy"],
        -8,
        "parameter 3 must be of length 64 (not 2, for 'xy')",
      );
    });

    await t.step("mempool: traffic, entries, info, ordering", async () => {
      const added = await ok<string[]>(call, "simnet_addtraffic", [20]);
      assert.ok(added.length > 0);
      let chained = 0;
      const ids = await ok<string[]>(call, "getrawmempool");
      assert.deepEqual([...ids].sort(), [...added].sort());
      const verbose = await ok(call, "getrawmempool", [true]);
      assert.deepEqual(Object.keys(verbose), ids);
      const seq = await ok(call, "getrawmempool", { verbose: false, mempool_sequence: true });
      assert.deepEqual(seq.txids, ids);
      assert.ok(Number.isInteger(seq.mempool_sequence) && seq.mempool_sequence >= ids.length);
      await fails(
        call,
        "getrawmempool",
        [true, true],
        -8,
        "Verbose results cannot contain mempool sequence values.",
      );
      const raws = new Map<string, Transaction>();
      for (const id of ids) {
        raws.set(id, decodeTransaction(fromHex(await ok(call, "getrawtransaction", [id]))));
      }
      let totalFee = 0, totalVsize = 0;
      for (const id of ids) {
        const e = await ok(call, "getmempoolentry", [id]);
        assert.deepEqual(e, verbose[id]);
        const tx = raws.get(id)!;
        assert.equal(toHexReversed(tx.txid), id);
        assert.equal(e.wtxid, toHexReversed(wtxid(tx)));
        assert.equal(e.weight, tx.weight);
        assert.ok(e.vsize >= tx.vsize);
        const parents = new Set<string>();
        let inSum = 0;
        for (const input of tx.inputs) {
          const p = toHexReversed(input.prevTxid);
          const source = raws.get(p) ?? chain.txs.get(p)?.tx;
          assert.ok(source, `input ${p} of ${id} not found`);
          inSum += source.outputs[input.prevVout].value;
          if (raws.has(p)) parents.add(p);
        }
        const fee = inSum - tx.outputs.reduce((a, o) => a + o.value, 0);
        assert.equal(e.fees.base, fee / 1e8);
        assert.deepEqual(e.depends, [...parents].sort());
        chained += parents.size;
        // Children: every entry listing this one as a parent, in Core's order (internal byte order).
        const children = ids.filter((x) => raws.get(x)!.inputs.some((i) => toHexReversed(i.prevTxid) === id));
        const internal = (x: string) => toHex(fromHex(x).reverse());
        assert.deepEqual(e.spentby, children.sort((a, b) => internal(a) < internal(b) ? -1 : 1));
        assert.equal(e.ancestorcount >= 1 + parents.size, true);
        assert.equal(e.unbroadcast, false);
        totalFee += fee;
        totalVsize += e.vsize;
      }
      assert.ok(chained > 0, "traffic should include in-mempool chains");
      // BIP125: a transaction is replaceable if it or an in-mempool ancestor signals.
      const signals = (id: string): boolean =>
        raws.get(id)!.inputs.some((i) => i.sequence <= 0xfffffffd) || verbose[id].depends.some(signals);
      for (const id of ids) assert.equal(verbose[id]["bip125-replaceable"], signals(id), id);
      // Parents before children: ancestor counts never decrease along the listing.
      const counts = ids.map((id) => verbose[id].ancestorcount);
      assert.deepEqual(counts, [...counts].sort((a, b) => a - b));
      const info = await ok(call, "getmempoolinfo");
      assert.equal(info.size, ids.length);
      assert.equal(info.bytes, totalVsize);
      assert.equal(Math.round(info.total_fee * 1e8), totalFee);
      assert.equal(info.minrelaytxfee, 0.00001);
      assert.equal(info.loaded, true);
      await fails(call, "getmempoolentry", ["00".repeat(32)], -5, "Transaction not in mempool");
    });

    await t.step("sendrawtransaction: accepted, listed, mined; Core's errors", async () => {
      // Spend a mature, unspent coinbase output (simnet checks no signatures), paying a small fee.
      const [cbid, vout] = await spendableCoinbase(call, chain, height);
      const cb = chain.txs.get(cbid)!;
      assert.equal((await ok(call, "simnet_info")).height, height);
      const build = (fee: number, extra: { value: number; script: Uint8Array }[] = []) =>
        serializeTransaction({
          version: 2,
          locktime: 0,
          inputs: [{
            prevTxid: fromHex(cbid).reverse(),
            prevVout: vout,
            scriptSig: new Uint8Array(0),
            sequence: 0xfffffffd,
          }],
          outputs: [
            {
              value: cb.tx.outputs[vout].value - fee - extra.reduce((a, o) => a + o.value, 0),
              script: fromHex("0014" + "ab".repeat(20)),
            },
            ...extra,
          ],
          witnesses: [[new Uint8Array(71).fill(0x30), new Uint8Array(33).fill(0x02)]],
        });
      await fails(
        call,
        "sendrawtransaction",
        ["zz"],
        -22,
        "TX decode failed. Make sure the tx has at least one input.",
      );
      await fails(
        call,
        "sendrawtransaction",
        [""],
        -22,
        "TX decode failed. Make sure the tx has at least one input.",
      );
      await fails(
        call,
        "sendrawtransaction",
        [toHex(build(1000, [{ value: 1, script: fromHex("6a00") }]))],
        -25,
        "Unspendable output exceeds maximum configured by user (maxburnamount)",
      );
      const greedy = build(5_000_000);
      await fails(
        call,
        "sendrawtransaction",
        [toHex(greedy)],
        -25,
        "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
      );
      await fails(
        call,
        "sendrawtransaction",
        [toHex(greedy), 1],
        -8,
        "Fee rates larger than or equal to 1BTC/kvB are not accepted",
      );
      await fails(call, "sendrawtransaction", [toHex(greedy), "abc"], -3, "Invalid amount");
      await fails(call, "sendrawtransaction", [toHex(greedy), true], -3, "Amount is not a number or string");
      // testmempoolaccept against the node's own acceptance: same verdicts, same reasons, nothing added.
      const p2wpkh = fromHex("0014" + "cd".repeat(20));
      const inValue = cb.tx.outputs[vout].value;
      const spend = (
        prev: string,
        n: number,
        outputs: { value: number; script: Uint8Array }[],
        version = 2,
      ) =>
        serializeTransaction({
          version,
          locktime: 0,
          inputs: [{
            prevTxid: fromHex(prev).reverse(),
            prevVout: n,
            scriptSig: new Uint8Array(0),
            sequence: 0xfffffffd,
          }],
          outputs,
          witnesses: [[new Uint8Array(72).fill(0x30), new Uint8Array(33).fill(0x03)]],
        });
      const tipCoinbase = [...chain.txs].find(([, e]) => e.height === height && e.index === 0)![0];
      const invalid: [Uint8Array, RegExp][] = [
        [
          spend(cbid, vout, [{ value: inValue - 2100, script: p2wpkh }, { value: 100, script: p2wpkh }]),
          /^dust$/,
        ],
        [spend(cbid, vout, [{ value: inValue - 50, script: p2wpkh }]), /^min relay fee not met$/],
        [spend(cbid, vout, [{ value: inValue - 2000, script: fromHex("ac") }]), /^scriptpubkey$/],
        [spend(cbid, vout, [{ value: inValue - 2000, script: p2wpkh }], 4), /^version$/],
        [spend(cbid, vout, [{ value: inValue + 1, script: p2wpkh }]), /^bad-txns-in-belowout/],
        [
          spend(tipCoinbase, 0, [{ value: 1_000_000, script: p2wpkh }]),
          /^bad-txns-premature-spend-of-coinbase/,
        ],
        [spend("12".repeat(32), 0, [{ value: 1_000_000, script: p2wpkh }]), /^missing-inputs$/],
      ];
      const poolBefore = await ok<string[]>(call, "getrawmempool");
      for (const [raw, reason] of invalid) {
        const [r] = await ok(call, "testmempoolaccept", [[toHex(raw)]]);
        assert.equal(r.txid, toHexReversed(decodeTransaction(raw).txid));
        assert.equal(r.allowed, false);
        assert.match(r["reject-reason"], reason);
        assert.doesNotMatch(r["reject-reason"], /, /, "the reason alone, as Core's GetRejectReason()");
        const sent = await call("sendrawtransaction", [toHex(raw)]);
        const nodeReason = r["reject-reason"] === "missing-inputs"
          ? "bad-txns-inputs-missingorspent"
          : r["reject-reason"];
        // sendrawtransaction says the same reason, with Core's details after ", " where it has any.
        assert.ok(
          sent.error?.message === nodeReason || sent.error?.message.startsWith(`${nodeReason}, `),
          sent.error?.message,
        );
        assert.equal(sent.error?.code, nodeReason === "bad-txns-inputs-missingorspent" ? -25 : -26);
      }
      assert.deepEqual(await ok(call, "getrawmempool"), poolBefore);
      await fails(call, "testmempoolaccept", [[]], -8, "Array must contain between 1 and 25 transactions.");

      const rawTx = build(2000);
      const expectTxid = toHexReversed(decodeTransaction(rawTx).txid);
      const child = spend(expectTxid, 0, [{ value: inValue - 2000 - 1500, script: p2wpkh }]);
      const [alone] = await ok(call, "testmempoolaccept", [[toHex(rawTx)]]);
      assert.deepEqual(alone, {
        txid: expectTxid,
        wtxid: toHexReversed(wtxid(decodeTransaction(rawTx))),
        allowed: true,
        vsize: decodeTransaction(rawTx).vsize,
        fees: {
          base: 2000 / 1e8,
          "effective-feerate": Math.floor(2000 * 1000 / decodeTransaction(rawTx).vsize) / 1e8,
          "effective-includes": [toHexReversed(wtxid(decodeTransaction(rawTx)))],
        },
      });
      const [tooRich] = await ok(call, "testmempoolaccept", [[toHex(greedy)]]);
      assert.equal(tooRich["reject-reason"], "max-fee-exceeded");
      const pkg = await ok(call, "testmempoolaccept", [[toHex(rawTx), toHex(child)]]);
      assert.deepEqual(pkg.map((r: { allowed: boolean }) => r.allowed), [true, true]);
      const unsorted = await ok(call, "testmempoolaccept", [[toHex(child), toHex(rawTx)]]);
      assert.deepEqual(unsorted.map((r: Record<string, unknown>) => r["package-error"]), [
        "package-not-sorted",
        "package-not-sorted",
      ]);
      assert.deepEqual(await ok(call, "getrawmempool"), poolBefore);
      assert.equal(await ok(call, "sendrawtransaction", [toHex(rawTx)]), expectTxid);
      assert.equal(
        await ok(call, "sendrawtransaction", { hexstring: toHex(rawTx), maxfeerate: 0 }),
        expectTxid,
      );
      assert.ok((await ok<string[]>(call, "getrawmempool")).includes(expectTxid));
      const entry = await ok(call, "getmempoolentry", [expectTxid]);
      assert.equal(entry.fees.base, 2000 / 1e8);
      assert.equal(entry.unbroadcast, true);
      assert.equal(entry["bip125-replaceable"], true);
      assert.equal((await ok(call, "getmempoolinfo")).unbroadcastcount, 1);
      assert.equal(await ok(call, "getrawtransaction", [expectTxid]), toHex(rawTx));
      assert.equal(
        (await ok(call, "testmempoolaccept", [[toHex(rawTx)]]))[0]["reject-reason"],
        "txn-already-in-mempool",
      );
      assert.equal((await ok(call, "testmempoolaccept", [[toHex(child)]]))[0].allowed, true);
      // A conflicting spend is a replacement (full RBF): alone it is judged by the replacement rules (the
      // reason alone here, the details in sendrawtransaction's message); in a package it is never allowed.
      assert.equal(
        (await ok(call, "testmempoolaccept", [[toHex(build(1500))]]))[0]["reject-reason"],
        "insufficient fee",
      );
      assert.equal((await ok(call, "testmempoolaccept", [[toHex(build(4000))]]))[0].allowed, true);
      const bumped = build(4000);
      const bumpedChild = spend(toHexReversed(decodeTransaction(bumped).txid), 0, [
        { value: inValue - 4000 - 1500, script: p2wpkh },
      ]);
      assert.equal(
        (await ok(call, "testmempoolaccept", [[toHex(bumped), toHex(bumpedChild)]]))[0]["reject-reason"],
        "bip125-replacement-disallowed",
      );
      await fails(
        call,
        "sendrawtransaction",
        [toHex(build(1500))],
        -26,
        new RegExp(
          `^insufficient fee, rejecting replacement ${
            toHexReversed(decodeTransaction(build(1500)).txid)
          }; new feerate 0\\.\\d{8} BTC/kvB <= old feerate 0\\.\\d{8} BTC/kvB$`,
        ),
      );

      const mined = await ok<string[]>(call, "simnet_mine", [1]);
      assert.equal(mined.length, 1);
      assert.equal(await ok(call, "getblockcount"), height + 1);
      const block = parseBlock(fromHex(await ok(call, "getblock", [mined[0], 0])));
      assert.ok(block.txs.some((tx) => toHexReversed(tx.txid) === expectTxid));
      assert.equal((await ok<string[]>(call, "getrawmempool")).includes(expectTxid), false);
      assert.equal((await ok(call, "getrawtransaction", [expectTxid, 1, mined[0]])).confirmations, 1);
      await fails(call, "sendrawtransaction", [toHex(rawTx)], -27, "Transaction outputs already in utxo set");
      assert.ok(block.txs.every((tx, i) => i === 0 || !isCoinbase(tx)));
    });

    await t.step("submitpackage: child with parents goes in; Core's topology and size errors", async () => {
      const [a, av] = await spendableCoinbase(call, chain, height);
      const p2wpkh = fromHex("0014" + "ef".repeat(20));
      const tx = (inputs: [string, number][], value: number) =>
        serializeTransaction({
          version: 2,
          locktime: 0,
          inputs: inputs.map(([id, n]) => ({
            prevTxid: fromHex(id).reverse(),
            prevVout: n,
            scriptSig: new Uint8Array(0),
            sequence: 0xffffffff,
          })),
          outputs: [{ value, script: p2wpkh }],
          witnesses: inputs.map(() => [new Uint8Array(72).fill(0x30), new Uint8Array(33).fill(0x02)]),
        });
      const parent = tx([[a, av]], chain.txs.get(a)!.tx.outputs[av].value - 1000);
      const parentId = toHexReversed(decodeTransaction(parent).txid);
      const child = tx([[parentId, 0]], chain.txs.get(a)!.tx.outputs[av].value - 3000);
      const childTx = decodeTransaction(child);
      await fails(
        call,
        "submitpackage",
        [[toHex(parent)]],
        -8,
        "Array must contain between 2 and 25 transactions.",
      );
      await fails(
        call,
        "submitpackage",
        [[toHex(child), toHex(parent)]],
        -25,
        "package topology disallowed. not child-with-parents or parents depend on each other.",
      );
      await fails(
        call,
        "submitpackage",
        [[toHex(parent), "zz"]],
        -22,
        "TX decode failed: zz Make sure the tx has at least one input.",
      );
      // Two parents spending one coin: Core refuses the package as a whole before looking at any member.
      const twin = tx([[a, av]], chain.txs.get(a)!.tx.outputs[av].value - 1500);
      const twinId = toHexReversed(decodeTransaction(twin).txid);
      const both = tx([[parentId, 0], [twinId, 0]], chain.txs.get(a)!.tx.outputs[av].value - 5000);
      const before = await ok<string[]>(call, "getrawmempool");
      assert.deepEqual(await ok(call, "submitpackage", [[toHex(parent), toHex(twin), toHex(both)]]), {
        package_msg: "conflict-in-package",
        "tx-results": {},
        "replaced-transactions": [],
      });
      assert.deepEqual(await ok(call, "getrawmempool"), before);
      // A parent spending one coin twice is its own fault, not a conflict in the package; its child is still
      // tried, and misses its input.
      const doubled = tx([[a, av], [a, av]], chain.txs.get(a)!.tx.outputs[av].value - 1000);
      const doubledChild = tx(
        [[toHexReversed(decodeTransaction(doubled).txid), 0]],
        chain.txs.get(a)!.tx.outputs[av].value - 3000,
      );
      const failed = await ok(call, "submitpackage", [[toHex(doubled), toHex(doubledChild)]]);
      assert.equal(failed.package_msg, "transaction failed");
      assert.deepEqual(
        Object.values(failed["tx-results"]).map((x) => (x as { error: string }).error),
        ["bad-txns-inputs-duplicate", "bad-txns-inputs-missingorspent"],
      );
      assert.equal(
        (await ok(call, "testmempoolaccept", [[toHex(doubled), toHex(doubledChild)]]))[0]["reject-reason"],
        "bad-txns-inputs-duplicate",
      );
      assert.deepEqual(await ok(call, "getrawmempool"), before);
      const r = await ok(call, "submitpackage", [[toHex(parent), toHex(child)]]);
      assert.equal(r.package_msg, "success");
      assert.deepEqual(Object.keys(r["tx-results"]), [
        toHexReversed(wtxid(decodeTransaction(parent))),
        toHexReversed(wtxid(childTx)),
      ]);
      const childResult = r["tx-results"][toHexReversed(wtxid(childTx))];
      assert.equal(childResult.txid, toHexReversed(childTx.txid));
      assert.equal(childResult.fees.base, 2000 / 1e8);
      assert.equal(childResult.vsize, childTx.vsize);
      const pool = await ok<string[]>(call, "getrawmempool");
      assert.ok(pool.includes(parentId) && pool.includes(toHexReversed(childTx.txid)));
      assert.deepEqual((await ok(call, "getmempoolentry", [toHexReversed(childTx.txid)])).depends, [
        parentId,
      ]);
      // Submitting again finds both already there: vsize and base fee only.
      const again = await ok(call, "submitpackage", [[toHex(parent), toHex(child)]]);
      assert.deepEqual(again["tx-results"][toHexReversed(wtxid(childTx))], {
        txid: toHexReversed(childTx.txid),
        vsize: childTx.vsize,
        fees: { base: 2000 / 1e8 },
      });
    });

    await t.step("estimatesmartfee, getnetworkinfo, uptime, getindexinfo", async () => {
      await fails(call, "estimatesmartfee", [0], -8, "Invalid conf_target, must be between 1 and 1008");
      await fails(call, "estimatesmartfee", [1009], -8, "Invalid conf_target, must be between 1 and 1008");
      await fails(
        call,
        "estimatesmartfee",
        [6, "fast"],
        -8,
        'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"',
      );
      const est = await ok(call, "estimatesmartfee", [6, "ECONOMICAL"]);
      // `blocks` is the target Core could answer for: at most the one asked, at most half the blocks watched.
      if ("feerate" in est) {
        assert.deepEqual(Object.keys(est), ["feerate", "blocks"]);
        assert.ok(est.feerate >= 0.00001);
        assert.ok(est.blocks >= 2 && est.blocks <= 6, JSON.stringify(est));
      } else {
        assert.deepEqual(Object.keys(est), ["errors", "blocks"]);
        assert.deepEqual(est.errors, ["Insufficient data or no feerate found"]);
        assert.ok(est.blocks >= 0 && est.blocks <= 6, JSON.stringify(est));
      }
      const one = await ok(call, "estimatesmartfee", { conf_target: 1 });
      assert.ok(one.blocks <= 2, JSON.stringify(one));
      const net = await ok(call, "getnetworkinfo");
      assert.equal(net.version, 280100);
      assert.equal(net.subversion, "/Satoshi:28.1.0/");
      assert.equal(net.relayfee, 0.00001);
      assert.equal(net.connections, 0);
      const up = await ok(call, "uptime");
      assert.ok(Number.isInteger(up) && up >= 0);
      assert.deepEqual(await ok(call, "getindexinfo"), {});
    });

    await t.step("reorg via RPC: new hashes, stale blocks keep answering with -1 confirmations", async () => {
      const before = await ok<number>(call, "getblockcount");
      const oldTop = await ok<string>(call, "getblockhash", [before]);
      const oldBelow = await ok<string>(call, "getblockhash", [before - 1]);
      const report = await ok(call, "simnet_reorg", [2, { extra_blocks: 1 }]);
      assert.deepEqual(report.old_hashes.slice().sort(), [oldBelow, oldTop].sort());
      const after = await ok<number>(call, "getblockcount");
      assert.ok(report.new_hashes.length >= 3);
      assert.equal(after, before - 2 + report.new_hashes.length);
      assert.notEqual(await ok(call, "getblockhash", [before]), oldTop);
      assert.notEqual(await ok(call, "getblockhash", [before - 1]), oldBelow);
      for (const h of report.new_hashes) {
        assert.ok((await ok(call, "getblockheader", [h])).confirmations >= 1);
      }
      const stale = await ok(call, "getblockheader", [oldTop]);
      assert.equal(stale.confirmations, -1);
      assert.equal(stale.nextblockhash, undefined);
      assert.equal((await ok(call, "getblockheader", [oldBelow])).confirmations, -1);
      const staleBlock = await ok(call, "getblock", [oldTop, 2]);
      assert.equal(staleBlock.confirmations, -1);
      const coinbase = staleBlock.tx[0].txid;
      const grt = await ok(call, "getrawtransaction", [coinbase, 1, oldTop]);
      assert.equal(grt.in_active_chain, false);
      assert.equal(grt.confirmations, 0);
      assert.equal(grt.blocktime, undefined);
      const restStale = await restBytes(sim, `/rest/block/${oldTop}.bin`);
      assert.equal(toHex(restStale), await ok(call, "getblock", [oldTop, 0]));
      const headers = await restBytes(sim, `/rest/headers/1/${oldTop}.bin`);
      assert.equal(headers.length, 0);
      await fails(call, "simnet_reorg", [0], -8, /depth must be an integer/);
    });

    await t.step("REST chaininfo and headers agree with RPC", async () => {
      const info = await ok(call, "getblockchaininfo");
      const rest = await (await fetch(sim.url + "/rest/chaininfo.json")).json();
      assert.deepEqual(rest, info);
      const h1 = await ok<string>(call, "getblockhash", [1]);
      const headers = await restBytes(sim, `/rest/headers/3/${h1}.bin`);
      assert.equal(headers.length, 240);
      for (let i = 0; i < 3; i++) {
        assert.equal(
          toHex(headers.subarray(80 * i, 80 * i + 80)),
          await ok(call, "getblockheader", [await ok(call, "getblockhash", [1 + i]), false]),
        );
      }
    });

    await t.step("mempool_sequence counts every addition and every removal, as Core's", async () => {
      const seq = async () =>
        (await ok(call, "getrawmempool", { verbose: false, mempool_sequence: true }))
          .mempool_sequence as number;
      const pool = (await ok<string[]>(call, "getrawmempool")).length;
      const start = await seq();
      const added = await ok<string[]>(call, "simnet_addtraffic", [6]);
      assert.equal(await seq(), start + added.length);
      await ok(call, "simnet_mine", [1]); // takes them all, and whatever was there before
      assert.equal(await seq(), start + 2 * added.length + pool);
    });
  } finally {
    await sim.close();
    await Deno.remove(datadir, { recursive: true });
  }
});

Deno.test("with -txindex, confirmed transactions are found by txid alone", async () => {
  const datadir = await Deno.makeTempDir({ prefix: "simnet-txindex-" });
  const sim = await startSimnet({
    blocks: 110,
    seed: "txindex-test",
    port: 0,
    datadir,
    rpcuser: USER,
    rpcpassword: PASSWORD,
    txindex: true,
  });
  const call = client(sim, USER, PASSWORD);
  try {
    const height = await ok<number>(call, "getblockcount");
    assert.deepEqual(await ok(call, "getindexinfo"), {
      txindex: { synced: true, best_block_height: height },
    });
    assert.deepEqual(await ok(call, "getindexinfo", ["txindex"]), {
      txindex: { synced: true, best_block_height: height },
    });
    assert.deepEqual(await ok(call, "getindexinfo", ["coinstatsindex"]), {});
    const hash = await ok<string>(call, "getblockhash", [height]);
    const block = parseBlock(fromHex(await ok(call, "getblock", [hash, 0])));
    const txid = toHexReversed(block.txs[0].txid);
    assert.equal(await ok(call, "getrawtransaction", [txid]), toHex(block.txs[0].raw));
    const v = await ok(call, "getrawtransaction", [txid, 1]);
    assert.equal(v.blockhash, hash);
    assert.equal(v.confirmations, 1);
    assert.equal(v.in_active_chain, undefined);
    await fails(
      call,
      "getrawtransaction",
      ["00".repeat(32)],
      -5,
      "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
    );
    // After a reorg the index still has the old tip's coinbase, which no block of the new branch holds: in the
    // disconnected block, with no confirmations. A transaction the new branch confirms again is found there.
    const r = sim.node.reorg(1);
    assert.equal(await ok(call, "getrawtransaction", [txid]), toHex(block.txs[0].raw));
    const stale = await ok(call, "getrawtransaction", [txid, 1]);
    assert.equal(stale.blockhash, hash);
    assert.equal(stale.confirmations, 0);
    assert.ok(r.moved.length > 0, "the tip had transactions besides its coinbase");
    const moved = toHexReversed(r.moved[0]);
    const again = await ok(call, "getrawtransaction", [moved, 1]);
    const header = await ok(call, "getblockheader", [again.blockhash]);
    assert.ok(header.height >= height, "a block of the new branch");
    assert.equal(again.confirmations, header.confirmations);
    assert.ok(again.confirmations >= 1);
  } finally {
    await sim.close();
    await Deno.remove(datadir, { recursive: true });
  }
});
