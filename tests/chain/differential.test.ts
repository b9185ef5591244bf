// Differential test: thousands of generated transactions built and hashed by bitcoinjs-lib must decode,
// hash, size, re-serialize, classify and map to addresses exactly as our code does.
import assert from "node:assert/strict";
import * as bitcoin from "bitcoinjs-lib";
import { addressToScript, scriptToAddress } from "../../src/chain/address.ts";
import { toHex, toHexReversed } from "../../src/chain/hex.ts";
import { NETWORKS } from "../../src/chain/network.ts";
import { classifyScript, type ScriptType, witnessProgram } from "../../src/chain/script.ts";
import { decodeTransaction, isCoinbase, serializeTransaction, wtxid } from "../../src/chain/tx.ts";
import { prng } from "./fixtures.ts";

const COUNT = 3000;
const PAIRS = [
  { ours: NETWORKS.mainnet, theirs: bitcoin.networks.bitcoin },
  { ours: NETWORKS.testnet, theirs: bitcoin.networks.testnet },
  { ours: NETWORKS.regtest, theirs: bitcoin.networks.regtest },
];

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const bytes = (r: Rand, n: number) => Uint8Array.from({ length: n }, () => int(r, 0, 255));
const cat = (...parts: (Uint8Array | number[])[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

function pubkey(r: Rand, compressed: boolean): Uint8Array {
  // x below the field prime so bitcoinjs's point-shape check accepts it.
  const x = bytes(r, 32);
  x[0] = int(r, 1, 0xfe);
  if (compressed) return cat([int(r, 2, 3)], x);
  const y = bytes(r, 32);
  y[0] = int(r, 1, 0xfe);
  return cat([4], x, y);
}

function push(data: Uint8Array): Uint8Array {
  if (data.length < 0x4c) return cat([data.length], data);
  return cat([0x4c, data.length], data);
}

const TYPES: ScriptType[] = [
  "p2pk",
  "p2pkh",
  "p2sh",
  "p2wpkh",
  "p2wsh",
  "p2tr",
  "nulldata",
  "multisig",
  "witness_unknown",
  "nonstandard",
];

function makeScript(r: Rand, type: ScriptType): Uint8Array {
  switch (type) {
    case "p2pk": {
      const k = pubkey(r, r() < 0.7);
      return cat(push(k), [0xac]);
    }
    case "p2pkh":
      return cat([0x76, 0xa9, 0x14], bytes(r, 20), [0x88, 0xac]);
    case "p2sh":
      return cat([0xa9, 0x14], bytes(r, 20), [0x87]);
    case "p2wpkh":
      return cat([0x00, 0x14], bytes(r, 20));
    case "p2wsh":
      return cat([0x00, 0x20], bytes(r, 32));
    case "p2tr":
      return cat([0x51, 0x20], bytes(r, 32));
    case "nulldata":
      return cat([0x6a], ...Array.from({ length: int(r, 0, 2) }, () => push(bytes(r, int(r, 1, 80)))));
    case "multisig": {
      const n = int(r, 1, 3), m = int(r, 1, n);
      const keys = Array.from({ length: n }, () => push(pubkey(r, r() < 0.8)));
      return cat([0x50 + m], ...keys, [0x50 + n, 0xae]);
    }
    case "witness_unknown": {
      const version = int(r, 2, 16);
      return cat([0x50 + version], push(bytes(r, int(r, 2, 40))));
    }
    default:
      // 0xff (OP_INVALIDOPCODE) cannot start any template.
      return cat([0xff], bytes(r, int(r, 0, 40)));
  }
}

/** The address bitcoinjs gives, using its bech32 encoder directly for taproot (its p2tr needs an ECC lib). */
function theirAddress(script: Uint8Array, net: bitcoin.networks.Network): string | null {
  const wp = witnessProgram(script);
  if (wp !== null && wp.version === 1) return bitcoin.address.toBech32(wp.program, 1, net.bech32);
  try {
    return bitcoin.address.fromOutputScript(script, net);
  } catch {
    return null;
  }
}

/** Whether bitcoinjs's own payment decoder recognises the script as `type`. */
function theirsRecognise(script: Uint8Array, type: ScriptType): boolean {
  const p = bitcoin.payments;
  const attempt = (fn: () => unknown) => {
    try {
      fn();
      return true;
    } catch {
      return false;
    }
  };
  switch (type) {
    case "p2pk":
      return attempt(() => p.p2pk({ output: script }));
    case "p2pkh":
      return attempt(() => p.p2pkh({ output: script }));
    case "p2sh":
      return attempt(() => p.p2sh({ output: script }));
    case "p2wpkh":
      return attempt(() => p.p2wpkh({ output: script }));
    case "p2wsh":
      return attempt(() => p.p2wsh({ output: script }));
    case "multisig":
      return attempt(() => p.p2ms({ output: script }));
    case "nulldata":
      return attempt(() => p.embed({ output: script }));
    default:
      return true;
  }
}

Deno.test(`differential vs bitcoinjs-lib over ${COUNT} generated transactions`, () => {
  const r = prng(20240601);
  const warn = console.warn;
  // bitcoinjs warns on every future-segwit address it encodes.
  console.warn = () => {};
  const seenTypes = new Set<ScriptType>();
  let segwitCount = 0, coinbaseCount = 0, outputsChecked = 0;
  try {
    for (let n = 0; n < COUNT; n++) {
      const t = new bitcoin.Transaction();
      t.version = int(r, 1, 3);
      t.locktime = r() < 0.5 ? 0 : int(r, 0, 0xffffffff);
      const coinbase = r() < 0.03;
      const nIn = coinbase ? 1 : int(r, 1, 5);
      for (let i = 0; i < nIn; i++) {
        const hash = coinbase ? new Uint8Array(32) : bytes(r, 32);
        const vout = coinbase ? 0xffffffff : int(r, 0, 20);
        t.addInput(hash, vout, r() < 0.5 ? 0xffffffff : int(r, 0, 0xfffffffe), bytes(r, int(r, 0, 110)));
      }
      const nOut = int(r, 1, 6);
      const types: ScriptType[] = [];
      for (let i = 0; i < nOut; i++) {
        const type = TYPES[int(r, 0, TYPES.length - 1)];
        types.push(type);
        const value = r() < 0.1 ? 0 : int(r, 1, 2_100_000_000_000_000);
        t.addOutput(makeScript(r, type), BigInt(value));
      }
      const segwit = r() < 0.5;
      if (segwit) {
        const withData = int(r, 0, nIn - 1);
        for (let i = 0; i < nIn; i++) {
          const items = i === withData ? int(r, 1, 4) : int(r, 0, 3);
          t.setWitness(i, Array.from({ length: items }, () => bytes(r, int(r, 0, 80))));
        }
        segwitCount++;
      }
      if (coinbase) coinbaseCount++;

      const raw = t.toBuffer();
      const tx = decodeTransaction(raw);
      assert.equal(toHexReversed(tx.txid), t.getId());
      // bitcoinjs reports a coinbase's wtxid as zeros (its value in the commitment tree), so hash it directly.
      const theirWtxid = t.isCoinbase() ? bitcoin.crypto.hash256(raw) : t.getHash(true);
      assert.equal(toHex(wtxid(tx)), toHex(theirWtxid));
      assert.equal(tx.size, t.byteLength());
      assert.equal(tx.baseSize, t.byteLength(false));
      assert.equal(tx.weight, t.weight());
      assert.equal(tx.vsize, t.virtualSize());
      assert.equal(tx.version, t.version);
      assert.equal(tx.locktime, t.locktime);
      assert.equal(isCoinbase(tx), t.isCoinbase());
      assert.equal(tx.witnesses !== null, t.hasWitnesses());
      assert.deepEqual(serializeTransaction(tx), raw);
      tx.inputs.forEach((input, i) => {
        assert.deepEqual(input.prevTxid, t.ins[i].hash);
        assert.equal(input.prevVout, t.ins[i].index);
        assert.deepEqual(input.scriptSig, t.ins[i].script);
        assert.equal(input.sequence, t.ins[i].sequence);
        assert.deepEqual(tx.witnesses?.[i] ?? [], segwit ? t.ins[i].witness : []);
      });
      tx.outputs.forEach((out, i) => {
        assert.equal(BigInt(out.value), t.outs[i].value);
        assert.deepEqual(out.script, t.outs[i].script);
        const type = classifyScript(out.script);
        assert.equal(type, types[i], toHex(out.script));
        assert.ok(theirsRecognise(out.script, type), `bitcoinjs does not see ${type}: ${toHex(out.script)}`);
        seenTypes.add(type);
        const { ours, theirs } = PAIRS[(n + i) % PAIRS.length];
        const addr = scriptToAddress(out.script, ours);
        assert.equal(addr, theirAddress(out.script, theirs), toHex(out.script));
        if (addr !== null) {
          assert.deepEqual(addressToScript(addr, ours), out.script);
          if (type !== "p2tr") assert.deepEqual(bitcoin.address.toOutputScript(addr, theirs), out.script);
        }
        outputsChecked++;
      });
    }
  } finally {
    console.warn = warn;
  }
  assert.equal(seenTypes.size, TYPES.length);
  assert.ok(
    segwitCount > COUNT / 3 && coinbaseCount > 20,
    `${segwitCount} segwit, ${coinbaseCount} coinbase`,
  );
  assert.ok(outputsChecked > COUNT * 2);
});
