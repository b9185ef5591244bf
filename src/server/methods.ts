// Every Electrum protocol method except server.version and server.ping (the session owns those), for
// protocol versions 1.4 to 1.6, answered from the database, the mempool and bitcoind. Argument checks, error
// codes and messages follow ElectrumX (protocol.md §5/§6) so that wallets see what they are used to.
//
// Consistency: each answer reads the database in one gated read (a flush cannot land in the middle of it)
// and the mempool synchronously right after, so it reflects one moment. A flush takes the transactions it
// confirms out of the mempool in the same step (Mempool.confirmed, wired in main.ts); history, statuses and
// listunspent also count a transaction found in both once (confirmed), for a mempool not wired that way.
// After a reorg, the transactions of the blocks taken back are in neither until the next mempool refresh: the
// script-hash methods wait for it (Mempool.settled).
import { fromHex, isHex, reversedHashesHex, toHex, toHexReversed } from "../chain/hex.ts";
import type { Network } from "../chain/network.ts";
import { decodeTransaction } from "../chain/tx.ts";
import type { Config, Service } from "../config.ts";
import { DaemonError, formatCoreVersion } from "../daemon/daemon.ts";
import { HashXCache } from "../db/read_cache.ts";
import type { HistoryRows, Store, UtxoRows } from "../db/store.ts";
import type { Log } from "../log.ts";
import { serverVersionString, VERSION } from "../version.ts";
import { PROTOCOL_MAX, PROTOCOL_MIN } from "./rpc.ts";
import { historyEntries } from "./history_json.ts";
import { HeaderProofs, type MerkleProof, TxMerkleCache } from "./proofs.ts";
import {
  type AddressStatus,
  addressStatus,
  historyLimit,
  historyTooLarge,
  type MempoolItem,
  RECENT_BLOCKS,
  sortedMempool,
  withoutConfirmed,
} from "./status.ts";
import type { PendingSubscribe, SubscriptionIndex } from "./subscriptions.ts";
import {
  BAD_REQUEST,
  ByteJson,
  DAEMON_ERROR,
  jsonBytes,
  type JsonWriter,
  type MethodSpec,
  type MethodTable,
  RawJson,
  RpcError,
  type SessionContext,
  versionAtLeast,
} from "./types.ts";

/** The database reads the methods use (the Store provides them). */
export type MethodStore = Pick<
  Store,
  | "state"
  | "headers"
  | "followCache"
  | "headerAt"
  | "blockHashAt"
  | "blockTxids"
  | "txNumsOfBlock"
  | "txidRange"
  | "findTx"
  | "history"
  | "historyRows"
  | "cachedHistory"
  | "utxoRows"
  | "cachedUtxos"
  | "balance"
>;

/** The mempool reads the methods use (src/mempool's Mempool provides them). */
export interface MethodMempool {
  history(hashX: Uint8Array): MempoolItem[];
  balanceDelta(hashX: Uint8Array): number;
  utxos(hashX: Uint8Array): { txHash: Uint8Array; vout: number; value: number }[];
  isSpent(txid: Uint8Array, vout: number): boolean;
  feeHistogram(): [number, number][];
  rawTx(txid: Uint8Array): Uint8Array | undefined;
  /** After a reorg, resolves once the mempool matches the database again; undefined when it does. */
  settled?(): Promise<void> | undefined;
  /** Counts reorgs (see Mempool.backupCount). */
  backupCount?(): number;
}

/** The bitcoind calls the methods make (src/daemon's Daemon provides them). */
export interface MethodDaemon {
  call<T>(method: string, params?: unknown[]): Promise<T>;
}

/** What createMethods needs. */
export interface MethodsDeps {
  store: MethodStore;
  mempool: MethodMempool;
  daemon: MethodDaemon;
  config: Pick<Config, "maxSend" | "bannerFile" | "donationAddress" | "services" | "reportServices">;
  network: Pick<Network, "genesisHash">;
  log: Pick<Log, "info" | "warn" | "error">;
  subscriptions: SubscriptionIndex;
  /** The addresses actually listened on (port 0 resolved), reported by server.features when REPORT_SERVICES
   * is empty; defaults to config.services. */
  listening?: () => readonly Pick<Service, "protocol" | "host" | "port">[];
  /** Milliseconds clock for the 60 s caches (tests replace it). */
  now?: () => number;
  /**
   * The tip last announced to header subscribers (Notifier.tip), which headers.subscribe answers with so that
   * no notification a session gets afterwards is older than its reply; the database's tip when undefined.
   */
  announcedTip?: () => { readonly height: number; readonly hex: string } | undefined;
  /** Peer discovery (src/server/peers.ts); without it no peers are listed and add_peer answers false. */
  peers?: MethodPeers;
  /** A history whose JSON takes at least this many bytes goes out as bytes (ByteJson); default 16 KB. */
  byteReplyMin?: number;
}

