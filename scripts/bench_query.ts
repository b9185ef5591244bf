// `deno task bench query`: how fast Coulomb answers Electrum wallets. A simnet chain is synced once into a
// database kept under --dir; the server then runs as its own process (as in production) and a load generator
// in Workers of this process drives a wallet-like mix of requests over real TCP sessions. For each scenario
// the server is started afresh, so its CPU time and peak RSS (from /proc) are the scenario's own.
import { parseArgs } from "node:util";
import { parseBlock } from "../src/chain/block.ts";
import { sha256 } from "../src/chain/hash.ts";
import { toHexReversed } from "../src/chain/hex.ts";
import { isUnindexed } from "../src/chain/script.ts";
import { benchAllocator, type BenchChild, exitedError, spawnBenchChild } from "./bench/child.ts";
import { Prng } from "./simnet/prng.ts";
import { diskUsage, readProcFigures, readProcFile } from "./bench/proc.ts";
import type { RunMessage, SetupMessage, WorkerReply } from "./bench_query_worker.ts";

const HELP = `Usage: deno task bench query [options]

Drives Coulomb's Electrum server with a wallet-like mix (get_history 40%, get_balance 20%, listunspent 20%,
blockchain.block.header 10%, transaction.get_merkle 10%) and prints requests/s, p50/p99 latency, server CPU
and peak RSS per scenario, and the latency of one large history.

  --txs N              transactions in the simnet chain (default 2000000)
  --blocks N           blocks in the chain (default 2100)
  --seed S             chain seed (default "bench"; shares bench sync's cached chain)
  --dir DIR            chain cache and the synced database, reused across runs (default .bench)
  --scenarios LIST     SESSIONSxINFLIGHT[@RATE],... (default 16x1,16x16,1000x1,1000x1@10); @RATE paces each
                       session at RATE requests/s, latency counted from the scheduled send time
  --mix LIST           NAME=WEIGHT,... of history, balance, listunspent, header, merkle (default the wallet
                       mix above: history=40,balance=20,listunspent=20,header=10,merkle=10)
  --duration S         measured seconds per scenario (default 10)
  --warmup S           unmeasured seconds before each, which also fill the server's caches (default 10)
  --client-workers N   load generator Workers (default 2)
  --mempool N          transactions simnet puts into its mempool before the server starts (default 5000), so
                       that answers merge the mempool as on a live network
  --pool N             script hashes probed for the mix (default 20000)
  --max-history N      script hashes with longer histories are left out of the mix (default 1000)
  --history N          size of the single large history to time (default 50000)
  --server-env K=V     extra environment for the server (repeatable), e.g. to compare settings
  --no-allocator-env   leave out the allocator settings the launcher gives Coulomb (glibc's and jemalloc's
                       preload, src/allocator.ts); --server-env LD_PRELOAD= leaves out jemalloc only
  --cpu-prof DIR       run the server under deno's --cpu-prof, writing profiles into DIR
  --deno-flag F        extra deno run flag for the server (repeatable), e.g. --v8-flags=--trace-gc
  --fresh              delete the database and sync again
  --save-requests F    also write the mix's request lines to F (to drive the server with another client)
  --json               print the result as JSON
  --verbose            show every log line of simnet and the server`;

/** One scenario's figures. */
export interface ScenarioResult {
  name: string;
  sessions: number;
  inflight: number;
  /** Requests/s each session was paced at; 0 = as fast as replies came back. */
  ratePerSession: number;
  seconds: number;
  replies: number;
  errors: number;
  lostSessions: number;
  requestsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Server CPU over the measured window, in cores (1.0 = one core busy all the time). */
  serverCores: number;
  /** The part of serverCores spent in the kernel (socket reads and writes, mostly). */
  serverSystemCores: number;
  serverPeakRssBytes: number;
  clientCores: number;
  /** Busy cores not accounted for by the server and the load generator (simnet, other processes). */
  otherCores: number;
  mbInPerSecond: number;
}

/** The single large history's timings. */
export interface HistoryResult {
  scriptHash: string;
  entries: number;
  replyBytes: number;
  coldMs: number;
  warmMedianMs: number;
  warmMaxMs: number;
}

/** Everything `bench query` measured. */
export interface QueryBenchResult {
  /** Methods and their shares of the requests. */
  mix: [string, number][];
  machine: { cpus: number; model: string };
  /** The server's malloc and where it served the sockets, as its log said. */
  server: { allocator: string; sockets: string };
  chain: {
    height: number;
    txs: number;
    seed: string;
    dbBytes: number;
    syncSeconds?: number;
    mempool: number;
  };
  pool: {
    scriptHashes: number;
    excludedLarge: number;
    excludedEmpty: number;
    historyMean: number;
    historyP99: number;
    txids: number;
  };
  scenarios: ScenarioResult[];
  history?: HistoryResult;
}

