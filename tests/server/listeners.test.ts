// The server over real sockets on 127.0.0.1 (ports chosen by the OS): TCP, TLS, WebSocket, limits against
// hostile clients (each alongside a well-behaved session that must keep getting right answers), and shutdown.
// Nothing sleeps to synchronise: tests wait for replies, for EOF, or for the server's own log lines.
// Every test runs twice: with the sockets in the socket thread and on the main thread (SOCKET_THREAD on/off).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type Config, loadConfig, type Service, type SocketThreadMode } from "../../src/config.ts";
import type { Log } from "../../src/log.ts";
import { type Server, type ServerOptions, startServer } from "../../src/server/listeners.ts";
import { ByteJson, type MethodSpec } from "../../src/server/types.ts";
import { socketThreadMode, TEST_MAIN_THREAD_SESSIONS, testEveryMode } from "./socket_modes.ts";
import { LineReader } from "../line_reader.ts";
import { makeCert } from "../tls_cert.ts";

// --- fixtures ----------------------------------------------------------------------------------------------

const enc = new TextEncoder();

class LogCapture {
  readonly lines: string[] = [];
  #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  #counters: { re: RegExp; left: number; resolve: () => void }[] = [];

  readonly log: Log = {
    debug: (m) => this.#add(`DEBUG ${m}`),
    info: (m) => this.#add(`INFO ${m}`),
    warn: (m) => this.#add(`WARN ${m}`),
    error: (m) => this.#add(`ERROR ${m}`),
    enabled: () => true,
  };

  #add(line: string): void {
    this.lines.push(line);
    this.#counters = this.#counters.filter((c) => {
      if (!c.re.test(line) || --c.left > 0) return true;
      c.resolve();
      return false;
    });
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }

  /** Resolves once `n` lines (already logged or future) match re; fails after 30 s with the count so far. */
  waitForCount(re: RegExp, n: number): Promise<void> {
    const left = n - this.lines.filter((l) => re.test(l)).length;
    if (left <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const counter = { re, left, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.#counters = this.#counters.filter((c) => c !== counter);
        reject(new Error(`${n - counter.left} of ${n} log lines matched ${re} within 30 s`));
      }, 30_000);
      this.#counters.push(counter);
    });
  }

  /** Resolves with the first line (already logged or future) matching re. */
  waitFor(re: RegExp): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    // A deadline turns a missing line into a failure that shows the log, rather than a hung test run.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.re !== re);
        reject(new Error(`no log line matched ${re} within 30 s; log:\n${this.lines.join("\n")}`));
      }, 30_000);
      this.#waiters.push({
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }
}

