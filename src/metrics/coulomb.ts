// Coulomb's metrics: what the registry exports and the status page shows. Counts that only exist as events
// (requests, errors, latencies, flush durations) are recorded here as they happen; everything that already
// lives in a module (heights, sessions, mempool size, cache size) is read from the node at scrape time.
import { directorySize, type NodeInfo, nodeInfo, type NodeView } from "../admin/node.ts";
import type { MethodSpec, MethodTable } from "../server/types.ts";
import { RpcError } from "../server/types.ts";
import { serverVersionString } from "../version.ts";
import { PEER_STATUSES } from "../server/peers.ts";
import { ProgressHistory, type ProgressSample } from "./history.ts";
import { type Counter, type Histogram, Registry } from "./registry.ts";

/** Latency buckets of Electrum requests (seconds): sub-millisecond cache hits up to REQUEST_TIMEOUT-ish. */
export const REQUEST_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];
/** Flush duration buckets (seconds): a block at the tip takes milliseconds, an initial-sync flush minutes. */
export const FLUSH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Window of the sync rate gauges and the status page's rate (ms). */
export const RATE_WINDOW_MS = 60_000;
/** How often the progress history and the database size are sampled by default (ms). */
export const SAMPLE_MS = 5_000;

/** What the status page reads (GET /status.json). */
export interface StatusJson extends NodeInfo {
  blocks_per_sec: number;
  txs_per_sec: number;
  requests_total: number;
  request_errors_total: number;
  flushes: number;
  last_flush_seconds: number | null;
  rss_bytes: number;
  /** Unix ms of this snapshot. */
  time: number;
  /** Progress samples, oldest first: [unix ms, indexed height, daemon height]. */
  history: [number, number, number][];
}

/** The flush summary the metrics need (the processor's FlushStats has it). */
export interface FlushObservation {
  readonly blocks: number;
  readonly txs: number;
}

/** Options of CoulombMetrics. */
export interface CoulombMetricsOptions {
  /** Starting spacing of the progress history (ms). */
  sampleMs?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

/** The metrics of one Coulomb process; the node is attached once it exists (see attach). */
export class CoulombMetrics {
  readonly registry = new Registry();
  readonly history: ProgressHistory;
  readonly #now: () => number;
  #view: NodeView | undefined;
  #dbSize = 0;
  #lastFlushSeconds: number | null = null;
  readonly #requests: Counter;
  readonly #errors: Counter;
  readonly #latency: Histogram;
  readonly #flushes: Histogram;

  constructor(opts: CoulombMetricsOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.history = new ProgressHistory(opts.sampleMs ?? SAMPLE_MS);
    const r = this.registry;
    const view = () => this.#view;
    const info = (f: (v: NodeView) => number) => () => {
      const v = view();
      return v ? f(v) : undefined;
    };
    r.gauge("coulomb_info", "Version and network of this server (always 1)", ["version", "network"], () => {
      const v = view();
      return v ? [{ labels: [serverVersionString(), v.network.name], value: 1 }] : undefined;
    });
    r.gauge(
      "coulomb_uptime_seconds",
      "Seconds since start-up",
      [],
      info((v) => (this.#now() - v.startedAt) / 1000),
    );
    r.gauge(
      "coulomb_db_height",
      "Height of the last flushed block (-1 when empty)",
      [],
      info((v) => v.store.state.height),
    );
    r.gauge(
      "coulomb_daemon_height",
      "bitcoind's tip height as last seen (-1 before the first poll)",
      [],
      info((v) => v.loop.stats.daemonHeight),
    );
    r.gauge(
      "coulomb_db_tx_count",
      "Transactions in the flushed chain",
      [],
      info((v) => v.store.state.txCount),
    );
    r.gauge(
      "coulomb_db_flush_count",
      "Flushes (and reorg undos) the database has recorded",
      [],
      info((v) => v.store.state.flushCount),
    );
    r.gauge(
      "coulomb_db_size_bytes",
      "Bytes of the database directory on disk (sampled)",
      [],
      info(() => this.#dbSize),
    );
    r.gauge(
      "coulomb_caught_up",
      "1 once the index has reached bitcoind's tip, else 0",
      [],
      info((v) => v.loop.stats.caughtUp ? 1 : 0),
    );
    r.counter(
      "coulomb_sync_blocks_total",
      "Blocks indexed since start-up",
      [],
      info((v) => v.loop.stats.blocks),
    );
    r.counter(
      "coulomb_sync_txs_total",
      "Transactions indexed since start-up",
      [],
      info((v) => v.loop.stats.txs),
    );
    r.gauge(
      "coulomb_sync_blocks_per_second",
      "Blocks indexed per second over the last minute",
      [],
      info(() => this.history.rate(RATE_WINDOW_MS).blocksPerSec),
    );
    r.gauge(
      "coulomb_sync_txs_per_second",
      "Transactions indexed per second over the last minute",
      [],
      info(() => this.history.rate(RATE_WINDOW_MS).txsPerSec),
    );
    r.gauge(
      "coulomb_cache_bytes",
      "Approximate bytes of unflushed UTXOs, history and undo data",
      [],
      info((v) => v.processor.cacheBytes()),
    );
    r.gauge(
      "coulomb_cache_entries",
      "Entries waiting for the next flush",
      [],
      info((v) => v.processor.pendingEntries()),
    );
    r.gauge(
      "coulomb_sessions",
      "Open Electrum sessions",
      [],
      info((v) => v.serving()?.server.sessions().length ?? 0),
    );
    r.gauge(
      "coulomb_subscriptions",
      "Script hash subscriptions over all sessions",
      [],
      info((v) => v.serving()?.subscriptions.count ?? 0),
    );
    r.gauge(
      "coulomb_subscribed_scripts",
      "Distinct script hashes subscribed to",
      [],
      info((v) => v.serving()?.subscriptions.hashXCount ?? 0),
    );
    r.gauge(
      "coulomb_mempool_txs",
      "Transactions in the mempool copy",
      [],
      info((v) => v.serving()?.mempool.size ?? 0),
    );
    r.gauge(
      "coulomb_mempool_vsize_bytes",
      "Virtual size of the mempool copy (vbytes)",
      [],
      info((v) => v.serving()?.mempool.vsizeTotal ?? 0),
    );
    r.gauge(
      "coulomb_mempool_pending_txs",
      "Mempool transactions waiting for unknown inputs",
      [],
      info((v) => v.serving()?.mempool.pendingCount ?? 0),
    );
    r.gauge("coulomb_peers", "Peer servers in the discovery table, by status", ["status"], () => {
      const peers = view()?.serving()?.peers;
      if (peers === undefined) return undefined;
      // Every status is reported, zeros included, so that a dashboard's series do not come and go.
      const counts = new Map<string, number>(PEER_STATUSES.map((s) => [s, 0]));
      for (const p of peers.records()) counts.set(p.status, (counts.get(p.status) ?? 0) + 1);
      return [...counts].map(([status, value]) => ({ labels: [status], value }));
    });
    this.#requests = r.counter(
      "coulomb_requests_total",
      "Electrum requests handled, by method (server.version and server.ping excluded)",
      ["method"],
    );
    this.#errors = r.counter(
      "coulomb_request_errors_total",
      "Electrum requests answered with an error, by method and JSON-RPC code",
      ["method", "code"],
    );
    this.#latency = r.histogram(
      "coulomb_request_duration_seconds",
      "Time a method took to compute its answer",
      REQUEST_BUCKETS,
      ["method"],
    );
    this.#flushes = r.histogram(
      "coulomb_flush_duration_seconds",
      "Time each flush to the database took",
      FLUSH_BUCKETS,
    );
    r.gauge(
      "process_resident_memory_bytes",
      "Resident set size of this process",
      [],
      () => Deno.memoryUsage().rss,
    );
    r.gauge(
      "process_start_time_seconds",
      "Start time of this process (Unix seconds)",
      [],
      info((v) => v.startedAt / 1000),
    );
  }