interface Options {
  txs: number;
  blocks: number;
  seed: string;
  dir: string;
  scenarios: { sessions: number; inflight: number; rate: number }[];
  mix: [string, number][];
  durationMs: number;
  warmupMs: number;
  clientWorkers: number;
  pool: number;
  mempool: number;
  maxHistory: number;
  history: number;
  serverEnv: Record<string, string>;
  noAllocatorEnv: boolean;
  cpuProf?: string;
  denoFlags: string[];
  fresh: boolean;
  json: boolean;
  saveRequests?: string;
  verbose: boolean;
}

// Probe requests pipelined at once: few enough that a handful of huge histories among them stays under the
// server's bound on queued output (2 × MAX_SEND), which would otherwise disconnect the probe.
const PROBE_CHUNK = 20;
const repoRoot = new URL("../", import.meta.url).pathname;
const say = (line: string) => console.error(line);

// ---- child processes ------------------------------------------------------------------------------------

async function stop(child: BenchChild | undefined): Promise<void> {
  if (!child) return;
  try {
    child.proc.kill("SIGTERM");
  } catch {
    // already gone
  }
  await child.exited;
}

function died(what: string, child: BenchChild): Promise<never> {
  return child.exited.then((s) => {
    throw exitedError(what, s, child.lines);
  });
}

async function startSimnet(o: Options): Promise<{ child: BenchChild; url: string; height: number }> {
  // A simnet of our own (its cookie must not clobber another run's), sharing bench sync's cached chain.
  const simDir = `${o.dir}/query-simnet`;
  await Deno.mkdir(simDir, { recursive: true });
  const cacheName = `chain-${o.seed}-${o.blocks}-${o.txs}-v2.bin`;
  try {
    await Deno.stat(`${simDir}/${cacheName}`);
  } catch {
    await Deno.link(`${o.dir}/simnet/${cacheName}`, `${simDir}/${cacheName}`).catch(() => {});
  }
  const ready = Promise.withResolvers<{ url: string; height: number }>();
  const child = spawnBenchChild(
    [
      "run",
      "-A",
      `${repoRoot}scripts/simnet/main.ts`,
      ...["--blocks", String(o.blocks), "--txs", String(o.txs), "--seed", o.seed, "--port", "0"],
      ...["--datadir", simDir],
    ],
    {},
    (line) => {
      const m = /^simnet ready height=(\d+) rpc=(\S+)/.exec(line);
      if (m) ready.resolve({ height: Number(m[1]), url: m[2] });
      else if (o.verbose) say(`simnet| ${line}`);
    },
    repoRoot,
  );
  const r = await Promise.race([ready.promise, died("simnet", child)]);
  return { child, ...r };
}

/** One JSON-RPC call to simnet with its cookie. */
async function simnetCall<T>(o: Options, url: string, method: string, params: unknown[]): Promise<T> {
  const cookie = (await Deno.readTextFile(`${o.dir}/query-simnet/.cookie`)).trim();
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(cookie)}`, "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "1.0", id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`simnet ${method}: ${body.error.message}`);
  return body.result as T;
}

interface ServerChild {
  child: BenchChild;
  port: number;
  pid: number;
  /** Seconds spent catching up, when the database was behind. */
  syncSeconds?: number;
  /** Where the server said it serves the sockets ("a thread of their own", "the main thread", or both). */
  sockets: string;
  /** The malloc it was started with (describeAllocator). */
  allocator: string;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function startServer(o: Options, daemonUrl: string, dbDir: string): Promise<ServerChild> {
  const port = freePort();
  const ready = Promise.withResolvers<void>();
  let syncing: number | undefined;
  let caughtUpAt: number | undefined;
  let sockets = "unknown";
  // As `deno task start` would start it (src/allocator.ts), then --server-env.
  const allocator = benchAllocator(o.serverEnv, !o.noAllocatorEnv);
  const started = performance.now();
  const child = spawnBenchChild(
    [
      "run",
      "-A",
      ...(o.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProf}`] : []),
      ...o.denoFlags,
      `${repoRoot}main.ts`,
    ],
    {
      NET: "regtest",
      DB_DIRECTORY: dbDir,
      DAEMON_URL: daemonUrl,
      DAEMON_COOKIE: `${o.dir}/query-simnet/.cookie`,
      CACHE_MB: "1000",
      SERVICES: `tcp://127.0.0.1:${port}`,
      MAX_SESSIONS: "1200",
      // Throttling off (a hard limit not above the soft one disables it): the load is one client's on purpose.
      COST_SOFT_LIMIT: "0",
      COST_HARD_LIMIT: "0",
      LOG_LEVEL: "info",
      ...allocator.env,
    },
    (line) => {
      if (/ height \d+\/\d+: /.test(line)) syncing ??= performance.now();
      if (/ caught up to height /.test(line)) caughtUpAt = performance.now();
      const where = /client sockets are served (?:by|on) (.+)$/.exec(line);
      if (where) sockets = where[1];
      if (/listening for Electrum tcp connections/.test(line)) ready.resolve();
      if (o.verbose || / (WARNING|ERROR) /.test(line) || (syncing !== undefined && / height /.test(line))) {
        say(`coulomb| ${line}`);
      }
    },
    repoRoot,
  );
  await Promise.race([ready.promise, died("the server", child)]);
  return {
    child,
    port,
    pid: child.proc.pid,
    syncSeconds: syncing !== undefined && caughtUpAt !== undefined
      ? (caughtUpAt - started) / 1000
      : undefined,
    sockets,
    allocator: allocator.description,
  };
}

