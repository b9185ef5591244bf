// Coulomb's entry point. It only wires the modules together: configuration → logging → database → daemon
// client → block processor → sync loop; once caught up, mempool → methods → listeners, with notifications
// driven by new tips and mempool refreshes; plus the signals that stop it all cleanly.
import { type Config, ConfigError, loadConfig, readEnvironment, redactUrl } from "./src/config.ts";
import { networkByName } from "./src/chain/network.ts";
import { Daemon } from "./src/daemon/daemon.ts";
import { isDaemonClosed } from "./src/daemon/errors.ts";
import type { Store } from "./src/db/store.ts";
import { formatCount, formatDuration, getLog, type Log, setupLogging } from "./src/log.ts";
import {
  closeSignalInspector,
  describeError,
  LAUNCHER_VARIABLE,
  PROBE_VARIABLE,
  readOwnVariable,
  readProbeSpec,
  runSandboxProbe,
  sandboxAdvice,
} from "./src/permissions.ts";
import type { BlockProcessor, FlushStats } from "./src/sync/processor.ts";
import { SyncLoop } from "./src/sync/sync.ts";
import { Mempool } from "./src/mempool/mempool.ts";
import { MempoolFollower } from "./src/mempool/follower.ts";
import { createMethods, serverFeatures } from "./src/server/methods.ts";
import { PeerManager, resolveHost, sandboxAllows } from "./src/server/peers.ts";
import { socketConnector } from "./src/server/peer_client.ts";
import { toHex, toHexReversed } from "./src/chain/hex.ts";
import type { MethodTable } from "./src/server/types.ts";
import { Notifier } from "./src/server/notifier.ts";
import { historyLimit } from "./src/server/status.ts";
import { packedHashXs, SubscriptionIndex } from "./src/server/subscriptions.ts";
import { type Server, startServer } from "./src/server/listeners.ts";
import { serverVersionString } from "./src/version.ts";
import { runRpcCli } from "./src/admin/cli.ts";
import { nodeView } from "./src/admin/node.ts";
import { type Operations, startOperations } from "./src/admin/operate.ts";
import { CoulombMetrics } from "./src/metrics/coulomb.ts";

