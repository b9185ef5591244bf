// The client against a fake bitcoind (Deno.serve on port 0) that speaks Core's legacy JSON-RPC dialect, REST,
// basic/cookie auth, and injects faults on demand. Nothing here sleeps: tests wait for server-side events or
// for log lines, and the client's back-off is configured in single milliseconds.
import assert from "node:assert/strict";
import { sha256d } from "../../src/chain/hash.ts";
import { toHex, toHexReversed } from "../../src/chain/hex.ts";
import {
  Daemon,
  DAEMON_ERROR,
  DaemonError,
  type DaemonOptions,
  formatCoreVersion,
} from "../../src/daemon/daemon.ts";
import type { Log, LogLevelName } from "../../src/log.ts";

// --- fake bitcoind -----------------------------------------------------------------------------------------

interface Faults {
  busy: number;
  warmup: string[];
  malformed: number;
  nonJson: number;
  drop: number;
  hang: number;
}

interface RpcReq {
  method: string;
  params?: unknown[];
  id?: unknown;
}

class CoreError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

function makeBlocks(n: number): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(32);
  for (let h = 0; h < n; h++) {
    const body = 1 + (h * 37) % 300;
    const raw = new Uint8Array(80 + body);
    const view = new DataView(raw.buffer);
    view.setUint32(0, 0x20000000, true);
    raw.set(prev, 4);
    raw.fill(h & 0xff, 36, 68);
    view.setUint32(68, 1700000000 + h * 600, true);
    view.setUint32(72, 0x207fffff, true);
    view.setUint32(76, h, true);
    raw[80] = 1;
    for (let i = 81; i < raw.length; i++) raw[i] = (i * 7 + h) & 0xff;
    blocks.push(raw);
    prev = sha256d(raw.subarray(0, 80));
  }
  return blocks;
}

class FakeBitcoind {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  user = "rpcuser";
  password = "rpc-SECRET-pw";
  chain = "regtest";
  rest: "on" | "404" | "403" = "on";
  /** RPC methods answered with HTTP 403. */
  readonly forbidden = new Set<string>();
  readonly corruptRest = new Set<string>();
  /** REST bodies for these display hashes break off halfway (the connection drops mid-body). */
  readonly truncatedRest = new Set<string>();
  /** getblock for these display hashes answers with the genesis block instead. */
  readonly wrongBlock = new Set<string>();
  readonly faults: Faults = { busy: 0, warmup: [], malformed: 0, nonJson: 0, drop: 0, hang: 0 };
  readonly counts = { rpc: 0, rest: 0, probe: 0, unauthorized: 0, hung: 0 };
  readonly methods: string[] = [];
  readonly blocks: Uint8Array[];
  readonly hashes: Uint8Array[];
  private readonly byHash = new Map<string, Uint8Array>();
  readonly txs = new Map<string, string>();
  /** When set, RPC requests wait in `held` until released. */
  hold = false;
  readonly held: (() => void)[] = [];
  pending = 0;
  maxPending = 0;
  private readonly waiters: { cond: () => boolean; resolve: () => void }[] = [];
  private readonly closing: Promise<void>;
  private endClosing!: () => void;

