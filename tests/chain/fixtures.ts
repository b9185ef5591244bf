// Loads the real blocks and transactions in tests/testdata (bitcoind's own JSON output, as published with
// ElectrumX's test suite; copied into the repository so that a clean clone tests without ../shared).
import { fromHex } from "../../src/chain/hex.ts";

const ROOT = new URL("../testdata", import.meta.url).pathname;

/** A transaction as bitcoind's verbose getrawtransaction reports it (the fields the tests use). */
export interface TxFixture {
  txid: string;
  hash: string;
  version: number;
  size: number;
  vsize: number;
  weight: number;
  locktime: number;
  hex: string;
  vin: {
    txid: string;
    vout: number;
    scriptSig: { asm: string; hex: string };
    txinwitness?: string[];
    sequence: number;
  }[];
  vout: {
    value: number;
    n: number;
    scriptPubKey: { asm: string; hex: string; address?: string; type: string };
  }[];
}

/** A block as bitcoind's getblock verbosity 1 reports it, plus `block`, the raw hex. */
export interface BlockFixture {
  hash: string;
  height: number;
  merkleroot: string;
  tx: string[];
  time: number;
  nonce: number;
  bits: string;
  previousblockhash: string;
  size?: number;
  strippedsize?: number;
  weight?: number;
  version?: number;
  block: string;
}

/** Every transaction fixture, by file name. */
export function txFixtures(): Map<string, TxFixture> {
  const out = new Map<string, TxFixture>();
  for (
    const e of [...Deno.readDirSync(`${ROOT}/transactions`)].sort((a, b) => a.name.localeCompare(b.name))
  ) {
    if (e.name.endsWith(".json")) {
      out.set(e.name, JSON.parse(Deno.readTextFileSync(`${ROOT}/transactions/${e.name}`)));
    }
  }
  return out;
}

/** One block fixture by base name, e.g. "bitcoin_mainnet_951658". */
export function blockFixture(name: string): BlockFixture & { raw: Uint8Array } {
  const j = JSON.parse(Deno.readTextFileSync(`${ROOT}/blocks/${name}.json`)) as BlockFixture;
  return { ...j, raw: fromHex(j.block) };
}

/** Deterministic PRNG (mulberry32) so generated and fuzzed cases repeat exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
