// What the operator interfaces (the admin RPC and the metrics endpoint) see of a running Coulomb: one view
// over the indexer and, once caught up, the Electrum side. Everything is read live from the modules that own
// it; nothing here keeps its own copy. The interfaces are narrow so that both interfaces can be tested
// against the real modules or small fakes.
import type { PeerRecord } from "../server/peers.ts";
import type { Network } from "../chain/network.ts";
import type { Config } from "../config.ts";
import type { DbState } from "../db/state.ts";
import type { HistoryItem, UtxoItem } from "../db/store.ts";
import type { LogLevelName } from "../log.ts";
import type { MempoolTxInfo, MempoolUtxo } from "../mempool/mempool.ts";
import type { SessionInfo } from "../server/session.ts";
import type { HashXEntry } from "../server/subscriptions.ts";
import type { SyncStats } from "../sync/sync.ts";
import { formatDuration } from "../log.ts";
import type { CompactableStore } from "./compact.ts";
import { serverVersionString } from "../version.ts";

/** The database reads the operator interfaces use (the Store provides them). */
export interface NodeStore extends CompactableStore {
  readonly dir: string;
  readonly state: Readonly<DbState>;
  history(hashX: Uint8Array, opts?: { limit?: number }): Promise<HistoryItem[]>;
  utxos(hashX: Uint8Array): Promise<UtxoItem[]>;
  balance(hashX: Uint8Array): Promise<number>;
}