  constructor(blockCount = 20) {
    this.blocks = makeBlocks(blockCount);
    this.hashes = this.blocks.map((b) => sha256d(b.subarray(0, 80)));
    this.blocks.forEach((b, i) => this.byHash.set(toHexReversed(this.hashes[i]), b));
    this.txs.set("aa".repeat(32), "0200000001deadbeef");
    this.closing = new Promise((r) => (this.endClosing = r));
    this.server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => this.handle(req));
  }

  get port(): number {
    return this.server.addr.port;
  }

  url(withCredentials = true): string {
    return withCredentials
      ? `http://${this.user}:${this.password}@127.0.0.1:${this.port}/`
      : `http://127.0.0.1:${this.port}/`;
  }

  /** Resolves once `cond` holds; checked after every request event. */
  waitFor(cond: () => boolean): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ cond, resolve }));
  }

  private changed(): void {
    for (const w of [...this.waiters]) {
      if (w.cond()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  async close(): Promise<void> {
    this.endClosing();
    for (const release of this.held.splice(0)) release();
    await this.server.shutdown();
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname.startsWith("/rest/")) return this.handleRest(url);
    if (req.method !== "POST") {
      return new Response("JSONRPC server handles only POST requests", { status: 405 });
    }
    if (url.pathname !== "/") return new Response(null, { status: 404 });
    if (req.headers.get("authorization") !== "Basic " + btoa(`${this.user}:${this.password}`)) {
      this.counts.unauthorized++;
      this.changed();
      return new Response(null, { status: 401, headers: { "WWW-Authenticate": 'Basic realm="jsonrpc"' } });
    }
    const body = await req.json() as RpcReq | RpcReq[];
    this.counts.rpc++;
    for (const r of Array.isArray(body) ? body : [body]) this.methods.push(r.method);
    this.pending++;
    this.maxPending = Math.max(this.maxPending, this.pending);
    this.changed();
    try {
      if (this.hold) {
        const released = new Promise<void>((r) => this.held.push(r));
        this.changed();
        await released;
      }
      return await this.reply(body);
    } finally {
      this.pending--;
      this.changed();
    }
  }

  private async reply(body: RpcReq | RpcReq[]): Promise<Response> {
    // Core's -rpcwhitelist: an empty 403 for a method the user may not call.
    if ((Array.isArray(body) ? body : [body]).some((r) => this.forbidden.has(r.method))) {
      return new Response(null, { status: 403 });
    }
    const f = this.faults;
    if (f.hang > 0) {
      f.hang--;
      this.counts.hung++;
      this.changed();
      // Never answers; the handler is released when the fake shuts down.
      await this.closing;
      return new Response(null, { status: 500 });
    }
    if (f.drop > 0) {
      f.drop--;
      // Promise 100 bytes, send 5, hang up: the client sees the connection die mid-reply.
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"res'));
          c.close();
        },
      });
      return new Response(stream, {
        headers: { "content-type": "application/json", "content-length": "100" },
      });
    }
    if (f.busy > 0) {
      f.busy--;
      return new Response("Work queue depth exceeded", {
        status: 503,
        headers: { "content-type": "text/plain" },
      });
    }
    if (f.malformed > 0) {
      f.malformed--;
      return new Response('{"result":12,"err', { headers: { "content-type": "application/json" } });
    }
    if (f.nonJson > 0) {
      f.nonJson--;
      return new Response("<html>bad gateway</html>", {
        status: 502,
        headers: { "content-type": "text/html" },
      });
    }
    const warm = f.warmup.length > 0 ? f.warmup.shift() : undefined;
    const one = (r: RpcReq) => {
      try {
        if (warm !== undefined) throw new CoreError(-28, warm);
        return { result: this.method(r.method, r.params ?? []), error: null, id: r.id };
      } catch (e) {
        if (!(e instanceof CoreError)) throw e;
        return { result: null, error: { code: e.code, message: e.message }, id: r.id };
      }
    };
    if (Array.isArray(body)) return json(200, body.map(one));
    const out = one(body);
    return json(out.error ? (out.error.code === -32601 ? 404 : 500) : 200, out);
  }

  private method(name: string, params: unknown[]): unknown {
    switch (name) {
      case "getnetworkinfo":
        return { version: 280100, subversion: "/Satoshi:28.1.0/", protocolversion: 70016 };
      case "getblockchaininfo":
        return { chain: this.chain, blocks: this.blocks.length - 1 };
      case "getblockcount":
        return this.blocks.length - 1;
      case "getblockhash": {
        const h = params[0] as number;
        if (!(h >= 0 && h < this.blocks.length)) throw new CoreError(-8, "Block height out of range");
        return toHexReversed(this.hashes[h]);
      }
      case "getblock": {
        const raw = this.byHash.get(params[0] as string);
        if (!raw) throw new CoreError(-5, "Block not found");
        if (this.wrongBlock.has(params[0] as string)) return toHex(this.blocks[0]);
        return toHex(raw);
      }
      case "getrawtransaction": {
        const tx = this.txs.get(params[0] as string);
        if (!tx) throw new CoreError(-5, "No such mempool or blockchain transaction.");
        return tx;
      }
      default:
        throw new CoreError(-32601, "Method not found");
    }
  }

  private handleRest(url: URL): Response {
    if (url.pathname === "/rest/chaininfo.json") this.counts.probe++;
    else this.counts.rest++;
    this.changed();
    if (this.rest === "404") return new Response("Not found", { status: 404 });
    if (this.rest === "403") return new Response(null, { status: 403 });
    if (url.pathname === "/rest/chaininfo.json") return json(200, { chain: this.chain });
    const m = /^\/rest\/block\/([0-9a-f]{64})\.bin$/.exec(url.pathname);
    const raw = m ? this.byHash.get(m[1]) : undefined;
    if (!m || !raw) return new Response(`${m?.[1]} not found`, { status: 404 });
    if (this.corruptRest.has(m[1])) {
      const bad = raw.slice();
      bad[0] ^= 1;
      return new Response(bad, { headers: { "content-type": "application/octet-stream" } });
    }
    if (this.truncatedRest.has(m[1])) {
      const half = raw.slice(0, raw.length >> 1);
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (c.desiredSize === null) return;
          c.enqueue(half);
          c.error(new Error("connection dropped"));
        },
      });
      return new Response(body, {
        headers: { "content-type": "application/octet-stream", "content-length": String(raw.length) },
      });
    }
    return new Response(raw.slice(), { headers: { "content-type": "application/octet-stream" } });
  }
}

