// A whole Coulomb in this process for the admin and metrics tests: simnet as bitcoind, startIndexer and
// startServing from main.ts chained as main() chains them, and the operator interfaces (admin RPC, metrics)
// started by the same startOperations main() uses. Ports are OS-assigned; waits are on real events (tips).
import { type Config, loadConfig } from "../../src/config.ts";
import { networkByName } from "../../src/chain/network.ts";
import { type Indexer, type Serving, startIndexer, startServing } from "../../main.ts";
import { type Simnet, startSimnet } from "../../scripts/simnet/main.ts";
import { type NodeView, nodeView } from "../../src/admin/node.ts";
import { type Operations, startOperations } from "../../src/admin/operate.ts";
import { CoulombMetrics } from "../../src/metrics/coulomb.ts";
import type { LogLevelName } from "../../src/log.ts";
import { LineReader } from "../line_reader.ts";

/** What startStack builds. */
export interface StackOptions {
  seed: string;
  blocks: number;
  txs?: number;
  /** Extra or overriding configuration variables. */
  env?: Record<string, string>;
  /** Serve metrics (on an OS-assigned port). */
  metrics?: boolean;
  /** Rows per history compaction chunk. */
  compactChunkRows?: number;
  /** Progress sampling period of the metrics (ms). */
  sampleMs?: number;
}

/** A running stack. */
export interface Stack {
  readonly dir: string;
  readonly sim: Simnet;
  readonly config: Config;
  readonly indexer: Indexer;
  readonly serving: Serving;
  readonly view: NodeView;
  readonly ops: Operations;
  readonly metrics: CoulombMetrics | undefined;
  readonly rpcPort: number;
  readonly electrumPort: number;
  /** http://127.0.0.1:P of the metrics endpoint. */
  readonly metricsUrl: string | undefined;
  /** Reasons passed to requestStop (the admin `stop`). */
  readonly stopRequests: string[];
  /** Levels passed to setLogLevel. */
  readonly logLevels: LogLevelName[];
  /** Resolves once the database holds `height` and the tip at it was announced (onTip). */
  waitForTip(height: number): Promise<void>;
  /** Mines `n` blocks at simnet (with its mempool) and waits until they are indexed and notified. */
  mine(n: number): Promise<number>;
  close(): Promise<void>;
}