/** What server.peers.subscribe and server.add_peer ask of peer discovery (PeerManager provides it). */
export interface MethodPeers {
  subscribeList(): unknown[];
  addPeer(remoteIp: string, features: unknown): Promise<boolean>;
}

/** The IP address part of a session's "ip:port" (IPv6 in brackets). */
export function remoteIp(remoteAddress: string): string {
  if (remoteAddress.startsWith("[")) return remoteAddress.slice(1, remoteAddress.indexOf("]"));
  const colon = remoteAddress.lastIndexOf(":");
  return colon < 0 ? remoteAddress : remoteAddress.slice(0, colon);
}

/** server.features for this configuration: REPORT_SERVICES, else the addresses listened on. */
export function serverFeatures(
  config: Pick<Config, "reportServices">,
  genesisHex: string,
  listening: readonly Pick<Service, "protocol" | "host" | "port">[],
): Record<string, unknown> {
  const reported = config.reportServices.length > 0 ? config.reportServices : listening;
  const { hosts, services } = advertised(reported);
  return {
    hosts,
    pruning: null,
    server_version: serverVersionString(),
    protocol_min: PROTOCOL_MIN,
    protocol_max: PROTOCOL_MAX,
    genesis_hash: genesisHex,
    hash_function: "sha256",
    services,
    // Coulomb's extension: get_history takes Fulcrum's optional from_height (inclusive) and to_height
    // (exclusive, -1 = to the tip plus the mempool).
    history_paging: true,
  };
}

const NO_ROWS: HistoryRows = {
  count: 0,
  txNums: new Float64Array(0),
  heights: new Int32Array(0),
  txids: new Uint8Array(0),
};

function sumValues(rows: UtxoRows): number {
  let sum = 0;
  for (let i = 0; i < rows.count; i++) sum += rows.values[i];
  return sum;
}

// The confirmed entries of the last blocks, the only ones a mempool list can still hold (see withoutConfirmed).
function recentItems(rows: HistoryRows, tip: number): { txHash: Uint8Array; height: number }[] {
  const out: { txHash: Uint8Array; height: number }[] = [];
  let i = rows.count - 1;
  while (i >= 0 && rows.heights[i] > tip - RECENT_BLOCKS) i--;
  for (i++; i < rows.count; i++) {
    out.push({ txHash: rows.txids.subarray(i * 32, i * 32 + 32), height: rows.heights[i] });
  }
  return out;
}

const HISTORY_JSON_CACHE_BYTES = 32 << 20;
/**
 * A history's JSON from this size on stays in bytes to the socket (ByteJson); smaller ones become text, which
 * the session joins with other replies into one write and the socket side encodes once.
 */
const BYTE_REPLY_MIN = 16 << 10;
const ASCII = new TextDecoder();

/** ElectrumX's MAX_CHUNK_SIZE: the most headers one blockchain.block.headers call returns. */
export const MAX_CHUNK_SIZE = 2016;
/** How long getnetworkinfo and getmempoolinfo answers are reused (ElectrumX: 60 s). */
const DAEMON_INFO_TTL_MS = 60_000;
const HASHX_LEN = 11;
const V1_6 = [1, 6];

// ---- argument checks (ElectrumX's messages) ----------------------------------------------------------------

/** Renders a JSON value the way ElectrumX's messages (Python f-strings) show it. */
export function pyStr(v: unknown): string {
  return typeof v === "string" ? v : pyValueRepr(v);
}

// Python's repr() of a value json.loads made: lists and dicts as Python prints them, e.g. ['x', 1, None].
function pyValueRepr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return pyRepr(v);
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return `[${v.map(pyValueRepr).join(", ")}]`;
  if (typeof v === "object") {
    const items = Object.entries(v as Record<string, unknown>).map(([k, x]) =>
      `${pyRepr(k)}: ${pyValueRepr(x)}`
    );
    return `{${items.join(", ")}}`;
  }
  return String(v);
}

/** Python's repr() of a string: single quotes unless it holds one and no double quote. */
export function pyRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

function commas(n: number): string {
  return n.toLocaleString("en-US");
}

/** ElectrumX's non_negative_integer: ints, integral strings and (truncated) floats that are >= 0. */
export function nonNegativeInteger(v: unknown): number {
  let n: number | undefined;
  if (typeof v === "number" && Number.isFinite(v)) n = Math.trunc(v);
  else if (typeof v === "string" && /^\s*[+-]?\d+\s*$/.test(v)) n = Number(v.trim());
  // Beyond 2^53 too (Python's ints have no limit): such a height is out of range, not a malformed argument.
  // `+ 0` turns "-0" (Python's int("-0") is 0) into 0, so that error texts do not show "-0".
  if (n !== undefined && n >= 0 && Number.isFinite(n)) return n + 0;
  // Python formats the converted value when conversion worked, e.g. "-5 should be ...".
  const shown = n !== undefined ? String(n === 0 ? 0 : n) : pyStr(v);
  throw new RpcError(BAD_REQUEST, `${shown} should be a non-negative integer`);
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX_DIGIT = new Uint8Array(128);
for (let i = 0; i < 16; i++) {
  HEX_DIGIT["0123456789abcdef".charCodeAt(i)] = i;
  HEX_DIGIT["0123456789ABCDEF".charCodeAt(i)] = i;
}

// The first `len` bytes, in internal order, of a 64-digit display-order hash (whose last digits hold them).
function internalBytes(v: string, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    const at = 62 - 2 * i;
    out[i] = (HEX_DIGIT[v.charCodeAt(at)] << 4) | HEX_DIGIT[v.charCodeAt(at + 1)];
  }
  return out;
}

