// Coulomb's entry point. It only wires the modules together: configuration → logging → database → daemon
// client → block processor → sync loop, plus the signals that stop it cleanly.
import { type Config, ConfigError, loadConfig, readEnvironment, redactUrl } from "./src/config.ts";
import { networkByName } from "./src/chain/network.ts";
import { Daemon } from "./src/daemon/daemon.ts";
import type { Store } from "./src/db/store.ts";
import { formatCount, getLog, setupLogging } from "./src/log.ts";
import type { BlockProcessor } from "./src/sync/processor.ts";
import { SyncLoop } from "./src/sync/sync.ts";
import { serverVersionString } from "./src/version.ts";

/** A running indexer: `done` settles when it stops (rejects on a fatal error); `stop` flushes and closes. */
export interface Indexer {
  readonly loop: SyncLoop;
  readonly store: Store;
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Opens the database and starts syncing from the daemon; see Indexer. */
export async function startIndexer(config: Config): Promise<Indexer> {
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
    });
  } catch (err) {
    daemon.close();
    await store.close();
    throw err;
  }
  const loop = new SyncLoop(daemon, processor, getLog("sync"), {
    maxQueueBytes: prefetchBytes(config.cacheMb),
    pollIntervalMs: config.daemonPollMs,
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
  try {
    indexer = await startIndexer(config);
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
    log.info("shutting down: finishing the current flush");
    void indexer.stop();
  };
  for (const sig of signals) Deno.addSignalListener(sig, onSignal);
  try {
    await indexer.done;
    log.info("shut down cleanly");
    return 0;
  } catch (err) {
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