function json(status: number, value: unknown): Response {
  return new Response(JSON.stringify(value) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });
}

// --- helpers -----------------------------------------------------------------------------------------------

class CaptureLog implements Log {
  readonly lines: string[] = [];
  private readonly waiters: { re: RegExp; resolve: () => void }[] = [];
  debug = (m: string) => this.push("DEBUG", m);
  info = (m: string) => this.push("INFO", m);
  warn = (m: string) => this.push("WARNING", m);
  error = (m: string) => this.push("ERROR", m);
  enabled = (_: LogLevelName) => true;

  private push(level: string, m: string): void {
    this.lines.push(`${level} ${m}`);
    for (const w of [...this.waiters]) {
      if (w.re.test(m)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves when a line matching `re` is (or was) logged. */
  waitFor(re: RegExp): Promise<void> {
    if (this.lines.some((l) => re.test(l))) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ re, resolve }));
  }

  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

async function deadPort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await Promise.resolve();
  return port;
}

interface Fixture {
  fake: FakeBitcoind;
  log: CaptureLog;
  daemon: Daemon;
}

async function withDaemon(
  opts: Partial<DaemonOptions> & { blocks?: number },
  body: (f: Fixture) => Promise<void>,
): Promise<void> {
  const fake = new FakeBitcoind(opts.blocks);
  const log = new CaptureLog();
  const daemon = new Daemon({
    urls: [fake.url()],
    timeoutMs: 5000,
    log,
    retryInitialDelayMs: 1,
    retryMaxDelayMs: 4,
    ...opts,
  });
  try {
    await body({ fake, log, daemon });
    for (const line of log.lines) assert.ok(!line.includes(fake.password), `password leaked into: ${line}`);
  } finally {
    daemon.close();
    await fake.close();
  }
}

async function rejectsWith(p: Promise<unknown>, code: number, message?: RegExp): Promise<DaemonError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DaemonError, `expected DaemonError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

// --- tests -------------------------------------------------------------------------------------------------

Deno.test("calls, batches and the BlockSource methods return bitcoind's data in internal byte order", async () => {
  await withDaemon({ preferRest: false }, async ({ fake, daemon, log }) => {
    assert.equal(await daemon.getBlockCount(), 19);
    assert.deepEqual(await daemon.call("getblockhash", [2]), toHexReversed(fake.hashes[2]));
    assert.deepEqual(await daemon.getBlockHashes(3, 5), fake.hashes.slice(3, 8));
    assert.deepEqual(await daemon.getBlockHashes(3, 0), []);
    const want = fake.hashes.slice(0, 19);
    assert.deepEqual(await daemon.getRawBlocks(want), fake.blocks.slice(0, 19));
    assert.equal(fake.counts.rest + fake.counts.probe, 0, "preferRest false never touches REST");
    const txid = new Uint8Array(32).fill(0xaa);
    assert.deepEqual(
      await daemon.getRawTransaction(txid),
      Uint8Array.from([2, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]),
    );
    assert.deepEqual(await daemon.batch("getblockhash", [[0], [1]]), [
      toHexReversed(fake.hashes[0]),
      toHexReversed(fake.hashes[1]),
    ]);
    assert.deepEqual(await daemon.batch("getblockhash", []), []);
    assert.equal(log.matching(/connected to daemon/).length, 1, "first contact is logged once");
    assert.match(
      log.matching(/connected to daemon/)[0],
      new RegExp(
        `^INFO connected to daemon http://rpcuser:\\*\\*\\*@127\\.0\\.0\\.1:${fake.port}/: ` +
          "version 28\\.1\\.0, chain regtest$",
      ),
    );
    assert.equal(daemon.url, `http://rpcuser:***@127.0.0.1:${fake.port}/`);
  });
});