/** Starts simnet and Coulomb; resolves once Coulomb serves. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-admin-" });
  const sim = await startSimnet({
    blocks: opts.blocks,
    seed: opts.seed,
    txs: opts.txs,
    port: 0,
    datadir: `${dir}/sim`,
  });
  const loaded = loadConfig({
    NET: "regtest",
    DB_DIRECTORY: `${dir}/db`,
    DAEMON_URL: sim.url,
    DAEMON_COOKIE: sim.cookiePath,
    DAEMON_POLL_MS: "20",
    SERVICES: "tcp://127.0.0.1:50001,rpc://127.0.0.1:8000",
    PEER_DISCOVERY: "off",
    ...(opts.metrics ? { METRICS: "http://127.0.0.1:9100" } : {}),
    ...opts.env,
  }, []);
  if ("help" in loaded || "version" in loaded) throw new Error("unexpected configuration result");
  // SERVICES and METRICS rightly refuse port 0; in-process the listeners may take any free port.
  const config: Config = {
    ...loaded,
    services: loaded.services.map((s) => ({ ...s, port: 0 })),
    metrics: loaded.metrics ? { host: loaded.metrics.host, port: 0 } : undefined,
  };
  const metrics = opts.metrics ? new CoulombMetrics({ sampleMs: opts.sampleMs }) : undefined;
  const ready = Promise.withResolvers<Serving>();
  let serving: Serving | undefined;
  let starting: Promise<void> | undefined;
  let tipHeight = -1;
  const tipWaiters: { height: number; resolve: () => void }[] = [];
  const onTip = (height: number) => {
    tipHeight = height;
    if (serving) serving.onTip(height);
    else {
      starting ??= startServing(config, indexer, { instrument: metrics && ((m) => metrics.instrument(m)) })
        .then((s) => {
          serving = s;
          ready.resolve(s);
        }, (err) => ready.reject(err));
    }
    for (const w of tipWaiters.filter((w) => height >= w.height)) {
      tipWaiters.splice(tipWaiters.indexOf(w), 1);
      w.resolve();
    }
  };
  const indexer: Indexer = await startIndexer(config, {
    onTip,
    onFlush: metrics && ((stats, ms) => metrics.observeFlush(stats, ms)),
  });
  indexer.done.catch((err) => ready.reject(err));
  const stopRequests: string[] = [];
  const logLevels: LogLevelName[] = [];
  const view = nodeView(config, indexer, {
    network: networkByName(config.net),
    startedAt: Date.now(),
    serving: () => serving,
    stopping: () => stopRequests.length > 0,
    setLogLevel: (level) => {
      logLevels.push(level);
      return Promise.resolve();
    },
    requestStop: (reason) => stopRequests.push(reason),
  });
  const ops = startOperations(config, view, metrics, {
    compactChunkRows: opts.compactChunkRows,
    sampleMs: opts.sampleMs,
  });
  let s: Serving;
  try {
    s = await ready.promise;
  } catch (err) {
    await ops.close();
    await indexer.stop().catch(() => {});
    await sim.close();
    throw err;
  }
  // The store's height, not the last tip seen: a backup lowers it, and the re-synced tip must be awaited again.
  const waitForTip = (height: number) => {
    if (indexer.store.state.height >= height && tipHeight >= height) return Promise.resolve();
    const w = Promise.withResolvers<void>();
    tipWaiters.push({ height, resolve: w.resolve });
    return w.promise;
  };
  return {
    dir,
    sim,
    config,
    indexer,
    serving: s,
    view,
    ops,
    metrics,
    rpcPort: ops.rpc[0].port,
    electrumPort: s.server.addresses.find((a) => a.protocol === "tcp")!.port,
    metricsUrl: ops.metrics ? `http://127.0.0.1:${ops.metrics.port}` : undefined,
    stopRequests,
    logLevels,
    waitForTip,
    async mine(n: number) {
      const target = sim.node.height + n;
      sim.node.mine(n, { includeMempool: true });
      indexer.loop.pollNow();
      await waitForTip(target);
      return target;
    },
    async close() {
      await ops.close();
      await s.stop();
      await indexer.stop();
      await sim.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A minimal Electrum client over TCP for the tests (one request at a time). */
export class ElectrumClient {
  #id = 0;
  readonly #lines: LineReader;
  private constructor(readonly conn: Deno.TcpConn) {
    this.#lines = new LineReader(conn.readable);
  }

  /** Connects and negotiates `server.version`. */
  static async connect(port: number, clientName = "admin-test"): Promise<ElectrumClient> {
    const c = new ElectrumClient(await Deno.connect({ hostname: "127.0.0.1", port }));
    await c.request("server.version", [clientName, "1.4"]);
    return c;
  }

  /** Sends one request and returns its result (throws on an error reply). */
  async request<T = unknown>(method: string, params: unknown[]): Promise<T> {
    const id = ++this.#id;
    const bytes = new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", method, params, id }) + "\n");
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    for (;;) {
      const line = await this.#lines.next();
      if (line === null) throw new Error(`connection closed waiting for ${method}`);
      const msg = JSON.parse(line);
      if (msg.id !== id) continue; // a notification
      if (msg.error) throw new Error(`${method}: ${msg.error.message}`);
      return msg.result as T;
    }
  }

  /** Resolves when the server closes the connection. */
  async closed(): Promise<void> {
    while ((await this.#lines.next()) !== null) {
      // Drain notifications until EOF.
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
