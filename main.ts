// Coulomb's entry point. It only wires the modules together: configuration → logging → database → daemon
// client → block processor → sync loop; once caught up, mempool → methods → listeners, with notifications
// driven by new tips and mempool refreshes; plus the signals that stop it all cleanly.
import { type Config, ConfigError, loadConfig, readEnvironment, redactUrl } from "./src/config.ts";
import { networkByName } from "./src/chain/network.ts";
import { Daemon } from "./src/daemon/daemon.ts";
import type { Store } from "./src/db/store.ts";
import { formatCount, getLog, setupLogging } from "./src/log.ts";
import type { BlockProcessor, FlushStats } from "./src/sync/processor.ts";
import { SyncLoop } from "./src/sync/sync.ts";
import { Mempool } from "./src/mempool/mempool.ts";
import { MempoolFollower } from "./src/mempool/follower.ts";
import { createMethods } from "./src/server/methods.ts";
import type { MethodTable } from "./src/server/types.ts";
import { Notifier } from "./src/server/notifier.ts";
import { historyLimit } from "./src/server/status.ts";
import { SubscriptionIndex } from "./src/server/subscriptions.ts";
import { type Server, startServer } from "./src/server/listeners.ts";
import { serverVersionString } from "./src/version.ts";

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
}

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
  try {
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
  const created = createMethods({
    store,
    mempool,
    daemon,
    config,
    network,
    log,
    subscriptions,
    listening: () => bound.server?.addresses ?? config.services,
  });
  const methods = hooks.instrument ? hooks.instrument(created) : created;
  const server = await startServer({ config, methods, log, serverVersion: serverVersionString() });
  bound.server = server;
  const tipHeader = store.headerAt(store.state.height);
  if (tipHeader) notifier.onNewTip(store.state.height, tipHeader);

  // Notifications for one tip go out in order: the header first, then the mempool refresh that drops the
  // transactions the block confirmed, then the statuses of everything the block touched.
  let chain = Promise.resolve();
  const onTip = (height: number) => {
    const touched = processor.takeTouched();
    chain = chain.then(async () => {
      const header = store.headerAt(height);
      if (header) notifier.onNewTip(height, header);
      await follower.refreshNow().catch((err) => log.warn(`mempool refresh failed: ${errorText(err)}`));
      await notifier.onTouched(touched);
    }).catch((err) => log.error(`notifying height ${height} failed: ${errorText(err)}`));
  };
  return {
    server,
    mempool,
    subscriptions,
    onTip,
    async stop() {
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

/** Runs the indexer until SIGTERM/SIGINT; returns the process exit code. */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
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
  let indexer: Indexer;
  let serving: Serving | undefined;
  let startingServer: Promise<void> | undefined;
  const onTip = (height: number) => {
    if (serving) return serving.onTip(height);
    // The first tip: the database is current, so clients can be served from now on.
    startingServer ??= startServing(config, indexer).then((s) => {
      serving = s;
    }).catch((err) => {
      log.error(`cannot serve: ${errorText(err)}`);
      void indexer.stop();
    });
  };
  try {
    indexer = await startIndexer(config, { onTip });
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) {
      log.error(`cannot start: the sandbox denied an operation: ${err.message}`);
      log.error(
        "run Coulomb through `deno task start`/`deno task sync` (they compute the flags from the configuration)",
      );
    } else {
      log.error(`cannot start: ${errorText(err)}`);
    }
    return 1;
  }
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  let signalled = false;
  const onSignal = () => {
    if (signalled) return;
    signalled = true;
    log.info("shutting down: closing sessions and finishing the current flush");
    void (async () => {
      await startingServer;
      await serving?.stop();
      await indexer.stop();
    })();
  };
  for (const sig of signals) Deno.addSignalListener(sig, onSignal);
  try {
    await indexer.done;
    if (startingServer) await startingServer;
    if (serving && !signalled) await serving.stop();
    log.info("shut down cleanly");
    return signalled ? 0 : 1;
  } catch (err) {
    await startingServer;
    await serving?.stop().catch(() => {});
    log.error(`stopped: ${errorText(err)}`);
    return 1;
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

if (import.meta.main) Deno.exit(await main(Deno.args, readEnvironment()));
