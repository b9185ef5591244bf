// The state record names the consistent cut of the database; it is written in the same LevelDB batch as the
// data it describes, so reading it back always gives a cut the flat files can be truncated to.
import { DbError } from "./errors.ts";
import { DB_VERSION } from "./layout.ts";

/** What the 'S' key holds. */
export interface DbState {
  /** On-disk format version the database was written with. */
  version: number;
  /** Network name (as in src/chain/network.ts), e.g. "mainnet", "regtest". */
  network: string;
  /** Height of the last flushed block, -1 when empty. */
  height: number;
  /** Hash of the block at `height`, internal byte order; 32 zero bytes when empty. */
  tipHash: Uint8Array;
  /** Number of transactions in blocks 0..height. */
  txCount: number;
  /** Number of completed flushes (and backups). */
  flushCount: number;
  /** Wall-clock seconds spent syncing, summed over runs. */
  syncTime: number;
  /** True until the initial sync has reached the daemon's tip once. */
  firstSync: boolean;
}

/** The state of a database that has no blocks yet. */
export function emptyState(network: string): DbState {
  return {
    version: DB_VERSION,
    network,
    height: -1,
    tipHash: new Uint8Array(32),
    txCount: 0,
    flushCount: 0,
    syncTime: 0,
    firstSync: true,
  };
}

// u16 version | u8 len + network | i32 height | 32 tip | f64 txCount | f64 flushCount | f64 syncTime | u8 flags
// The version comes first so that a newer layout is recognised before anything else is interpreted.

/** Serializes a state record. */
export function encodeState(s: DbState): Uint8Array {
  const name = new TextEncoder().encode(s.network);
  const out = new Uint8Array(2 + 1 + name.length + 4 + 32 + 8 * 3 + 1);
  const v = new DataView(out.buffer);
  let o = 0;
  v.setUint16(o, s.version, true);
  o += 2;
  out[o++] = name.length;
  out.set(name, o);
  o += name.length;
  v.setInt32(o, s.height, true);
  o += 4;
  out.set(s.tipHash, o);
  o += 32;
  v.setFloat64(o, s.txCount, true);
  o += 8;
  v.setFloat64(o, s.flushCount, true);
  o += 8;
  v.setFloat64(o, s.syncTime, true);
  o += 8;
  out[o] = s.firstSync ? 1 : 0;
  return out;
}

/** Reads only the format version of a state record (-1 if unreadable). */
export function stateVersion(buf: Uint8Array): number {
  return buf.length >= 2 ? buf[0] | (buf[1] << 8) : -1;
}

/** Parses a state record of the current version; throws DbError "corrupt" when it is malformed. */
export function decodeState(buf: Uint8Array): DbState {
  const bad = () =>
    new DbError("corrupt", "the database state record is malformed; delete the database and resync");
  if (buf.length < 3) throw bad();
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  const version = v.getUint16(o, true);
  o += 2;
  const nameLen = buf[o++];
  if (buf.length !== 2 + 1 + nameLen + 4 + 32 + 8 * 3 + 1) throw bad();
  const network = new TextDecoder().decode(buf.subarray(o, o + nameLen));
  o += nameLen;
  const height = v.getInt32(o, true);
  o += 4;
  // Copy into a plain Uint8Array: LevelDB hands out Buffers, whose slice() is a view.
  const tipHash = new Uint8Array(32);
  tipHash.set(buf.subarray(o, o + 32));
  o += 32;
  const txCount = v.getFloat64(o, true);
  o += 8;
  const flushCount = v.getFloat64(o, true);
  o += 8;
  const syncTime = v.getFloat64(o, true);
  o += 8;
  const firstSync = buf[o] === 1;
  if (height < -1 || !Number.isSafeInteger(txCount) || txCount < 0 || !Number.isSafeInteger(flushCount)) {
    throw bad();
  }
  return { version, network, height, tipHash, txCount, flushCount, syncTime, firstSync };
}
