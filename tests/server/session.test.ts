// Session logic against an in-memory transport: dispatch, ordering, negotiation, batches, costs and timeouts,
// with the clock of timeouts driven by the test (tick(now)) rather than by waiting. Socket-level behaviour is
// in listeners.test.ts.
import assert from "node:assert/strict";
import { type Config, loadConfig } from "../../src/config.ts";
import type { Log } from "../../src/log.ts";
import { CostGroups, costSettings } from "../../src/server/limits.ts";
import { type Message, prepareMethods } from "../../src/server/rpc.ts";
import { Session, type Transport } from "../../src/server/session.ts";
import { utf8Length } from "../../src/server/utf8_length.ts";
import { ByteJson, type MethodSpec, RawJson, RpcError, type SessionContext } from "../../src/server/types.ts";

// --- fixtures ----------------------------------------------------------------------------------------------

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

class FakeTransport implements Transport {
  readonly messages: string[] = [];
  readonly writes: string[][] = [];
  closed = false;
  gate: Promise<void> | undefined;
  #read = 0;
  #waiter: (() => void) | undefined;
  readonly closedSignal = deferred<void>();

  constructor(readonly remoteIp = "127.0.0.1", readonly remoteAddress = `${remoteIp}:50000`) {}

  /** Resolved by the next write call, before it waits at the gate. */
  onWrite: (() => void) | undefined;

  async write(messages: readonly Message[]): Promise<number> {
    this.onWrite?.();
    if (this.gate) await this.gate;
    if (this.closed) throw new Error("closed");
    // Messages in bytes are kept as their text.
    const texts = messages.map((m) => typeof m === "string" ? m : new TextDecoder().decode(m));
    this.writes.push(texts);
    this.messages.push(...texts);
    this.#waiter?.();
    return texts.reduce((n, m) => n + utf8Length(m) + 1, 0);
  }

  close(): void {
    this.closed = true;
    this.#waiter?.();
    this.closedSignal.resolve();
  }

