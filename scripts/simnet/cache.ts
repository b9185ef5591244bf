// The generated chain cached in one file per (seed, blocks, txs), so later starts skip generation:
// read the file, split it into blocks, re-hash the 80-byte headers, and take txids from the file.
//
// Layout (little-endian): magic "SIMCHAIN" | u32 format | u32 blocks (count, genesis included) |
// u32 total txs | u32 seed length | seed (UTF-8) | u32 opt.blocks | f64 opt.txs |
// per block: u32 raw length, u32 tx count | raws back to back | txids (32 bytes each, chain order).
import { sha256d } from "../../src/chain/hash.ts";
import { merkleRoot } from "../../src/chain/merkle.ts";
import { NETWORKS } from "../../src/chain/network.ts";

/** Bumped whenever the generator's output or this layout changes, so stale caches are never used. */
export const CACHE_FORMAT_VERSION = 2;
const MAGIC = new TextEncoder().encode("SIMCHAIN");

/** What identifies a cached chain. */
export interface CacheKey {
  seed: string;
  blocks: number;
  txs: number;
}

/** A chain as the node keeps it: per block its raw bytes, hash and packed txids. */
export interface ChainData {
  raws: Uint8Array[];
  hashes: Uint8Array[];
  txids: Uint8Array[];
}

/** File name for a chain: seed (made filename-safe), blocks, txs and the format version. */
export function cacheFileName(key: CacheKey): string {
  const safe = encodeURIComponent(key.seed).replace(/[%*'()!~]/g, "_");
  return `chain-${safe}-${key.blocks}-${key.txs}-v${CACHE_FORMAT_VERSION}.bin`;
}

function header(key: CacheKey, blockCount: number, txCount: number): Uint8Array {
  const seed = new TextEncoder().encode(key.seed);
  const out = new Uint8Array(8 + 4 * 4 + seed.length + 4 + 8);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  v.setUint32(8, CACHE_FORMAT_VERSION, true);
  v.setUint32(12, blockCount, true);
  v.setUint32(16, txCount, true);
  v.setUint32(20, seed.length, true);
  out.set(seed, 24);
  v.setUint32(24 + seed.length, key.blocks, true);
  v.setFloat64(28 + seed.length, key.txs, true);
  return out;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** Writes the chain to `path` atomically: a temp file in the same directory, fsynced, then renamed. */
export async function writeChainCache(path: string, key: CacheKey, chain: ChainData): Promise<void> {
  const n = chain.raws.length;
  let txCount = 0;
  for (const t of chain.txids) txCount += t.length / 32;
  const index = new Uint8Array(8 * n);
  const iv = new DataView(index.buffer);
  for (let i = 0; i < n; i++) {
    iv.setUint32(8 * i, chain.raws[i].length, true);
    iv.setUint32(8 * i + 4, chain.txids[i].length / 32, true);
  }
  const tmp = `${path}.tmp-${Deno.pid}-${Date.now()}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, header(key, n, txCount));
    await writeAll(file, index);
    // Many small blocks are batched into one write; big ones go straight through.
    const batch = new Uint8Array(1 << 20);
    let fill = 0;
    const put = async (bytes: Uint8Array) => {
      if (fill + bytes.length > batch.length) {
        await writeAll(file, batch.subarray(0, fill));
        fill = 0;
      }
      if (bytes.length > batch.length) await writeAll(file, bytes);
      else {
        batch.set(bytes, fill);
        fill += bytes.length;
      }
    };
    for (const r of chain.raws) await put(r);
    for (const t of chain.txids) await put(t);
    await writeAll(file, batch.subarray(0, fill));
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Loads a cached chain, or returns null when the file is missing or is not a consistent cache for `key`
 * (wrong version/options, truncated, broken prev links, txids that do not match a merkle root).
 */
export async function readChainCache(path: string, key: CacheKey): Promise<ChainData | null> {
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return parseChainCache(data, key);
}

/** Splits and verifies the bytes of a cache file (see readChainCache). */
export function parseChainCache(data: Uint8Array, key: CacheKey): ChainData | null {
  const expectHeader = header(key, 0, 0);
  if (data.length < expectHeader.length) return null;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const blockCount = v.getUint32(12, true);
  const txCount = v.getUint32(16, true);
  // Everything but the two counts must match what this key would write.
  const got = data.slice(0, expectHeader.length);
  got.fill(0, 12, 20);
  if (!equal(got, expectHeader)) return null;
  let pos = expectHeader.length;
  if (blockCount < 1 || pos + 8 * blockCount > data.length) return null;
  const lengths = new Uint32Array(blockCount);
  const counts = new Uint32Array(blockCount);
  let rawTotal = 0, txTotal = 0;
  for (let i = 0; i < blockCount; i++) {
    lengths[i] = v.getUint32(pos + 8 * i, true);
    counts[i] = v.getUint32(pos + 8 * i + 4, true);
    rawTotal += lengths[i];
    txTotal += counts[i];
  }
  pos += 8 * blockCount;
  if (txTotal !== txCount || pos + rawTotal + 32 * txTotal !== data.length) return null;
  const raws: Uint8Array[] = new Array(blockCount);
  const hashes: Uint8Array[] = new Array(blockCount);
  const txids: Uint8Array[] = new Array(blockCount);
  let txPos = pos + rawTotal;
  for (let i = 0; i < blockCount; i++) {
    const raw = data.subarray(pos, pos + lengths[i]);
    pos += lengths[i];
    if (raw.length < 81) return null;
    const hash = sha256d(raw.subarray(0, 80));
    const prev = raw.subarray(4, 36);
    if (i === 0 ? !equal(hash, NETWORKS.regtest.genesisHash) : !equal(prev, hashes[i - 1])) return null;
    raws[i] = raw;
    hashes[i] = hash;
    txids[i] = data.subarray(txPos, txPos + 32 * counts[i]);
    txPos += 32 * counts[i];
  }
  // Spot-check the txid table against merkle roots: the tip and a spread of other blocks.
  for (const i of [blockCount - 1, Math.floor(blockCount / 2), Math.floor(blockCount / 3), 1]) {
    if (i < 0 || i >= blockCount) continue;
    const leaves: Uint8Array[] = [];
    for (let k = 0; k < counts[i]; k++) leaves.push(txids[i].subarray(32 * k, 32 * k + 32));
    if (!equal(merkleRoot(leaves), raws[i].subarray(36, 68))) return null;
  }
  return { raws, hashes, txids };
}