/** A newline-JSON client over any Deno connection. */
class LineClient {
  readonly conn: Deno.Conn;
  #lines: string[] = [];
  #eof = false;
  #waiter: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.done = this.#readLoop();
  }

  static async tcp(port: number): Promise<LineClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Without this, Nagle's algorithm holds back the tiny writes some tests make.
    conn.setNoDelay(true);
    return new LineClient(conn);
  }

  async #readLoop(): Promise<void> {
    // A reset by the server counts as EOF here.
    const lines = new LineReader(this.conn.readable);
    for (let line; (line = await lines.next()) !== null;) {
      this.#lines.push(line);
      this.#waiter?.();
    }
    this.#eof = true;
    this.#waiter?.();
  }

  send(msg: unknown): Promise<void> {
    return this.sendRaw(JSON.stringify(msg) + "\n");
  }

  async sendRaw(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** The next line, raw; undefined at EOF. */
  async nextLine(): Promise<string | undefined> {
    while (this.#lines.length === 0) {
      if (this.#eof) return undefined;
      await new Promise<void>((r) => this.#waiter = r);
    }
    return this.#lines.shift();
  }

  /** The next message, parsed; undefined at EOF. */
  async next(): Promise<unknown> {
    const line = await this.nextLine();
    return line === undefined ? undefined : JSON.parse(line);
  }

  async call(id: number, method: string, params: unknown = []): Promise<unknown> {
    await this.send({ jsonrpc: "2.0", id, method, params });
    return this.next();
  }

  async hello(version = "1.6"): Promise<void> {
    assert.deepEqual(
      await this.call(0, "server.version", ["test", version]),
      ok(0, ["Coulomb 0.1.0", version]),
    );
  }

  /** Waits until the server closes the connection. */
  async eof(): Promise<void> {
    while (await this.nextLine() !== undefined) { /* drain */ }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

const ok = (id: unknown, result: unknown) => ({ jsonrpc: "2.0", result, id });
const err = (id: unknown, code: number, message: string) => ({
  jsonrpc: "2.0",
  error: { code, message },
  id,
});

/**
 * Sends `chunk` `times` times, then ends the input, and expects -101 and the server closing the connection. A
 * server that took it all without charging enough would instead close at the end of input, without -101.
 */
async function floodUntilCutOff(c: LineClient, chunk: string, times: number): Promise<void> {
  const writing = (async () => {
    for (let i = 0; i < times; i++) await c.sendRaw(chunk);
    await c.conn.closeWrite();
  })().catch(() => {/* the server closed the connection */});
  assert.deepEqual(await c.next(), err(null, -101, "excessive resource usage"));
  await c.eof();
  await writing;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

interface Fixture {
  server: Server;
  logs: LogCapture;
  port(protocol?: string): number;
  release(key: string, value: unknown): void;
  started(key: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function start(
  env: Record<string, string> = {},
  services: Service[] = [{ protocol: "tcp", host: "127.0.0.1", port: 0 }],
  tls?: { cert: string; key: string },
  more:
    & Pick<
      ServerOptions,
      "socketThreadModule" | "onFatal" | "tlsHandshakeTimeoutMs" | "mainThreadSessions" | "outputBudgetBytes"
    >
    & {
      socketThread?: SocketThreadMode;
    } = {},
): Promise<Fixture> {
  const base = loadConfig({
    DB_DIRECTORY: "/tmp/coulomb-test",
    DAEMON_URL: "http://u:p@127.0.0.1:8332/",
    ...env,
  }, []) as Config;
  // loadConfig rightly refuses port 0; tests want OS-assigned ports.
  // A test that sets SOCKET_THREAD itself gets what it set; the others run in the mode being tested.
  const socketThread = more.socketThread ??
    (env.SOCKET_THREAD === undefined ? socketThreadMode() : base.socketThread);
  const config: Config = { ...base, services, socketThread };
  const waits = new Map<string, Deferred<unknown>>();
  const starts = new Map<string, Deferred<void>>();
  const get = <T>(m: Map<string, Deferred<T>>, k: string) => {
    let d = m.get(k);
    if (!d) m.set(k, d = deferred<T>());
    return d;
  };
  const methods = new Map<string, MethodSpec>([
    ["test.echo", { params: ["value"], cost: 1, handler: (_ctx, [v]) => v }],
    ["test.wait", {
      params: ["key"],
      cost: 1,
      handler: (_ctx, [k]) => {
        get(starts, String(k)).resolve();
        return get(waits, String(k)).promise;
      },
    }],
    ["test.big", { params: ["n"], cost: 1, handler: (_ctx, [n]) => "x".repeat(n as number) }],
    // The string "€" followed by n "z"s, as a large result in bytes is sent.
    ["test.bytes", {
      params: ["n"],
      cost: 1,
      handler: (_ctx, [n]) =>
        new ByteJson(['"', enc.encode("€"), {
          byteLength: n as number,
          writeTo: (out, at) => out.fill(0x7a, at, at + (n as number)),
        }, '"']),
    }],
    ["test.cost", { params: ["n"], cost: 0, handler: (ctx, [n]) => (ctx.addCost(n as number), n) }],
  ]);
  const logs = new LogCapture();
  const server = await startServer({
    config,
    methods,
    log: logs.log,
    serverVersion: "Coulomb 0.1.0",
    tls,
    mainThreadSessions: TEST_MAIN_THREAD_SESSIONS,
    ...more,
  });
  return {
    server,
    logs,
    port: (protocol = "tcp") => server.addresses.find((a) => a.protocol === protocol)!.port,
    release: (k, v) => get(waits, k).resolve(v),
    started: (k) => get(starts, k).promise,
    async [Symbol.asyncDispose]() {
      for (const d of waits.values()) d.resolve("released at teardown");
      await server.close();
    },
  };
}

/** A TCP and a WebSocket listener, on ports the OS chooses. */
const TCP_AND_WS: Service[] = [
  { protocol: "tcp", host: "127.0.0.1", port: 0 },
  { protocol: "ws", host: "127.0.0.1", port: 0 },
];

/** A WebSocket client of the server, once its upgrade is through. */
async function openWebSocket(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return ws;
}

/** A well-behaved client's round trip, asserted: the server still serves others correctly. */
async function assertHealthy(port: number): Promise<void> {
  const c = await LineClient.tcp(port);
  await c.hello();
  assert.deepEqual(await c.call(1, "test.echo", ["still fine"]), ok(1, "still fine"));
  assert.deepEqual(await c.call(2, "server.ping"), ok(2, null));
  c.close();
}

// --- TCP framing and dispatch --------------------------------------------------------------------------------

testEveryMode(
  "tcp: binds port 0, pipelined and split lines, CRLF and blank lines, one compact line per reply",
  async () => {
    // Two parse errors cost 2000, past the default soft limit; a high one keeps this test free of throttling delays.
    await using f = await start({ COST_SOFT_LIMIT: "5000", COST_HARD_LIMIT: "10000" });
    const [addr] = f.server.addresses;
    assert.equal(addr.protocol, "tcp");
    assert.equal(addr.host, "127.0.0.1");
    assert.ok(addr.port > 0);
    const c = await LineClient.tcp(f.port());
    // Three requests in one write, one of them CRLF-terminated, with a blank keep-alive line between.
    await c.sendRaw(
      '{"jsonrpc":"2.0","id":1,"method":"server.version","params":["t","1.6"]}\n\n' +
        '{"jsonrpc":"2.0","id":2,"method":"test.echo","params":["a\\nb"]}\r\n' +
        '{"jsonrpc":"2.0","id":3,"method":"server.ping"}\n',
    );
    assert.equal(await c.nextLine(), '{"jsonrpc":"2.0","result":["Coulomb 0.1.0","1.6"],"id":1}');
    assert.deepEqual(await c.next(), ok(2, "a\nb"));
    assert.deepEqual(await c.next(), ok(3, null));
    // One request dribbled a few bytes at a time.
    const line = JSON.stringify({ jsonrpc: "2.0", id: 4, method: "test.echo", params: ["dribble"] }) + "\n";
    for (let i = 0; i < line.length; i += 7) await c.sendRaw(line.slice(i, i + 7));
    assert.deepEqual(await c.next(), ok(4, "dribble"));
    // Errors keep the session usable.
    await c.sendRaw("{oops\n");
    await c.sendRaw(new Uint8Array([0xc3, 0x28, 0x0a]));
    assert.deepEqual(await c.next(), err(null, -32700, "invalid JSON"));
    assert.deepEqual(await c.next(), err(null, -32700, "messages must be encoded in UTF-8"));
    assert.deepEqual(await c.call(5, "test.nope"), err(5, -32601, 'unknown method "test.nope"'));
    assert.deepEqual(
      await c.call(6, "test.echo", []),
      err(6, -32602, '0 arguments passed to method "test.echo" but it requires 1'),
    );
    assert.deepEqual(await c.call(7, "test.echo", { value: "named" }), ok(7, "named"));
    const [info] = f.server.sessions();
    assert.equal(info.protocol, "tcp");
    assert.equal(info.protocolVersion, "1.6");
    assert.equal(info.client, "t");
    assert.match(info.remoteAddress, /^127\.0\.0\.1:\d+$/);
    c.close();
  },
);

testEveryMode('tcp: the host "::" listens on every interface, IPv4 and IPv6', async () => {
  await using f = await start({}, [{ protocol: "tcp", host: "::", port: 0 }]);
  const hosts = ["127.0.0.1"];
  // IPv6 loopback where the machine has it (the server then binds IPv6 with IPv4 mapped).
  if (f.server.addresses[0].host === "::") hosts.push("::1");
  const clients: LineClient[] = [];
  // Several per address family, so that under SOCKET_THREAD=overflow both sides serve some.
  for (let i = 0; i < 8; i++) {
    for (const hostname of hosts) {
      const conn = await Deno.connect({ hostname, port: f.port() });
      const c = new LineClient(conn);
      await c.hello();
      clients.push(c);
    }
  }
  for (const [i, c] of clients.entries()) assert.deepEqual(await c.call(i, "test.echo", [i]), ok(i, i));
  for (const c of clients) c.close();
});

testEveryMode("tcp: replies keep request order under concurrency; a batch is one line", async () => {
  await using f = await start();
  const c = await LineClient.tcp(f.port());
  await c.hello();
  await c.send({ jsonrpc: "2.0", id: 1, method: "test.wait", params: ["slow"] });
  await c.send({ jsonrpc: "2.0", id: 2, method: "test.echo", params: ["fast"] });
  await c.send([{ jsonrpc: "2.0", id: 3, method: "server.ping" }, {
    jsonrpc: "2.0",
    id: 4,
    method: "test.echo",
    params: [4],
  }]);
  await f.started("slow");
  f.release("slow", "slow done");
  assert.deepEqual(await c.next(), ok(1, "slow done"));
  assert.deepEqual(await c.next(), ok(2, "fast"));
  assert.deepEqual(await c.next(), [ok(3, null), ok(4, 4)]);
  c.close();
});

testEveryMode(
  "version negotiation over tcp: method first ⇒ error and disconnect; unsupported ⇒ error and disconnect",
  async () => {
    await using f = await start();
    const early = await LineClient.tcp(f.port());
    assert.deepEqual(
      await early.call(1, "test.echo", ["x"]),
      err(1, 1, "use server.version to identify client"),
    );
    await early.eof();
    const old = await LineClient.tcp(f.port());
    assert.deepEqual(
      await old.call(1, "server.version", ["old", ["1.0", "1.2"]]),
      err(1, 1, 'unsupported protocol version: ["1.0","1.2"]'),
    );
    await old.eof();
    await assertHealthy(f.port());
  },
);

// --- limits --------------------------------------------------------------------------------------------------

testEveryMode(
  "MAX_RECV: an oversized line is dropped and the stream resynchronises at the next newline",
  async () => {
    await using f = await start({ MAX_RECV: "1000" });
    const c = await LineClient.tcp(f.port());
    await c.hello();
    // 5000 bytes without a newline, in pieces, then the end of that line and a good request.
    for (let i = 0; i < 5; i++) await c.sendRaw("x".repeat(1000));
    await c.sendRaw('"garbage"}\n{"jsonrpc":"2.0","id":1,"method":"test.echo","params":["after"]}\n');
    assert.deepEqual(await c.next(), ok(1, "after"), "no reply to the dropped line, then in sync again");
    await assertHealthy(f.port());
    const info = f.server.sessions().find((s) => s.client === "test")!;
    assert.equal(info.errors, 1);
    c.close();
  },
);

testEveryMode(
  "MAX_RECV: a line that never ends is charged while it arrives, until the hard limit closes the session",
  async () => {
    await using f = await start({
      MAX_RECV: "1000",
      BANDWIDTH_UNIT_COST: "100",
      COST_SOFT_LIMIT: "0",
      COST_HARD_LIMIT: "500",
    });
    const c = await LineClient.tcp(f.port());
    await c.hello();
    // Up to 1 MB with no newline; at 100 bytes per unit of cost the session passes 500 after ~40 KB.
    await floodUntilCutOff(c, "x".repeat(1000), 1000);
    await assertHealthy(f.port());
    c.close();
  },
);

testEveryMode(
  "a flood of blank lines costs a ping per line and ends in -101; other sessions are served",
  async () => {
    await using f = await start();
    const other = await LineClient.tcp(f.port());
    await other.hello();
    const c = await LineClient.tcp(f.port());
    await c.hello();
    // 1 MB of newlines: 1,000,000 keep-alives at 0.1 each is ten times COST_HARD_LIMIT.
    await floodUntilCutOff(c, "\n".repeat(65536), 16);
    assert.deepEqual(await other.call(1, "test.echo", ["still here"]), ok(1, "still here"));
    other.close();
    c.close();
  },
);

testEveryMode(
  "ws: pings and empty fragments cost like keep-alives, so a flood of them ends in -101",
  async () => {
    await using f = await start({}, TCP_AND_WS);
    const other = await LineClient.tcp(f.port());
    await other.hello();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.port("ws") });
    const upgrade = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    // Masked client frames with empty payloads: a ping, then a text frame and continuations, none final.
    const frame = (first: number) => Uint8Array.of(first, 0x80, 1, 2, 3, 4);
    const version = enc.encode(
      JSON.stringify({ jsonrpc: "2.0", id: 0, method: "server.version", params: [] }),
    );
    const text = new Uint8Array(6 + version.length);
    text.set([0x81, 0x80 | version.length, 0, 0, 0, 0]);
    text.set(version, 6); // a zero mask leaves the payload as it is
    const flood = new Uint8Array(6 * 200_000);
    flood.set(frame(0x89), 0);
    flood.set(frame(0x01), 6);
    for (let at = 12; at < flood.length; at += 6) flood.set(frame(0x00), at);
    const writing = (async () => {
      await conn.write(enc.encode(upgrade));
      await conn.write(text);
      for (let at = 0; at < flood.length;) at += await conn.write(flood.subarray(at));
      await conn.closeWrite();
    })().catch(() => {/* the server closed the connection */});
    const received: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (let n; (n = await conn.read(buf).catch(() => null)) !== null;) received.push(buf.slice(0, n));
    await writing;
    conn.close();
    const all = new TextDecoder().decode(new Uint8Array(received.flatMap((b) => [...b])));
    assert.match(all, /excessive resource usage/, "cut off for its cost, not by the end of its input");
    assert.deepEqual(await other.call(1, "test.echo", ["still here"]), ok(1, "still here"));
    other.close();
  },
);

testEveryMode("MAX_SEND: a reply over the limit becomes -32600 for that request only", async () => {
  await using f = await start({ MAX_SEND: "350000" });
  const c = await LineClient.tcp(f.port());
  await c.hello();
  assert.deepEqual(
    await c.call(1, "test.big", [400_000]),
    err(1, -32600, "response too large (over 350,000 bytes"),
  );
  const fits = await c.call(2, "test.big", [300_000]) as { result: string };
  assert.equal(fits.result.length, 300_000);
  c.close();
});

testEveryMode(
  "results in bytes: alone, between text replies, in a batch, over MAX_SEND, over WebSocket",
  async () => {
    await using f = await start({ MAX_SEND: "600000" }, TCP_AND_WS);
    const zs = (n: number) => "€" + "z".repeat(n);
    const c = await LineClient.tcp(f.port());
    await c.hello();
    assert.deepEqual(await c.call(1, "test.bytes", [500_000]), ok(1, zs(500_000)));
    // Pipelined, so that bytes and text replies share writes.
    await c.sendRaw(
      [
        { jsonrpc: "2.0", id: "b€", method: "test.bytes", params: [100_000] },
        { jsonrpc: "2.0", id: 3, method: "test.echo", params: ["between"] },
        [
          { jsonrpc: "2.0", id: 4, method: "test.bytes", params: [3] },
          { jsonrpc: "2.0", id: 5, method: "test.echo", params: ["in a batch"] },
        ],
        { jsonrpc: "2.0", id: 6, method: "test.bytes", params: [700_000] },
        { jsonrpc: "2.0", id: 7, method: "test.bytes", params: [0] },
      ].map((m) => JSON.stringify(m)).join("\n") + "\n",
    );
    assert.deepEqual(await c.next(), ok("b€", zs(100_000)));
    assert.deepEqual(await c.next(), ok(3, "between"));
    assert.deepEqual(await c.next(), [ok(4, zs(3)), ok(5, "in a batch")]);
    assert.deepEqual(await c.next(), err(6, -32600, "response too large (over 600,000 bytes"));
    assert.deepEqual(await c.next(), ok(7, "€"));
    c.close();
    const ws = await openWebSocket(f.port("ws"));
    const replies: string[] = [];
    const two = new Promise<void>((resolve) =>
      ws.onmessage = (e) => {
        if (replies.push(e.data as string) === 2) resolve();
      }
    );
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 8, method: "server.version", params: ["ws", "1.4"] }));
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 9, method: "test.bytes", params: [200_000] }));
    await two;
    const got = JSON.parse(replies[1]);
    assert.equal(got.id, 9);
    assert.ok(got.result === zs(200_000), "the result, whole, in one text frame");
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
    await assertHealthy(f.port());
  },
);