function hash32(v: unknown): Uint8Array | undefined {
  if (typeof v !== "string" || !HEX64.test(v)) return undefined;
  return internalBytes(v, 32);
}

/** The hashX of a client's script hash (64 hex digits, display order); RpcError 1 otherwise. */
export function scriptHashToHashX(v: unknown): Uint8Array {
  // Every request about a script hash starts here: only the 11 bytes a hashX keeps are decoded.
  if (typeof v !== "string" || !HEX64.test(v)) {
    throw new RpcError(BAD_REQUEST, `${pyStr(v)} is not a valid script hash`);
  }
  return internalBytes(v, HASHX_LEN);
}

/** A txid in internal order from 64 hex digits (display order); RpcError 1 otherwise. */
export function txHashArg(v: unknown): Uint8Array {
  const h = hash32(v);
  if (!h) throw new RpcError(BAD_REQUEST, `${pyStr(v)} should be a transaction hash`);
  return h;
}

// Python's `value in (True, False)` also admits 0 and 1, which some clients send.
function booleanArg(v: unknown, name: string): boolean {
  if (v === undefined || v === false || v === 0) return false;
  if (v === true || v === 1) return true;
  throw new RpcError(BAD_REQUEST, `"${name}" must be a boolean`);
}

/** ElectrumX's block-target bucketing for estimatefee (keeps the cache small; Core's own buckets). */
export function bucketEstimateFeeTarget(n: number): number {
  if (n <= 1) return 1;
  if (n <= 12) return n;
  if (n === 25) return n;
  if (n <= 48) return n - (n % 2);
  if (n <= 1008) return n - (n % 24);
  return 1008;
}

/** "daemon error: DaemonError({'code': -5, 'message': '…'})", the text ElectrumX and Fulcrum send. */
export function daemonErrorText(err: DaemonError): string {
  return `daemon error: DaemonError({'code': ${err.code}, 'message': ${pyRepr(err.message)}})`;
}

function daemonError(err: unknown): unknown {
  return err instanceof DaemonError ? new RpcError(DAEMON_ERROR, daemonErrorText(err)) : err;
}

function serviceUrl(s: Pick<Service, "protocol" | "host" | "port">): string {
  const host = s.host.includes(":") ? `[${s.host}]` : s.host;
  return `${s.protocol}://${host}:${s.port}`;
}

/** server.features' `hosts` and `services` for these advertised endpoints. */
export function advertised(services: readonly Pick<Service, "protocol" | "host" | "port">[]): {
  hosts: Record<string, Record<string, number | null>>;
  services: string[];
} {
  const hosts: Record<string, Record<string, number | null>> = {};
  const urls: string[] = [];
  for (const s of services) {
    if (s.protocol === "rpc") continue;
    const ports = hosts[s.host] ??= { tcp_port: null, ssl_port: null };
    const key = `${s.protocol}_port`;
    if (ports[key] == null) ports[key] = s.port;
    urls.push(serviceUrl(s));
  }
  return { hosts, services: urls };
}

/** A value fetched from bitcoind at most once per TTL; concurrent askers share one request. */
class TimedCache<T> {
  private value: T | undefined;
  private at = -Infinity;
  private pending: Promise<T> | undefined;