// ---- a plain JSON-RPC client for setting up (not for the load) --------------------------------------------

class Probe {
  #buf = "";
  #decoder = new TextDecoder();
  #chunk = new Uint8Array(1 << 20);
  #lineBytes = new Uint8Array(1 << 23);

  private constructor(readonly conn: Deno.TcpConn) {}

  static async open(port: number): Promise<Probe> {
    const p = new Probe(await Deno.connect({ hostname: "127.0.0.1", port }));
    await p.pipeline([{ method: "server.version", params: ["coulomb-bench", "1.4"] }]);
    return p;
  }

  /** Sends the requests back to back, then reads their replies (in order). */
  async pipeline(
    reqs: { method: string; params: unknown[] }[],
  ): Promise<{ result?: unknown; error?: unknown }[]> {
    const text = reqs.map((r, i) => JSON.stringify({ jsonrpc: "2.0", id: i, ...r })).join("\n") + "\n";
    const bytes = new TextEncoder().encode(text);
    const writing = (async () => {
      let off = 0;
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    })();
    const out: { result?: unknown; error?: unknown }[] = [];
    while (out.length < reqs.length) out.push(JSON.parse(await this.line()));
    await writing;
    return out;
  }

  /**
   * Reads one reply line as bytes, without the newline. For timing large replies: nothing is decoded or
   * concatenated as text while the reply arrives, so the client's own string work and garbage collection (a
   * 5 MB reply read as text cost this process tens of milliseconds after a load scenario) stay out of the figure.
   */
  async lineBytes(): Promise<Uint8Array> {
    // The bytes are valid until the next call: the buffer is reused.
    if (this.#buf.length > 0) return new TextEncoder().encode(await this.line());
    let bytes = this.#lineBytes;
    let len = 0;
    for (;;) {
      const n = await this.conn.read(this.#chunk);
      if (n === null) throw new Error("the server closed the connection");
      const nl = this.#chunk.subarray(0, n).indexOf(0x0a);
      const take = nl >= 0 ? nl : n;
      if (len + take > bytes.length) {
        const grown = new Uint8Array(Math.max(bytes.length * 2, len + take));
        grown.set(bytes.subarray(0, len));
        bytes = this.#lineBytes = grown;
      }
      bytes.set(this.#chunk.subarray(0, take), len);
      len += take;
      if (nl >= 0) {
        // Whatever followed the newline belongs to the next line.
        this.#buf = this.#decoder.decode(this.#chunk.subarray(nl + 1, n), { stream: true });
        return bytes.subarray(0, len);
      }
    }
  }

  /** Reads one reply line (raw). */
  async line(): Promise<string> {
    // Only new text is searched for the newline, so a multi-megabyte reply costs linear time.
    let searched = 0;
    for (;;) {
      const nl = this.#buf.indexOf("\n", searched);
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return line;
      }
      searched = this.#buf.length;
      const n = await this.conn.read(this.#chunk);
      if (n === null) throw new Error("the server closed the connection");
      this.#buf += this.#decoder.decode(this.#chunk.subarray(0, n), { stream: true });
    }
  }

  close(): void {
    this.conn.close();
  }
}

// ---- what to ask --------------------------------------------------------------------------------------

interface ChainSample {
  /** Display-order script hashes of every spendable output in the sampled blocks, with occurrence counts. */
  scripts: Map<string, number>;
  /** Display-order txids and their heights. */
  txs: { txid: string; height: number }[];
}

/** Reads `count` blocks spread over the chain from simnet's REST interface and collects scripts and txids. */
async function sampleChain(url: string, height: number, count: number): Promise<ChainSample> {
  const scripts = new Map<string, number>();
  const txs: { txid: string; height: number }[] = [];
  const first = Math.min(height, 101);
  const heights = new Set<number>();
  for (let i = 0; i < count; i++) {
    heights.add(first + Math.floor(((height - first) * i) / Math.max(1, count - 1)));
  }
  for (const h of heights) {
    const hashHex = (await (await fetch(`${url}/rest/blockhashbyheight/${h}.hex`)).text()).trim();
    const res = await fetch(`${url}/rest/block/${hashHex}.bin`);
    if (!res.ok) throw new Error(`simnet REST block ${h}: HTTP ${res.status}`);
    const block = parseBlock(new Uint8Array(await res.arrayBuffer()));
    for (const tx of block.txs) {
      txs.push({ txid: toHexReversed(tx.txid), height: h });
      for (const out of tx.outputs) {
        if (isUnindexed(out.script)) continue; // the server indexes everything else
        const sh = toHexReversed(sha256(out.script));
        scripts.set(sh, (scripts.get(sh) ?? 0) + 1);
      }
    }
  }
  return { scripts, txs };
}

/** Uniform floats in [0, 1) from simnet's seeded PRNG, so that runs ask the same things. */
function prng(seed: number): () => number {
  const p = new Prng(seed, "bench-query");
  return () => p.float();
}

/** Short names of the methods a mix may hold. */
const METHODS: Record<string, string> = {
  history: "blockchain.scripthash.get_history",
  balance: "blockchain.scripthash.get_balance",
  listunspent: "blockchain.scripthash.listunspent",
  header: "blockchain.block.header",
  merkle: "blockchain.transaction.get_merkle",
};
/** The issue's wallet mix. */
const DEFAULT_MIX = "history=40,balance=20,listunspent=20,header=10,merkle=10";

/** Parses NAME=WEIGHT,... into [method, share] pairs whose shares add up to 1. */
function parseMix(text: string): [string, number][] {
  const out: [string, number][] = [];
  for (const part of text.split(",")) {
    const [name, weight] = part.trim().split("=");
    const w = Number(weight);
    if (!(name in METHODS) || !(w > 0)) {
      throw new Error(
        `--mix: '${part}' is not NAME=WEIGHT with NAME one of ${Object.keys(METHODS).join(", ")}`,
      );
    }
    out.push([METHODS[name], w]);
  }
  const total = out.reduce((a, [, w]) => a + w, 0);
  return out.map(([m, w]) => [m, w / total]);
}

/** Encodes `count` request lines drawn from the mix. */
function buildLines(
  mix: [string, number][],
  count: number,
  scriptHashes: string[],
  txs: { txid: string; height: number }[],
  tip: number,
): { lines: Uint8Array; offsets: Uint32Array } {
  const rand = prng(0xc0ffee);
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const u = rand();
    let acc = 0;
    let method = mix[mix.length - 1][0];
    for (const [m, w] of mix) {
      acc += w;
      if (u < acc) {
        method = m;
        break;
      }
    }
    let params: unknown[];
    if (method.startsWith("blockchain.scripthash.")) {
      params = [scriptHashes[Math.floor(rand() * scriptHashes.length)]];
    } else if (method === "blockchain.block.header") {
      params = [Math.floor(rand() * (tip + 1))];
    } else {
      const t = txs[Math.floor(rand() * txs.length)];
      params = [t.txid, t.height];
    }
    parts.push(JSON.stringify({ jsonrpc: "2.0", id: i + 1, method, params }) + "\n");
  }
  const encoder = new TextEncoder();
  const encoded = parts.map((p) => encoder.encode(p));
  const offsets = new Uint32Array(count + 1);
  let total = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = total;
    total += encoded[i].length;
  }
  offsets[count] = total;
  const lines = new Uint8Array(total);
  for (let i = 0; i < count; i++) lines.set(encoded[i], offsets[i]);
  return { lines, offsets };
}

// ---- measuring ----------------------------------------------------------------------------------------

/** System (kernel) CPU seconds of a process, from /proc/<pid>/stat; 0 when unavailable. */
function systemSeconds(pid: number): number {
  try {
    const stat = readProcFile(`/proc/${pid}/stat`);
    // Fields after the command name: stime is the 15th field of the whole line.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[15 - 3]) / 100;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const first = readProcFile("/proc/stat").split("\n")[0];
  const f = first.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = f[3] + f[4];
  return { busy: total - idle, total };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function runScenario(
  o: Options,
  server: ServerChild,
  simPid: number,
  sessions: number,
  inflight: number,
  rate: number,
  load: { lines: Uint8Array; offsets: Uint32Array },
): Promise<ScenarioResult> {
  const name = `${sessions} × ${inflight}${rate > 0 ? ` paced ${sessions * rate}/s` : ""}`;
  const nWorkers = Math.max(1, Math.min(o.clientWorkers, sessions));
  const workers: Worker[] = [];
  const replies: Promise<WorkerReply>[] = [];
  const lineCount = load.offsets.length - 1;
  for (let w = 0; w < nWorkers; w++) {
    const worker = new Worker(new URL("./bench_query_worker.ts", import.meta.url).href, { type: "module" });
    workers.push(worker);
    const share = Math.floor(sessions / nWorkers) + (w < sessions % nWorkers ? 1 : 0);
    const ready = Promise.withResolvers<WorkerReply>();
    const done = Promise.withResolvers<WorkerReply>();
    worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      if (e.data.type === "done") done.resolve(e.data);
      else ready.resolve(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      ready.reject(new Error(`load generator failed: ${e.message}`));
      done.reject(new Error(`load generator failed: ${e.message}`));
    };
    worker.postMessage(
      {
        type: "setup",
        host: "127.0.0.1",
        port: server.port,
        sessions: share,
        inflight,
        lines: load.lines,
        offsets: load.offsets,
        firstLine: Math.floor((lineCount * w) / nWorkers),
        ratePerSession: rate,
      } satisfies SetupMessage,
    );
    const r = await ready.promise;
    if (r.type === "failed") throw new Error(`load generator: ${r.message}`);
    replies.push(done.promise);
  }
  const serverDied = died("the server", server.child);
  const measure = () => ({
    at: performance.now(),
    server: readProcFigures(server.pid),
    serverSystem: systemSeconds(server.pid),
    self: readProcFigures(Deno.pid),
    sim: readProcFigures(simPid),
    machine: machineTicks(),
  });
  let before: ReturnType<typeof measure> | undefined;
  const beforeTimer = setTimeout(() => before = measure(), o.warmupMs);
  for (const w of workers) {
    w.postMessage({ type: "run", warmupMs: o.warmupMs, durationMs: o.durationMs } satisfies RunMessage);
  }
  let results: WorkerReply[];
  try {
    results = await Promise.race([Promise.all(replies), serverDied]);
  } finally {
    clearTimeout(beforeTimer);
    for (const w of workers) w.terminate();
  }
  const after = measure();
  if (!before) throw new Error("the measured window never started");
  let count = 0, errors = 0, lost = 0, bytesIn = 0;
  const all: Float64Array[] = [];
  for (const r of results) {
    if (r.type !== "done") continue;
    count += r.replies;
    errors += r.errors;
    lost += r.lost;
    bytesIn += r.bytesIn;
    all.push(r.latencies);
  }
  const lat = new Float64Array(all.reduce((n, a) => n + a.length, 0));
  let off = 0;
  for (const a of all) {
    lat.set(a, off);
    off += a.length;
  }
  lat.sort();
  const seconds = o.durationMs / 1000;
  const wall = (after.at - before.at) / 1000;
  const cpu = (a?: { cpuSeconds: number }, b?: { cpuSeconds: number }) =>
    a && b ? (b.cpuSeconds - a.cpuSeconds) / wall : 0;
  const serverCores = cpu(before.server, after.server);
  const serverSystemCores = (after.serverSystem - before.serverSystem) / wall;
  const clientCores = cpu(before.self, after.self);
  const simCores = cpu(before.sim, after.sim);
  const cpus = navigator.hardwareConcurrency;
  const busyCores =
    ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) *
    cpus;
  return {
    name,
    sessions,
    inflight,
    ratePerSession: rate,
    seconds,
    replies: count,
    errors,
    lostSessions: lost,
    requestsPerSecond: count / seconds,
    p50Ms: percentile(lat, 0.5),
    p90Ms: percentile(lat, 0.9),
    p99Ms: percentile(lat, 0.99),
    maxMs: lat.length ? lat[lat.length - 1] : NaN,
    serverCores,
    serverSystemCores,
    serverPeakRssBytes: after.server?.peakRssBytes ?? 0,
    clientCores,
    otherCores: Math.max(0, busyCores - serverCores - clientCores - simCores) + simCores,
    mbInPerSecond: bytesIn / seconds / 1e6,
  };
}

/**
 * Waits (at most 10 s) until every process uses under 5% of a core over a quarter of a second. The benchmark's own
 * process is one: after a load scenario its collector and its finished load workers can take most of a core for
 * a second, and on a two-core machine that is the server's share while a single call is timed.
 */
async function quiet(pids: number[]): Promise<void> {
  const deadline = performance.now() + 10_000;
  const cpu = () => pids.map((pid) => readProcFigures(pid)?.cpuSeconds ?? 0);
  let last = cpu();
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = cpu();
    if (now.every((c, i) => c - last[i] < 0.0125)) return;
    last = now;
  }
}

/**
 * Times get_history of one large history: the first call (not cached), then `repeats` more in a row, once every
 * process in `quietPids` has gone quiet. What this process needs is allocated before that: a multi-megabyte
 * allocation during the timing set off a collection of the heap the load scenarios left here, which took most
 * of both cores for ~150 ms while the server answered (calls of ~20 ms took up to 110).
 */
async function timeHistory(
  port: number,
  scriptHash: string,
  repeats: number,
  quietPids: number[],
): Promise<HistoryResult> {
  const probe = await Probe.open(port);
  try {
    const request = new TextEncoder().encode(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "blockchain.scripthash.get_history",
        params: [scriptHash],
      }) +
        "\n",
    );
    let coldReply = new Uint8Array(1 << 23);
    const ask = async () => {
      const t0 = performance.now();
      await probe.conn.write(request);
      const reply = await probe.lineBytes();
      return { ms: performance.now() - t0, reply };
    };
    await quiet(quietPids);
    const cold = await ask();
    // Checked after the timed calls, for the same reason.
    if (cold.reply.length > coldReply.length) coldReply = new Uint8Array(cold.reply.length);
    coldReply = coldReply.subarray(0, cold.reply.length);
    coldReply.set(cold.reply);
    const warm: number[] = [];
    for (let i = 0; i < repeats; i++) warm.push((await ask()).ms);
    const text = new TextDecoder().decode(coldReply);
    const parsed = JSON.parse(text);
    if (!Array.isArray(parsed.result)) throw new Error(`get_history failed: ${text.slice(0, 200)}`);
    warm.sort((a, b) => a - b);
    return {
      scriptHash,
      entries: parsed.result.length,
      replyBytes: coldReply.length + 1,
      coldMs: cold.ms,
      warmMedianMs: warm[Math.floor(warm.length / 2)],
      warmMaxMs: warm[warm.length - 1],
    };
  } finally {
    probe.close();
  }
}