testEveryMode(
  "endless batches: over 1000 items refused; a costly batch hits the hard limit and is cut off",
  async () => {
    await using f = await start({ COST_SOFT_LIMIT: "500", COST_HARD_LIMIT: "1000", REQUEST_SLEEP: "0" });
    const c = await LineClient.tcp(f.port());
    await c.hello();
    const batch = (n: number, method = "server.ping", params: unknown[] = []) =>
      Array.from({ length: n }, (_, i) => ({ jsonrpc: "2.0", id: i, method, params }));
    await c.send(batch(5000));
    assert.deepEqual(await c.next(), err(null, -32600, "batch too large (5000 items, at most 1000)"));
    await c.send(batch(1000, "test.cost", [5]));
    const replies = await c.next() as { error?: { code: number } }[];
    assert.ok(replies.length < 1000);
    assert.equal(replies.at(-1)!.error!.code, -101);
    await c.eof();
    await assertHealthy(f.port());
  },
);

testEveryMode(
  "a client that never reads is disconnected and memory stays bounded; others are served",
  async () => {
    await using f = await start({ MAX_SEND: "350000" });
    const slow = await LineClient.tcp(f.port());
    await slow.hello();
    // 40 MB of replies asked for in one write, far more than socket buffers hold; the client never reads them.
    const lines = Array.from(
      { length: 200 },
      (_, i) => JSON.stringify({ jsonrpc: "2.0", id: i, method: "test.big", params: [200_000] }),
    ).join("\n") + "\n";
    const conn = slow.conn;
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: f.port() });
    await raw.write(
      enc.encode(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "server.version", params: [] }) + "\n"),
    );
    await raw.write(enc.encode(lines));
    const line = await f.logs.waitFor(/closing: peer is not reading its replies/);
    assert.match(line, /bytes queued/);
    for (const s of f.server.sessions()) assert.ok(s.queuedBytes <= 2 * 350_000, `${s.queuedBytes} queued`);
    await assertHealthy(f.port());
    raw.close();
    conn.close();
  },
);

