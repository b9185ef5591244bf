// `deno task bench sync`: Coulomb's speed and memory on a simnet chain (see scripts/bench/sync.ts).
import { parseArgs } from "node:util";
import { formatResult, runSyncBench } from "./bench/sync.ts";

const HELP = `Usage: deno task bench sync [options]

Initial sync from an empty database to the tip of a simnet chain; prints blocks/s, tx/s, the indexer's peak
RSS, the database size and where the time went (fetch-wait, parse+hash, process, flush).

  --txs N          at least this many transactions in the chain (default 2000000; simnet is asked for
                   0.5% more because its generator lands slightly under the count it is given)
  --blocks N       blocks in the chain (default txs/1000 + 100, mainnet's average density; the first 100
                   blocks are empty while coinbases mature)
  --cache-mb N     the indexer's CACHE_MB (default 1000)
  --seed S         chain seed (default "bench")
  --dir DIR        simnet chain cache and databases (default .bench; the chain is reused across runs)
  --keep           keep the database (its path is printed)
  --json           print the result as JSON
  --verbose        show every log line of simnet and the indexer
  --cpu-prof DIR   run the indexer under deno's --cpu-prof, writing the profile into DIR
  --main FILE      run FILE instead of main.ts (e.g. a patched copy, to compare)
  --rss-trace FILE write the indexer's RSS every 20 ms (seconds, MB, last log line) to FILE
  --env K=V        extra environment for the indexer (repeatable), e.g. FLUSH_SIZE=2000000
  --no-allocator-env  leave out the allocator settings the launcher gives Coulomb (glibc's, and jemalloc
                      preloaded where installed: src/allocator.ts); --env LD_PRELOAD= leaves out jemalloc only

deno task bench query [options]   the Electrum server under a wallet mix: see deno task bench query --help`;

/** Parses the command line and runs the chosen benchmark; returns the exit code. */
async function main(argv: string[]): Promise<number> {
  if (argv[0] === "query") {
    // The server benchmark has options of its own; loaded only when asked for.
    const query = await import("./bench_query.ts");
    return await query.main(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        txs: { type: "string", default: "2000000" },
        blocks: { type: "string" },
        "cache-mb": { type: "string", default: "1000" },
        seed: { type: "string", default: "bench" },
        dir: { type: "string", default: ".bench" },
        keep: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
        "cpu-prof": { type: "string" },
        main: { type: "string" },
        "rss-trace": { type: "string" },
        env: { type: "string", multiple: true },
        "no-allocator-env": { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`bench: ${(err as Error).message} (see --help)`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  if (command !== "sync" || positionals.length > 1) {
    console.error(`bench: unknown command '${positionals.join(" ")}' (see --help)`);
    return 2;
  }
  const txs = positiveInt("txs", values.txs);
  const cacheMb = positiveInt("cache-mb", values["cache-mb"]);
  const blocks = values.blocks === undefined ? Math.ceil((txs ?? 0) / 1000) + 100 : positiveInt(
    "blocks",
    values.blocks,
  );
  if (txs === undefined || cacheMb === undefined || blocks === undefined) return 2;
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) {
      console.error(`bench: --env wants NAME=VALUE, got '${kv}'`);
      return 2;
    }
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const prof = values["cpu-prof"];
  const trace: string[] = [];
  const traceFile = values["rss-trace"];
  try {
    const result = await runSyncBench({
      // The generator undershoots by ~0.2% (1,995,680 for 2,000,000); ask for a little more.
      txs: Math.ceil(txs * 1.005),
      blocks,
      cacheMb,
      seed: values.seed,
      workDir: values.dir,
      keep: values.keep,
      verbose: values.verbose,
      say: (line) => console.error(line),
      denoFlags: prof === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${prof}`],
      mainPath: values.main,
      noAllocatorEnv: values["no-allocator-env"],
      env,
      onRssSample: traceFile === undefined
        ? undefined
        : (at, rss, line) => trace.push(`${at.toFixed(2)}\t${Math.round(rss / 1048576)}\t${line}`),
    });
    if (traceFile !== undefined) await Deno.writeTextFile(traceFile, trace.join("\n") + "\n");
    console.log(values.json ? JSON.stringify(result, null, 2) : formatResult(result));
    if (result.txs < txs) {
      console.error(`bench: note: the chain has ${result.txs} transactions, fewer than ${txs}`);
    }
    if (values.keep) console.error(`database kept in ${result.dbDir}`);
    return 0;
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    return 1;
  }
}

function positiveInt(name: string, text: string): number | undefined {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    console.error(`bench: --${name} must be a positive integer, got '${text}'`);
    return undefined;
  }
  return n;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