// ---- the whole run ------------------------------------------------------------------------------------

async function runQueryBench(o: Options): Promise<QueryBenchResult> {
  await Deno.mkdir(o.dir, { recursive: true });
  await Deno.writeTextFile(`${o.dir}/.gitignore`, "*\n");
  const dbDir = `${o.dir}/query-db-${o.seed}-${o.blocks}-${o.txs}`;
  if (o.fresh) await Deno.remove(dbDir, { recursive: true }).catch(() => {});
  let sim: Awaited<ReturnType<typeof startSimnet>> | undefined;
  let server: ServerChild | undefined;
  const onSigint = () => void Promise.all([stop(server?.child), stop(sim?.child)]).then(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    say(`starting simnet (${o.blocks} blocks, ~${o.txs} txs, seed ${o.seed})`);
    sim = await startSimnet(o);
    if (o.mempool > 0) {
      const added = await simnetCall<string[]>(o, sim.url, "simnet_addtraffic", [o.mempool]);
      say(`simnet mempool: ${added.length} transactions`);
    }
    say(`simnet at height ${sim.height}; starting the server on ${dbDir} (syncs first if behind)`);
    server = await startServer(o, sim.url, dbDir);
    const syncSeconds = server.syncSeconds;
    if (syncSeconds !== undefined) say(`synced in ${syncSeconds.toFixed(1)} s`);

    say("sampling the chain for script hashes and txids");
    const sample = await sampleChain(sim.url, sim.height, 300);
    const rand = prng(42);
    const distinct = [...sample.scripts.keys()];
    for (let i = distinct.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [distinct[i], distinct[j]] = [distinct[j], distinct[i]];
    }
    const candidates = distinct.slice(0, o.pool);
    say(`probing ${candidates.length} script hashes' history sizes`);
    const probe = await Probe.open(server.port);
    const sizes: number[] = [];
    for (let i = 0; i < candidates.length; i += PROBE_CHUNK) {
      const replies = await probe.pipeline(
        candidates.slice(i, i + PROBE_CHUNK).map((sh) => ({
          method: "blockchain.scripthash.get_history",
          params: [sh],
        })),
      );
      for (const r of replies) sizes.push(Array.isArray(r.result) ? r.result.length : Infinity);
    }
    const pool: string[] = [];
    const poolSizes: number[] = [];
    let excludedLarge = 0, excludedEmpty = 0;
    for (let i = 0; i < candidates.length; i++) {
      if (sizes[i] === 0) excludedEmpty++;
      else if (sizes[i] > o.maxHistory) excludedLarge++;
      else {
        pool.push(candidates[i]);
        poolSizes.push(sizes[i]);
      }
    }
    // The large history: among the most frequent scripts, the one whose history is closest above the target.
    const frequent = [...sample.scripts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 32).map(([s]) => s);
    const frequentSizes: { result?: unknown }[] = [];
    for (const sh of frequent) {
      frequentSizes.push(
        ...await probe.pipeline([{ method: "blockchain.scripthash.get_history", params: [sh] }]),
      );
    }
    probe.close();
    let big: { sh: string; n: number } | undefined;
    for (let i = 0; i < frequent.length; i++) {
      const r = frequentSizes[i].result;
      const n = Array.isArray(r) ? r.length : 0;
      const better = big === undefined ||
        (n >= o.history ? big.n < o.history || n < big.n : big.n < o.history && n > big.n);
      if (better) big = { sh: frequent[i], n };
    }
    poolSizes.sort((a, b) => a - b);
    const txs = sample.txs;
    say(
      `mix pool: ${pool.length} script hashes (history mean ${
        (poolSizes.reduce((a, b) => a + b, 0) / poolSizes.length).toFixed(1)
      }, p99 ${
        poolSizes[Math.floor(poolSizes.length * 0.99)]
      }; left out ${excludedLarge} over ${o.maxHistory} ` +
        `and ${excludedEmpty} empty), ${txs.length} txids; large history: ${big?.n} entries`,
    );
    const load = buildLines(o.mix, 200_000, pool, txs, sim.height);
    if (o.saveRequests) await Deno.writeFile(o.saveRequests, load.lines);

    const scenarios: ScenarioResult[] = [];
    for (const sc of o.scenarios) {
      await stop(server.child);
      server = await startServer(o, sim.url, dbDir);
      say(
        `running ${sc.sessions}x${sc.inflight}${sc.rate > 0 ? `@${sc.rate}` : ""} for ${
          o.warmupMs / 1000
        } + ${o.durationMs / 1000} s`,
      );
      const r = await runScenario(o, server, sim.child.proc.pid, sc.sessions, sc.inflight, sc.rate, load);
      say(
        `  ${Math.round(r.requestsPerSecond)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${
          r.p99Ms.toFixed(2)
        } ms, ` +
          `server ${r.serverCores.toFixed(2)} cores (${r.serverSystemCores.toFixed(2)} system), client ${
            r.clientCores.toFixed(2)
          }, other ${r.otherCores.toFixed(2)}` +
          (r.errors > 0 || r.lostSessions > 0 ? `, ${r.errors} errors, ${r.lostSessions} sessions lost` : ""),
      );
      scenarios.push(r);
    }
    // On the last scenario's server: warmed up, and the large history (not in the mix) is not cached yet. It may
    // still be answering what the load generator left queued; the timing starts once it has gone quiet.
    const history = big ? await timeHistory(server.port, big.sh, 10, [server.pid, Deno.pid]) : undefined;
    const { sockets, allocator } = server;
    await stop(server.child);
    server = undefined;
    let cpuinfo = "";
    try {
      cpuinfo = readProcFile("/proc/cpuinfo");
    } catch {
      // Only the machine's description is lost.
    }
    return {
      mix: o.mix,
      machine: {
        cpus: navigator.hardwareConcurrency,
        model: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown",
      },
      server: { allocator, sockets },
      chain: {
        height: sim.height,
        txs: o.txs,
        seed: o.seed,
        dbBytes: await diskUsage(dbDir),
        syncSeconds,
        mempool: o.mempool,
      },
      pool: {
        scriptHashes: pool.length,
        excludedLarge,
        excludedEmpty,
        historyMean: poolSizes.reduce((a, b) => a + b, 0) / Math.max(1, poolSizes.length),
        historyP99: poolSizes[Math.floor(poolSizes.length * 0.99)] ?? 0,
        txids: txs.length,
      },
      scenarios,
      history,
    };
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    await stop(server?.child);
    await stop(sim?.child);
  }
}

