import assert from "node:assert/strict";
import { addressToScript, scriptToAddress } from "../../src/chain/address.ts";
import { base58CheckDecode, base58CheckEncode, base58Decode, base58Encode } from "../../src/chain/base58.ts";
import { bech32Decode, bech32Encode, decodeSegwitAddress } from "../../src/chain/bech32.ts";
import { ChainFormatError } from "../../src/chain/errors.ts";
import { fromHex, toHex } from "../../src/chain/hex.ts";
import { NETWORKS } from "../../src/chain/network.ts";
import { txFixtures } from "./fixtures.ts";

const { mainnet, testnet, testnet4, signet, regtest } = NETWORKS;

function rejects(fn: () => unknown, code?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ChainFormatError, `expected ChainFormatError, got ${e}`);
    if (code !== undefined) assert.equal(e.code, code, e.message);
    return true;
  });
}

// BIP350's valid segwit addresses (which include BIP173's v0 ones), with their scriptPubKeys.
const VALID_SEGWIT: [string, string][] = [
  ["BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"],
  [
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
    "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
  ],
  [
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
    "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
  ],
  ["BC1SW50QGDZ25J", "6002751e"],
  ["bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"],
  [
    "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
    "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
  ],
  [
    "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
    "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
  ],
  [
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
  ],
];

// BIP350's invalid segwit addresses: bad HRP, wrong checksum variant, bad version/length/padding/case.
const INVALID_SEGWIT = [
  "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
  "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
  "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
  "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
  "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
  "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
  "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
  "bc1pw5dgrnzv",
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
  "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
  "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
  "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
  "bc1gmk9yu",
];

Deno.test("BIP173/BIP350 valid addresses decode to their scripts and re-encode (lowercase)", () => {
  for (const [addr, scriptHex] of VALID_SEGWIT) {
    const net = addr.toLowerCase().startsWith("bc1") ? mainnet : testnet;
    const script = addressToScript(addr, net);
    assert.equal(toHex(script), scriptHex, addr);
    assert.equal(scriptToAddress(script, net), addr.toLowerCase(), addr);
  }
});

Deno.test("BIP350 invalid addresses are rejected on every network", () => {
  for (const addr of INVALID_SEGWIT) {
    for (const net of [mainnet, testnet]) rejects(() => addressToScript(addr, net));
    // The first one differs only by its unknown HRP, which decodeSegwitAddress leaves to the caller.
    if (!addr.startsWith("tc1")) assert.throws(() => decodeSegwitAddress(addr), ChainFormatError, addr);
  }
});

