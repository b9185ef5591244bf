// `bench sync`: an initial sync from an empty database to simnet's tip, measured from outside as an operator
// would see it. simnet and the indexer run as separate processes (as bitcoind and Coulomb would), so the
// indexer's peak RSS and CPU time are its own; the split of its time comes from the `sync profile` line the
// sync loop logs when it first catches up.
import { benchAllocator, type BenchChild, exitedError, spawnBenchChild } from "./child.ts";
import { diskUsage, type ProcFigures, readProcFigures } from "./proc.ts";

/** What to sync. */
export interface SyncBenchOptions {
  /** Approximate transaction count of the simnet chain. */
  txs: number;
  /** Blocks of the simnet chain. */
  blocks: number;
  /** The indexer's CACHE_MB. */
  cacheMb: number;
  /** Chain seed. */
  seed: string;
  /** Where simnet caches its chain (reused across runs) and where the fresh databases go. */
  workDir: string;
  /** Keep the database afterwards (its path is in the result). */
  keep: boolean;
  /** Receives progress text and, with `verbose`, every log line of the children. */
  say: (line: string) => void;
  verbose: boolean;
  /** Extra environment for the indexer (e.g. FLUSH_SIZE). */
  env?: Record<string, string>;
  /** Leave out the launcher's allocator settings (src/allocator.ts), to measure what they do. */
  noAllocatorEnv?: boolean;
  /** Extra `deno run` flags for the indexer, e.g. `--cpu-prof`. */
  denoFlags?: string[];
  /** The indexer's entry point (default: the repository's main.ts), e.g. a patched copy to compare. */
  mainPath?: string;
  /** Receives every RSS sample: seconds since start, RSS bytes, the indexer's last log line. */
  onRssSample?: (at: number, rss: number, line: string) => void;
}

/** The `sync profile:` line's figures, in seconds (and counts). */
export interface SyncProfile {
  blocks: number;
  txs: number;
  wall: number;
  fetchWait: number;
  parse?: number;
  process?: number;
  flush?: number;
  other?: number;
  /** Parsing done in a Worker, overlapped with the loop (parse then counts the loop's wait for it). */
  workerParse?: number;
}

/** What one run measured. */
export interface SyncBenchResult {
  height: number;
  blocks: number;
  txs: number;
  /** From spawning the indexer to its `caught up` line. */
  wallSeconds: number;
  blocksPerSecond: number;
  txPerSecond: number;
  /** The indexer's VmHWM when it caught up. */
  peakRssBytes: number;
  /** The highest VmRSS seen by sampling every 20 ms: when (seconds after start) and the log line before it. */
  peakSample: { rss: number; at: number; line: string };
  indexerCpuSeconds: number;
  simnetCpuSeconds: number;
  /** The database directory's size on disk after a clean shutdown. */
  dbBytes: number;
  /** The indexer's malloc (src/allocator.ts). */
  allocator: string;
  dbDir: string;
  cacheMb: number;
  profile: SyncProfile;
}

/** Parses the sync loop's `sync profile: key=value …` line; undefined if `line` is not one. */
export function parseProfileLine(line: string): SyncProfile | undefined {
  const at = line.indexOf("sync profile: ");
  if (at < 0) return undefined;
  const fields = new Map<string, number>();
  for (const part of line.slice(at + "sync profile: ".length).trim().split(/\s+/)) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const value = Number(part.slice(eq + 1).replace(/s$/, ""));
    if (Number.isFinite(value)) fields.set(part.slice(0, eq), value);
  }
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined) throw new Error(`sync profile line lacks ${k}: ${line}`);
    return v;
  };
  return {
    blocks: need("blocks"),
    txs: need("txs"),
    wall: need("wall"),
    fetchWait: need("fetch-wait"),
    parse: fields.get("parse+hash"),
    process: fields.get("process"),
    flush: fields.get("flush"),
    other: fields.get("other"),
    workerParse: fields.get("worker-parse"),
  };
}