/** The result as the table `bench query` prints. */
export function formatQueryResult(r: QueryBenchResult): string {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
  const pad = (s: string, n: number) => s.padStart(n);
  const lines = [
    `machine      ${r.machine.cpus} × ${r.machine.model}`,
    `server       ${r.server.allocator}, client sockets on ${r.server.sockets}`,
    `chain        height ${r.chain.height}, ~${r.chain.txs} txs (seed ${r.chain.seed}), database ${
      mb(r.chain.dbBytes)
    }, mempool ${r.chain.mempool} txs`,
    `mix          ${r.mix.map(([m, w]) => `${m.split(".").pop()} ${Math.round(w * 100)}%`).join(", ")}`,
    `pool         ${r.pool.scriptHashes} script hashes (history mean ${
      r.pool.historyMean.toFixed(1)
    }, p99 ${r.pool.historyP99}; ${r.pool.excludedLarge} larger ones left out), ${r.pool.txids} txids`,
    "",
    `${"sessions × in flight".padEnd(30)}${pad("req/s", 9)}${pad("p50 ms", 9)}${pad("p99 ms", 9)}${
      pad("server CPU", 12)
    }${pad("peak RSS", 10)}${pad("client CPU", 12)}${pad("other", 7)}${pad("errors", 8)}${pad("lost", 6)}`,
  ];
  for (const s of r.scenarios) {
    lines.push(
      `${s.name.padEnd(30)}${pad(String(Math.round(s.requestsPerSecond)), 9)}${pad(s.p50Ms.toFixed(2), 9)}${
        pad(s.p99Ms.toFixed(2), 9)
      }${pad(`${s.serverCores.toFixed(2)} cores`, 12)}${pad(mb(s.serverPeakRssBytes), 10)}${
        pad(`${s.clientCores.toFixed(2)} cores`, 12)
      }${pad(s.otherCores.toFixed(2), 7)}${pad(String(s.errors), 8)}${pad(String(s.lostSessions), 6)}`,
    );
  }
  if (r.scenarios.some((s) => s.errors > 0 || s.lostSessions > 0)) {
    lines.push(
      "",
      "errors or lost sessions (closed by the server during the run): those rows did not serve the whole load",
    );
  }
  if (r.history) {
    const h = r.history;
    lines.push(
      "",
      `history of ${h.entries} entries (${mb(h.replyBytes)} reply): first call ${
        h.coldMs.toFixed(1)
      } ms, then ` +
        `median ${h.warmMedianMs.toFixed(1)} ms, max ${h.warmMaxMs.toFixed(1)} ms`,
    );
  }
  return lines.join("\n");
}