Deno.test("clients that do not read are shed, largest queue first, once all queued output passes the budget", async () => {
  await using f = await start({}, undefined, undefined, { outputBudgetBytes: 4_000_000 });
  // Three clients that never read: 16, 16 and 8 MB of replies, far more than socket buffers take.
  const ask = (n: number) =>
    JSON.stringify({ jsonrpc: "2.0", id: 0, method: "server.version", params: [] }) + "\n" +
    Array.from(
      { length: n },
      (_, i) => JSON.stringify({ jsonrpc: "2.0", id: i + 1, method: "test.big", params: [7_900_000] }),
    ).join("\n") + "\n";
  const raws: Deno.Conn[] = [];
  for (const n of [2, 2, 1]) {
    const raw = await Deno.connect({ hostname: "127.0.0.1", port: f.port() });
    await raw.write(enc.encode(ask(n)));
    raws.push(raw);
  }
  const line = await f.logs.waitFor(/closed \d+ session\(s\) not reading their replies/);
  assert.match(line, /over 4000000 bytes in all/);
  const total = f.server.sessions().reduce((n, s) => n + s.queuedBytes, 0);
  assert.ok(total <= 4_000_000, `${total} bytes still queued`);
  await assertHealthy(f.port());
  for (const raw of raws) raw.close();
});

testEveryMode("2000 idle connections, then a normal session is still answered", async () => {
  await using f = await start({ MAX_SESSIONS: "3000" });
  const idle: Deno.Conn[] = [];
  for (let i = 0; i < 10; i++) {
    const batch = await Promise.all(
      Array.from({ length: 200 }, () => Deno.connect({ hostname: "127.0.0.1", port: f.port() })),
    );
    idle.push(...batch);
  }
  await assertHealthy(f.port());
  // A connection is established before the server takes it (with both sides listening, the other side may not
  // have yet): wait for the 2,000 idle sessions to be opened, then count them.
  await f.logs.waitForCount(/^DEBUG session \d+ .*: tcp connection$/, 2001);
  // The healthy client's session may still be closing; the idle ones are all there.
  assert.ok(f.server.sessions().length >= 2000, `${f.server.sessions().length} sessions`);
  for (const c of idle) c.close();
});

testEveryMode(
  "MAX_SESSIONS: connections beyond it are closed at once and logged; room frees up on disconnect",
  async () => {
    await using f = await start({ MAX_SESSIONS: "2", LOG_LEVEL: "debug" });
    const a = await LineClient.tcp(f.port());
    const b = await LineClient.tcp(f.port());
    await a.hello();
    await b.hello();
    const refused = await LineClient.tcp(f.port());
    await refused.eof();
    await f.logs.waitFor(/refused 1 connection\(s\): MAX_SESSIONS \(2\)/);
    b.close();
    await f.logs.waitFor(/session 2 .*closed/);
    const c = await LineClient.tcp(f.port());
    await c.hello();
    a.close();
    c.close();
    refused.close();
  },
);