Deno.test("Core's non-transient errors reach the caller at once with Core's code and message", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    await daemon.getBlockCount();
    const before = fake.counts.rpc;
    await rejectsWith(daemon.call("getblockhash", [999]), -8, /^Block height out of range$/);
    await rejectsWith(daemon.getRawTransaction(new Uint8Array(32)), -5, /No such mempool/);
    await rejectsWith(daemon.call("nosuchmethod"), -32601, /Method not found/);
    assert.equal(fake.counts.rpc - before, 3, "one request each, no retries");
  });
});

Deno.test("batch throws the failing item's error; batchSettled reports each item", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    await rejectsWith(daemon.batch("getblockhash", [[0], [500], [1]]), -8, /out of range/);
    const settled = await daemon.batchSettled("getblockhash", [[0], [500], [1]]);
    assert.deepEqual(settled, [
      { result: toHexReversed(fake.hashes[0]) },
      { error: { code: -8, message: "Block height out of range" } },
      { result: toHexReversed(fake.hashes[1]) },
    ]);
  });
});

Deno.test("checkNetwork accepts the configured chain and names both chains otherwise", async () => {
  await withDaemon({}, async ({ daemon }) => {
    const info = await daemon.checkNetwork("regtest");
    assert.deepEqual(info, {
      version: "28.1.0",
      subversion: "/Satoshi:28.1.0/",
      chain: "regtest",
      blocks: 19,
    });
    await rejectsWith(daemon.checkNetwork("main"), DAEMON_ERROR.WRONG_CHAIN, /on chain 'regtest' but 'main'/);
  });
  await withDaemon({}, async ({ fake, daemon }) => {
    fake.chain = "main";
    await rejectsWith(daemon.checkNetwork("regtest"), DAEMON_ERROR.WRONG_CHAIN, /change NET/);
  });
  assert.equal(formatCoreVersion(280100), "28.1.0");
  assert.equal(formatCoreVersion(170001), "17.0.1");
});

Deno.test("blocks come over REST when enabled, verified, with bounded parallelism", async () => {
  await withDaemon({ restConcurrency: 4 }, async ({ fake, daemon }) => {
    const got = await daemon.getRawBlocks(fake.hashes.slice(2, 14));
    assert.deepEqual(got, fake.blocks.slice(2, 14));
    assert.equal(daemon.restAvailable, true);
    assert.equal(fake.counts.probe, 1);
    assert.equal(fake.counts.rest, 12);
    assert.ok(!fake.methods.includes("getblock"), "no JSON-RPC getblock when REST works");
    await daemon.getRawBlocks(fake.hashes.slice(0, 2));
    assert.equal(fake.counts.probe, 1, "REST is probed once");
  });
});

Deno.test("REST disabled (404 or 403): logged once, blocks over JSON-RPC", async () => {
  for (const mode of ["404", "403"] as const) {
    await withDaemon({}, async ({ fake, daemon, log }) => {
      fake.rest = mode;
      assert.deepEqual(await daemon.getRawBlocks(fake.hashes.slice(0, 10)), fake.blocks.slice(0, 10));
      assert.deepEqual(await daemon.getRawBlocks(fake.hashes.slice(10, 12)), fake.blocks.slice(10, 12));
      assert.equal(daemon.restAvailable, false);
      assert.equal(fake.counts.probe, 1);
      assert.equal(fake.counts.rest, 0);
      assert.deepEqual(log.matching(/REST/), [
        "INFO REST interface disabled on the daemon; fetching blocks over JSON-RPC (enable -rest=1 to halve the bytes)",
      ]);
      assert.equal(fake.methods.filter((m) => m === "getblock").length, 12);
    });
  }
});

Deno.test("a REST body that is not the asked block is refetched over JSON-RPC, then REST is re-probed", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    fake.corruptRest.add(toHexReversed(fake.hashes[5]));
    const got = await daemon.getRawBlocks(fake.hashes.slice(0, 10));
    assert.deepEqual(got, fake.blocks.slice(0, 10));
    assert.ok(fake.methods.includes("getblock"), "the bad one came over JSON-RPC");
    assert.equal(daemon.restAvailable, undefined);
    fake.corruptRest.clear();
    await daemon.getRawBlocks(fake.hashes.slice(10, 12));
    assert.equal(fake.counts.probe, 2);
    assert.equal(daemon.restAvailable, true);
  });
});

Deno.test("a REST body cut off before its Content-Length is refetched, never used short", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    fake.truncatedRest.add(toHexReversed(fake.hashes[3]));
    const got = await daemon.getRawBlocks(fake.hashes.slice(0, 6));
    assert.deepEqual(got, fake.blocks.slice(0, 6));
    assert.ok(fake.methods.includes("getblock"), "the cut one came over JSON-RPC");
  });
});

