// Helpers of the end-to-end tests: main.ts as a child process whose log lines can be awaited, an in-process
// simnet, a seeded PRNG for "random moments", and the bridge from a SimNode's chain to the reference model.
import { networkByName } from "../../src/chain/network.ts";
import { Store } from "../../src/db/store.ts";
import { type Simnet, startSimnet } from "../../scripts/simnet/main.ts";
import type { SimNode } from "../../scripts/simnet/node.ts";
import { ChainReference } from "./reference.ts";
import { type LineMatch, LoggedProcess } from "../logged_process.ts";

export type { LineMatch };

const REPO = new URL("../../", import.meta.url).pathname;
const MAIN = `${REPO}main.ts`;
const CONFIG = `${REPO}deno.json`;

/** xorshift128+ seeded from a string: every random choice of a test is reproducible from its seed. */
export class Prng {
  private s0: bigint;
  private s1: bigint;

  constructor(seed: string) {
    let h = 0xcbf29ce484222325n;
    const step = () => {
      for (const c of new TextEncoder().encode(seed)) h = ((h ^ BigInt(c)) * 0x100000001b3n) & MASK;
      h = ((h ^ (h >> 29n)) * 0xbf58476d1ce4e5b9n) & MASK;
      return h | 1n;
    };
    this.s0 = step();
    this.s1 = step();
  }

  /** A float in [0, 1). */
  next(): number {
    let a = this.s0;
    const b = this.s1;
    this.s0 = b;
    a ^= (a << 23n) & MASK;
    a ^= a >> 17n;
    a ^= b ^ (b >> 26n);
    this.s1 = a;
    return Number(((a + b) & MASK) >> 11n) / 2 ** 53;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}
const MASK = (1n << 64n) - 1n;

/** `deno run main.ts` with the given environment; its stderr (the log) is kept line by line. */
export type IndexerProcess = LoggedProcess;

/** Starts main.ts as the indexer (and server) under test. */
export const IndexerProcess = {
  start(env: Record<string, string>): IndexerProcess {
    return LoggedProcess.spawn(["run", "--quiet", "-A", `--config=${CONFIG}`, MAIN], env, "indexer");
  },
};

/** The environment of an indexer on regtest syncing from `simnet` into `db`; `extra` overrides. */
export function indexerEnv(
  db: string,
  daemon: { url: string; cookiePath?: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NET: "regtest",
    DB_DIRECTORY: db,
    DAEMON_URL: daemon.url,
    ...(daemon.cookiePath ? { DAEMON_COOKIE: daemon.cookiePath } : {}),
    DAEMON_POLL_MS: "20",
    LOG_LEVEL: "info",
    SERVICES: "",
    PEER_DISCOVERY: "off",
    ...extra,
  };
}

/** Resolves once the indexer's database holds height `height`: a finished flush to it, or "caught up" at it. */
export async function waitForFlushed(proc: IndexerProcess, height: number, from = 0): Promise<LineMatch> {
  const m = await proc.waitFor(
    new RegExp(`flushing to levelDB .* to height ${height} tx count|caught up to height ${height}$`),
    from,
  );
  if (m.line.includes("caught up")) return m;
  return await proc.waitFor(/ flushed\. /, m.index + 1);
}

/** Heights of the "flushing to levelDB ... to height H" lines from `from` on. */
export function flushHeights(proc: IndexerProcess, from = 0): { index: number; height: number }[] {
  return proc.findAll(/flushing to levelDB .* to height (\d+) tx count/, from)
    .map((m) => ({ index: m.index, height: Number(m.match[1]) }));
}

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "coulomb-it-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Starts an in-process simnet; the chain is cached in `datadir` so later starts with the same seed are quick. */
export function simnet(
  datadir: string,
  opts: { blocks: number; seed: string; txs?: number; port?: number },
): Promise<Simnet> {
  return startSimnet({ ...opts, port: opts.port ?? 0, datadir });
}

/** The raw blocks of `node`'s active chain, genesis first. */
export function activeChain(node: SimNode): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let h = 0; h <= node.height; h++) out.push(node.blockInfo(node.hashAt(h)!)!.raw);
  return out;
}

/** The reference model of `node`'s active chain up to `height` (default: its tip). */
export function referenceOf(node: SimNode, height = node.height): ChainReference {
  return ChainReference.of(activeChain(node).slice(0, height + 1));
}

/** Opens the database in `dir` (regtest), logging nowhere. */
export function openStore(dir: string): Promise<Store> {
  return Store.open(dir, networkByName("regtest"), { log: { info() {}, warn() {} } });
}

/** Opens the database, runs `fn`, closes it. */
export async function withStore<T>(dir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(dir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export { freePort } from "../launcher_harness.ts";