// ---- command line -------------------------------------------------------------------------------------

function parseOptions(argv: string[]): Options | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      txs: { type: "string", default: "2000000" },
      blocks: { type: "string", default: "2100" },
      seed: { type: "string", default: "bench" },
      dir: { type: "string", default: ".bench" },
      scenarios: { type: "string", default: "16x1,16x16,1000x1,1000x1@10" },
      duration: { type: "string", default: "10" },
      mix: { type: "string", default: DEFAULT_MIX },
      warmup: { type: "string", default: "10" },
      "client-workers": { type: "string", default: "2" },
      pool: { type: "string", default: "20000" },
      mempool: { type: "string", default: "5000" },
      "max-history": { type: "string", default: "1000" },
      history: { type: "string", default: "50000" },
      "server-env": { type: "string", multiple: true, default: [] },
      "no-allocator-env": { type: "boolean", default: false },
      "cpu-prof": { type: "string" },
      "deno-flag": { type: "string", multiple: true, default: [] },
      fresh: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      "save-requests": { type: "string" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  // `deno task bench query` may pass the subcommand along.
  const rest = positionals[0] === "query" ? positionals.slice(1) : positionals;
  if (rest.length > 0) throw new Error(`unexpected argument '${rest[0]}'`);
  const int = (name: string, text: string, min: number) => {
    const n = Number(text);
    if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || n < min) throw new Error(`--${name} must be a number >= ${min}`);
    return n;
  };
  const scenarios = values.scenarios.split(",").map((s) => {
    const m = /^(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?$/.exec(s.trim());
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1 || (m[3] !== undefined && Number(m[3]) <= 0)) {
      throw new Error(`--scenarios: '${s}' is not SESSIONSxINFLIGHT[@RATE], e.g. 16x1 or 1000x1@10`);
    }
    return { sessions: Number(m[1]), inflight: Number(m[2]), rate: m[3] === undefined ? 0 : Number(m[3]) };
  });
  const serverEnv: Record<string, string> = {};
  for (const kv of values["server-env"]) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`--server-env: '${kv}' is not KEY=VALUE`);
    serverEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return {
    txs: int("txs", values.txs, 1),
    blocks: int("blocks", values.blocks, 1),
    seed: values.seed,
    dir: values.dir,
    scenarios,
    mix: parseMix(values.mix),
    durationMs: int("duration", values.duration, 0.1) * 1000,
    warmupMs: int("warmup", values.warmup, 0) * 1000,
    clientWorkers: int("client-workers", values["client-workers"], 1),
    pool: int("pool", values.pool, 1),
    mempool: int("mempool", values.mempool, 0),
    maxHistory: int("max-history", values["max-history"], 1),
    history: int("history", values.history, 1),
    serverEnv,
    noAllocatorEnv: values["no-allocator-env"],
    cpuProf: values["cpu-prof"],
    denoFlags: values["deno-flag"],
    fresh: values.fresh,
    json: values.json,
    saveRequests: values["save-requests"],
    verbose: values.verbose,
  };
}

/** Runs `bench query` with these arguments; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let opts: Options | "help";
  try {
    opts = parseOptions(argv);
  } catch (err) {
    console.error(`bench query: ${(err as Error).message} (see --help)`);
    return 2;
  }
  if (opts === "help") {
    console.log(HELP);
    return 0;
  }
  try {
    const result = await runQueryBench(opts);
    console.log(opts.json ? JSON.stringify(result, null, 2) : formatQueryResult(result));
    return 0;
  } catch (err) {
    console.error(`bench query: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
