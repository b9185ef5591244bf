import assert from "node:assert/strict";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { checkProofOfWork, headerHash, parseHeader } from "../../src/chain/header.ts";
import { toHex, toHexReversed } from "../../src/chain/hex.ts";
import { blockSubsidy, type Network, networkByName, NETWORKS } from "../../src/chain/network.ts";

Deno.test("every genesis header hashes to its genesis hash and meets its own proof of work", () => {
  for (const net of Object.values(NETWORKS)) {
    assert.equal(net.genesisHeader.length, 80, net.name);
    assert.deepEqual(headerHash(net.genesisHeader), net.genesisHash, net.name);
    const h = parseHeader(net.genesisHeader);
    assert.equal(toHex(h.prevHash), "00".repeat(32));
    assert.equal(h.bits, net.powLimitBits, net.name);
    assert.ok(checkProofOfWork(net.genesisHash, h.bits), net.name);
  }
});

Deno.test("genesis hashes match the published values", () => {
  const expected: Record<Network["name"], string> = {
    mainnet: "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    testnet: "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    testnet4: "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    signet: "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    regtest: "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
  };
  for (const [name, hash] of Object.entries(expected)) {
    assert.equal(toHexReversed(NETWORKS[name as Network["name"]].genesisHash), hash);
  }
  // Networks sharing the 2009 coinbase share its merkle root; testnet4 has its own.
  const root = (n: Network) => toHexReversed(parseHeader(n.genesisHeader).merkleRoot);
  assert.equal(root(NETWORKS.signet), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
  assert.equal(root(NETWORKS.testnet4), "7aa0a7ae1e223414cb807e40cd57e667b718e42aaf9306db9102fe28912b7b4e");
});

Deno.test("network constants from the RPC reference", () => {
  const row = (
    n: Network,
  ) => [n.coreChain, n.p2pkhPrefix, n.p2shPrefix, n.wifPrefix, n.bech32Hrp, n.rpcPort, n.cookieDir];
  assert.deepEqual(row(NETWORKS.mainnet), ["main", 0x00, 0x05, 0x80, "bc", 8332, "."]);
  assert.deepEqual(row(NETWORKS.testnet), ["test", 0x6f, 0xc4, 0xef, "tb", 18332, "testnet3"]);
  assert.deepEqual(row(NETWORKS.testnet4), ["testnet4", 0x6f, 0xc4, 0xef, "tb", 48332, "testnet4"]);
  assert.deepEqual(row(NETWORKS.signet), ["signet", 0x6f, 0xc4, 0xef, "tb", 38332, "signet"]);
  assert.deepEqual(row(NETWORKS.regtest), ["regtest", 0x6f, 0xc4, 0xef, "bcrt", 18443, "regtest"]);
  for (const [name, net] of Object.entries(NETWORKS)) assert.equal(net.name, name);
});

Deno.test("networkByName accepts our names, Core's chain names and aliases; rejects the rest", () => {
  for (
    const [alias, name] of [
      ["mainnet", "mainnet"],
      ["main", "mainnet"],
      ["bitcoin", "mainnet"],
      ["MAINNET", "mainnet"],
      ["testnet", "testnet"],
      ["test", "testnet"],
      ["testnet3", "testnet"],
      ["testnet4", "testnet4"],
      ["signet", "signet"],
      ["regtest", "regtest"],
    ]
  ) {
    assert.equal(networkByName(alias).name, name, alias);
  }
  for (const net of Object.values(NETWORKS)) assert.equal(networkByName(net.coreChain), net);
  for (const bad of ["", "litecoin", "constructor", "__proto__", "toString", "testnet5"]) {
    assert.throws(
      () => networkByName(bad),
      (e) => e instanceof ChainFormatError && e.code === "unknown-network",
    );
  }
});

Deno.test("blockSubsidy halves every interval (150 on regtest) and reaches zero", () => {
  const main = NETWORKS.mainnet, reg = NETWORKS.regtest;
  assert.equal(blockSubsidy(0, main), 5_000_000_000);
  assert.equal(blockSubsidy(209_999, main), 5_000_000_000);
  assert.equal(blockSubsidy(210_000, main), 2_500_000_000);
  assert.equal(blockSubsidy(840_000, main), 312_500_000);
  assert.equal(blockSubsidy(951_658, main), 312_500_000);
  assert.equal(blockSubsidy(210_000 * 33 - 1, main), 1);
  assert.equal(blockSubsidy(210_000 * 33, main), 0);
  assert.equal(blockSubsidy(210_000 * 64, main), 0);
  assert.equal(blockSubsidy(149, reg), 5_000_000_000);
  assert.equal(blockSubsidy(150, reg), 2_500_000_000);
  assert.equal(blockSubsidy(300, reg), 1_250_000_000);
  // Total supply matches the well-known 20999999.9769 BTC.
  let total = 0;
  for (let era = 0; era < 64; era++) total += blockSubsidy(era * 210_000, main) * 210_000;
  assert.equal(total, 2_099_999_997_690_000);
  assert.throws(() => blockSubsidy(-1, main), RangeError);
});

Deno.test("BIP30's two exceptions are mainnet's blocks 91842 and 91880, as bitcoind names them", () => {
  assert.deepEqual(
    NETWORKS.mainnet.overwritingCoinbases.map((b) => [b.height, toHexReversed(b.hash)]),
    [
      [91842, "00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec"],
      [91880, "00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"],
    ],
  );
  for (const name of ["testnet", "testnet4", "signet", "regtest"] as const) {
    assert.deepEqual(NETWORKS[name].overwritingCoinbases, []);
  }
});