Deno.test("JSON-RPC blocks: unknown is Core's -5; the wrong block is a BAD_REPLY, never accepted", async () => {
  await withDaemon({ preferRest: false }, async ({ fake, daemon }) => {
    const unknown = new Uint8Array(32).fill(7);
    await rejectsWith(daemon.getRawBlocks([fake.hashes[1], unknown]), -5, /Block not found/);
    fake.wrongBlock.add(toHexReversed(fake.hashes[4]));
    await rejectsWith(
      daemon.getRawBlocks(fake.hashes.slice(3, 6)),
      DAEMON_ERROR.BAD_REPLY,
      new RegExp(`not block ${toHexReversed(fake.hashes[4])}`),
    );
  });
});

Deno.test("HTTP 503 is retried; one 'unavailable' line going down, one 'is back' line coming up", async () => {
  await withDaemon({}, async ({ fake, daemon, log }) => {
    await daemon.getBlockCount();
    fake.faults.busy = 3;
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.faults.busy, 0);
    const url = `http://rpcuser:\\*\\*\\*@127\\.0\\.0\\.1:${fake.port}/`;
    assert.equal(log.matching(/^WARNING.*unavailable/).length, 1);
    assert.equal(log.matching(/^DEBUG.*still unavailable/).length, 2, "later failures only at debug level");
    assert.match(
      log.matching(/^WARNING.*unavailable/)[0],
      new RegExp(`^WARNING daemon ${url} unavailable: HTTP 503 Work queue depth exceeded; retrying$`),
    );
    assert.deepEqual(log.matching(/is back/), [
      `INFO daemon http://rpcuser:***@127.0.0.1:${fake.port}/ is back`,
    ]);
  });
});

Deno.test("warm-up (-28) is waited out, logging each phase once", async () => {
  await withDaemon({}, async ({ fake, daemon, log }) => {
    fake.faults.warmup = [
      "Loading block index…",
      "Loading block index…",
      "Loading block index…",
      "Verifying blocks…",
    ];
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.faults.warmup.length, 0);
    assert.deepEqual(log.matching(/warming up/).map((l) => l.replace(/^.*warming up: /, "")), [
      "Loading block index…; waiting",
      "Verifying blocks…; waiting",
    ]);
    assert.equal(log.matching(/unavailable/).length, 0, "warm-up is not an outage");
  });
});

Deno.test("warm-up inside a batch retries the batch", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    await daemon.getBlockCount();
    fake.faults.warmup = ["Starting network threads…"];
    assert.deepEqual(await daemon.getBlockHashes(0, 3), fake.hashes.slice(0, 3));
  });
});

Deno.test("malformed JSON, non-JSON replies and dropped connections are retried", async () => {
  await withDaemon({}, async ({ fake, daemon, log }) => {
    await daemon.getBlockCount();
    fake.faults.malformed = 2;
    assert.equal(await daemon.getBlockCount(), 19);
    assert.match(log.matching(/^WARNING.*unavailable/)[0], /malformed JSON reply \(HTTP 200, 17 bytes\)/);
    fake.faults.nonJson = 1;
    assert.equal(await daemon.getBlockCount(), 19);
    assert.match(log.matching(/^WARNING.*unavailable/)[1], /HTTP 502 <html>bad gateway<\/html>/);
    fake.faults.drop = 2;
    assert.deepEqual(await daemon.getBlockHashes(1, 2), fake.hashes.slice(1, 3));
    assert.equal(fake.faults.drop, 0);
    assert.equal(log.matching(/^WARNING.*unavailable/).length, 3);
    assert.equal(log.matching(/is back/).length, 3);
  });
});

Deno.test("a reply slower than the timeout is abandoned and the request retried", async () => {
  await withDaemon({ timeoutMs: 100 }, async ({ fake, daemon, log }) => {
    await daemon.getBlockCount();
    fake.faults.hang = 1;
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.counts.hung, 1);
    assert.match(log.matching(/unavailable/)[0], /no reply within 0\.1s; retrying$/);
    assert.equal(fake.counts.rpc, 4, "identify, first count, the abandoned one, the retry");
  });
});