testEveryMode(
  "throttling: past the soft limit requests are delayed, at the hard limit -101 and close",
  async () => {
    await using f = await start({ COST_SOFT_LIMIT: "100", COST_HARD_LIMIT: "1000", REQUEST_SLEEP: "20" });
    const c = await LineClient.tcp(f.port());
    await c.hello();
    assert.deepEqual(await c.call(1, "test.cost", [550]), ok(1, 550));
    let info = f.server.sessions()[0];
    assert.ok(info.throttleFraction > 0.4 && info.throttleFraction < 0.6, String(info.throttleFraction));
    assert.equal(info.concurrency, 5);
    assert.deepEqual(await c.call(2, "server.ping"), ok(2, null));
    info = f.server.sessions()[0];
    assert.equal(info.throttledRequests, 1, "the ping was delayed");
    assert.deepEqual(await c.call(3, "test.cost", [500]), ok(3, 500));
    assert.deepEqual(await c.call(4, "server.ping"), err(4, -101, "excessive resource usage"));
    await c.eof();
    await assertHealthy(f.port());
  },
);

testEveryMode("SESSION_TIMEOUT closes idle sessions; REQUEST_TIMEOUT answers -102", async () => {
  await using f = await start({ SESSION_TIMEOUT: "1", REQUEST_TIMEOUT: "1" });
  const idle = await LineClient.tcp(f.port());
  await idle.hello();
  const busy = await LineClient.tcp(f.port());
  await busy.hello();
  const closed = idle.eof();
  assert.deepEqual(
    await busy.call(1, "test.wait", ["forever"]),
    err(1, -102, "server busy - request timed out"),
  );
  await closed;
  // Under load the busy session, answered by now, can go idle within the same tick as the first one.
  await f.logs.waitFor(/closed [12] idle session\(s\) \(SESSION_TIMEOUT 1 s\)/);
  busy.close();
  idle.close();
});

testEveryMode(
  "startServer rejects with the service named when it cannot listen or has no certificate",
  async () => {
    await using f = await start();
    await assert.rejects(
      start({}, [{ protocol: "tcp", host: "127.0.0.1", port: f.port() }]),
      new RegExp(`cannot listen on tcp://127\\.0\\.0\\.1:${f.port()}`),
    );
    await assert.rejects(
      start({}, [{ protocol: "ssl", host: "127.0.0.1", port: 0 }]),
      /SSL_CERTFILE is required/,
    );
    await assertHealthy(f.port());
  },
);

// --- TLS and WebSocket -------------------------------------------------------------------------------------

testEveryMode("ssl: serves over TLS; reloadTls switches certificates for new connections only", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const one = await makeCert(dir, "one");
    const two = await makeCert(dir, "two");
    await using f = await start({}, [{ protocol: "ssl", host: "127.0.0.1", port: 0 }], one);
    const connect = (ca: string) =>
      Deno.connectTls({ hostname: "localhost", port: f.port("ssl"), caCerts: [ca] }).then((conn) =>
        new LineClient(conn)
      );
    const first = await connect(one.cert);
    await first.hello();
    await assert.rejects(f.server.reloadTls("not a cert", "not a key"));
    const stillOne = await connect(one.cert);
    await stillOne.hello();
    // Two reloads at once each get their own answer; the later one wins.
    await Promise.all([f.server.reloadTls(one.cert, one.key), f.server.reloadTls(two.cert, two.key)]);
    const second = await connect(two.cert);
    await second.hello();
    const wrong = await Deno.connectTls({ hostname: "localhost", port: f.port("ssl"), caCerts: [one.cert] });
    await assert.rejects(wrong.handshake());
    // Sessions opened before the reload carry on.
    assert.deepEqual(await first.call(1, "test.echo", ["old session"]), ok(1, "old session"));
    for (const c of [first, stillOne, second]) c.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `fn` with an unthrottled server on ssl (and tcp, for assertHealthy) and a TLS client that said hello. */
async function withTlsClient(fn: (c: LineClient, f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const cert = await makeCert(dir, "client");
    await using f = await start(
      { COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" },
      [{ protocol: "ssl", host: "127.0.0.1", port: 0 }, { protocol: "tcp", host: "127.0.0.1", port: 0 }],
      cert,
    );
    const conn = await Deno.connectTls({ hostname: "localhost", port: f.port("ssl"), caCerts: [cert.cert] });
    const c = new LineClient(conn);
    try {
      await c.hello();
      await fn(c, f);
    } finally {
      c.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

testEveryMode(
  "ssl: thousands of pipelined requests over TLS are all answered, in order",
  () =>
    withTlsClient(async (c) => {
      // Far more than the read window: the server reads ahead of its answers only so far, then resumes.
      const N = 5000;
      let lines = "";
      for (let i = 1; i <= N; i++) {
        lines += JSON.stringify({ jsonrpc: "2.0", id: i, method: "test.echo", params: [i] }) + "\n";
      }
      const sending = c.sendRaw(lines);
      for (let i = 1; i <= N; i++) assert.deepEqual(await c.next(), ok(i, i));
      await sending;
    }),
);

testEveryMode(
  "ssl: a client that sends far ahead of its replies is cut off, not buffered",
  () =>
    withTlsClient(async (c, f) => {
      // Requests that are never answered fill the read window; the client goes on sending without reading.
      let chunk = "";
      for (let i = 0; chunk.length < 60_000; i++) {
        chunk += JSON.stringify({ jsonrpc: "2.0", id: i, method: "test.wait", params: [`k${i}`] }) + "\n";
      }
      const bytes = enc.encode(chunk);
      let sent = 0, failed = false;
      while (sent < 256 << 20) {
        try {
          await c.sendRaw(bytes);
        } catch {
          failed = true;
          break;
        }
        sent += bytes.length;
      }
      assert.ok(failed, `the server took ${sent >> 20} MB ahead of its replies`);
      assert.ok(sent < 64 << 20, `${sent >> 20} MB`);
      await assertHealthy(f.port());
    }),
);

testEveryMode(
  "ssl: a connection that never completes its TLS handshake is closed after the timeout",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const tls = await makeCert(dir, "hs");
      await using f = await start(
        {},
        [
          { protocol: "tcp", host: "127.0.0.1", port: 0 },
          { protocol: "ssl", host: "127.0.0.1", port: 0 },
        ],
        tls,
        { tlsHandshakeTimeoutMs: 200 },
      );
      // Silent, and half a ClientHello: neither becomes a session, and both are closed by the server.
      const silent = await Deno.connect({ hostname: "127.0.0.1", port: f.port("ssl") });
      const partial = await Deno.connect({ hostname: "127.0.0.1", port: f.port("ssl") });
      await partial.write(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00));
      for (const conn of [silent, partial]) {
        const buf = new Uint8Array(1024);
        let n: number | null;
        do n = await conn.read(buf).catch(() => null); while (n !== null);
        conn.close();
      }
      assert.equal(f.server.sessions().length, 0);
      await assertHealthy(f.port());
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

testEveryMode(
  "ws: one JSON message per text frame, no newline; batches and notifications of errors",
  async () => {
    await using f = await start({}, TCP_AND_WS);
    const ws = await openWebSocket(f.port("ws"));
    const messages: string[] = [];
    let waiter: (() => void) | undefined;
    ws.onmessage = (e) => {
      messages.push(e.data as string);
      waiter?.();
    };
    const next = async () => {
      while (messages.length === 0) await new Promise<void>((r) => waiter = r);
      return messages.shift()!;
    };
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "server.version", params: ["ws", "1.6"] }));
    assert.equal(await next(), '{"jsonrpc":"2.0","result":["Coulomb 0.1.0","1.6"],"id":1}');
    ws.send(JSON.stringify([{ jsonrpc: "2.0", id: 2, method: "test.echo", params: ["a"] }, {
      jsonrpc: "2.0",
      id: 3,
      method: "server.ping",
    }]));
    assert.deepEqual(JSON.parse(await next()), [ok(2, "a"), ok(3, null)]);
    ws.send("not json");
    assert.deepEqual(JSON.parse(await next()), err(null, -32700, "invalid JSON"));
    const big = "y".repeat(70_000);
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 4, method: "test.echo", params: [big] }));
    assert.deepEqual(JSON.parse(await next()), ok(4, big));
    assert.equal(f.server.sessions().find((s) => s.protocol === "ws")?.client, "ws");
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
    await assertHealthy(f.port());
  },
);

