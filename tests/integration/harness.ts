// Helpers of the end-to-end tests: main.ts as a child process whose log lines can be awaited, an in-process
// simnet, a seeded PRNG for "random moments", and the bridge from a SimNode's chain to the reference model.
import { networkByName } from "../../src/chain/network.ts";
import { Store } from "../../src/db/store.ts";
import { type Simnet, startSimnet } from "../../scripts/simnet/main.ts";
import type { SimNode } from "../../scripts/simnet/node.ts";
import { ChainReference } from "./reference.ts";

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

/** A line of the indexer's log and where it was. */
export interface LineMatch {
  index: number;
  line: string;
  match: RegExpExecArray;
}

interface Waiter {
  re: RegExp;
  from: number;
  resolve: (m: LineMatch) => void;
  reject: (e: Error) => void;
}

/** `deno run main.ts` with the given environment; its stderr (the log) is kept line by line. */
export class IndexerProcess {
  readonly lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  private readonly child: Deno.ChildProcess;
  private readonly reading: Promise<void>;
  private waiters: Waiter[] = [];
  private exited = false;
  private readonly listeners: ((line: string, index: number) => void)[] = [];

  private constructor(env: Record<string, string>) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-A", `--config=${CONFIG}`, MAIN],
      cwd: REPO,
      clearEnv: true,
      env: { ...passThroughEnv(), ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.reading = this.readLines();
    this.status = this.child.status;
  }

  /** Starts main.ts. */
  static start(env: Record<string, string>): IndexerProcess {
    return new IndexerProcess(env);
  }

  /** Calls `fn` for every line from now on (after waiters are served). */
  onLine(fn: (line: string, index: number) => void): void {
    this.listeners.push(fn);
  }

  /**
   * The first line at index >= `from` matching `re`; rejects if the process ends without one, or if none comes
   * within `patienceMs`: a liveness guard so that a stuck indexer fails the test with its log instead of hanging
   * it (far above anything these tests need, it measures nothing).
   */
  waitFor(re: RegExp, from = 0, patienceMs = 60_000): Promise<LineMatch> {
    const found = this.find(re, from);
    if (found) return Promise.resolve(found);
    if (this.exited) return Promise.reject(this.endedWithout(re));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no line matching ${re} for ${patienceMs / 1000}s; last lines:\n${this.tail()}`));
      }, patienceMs);
      const waiter: Waiter = {
        re,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The first line at index >= `from` matching `re`, if any yet. */
  find(re: RegExp, from = 0): LineMatch | undefined {
    for (let i = Math.max(0, from); i < this.lines.length; i++) {
      const m = re.exec(this.lines[i]);
      if (m) return { index: i, line: this.lines[i], match: m };
    }
    return undefined;
  }

  /** Every line at index >= `from` matching `re`. */
  findAll(re: RegExp, from = 0): LineMatch[] {
    const out: LineMatch[] = [];
    for (let i = Math.max(0, from); i < this.lines.length; i++) {
      const m = re.exec(this.lines[i]);
      if (m) out.push({ index: i, line: this.lines[i], match: m });
    }
    return out;
  }

  /** Sends a signal; a no-op once the process is gone. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // already exited
    }
  }

  /** Waits for the process to exit and its log to be read completely. */
  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.reading;
    return status;
  }

  /** Kills the process if it still runs and waits for it: the cleanup of every test. */
  async close(): Promise<void> {
    this.kill("SIGKILL");
    await this.finish();
  }

  /** The last lines of the log, for assertion messages. */
  tail(n = 30): string {
    return this.lines.slice(-n).join("\n");
  }

  private endedWithout(re: RegExp): Error {
    return new Error(`the indexer exited without logging ${re}; last lines:\n${this.tail()}`);
  }

  private async readLines(): Promise<void> {
    let partial = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.child.stderr) {
      partial += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        this.addLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    }
    if (partial) this.addLine(partial);
    await this.child.status;
    this.exited = true;
    for (const w of this.waiters) w.reject(this.endedWithout(w.re));
    this.waiters = [];
  }

  private addLine(line: string): void {
    if (ECHO) console.error(`[indexer] ${line}`);
    const index = this.lines.length;
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (index < w.from) return true;
      const m = w.re.exec(line);
      if (!m) return true;
      w.resolve({ index, line, match: m });
      return false;
    });
    for (const fn of this.listeners) fn(line, index);
  }
}

// COULOMB_IT_ECHO=1 copies every indexer log line to stderr, to follow a test that hangs.
const ECHO = Deno.env.get("COULOMB_IT_ECHO") === "1";

// What the child needs from our environment to find Deno's caches; nothing that configures Coulomb.
function passThroughEnv(): Record<string, string> {
  const out: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

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

/** A TCP port nobody listens on right now (bound and released), for a daemon that starts later. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