/** The sync loop as the operator interfaces drive it. */
export interface NodeLoop {
  readonly stats: Readonly<SyncStats>;
  /** Backs the index up `blocks` blocks (fewer near genesis); the loop then re-syncs them. The new height and how many. */
  reorg(blocks: number): Promise<{ height: number; undone: number }>;
  /** Runs `fn` between two steps of the loop, when no block is being applied, flushed or undone. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** The processor's progress and memory use. */
export interface NodeProcessor {
  /** Height of the last applied block, flushed or not. */
  readonly height: number;
  /** Approximate bytes of unflushed data. */
  cacheBytes(): number;
  /** Entries waiting for the next flush. */
  pendingEntries(): number;
}

/** The Electrum listeners as the admin interface sees them. */
export interface NodeServer {
  sessions(): SessionInfo[];
  /** Closes one session; false when no open session has that id. */
  closeSession(id: number, reason: string): boolean;
}

/** The mempool reads the operator interfaces use. */
export interface NodeMempool {
  readonly size: number;
  readonly vsizeTotal: number;
  readonly pendingCount: number;
  history(hashX: Uint8Array): MempoolTxInfo[];
  utxos(hashX: Uint8Array): MempoolUtxo[];
  balanceDelta(hashX: Uint8Array): number;
  isSpent(txid: Uint8Array, vout: number): boolean;
}

/** The subscription index's counts. */
export interface NodeSubscriptions {
  readonly count: number;
  readonly hashXCount: number;
  allEntries(): Iterable<HashXEntry>;
}

/** Peer discovery's table (src/server/peers.ts's PeerManager provides it). */
export interface NodePeers {
  records(): readonly PeerRecord[];
}

/** The Electrum side, present once the indexer first caught up. */
export interface NodeServing {
  readonly server: NodeServer;
  readonly mempool: NodeMempool;
  readonly subscriptions: NodeSubscriptions;
  /** Absent in setups without peer discovery (some tests). */
  readonly peers?: NodePeers;
}

/** The storage side of a running node: what startIndexer returns provides it. */
export interface NodeIndexer {
  readonly store: NodeStore;
  readonly loop: NodeLoop;
  readonly processor: NodeProcessor;
}

/** One running Coulomb as its operator interfaces see it. */
export interface NodeView extends NodeIndexer {
  readonly config: Pick<Config, "net" | "dbDirectory" | "services"> & Partial<Pick<Config, "peerDiscovery">>;
  readonly network: Network;
  /** Unix ms of start-up. */
  readonly startedAt: number;
  /** The Electrum side; undefined until the first catch-up. */
  serving(): NodeServing | undefined;
  /** True once a shutdown has begun. */
  stopping(): boolean;
  /** Changes the log level of the running process. */
  setLogLevel(level: LogLevelName): Promise<void>;
  /** Begins the graceful shutdown SIGTERM starts; returns at once. */
  requestStop(reason: string): void;
}

/** What main() supplies besides the indexer. */
export interface NodeViewOptions {
  network: Network;
  startedAt: number;
  serving(): NodeServing | undefined;
  stopping(): boolean;
  setLogLevel(level: LogLevelName): Promise<void>;
  requestStop(reason: string): void;
}

/** Builds the view of a running node from its configuration, its indexer and main()'s hooks. */
export function nodeView(config: NodeView["config"], indexer: NodeIndexer, opts: NodeViewOptions): NodeView {
  return {
    config,
    store: indexer.store,
    loop: indexer.loop,
    processor: indexer.processor,
    ...opts,
  };
}

/** Where the node is in its life. */
export type SyncPhase = "syncing" | "caught up" | "serving" | "stopping";

/** The phase of a node: stopping, serving clients, caught up (listeners starting), or still syncing. */
export function syncPhase(view: NodeView): SyncPhase {
  if (view.stopping()) return "stopping";
  if (view.serving()) return "serving";
  return view.loop.stats.caughtUp ? "caught up" : "syncing";
}

/** getinfo's answer. Keys follow ElectrumX's style (snake case) so existing tooling reads them easily. */
export interface NodeInfo {
  version: string;
  network: string;
  pid: number;
  uptime: string;
  uptime_seconds: number;
  sync_state: SyncPhase;
  db_height: number;
  /** Height applied so far, including blocks not yet flushed (ahead of db_height during the initial sync). */
  indexed_height: number;
  daemon_height: number;
  tx_count: number;
  flush_count: number;
  first_sync: boolean;
  db_directory: string;
  db_size: number;
  blocks_indexed: number;
  txs_indexed: number;
  cache_bytes: number;
  cache_entries: number;
  sessions: number;
  session_errors: number;
  pending_requests: number;
  groups: number;
  subscriptions: number;
  subscribed_scripts: number;
  mempool_txs: number;
  mempool_vsize: number;
  mempool_pending: number;
}

/** Collects getinfo's answer; `dbSize` is passed in because measuring it reads the directory. */
export function nodeInfo(view: NodeView, dbSize: number, now = Date.now()): NodeInfo {
  const s = view.store.state;
  const stats = view.loop.stats;
  const serving = view.serving();
  const sessions = serving?.server.sessions() ?? [];
  let errors = 0, pending = 0;
  const groups = new Set<string>();
  for (const info of sessions) {
    errors += info.errors;
    pending += info.pendingMessages;
    if (info.group !== undefined) groups.add(info.group);
  }
  const uptime = Math.max(0, (now - view.startedAt) / 1000);
  return {
    version: serverVersionString(),
    network: view.network.name,
    pid: Deno.pid,
    uptime: formatDuration(uptime),
    uptime_seconds: Math.floor(uptime),
    sync_state: syncPhase(view),
    db_height: s.height,
    indexed_height: view.processor.height,
    daemon_height: stats.daemonHeight,
    tx_count: s.txCount,
    flush_count: s.flushCount,
    first_sync: s.firstSync,
    db_directory: view.store.dir,
    db_size: dbSize,
    blocks_indexed: stats.blocks,
    txs_indexed: stats.txs,
    cache_bytes: view.processor.cacheBytes(),
    cache_entries: view.processor.pendingEntries(),
    sessions: sessions.length,
    session_errors: errors,
    pending_requests: pending,
    groups: groups.size,
    subscriptions: serving?.subscriptions.count ?? 0,
    subscribed_scripts: serving?.subscriptions.hashXCount ?? 0,
    mempool_txs: serving?.mempool.size ?? 0,
    mempool_vsize: serving?.mempool.vsizeTotal ?? 0,
    mempool_pending: serving?.mempool.pendingCount ?? 0,
  };
}

/** Bytes of every file under `dir` (the database's footprint on disk); files vanishing meanwhile count 0. */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return 0;
  }
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) {
      total += await directorySize(path);
    } else if (e.isFile) {
      try {
        total += (await Deno.stat(path)).size;
      } catch {
        // LevelDB deletes compacted tables at any time; a file gone between listing and stat is no error.
      }
    }
  }
  return total;
}

/** Script subscriptions per session id, counted from the subscription index. */
export function subscriptionsBySession(subs: NodeSubscriptions): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of subs.allEntries()) {
    for (const session of entry.sessions.keys()) out.set(session.id, (out.get(session.id) ?? 0) + 1);
  }
  return out;
}