testEveryMode("wss: WebSocket over TLS, with a plain HTTP request refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tls = await makeCert(dir, "wss");
    await using f = await start({}, [{ protocol: "wss", host: "127.0.0.1", port: 0 }], tls);
    const conn = await Deno.connectTls({ hostname: "localhost", port: f.port("wss"), caCerts: [tls.cert] });
    await conn.write(enc.encode(
      "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    // A client frame: text, masked, carrying server.version.
    const payload = enc.encode(
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "server.version", params: ["s", "1.4"] }),
    );
    const mask = [1, 2, 3, 4];
    const frame = new Uint8Array([
      0x81,
      0x80 | payload.length,
      ...mask,
      ...payload.map((b, i) => b ^ mask[i & 3]),
    ]);
    await conn.write(frame);
    let got = new Uint8Array(0);
    const want = (s: string) => new TextDecoder().decode(got).includes(s);
    const buf = new Uint8Array(4096);
    while (!want('"id":1}')) {
      const n = await conn.read(buf);
      assert.ok(n !== null, "server closed early");
      const all = new Uint8Array(got.length + n);
      all.set(got);
      all.set(buf.subarray(0, n), got.length);
      got = all;
    }
    const text = new TextDecoder().decode(got);
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(text, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    const body = '{"jsonrpc":"2.0","result":["Coulomb 0.1.0","1.4"],"id":1}';
    const headEnd = text.indexOf("\r\n\r\n") + 4;
    assert.deepEqual([...got.subarray(headEnd, headEnd + 2)], [0x81, body.length]);
    assert.equal(text.slice(headEnd + 2), body);
    conn.close();

    const http = await Deno.connectTls({ hostname: "localhost", port: f.port("wss"), caCerts: [tls.cert] });
    const client = new LineClient(http);
    await client.sendRaw("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert.equal(await client.nextLine(), "HTTP/1.1 426 Upgrade Required\r");
    await client.eof();
    client.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

testEveryMode(
  "ws: a peer that pings without reading gets pongs one at a time, for its latest ping",
  async () => {
    // Pings cost like keep-alives: unthrottled here, so that it is the pongs' memory that is tested.
    await using f = await start({ COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" }, TCP_AND_WS);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.port("ws") });
    const frame = maskedFrame;
    await conn.write(WS_UPGRADE);
    // 300,000 numbered pings of 125 bytes, none of their pongs read: 38 MB owed, more than loopback buffers hold.
    const PINGS = 300_000;
    const payload = new Uint8Array(125);
    const batch = new Uint8Array(1000 * 131);
    for (let sent = 0; sent < PINGS; sent += 1000) {
      for (let i = 0; i < 1000; i++) {
        new DataView(payload.buffer).setUint32(0, sent + i);
        batch.set(frame(9, payload), i * 131);
      }
      for (let off = 0; off < batch.length;) off += await conn.write(batch.subarray(off));
    }
    const request = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "server.version", params: ["p", "1.6"] });
    await conn.write(frame(1, enc.encode(request)));
    // Now read: the 101 response, then pongs and the reply, until both the reply and the pong for the last
    // ping have come (either may come first). Server frames are short here (length < 126).
    const reader = new ByteReader(conn);
    const headEnd = () => new TextDecoder().decode(reader.peek()).indexOf("\r\n\r\n");
    while (headEnd() < 0) await reader.fill();
    reader.skip(headEnd() + 4);
    let pongs = 0, lastPong = -1, reply = "";
    while (reply === "" || lastPong !== PINGS - 1) {
      while (reader.peek().length < 2 || reader.peek().length < 2 + reader.peek()[1]) await reader.fill();
      const bytes = reader.peek();
      const body = bytes.slice(2, 2 + bytes[1]);
      reader.skip(2 + bytes[1]);
      if (bytes[0] === 0x8a) {
        pongs++;
        lastPong = new DataView(body.buffer).getUint32(0);
      } else if (bytes[0] === 0x81) {
        reply = new TextDecoder().decode(body);
      }
    }
    assert.equal(reply, '{"jsonrpc":"2.0","result":["Coulomb 0.1.0","1.6"],"id":1}');
    assert.ok(pongs > 0 && pongs < PINGS, `${pongs} pongs for ${PINGS} pings`);
    conn.close();
    await assertHealthy(f.port());
  },
);

const WS_UPGRADE = enc.encode(
  "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

/** A client's final frame with a payload under 126 bytes, masked as clients must. */
function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const mask = [9, 8, 7, 6];
  const out = new Uint8Array(6 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | payload.length;
  out.set(mask, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i & 3];
  return out;
}

const wsRequest = (id: number, method: string, params: unknown[]) =>
  maskedFrame(1, enc.encode(JSON.stringify({ jsonrpc: "2.0", id, method, params })));

testEveryMode("ws: no data frame follows the server's close frame", async () => {
  await using f = await start({ COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" }, TCP_AND_WS);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.port("ws") });
  // Requests and the close in one write: the close is read while their replies are still being made.
  const parts = [WS_UPGRADE, wsRequest(0, "server.version", ["p", "1.4"])];
  for (let i = 1; i <= 200; i++) parts.push(wsRequest(i, "test.echo", [i]));
  parts.push(maskedFrame(8, new Uint8Array([0x03, 0xe8])));
  await writeAll(conn, Buffer.concat(parts));
  const reader = new ByteReader(conn);
  const headEnd = () => new TextDecoder().decode(reader.peek()).indexOf("\r\n\r\n");
  while (headEnd() < 0) await reader.fill();
  reader.skip(headEnd() + 4);
  const opcodes: number[] = [];
  for (;;) {
    while (reader.peek().length < 2 || reader.peek().length < frameLength(reader.peek())) {
      if (!await reader.fillOrEnd()) break;
    }
    const bytes = reader.peek();
    if (bytes.length < 2 || bytes.length < frameLength(bytes)) break;
    opcodes.push(bytes[0] & 0x0f);
    reader.skip(frameLength(bytes));
  }
  conn.close();
  const close = opcodes.indexOf(8);
  assert.ok(close >= 0, `a close frame among ${opcodes.length} frames`);
  assert.deepEqual(opcodes.slice(close), [8], "nothing after it (RFC 6455 §5.5.1)");
  await assertHealthy(f.port());
});

for (const protocol of ["ws", "wss"] as const) {
  testEveryMode(
    `${protocol}: after a protocol error nothing more is read, and a peer that does not read the close frame is cut off`,
    () => afterProtocolError(protocol),
  );
}

async function afterProtocolError(protocol: "ws" | "wss"): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const cert = await makeCert(dir, "farewell");
    await using f = await start(
      { COST_SOFT_LIMIT: "1000000000", COST_HARD_LIMIT: "1000000000" },
      [{ protocol: "tcp", host: "127.0.0.1", port: 0 }, { protocol, host: "127.0.0.1", port: 0 }],
      cert,
    );
    const conn = protocol === "ws"
      ? await Deno.connect({ hostname: "127.0.0.1", port: f.port("ws") })
      : await Deno.connectTls({ hostname: "localhost", port: f.port("wss"), caCerts: [cert.cert] });
    // 16 MB of replies that this peer will not read (under the 20 MB at which the session gives up on it): the
    // server's writes, and its close frame behind them, stall.
    const parts = [WS_UPGRADE, wsRequest(0, "server.version", ["p", "1.4"])];
    for (let i = 1; i <= 4; i++) parts.push(wsRequest(i, "test.big", [4_000_000]));
    await writeAll(conn, Buffer.concat(parts));
    const reader = new ByteReader(conn);
    while (reader.peek().length < 300) await reader.fill();
    // An unmasked frame fails the connection; then the peer streams input without reading anything.
    await writeAll(conn, new Uint8Array([0x81, 0x02, 0x7b, 0x7d]));
    const chunk = new Uint8Array(1 << 16);
    let sent = 0, failed = false;
    while (sent < 256 << 20) {
      try {
        await writeAll(conn, chunk);
      } catch {
        failed = true;
        break;
      }
      sent += chunk.length;
    }
    conn.close();
    assert.ok(failed, `the server went on reading: ${sent >> 20} MB after the protocol error`);
    assert.ok(sent < 64 << 20, `${sent >> 20} MB after the protocol error`);
    await assertHealthy(f.port());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// A server frame's whole length (server frames are unmasked).
function frameLength(b: Uint8Array): number {
  const len = b[1] & 0x7f;
  if (len < 126) return 2 + len;
  if (len === 126) return b.length < 4 ? Infinity : 4 + ((b[2] << 8) | b[3]);
  return b.length < 10 ? Infinity : 10 + Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
}

/** Bytes read from a connection, consumed from the front. */
class ByteReader {
  #buf = new Uint8Array(0);
  readonly #chunk = new Uint8Array(1 << 16);
  constructor(readonly conn: Deno.Conn) {}
  peek(): Uint8Array {
    return this.#buf;
  }
  skip(n: number): void {
    this.#buf = this.#buf.subarray(n);
  }
  async fill(): Promise<void> {
    assert.ok(await this.fillOrEnd(), "the server closed the connection");
  }
  /** Reads more; false at the end of the stream. */
  async fillOrEnd(): Promise<boolean> {
    const n = await this.conn.read(this.#chunk).catch(() => null);
    if (n === null) return false;
    const all = new Uint8Array(this.#buf.length + n);
    all.set(this.#buf);
    all.set(this.#chunk.subarray(0, n), this.#buf.length);
    this.#buf = all;
    return true;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

// --- shutdown ----------------------------------------------------------------------------------------------

testEveryMode(
  "close(): stops accepting, lets in-flight replies finish, then closes every session",
  async () => {
    const f = await start();
    const c = await LineClient.tcp(f.port());
    await c.hello();
    const idle = await LineClient.tcp(f.port());
    await idle.hello();
    await c.send({ jsonrpc: "2.0", id: 1, method: "test.wait", params: ["inflight"] });
    await f.started("inflight");
    const closing = f.server.close();
    // The listener closes in the socket thread: a connection racing close() is refused, or closed unanswered.
    const late = await LineClient.tcp(f.port()).catch(() => undefined);
    if (late) {
      // Reset or closed, either way without an answer.
      await late.send({ jsonrpc: "2.0", id: 9, method: "server.ping" }).catch(() => {});
      assert.equal(await late.next().catch(() => undefined), undefined);
      late.close();
    }
    await idle.eof();
    f.release("inflight", "finished");
    assert.deepEqual(await c.next(), ok(1, "finished"));
    await c.eof();
    await closing;
    assert.equal(f.server.sessions().length, 0);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: f.port() }));
    c.close();
    idle.close();
  },
);

Deno.test("a socket thread that cannot start: the server says so and serves its sockets from the main thread", async () => {
  await using f = await start({ SOCKET_THREAD: "on" }, undefined, undefined, {
    socketThreadModule: new URL("./no_such_socket_thread.ts", import.meta.url),
  });
  await f.logs.waitFor(/the socket thread failed: .*; serving client sockets on the main thread/);
  await assertHealthy(f.port());
});

Deno.test("overflow: the socket thread takes new connections once the main thread has its sessions", async () => {
  await using f = await start({}, undefined, undefined, { socketThread: "both", mainThreadSessions: 3 });
  assert.equal(f.logs.lines.some((l) => /new connections now go mostly/.test(l)), false);
  const clients: LineClient[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await LineClient.tcp(f.port());
    await c.hello();
    clients.push(c);
  }
  await f.logs.waitFor(/3 sessions on the main thread: new connections now go mostly to the socket thread/);
  // Sessions on either side are served alike, and the main thread keeps its own.
  for (let i = 0; i < 40; i++) {
    const c = await LineClient.tcp(f.port());
    await c.hello();
    clients.push(c);
  }
  for (const [i, c] of clients.entries()) assert.deepEqual(await c.call(i, "test.echo", [i]), ok(i, i));
  assert.equal(f.server.sessions().length, 43);
  for (const c of clients) c.close();
});

Deno.test("overflow: a socket thread that cannot start leaves every connection to the main thread", async () => {
  await using f = await start({}, undefined, undefined, {
    socketThread: "both",
    mainThreadSessions: 1,
    socketThreadModule: new URL("./no_such_socket_thread.ts", import.meta.url),
  });
  await f.logs.waitFor(
    /the socket thread cannot serve \(the socket thread failed: .*\); every connection stays/,
  );
  const clients: LineClient[] = [];
  for (let i = 0; i < 5; i++) {
    const c = await LineClient.tcp(f.port());
    await c.hello();
    clients.push(c);
  }
  for (const [i, c] of clients.entries()) assert.deepEqual(await c.call(i, "test.echo", [i]), ok(i, i));
  for (const c of clients) c.close();
});

Deno.test("overflow: a port another server holds is refused, not shared through SO_REUSEPORT", async () => {
  await using first = await start({}, undefined, undefined, { socketThread: "both" });
  await assert.rejects(
    start({}, [{ protocol: "tcp", host: "127.0.0.1", port: first.port() }], undefined, {
      socketThread: "both",
    }),
    /cannot listen on tcp:\/\/127\.0\.0\.1:\d+: .*(in use|EADDRINUSE)/i,
  );
  await assertHealthy(first.port());
});

Deno.test("overflow: a socket thread that dies while serving ends every session and stops the main thread's listener", async () => {
  const fatal = Promise.withResolvers<Error>();
  await using f = await start({}, undefined, undefined, {
    socketThread: "both",
    mainThreadSessions: 1,
    socketThreadModule: new URL("./failing_socket_thread.ts", import.meta.url),
    onFatal: (err) => fatal.resolve(err),
  });
  const onMain = await LineClient.tcp(f.port());
  await onMain.hello();
  await f.logs.waitFor(/new connections now go mostly to the socket thread/);
  // Connections until one lands in the thread; its first request crashes it.
  let crashed = false;
  fatal.promise.then(() => crashed = true);
  const others: LineClient[] = [];
  while (!crashed) {
    const c = await LineClient.tcp(f.port()).catch(() => undefined);
    if (c === undefined) break;
    others.push(c);
    await c.send({ jsonrpc: "2.0", id: 0, method: "server.version", params: ["test", "1.4"] });
    await Promise.race([c.next().catch(() => undefined), fatal.promise]);
  }
  assert.match((await fatal.promise).message, /socket thread test crash/);
  // The session on the main thread is closed too: the process is about to stop.
  assert.equal(await onMain.next().catch(() => undefined), undefined);
  assert.equal(f.server.sessions().length, 0);
  // And closing does not wait for sessions that can no longer be answered.
  await f.server.close();
  onMain.close();
  for (const c of others) c.close();
});

Deno.test("overflow: a socket thread that fails while starting leaves no session behind for its connections", async () => {
  await using f = await start({}, undefined, undefined, {
    socketThread: "both",
    mainThreadSessions: 1,
    socketThreadModule: new URL("./spill_failing_socket_thread.ts?mode=crash", import.meta.url),
  });
  const clients: LineClient[] = [];
  const first = await LineClient.tcp(f.port());
  await first.hello();
  clients.push(first);
  // Connections until one lands in the thread, which then dies (the main thread serves those before it).
  while (!f.logs.lines.some((l) => /the socket thread cannot serve/.test(l))) {
    const c = await LineClient.tcp(f.port());
    clients.push(c);
    await c.send({ jsonrpc: "2.0", id: 0, method: "server.version", params: ["test", "1.4"] });
    await c.next().catch(() => undefined);
  }
  await f.logs.waitFor(/the socket thread cannot serve \(the socket thread failed: .*spill test crash\)/);
  // The connections the thread held are gone; every session left answers.
  let answering = 0;
  for (const [i, c] of clients.entries()) {
    const reply = await c.call(i + 1, "test.echo", [i]).catch(() => undefined);
    if (reply === undefined) continue;
    assert.deepEqual(reply, ok(i + 1, i));
    answering++;
  }
  assert.ok(answering < clients.length, "at least one connection was the thread's");
  assert.equal(f.server.sessions().length, answering, "no session is left for the thread's connections");
  for (const c of clients) c.close();
});

Deno.test("overflow: a TLS reload while the socket thread fails to start completes on the main thread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const one = await makeCert(dir, "one");
    const two = await makeCert(dir, "two");
    await using f = await start({}, [{ protocol: "ssl", host: "127.0.0.1", port: 0 }], one, {
      socketThread: "both",
      mainThreadSessions: 1,
      socketThreadModule: new URL("./spill_failing_socket_thread.ts?mode=tls", import.meta.url),
    });
    const connect = (ca: string) =>
      Deno.connectTls({ hostname: "localhost", port: f.port("ssl"), caCerts: [ca] }).then((conn) =>
        new LineClient(conn)
      );
    const first = await connect(one.cert);
    await first.hello();
    // The thread is starting now, and answers the reload only by failing its start.
    await f.server.reloadTls(two.cert, two.key);
    await f.logs.waitFor(/the socket thread cannot serve \(spill test failure\)/);
    const second = await connect(two.cert);
    await second.hello();
    first.close();
    second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a socket thread that dies while serving: its sessions end and the server reports it as fatal", async () => {
  const fatal = Promise.withResolvers<Error>();
  await using f = await start({ SOCKET_THREAD: "on" }, undefined, undefined, {
    socketThreadModule: new URL("./failing_socket_thread.ts", import.meta.url),
    onFatal: (err) => fatal.resolve(err),
  });
  const c = await LineClient.tcp(f.port());
  await c.send({ jsonrpc: "2.0", id: 0, method: "server.version", params: ["test", "1.4"] });
  assert.match((await fatal.promise).message, /the socket thread failed: .*socket thread test crash/);
  await f.logs.waitFor(/ERROR .*the socket thread failed/);
  assert.equal(await c.next().catch(() => undefined), undefined);
  assert.equal(f.server.sessions().length, 0);
  c.close();
});