Deno.test("bech32 checksum variants: BIP173 and BIP350 generic strings", () => {
  assert.equal(bech32Decode("A12UEL5L").encoding, "bech32");
  assert.equal(bech32Decode("a12uel5l").hrp, "a");
  assert.equal(
    bech32Decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw").data.length,
    32,
  );
  assert.equal(bech32Decode("A1LQFN3A").encoding, "bech32m");
  assert.equal(bech32Decode("abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx").encoding, "bech32m");
  assert.equal(bech32Encode("a", [], "bech32"), "a12uel5l");
  assert.equal(bech32Encode("a", [], "bech32m"), "a1lqfn3a");
  // An 83-character HRP is allowed; 90 characters in total is the limit.
  const long = "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6";
  assert.equal(bech32Decode(long).hrp.length, 83);
  for (
    const bad of ["pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "A1G7SGD8", "10a06t8", "1qzzfhee"]
  ) {
    rejects(() => bech32Decode(bad));
  }
  rejects(() => bech32Decode("a".repeat(91)), "bad-bech32");
});

Deno.test("known mainnet addresses map to the right scripts both ways", () => {
  const cases: [string, string][] = [
    ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"],
    ["3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"],
    ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"],
    ["bc1pfeessrawgf", "51024e73"], // pay-to-anchor
  ];
  for (const [addr, script] of cases) {
    assert.equal(toHex(addressToScript(addr, mainnet)), script, addr);
    assert.equal(scriptToAddress(fromHex(script), mainnet), addr);
  }
});

Deno.test("testdata outputs: bitcoind's addresses are reproduced on their networks", () => {
  let n = 0;
  for (const [name, f] of txFixtures()) {
    const net = name.includes("regtest") ? regtest : testnet;
    for (const vout of f.vout) {
      const script = fromHex(vout.scriptPubKey.hex);
      assert.equal(scriptToAddress(script, net), vout.scriptPubKey.address ?? null);
      if (vout.scriptPubKey.address) {
        assert.deepEqual(addressToScript(vout.scriptPubKey.address, net), script);
        n++;
      }
    }
  }
  assert.ok(n >= 4);
});

Deno.test("scripts without an address give null", () => {
  for (
    const hex of [
      "21" + "02" + "11".repeat(32) + "ac",
      "6a0568656c6c6f",
      "51" + "21" + "02" + "11".repeat(32) + "51ae",
      "0015" + "44".repeat(21),
      "",
      "ac",
    ]
  ) {
    assert.equal(scriptToAddress(fromHex(hex), mainnet), null, hex);
  }
});

Deno.test("round trip script ↔ address on every network, each with its own prefixes", () => {
  const templates = [
    "76a914" + "ab".repeat(20) + "88ac",
    "a914" + "cd".repeat(20) + "87",
    "0014" + "ef".repeat(20),
    "0020" + "12".repeat(32),
    "5120" + "34".repeat(32),
    "5228" + "56".repeat(40),
  ];
  const first: Record<string, string[]> = {
    mainnet: ["1", "3", "bc1q", "bc1q", "bc1p", "bc1z"],
    testnet: ["m", "2", "tb1q", "tb1q", "tb1p", "tb1z"],
    testnet4: ["m", "2", "tb1q", "tb1q", "tb1p", "tb1z"],
    signet: ["m", "2", "tb1q", "tb1q", "tb1p", "tb1z"],
    regtest: ["m", "2", "bcrt1q", "bcrt1q", "bcrt1p", "bcrt1z"],
  };
  for (const net of [mainnet, testnet, testnet4, signet, regtest]) {
    templates.forEach((hex, i) => {
      const addr = scriptToAddress(fromHex(hex), net)!;
      assert.ok(addr.startsWith(first[net.name][i]), `${net.name} ${addr}`);
      assert.equal(toHex(addressToScript(addr, net)), hex);
      // Bech32 is case-insensitive (all one case); base58 is not.
      if (i >= 2) assert.equal(toHex(addressToScript(addr.toUpperCase(), net)), hex);
      else rejects(() => addressToScript(addr.toUpperCase(), net));
    });
  }
});

Deno.test("wrong-network and bad-checksum addresses are rejected with codes", () => {
  rejects(() => addressToScript("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", testnet), "wrong-network");
  rejects(() => addressToScript("mg2jk6S5WGDhUPA8mLSxDLWpUoQnX1zzoG", mainnet), "wrong-network");
  rejects(() => addressToScript("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", testnet), "wrong-network");
  rejects(() => addressToScript("tb1quk7ahlhr3qmjndy0uvu9y9hxfesrtahtta9ghm", regtest), "wrong-network");
  rejects(() => addressToScript("bcrt1qn7d2x7272lznt5hhk9s07q3cqnrqljnwladrd3", mainnet), "wrong-network");
  rejects(() => addressToScript("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9", mainnet), "wrong-network");
  rejects(() => addressToScript("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", mainnet), "bad-checksum");
  rejects(() => addressToScript("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", mainnet), "bad-checksum");
  rejects(() => addressToScript("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", mainnet), "bad-address");
  rejects(() => addressToScript("", mainnet), "bad-address");
  rejects(() => addressToScript("1".repeat(200), mainnet), "bad-address");
  rejects(() => addressToScript(42 as unknown as string, mainnet), "bad-address");
  // A valid base58check payload of the wrong length (a WIF-sized one).
  rejects(() => addressToScript(base58CheckEncode(new Uint8Array(33).fill(0x80)), mainnet), "bad-address");
  // Unknown version byte.
  rejects(() => addressToScript(base58CheckEncode(new Uint8Array(21).fill(0x30)), mainnet), "bad-address");
});

Deno.test("base58 encodes leading zeros as '1' and round-trips", () => {
  assert.equal(base58Encode(new Uint8Array()), "");
  assert.equal(base58Encode(fromHex("0000")), "11");
  assert.equal(base58Encode(new TextEncoder().encode("Hello World!")), "2NEpo7TZRRrLZSi2U");
  assert.equal(toHex(base58Decode("2NEpo7TZRRrLZSi2U")), toHex(new TextEncoder().encode("Hello World!")));
  assert.equal(toHex(base58Decode("1112")), "00000001");
  const payload = fromHex("0062e907b15cbf27d5425399ebf6f0fb50ebb88f18");
  assert.equal(base58CheckEncode(payload), "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa");
  assert.deepEqual(base58CheckDecode("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"), payload);
  rejects(() => base58Decode("0OIl"), "bad-base58");
  rejects(() => base58CheckDecode("111"), "bad-base58");
});
