// Script hash statuses (protocol.md §4.3): the sha256 of "txid:height:" over the confirmed history in chain
// order, then the mempool transactions in the 1.6 canonical order (height 0 before -1, then by display-order
// txid). Wallets compare this digest with their own to decide whether to fetch the history again, so it has
// to be byte-exact with ElectrumX's.
import { sha256 } from "../chain/hash.ts";
import { reversedHashesHex, toHex } from "../chain/hex.ts";
import { BAD_REQUEST, RpcError } from "./types.ts";

/** A confirmed history entry (the store's HistoryItem fits). */
export interface ConfirmedItem {
  /** Internal byte order. */
  readonly txHash: Uint8Array;
  readonly height: number;
}

/** A mempool history entry (the mempool's MempoolTxInfo fits). */
export interface MempoolItem {
  /** Internal byte order. */
  readonly txid: Uint8Array;
  /** Display-order hex of txid. */
  readonly txidHex: string;
  readonly fee: number;
  readonly hasUnconfirmedParent: boolean;
}

/** The reads a status needs from the database. */
export interface StatusStore {
  readonly state: { readonly height: number };
  history(
    hashX: Uint8Array,
    opts?: { fromHeight?: number; toHeight?: number; limit?: number },
  ): Promise<ConfirmedItem[]>;
}

/** The reads a status needs from the mempool. */
export interface StatusMempool {
  history(hashX: Uint8Array): MempoolItem[];
  /** True while the mempool lacks what a backup undid (see Mempool.behindBackup). */
  behindBackup?(): boolean;
}

/** A computed status and what it was made of. */
export interface AddressStatus {
  /** Lowercase hex sha256, or null for a script hash with no history. */
  status: string | null;
  /** Whether mempool transactions went into it (then a new block can change it without touching it). */
  hasMempool: boolean;
  /** Number of history entries hashed (for cost accounting). */
  items: number;
  /** Length of the hashed string (for cost accounting). */
  length: number;
}

/**
 * How many of the newest blocks withoutConfirmed looks at. A mempool list is only out of date with the database
 * between a flush and the next mempool refresh, i.e. by a block or two.
 */
export const RECENT_BLOCKS = 10;

/** The history cap for a MAX_SEND: (MAX_SEND − 100) // 99 entries of ~99 bytes of JSON each (ElectrumX's). */
export function historyLimit(maxSend: number): number {
  return Math.max(1, Math.floor((maxSend - 100) / 99));
}

/** The error for a script hash whose history is over the cap. */
export function historyTooLarge(): RpcError {
  return new RpcError(BAD_REQUEST, "history too large");
}

/** Compares two mempool entries in the 1.6 canonical order: height 0 before -1, then display-order txid. */
export function compareMempool(a: MempoolItem, b: MempoolItem): number {
  if (a.hasUnconfirmedParent !== b.hasUnconfirmedParent) return a.hasUnconfirmedParent ? 1 : -1;
  return a.txidHex < b.txidHex ? -1 : a.txidHex > b.txidHex ? 1 : 0;
}

/** Returns the entries in canonical order (a copy only when they were not in order already). */
export function sortedMempool<T extends MempoolItem>(items: T[]): T[] {
  for (let i = 1; i < items.length; i++) {
    if (compareMempool(items[i - 1], items[i]) > 0) return [...items].sort(compareMempool);
  }
  return items;
}

/**
 * Drops mempool entries that the confirmed history already holds: between a flush and the next mempool
 * refresh a just-confirmed transaction is in both, and must be counted once.
 */
export function withoutConfirmed<T extends MempoolItem>(
  mempool: T[],
  confirmed: readonly ConfirmedItem[],
  tipHeight: number,
): T[] {
  if (mempool.length === 0 || confirmed.length === 0) return mempool;
  const recent: Uint8Array[] = [];
  for (let i = confirmed.length - 1; i >= 0 && confirmed[i].height > tipHeight - RECENT_BLOCKS; i--) {
    recent.push(confirmed[i].txHash);
  }
  if (recent.length === 0) return mempool;
  const out = mempool.filter((m) => !recent.some((c) => equal32(c, m.txid)));
  return out.length === mempool.length ? mempool : out;
}

function equal32(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The string §4.3 hashes: "txid:height:" for each confirmed entry, then each mempool entry (0 or -1). */
export function statusString(confirmed: readonly ConfirmedItem[], mempool: readonly MempoolItem[]): string {
  const n = confirmed.length;
  const packed = new Uint8Array(n * 32);
  for (let i = 0; i < n; i++) packed.set(confirmed[i].txHash, i * 32);
  const hex = reversedHashesHex(packed, n);
  const parts: string[] = new Array(n + mempool.length);
  for (let i = 0; i < n; i++) parts[i] = `${hex.slice(i * 64, i * 64 + 64)}:${confirmed[i].height}:`;
  let i = n;
  for (const m of mempool) parts[i++] = `${m.txidHex}:${m.hasUnconfirmedParent ? -1 : 0}:`;
  return parts.join("");
}

/** The status of a history: hex sha256 of statusString, or null when there is nothing. */
export function statusOf(
  confirmed: readonly ConfirmedItem[],
  mempool: readonly MempoolItem[],
): string | null {
  if (confirmed.length === 0 && mempool.length === 0) return null;
  return digest(statusString(confirmed, mempool));
}

const ENCODER = new TextEncoder();

function digest(text: string): string {
  return toHex(sha256(ENCODER.encode(text)));
}

/**
 * Computes the current status of a hashX from the database and the mempool. Throws RpcError 1 "history too
 * large" when the history has more than `limit` entries.
 */
export async function addressStatus(
  store: StatusStore,
  mempool: StatusMempool,
  hashX: Uint8Array,
  limit: number,
): Promise<AddressStatus> {
  const confirmed = await store.history(hashX, { limit: limit + 1 });
  // Read synchronously right after the await: the mempool cannot change in between.
  const pool = withoutConfirmed(sortedMempool(mempool.history(hashX)), confirmed, store.state.height);
  const items = confirmed.length + pool.length;
  if (items > limit) throw historyTooLarge();
  if (items === 0) return { status: null, hasMempool: false, items: 0, length: 0 };
  const text = statusString(confirmed, pool);
  return {
    status: digest(text),
    hasMempool: pool.length > 0,
    items,
    length: text.length,
  };
}