const repoRoot = new URL("../../", import.meta.url).pathname;

/** Runs one measured initial sync; throws with the children's last lines when something goes wrong. */
export async function runSyncBench(opts: SyncBenchOptions): Promise<SyncBenchResult> {
  const simDir = `${opts.workDir}/simnet`;
  await Deno.mkdir(simDir, { recursive: true });
  // The chain cache and databases are big and machine-specific: keep them out of git without touching .gitignore.
  await Deno.writeTextFile(`${opts.workDir}/.gitignore`, "*\n");
  const dbDir = `${opts.workDir}/db-${Date.now()}-${Deno.pid}`;

  opts.say(
    `starting simnet: ${opts.blocks} blocks, ~${opts.txs} txs, seed ${opts.seed} ` +
      "(the first run generates and caches the chain: about 30 s per million txs)",
  );
  const simReady = Promise.withResolvers<{ height: number; url: string }>();
  const sim = spawnBenchChild(
    [
      "run",
      "-A",
      `${repoRoot}scripts/simnet/main.ts`,
      ...["--blocks", String(opts.blocks), "--txs", String(opts.txs), "--seed", opts.seed],
      ...["--port", "0", "--datadir", simDir],
    ],
    {},
    (line) => {
      const m = /^simnet ready height=(\d+) rpc=(\S+)/.exec(line);
      if (m) simReady.resolve({ height: Number(m[1]), url: m[2] });
      else if (opts.verbose) opts.say(`simnet| ${line}`);
    },
  );
  let indexer: BenchChild | undefined;
  const cleanup = async () => {
    for (const c of [indexer, sim]) {
      if (c === undefined) continue;
      try {
        c.proc.kill("SIGTERM");
      } catch {
        // already exited
      }
      await c.exited;
    }
  };
  const onSigint = () => void cleanup().then(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const ready = await Promise.race([
      simReady.promise,
      sim.exited.then((s) => failed("simnet", s, sim.lines)),
    ]);
    // simnet's CPU from here on only: generating or loading the chain is not serving it.
    const simCpuAtReady = readProcFigures(sim.proc.pid)?.cpuSeconds ?? 0;
    opts.say(`simnet ready at height ${ready.height}; syncing into ${dbDir} with CACHE_MB=${opts.cacheMb}`);

    const caughtUp = Promise.withResolvers<{ height: number; at: number; figures?: ProcFigures }>();
    const profile = Promise.withResolvers<SyncProfile>();
    const started = performance.now();
    // As `deno task start` runs it (see src/allocator.ts); the inherited environment and --env win.
    const allocator = benchAllocator(opts.env ?? {}, !opts.noAllocatorEnv);
    indexer = spawnBenchChild(
      ["run", "-A", ...(opts.denoFlags ?? []), opts.mainPath ?? `${repoRoot}main.ts`],
      {
        NET: "regtest",
        DB_DIRECTORY: dbDir,
        DAEMON_URL: ready.url,
        DAEMON_COOKIE: `${simDir}/.cookie`,
        CACHE_MB: String(opts.cacheMb),
        LOG_LEVEL: "info",
        DAEMON_POLL_MS: "1000",
        // Only the sync is measured: no listeners (they would also collide with other runs on the ports).
        SERVICES: "",
        ...allocator.env,
      },
      (line, child) => {
        const m = / caught up to height (\d+)/.exec(line);
        if (m) {
          // Read the peak before anything else happens in the child: this is the end of the measured run.
          caughtUp.resolve({
            height: Number(m[1]),
            at: performance.now(),
            figures: readProcFigures(child.proc.pid),
          });
        }
        const p = parseProfileLine(line);
        if (p) profile.resolve(p);
        if (opts.verbose || m || p || / height \d+\/\d+: /.test(line) || / (WARNING|ERROR) /.test(line)) {
          opts.say(`coulomb| ${line}`);
        }
      },
    );
    const child = indexer;
    // VmHWM gives the peak; sampling VmRSS as well tells when it happened (the last log line before it).
    const peak = { rss: 0, at: 0, line: "" };
    const sampler = setInterval(() => {
      const f = readProcFigures(child.proc.pid);
      if (f === undefined) return;
      const at = (performance.now() - started) / 1000;
      const line = child.lines.at(-1) ?? "";
      opts.onRssSample?.(at, f.rssBytes, line);
      if (f.rssBytes > peak.rss) {
        peak.rss = f.rssBytes;
        peak.at = at;
        peak.line = line;
      }
    }, 20);
    const died = child.exited.then((s) => failed("the indexer", s, child.lines));
    const done = await Promise.race([caughtUp.promise, died]);
    const prof = await Promise.race([profile.promise, died]);
    clearInterval(sampler);
    const simFigures = readProcFigures(sim.proc.pid);
    child.proc.kill("SIGTERM");
    const status = await child.exited;
    if (!status.success) failed("the indexer", status, child.lines);
    if (done.height !== ready.height) {
      throw new Error(`the indexer caught up at height ${done.height}, simnet is at ${ready.height}`);
    }
    const dbBytes = await diskUsage(dbDir);
    const wallSeconds = (done.at - started) / 1000;
    return {
      height: done.height,
      blocks: prof.blocks,
      txs: prof.txs,
      wallSeconds,
      blocksPerSecond: prof.blocks / wallSeconds,
      txPerSecond: prof.txs / wallSeconds,
      peakRssBytes: done.figures?.peakRssBytes ?? 0,
      indexerCpuSeconds: done.figures?.cpuSeconds ?? 0,
      simnetCpuSeconds: Math.max(0, (simFigures?.cpuSeconds ?? 0) - simCpuAtReady),
      peakSample: peak,
      dbBytes,
      allocator: allocator.description,
      dbDir,
      cacheMb: opts.cacheMb,
      profile: prof,
    };
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    await cleanup();
    if (!opts.keep) await Deno.remove(dbDir, { recursive: true }).catch(() => {});
  }
}

