import assert from "node:assert/strict";
import { parseBlock } from "../../src/chain/block.ts";
import { fromHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import {
  classifyScript,
  hashX,
  isUnindexed,
  isUnspendable,
  opcodeName,
  readOp,
  scriptAsm,
  scriptHash,
  type ScriptType,
  witnessProgram,
} from "../../src/chain/script.ts";
import { decodeTransaction } from "../../src/chain/tx.ts";
import { blockFixture, txFixtures } from "./fixtures.ts";

const PK33 = "02" + "11".repeat(32);
const PK65 = "04" + "22".repeat(64);

const CASES: [string, ScriptType][] = [
  ["76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac", "p2pkh"],
  ["a914" + "33".repeat(20) + "87", "p2sh"],
  ["0014" + "44".repeat(20), "p2wpkh"],
  ["0020" + "55".repeat(32), "p2wsh"],
  ["5120" + "66".repeat(32), "p2tr"],
  ["21" + PK33 + "ac", "p2pk"],
  ["41" + PK65 + "ac", "p2pk"],
  ["6a", "nulldata"],
  ["6a0568656c6c6f", "nulldata"],
  ["6a4c0100" + "51", "nulldata"],
  ["6a24aa21a9ed" + "77".repeat(32), "nulldata"],
  ["6a76", "nonstandard"], // OP_RETURN followed by a non-push
  ["6a05abcd", "nonstandard"], // push runs off the end
  ["51" + "21" + PK33 + "21" + PK33 + "52ae", "multisig"],
  ["52" + "21" + PK33 + "41" + PK65 + "21" + PK33 + "53ae", "multisig"],
  ["0114" + ("21" + PK33).repeat(20) + "0114ae", "multisig"], // 20 keys via minimal one-byte pushes
  ["53" + "21" + PK33 + "21" + PK33 + "52ae", "nonstandard"], // m > n
  ["51" + "21" + PK33 + "53ae", "nonstandard"], // n disagrees with the key count
  ["51" + "21" + "05" + "11".repeat(32) + "51ae", "nonstandard"], // bad pubkey prefix
  ["5102" + "1111" + "51ae", "nonstandard"],
  ["51024e73", "witness_unknown"], // pay-to-anchor (v1, 2 bytes)
  ["6028" + "88".repeat(40), "witness_unknown"], // v16, 40 bytes
  ["0015" + "44".repeat(21), "nonstandard"], // v0 of a size other than 20/32
  ["5129" + "88".repeat(41), "nonstandard"], // program longer than 40
  ["21" + "05" + "11".repeat(32) + "ac", "nonstandard"], // bad P2PK key prefix
  ["", "nonstandard"],
  ["76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888", "nonstandard"],
];

Deno.test("classifyScript follows Core's Solver templates and edge cases", () => {
  for (const [hex, type] of CASES) assert.equal(classifyScript(fromHex(hex)), type, hex);
});

Deno.test("classifyScript on testdata outputs agrees with bitcoind's type field", () => {
  const coreName: Record<string, ScriptType> = {
    pubkeyhash: "p2pkh",
    scripthash: "p2sh",
    witness_v0_keyhash: "p2wpkh",
    witness_v0_scripthash: "p2wsh",
    witness_v1_taproot: "p2tr",
    pubkey: "p2pk",
    nulldata: "nulldata",
    multisig: "multisig",
    witness_unknown: "witness_unknown",
    nonstandard: "nonstandard",
  };
  let n = 0;
  for (const f of txFixtures().values()) {
    for (const vout of f.vout) {
      assert.equal(classifyScript(fromHex(vout.scriptPubKey.hex)), coreName[vout.scriptPubKey.type]);
      n++;
    }
  }
  assert.ok(n >= 5);
});

Deno.test("a real mainnet block contains the common types and classification is total", () => {
  const b = parseBlock(blockFixture("bitcoin_mainnet_951658").raw);
  const seen = new Set<ScriptType>();
  for (const tx of b.txs) for (const out of tx.outputs) seen.add(classifyScript(out.script));
  for (const t of ["p2pkh", "p2sh", "p2wpkh", "p2tr", "nulldata"] as ScriptType[]) assert.ok(seen.has(t), t);
});

Deno.test("scriptHash and hashX match the protocol vectors", () => {
  const genesisAddrScript = fromHex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac");
  assert.equal(
    toHex(scriptHash(genesisAddrScript)),
    "6191c3b590bfcfa0475e877c302da1e323497acf3b42c08d8fa28e364edf018b",
  );
  assert.equal(
    toHexReversed(scriptHash(genesisAddrScript)),
    "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161",
  );
  const regtest = fromHex("00149f9aa3795e57c535d2f7b160ff023804c60fca6e");
  assert.equal(
    toHexReversed(scriptHash(regtest)),
    "f04bf26fc16a27abaa2f10540da7a24e369e6ec408f2d901202a7c0cd4a6112d",
  );
  const hx = hashX(genesisAddrScript);
  assert.equal(hx.length, 11);
  assert.equal(hx.buffer.byteLength, 11); // a standalone copy, not a view pinning 32 bytes
  assert.equal(toHex(hx), "6191c3b590bfcfa0475e87");
});

Deno.test("isUnindexed: ElectrumX's rule, OP_RETURN or OP_0 OP_RETURN first; size does not matter", () => {
  assert.equal(isUnindexed(fromHex("6a")), true);
  assert.equal(isUnindexed(fromHex("6a0401020304")), true);
  assert.equal(isUnindexed(fromHex("006a")), true);
  assert.equal(isUnindexed(fromHex("006a0401020304")), true);
  assert.equal(isUnindexed(new Uint8Array(0)), false);
  assert.equal(isUnindexed(fromHex("00")), false);
  assert.equal(isUnindexed(new Uint8Array(10001)), false);
  assert.equal(isUnindexed(fromHex("00140101010101010101010101010101010101010101")), false);
});

Deno.test("isUnspendable: OP_RETURN-led or oversized only", () => {
  assert.equal(isUnspendable(fromHex("6a")), true);
  assert.equal(isUnspendable(fromHex("6a0401020304")), true);
  assert.equal(isUnspendable(new Uint8Array(10001)), true);
  assert.equal(isUnspendable(new Uint8Array(10000)), false);
  assert.equal(isUnspendable(new Uint8Array(0)), false);
  assert.equal(isUnspendable(fromHex("006a")), false);
  assert.equal(isUnspendable(fromHex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac")), false);
});

Deno.test("scriptAsm reproduces bitcoind's asm for testdata scriptPubKeys and scriptSigs", () => {
  let sigs = 0;
  for (const f of txFixtures().values()) {
    const tx = decodeTransaction(fromHex(f.hex));
    f.vout.forEach((vout, i) => assert.equal(scriptAsm(tx.outputs[i].script), vout.scriptPubKey.asm));
    f.vin.forEach((vin, i) => {
      assert.equal(scriptAsm(tx.inputs[i].scriptSig, true), vin.scriptSig.asm);
      if (vin.scriptSig.asm.includes("[ALL]")) sigs++;
    });
  }
  assert.ok(sigs >= 1);
});

Deno.test("scriptAsm: small pushes as numbers, opcode names, truncation, no sighash decoding by default", () => {
  assert.equal(scriptAsm(fromHex("00")), "0");
  assert.equal(scriptAsm(fromHex("4f51609c")), "-1 1 16 OP_NUMEQUAL");
  assert.equal(scriptAsm(fromHex("0181")), "-1");
  assert.equal(scriptAsm(fromHex("02ff00")), "255");
  assert.equal(scriptAsm(fromHex("04ffffff7f")), "2147483647");
  assert.equal(scriptAsm(fromHex("03a08601b1")), "100000 OP_CHECKLOCKTIMEVERIFY");
  assert.equal(scriptAsm(fromHex("0568656c6c6f")), "68656c6c6f");
  assert.equal(scriptAsm(fromHex("4c0568656c6c6f")), "68656c6c6f");
  assert.equal(
    scriptAsm(fromHex("ba bb ff".replaceAll(" ", ""))),
    "OP_CHECKSIGADD OP_UNKNOWN OP_INVALIDOPCODE",
  );
  assert.equal(scriptAsm(fromHex("6a05abcd")), "OP_RETURN [error]");
  assert.equal(scriptAsm(fromHex("4d01")), "[error]");
  assert.equal(scriptAsm(new Uint8Array()), "");
  const sig =
    "3044022020fd51935d101b3bfcf169af182a2ca189407597d8f1868ca55eecae6c58fd0402205adc117093a4329dde60b9b9c579c56c1699129c6be37a581bbd03e851d3696201";
  const pushed = fromHex("47" + sig);
  assert.equal(scriptAsm(pushed), sig);
  assert.equal(scriptAsm(pushed, true), sig.slice(0, -2) + "[ALL]");
  const acp = fromHex("47" + sig.slice(0, -2) + "83");
  assert.equal(scriptAsm(acp, true), sig.slice(0, -2) + "[SINGLE|ANYONECANPAY]");
  const undefinedType = fromHex("47" + sig.slice(0, -2) + "04");
  assert.equal(scriptAsm(undefinedType, true), sig.slice(0, -2) + "04");
  // Unspendable scripts never get sighash decoding, even with the flag.
  assert.equal(scriptAsm(fromHex("6a47" + sig), true), "OP_RETURN " + sig);
  assert.equal(opcodeName(0x76), "OP_DUP");
});

Deno.test("readOp and witnessProgram decode pushes as views", () => {
  const s = fromHex("4d0300aabbcc51");
  const op = readOp(s, 0)!;
  assert.equal(op.opcode, 0x4d);
  assert.equal(toHex(op.data), "aabbcc");
  assert.equal(op.end, 6);
  assert.equal(op.data.buffer, s.buffer);
  assert.equal(readOp(s, 7), null);
  assert.equal(readOp(fromHex("4e0100"), 0), null);
  const wp = witnessProgram(fromHex("5120" + "66".repeat(32)))!;
  assert.equal(wp.version, 1);
  assert.equal(wp.program.length, 32);
  assert.equal(witnessProgram(fromHex("0014" + "44".repeat(19))), null);
});