/** A running indexer: `done` settles when it stops (rejects on a fatal error); `stop` flushes and closes. */
export interface Indexer {
  readonly loop: SyncLoop;
  readonly store: Store;
  readonly daemon: Daemon;
  readonly processor: BlockProcessor;
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Hooks into a running indexer. */
export interface IndexerHooks {
  /** After every flush at the tip (first on catching up), with the new height. */
  onTip?: (height: number) => void;
  /** After every flush that wrote something, with what it did and how long it took (ms): metrics. */
  onFlush?: (stats: FlushStats, ms: number) => void;
  /** Aborting it gives up waiting for the daemon at startup (SIGTERM while bitcoind is down or warming up). */
  startup?: AbortSignal;
}

/** How often Coulomb checks that the process that started it is still there (ms). */
const ORPHAN_CHECK_MS = 1000;

/** Opens the database and starts syncing from the daemon; see Indexer. */
export async function startIndexer(config: Config, hooks: IndexerHooks = {}): Promise<Indexer> {
  const log = getLog("main");
  const network = networkByName(config.net);
  log.info(
    `${serverVersionString()} starting on ${config.net} (${Deno.build.target}, Deno ${Deno.version.deno})`,
  );
  log.info(`database: ${config.dbDirectory}`);
  log.info(`daemon: ${config.daemonUrls.map(redactUrl).join(", ")}`);
  log.info(
    `using flush size of ${formatCount(config.flushSize)} entries, cache ${formatCount(config.cacheMb)} MB`,
  );
  log.info(`reorg limit: ${config.reorgLimit} blocks`);

  // Loaded here rather than imported at the top: the LevelDB addon needs file and FFI permissions at load
  // time, and `--help`, `--version` and configuration errors must work without them.
  const { Store } = await import("./src/db/store.ts");
  const { BlockProcessor } = await import("./src/sync/processor.ts");
  const store = await Store.open(config.dbDirectory, network, { log: getLog("db") });
  const s = store.state;
  if (s.height >= 0) {
    log.info(`database height ${s.height}, tx count ${formatCount(s.txCount)}, flush count ${s.flushCount}`);
  }
  const daemon = new Daemon({
    urls: config.daemonUrls,
    cookieFile: config.daemonCookie,
    timeoutMs: config.daemonTimeoutMs,
    log: getLog("daemon"),
  });
  let processor: BlockProcessor;
  const giveUp = () => daemon.close();
  hooks.startup?.addEventListener("abort", giveUp, { once: true });
  try {
    if (hooks.startup?.aborted) daemon.close();
    await daemon.checkNetwork(config.coreChain);
    processor = new BlockProcessor(store, {
      reorgLimit: config.reorgLimit,
      cacheMb: config.cacheMb,
      flushSize: config.flushSize,
      log: getLog("sync"),
      network,
      onFlush: hooks.onFlush,
    });
  } catch (err) {
    daemon.close();
    await store.close();
    throw err;
  } finally {
    hooks.startup?.removeEventListener("abort", giveUp);
  }
  const loop = new SyncLoop(daemon, processor, getLog("sync"), {
    maxQueueBytes: prefetchBytes(config.cacheMb),
    pollIntervalMs: config.daemonPollMs,
    onTip: hooks.onTip,
  });
  const done = (async () => {
    try {
      await loop.run();
    } finally {
      daemon.close();
      await store.close();
    }
  })();
  let stopping: Promise<void> | undefined;
  return {
    loop,
    store,
    daemon,
    processor,
    done,
    stop() {
      stopping ??= (async () => {
        loop.stop();
        // A fetch retrying against an absent daemon would otherwise hold the final flush back until the
        // daemon returns; the blocks it was fetching are simply fetched again on the next start.
        daemon.close();
        await done;
      })();
      return stopping;
    },
  };
}

/** The Electrum side of a running Coulomb: listeners, mempool follower and notifier. */
export interface Serving {
  readonly server: Server;
  readonly mempool: Mempool;
  readonly subscriptions: SubscriptionIndex;
  /** Peer discovery: the peer table and its checks (idle unless PEER_DISCOVERY=on). */
  readonly peers: PeerManager;
  /** Tells the mempool and subscribers about a new tip (call after each flush at the tip). */
  onTip(height: number): void;
  /** Stops listening (answering what was received) and stops following the mempool. */
  stop(): Promise<void>;
}

/** Hooks into the Electrum side. */
export interface ServingHooks {
  /** Wraps the method table before the listeners use it (metrics count calls, errors and latency there). */
  instrument?: (methods: MethodTable) => MethodTable;
}

/** Starts the mempool follower, the method table, the notifier and the listeners on top of an indexer. */
export async function startServing(
  config: Config,
  indexer: Indexer,
  hooks: ServingHooks = {},
): Promise<Serving> {
  const log = getLog("server");
  const network = networkByName(config.net);
  const { store, daemon, processor } = indexer;
  const mempool = new Mempool({ daemon, store, log: getLog("mempool"), network });
  const subscriptions = new SubscriptionIndex({
    maxSubs: config.maxSubs,
    maxSessionSubs: config.maxSessionSubs,
  });
  const notifier = new Notifier({
    store,
    mempool,
    subscriptions,
    historyLimit: historyLimit(config.maxSend),
    log,
  });
  // Each flush takes what it confirmed, and what its blocks conflict with, out of the mempool in the same step
  // (Mempool.confirmed), so no answer counts a transaction as both or a mined-over payment as coming; the
  // hashXs that changed go out with that tip's notifications. The cached statuses of subscribed hashXs go
  // stale in that step too: a subscribe answered before the notifier's run must not get the old one.
  let confirmedTouched: Uint8Array[] = [];
  store.onAppend((txids, spends, touched) => {
    const confirmed = mempool.confirmed(txids, spends);
    if (confirmed.length > 0) confirmedTouched = confirmedTouched.concat(confirmed);
    subscriptions.invalidateChanged(touched === undefined ? undefined : packedHashXs(touched));
    subscriptions.invalidate(confirmed);
  });
  // A backup's undone transactions reach the mempool only with its next refresh; answers wait for that.
  store.onBackup((touched) => {
    mempool.backedUp();
    subscriptions.invalidateChanged(touched);
  });
  const follower = new MempoolFollower(mempool, {
    pollMs: config.daemonPollMs,
    log: getLog("mempool"),
    onRefresh: (touched) => notifier.onTouched(touched),
  });
  // The first refresh completes before clients arrive, so that the first answers include the mempool.
  follower.start();
  await follower.refreshNow().catch((err) => log.warn(`first mempool refresh failed: ${errorText(err)}`));
  // server.features reports the bound addresses, which exist only once the listeners below are up.
  const bound: { server?: Server } = {};
  const genesisHex = toHexReversed(network.genesisHash);
  const peers = new PeerManager({
    config,
    genesisHex,
    features: () => serverFeatures(config, genesisHex, bound.server?.addresses ?? config.services),
    software: serverVersionString(),
    chain: {
      height: () => store.state.height,
      headerHex: (h) => {
        const header = store.headerAt(h);
        return header ? toHex(header) : undefined;
      },
    },
    // Off regtest, a peer's name must lead to a public address when it is dialled, not only look public.
    connector: socketConnector(undefined, config.net !== "regtest"),
    resolve: resolveHost,
    allowed: sandboxAllows,
    log: getLog("peers"),
  });
  const created = createMethods({
    store,
    mempool,
    daemon,
    config,
    network,
    log,
    subscriptions,
    listening: () => bound.server?.addresses ?? config.services,
    announcedTip: () => notifier.tip,
    peers,
  });
  const methods = hooks.instrument ? hooks.instrument(created) : created;
  const server = await startServer({
    config,
    methods,
    log,
    serverVersion: serverVersionString(),
    subscriptionCount: (session) => subscriptions.sessionCount(session),
    // The socket thread died (already logged): nothing is served any more, so stop (exit 1) and let the
    // supervisor start a fresh process.
    onFatal: () => void indexer.stop().catch(() => {}),
  });
  bound.server = server;
  const tipHeader = store.headerAt(store.state.height);
  if (tipHeader) notifier.onNewTip(store.state.height, tipHeader);
  // What the catch-up touched concerns no subscriber (there were none); only later tips matter.
  processor.takeTouched();
  confirmedTouched = [];
  // Peers check us back at the addresses we announce, so discovery starts once we listen.
  peers.start();

  // Notifications for one tip go out in order: the header first, then a mempool refresh (children of what
  // the block confirmed may now resolve, conflicts leave), then the statuses of everything the block touched.
  // Only the newest of the tips queued meanwhile is announced: a burst of blocks is one new tip to a wallet,
  // and a queued older one would follow a headers.subscribe reply or notification that was already newer.
  let chain = Promise.resolve();
  let stopping = false;
  let tips = 0;
  const onTip = (height: number) => {
    const touched = processor.takeTouched().concat(confirmedTouched);
    confirmedTouched = [];
    if (stopping) return;
    const tip = ++tips;
    chain = chain.then(async () => {
      if (stopping) return;
      const header = tip === tips ? store.headerAt(height) : undefined;
      if (header) notifier.onNewTip(height, header);
      await follower.refreshNow().catch((err) => {
        // Shutting down stops the follower and closes the daemon client under it: no failure to report.
        if (!stopping && !isDaemonClosed(err)) log.warn(`mempool refresh failed: ${errorText(err)}`);
      });
      await notifier.onTouched(touched);
    }).catch((err) => log.error(`notifying height ${height} failed: ${errorText(err)}`));
  };
  return {
    server,
    mempool,
    subscriptions,
    peers,
    onTip,
    async stop() {
      stopping = true;
      await peers.stop();
      await server.close();
      await follower.stop();
      await chain;
    },
  };
}

/** The prefetch queue's byte bound: a tenth of the cache, kept between 16 MB and 256 MB. */
export function prefetchBytes(cacheMb: number): number {
  return Math.min(256, Math.max(16, Math.floor(cacheMb / 10))) * 1024 * 1024;
}

/** Runs the indexer until SIGTERM/SIGINT (or `rpc ...`: the admin CLI); returns the process exit code. */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  // `coulomb rpc COMMAND`: talk to a running server; needs no configuration beyond where its admin RPC listens.
  if (argv[0] === "rpc") {
    return await runRpcCli(argv.slice(1), {
      env,
      stdout: (t) => console.log(t),
      stderr: (t) => console.error(t),
    });
  }
  const startedAt = Date.now();
  let config: Config;
  try {
    const loaded = loadConfig(env, argv);
    if ("help" in loaded) {
      console.log(loaded.help);
      return 0;
    }
    if ("version" in loaded) {
      console.log(loaded.version);
      return 0;
    }
    config = loaded;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`coulomb: ${err.message}`);
      return 2;
    }
    throw err;
  }
  await setupLogging(config.logLevel);
  const log = getLog("main");
  if (config.ignoredVariables.length > 0) {
    log.warn(`ignoring ElectrumX settings Coulomb does not use: ${config.ignoredVariables.join(", ")}`);
  }
  const probe = env[PROBE_VARIABLE];
  if (probe) await runSandboxProbe(probe, getLog("sandbox"));
  let indexer: Indexer | undefined;
  let serving: Serving | undefined;
  // SIGHUP: a new TLS certificate for new connections (the banner file is read on every request anyway);
  // SIGUSR1 or SIGUSR2: a status summary in the log (SIGUSR2 is the safer one: on SIGUSR1 the Deno runtime also
  // opens a debugger, which closeSignalInspector shuts again). None touches open sessions. They are caught from
  // here on, so that one sent while the daemon is still warming up does not kill the process (their default).
  let reloading = Promise.resolve();
  const onHup = () => {
    reloading = reloading.then(() => reloadTls(config, serving, log));
  };
  const onStatus = (sig: Deno.Signal) => () => {
    if (sig === "SIGUSR1") closeSignalInspector((m) => log.warn(m));
    const lines = indexer
      ? statusLines(indexer, serving)
      : ["status: starting (opening the database, asking the daemon)"];
    for (const line of lines) log.info(line);
  };
  const onUsr1 = onStatus("SIGUSR1");
  const onUsr2 = onStatus("SIGUSR2");
  Deno.addSignalListener("SIGHUP", onHup);
  Deno.addSignalListener("SIGUSR1", onUsr1);
  Deno.addSignalListener("SIGUSR2", onUsr2);
  // Started by the launcher (`deno task start`), Coulomb must not outlive it: a launcher killed outright
  // (SIGKILL, a supervisor's forced stop) would leave it running unsupervised, holding the database lock and
  // its ports. Only then: run from a shell with nohup, say, losing the parent is no reason to stop. Deno.ppid
  // is read live and needs no permission.
  const launcher = Number(env[LAUNCHER_VARIABLE] ?? NaN);
  let stop = () => {};
  const orphanWatch = launcher === Deno.ppid
    ? setInterval(() => {
      if (Deno.ppid === launcher) return;
      clearInterval(orphanWatch);
      log.warn(`the launcher (process ${launcher}) is gone: shutting down`);
      stop();
    }, ORPHAN_CHECK_MS)
    : undefined;
  if (orphanWatch !== undefined) Deno.unrefTimer(orphanWatch);
  try {
    return await runIndexerAndServer(config, log, startedAt, {
      started: (i) => indexer = i,
      serving: (s) => serving = s,
      stopWith: (fn) => stop = fn,
    });
  } finally {
    clearInterval(orphanWatch);
    Deno.removeSignalListener("SIGHUP", onHup);
    Deno.removeSignalListener("SIGUSR1", onUsr1);
    Deno.removeSignalListener("SIGUSR2", onUsr2);
    await reloading;
  }
}