function failed(what: string, status: Deno.CommandStatus, lines: string[]): never {
  throw exitedError(what, status, lines);
}

/** The result as the table `bench sync` prints. */
export function formatResult(r: SyncBenchResult): string {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
  const s = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(1)} s`);
  const pct = (v: number | undefined) =>
    v === undefined ? "" : ` (${((v / r.profile.wall) * 100).toFixed(0)}%)`;
  const p = r.profile;
  return [
    `blocks          ${r.blocks} (height ${r.height})`,
    `transactions    ${r.txs}`,
    `wall            ${r.wallSeconds.toFixed(1)} s`,
    `blocks/s        ${r.blocksPerSecond.toFixed(1)}`,
    `tx/s            ${Math.round(r.txPerSecond)}`,
    `peak RSS        ${mb(r.peakRssBytes)} (CACHE_MB=${r.cacheMb}); sampled ${mb(r.peakSample.rss)} at ${
      r.peakSample.at.toFixed(1)
    } s, after: ${r.peakSample.line.replace(/^\S+ \S+ /, "").slice(0, 90)}`,
    `DB size         ${mb(r.dbBytes)}`,
    `allocator       ${r.allocator}`,
    `CPU             indexer ${r.indexerCpuSeconds.toFixed(1)} s, simnet ${r.simnetCpuSeconds.toFixed(1)} s`,
    `split           (sync loop, ${p.wall.toFixed(1)} s)`,
    `  fetch-wait    ${s(p.fetchWait)}${pct(p.fetchWait)}`,
    `  parse+hash    ${s(p.parse)}${pct(p.parse)}`,
    `  process       ${s(p.process)}${pct(p.process)}`,
    `  flush         ${s(p.flush)}${pct(p.flush)}`,
    `  other         ${s(p.other)}${pct(p.other)}`,
    ...(p.workerParse === undefined
      ? []
      : [`  (worker parse ${s(p.workerParse)}, overlapped with the above)`]),
  ].join("\n");
}