  constructor(
    private readonly fetch: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  get(): Promise<T> {
    if (this.value !== undefined && this.now() - this.at < this.ttlMs) return Promise.resolve(this.value);
    this.pending ??= this.fetch().then((v) => {
      this.value = v;
      this.at = this.now();
      return v;
    }).finally(() => this.pending = undefined);
    return this.pending;
  }
}

interface NetworkInfo {
  version?: number;
  subversion?: string;
  relayfee?: number;
}

interface MempoolInfo {
  mempoolminfee?: number;
  minrelaytxfee?: number;
  incrementalrelayfee?: number;
}

function method(
  params: string[],
  cost: number,
  handler: MethodSpec["handler"],
  versions: { minVersion?: string; maxVersion?: string } = {},
): MethodSpec {
  return { params, cost, handler, ...versions };
}

/** Builds the method table; one per server, shared by every session. */
export function createMethods(deps: MethodsDeps): MethodTable {
  const { store, mempool, daemon, config, log, subscriptions } = deps;
  const now = deps.now ?? Date.now;
  const limit = historyLimit(config.maxSend);
  const byteReplyMin = deps.byteReplyMin ?? BYTE_REPLY_MIN;
  const headerProofs = new HeaderProofs(store);
  const txMerkle = new TxMerkleCache();
  // get_history's confirmed entries as JSON (text, or bytes from byteReplyMin on), for whole histories the store
  // has cached.
  const historyJson = new HashXCache<string | Uint8Array>(HISTORY_JSON_CACHE_BYTES, 1 << 17);
  store.followCache(historyJson);
  const genesisHex = toHexReversed(deps.network.genesisHash);
  const networkInfo = new TimedCache(
    () => daemon.call<NetworkInfo>("getnetworkinfo").catch((e) => Promise.reject(daemonError(e))),
    DAEMON_INFO_TTL_MS,
    now,
  );
  const mempoolInfo = new TimedCache(
    () => daemon.call<MempoolInfo>("getmempoolinfo").catch((e) => Promise.reject(daemonError(e))),
    DAEMON_INFO_TTL_MS,
    now,
  );
  // estimatefee answers per (bucketed target, mode), valid while the tip is unchanged; a new block therefore
  // invalidates them before any notification about it can be acted upon.
  const feeCache = new Map<string, { tip: Uint8Array; value: Promise<number> }>();

  function headerOr(height: number): Uint8Array {
    const h = store.headerAt(height);
    if (!h) throw new RpcError(BAD_REQUEST, `height ${commas(height)} out of range`);
    return h;
  }

  function checkpointProof(height: number, cpHeight: number): { branch: string[]; root: string } {
    const tip = store.state.height;
    if (!(height <= cpHeight && cpHeight <= tip)) {
      throw new RpcError(
        BAD_REQUEST,
        `require header height ${commas(height)} <= cp_height ${commas(cpHeight)} <= chain height ${
          commas(tip)
        }`,
      );
    }
    const p = headerProofs.proof(height, cpHeight);
    return { branch: p.branch.map(toHexReversed), root: toHexReversed(p.root) };
  }

  function blockProof(height: number, pos: number): MerkleProof {
    const blockHash = store.blockHashAt(height)!;
    return txMerkle.proof(blockHash, store.blockTxids(height), pos);
  }

  function merkleCost(txCount: number): number {
    return 0.25 + txCount * 0.0001 + txCount / 2500;
  }

  // The status of a hashX: the subscription index's cached one, else computed. `fresh` says no invalidation
  // arrived while computing, i.e. it reflects every change signalled so far and may be cached.
  async function currentStatus(
    ctx: SessionContext,
    hashX: Uint8Array,
  ): Promise<{ status: string | null; hasMempool: boolean; fresh: boolean }> {
    const entry = subscriptions.entry(hashX);
    if (entry && entry.status !== undefined) {
      ctx.addCost(0.1);
      return { status: entry.status, hasMempool: entry.hasMempool, fresh: false };
    }
    const epoch = subscriptions.epoch;
    const r: AddressStatus = await addressStatus(store, mempool, hashX, limit);
    ctx.addCost(0.2 + r.items * 0.001 + r.length * 0.00002);
    return { status: r.status, hasMempool: r.hasMempool, fresh: subscriptions.epoch === epoch };
  }

  function mempoolJson(items: MempoolItem[]): { tx_hash: string; height: number; fee: number }[] {
    return items.map((m) => ({ tx_hash: m.txidHex, height: m.hasUnconfirmedParent ? -1 : 0, fee: m.fee }));
  }

  async function estimateFee(ctx: SessionContext, target: number, mode: string | undefined): Promise<number> {
    const key = `${target}:${mode ?? ""}`;
    const tip = store.state.tipHash;
    const hit = feeCache.get(key);
    if (hit && sameBytes(hit.tip, tip)) return await hit.value;
    ctx.addCost(2);
    const params: unknown[] = mode ? [target, mode] : [target];
    const value = daemon.call<{ feerate?: number }>("estimatesmartfee", params).then(
      (r) => typeof r?.feerate === "number" ? r.feerate : -1,
      (e) => Promise.reject(daemonError(e)),
    );
    feeCache.set(key, { tip, value });
    value.catch(() => {
      if (feeCache.get(key)?.value === value) feeCache.delete(key);
    });
    return await value;
  }

  async function banner(): Promise<string> {
    const fallback = `You are connected to a ${serverVersionString()} server.`;
    if (!config.bannerFile) return fallback;
    let text: string;
    try {
      text = await Deno.readTextFile(config.bannerFile);
    } catch (err) {
      log.error(`reading banner file ${config.bannerFile}: ${(err as Error).message}`);
      return fallback;
    }
    let daemonVersion = "", daemonSubversion = "";
    if (text.includes("$DAEMON_")) {
      try {
        const info = await networkInfo.get();
        daemonVersion = formatCoreVersion(info.version);
        daemonSubversion = String(info.subversion ?? "");
      } catch (err) {
        log.warn(`banner: cannot ask bitcoind for its version: ${(err as Error).message}`);
      }
    }
    return text
      .replaceAll("$SERVER_VERSION", VERSION)
      .replaceAll("$SERVER_SUBVERSION", serverVersionString())
      .replaceAll("$DAEMON_VERSION", daemonVersion)
      .replaceAll("$DAEMON_SUBVERSION", daemonSubversion)
      .replaceAll("$DONATION_ADDRESS", config.donationAddress);
  }

  function features(): Record<string, unknown> {
    return serverFeatures(config, genesisHex, deps.listening?.() ?? config.services);
  }

  async function getTransaction(txid: Uint8Array, verbose: boolean): Promise<unknown> {
    if (!verbose) {
      const raw = mempool.rawTx(txid);
      if (raw) return toHex(raw);
    }
    const txidHex = toHexReversed(txid);
    // Confirmed transactions are asked for with the block Coulomb knows, so bitcoind needs no -txindex. A
    // reorg between the lookup and the call shows as -5; look again once.
    for (let attempt = 0;; attempt++) {
      const loc = await store.findTx(txid);
      const blockHash = loc ? store.blockHashAt(loc.height) : undefined;
      const params: unknown[] = [txidHex, verbose];
      if (blockHash) params.push(toHexReversed(blockHash));
      try {
        const result = await daemon.call<unknown>("getrawtransaction", params);
        if (verbose && result && typeof result === "object") {
          // Only present because a block hash was passed; a -txindex node would not say it.
          delete (result as Record<string, unknown>).in_active_chain;
        }
        return result;
      } catch (err) {
        if (err instanceof DaemonError && err.code === -5 && blockHash && attempt === 0) continue;
        throw daemonError(err);
      }
    }
  }

  // get_history's reply from confirmed rows plus, with `withMempool`, the mempool's entries. Written out
  // directly: a long history would otherwise be an object per entry plus JSON.stringify.
  function historyReply(
    ctx: SessionContext,
    hashX: Uint8Array,
    rows: HistoryRows,
    withMempool: boolean,
    whole = false,
  ) {
    let pool: MempoolItem[] = [];
    if (withMempool) {
      pool = mempool.history(hashX);
      if (pool.length > 0) {
        const tip = store.state.height;
        pool = withoutConfirmed(sortedMempool(pool), recentItems(rows, tip), tip);
      }
    }
    ctx.addCost(0.1 + rows.count * 0.001 + pool.length / 50);
    if (rows.count + pool.length > limit) throw historyTooLarge();
    // The confirmed part of a whole history is kept as JSON: the same answer again is then one concatenation.
    let confirmed: string | Uint8Array | JsonWriter | undefined = whole
      ? historyJson.get(store.state, hashX)
      : undefined;
    if (confirmed === undefined) {
      const entries = historyEntries(rows.txids, rows.heights, rows.count);
      // A one-byte string or a buffer costs its length plus about 250 bytes (measured as RSS over 200,000 of
      // them).
      const cost = 256 + entries.byteLength;
      if (entries.byteLength >= byteReplyMin && !(whole && historyJson.accepts(cost))) {
        // Too big to keep: written once, into the reply.
        confirmed = entries;
      } else {
        const bytes = jsonBytes(entries);
        confirmed = bytes.length < byteReplyMin ? ASCII.decode(bytes) : bytes;
        if (whole) historyJson.set(store.state, hashX, confirmed, cost);
      }
    }
    const parts: string[] = [];
    for (const m of pool) {
      parts.push(
        `{"tx_hash":"${m.txidHex}","height":${m.hasUnconfirmedParent ? -1 : 0},"fee":${
          JSON.stringify(m.fee)
        }}`,
      );
    }
    if (typeof confirmed !== "string" && confirmed.byteLength > 0) {
      return new ByteJson(["[", confirmed, parts.length > 0 ? `,${parts.join(",")}]` : "]"]);
    }
    if (typeof confirmed === "string" && confirmed.length > 0) parts.unshift(confirmed);
    return new RawJson(`[${parts.join(",")}]`, true);
  }

  // listunspent's reply: confirmed outputs the mempool does not spend, then the mempool's own.
  function utxoReply(ctx: SessionContext, hashX: Uint8Array, rows: UtxoRows) {
    const pending = mempool.utxos(hashX);
    ctx.addCost((rows.count + pending.length) / 50);
    const hexes = reversedHashesHex(rows.txids, rows.count);
    const parts: string[] = [];
    let seen: Set<string> | undefined;
    for (let i = 0; i < rows.count; i++) {
      const vout = rows.vouts[i];
      if (mempool.isSpent(rows.txids.subarray(i * 32, i * 32 + 32), vout)) continue;
      const hex = hexes.slice(i * 64, i * 64 + 64);
      if (pending.length > 0) (seen ??= new Set()).add(`${hex}:${vout}`);
      parts.push(
        `{"tx_hash":"${hex}","tx_pos":${vout},"height":${rows.heights[i]},"value":${rows.values[i]}}`,
      );
    }
    for (const u of pending) {
      const hex = toHexReversed(u.txHash);
      if (seen?.has(`${hex}:${u.vout}`)) continue;
      parts.push(JSON.stringify({ tx_hash: hex, tx_pos: u.vout, height: 0, value: u.value }));
    }
    return new RawJson(`[${parts.join(",")}]`, true);
  }

  const m = new Map<string, MethodSpec>();

  // ---- server.* ----
  m.set("server.banner", method([], 0.5, () => banner()));
  m.set("server.donation_address", method([], 0.1, () => config.donationAddress));
  m.set("server.features", method([], 0.2, () => features()));
  m.set("server.peers.subscribe", method([], 1.0, () => deps.peers?.subscribeList() ?? []));
  // ElectrumX charges add_peer heavily: each accepted call makes us connect to somebody.
  m.set(
    "server.add_peer",
    method(
      ["features"],
      100,
      async (ctx, [features]) =>
        deps.peers ? await deps.peers.addPeer(remoteIp(ctx.remoteAddress), features) : false,
    ),
  );

  // ---- headers ----
  // With a checkpoint, the proof cache is filled first (sliced, see HeaderProofs.prepare); everything after
  // that await is synchronous, so headers and proof come from the same chain.
  async function warm(cpHeight: number): Promise<void> {
    if (cpHeight > 0 && cpHeight <= store.state.height) await headerProofs.prepare(cpHeight);
  }

  m.set(
    "blockchain.block.header",
    method(["height", "?cp_height"], 0.25, async (ctx, [h, cp]) => {
      const height = nonNegativeInteger(h);
      const cpHeight = nonNegativeInteger(cp === undefined ? 0 : cp);
      headerOr(height);
      if (cpHeight === 0) return toHex(headerOr(height));
      ctx.addCost(1);
      await warm(cpHeight);
      const hex = toHex(headerOr(height));
      return { header: hex, ...checkpointProof(height, cpHeight) };
    }),
  );
  m.set(
    "blockchain.block.headers",
    method(["start_height", "count", "?cp_height"], 0, async (ctx, [s, c, cp]) => {
      const start = nonNegativeInteger(s);
      const requested = nonNegativeInteger(c);
      const cpHeight = nonNegativeInteger(cp === undefined ? 0 : cp);
      ctx.addCost(requested / 50);
      if (requested > 0) await warm(cpHeight);
      const raw = store.headers(start, Math.min(requested, MAX_CHUNK_SIZE));
      const count = raw.length / 80;
      const result: Record<string, unknown> = versionAtLeast(ctx.protocolTuple, V1_6)
        ? { headers: Array.from({ length: count }, (_, i) => toHex(raw.subarray(i * 80, i * 80 + 80))) }
        : { hex: toHex(raw) };
      result.count = count;
      result.max = MAX_CHUNK_SIZE;
      if (count > 0 && cpHeight > 0) {
        ctx.addCost(1);
        Object.assign(result, checkpointProof(start + count - 1, cpHeight));
      }
      return result;
    }),
  );
  m.set(
    "blockchain.headers.subscribe",
    method([], 0.25, (ctx) => {
      subscriptions.subscribeHeaders(ctx);
      const announced = deps.announcedTip?.();
      if (announced !== undefined) return { hex: announced.hex, height: announced.height };
      const height = store.state.height;
      return { hex: toHex(headerOr(height)), height };
    }),
  );

  // ---- fees ----
  m.set(
    "blockchain.estimatefee",
    method(["number", "?mode"], 0.1, async (ctx, [n, modeArg]) => {
      const target = bucketEstimateFeeTarget(nonNegativeInteger(n));
      // As ElectrumX: a string is upper-cased and must name a mode; anything else means no mode.
      let mode: string | undefined;
      if (typeof modeArg === "string") {
        const upper = modeArg.toUpperCase();
        if (upper !== "CONSERVATIVE" && upper !== "ECONOMICAL") {
          throw new RpcError(BAD_REQUEST, `unknown estimatefee mode: ${upper}`);
        }
        mode = upper;
      }
      return await estimateFee(ctx, target, mode);
    }),
  );
  m.set(
    "blockchain.relayfee",
    method([], 1.0, async () => (await networkInfo.get()).relayfee, { maxVersion: "1.5.99" }),
  );
  m.set(
    "mempool.get_info",
    method([], 1.0, async () => {
      const info = await mempoolInfo.get();
      return {
        mempoolminfee: info.mempoolminfee,
        minrelaytxfee: info.minrelaytxfee,
        incrementalrelayfee: info.incrementalrelayfee,
      };
    }, { minVersion: "1.6" }),
  );
  m.set("mempool.get_fee_histogram", method([], 1.0, () => mempool.feeHistogram()));

  // ---- script hashes ----
  // Right after a reorg the transactions of the undone blocks are in neither the database nor the mempool
  // until the mempool's next refresh: answers that combine the two wait for it (see Mempool.backedUp). An
  // answer that was already waiting for the database when the reorg's write began reads the database after it
  // and the mempool before that refresh, so an answer during which a reorg happened is computed again.
  const settled = (handler: MethodSpec["handler"]): MethodSpec["handler"] => {
    const run: MethodSpec["handler"] = (ctx, args) => {
      const wait = mempool.settled?.();
      if (wait !== undefined) return wait.then(() => run(ctx, args));
      const backups = mempool.backupCount?.();
      const result = handler(ctx, args);
      if (backups === undefined || !(result instanceof Promise)) return result;
      return result.then((r) => mempool.backupCount!() === backups ? r : run(ctx, args));
    };
    return run;
  };
  m.set(
    "blockchain.scripthash.get_balance",
    method(
      ["scripthash"],
      1.0,
      settled((_ctx, [sh]) => {
        const hashX = scriptHashToHashX(sh);
        const reply = (confirmed: number) => ({ confirmed, unconfirmed: mempool.balanceDelta(hashX) });
        // A cached answer needs no await, so the reply goes out in the same turn as the request came in.
        const cached = store.cachedUtxos(hashX);
        if (cached !== undefined) return reply(sumValues(cached));
        return store.balance(hashX).then(reply);
      }),
    ),
  );
  m.set(
    "blockchain.scripthash.get_history",
    method(
      ["scripthash", "?from_height", "?to_height"],
      0.35,
      settled((ctx, [sh, fromArg, toArg]) => {
        const hashX = scriptHashToHashX(sh);
        const fromHeight = nonNegativeInteger(fromArg ?? 0);
        let toHeight = -1;
        if (toArg !== undefined && toArg !== null && toArg !== -1 && toArg !== "-1") {
          toHeight = nonNegativeInteger(toArg);
        }
        const withMempool = toHeight === -1;
        if (!withMempool && toHeight <= fromHeight) return historyReply(ctx, hashX, NO_ROWS, false);
        if (withMempool && fromHeight === 0) {
          const cached = store.cachedHistory(hashX);
          if (cached !== undefined) return historyReply(ctx, hashX, cached, true, true);
        }
        return store.historyRows(hashX, {
          fromHeight,
          toHeight: withMempool ? undefined : toHeight - 1,
          limit: limit + 1,
        }).then((rows) => historyReply(ctx, hashX, rows, withMempool));
      }),
    ),
  );
  m.set(
    "blockchain.scripthash.get_mempool",
    method(
      ["scripthash"],
      0.25,
      settled((ctx, [sh]) => {
        const hashX = scriptHashToHashX(sh);
        const pool = sortedMempool(mempool.history(hashX));
        ctx.addCost(pool.length / 50);
        return mempoolJson(pool);
      }),
    ),
  );
  m.set(
    "blockchain.scripthash.listunspent",
    method(
      ["scripthash"],
      1.0,
      settled((ctx, [sh]) => {
        const hashX = scriptHashToHashX(sh);
        const cached = store.cachedUtxos(hashX);
        if (cached !== undefined) return utxoReply(ctx, hashX, cached);
        return store.utxoRows(hashX).then((rows) => utxoReply(ctx, hashX, rows));
      }),
    ),
  );
  // The subscribe's status, then the subscription itself unless an unsubscribe cancelled it meanwhile.
  const subscribeStatus = settled(async (ctx, [sh, hashX, pending]) => {
    const h = hashX as Uint8Array;
    const r = await currentStatus(ctx, h);
    if ((pending as PendingSubscribe).cancelled) return r.status;
    subscriptions.subscribe(ctx, h, sh as string, r.status, r.hasMempool);
    const entry = subscriptions.entry(h);
    if (r.fresh && entry && entry.status === undefined) {
      entry.status = r.status;
      entry.hasMempool = r.hasMempool;
    }
    return r.status;
  });
  m.set(
    "blockchain.scripthash.subscribe",
    method(
      ["scripthash"],
      0.2,
      (ctx, [sh]) => {
        const hashX = scriptHashToHashX(sh);
        subscriptions.checkLimits(ctx, hashX);
        // Noted before any wait: an unsubscribe sent right after must find it.
        const pending = subscriptions.begin(ctx, hashX);
        return Promise.resolve(subscribeStatus(ctx, [sh, hashX, pending]))
          .finally(() => subscriptions.end(ctx, hashX, pending));
      },
    ),
  );
  m.set(
    "blockchain.scripthash.unsubscribe",
    method(["scripthash"], 0.1, (ctx, [sh]) => subscriptions.unsubscribe(ctx, scriptHashToHashX(sh)), {
      minVersion: "1.4.2",
    }),
  );

  // ---- transactions ----
  m.set(
    "blockchain.transaction.broadcast",
    method(["raw_tx"], 0.25, async (ctx, [raw]) => {
      if (!isHex(raw)) throw new RpcError(BAD_REQUEST, `${pyStr(raw)} should be a hex string`);
      ctx.addCost(raw.length / 5000);
      try {
        const txid = await daemon.call<string>("sendrawtransaction", [raw]);
        log.info(`sent tx: ${txid}`);
        return txid;
      } catch (err) {
        if (!(err instanceof DaemonError)) throw err;
        log.info(`error sending transaction: ${err.message}`);
        throw new RpcError(
          BAD_REQUEST,
          `the transaction was rejected by network rules.\n\n${err.message}\n[${raw}]`,
        );
      }
    }),
  );
  m.set(
    "blockchain.transaction.broadcast_package",
    method(["raw_txs", "?verbose"], 0.25, async (ctx, [rawTxs, verboseArg]) => {
      const verbose = booleanArg(verboseArg, "verbose");
      const txids: string[] = [];
      const bad = () =>
        new RpcError(BAD_REQUEST, `not a valid hex encoded transaction package: ${pyStr(rawTxs)}`);
      if (!Array.isArray(rawTxs) || rawTxs.length === 0) throw bad();
      for (const raw of rawTxs) {
        if (!isHex(raw)) throw bad();
        ctx.addCost(raw.length / 5000);
        try {
          txids.push(toHexReversed(decodeTransaction(fromHex(raw)).txid));
        } catch {
          throw bad();
        }
      }
      let result: Record<string, unknown>;
      try {
        result = await daemon.call<Record<string, unknown>>("submitpackage", [rawTxs]);
      } catch (err) {
        if (!(err instanceof DaemonError)) throw err;
        log.info(`error submitting package: ${err.message}`);
        throw new RpcError(
          BAD_REQUEST,
          `the tx package was rejected by network rules.\n\n${err.message}.`,
        );
      }
      log.info(`broadcast package: ${txids.join(", ")}`);
      if (verbose) return result;
      const errors: { txid: unknown; error: unknown }[] = [];
      const txResults = result?.["tx-results"];
      if (txResults && typeof txResults === "object") {
        for (const r of Object.values(txResults as Record<string, Record<string, unknown>>)) {
          if (r?.error) errors.push({ txid: r.txid, error: r.error });
        }
      }
      // Core may rename package_msg (bitcoin/bitcoin#31900); accept both spellings.
      const msg = result?.package_msg ?? result?.["package-msg"];
      const out: Record<string, unknown> = { success: msg === "success" };
      if (errors.length > 0) out.errors = errors;
      return out;
    }, { minVersion: "1.6" }),
  );
  m.set(
    "blockchain.transaction.get",
    method(["tx_hash", "?verbose"], 1.0, (_ctx, [h, v]) => {
      const txid = txHashArg(h);
      return getTransaction(txid, booleanArg(v, "verbose"));
    }),
  );
  m.set(
    "blockchain.transaction.get_merkle",
    method(["tx_hash", "height"], 0.25, (ctx, [h, hArg]) => {
      const txid = txHashArg(h);
      const height = nonNegativeInteger(hArg);
      if (height > store.state.height) {
        throw new RpcError(BAD_REQUEST, `height ${commas(height)} out of range`);
      }
      const { first, count } = store.txNumsOfBlock(height);
      ctx.addCost(merkleCost(count));
      const found = txMerkle.find(
        store.blockHashAt(height)!,
        txid,
        count,
        (from, n) => store.txidRange(first + from, n),
        () => store.blockTxids(height),
      );
      if (found === undefined) {
        throw new RpcError(
          BAD_REQUEST,
          `tx ${toHexReversed(txid)} not in block at height ${commas(height)}`,
        );
      }
      const branch = found.proof.branch;
      let json = `{"block_height":${height},"merkle":[`;
      for (let i = 0; i < branch.length; i++) json += `${i > 0 ? "," : ""}"${toHexReversed(branch[i])}"`;
      return new RawJson(`${json}],"pos":${found.index}}`, true);
    }),
  );
  m.set(
    "blockchain.transaction.id_from_pos",
    method(["height", "tx_pos", "?merkle"], 0.25, (ctx, [hArg, pArg, mArg]) => {
      const pos = nonNegativeInteger(pArg);
      const height = nonNegativeInteger(hArg);
      const merkle = booleanArg(mArg, "merkle");
      const missing = () =>
        new RpcError(BAD_REQUEST, `no tx at position ${commas(pos)} in block at height ${commas(height)}`);
      if (height > store.state.height) throw missing();
      const txids = store.blockTxids(height);
      const n = txids.length / 32;
      if (pos >= n) throw missing();
      const txHash = toHexReversed(txids.subarray(pos * 32, pos * 32 + 32));
      if (!merkle) {
        ctx.addCost(0.0001 * n);
        return txHash;
      }
      ctx.addCost(merkleCost(n));
      return { tx_hash: txHash, merkle: blockProof(height, pos).branch.map(toHexReversed) };
    }),
  );

  return m;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