Deno.test("requests a stalled bitcoind still holds keep their slots, so its queue never grows past the cap", async () => {
  // abandonMs far beyond the test: a request once sent holds its slot until the node answers it.
  await withDaemon({ timeoutMs: 20, maxInFlight: 2, abandonMs: 60_000 }, async ({ fake, daemon, log }) => {
    await daemon.getBlockCount();
    // Core stalls (cs_main held): requests wait, and it works on them even after their clients hang up.
    fake.hold = true;
    const before = fake.counts.rpc;
    const pending = daemon.getBlockCount();
    await log.waitFor(/still unavailable: no reply within/);
    // Two attempts timed out; both are still at the node and hold both slots, so a third is not sent.
    assert.equal(daemon.inFlight, 2);
    assert.equal(fake.counts.rpc - before, 2);
    fake.hold = false;
    for (const release of fake.held.splice(0)) release();
    assert.equal(await pending, 19);
    assert.equal(fake.counts.rpc - before, 3, "the third attempt went once the node answered the others");
    await fake.waitFor(() => daemon.inFlight === 0);
  });
});

/**
 * Two fake nodes and a client with one slot per URL that keeps abandoned requests for an hour; `body` runs once
 * the first node hangs every request (without closing connections).
 */
async function withHangingFirst(
  body: (first: FakeBitcoind, second: FakeBitcoind, daemon: Daemon) => Promise<void>,
): Promise<void> {
  const first = new FakeBitcoind(), second = new FakeBitcoind();
  const daemon = new Daemon({
    urls: [first.url(), second.url()],
    timeoutMs: 20,
    abandonMs: 3_600_000,
    maxInFlight: 1,
    log: new CaptureLog(),
    retryInitialDelayMs: 1,
  });
  try {
    assert.equal(await daemon.getBlockCount(), 19);
    first.faults.hang = 1000;
    await body(first, second, daemon);
  } finally {
    daemon.close();
    await first.close();
    await second.close();
  }
}