/** Runs the indexer, and the server once caught up, until SIGTERM/SIGINT or a fatal error; the exit code. */
async function runIndexerAndServer(
  config: Config,
  log: Log,
  startedAt: number,
  report: {
    started(indexer: Indexer): void;
    serving(serving: Serving): void;
    /** What stops Coulomb as SIGTERM would, from now on. */
    stopWith(stop: () => void): void;
  },
): Promise<number> {
  const metrics = config.metrics ? new CoulombMetrics() : undefined;
  let indexer: Indexer;
  let serving: Serving | undefined;
  let startingServer: Promise<void> | undefined;
  const onTip = (height: number) => {
    if (serving) return serving.onTip(height);
    // The first tip: the database is current, so clients can be served from now on.
    startingServer ??= startServing(config, indexer, {
      instrument: metrics && ((methods) => metrics.instrument(methods)),
    }).then((s) => {
      serving = s;
      report.serving(s);
    }).catch((err) => {
      logFatal(log, "cannot serve", err);
      void indexer.stop();
    });
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  let signalled = false;
  // Until the indexer runs, a stop request gives up waiting for bitcoind (down or warming up) and exits 0:
  // a supervisor stopping the service then sees a clean stop, not a death by signal.
  const startup = new AbortController();
  const onEarlySignal = () => {
    if (signalled) return;
    signalled = true;
    log.info("shutting down: stopped while starting");
    startup.abort();
  };
  report.stopWith(onEarlySignal);
  for (const sig of signals) Deno.addSignalListener(sig, onEarlySignal);
  try {
    indexer = await startIndexer(config, {
      onTip,
      onFlush: metrics && ((stats, ms) => metrics.observeFlush(stats, ms)),
      startup: startup.signal,
    });
  } catch (err) {
    if (signalled && isDaemonClosed(err)) {
      log.info("shut down cleanly");
      return 0;
    }
    logFatal(log, "cannot start", err);
    return 1;
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, onEarlySignal);
  }
  if (signalled) {
    await indexer.stop();
    log.info("shut down cleanly");
    return 0;
  }
  report.started(indexer);
  const onSignal = () => {
    if (signalled) return;
    signalled = true;
    log.info("shutting down: closing sessions and finishing the current flush");
    void (async () => {
      // Nothing waits on bitcoind from here on: an absent daemon must not hold the shutdown back.
      indexer.daemon.close();
      await startingServer;
      await serving?.stop();
      await indexer.stop();
    })();
  };
  report.stopWith(onSignal);
  for (const sig of signals) Deno.addSignalListener(sig, onSignal);
  // The admin RPC and metrics run from now on, during the initial sync too; `stop` takes the SIGTERM path.
  let ops: Operations;
  try {
    ops = startOperations(
      config,
      nodeView(config, indexer, {
        network: networkByName(config.net),
        startedAt,
        serving: () => serving,
        stopping: () => signalled,
        setLogLevel: (level) => setupLogging(level),
        requestStop: onSignal,
      }),
      metrics,
    );
  } catch (err) {
    for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
    logFatal(log, "cannot start", err);
    await indexer.stop().catch(() => {});
    return 1;
  }
  try {
    await indexer.done;
    if (startingServer) await startingServer;
    if (serving && !signalled) await serving.stop();
    log.info("shut down cleanly");
    return signalled ? 0 : 1;
  } catch (err) {
    await startingServer;
    await serving?.stop().catch(() => {});
    logFatal(log, "stopped", err);
    return 1;
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
    await ops.close();
  }
}