  /** The next message written (parsed), waiting for it if needed; undefined once closed with nothing left. */
  async next(): Promise<unknown> {
    while (this.#read >= this.messages.length) {
      if (this.closed) return undefined;
      await new Promise<void>((r) => this.#waiter = r);
    }
    return JSON.parse(this.messages[this.#read++]);
  }

  get unread(): number {
    return this.messages.length - this.#read;
  }
}

interface Harness {
  session: Session;
  transport: FakeTransport;
  logs: string[];
  send(msg: unknown): void;
  next(): Promise<unknown>;
  release(key: string, value: unknown): void;
  whenStarted(key: string): Promise<void>;
  started: string[];
  closedContexts: number[];
  /** MethodSpec.onErrorReply calls of test.echo and test.big: method, code, whether the handler ran. */
  errorReplies: [string, number, boolean][];
}

function testLog(logs: string[]): Log {
  return {
    debug: (m) => logs.push(`DEBUG ${m}`),
    info: (m) => logs.push(`INFO ${m}`),
    warn: (m) => logs.push(`WARN ${m}`),
    error: (m) => logs.push(`ERROR ${m}`),
    enabled: () => true,
  };
}

function config(env: Record<string, string> = {}): Config {
  return loadConfig(
    { DB_DIRECTORY: "/tmp/coulomb-test", DAEMON_URL: "http://u:p@127.0.0.1:8332/", ...env },
    [],
  ) as Config;
}

function makeSession(
  env: Record<string, string> = {},
  opts: { ip?: string; groups?: CostGroups; id?: number } = {},
): Harness {
  const cfg = config(env);
  const waits = new Map<string, Deferred<unknown>>();
  const wait = (key: string) => {
    let d = waits.get(key);
    if (!d) waits.set(key, d = deferred());
    return d;
  };
  const started: string[] = [];
  const startSignals = new Map<string, Deferred<void>>();
  const startSignal = (key: string) => {
    let d = startSignals.get(key);
    if (!d) startSignals.set(key, d = deferred());
    return d;
  };
  const closedContexts: number[] = [];
  const errorReplies: [string, number, boolean][] = [];
  const onErrorReply = (name: string) => (code: number, ran: boolean) => errorReplies.push([name, code, ran]);
  const table = new Map<string, MethodSpec>([
    ["test.echo", {
      params: ["value", "?extra"],
      cost: 1,
      handler: (_ctx, args) => args,
      onErrorReply: onErrorReply("test.echo"),
    }],
    ["test.wait", {
      params: ["key"],
      cost: 1,
      handler: (_ctx, [key]) => {
        started.push(String(key));
        startSignal(String(key)).resolve();
        return wait(String(key)).promise;
      },
    }],
    ["test.later", {
      params: ["value"],
      cost: 0,
      handler: (_ctx, [value]) => {
        started.push(String(value));
        return Promise.resolve(value);
      },
    }],
    ["test.fail", {
      params: [],
      cost: 1,
      handler: () => {
        throw new Error("boom");
      },
    }],
    ["test.failAsync", { params: [], cost: 1, handler: () => Promise.reject(new Error("async boom")) }],
    ["test.rpcError", {
      params: [],
      cost: 1,
      handler: () => {
        throw new RpcError(1, "X is not a valid script hash");
      },
    }],
    ["test.big", {
      params: ["n"],
      cost: 1,
      handler: (_ctx, [n]) => "x".repeat(n as number),
      onErrorReply: onErrorReply("test.big"),
    }],
    ["test.raw", {
      params: ["n", "char", "ascii"],
      cost: 1,
      handler: (_ctx, [n, c, a]) =>
        new RawJson(JSON.stringify((c as string).repeat(n as number)), a as boolean),
    }],
    ["test.cost", { params: ["n"], cost: 0, handler: (ctx, [n]) => (ctx.addCost(n as number), n) }],
    ["test.undefined", { params: [], cost: 0, handler: () => undefined }],
    ["test.bigint", { params: [], cost: 0, handler: () => 1n }],
    ["test.bytesFail", {
      params: [],
      cost: 0,
      handler: () =>
        new ByteJson(["[", {
          byteLength: 1,
          writeTo: () => {
            throw new Error("writer boom");
          },
        }, "]"]),
    }],
    ["test.subscribe", {
      params: ["value"],
      cost: 1,
      handler: (ctx: SessionContext, [value]) => {
        ctx.onClose(() => closedContexts.push(ctx.id));
        // A notification raised while the subscribe reply is still owed must follow that reply.
        ctx.notify("test.subscribe", [value, "update"]);
        return "subscribed";
      },
    }],
    ["test.ctx", {
      params: [],
      cost: 0,
      handler: (ctx) => [ctx.id, ctx.remoteAddress, ctx.protocolVersion, ctx.protocolTuple, ctx.closed],
    }],
    ["test.new", { params: [], cost: 0, minVersion: "1.6", handler: () => "new" }],
    ["test.old", { params: [], cost: 0, maxVersion: "1.5.99", handler: () => "old" }],
  ]);
  const logs: string[] = [];
  const transport = new FakeTransport(opts.ip);
  const session = new Session({
    id: opts.id ?? 1,
    protocol: "tcp",
    transport,
    methods: prepareMethods(table),
    limits: {
      maxSend: cfg.maxSend,
      requestTimeoutMs: cfg.requestTimeoutS * 1000,
      sessionTimeoutMs: cfg.sessionTimeoutS * 1000,
      maxPendingMessages: 8,
      maxQueuedBytes: 2 * cfg.maxSend,
    },
    cost: costSettings(cfg),
    groups: opts.groups ?? new CostGroups(),
    serverVersion: "Coulomb 0.1.0",
    log: testLog(logs),
  });
  const enc = new TextEncoder();
  return {
    session,
    transport,
    logs,
    started,
    closedContexts,
    errorReplies,
    send: (msg) => session.receive(enc.encode(typeof msg === "string" ? msg : JSON.stringify(msg))),
    next: () => transport.next(),
    release: (key, value) => wait(key).resolve(value),
    whenStarted: (key) => startSignal(key).promise,
  };
}

const req = (id: number | string | null, method: string, params: unknown = []) =>
  id === null ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id, method, params };
const ok = (id: unknown, result: unknown) => ({ jsonrpc: "2.0", result, id });
const err = (id: unknown, code: number, message: string) => ({
  jsonrpc: "2.0",
  error: { code, message },
  id,
});

async function negotiated(env: Record<string, string> = {}, version = "1.6"): Promise<Harness> {
  const h = makeSession(env);
  h.send(req(0, "server.version", ["test-client", version]));
  assert.deepEqual(await h.next(), ok(0, ["Coulomb 0.1.0", version]));
  return h;
}

// --- version negotiation -----------------------------------------------------------------------------------

Deno.test("server.version negotiates, echoes the software string, and refuses a second call", async () => {
  const h = makeSession();
  h.send(req(1, "server.version", ["electrum/4.5.8", ["1.4", "1.6"], "ignored", { extra: true }]));
  assert.deepEqual(await h.next(), ok(1, ["Coulomb 0.1.0", "1.6"]));
  assert.equal(h.session.client, "electrum/4.5.8");
  h.send(req(2, "server.version", ["again", "1.4"]));
  assert.deepEqual(await h.next(), err(2, 1, "server.version already sent"));
  h.send(req(3, "test.ctx"));
  assert.deepEqual(await h.next(), ok(3, [1, "127.0.0.1:50000", "1.6", [1, 6], false]));
  assert.ok(!h.transport.closed, "a second server.version keeps the connection");
});

Deno.test("server.version with named params, defaults and a long client name", async () => {
  const h = makeSession();
  h.send(req(1, "server.version", { client_name: "n".repeat(300) }));
  assert.deepEqual(await h.next(), ok(1, ["Coulomb 0.1.0", "1.4"]), "omitted version = server minimum");
  assert.equal(h.session.client.length, 100);
  const h2 = makeSession();
  h2.send(req(1, "server.version", { protocol_version: ["1.4", "1.5"] }));
  assert.deepEqual(await h2.next(), ok(1, ["Coulomb 0.1.0", "1.4.3"]));
  assert.deepEqual(h2.session.protocolTuple, [1, 4, 3]);
});

Deno.test("an unsupported version gets error 1 and the session is closed", async () => {
  const h = makeSession();
  h.send(req(1, "server.version", ["old", "1.2"]));
  assert.deepEqual(await h.next(), err(1, 1, "unsupported protocol version: 1.2"));
  await h.transport.closedSignal.promise;
  assert.ok(h.session.closed);
  assert.equal(await h.next(), undefined, "nothing after the error");
});

Deno.test("any method before server.version gets error 1 and a disconnect", async () => {
  const h = makeSession();
  h.send(req(1, "server.ping"));
  h.send(req(2, "server.version", ["late", "1.6"]));
  assert.deepEqual(await h.next(), err(1, 1, "use server.version to identify client"));
  await h.transport.closedSignal.promise;
  assert.equal(await h.next(), undefined);
  assert.ok(h.logs.some((l) => l.includes("before server.version")));
});

Deno.test("requests arriving while server.version is in flight wait for it", async () => {
  // A tiny soft limit makes every request sleep a little (throttled calls start asynchronously).
  const h = makeSession({ COST_SOFT_LIMIT: "1", COST_HARD_LIMIT: "100", REQUEST_SLEEP: "100" });
  h.send([
    req(1, "server.version", ["c", "1.6"]),
    req(2, "test.echo", ["a"]),
    req(3, "server.version", ["c", "1.6"]),
  ]);
  h.send(req(4, "test.new"));
  assert.deepEqual(await h.next(), [
    ok(1, ["Coulomb 0.1.0", "1.6"]),
    ok(2, ["a", null]),
    err(3, 1, "server.version already sent"),
  ]);
  assert.deepEqual(await h.next(), ok(4, "new"));
  assert.ok(h.session.info().throttledRequests > 0);
});

Deno.test("requests ahead of server.version in its batch do not use up the concurrency it needs", async () => {
  // INITIAL_CONCURRENT=2: before the fix, two parked pings held both places and server.version never started.
  const h = makeSession({ INITIAL_CONCURRENT: "2" });
  h.send([
    req(1, "server.ping"),
    req(2, "server.ping"),
    req(3, "server.ping"),
    req(4, "server.version", ["c", "1.6"]),
  ]);
  assert.deepEqual(await h.next(), [ok(1, null), ok(2, null), ok(3, null), ok(4, ["Coulomb 0.1.0", "1.6"])]);
  h.send(req(5, "test.echo", ["after"]));
  assert.deepEqual(await h.next(), ok(5, ["after", null]));
  assert.equal(h.session.info().requests, 5);
});

Deno.test("a backlog of thousands of waiting calls starts them in order and answers every one", async () => {
  // More calls wait than may run (INITIAL_CONCURRENT 10) for thousands of starts: the waiting queue is
  // compacted as it goes rather than growing by one entry per call.
  const h = await negotiated({ COST_SOFT_LIMIT: "0", COST_HARD_LIMIT: "0" });
  const batches = [0, 1, 2].map((b) =>
    Array.from({ length: 900 }, (_, i) => req(b * 900 + i, "test.later", [b * 900 + i]))
  );
  for (const batch of batches) h.send(batch);
  for (const batch of batches) {
    assert.deepEqual(await h.next(), batch.map((r) => ok(r.id, r.id)));
  }
  assert.deepEqual(h.started, Array.from({ length: 2700 }, (_, i) => String(i)));
});

Deno.test("JSON-RPC 1.0 is tolerated in a session that starts with it; a 2.0 session must keep to 2.0", async () => {
  const v1 = makeSession();
  v1.send({ jsonrpc: "1.0", id: 1, method: "server.version", params: ["old", "1.4"] });
  assert.deepEqual(await v1.next(), ok(1, ["Coulomb 0.1.0", "1.4"]));
  v1.send({ id: 2, method: "test.echo", params: ["no version field"] });
  v1.send({ jsonrpc: "2.0", id: 3, method: "server.ping" });
  v1.send({ jsonrpc: "3.0", id: 4, method: "server.ping" });
  assert.deepEqual(await v1.next(), ok(2, ["no version field", null]));
  assert.deepEqual(await v1.next(), ok(3, null));
  assert.deepEqual(await v1.next(), err(4, -32600, '"jsonrpc" is neither "2.0" nor "1.0"'));

  const v2 = await negotiated();
  v2.send({ jsonrpc: "1.0", id: 5, method: "server.ping" });
  v2.send([{ id: 6, method: "server.ping" }, req(7, "server.ping")]);
  assert.deepEqual(await v2.next(), err(5, -32600, '"jsonrpc" is not "2.0"'));
  assert.deepEqual(await v2.next(), [err(6, -32600, '"jsonrpc" is not "2.0"'), ok(7, null)]);
});

Deno.test("updateDecay: a session holding many subscriptions sheds its cost more slowly", async () => {
  const h = await negotiated({ COST_SOFT_LIMIT: "1000", COST_HARD_LIMIT: "10000" });
  h.send(req(1, "test.cost", [500]));
  await h.next();
  const t0 = Date.now();
  const start = h.session.info(t0).cost;
  h.session.updateDecay(0, t0);
  assert.ok(
    Math.abs(start - h.session.info(t0 + 100_000).cost - 100) < 1,
    "1 per second without subscriptions",
  );
  h.session.updateDecay(18_000, t0 + 100_000);
  const before = h.session.info(t0 + 100_000).cost;
  assert.ok(Math.abs(before - h.session.info(t0 + 200_000).cost - 10) < 1, "0.1 per second with 18,000");
});

Deno.test("methods are gated by the negotiated version: unknown method -32601", async () => {
  const h16 = await negotiated({}, "1.6");
  h16.send(req(1, "test.old"));
  h16.send(req(2, "test.new"));
  h16.send(req(3, "no.such.method"));
  assert.deepEqual(await h16.next(), err(1, -32601, 'unknown method "test.old"'));
  assert.deepEqual(await h16.next(), ok(2, "new"));
  assert.deepEqual(await h16.next(), err(3, -32601, 'unknown method "no.such.method"'));
  const h14 = await negotiated({}, "1.4");
  h14.send(req(1, "test.old"));
  h14.send(req(2, "test.new"));
  assert.deepEqual(await h14.next(), ok(1, "old"));
  assert.deepEqual(await h14.next(), err(2, -32601, 'unknown method "test.new"'));
});

// --- dispatch ----------------------------------------------------------------------------------------------

Deno.test("params: positional, named, optional, wrong counts and names", async () => {
  const h = await negotiated();
  h.send(req(1, "test.echo", ["v"]));
  h.send(req(2, "test.echo", { extra: 2, value: "v" }));
  h.send(req(3, "test.echo", []));
  h.send(req(4, "test.echo", [1, 2, 3]));
  h.send(req(5, "test.echo", { valu: 1 }));
  h.send(req(6, "test.echo", { value: 1, other: 2 }));
  h.send({ jsonrpc: "2.0", id: 7, method: "test.echo", params: "v" });
  h.send({ jsonrpc: "2.0", id: 8, method: "server.ping" });
  assert.deepEqual(await h.next(), ok(1, ["v", null]));
  assert.deepEqual(await h.next(), ok(2, ["v", 2]));
  assert.deepEqual(
    await h.next(),
    err(3, -32602, '0 arguments passed to method "test.echo" but it requires 1'),
  );
  assert.deepEqual(await h.next(), err(4, -32602, "3 arguments passed to method test.echo taking at most 2"));
  assert.deepEqual(await h.next(), err(5, -32602, 'method "test.echo" requires parameter "value"'));
  assert.deepEqual(await h.next(), err(6, -32602, 'method "test.echo" does not take parameter "other"'));
  assert.deepEqual(await h.next(), err(7, -32602, "invalid request arguments: v"));
  assert.deepEqual(await h.next(), ok(8, null));
});

Deno.test("handler errors: RpcError keeps its code, anything else is -32603 and logged", async () => {
  const h = await negotiated();
  h.send(req(1, "test.rpcError"));
  h.send(req(2, "test.fail"));
  h.send(req(3, "test.failAsync"));
  h.send(req(4, "test.bigint"));
  h.send(req(5, "test.undefined"));
  h.send(req(6, "test.bytesFail"));
  assert.deepEqual(await h.next(), err(1, 1, "X is not a valid script hash"));
  assert.deepEqual(await h.next(), err(2, -32603, "internal server error"));
  assert.deepEqual(await h.next(), err(3, -32603, "internal server error"));
  assert.deepEqual(await h.next(), err(4, -32603, "internal server error"));
  assert.deepEqual(await h.next(), ok(5, null));
  assert.deepEqual(await h.next(), err(6, -32603, "internal server error"));
  const errors = h.logs.filter((l) => l.startsWith("ERROR"));
  assert.equal(errors.length, 4);
  assert.ok(errors[0].includes("test.fail failed") && errors[0].includes("boom"));
  assert.ok(errors.some((e) => e.includes("result serialization failed") && e.includes("writer boom")));
  assert.equal(h.session.info().errors, 5);
});

Deno.test("malformed input: parse errors, bad ids, non-UTF-8, blank lines; the session keeps working", async () => {
  // Two parse errors cost 2000, past the default soft limit; a higher one keeps throttling delays out of this test.
  const h = await negotiated({ COST_SOFT_LIMIT: "5000", COST_HARD_LIMIT: "10000" });
  h.send("{not json");
  h.session.receive(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  h.send("   ");
  h.send(req(true as unknown as number, "server.ping"));
  h.send('"just a string"');
  h.send('{"jsonrpc": "2.0", "id": -1e400, "method": "server.ping"}');
  h.send({ jsonrpc: "2.0", id: 9, method: 5 });
  h.send(req(10, "server.ping"));
  assert.deepEqual(await h.next(), err(null, -32700, "invalid JSON"));
  assert.deepEqual(await h.next(), err(null, -32700, "messages must be encoded in UTF-8"));
  assert.deepEqual(await h.next(), err(null, -32600, 'invalid "id": true'));
  assert.deepEqual(await h.next(), err(null, -32600, "request object must be a dictionary"));
  assert.deepEqual(await h.next(), err(null, -32600, 'invalid "id": a number too large to echo back'));
  assert.deepEqual(await h.next(), err(9, -32600, 'request has no "method" string'));
  assert.deepEqual(await h.next(), ok(10, null));
  assert.equal(h.transport.unread, 0);
});

Deno.test("server.ping takes no arguments: any are -32602, as for every method", async () => {
  const h = await negotiated();
  h.send(req(1, "server.ping", ["x"]));
  assert.deepEqual(
    await h.next(),
    err(1, -32602, "1 argument passed to method server.ping taking at most 0"),
  );
  h.send(req(2, "server.ping", { extra: 1 }));
  assert.deepEqual(await h.next(), err(2, -32602, 'method "server.ping" does not take parameter "extra"'));
  h.send(req(3, "server.ping"));
  assert.deepEqual(await h.next(), ok(3, null));
});

Deno.test("notifications (no id or id null) run but get no reply, not even errors", async () => {
  const h = await negotiated();
  h.send(req(null, "test.echo", ["x"]));
  h.send({ jsonrpc: "2.0", id: null, method: "no.such" });
  h.send(req(null, "test.fail"));
  h.send(req(1, "server.ping"));
  assert.deepEqual(await h.next(), ok(1, null));
  assert.equal(h.transport.unread, 0);
  assert.equal(h.session.info().requests, 5, "version + 3 notifications + ping ran");
});

// --- ordering, concurrency, batches ----------------------------------------------------------------------

Deno.test("replies leave in request order although a slow request finishes last", async () => {
  const h = await negotiated();
  h.send(req(1, "test.wait", ["slow"]));
  h.send(req(2, "test.echo", ["fast"]));
  h.send(req(3, "server.ping"));
  // The fast ones have completed, but they are held behind the slow one.
  assert.equal(h.session.info().pendingMessages, 3);
  assert.equal(h.transport.unread, 0, "nothing written yet");
  h.release("slow", "done");
  assert.deepEqual(await h.next(), ok(1, "done"));
  assert.deepEqual(await h.next(), ok(2, ["fast", null]));
  assert.deepEqual(await h.next(), ok(3, null));
});

Deno.test("at most INITIAL_CONCURRENT requests run at once", async () => {
  const h = await negotiated({ INITIAL_CONCURRENT: "2" });
  for (const k of ["a", "b", "c", "d"]) h.send(req(k, "test.wait", [k]));
  assert.deepEqual(h.started, ["a", "b"]);
  h.release("b", 2);
  await h.whenStarted("c");
  assert.deepEqual(h.started, ["a", "b", "c"]);
  h.release("a", 1);
  h.release("c", 3);
  h.release("d", 4);
  for (const k of ["a", "b", "c", "d"]) assert.equal((await h.next() as { id: string }).id, k);
});

Deno.test("batches: one reply line in item order, invalid items answered inline, notifications omitted", async () => {
  const h = await negotiated();
  h.send([
    req(1, "test.wait", ["w"]),
    req(null, "test.echo", ["silent"]),
    7,
    req(2, "test.echo", ["b"]),
    req(3, "nope"),
  ]);
  h.release("w", "late");
  const reply = await h.next();
  assert.deepEqual(reply, [
    ok(1, "late"),
    err(null, -32600, "request object must be a dictionary"),
    ok(2, ["b", null]),
    err(3, -32601, 'unknown method "nope"'),
  ]);
  assert.equal(
    h.transport.writes.flat().filter((m) => m.startsWith("[")).length,
    1,
    "a batch reply is one line",
  );
  h.send([]);
  assert.deepEqual(await h.next(), err(null, -32600, "batch is empty"));
  h.send([req(null, "server.ping"), req(null, "server.ping")]);
  h.send(req(9, "server.ping"));
  assert.deepEqual(await h.next(), ok(9, null), "an all-notification batch produces nothing");
});

Deno.test("an endless batch is refused whole and charged", async () => {
  const h = await negotiated();
  const before = h.session.info().cost;
  h.send(Array.from({ length: 1001 }, (_, i) => req(i, "server.ping")));
  assert.deepEqual(await h.next(), err(null, -32600, "batch too large (1001 items, at most 1000)"));
  assert.ok(h.session.info().cost >= before + 100);
  h.send(Array.from({ length: 1000 }, (_, i) => req(i, "server.ping")));
  const replies = await h.next() as unknown[];
  assert.equal(replies.length, 1000);
});

Deno.test("a batch under the hard limit is cut off mid-way with -101 and the session closes", async () => {
  const h = await negotiated({ COST_SOFT_LIMIT: "0", COST_HARD_LIMIT: "50", REQUEST_SLEEP: "0" });
  h.send(Array.from({ length: 200 }, (_, i) => req(i, "test.echo", [i])));
  const replies = await h.next() as { id: number; error?: { code: number } }[];
  assert.ok(replies.length > 0 && replies.length < 200, `${replies.length} replies`);
  const last = replies[replies.length - 1];
  assert.deepEqual(last.error, { code: -101, message: "excessive resource usage" });
  assert.ok(replies.slice(0, -1).every((r) => r.error === undefined));
  await h.transport.closedSignal.promise;
  assert.ok(h.logs.some((l) => l.includes("excessive resource usage")));
});

Deno.test("batches of nothing but invalid items reach the hard limit: -101, closed, the group charged no further", async () => {
  const groups = new CostGroups();
  const h = makeSession({ COST_SOFT_LIMIT: "0", COST_HARD_LIMIT: "1000" }, { ip: "203.0.113.5", groups });
  h.send(req(0, "server.version", ["test-client", "1.4"]));
  assert.deepEqual(await h.next(), ok(0, ["Coulomb 0.1.0", "1.4"]));
  const invalid = Array.from({ length: 6 }, (_, i) => ({ jsonrpc: "2.0", id: i }));
  h.send(invalid);
  const first = await h.next() as unknown[];
  assert.equal(first.length, 6);
  assert.deepEqual(first[0], err(0, -32600, 'request has no "method" string'));
  // 600 charged so far; the next batch crosses 1,000 at its fifth item and is not answered item by item.
  for (let i = 0; i < 50; i++) h.send(invalid);
  assert.deepEqual(await h.next(), err(null, -101, "excessive resource usage"));
  await h.transport.closedSignal.promise;
  assert.equal(await h.next(), undefined);
  const total = groups.get("203.0.113.0/24")!.total(Date.now());
  assert.ok(total <= 1000 + 100 + 10, `group cost ${total}`);
});

Deno.test("blank lines reported in bulk cost a ping each: 131,072 of them pass the default hard limit", async () => {
  const h = await negotiated();
  const before = h.session.info().cost;
  h.session.receiveBlank(65536, 65536);
  const after = h.session.info();
  assert.ok(after.cost >= before + 6553 && after.cost < before + 6600, `${before} -> ${after.cost}`);
  assert.equal(h.transport.unread, 0, "no reply to keep-alives");
  h.session.receiveBlank(65536, 65536);
  assert.deepEqual(await h.next(), err(null, -101, "excessive resource usage"));
  await h.transport.closedSignal.promise;
});

Deno.test("blank lines cost their bytes and a stream of them reaches the hard limit", async () => {
  const h = await negotiated({ COST_SOFT_LIMIT: "0", COST_HARD_LIMIT: "100", BANDWIDTH_UNIT_COST: "1000" });
  const blank = " ".repeat(30_000);
  for (let i = 0; i < 10; i++) h.send(blank);
  assert.deepEqual(await h.next(), err(null, -101, "excessive resource usage"));
  await h.transport.closedSignal.promise;
});

// --- notifications --------------------------------------------------------------------------------------

Deno.test("notifications follow the reply they were raised under and stop at close", async () => {
  const h = await negotiated();
  h.send(req(1, "test.wait", ["first"]));
  h.send(req(2, "test.subscribe", ["s"]));
  h.session.notify("test.other", ["queued behind both"]);
  h.release("first", 1);
  assert.deepEqual(await h.next(), ok(1, 1));
  assert.deepEqual(await h.next(), ok(2, "subscribed"));
  assert.deepEqual(await h.next(), { jsonrpc: "2.0", method: "test.subscribe", params: ["s", "update"] });
  assert.deepEqual(await h.next(), { jsonrpc: "2.0", method: "test.other", params: ["queued behind both"] });
  // With nothing owed, a notification goes straight out.
  h.session.notify("test.direct", [1]);
  assert.deepEqual(await h.next(), { jsonrpc: "2.0", method: "test.direct", params: [1] });
  h.session.close("test");
  assert.deepEqual(h.closedContexts, [1], "onClose callbacks ran");
  h.session.notify("test.after", []);
  assert.equal(h.transport.unread, 0, "nothing after close");
  let late = false;
  h.session.onClose(() => late = true);
  assert.ok(late, "onClose after close runs at once");
});

// --- limits -----------------------------------------------------------------------------------------------

Deno.test("MAX_SEND: an oversized reply becomes -32600 and batch items over the budget become errors", async () => {
  const h = await negotiated({ MAX_SEND: "350000" });
  h.send(req(1, "test.big", [349_000]));
  h.send(req(2, "test.big", [350_000]));
  h.send(req(3, "server.ping"));
  assert.equal(((await h.next()) as { result: string }).result.length, 349_000);
  assert.deepEqual(await h.next(), err(2, -32600, "response too large (over 350,000 bytes"));
  assert.deepEqual(await h.next(), ok(3, null));
  h.send([req(4, "test.big", [200_000]), req(5, "test.big", [200_000]), req(6, "server.ping")]);
  const batch = await h.next() as { id: number; result?: string; error?: unknown }[];
  assert.equal(batch[0].result!.length, 200_000);
  assert.deepEqual(batch[1], err(5, -32600, "response too large (over 350,000 bytes"));
  assert.deepEqual(batch[2], ok(6, null));
  // The method's metrics hear of both, the handler having run; and of arguments that did not bind.
  h.send(req(7, "test.echo", []));
  assert.equal(((await h.next()) as { error: { code: number } }).error.code, -32602);
  assert.deepEqual(h.errorReplies, [["test.big", -32600, true], ["test.big", -32600, true], [
    "test.echo",
    -32602,
    false,
  ]]);
});

Deno.test("MAX_SEND counts bytes: an ASCII raw result by its length, but the id and other text by UTF-8", async () => {
  const h = await negotiated({ MAX_SEND: "350000" });
  // 349,800 characters of result plus 35 of envelope: 100 characters of id fit as ASCII, not as two-byte "é".
  h.send(req("a".repeat(100), "test.raw", [349_798, "x", true]));
  assert.equal(((await h.next()) as { result: string }).result.length, 349_798);
  h.send(req("é".repeat(100), "test.raw", [349_798, "x", true]));
  assert.deepEqual(await h.next(), err("é".repeat(100), -32600, "response too large (over 350,000 bytes"));
  // A raw result not declared ASCII is measured: 175,000 "é" are 350,000 bytes.
  h.send(req(1, "test.raw", [175_000, "é", false]));
  assert.deepEqual(await h.next(), err(1, -32600, "response too large (over 350,000 bytes"));
  h.send(req(2, "test.raw", [174_800, "é", false]));
  assert.equal(((await h.next()) as { result: string }).result.length, 174_800);
});

Deno.test("cost past the soft limit delays requests; groups share cost; loopback is exempt", async () => {
  const groups = new CostGroups();
  const env = { COST_SOFT_LIMIT: "100", COST_HARD_LIMIT: "1000", REQUEST_SLEEP: "5" };
  const mk = (ip: string, id: number) => {
    const h = makeSession(env, { ip, groups, id });
    h.send(req(0, "server.version", ["c", "1.6"]));
    return h;
  };
  const a = mk("203.0.113.1", 1);
  const b = mk("203.0.113.2", 2);
  const local = mk("127.0.0.1", 3);
  const c = mk("198.51.100.7", 4);
  for (const h of [a, b, local, c]) await h.next();
  a.send(req(1, "test.cost", [400]));
  assert.deepEqual(await a.next(), ok(1, 400));
  // b did nothing itself but shares a's /24, so its requests are throttled too.
  b.send(req(1, "server.ping"));
  assert.deepEqual(await b.next(), ok(1, null));
  const ib = b.session.info();
  assert.equal(ib.group, "203.0.113.0/24");
  assert.ok(ib.cost < 100 && ib.throttleCost > 400, JSON.stringify(ib));
  assert.equal(ib.throttledRequests, 1);
  assert.ok(ib.concurrency < 10);
  // Other networks and loopback are unaffected.
  c.send(req(1, "server.ping"));
  local.send(req(1, "server.ping"));
  await c.next();
  await local.next();
  assert.equal(c.session.info().throttledRequests, 0);
  assert.equal(local.session.info().group, undefined);
  assert.equal(local.session.info().throttledRequests, 0);
  // Leaving does not wipe the slate: the group retains what a owed.
  a.session.close("test");
  assert.ok(b.session.info().throttleCost > 300);
});

Deno.test("hard limit: -101, then the session is closed", async () => {
  const h = await negotiated({ COST_SOFT_LIMIT: "10", COST_HARD_LIMIT: "100", REQUEST_SLEEP: "1" });
  h.send(req(1, "test.cost", [200]));
  h.send(req(2, "server.ping"));
  h.send(req(3, "server.ping"));
  assert.deepEqual(await h.next(), ok(1, 200));
  assert.deepEqual(await h.next(), err(2, -101, "excessive resource usage"));
  await h.transport.closedSignal.promise;
  assert.equal(await h.next(), undefined);
});

Deno.test("parse errors cost 1000 each, so garbage alone reaches the hard limit", async () => {
  const h = await negotiated({ COST_SOFT_LIMIT: "1000", COST_HARD_LIMIT: "3000" });
  for (let i = 0; i < 5; i++) h.send("garbage");
  const replies = [await h.next(), await h.next(), await h.next()];
  assert.deepEqual(replies[0], err(null, -32700, "invalid JSON"));
  assert.deepEqual(replies[2], err(null, -101, "excessive resource usage"));
  await h.transport.closedSignal.promise;
});

Deno.test("oversized messages get no reply but cost an error", async () => {
  const h = await negotiated();
  const started = Date.now();
  const before = h.session.info();
  h.session.receiveOversize(2_000_000);
  const after = h.session.info();
  // The cost decays by COST_HARD_LIMIT / 10,000 per second (1/s by default) on the session's own clock: what
  // the milliseconds between the two readings took off is not a missing charge.
  const decayed = (Date.now() - started + 1) / 1000;
  assert.equal(after.errors, before.errors + 1);
  assert.ok(after.cost >= before.cost + 100 + 2_000_000 / 5000 - decayed, `${before.cost} -> ${after.cost}`);
  // Later parts of the same message cost their bytes, not another error.
  h.session.receiveOversize(1_000_000, false);
  const later = h.session.info();
  assert.equal(later.errors, after.errors);
  assert.equal(later.recvBytes, after.recvBytes + 1_000_000);
  assert.ok(
    later.cost >= after.cost + 200 - 1 && later.cost < after.cost + 300,
    `${after.cost} -> ${later.cost}`,
  );
  h.send(req(1, "server.ping"));
  assert.deepEqual(await h.next(), ok(1, null));
});

Deno.test("REQUEST_TIMEOUT counts from arrival: requests still waiting for a turn time out with the one running", async () => {
  const h = await negotiated({ REQUEST_TIMEOUT: "5", INITIAL_CONCURRENT: "1" });
  // One may run at a time: "b" and "c" wait behind "a", which never finishes.
  h.send(req("a", "test.wait", ["a"]));
  h.send(req("b", "test.wait", ["b"]));
  h.send(req("c", "test.wait", ["c"]));
  await h.whenStarted("a");
  assert.deepEqual(h.started, ["a"]);
  h.session.tick(Date.now() + 5000);
  for (const id of ["a", "b", "c"]) {
    assert.deepEqual(await h.next(), err(id, -102, "server busy - request timed out"));
  }
  assert.deepEqual(h.started, ["a"], "the ones that timed out waiting never run");
  h.send(req(1, "test.echo", ["after"]));
  assert.deepEqual(await h.next(), ok(1, ["after", null]), "and the turn they held is free");
});

Deno.test("REQUEST_TIMEOUT answers -102 and ignores the late result; SESSION_TIMEOUT closes idle sessions", async () => {
  const h = await negotiated({ REQUEST_TIMEOUT: "5", SESSION_TIMEOUT: "60" });
  h.send(req(1, "test.wait", ["never"]));
  h.send(req(2, "server.ping"));
  const now = Date.now();
  h.session.tick(now + 1000);
  assert.equal(h.transport.unread, 0, "not yet");
  h.session.tick(now + 6000);
  assert.deepEqual(await h.next(), err(1, -102, "server busy - request timed out"));
  assert.deepEqual(await h.next(), ok(2, null));
  h.release("never", "too late");
  await Promise.resolve();
  h.send(req(3, "server.ping"));
  assert.deepEqual(await h.next(), ok(3, null), "the late result was dropped");
  h.session.tick(h.session.lastRecvAt + 59_000);
  assert.ok(!h.session.closed);
  h.session.tick(h.session.lastRecvAt + 61_000);
  assert.ok(h.session.closed);
  assert.ok(h.logs.some((l) => l.includes("closing idle session")));
});

Deno.test("a peer that does not read is disconnected once its queued output passes 2 x MAX_SEND", async () => {
  const h = await negotiated({ MAX_SEND: "350000" });
  const gate = deferred<void>();
  h.transport.gate = gate.promise; // writes never complete: the peer is not reading
  h.send(req(1, "test.big", [200_000]));
  assert.equal(h.session.room(), undefined);
  h.send(req(2, "test.big", [200_000]));
  assert.ok(h.session.room() instanceof Promise, "reading pauses once output passes MAX_SEND");
  h.send(req(3, "test.big", [200_000]));
  assert.ok(!h.session.closed);
  h.send(req(4, "test.big", [200_000]));
  assert.ok(h.session.closed, "closed past 700,000 queued bytes");
  assert.ok(h.logs.some((l) => l.includes("not reading")));
});

Deno.test("replies cost their bytes when queued; a peer that does not take a write in time is closed", async () => {
  const h = await negotiated({ SESSION_TIMEOUT: "60" });
  const gate = deferred<void>();
  h.transport.gate = gate.promise; // writes never complete: the peer is not reading
  const writing = new Promise<void>((resolve) => h.transport.onWrite = resolve);
  const before = h.session.info();
  h.send(req(1, "test.big", [1_000_000]));
  await writing;
  const queued = h.session.info();
  assert.equal(queued.sendBytes, before.sendBytes, "nothing more written yet");
  assert.ok(
    queued.cost >= before.cost + 1_000_000 / 5000,
    `${before.cost} -> ${queued.cost}: charged before it is written`,
  );
  // The write is given SESSION_TIMEOUT plus its size at 1,000 bytes/s (a slow link still gets it): 60 + 1,000 s.
  // Keep-alives do not extend that.
  const started = Date.now();
  h.send("");
  assert.equal(h.session.tick(started + 1_059_000), undefined);
  assert.ok(!h.session.closed);
  assert.equal(h.session.tick(started + 1_062_000), "not reading");
  assert.ok(h.session.closed);
  assert.ok(h.logs.some((l) => l.includes("has not read for too long")));
});

Deno.test("replies held behind a slow request count toward the output bound too", async () => {
  const h = await negotiated({ MAX_SEND: "350000" });
  h.send(req(1, "test.wait", ["slow"]));
  h.send(req(2, "test.big", [200_000]));
  assert.equal(h.session.room(), undefined);
  h.send(req(3, "test.big", [200_000]));
  assert.equal(h.session.info().queuedBytes > 400_000, true);
  assert.ok(h.session.room() instanceof Promise, "reading pauses: held replies pass MAX_SEND");
  h.send(req(4, "test.big", [200_000]));
  h.send(req(5, "test.big", [200_000]));
  assert.ok(h.session.closed, "closed past 2 x MAX_SEND held");
  assert.ok(h.logs.some((l) => l.includes("not reading its replies")));
});

Deno.test("reading pauses while too many messages are unanswered and resumes when they are", async () => {
  const h = await negotiated();
  for (let i = 0; i < 8; i++) h.send(req(i, "test.wait", ["hold"]));
  const room = h.session.room();
  assert.ok(room instanceof Promise);
  h.release("hold", "x");
  await room;
  assert.equal(h.session.room(), undefined);
  for (let i = 0; i < 8; i++) assert.equal((await h.next() as { id: number }).id, i);
});

Deno.test("drain answers what was received, then closes; later input is ignored", async () => {
  const h = await negotiated();
  h.send(req(1, "test.wait", ["k"]));
  const drained = h.session.drain();
  h.send(req(2, "server.ping"));
  assert.ok(!h.session.closed);
  h.release("k", "finished");
  await drained;
  assert.ok(h.session.closed);
  assert.deepEqual(h.transport.messages.slice(1).map((m) => JSON.parse(m)), [ok(1, "finished")]);
});