/** `p`, or a failure after 20 s: a client stuck waiting for a slot fails the test instead of hanging it. */
async function orStuck<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), 20_000);
  });
  try {
    return await Promise.race([p, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("failover: requests hanging at the first URL hold its slots only, not the second's", async () => {
  await withHangingFirst(async (first, second, daemon) => {
    assert.equal(await orStuck(daemon.getBlockCount(), "the second URL waited for the first one's slot"), 19);
    assert.equal(daemon.url, `http://rpcuser:***@127.0.0.1:${second.port}/`);
    assert.equal(first.counts.hung, 1);
  });
});

Deno.test("failover: calls queued for a hanging first URL's slots go to the second once the client moves", async () => {
  await withHangingFirst(async (first, _second, daemon) => {
    // One call takes the first URL's only slot and hangs; the others queue behind it.
    const calls = Promise.all(Array.from({ length: 4 }, () => daemon.getBlockCount()));
    assert.deepEqual(await orStuck(calls, "queued calls stayed with the first URL"), [19, 19, 19, 19]);
    assert.equal(first.counts.hung, 1, "only the call that held the slot went to the first URL");
  });
});

Deno.test("failover: a 403 is about one method, not the URL: it fails at once and the client stays", async () => {
  const first = new FakeBitcoind(), second = new FakeBitcoind();
  first.forbidden.add("estimatesmartfee");
  const log = new CaptureLog();
  const daemon = new Daemon({
    urls: [first.url(), second.url()],
    timeoutMs: 5000,
    log,
    retryInitialDelayMs: 1,
  });
  try {
    assert.equal(await daemon.getBlockCount(), 19);
    await rejectsWith(daemon.call("estimatesmartfee", [2]), DAEMON_ERROR.FORBIDDEN);
    assert.equal(daemon.url, `http://rpcuser:***@127.0.0.1:${first.port}/`);
    assert.equal(second.counts.rpc, 0);
    assert.deepEqual(log.matching(/^WARNING/), []);
  } finally {
    daemon.close();
    await first.close();
    await second.close();
  }
});

Deno.test("failover: a dead first URL moves the client to the second", async () => {
  const fake = new FakeBitcoind();
  const log = new CaptureLog();
  const dead = `http://rpcuser:${fake.password}@127.0.0.1:${await deadPort()}/`;
  const daemon = new Daemon({
    urls: [dead, fake.url()],
    timeoutMs: 5000,
    log,
    retryInitialDelayMs: 1,
    retryMaxDelayMs: 2,
  });
  try {
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(daemon.url, `http://rpcuser:***@127.0.0.1:${fake.port}/`);
    assert.match(
      log.lines[0],
      /^WARNING daemon http:\/\/rpcuser:\*\*\*@127\.0\.0\.1:\d+\/ unavailable: .*[Cc]onnection refused.*; retrying$/,
    );
    assert.equal(log.lines[1], `INFO failing over to daemon http://rpcuser:***@127.0.0.1:${fake.port}/`);
    assert.ok(
      log.lines.some((l) =>
        l.startsWith("INFO connected to daemon http://rpcuser:***@127.0.0.1:" + fake.port)
      ),
    );
    assert.ok(log.lines.some((l) => l.endsWith(" is back")));
    for (const line of log.lines) assert.ok(!line.includes(fake.password), line);
  } finally {
    daemon.close();
    await fake.close();
  }
});

for (const fault of ["wrong chain", "wrong password"] as const) {
  Deno.test(`failover: a backup with a ${fault} is passed over, back to the first URL once it answers`, async () => {
    const first = new FakeBitcoind(), backup = new FakeBitcoind();
    if (fault === "wrong chain") backup.chain = "main";
    const log = new CaptureLog();
    const daemon = new Daemon({
      urls: [
        first.url(),
        fault === "wrong password" ? backup.url().replace(backup.password, "nope") : backup.url(),
      ],
      timeoutMs: 5000,
      log,
      retryInitialDelayMs: 1,
      retryMaxDelayMs: 2,
    });
    try {
      await daemon.checkNetwork("regtest");
      assert.equal(await daemon.getBlockCount(), 19);
      // One 503 from the first daemon moves the client to the backup, which cannot serve: the call goes back.
      first.faults.busy = 1;
      assert.equal(await daemon.getBlockCount(), 19);
      for (let i = 0; i < 3; i++) assert.equal(await daemon.getBlockCount(), 19);
      assert.equal(daemon.url, `http://rpcuser:***@127.0.0.1:${first.port}/`);
      const passed = log.matching(/using the next DAEMON_URL$/);
      assert.equal(passed.length, 1, log.lines.join("\n"));
      assert.ok(passed[0].includes(`127.0.0.1:${backup.port}`), passed[0]);
      assert.ok(!log.lines.some((l) => l.includes(`connected to daemon`) && l.includes(`:${backup.port}`)));
    } finally {
      daemon.close();
      await first.close();
      await backup.close();
    }
  });
}

Deno.test("failover: when every URL is unusable, the call fails with the last one's error", async () => {
  const a = new FakeBitcoind(), b = new FakeBitcoind();
  a.chain = b.chain = "main";
  const daemon = new Daemon({
    urls: [a.url(), b.url()],
    timeoutMs: 5000,
    log: new CaptureLog(),
    retryInitialDelayMs: 1,
  });
  try {
    await rejectsWith(daemon.checkNetwork("regtest"), DAEMON_ERROR.WRONG_CHAIN, /is on chain 'main'/);
  } finally {
    daemon.close();
    await a.close();
    await b.close();
  }
});

Deno.test("both URLs down: retried with one warning, not a line per attempt, until close() ends the wait", async () => {
  const log = new CaptureLog();
  const daemon = new Daemon({
    urls: [`http://u:p@127.0.0.1:${await deadPort()}/`, `http://u:p@127.0.0.1:${await deadPort()}/`],
    timeoutMs: 5000,
    log,
    retryInitialDelayMs: 1,
    retryMaxDelayMs: 2,
  });
  const pending = daemon.getBlockCount();
  await log.waitFor(/still unavailable/);
  assert.equal(log.matching(/^WARNING.*unavailable: /).length, 1, "the outage is announced once");
  daemon.close();
  await rejectsWith(pending, DAEMON_ERROR.CLOSED, /closed/);
  await rejectsWith(daemon.getBlockCount(), DAEMON_ERROR.CLOSED);
});

Deno.test("wrong URL credentials fail clearly after a few tries, without the password", async () => {
  await withDaemon({}, async ({ fake, log }) => {
    const daemon = new Daemon({
      urls: [`http://rpcuser:wrong-PASSWORD@127.0.0.1:${fake.port}/`],
      timeoutMs: 5000,
      log,
      retryInitialDelayMs: 1,
      authAttempts: 3,
    });
    const err = await rejectsWith(
      daemon.getBlockCount(),
      DAEMON_ERROR.AUTH_REJECTED,
      new RegExp(
        `^bitcoind rejected the RPC credentials of http://rpcuser:\\*\\*\\*@127\\.0\\.0\\.1:${fake.port}/: ` +
          "check DAEMON_URL or DAEMON_COOKIE$",
      ),
    );
    assert.ok(!err.message.includes("wrong-PASSWORD"));
    assert.equal(fake.counts.unauthorized, 3);
    for (const line of log.lines) assert.ok(!line.includes("wrong-PASSWORD"), line);
    daemon.close();
  });
});

Deno.test("cookie auth: a rotated cookie is picked up after a 401, and on an mtime change without one", async () => {
  const dir = await Deno.makeTempDir();
  const cookie = `${dir}/.cookie`;
  const fake = new FakeBitcoind();
  const log = new CaptureLog();
  const rotate = async (password: string, keepMtime: boolean) => {
    const before = await Deno.stat(cookie);
    await Deno.writeTextFile(`${cookie}.tmp`, `__cookie__:${password}`);
    await Deno.rename(`${cookie}.tmp`, cookie);
    if (keepMtime) await Deno.utime(cookie, before.atime!, before.mtime!);
    else await Deno.utime(cookie, new Date(), new Date(before.mtime!.getTime() + 5000));
    fake.password = password;
  };
  fake.user = "__cookie__";
  fake.password = "a".repeat(64);
  await Deno.writeTextFile(cookie, `__cookie__:${fake.password}`);
  const daemon = new Daemon({
    urls: [fake.url(false)],
    cookieFile: cookie,
    timeoutMs: 5000,
    log,
    retryInitialDelayMs: 1,
  });
  try {
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.counts.unauthorized, 0);

    // Same mtime: only the 401 can reveal the restart.
    await rotate("b".repeat(64), true);
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.counts.unauthorized, 1);

    // New mtime: read before sending, so no 401 at all.
    await rotate("c".repeat(64), false);
    assert.equal(await daemon.getBlockCount(), 19);
    assert.equal(fake.counts.unauthorized, 1);
    assert.equal(log.matching(/unavailable|rejected/).length, 0);
  } finally {
    daemon.close();
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cookie auth: a missing cookie file is waited for; a malformed one is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  const cookie = `${dir}/.cookie`;
  const fake = new FakeBitcoind();
  fake.user = "__cookie__";
  fake.password = "d".repeat(64);
  const log = new CaptureLog();
  const opts = { urls: [fake.url(false)], cookieFile: cookie, timeoutMs: 5000, log, retryInitialDelayMs: 1 };
  const daemon = new Daemon(opts);
  try {
    const pending = daemon.getBlockCount();
    await log.waitFor(/unavailable: cannot read cookie file .*no such file \(is bitcoind running\?\)/);
    await Deno.writeTextFile(cookie, `__cookie__:${fake.password}`);
    assert.equal(await pending, 19);

    await Deno.writeTextFile(`${dir}/bad`, "no-colon-here");
    const bad = new Daemon({ ...opts, cookieFile: `${dir}/bad` });
    await rejectsWith(bad.getBlockCount(), DAEMON_ERROR.BAD_COOKIE, /does not hold user:password/);
    bad.close();
  } finally {
    daemon.close();
    await fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in-flight requests are capped at maxInFlight", async () => {
  await withDaemon({ maxInFlight: 3 }, async ({ fake, daemon }) => {
    await daemon.getBlockCount();
    fake.hold = true;
    const calls = Array.from({ length: 10 }, (_, i) => daemon.call<string>("getblockhash", [i]));
    for (let done = 0; done < 10; done++) {
      await fake.waitFor(() => fake.held.length === Math.min(3, 10 - done));
      fake.held.shift()!();
    }
    const got = await Promise.all(calls);
    assert.deepEqual(got, fake.hashes.slice(0, 10).map(toHexReversed));
    assert.equal(fake.maxPending, 3);
  });
});

Deno.test("a 403 (rpcwhitelist) and a non-RPC URL are reported, not retried", async () => {
  await withDaemon({}, async ({ fake, daemon }) => {
    await daemon.getBlockCount();
    const forbidding = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response(null, { status: 403 }),
    );
    const log = new CaptureLog();
    const d403 = new Daemon({
      urls: [`http://u:p@127.0.0.1:${forbidding.addr.port}/`],
      timeoutMs: 5000,
      log,
    });
    await rejectsWith(d403.getBlockCount(), DAEMON_ERROR.FORBIDDEN, /HTTP 403.*-rpcwhitelist/);
    d403.close();
    await forbidding.shutdown();
    const wrongPath = new Daemon({
      urls: [`http://u:p@127.0.0.1:${fake.port}/wallet/x/`],
      timeoutMs: 5000,
      log,
    });
    await rejectsWith(wrongPath.getBlockCount(), DAEMON_ERROR.BAD_ENDPOINT, /HTTP 404 without JSON/);
    wrongPath.close();
  });
});