/** Re-reads SSL_CERTFILE/SSL_KEYFILE into the ssl/wss listeners; on any problem the current pair stays. */
async function reloadTls(config: Config, serving: Serving | undefined, log: Log): Promise<void> {
  if (!config.services.some((s) => s.protocol === "ssl" || s.protocol === "wss")) {
    log.info("SIGHUP: no ssl or wss service, no certificate to reload (the banner is read on every request)");
    return;
  }
  if (!serving) {
    log.info("SIGHUP: not serving yet; the certificate is read when serving starts");
    return;
  }
  log.info(`SIGHUP: reloading the TLS certificate from ${config.sslCertfile} and ${config.sslKeyfile}`);
  try {
    const [cert, key] = await Promise.all([
      Deno.readTextFile(config.sslCertfile!),
      Deno.readTextFile(config.sslKeyfile!),
    ]);
    await serving.server.reloadTls(cert, key);
  } catch (err) {
    log.error(`SIGHUP: keeping the current TLS certificate: ${errorText(err)}`);
  }
}

/** The SIGUSR1 summary: one screen of where the indexer, the server and the process stand. */
export function statusLines(indexer: Indexer, serving: Serving | undefined): string[] {
  const { loop, processor, store } = indexer;
  const mb = (bytes: number) => `${formatCount(Math.round(bytes / (1024 * 1024)))} MB`;
  const daemon = loop.stats.daemonHeight < 0 ? "unknown" : String(loop.stats.daemonHeight);
  const sync = loop.stats.caughtUp ? "caught up" : "catching up";
  const cache = `${mb(processor.cacheBytes())} in ${formatCount(processor.pendingEntries())} entries`;
  const lines = [
    `status: height ${processor.height} (flushed ${store.state.height}), daemon height ${daemon}, ${sync}`,
    `status: cache ${cache}, ${processor.unflushedBlocks} unflushed blocks`,
  ];
  if (serving) {
    const { subscriptions: subs, mempool } = serving;
    const sessions = serving.server.sessions().length;
    lines.push(
      `status: sessions ${sessions}, subscriptions ${formatCount(subs.count)} (${
        formatCount(subs.hashXCount)
      } script hashes)`,
      `status: mempool ${formatCount(mempool.size)} txs, ${formatCount(mempool.vsizeTotal)} vbytes, ` +
        `${mempool.pendingCount} waiting for prevouts`,
    );
    const peers = serving.peers.records();
    const good = peers.filter((p) => p.status === "good").length;
    lines.push(`status: peers ${good} verified of ${peers.length} known`);
  } else {
    lines.push("status: not serving yet (the server starts once the database has caught up)");
  }
  const mem = Deno.memoryUsage();
  const uptime = formatDuration(performance.now() / 1000);
  lines.push(`status: memory rss ${mb(mem.rss)}, heap ${mb(mem.heapUsed)}; uptime ${uptime}`);
  return lines;
}

function errorText(err: unknown): string {
  return describeError(err);
}

function logFatal(log: Log, what: string, err: unknown): void {
  log.error(`${what}: ${errorText(err)}`);
  const advice = sandboxAdvice(err);
  if (advice) log.error(advice);
}

if (import.meta.main) {
  // `rpc` reads SERVICES alone (for the admin port), so the CLI needs no other environment access.
  const env = Deno.args[0] === "rpc" ? readEnvironment(["SERVICES"]) : {
    ...readEnvironment(),
    [PROBE_VARIABLE]: readProbeSpec(),
    [LAUNCHER_VARIABLE]: readOwnVariable(LAUNCHER_VARIABLE),
  };
  Deno.exit(await main(Deno.args, env));
}