  /** Connects the collectors to the running node. */
  attach(view: NodeView): void {
    this.#view = view;
    this.sampleProgress();
  }

  /** Records one flush and how long it took. */
  observeFlush(_stats: FlushObservation, ms: number): void {
    const seconds = ms / 1000;
    this.#flushes.observe(seconds);
    this.#lastFlushSeconds = seconds;
  }

  /** Adds a point to the progress history (called on a timer and after each tip). */
  sampleProgress(): void {
    const v = this.#view;
    if (!v) return;
    const sample: ProgressSample = {
      t: this.#now(),
      height: v.processor.height,
      daemonHeight: v.loop.stats.daemonHeight,
      txs: v.loop.stats.txs,
    };
    this.history.add(sample);
  }

  /** Re-measures the database directory (slow on a big database, so it is sampled, not read per scrape). */
  async sampleDbSize(): Promise<void> {
    const v = this.#view;
    if (v) this.#dbSize = await directorySize(v.store.dir);
  }

  /** The status page's data; undefined before the node is attached. */
  status(): StatusJson | undefined {
    const v = this.#view;
    if (!v) return undefined;
    const now = this.#now();
    const rate = this.history.rate(RATE_WINDOW_MS);
    let requests = 0, errors = 0;
    for (const s of this.#requests.samples()) requests += s.value;
    for (const s of this.#errors.samples()) errors += s.value;
    return {
      ...nodeInfo(v, this.#dbSize, now),
      blocks_per_sec: round(rate.blocksPerSec),
      txs_per_sec: round(rate.txsPerSec),
      requests_total: requests,
      request_errors_total: errors,
      flushes: this.#flushes.child().count,
      last_flush_seconds: this.#lastFlushSeconds,
      rss_bytes: Deno.memoryUsage().rss,
      time: now,
      history: this.history.samples().map((s) => [s.t, s.height, s.daemonHeight]),
    };
  }

  /**
   * Wraps every method of a table so that calls, errors (by JSON-RPC code, the session's own included: see
   * MethodSpec.onErrorReply) and handler time are counted. The
   * per-method children are resolved here, once, so a request costs two additions and a clock read.
   */
  instrument(methods: MethodTable): MethodTable {
    const out = new Map<string, MethodSpec>();
    for (const [name, spec] of methods) {
      const calls = this.#requests.child(name);
      const latency = this.#latency.child(name);
      const errors = this.#errors;
      const failed = (e: unknown) =>
        errors.child(name, e instanceof RpcError ? String(e.code) : "internal").inc();
      const inner = spec.handler;
      out.set(name, {
        ...spec,
        // Errors the session made itself: arguments that did not bind (the call never reached the handler, so
        // it is counted here), and results over MAX_SEND.
        onErrorReply(code, ran) {
          if (!ran) calls.inc();
          errors.child(name, String(code)).inc();
        },
        handler(ctx, args) {
          calls.inc();
          const started = performance.now();
          let result: unknown;
          try {
            result = inner(ctx, args);
          } catch (e) {
            latency.observe((performance.now() - started) / 1000);
            failed(e);
            throw e;
          }
          if (result instanceof Promise) {
            return result.then((v) => {
              latency.observe((performance.now() - started) / 1000);
              return v;
            }, (e) => {
              latency.observe((performance.now() - started) / 1000);
              failed(e);
              throw e;
            });
          }
          latency.observe((performance.now() - started) / 1000);
          return result;
        },
      });
    }
    return out;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
