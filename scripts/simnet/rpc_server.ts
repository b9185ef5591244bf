// simnet's HTTP face: Bitcoin Core's JSON-RPC and REST transport, reproduced closely enough that a client tested
// against it behaves the same against bitcoind (httpserver.cpp, httprpc.cpp, rpc/request.cpp, rpc/server.cpp,
// rest.cpp). The HTTP/1.1 layer is written on raw TCP instead of Deno.serve because fault injection must be able
// to drop a connection without sending a single byte, and because libevent's framing (default Content-Type,
// reply version, 413 on oversized bodies) is part of what clients see.

import { CoreRpcError, type RestProvider, RPC, type RpcMethod, type RpcMethodTable } from "./rpc_types.ts";
import { fromHexReversed, isHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { errorText } from "../../src/error_text.ts";

/** How to start the server. */
export interface RpcServerOptions {
  /** Address to bind; Core's default RPC bind is loopback. */
  hostname?: string;
  /** TCP port; 0 lets the OS choose. */
  port: number;
  /** Method name → implementation; looked up per call, so methods added after start are served. */
  methods: RpcMethodTable;
  /** Enables `/rest/...` (Core: -rest=1). */
  rest?: RestProvider;
  /** Fixed credentials (Core: rpcuser/rpcpassword) or a cookie written into `cookieDir` (Core's default). */
  auth: { user: string; password: string } | { cookieDir: string };
  /** Core's -rpcworkqueue: requests allowed to wait for a worker (default 64, minimum 1). */
  workQueue?: number;
  /** Core's -rpcthreads: requests processed at once (default 16). */
  rpcThreads?: number;
  /** Largest request body accepted; Core hands libevent MAX_SIZE (32 MiB). Larger ⇒ 413. */
  maxBodyBytes?: number;
  /** Core's -rpcservertimeout in milliseconds: an idle or stalled connection is closed after it (default 30 s). */
  idleTimeoutMs?: number;
  /** Shared fault settings, e.g. created earlier with newFaults() for faultMethods(); a fresh set otherwise. */
  faults?: Faults;
}

/** Live fault injection, set by control RPCs (faultMethods) or directly by tests. */
export interface Faults {
  /** Until `until` (ms since epoch) every RPC but control ones answers -28 `message`; REST answers 503. */
  warmup: { until: number; message: string } | null;
  /** Delay every reply by this many milliseconds. */
  delayMs: number;
  /** Close the next N connections after reading their request, without replying. */
  dropNext: number;
  /** Answer the next N requests with 503 "Work queue depth exceeded". */
  busyNext: number;
  /** Answer the next N requests with status 200 and a truncated body (invalid JSON). */
  malformedNext: number;
}

/** A running server. */
export interface RpcServer {
  /** The bound TCP port. */
  port: number;
  /** `http://host:port/`, the JSON-RPC endpoint. */
  url: string;
  /** Where the cookie lives, when cookie auth is used. */
  cookiePath?: string;
  /** The live fault settings; mutate to inject faults. */
  faults: Faults;
  /** Stops listening, finishes requests in progress (cutting fault delays short), deletes the cookie. */
  close(): Promise<void>;
  /** Writes a new cookie password, as a bitcoind restart would; no-op with fixed credentials. */
  rotateCookie(): void;
}

/** A fault set with every fault off. */
export function newFaults(): Faults {
  return { warmup: null, delayMs: 0, dropNext: 0, busyNext: 0, malformedNext: 0 };
}

/** Binds the port, writes the cookie (if cookie auth) and starts serving. */
export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const server = new SimnetHttpServer(opts);
  await server.start();
  return server;
}

// ---------------------------------------------------------------------------------------------------------------
// Control RPCs

/** Methods whose names start with this are simnet's control RPCs: exempt from every fault. */
export const CONTROL_PREFIX = "simnet_";

const FAULT_KEYS = [
  "warmup_ms",
  "warmup_message",
  "delay_ms",
  "drop_next",
  "busy_next",
  "malformed_next",
] as const;
/** Core's first warmup status (init.cpp); shown when a test asks for warmup without a message. */
const DEFAULT_WARMUP_MESSAGE = "Loading block index…";

/** `simnet_setfaults` / `simnet_clearfaults`, acting on `faults`. */
export function faultMethods(faults: Faults): RpcMethodTable {
  return {
    simnet_setfaults: {
      params: FAULT_KEYS.map((k) => "?" + k),
      handler(args: unknown[]): unknown {
        // Accept both {"params": {...named...}} (mapped positionally by the transport) and [{...}].
        let settings: Record<string, unknown>;
        if (args.length === 1 && isObject(args[0])) {
          settings = args[0];
          for (const key of Object.keys(settings)) {
            if (!(FAULT_KEYS as readonly string[]).includes(key)) {
              throw new CoreRpcError(
                RPC.INVALID_PARAMETER,
                `Unknown fault setting ${key} (known: ${FAULT_KEYS.join(", ")})`,
              );
            }
          }
        } else {
          settings = {};
          FAULT_KEYS.forEach((key, i) => settings[key] = args[i]);
        }
        applyFaultSettings(faults, settings);
        return describeFaults(faults);
      },
    },
    simnet_clearfaults: {
      params: [],
      handler(): unknown {
        Object.assign(faults, newFaults());
        return describeFaults(faults);
      },
    },
  };
}

function applyFaultSettings(faults: Faults, s: Record<string, unknown>): void {
  const count = (key: string): number | undefined => {
    const v = s[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number") {
      throw new CoreRpcError(RPC.TYPE_ERROR, `${key} must be a number, got JSON ${jsonTypeName(v)}`);
    }
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new CoreRpcError(RPC.INVALID_PARAMETER, `${key} must be a non-negative integer, got ${v}`);
    }
    return v;
  };
  // Validate everything before changing anything, so a bad call leaves the faults as they were.
  const warmupMs = count("warmup_ms"), delayMs = count("delay_ms"), dropNext = count("drop_next");
  const busyNext = count("busy_next"), malformedNext = count("malformed_next");
  const msg = s.warmup_message;
  if (msg !== undefined && msg !== null && typeof msg !== "string") {
    throw new CoreRpcError(RPC.TYPE_ERROR, `warmup_message must be a string, got JSON ${jsonTypeName(msg)}`);
  }
  if (typeof msg === "string" && warmupMs === undefined && activeWarmup(faults) === null) {
    throw new CoreRpcError(RPC.INVALID_PARAMETER, "warmup_message needs warmup_ms (no warmup is active)");
  }
  if (warmupMs !== undefined) {
    faults.warmup = warmupMs === 0 ? null : {
      until: Date.now() + warmupMs,
      message: typeof msg === "string" ? msg : faults.warmup?.message ?? DEFAULT_WARMUP_MESSAGE,
    };
  } else if (typeof msg === "string" && faults.warmup) {
    faults.warmup = { ...faults.warmup, message: msg };
  }
  if (delayMs !== undefined) faults.delayMs = delayMs;
  if (dropNext !== undefined) faults.dropNext = dropNext;
  if (busyNext !== undefined) faults.busyNext = busyNext;
  if (malformedNext !== undefined) faults.malformedNext = malformedNext;
}

function describeFaults(f: Faults): Record<string, unknown> {
  const warm = activeWarmup(f);
  return {
    warmup_ms: warm ? Math.max(0, warm.until - Date.now()) : 0,
    warmup_message: warm ? warm.message : null,
    delay_ms: f.delayMs,
    drop_next: f.dropNext,
    busy_next: f.busyNext,
    malformed_next: f.malformedNext,
  };
}

/** The warmup fault if it is still in force; an expired one is cleared. */
function activeWarmup(f: Faults): { until: number; message: string } | null {
  if (f.warmup && Date.now() >= f.warmup.until) f.warmup = null;
  return f.warmup;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP/1.1 on raw TCP, framed the way libevent frames bitcoind's replies

const DEFAULT_WORK_QUEUE = 64;
const DEFAULT_RPC_THREADS = 16;
const DEFAULT_MAX_BODY = 0x02000000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Core's MAX_HEADERS_SIZE. */
const MAX_HEADER_BYTES = 8192;
/** UniValue's MAX_JSON_DEPTH: deeper documents are a parse error. */
const MAX_JSON_DEPTH = 512;
/** Core sleeps this long before answering a wrong password, to slow brute force. */
const WRONG_AUTH_DELAY_MS = 250;
/** How long a connection refused with 413 may keep sending before it is cut, so the client can read the 413. */
const LINGER_MS = 2_000;
/** Bodies up to this size go out in the same write as the head. */
const COALESCE_BYTES = 64 * 1024;
/** libevent adds this to every reply that has a body but no Content-Type. */
const LIBEVENT_CONTENT_TYPE = "text/html; charset=ISO-8859-1";
const JSON_TYPE = "application/json";
const WWW_AUTH = 'Basic realm="jsonrpc"';
const MAX_REST_HEADERS_RESULTS = 2000;

const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Request Entity Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();
// ignoreBOM keeps a byte-order mark in the text, so JSON.parse rejects it as UniValue does.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

interface HttpRequest {
  method: string;
  target: string;
  minor: number;
  headers: Map<string, string>;
  body: Uint8Array;
  keepAlive: boolean;
}

interface HttpReply {
  status: number;
  body?: Uint8Array | string;
  contentType?: string;
  wwwAuthenticate?: boolean;
}

/** Returned by request handling when the connection is to be dropped without a reply. */
const DROP = Symbol("drop");

/** Request framing error: answered with `status` and an empty body, then the connection is closed. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The peer closed the connection mid-request: nothing to answer. */
class PeerGone extends Error {}

/** Buffered reader over one connection. */
class ConnReader {
  private buf = new Uint8Array(16 * 1024);
  private start = 0;
  private end = 0;

  constructor(private readonly conn: Deno.Conn) {}

  get buffered(): number {
    return this.end - this.start;
  }

  /** Reads more bytes into the buffer; false at EOF. */
  async fill(): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buf.length) {
      if (this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      } else {
        const bigger = new Uint8Array(this.buf.length * 2);
        bigger.set(this.buf);
        this.buf = bigger;
      }
    }
    const n = await this.conn.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }

  /** Drops blank lines before a request line (RFC 9112 §2.2 lets clients send them). */
  skipBlankLines(): void {
    while (this.start < this.end && (this.buf[this.start] === 13 || this.buf[this.start] === 10)) {
      this.start++;
    }
  }

  /** Length of the buffered head including its blank line, or -1 if it is not complete yet. */
  headLength(): number {
    const b = this.buf;
    for (let i = this.start; i < this.end; i++) {
      if (b[i] !== 10) continue;
      if (i + 1 < this.end && b[i + 1] === 10) return i + 2 - this.start;
      if (i + 2 < this.end && b[i + 1] === 13 && b[i + 2] === 10) return i + 3 - this.start;
    }
    return -1;
  }

  /** Buffered line without its CR LF, or null if no full line is buffered. */
  line(): string | null {
    for (let i = this.start; i < this.end; i++) {
      if (this.buf[i] !== 10) continue;
      const stop = i > this.start && this.buf[i - 1] === 13 ? i - 1 : i;
      const s = latin1(this.buf.subarray(this.start, stop));
      this.start = i + 1;
      return s;
    }
    return null;
  }

  /** Consumes `n` buffered bytes as text. */
  takeText(n: number): string {
    const s = latin1(this.buf.subarray(this.start, this.start + n));
    this.start += n;
    return s;
  }

  /** Fills `out` completely, from the buffer first and then straight from the socket. */
  async readExact(out: Uint8Array): Promise<void> {
    const fromBuf = Math.min(out.length, this.buffered);
    out.set(this.buf.subarray(this.start, this.start + fromBuf));
    this.start += fromBuf;
    let got = fromBuf;
    while (got < out.length) {
      const n = await this.conn.read(out.subarray(got));
      if (n === null) throw new PeerGone("connection closed mid-body");
      got += n;
    }
  }
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(bytes.length, i + 4096)));
  }
  return s;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * Reads one request; null on a clean EOF between requests. Throws HttpError for bad framing and PeerGone when
 * the peer disappears mid-request.
 */
async function readRequest(
  reader: ConnReader,
  conn: Deno.Conn,
  maxBody: number,
): Promise<HttpRequest | null> {
  let headLen: number;
  for (;;) {
    reader.skipBlankLines();
    headLen = reader.headLength();
    if (headLen >= 0) break;
    if (reader.buffered > MAX_HEADER_BYTES) throw new HttpError(413, "request head too large");
    if (!(await reader.fill())) {
      if (reader.buffered === 0) return null;
      throw new PeerGone("connection closed mid-head");
    }
  }
  if (headLen > MAX_HEADER_BYTES) throw new HttpError(413, "request head too large");
  const lines = reader.takeText(headLen).split("\n").map((l) => l.endsWith("\r") ? l.slice(0, -1) : l);
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
  if (!m) throw new HttpError(400, "malformed request line");
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length && lines[i] !== ""; i++) {
    const colon = lines[i].indexOf(":");
    if (colon <= 0) throw new HttpError(400, "malformed header line");
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    const prev = headers.get(name);
    if (prev !== undefined && name === "content-length" && prev !== value) {
      throw new HttpError(400, "conflicting Content-Length");
    }
    headers.set(name, prev === undefined || name === "content-length" ? value : prev + ", " + value);
  }
  const minor = Number(m[3]);
  const connection = (headers.get("connection") ?? "").toLowerCase();
  const keepAlive = minor === 1
    ? !/(^|,)\s*close\s*(,|$)/.test(connection)
    : /(^|,)\s*keep-alive\s*(,|$)/.test(connection);
  const expectContinue = minor === 1 && (headers.get("expect") ?? "").toLowerCase() === "100-continue";
  const sendContinue = async () => {
    if (expectContinue && reader.buffered === 0) {
      await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
  };

  let body: Uint8Array = new Uint8Array(0);
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  if (te !== undefined) {
    if (!/(^|,)\s*chunked$/i.test(te)) throw new HttpError(400, "unsupported Transfer-Encoding");
    await sendContinue();
    body = await readChunked(reader, maxBody);
  } else if (cl !== undefined) {
    if (!/^\d+$/.test(cl)) throw new HttpError(400, "malformed Content-Length");
    const n = Number(cl);
    if (n > maxBody) throw new HttpError(413, "body too large");
    if (n > 0) {
      await sendContinue();
      body = new Uint8Array(n);
      await reader.readExact(body);
    }
  }
  return { method: m[1], target: m[2], minor, headers, body, keepAlive };
}

async function readChunked(reader: ConnReader, maxBody: number): Promise<Uint8Array> {
  const readLine = async (): Promise<string> => {
    for (;;) {
      const line = reader.line();
      if (line !== null) return line;
      if (reader.buffered > 4096) throw new HttpError(400, "chunk line too long");
      if (!(await reader.fill())) throw new PeerGone("connection closed mid-chunk");
    }
  };
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const sizeMatch = /^([0-9a-fA-F]{1,16})\s*(;.*)?$/.exec(await readLine());
    if (!sizeMatch) throw new HttpError(400, "malformed chunk size");
    const size = parseInt(sizeMatch[1], 16);
    if (size === 0) break;
    if (total + size > maxBody) throw new HttpError(413, "body too large");
    const part = new Uint8Array(size);
    await reader.readExact(part);
    parts.push(part);
    total += size;
    if ((await readLine()) !== "") throw new HttpError(400, "chunk not followed by CRLF");
  }
  while ((await readLine()) !== ""); // trailer fields are ignored
  if (parts.length === 1) return parts[0];
  const body = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    body.set(p, off);
    off += p.length;
  }
  return body;
}

/** Writes a reply framed as libevent would: same HTTP minor version, Date, Content-Length, default type. */
async function writeReply(conn: Deno.Conn, reply: HttpReply, req: HttpRequest | null, keepAlive: boolean) {
  const minor = req?.minor ?? 1;
  const hasBody = reply.status !== 204 && reply.status !== 304 && reply.status >= 200;
  const body = reply.body === undefined
    ? new Uint8Array(0)
    : typeof reply.body === "string"
    ? encoder.encode(reply.body)
    : reply.body;
  let head = `HTTP/1.${minor} ${reply.status} ${REASONS[reply.status] ?? "Unknown"}\r\n`;
  if (hasBody) head += `Content-Type: ${reply.contentType ?? LIBEVENT_CONTENT_TYPE}\r\n`;
  if (reply.wwwAuthenticate) head += `WWW-Authenticate: ${WWW_AUTH}\r\n`;
  head += `Date: ${new Date().toUTCString()}\r\n`;
  if (hasBody) head += `Content-Length: ${body.length}\r\n`;
  if (!keepAlive) head += "Connection: close\r\n";
  else if (minor === 0) head += "Connection: keep-alive\r\n";
  head += "\r\n";
  const headBytes = encoder.encode(head);
  const sendBody = hasBody && req?.method !== "HEAD" && body.length > 0;
  if (!sendBody) return writeAll(conn, headBytes);
  if (body.length <= COALESCE_BYTES) {
    const out = new Uint8Array(headBytes.length + body.length);
    out.set(headBytes);
    out.set(body, headBytes.length);
    return writeAll(conn, out);
  }
  await writeAll(conn, headBytes);
  await writeAll(conn, body);
}

/** Core's WorkQueue in front of its worker threads: `threads` run, `depth` wait, the rest are refused. */
class WorkQueue {
  private active = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly threads: number, private readonly depth: number) {}

  /** A slot (resolves when a worker is free), or null when the queue is full. */
  enter(): Promise<() => void> | null {
    if (this.active < this.threads) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.depth) return null;
    return new Promise((resolve) => this.waiting.push(() => resolve(this.releaser())));
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.active--;
    };
  }
}

interface ConnState {
  conn: Deno.Conn;
  busy: boolean;
  closed: boolean;
}

type Route =
  | { kind: "rpc" }
  | { kind: "block" | "headers" | "blockhashbyheight" | "chaininfo"; part: string };

// Core registers these prefixes (rest.cpp's uri_prefixes) and matches them in order; the RPC handler goes first.
const REST_PREFIXES: [string, "block" | "headers" | "blockhashbyheight" | "chaininfo"][] = [
  ["/rest/block/notxdetails/", "block"],
  ["/rest/block/", "block"],
  ["/rest/chaininfo", "chaininfo"],
  ["/rest/headers/", "headers"],
  ["/rest/blockhashbyheight/", "blockhashbyheight"],
];

class SimnetHttpServer implements RpcServer {
  port = 0;
  url = "";
  cookiePath?: string;
  readonly faults: Faults;

  private listener: Deno.Listener | null = null;
  private readonly queue: WorkQueue;
  private readonly maxBody: number;
  private readonly idleTimeoutMs: number;
  private readonly conns = new Set<ConnState>();
  private readonly connTasks = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private acceptTask: Promise<void> = Promise.resolve();
  private closing = false;
  private closed: Promise<void> | null = null;
  private user: Uint8Array = new Uint8Array(0);
  private password: Uint8Array = new Uint8Array(0);

  constructor(private readonly opts: RpcServerOptions) {
    const workQueue = opts.workQueue ?? DEFAULT_WORK_QUEUE;
    const threads = opts.rpcThreads ?? DEFAULT_RPC_THREADS;
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new RangeError(`port must be an integer 0..65535 (0 = OS-assigned), got ${opts.port}`);
    }
    if (!Number.isInteger(workQueue) || workQueue < 1) {
      throw new RangeError(
        `workQueue must be an integer ≥ 1 (Core clamps -rpcworkqueue to 1), got ${workQueue}`,
      );
    }
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`rpcThreads must be an integer ≥ 1, got ${threads}`);
    }
    this.queue = new WorkQueue(threads, workQueue);
    this.maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.faults = opts.faults ?? newFaults();
  }

  /** Binds, then writes the cookie (bitcoind does it in that order too, so a cookie means the port is up). */
  start(): Promise<void> {
    const hostname = this.opts.hostname ?? "127.0.0.1";
    this.listener = Deno.listen({ hostname, port: this.opts.port, transport: "tcp" });
    const addr = this.listener.addr as Deno.NetAddr;
    this.port = addr.port;
    this.url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${this.port}/`;
    try {
      if ("cookieDir" in this.opts.auth) {
        this.cookiePath = `${this.opts.auth.cookieDir.replace(/\/+$/, "")}/.cookie`;
        this.writeCookie();
      } else {
        this.user = encoder.encode(this.opts.auth.user);
        this.password = encoder.encode(this.opts.auth.password);
      }
    } catch (e) {
      this.listener.close();
      throw new Error(`cannot write RPC cookie ${this.cookiePath}: ${errorText(e)}`);
    }
    this.acceptTask = this.acceptLoop(this.listener);
    return Promise.resolve();
  }

  rotateCookie(): void {
    if (this.cookiePath !== undefined) this.writeCookie();
  }

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    try {
      this.listener?.close();
    } catch { /* already closed */ }
    for (const wake of [...this.sleepers]) wake();
    for (const st of this.conns) if (!st.busy) this.closeConn(st);
    await this.acceptTask;
    while (this.connTasks.size > 0) await Promise.all([...this.connTasks]);
    if (this.cookiePath !== undefined) {
      try {
        Deno.removeSync(this.cookiePath);
      } catch { /* already gone: nothing to clean */ }
    }
  }

  private writeCookie(): void {
    const path = this.cookiePath!;
    const password = toHex(crypto.getRandomValues(new Uint8Array(32)));
    // Written beside and renamed over, so a reader never sees a half-written cookie.
    Deno.writeTextFileSync(path + ".tmp", "__cookie__:" + password, { mode: 0o600 });
    Deno.renameSync(path + ".tmp", path);
    this.user = encoder.encode("__cookie__");
    this.password = encoder.encode(password);
  }

  private async acceptLoop(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.closing) {
          conn.close();
          continue;
        }
        const task: Promise<void> = this.serveConnection(conn).finally(() => this.connTasks.delete(task));
        this.connTasks.add(task);
      }
    } catch {
      // The listener was closed under the loop: that is how shutdown ends it.
    }
  }

  private closeConn(st: ConnState): void {
    if (st.closed) return;
    st.closed = true;
    try {
      st.conn.close();
    } catch { /* already closed */ }
  }

  private async serveConnection(conn: Deno.Conn): Promise<void> {
    const st: ConnState = { conn, busy: false, closed: false };
    this.conns.add(st);
    const reader = new ConnReader(conn);
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
      while (!this.closing) {
        const idle = setTimeout(() => this.closeConn(st), this.idleTimeoutMs);
        let req: HttpRequest | null;
        try {
          req = await readRequest(reader, conn, this.maxBody);
        } catch (e) {
          if (e instanceof HttpError && !st.closed) {
            st.busy = true;
            await writeReply(conn, { status: e.status }, null, false);
            st.busy = false;
            if (e.status === 413) await this.linger(st);
          }
          return;
        } finally {
          clearTimeout(idle);
        }
        if (req === null) return;
        st.busy = true;
        const reply = await this.dispatch(req);
        if (reply === DROP) return;
        const keepAlive = req.keepAlive && !this.closing;
        await writeReply(conn, reply, req, keepAlive);
        st.busy = false;
        if (!keepAlive) return;
      }
    } catch {
      // The peer went away mid-read or mid-write, or the connection was closed by a timeout or shutdown.
    } finally {
      this.closeConn(st);
      this.conns.delete(st);
    }
  }

  /** After a 413, reads and discards what the client is still sending, so it gets to read the reply. */
  private async linger(st: ConnState): Promise<void> {
    const cut = setTimeout(() => this.closeConn(st), LINGER_MS);
    try {
      await st.conn.closeWrite();
      const sink = new Uint8Array(64 * 1024);
      while (!st.closed && (await st.conn.read(sink)) !== null);
    } catch {
      /* closed by the timer or by the peer */
    } finally {
      clearTimeout(cut);
    }
  }

  /** A timer that shutdown cuts short, so close() never waits out a fault delay. */
  private sleep(ms: number): Promise<void> {
    if (this.closing || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private route(target: string): Route | null {
    if (target === "/" || target.startsWith("/wallet/")) return { kind: "rpc" };
    if (this.opts.rest) {
      for (const [prefix, kind] of REST_PREFIXES) {
        if (target.startsWith(prefix)) return { kind, part: target.slice(prefix.length) };
      }
    }
    return null;
  }

  private async dispatch(req: HttpRequest): Promise<HttpReply | typeof DROP> {
    // Core maps only these four verbs; anything else is refused before routing.
    if (req.method !== "GET" && req.method !== "POST" && req.method !== "HEAD" && req.method !== "PUT") {
      return { status: 405 };
    }
    const route = this.route(req.target);
    if (route === null) return { status: 404 };
    // The body is parsed up front (Core parses after auth; the answers are the same) because control RPCs must
    // be recognised to be exempt from faults.
    const parsed = route.kind === "rpc" && req.method === "POST" ? parseJson(req.body) : undefined;
    const control = parsed !== undefined && parsed.ok && isControlRequest(parsed.value);
    const f = this.faults;
    if (!control && f.dropNext > 0) {
      f.dropNext--;
      return DROP;
    }
    if (!control && f.busyNext > 0) {
      f.busyNext--;
      return { status: 503, body: "Work queue depth exceeded" };
    }
    const slot = this.queue.enter();
    if (slot === null) return { status: 503, body: "Work queue depth exceeded" };
    const release = await slot;
    try {
      let reply: HttpReply;
      try {
        reply = route.kind === "rpc" ? await this.handleRpcHttp(req, parsed) : this.handleRest(route, req);
      } catch (e) {
        reply = { status: 500, contentType: "text/plain", body: `Internal error: ${errorText(e)}\r\n` };
      }
      if (control) return reply;
      if (f.delayMs > 0) await this.sleep(f.delayMs);
      if (f.malformedNext > 0) {
        f.malformedNext--;
        return malformed(reply);
      }
      return reply;
    } finally {
      release();
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // JSON-RPC (httprpc.cpp HTTPReq_JSONRPC)

  private async handleRpcHttp(req: HttpRequest, parsed: ParsedJson | undefined): Promise<HttpReply> {
    if (req.method !== "POST") return { status: 405, body: "JSONRPC server handles only POST requests" };
    const auth = req.headers.get("authorization");
    if (auth === undefined) return { status: 401, wwwAuthenticate: true };
    if (!this.authorized(auth)) {
      await this.sleep(WRONG_AUTH_DELAY_MS);
      return { status: 401, wwwAuthenticate: true };
    }
    return this.handleJsonRpc(parsed!);
  }

  private authorized(header: string): boolean {
    if (!header.startsWith("Basic ")) return false;
    const raw = decodeBase64Strict(header.slice(6).trim());
    if (raw === null) return false;
    const colon = raw.indexOf(0x3a);
    if (colon < 0) return false;
    // Both halves are always compared so the reply time does not tell which one was wrong.
    const userOk = constantTimeEqual(raw.subarray(0, colon), this.user);
    const passOk = constantTimeEqual(raw.subarray(colon + 1), this.password);
    return userOk && passOk;
  }

  private async handleJsonRpc(parsed: ParsedJson): Promise<HttpReply> {
    // Core reuses one request object across a batch, so an item that fails before its own id/version are read
    // is answered with the previous item's; `call` mirrors that.
    const call: RpcCall = { id: null, hasId: true, v2: false, method: "", params: [] };
    try {
      if (!parsed.ok) throw new CoreRpcError(RPC.PARSE_ERROR, "Parse error");
      const value = parsed.value;
      if (isObject(value)) {
        parseCall(value, call);
        // Legacy requests let errors escape to become HTTP errors; 2.0 ones answer them inside a 200.
        const text = await this.execCall(call, call.v2);
        if (isNotification(call)) return { status: 204 };
        return { status: 200, contentType: JSON_TYPE, body: text + "\n" };
      }
      if (Array.isArray(value)) {
        const parts: string[] = [];
        for (const item of value) {
          let text: string;
          try {
            parseCall(item, call);
            text = await this.execCall(call, true);
          } catch (e) {
            text = replyText(call, null, asRpcError(e));
          }
          if (!isNotification(call)) parts.push(text);
        }
        // An empty batch still gets `[]`: old clients rely on it.
        if (parts.length === 0 && value.length > 0) return { status: 204 };
        return { status: 200, contentType: JSON_TYPE, body: "[" + parts.join(",") + "]\n" };
      }
      throw new CoreRpcError(RPC.PARSE_ERROR, "Top-level object parse error");
    } catch (e) {
      const err = asRpcError(e);
      const status = err.code === RPC.INVALID_REQUEST ? 400 : err.code === RPC.METHOD_NOT_FOUND ? 404 : 500;
      return { status, contentType: JSON_TYPE, body: replyText(call, null, err) + "\n" };
    }
  }

  private async execCall(call: RpcCall, catchErrors: boolean): Promise<string> {
    try {
      return replyText(call, await this.runMethod(call), null);
    } catch (e) {
      if (!catchErrors) throw e;
      return replyText(call, null, asRpcError(e));
    }
  }

  /** Runs the method and returns its result as JSON text; every failure comes out as a CoreRpcError. */
  private async runMethod(call: RpcCall): Promise<string> {
    const control = call.method.startsWith(CONTROL_PREFIX);
    const warm = control ? null : activeWarmup(this.faults);
    if (warm) throw new CoreRpcError(RPC.IN_WARMUP, warm.message);
    const methods = this.opts.methods;
    const method: RpcMethod | undefined = Object.hasOwn(methods, call.method)
      ? methods[call.method]
      : undefined;
    if (!method) throw new CoreRpcError(RPC.METHOD_NOT_FOUND, "Method not found");
    try {
      const args = Array.isArray(call.params)
        ? call.params
        : namedToPositional(call.params as Record<string, unknown>, method.params);
      checkArgCount(call.method, method.params, args.length);
      const result = await method.handler(args);
      // Serialising here turns an unserialisable result (BigInt, cycle) into this call's error, not a crash.
      return JSON.stringify(result) ?? "null";
    } catch (e) {
      if (e instanceof CoreRpcError) throw e;
      throw new CoreRpcError(RPC.MISC_ERROR, errorText(e));
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // REST (rest.cpp)

  private handleRest(route: Exclude<Route, { kind: "rpc" }>, req: HttpRequest): HttpReply {
    const warm = activeWarmup(this.faults);
    if (warm) return restError(503, "Service temporarily unavailable: " + warm.message);
    const rest = this.opts.rest!;
    switch (route.kind) {
      case "block":
        return restBlock(rest, route.part);
      case "headers":
        return restHeaders(rest, route.part, req.target);
      case "blockhashbyheight":
        return restBlockHashByHeight(rest, route.part);
      case "chaininfo":
        return restChainInfo(rest, route.part);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// JSON-RPC request parsing and replies (rpc/request.cpp, rpc/server.cpp)

interface RpcCall {
  id: unknown;
  /** Core distinguishes an absent id (a 2.0 notification) from `"id": null`. */
  hasId: boolean;
  v2: boolean;
  method: string;
  params: unknown;
}

type ParsedJson = { ok: true; value: unknown } | { ok: false };

/** Strict UTF-8, at most MAX_JSON_DEPTH levels, one JSON value: what UniValue::read accepts. */
function parseJson(body: Uint8Array): ParsedJson {
  let text: string;
  try {
    text = strictUtf8.decode(body);
  } catch {
    return { ok: false };
  }
  if (!depthWithin(text, MAX_JSON_DEPTH)) return { ok: false };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** False when brackets nest deeper than `max` (strings skipped); the parse itself then rejects bad syntax. */
function depthWithin(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > max) return false;
    } else if (c === 93 || c === 125) depth--;
  }
  return true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function ownValue(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function isControlRequest(v: unknown): boolean {
  const isControlCall = (c: unknown) => {
    if (!isObject(c)) return false;
    const m = ownValue(c, "method");
    return typeof m === "string" && m.startsWith(CONTROL_PREFIX);
  };
  return Array.isArray(v) ? v.length > 0 && v.every(isControlCall) : isControlCall(v);
}

/** JSONRPCRequest::parse: fills `call` field by field, so a throw leaves what was read so far. */
function parseCall(v: unknown, call: RpcCall): void {
  if (!isObject(v)) throw new CoreRpcError(RPC.INVALID_REQUEST, "Invalid Request object");
  // The id is read first so that every later error carries it.
  call.hasId = Object.hasOwn(v, "id");
  call.id = call.hasId ? v.id : undefined;
  call.v2 = false;
  const version = ownValue(v, "jsonrpc");
  if (version !== undefined && version !== null) {
    if (typeof version !== "string") {
      throw new CoreRpcError(RPC.INVALID_REQUEST, "jsonrpc field must be a string");
    }
    // Old documentation told clients to send "1.0", so it still means legacy.
    if (version === "2.0") call.v2 = true;
    else if (version !== "1.0") throw new CoreRpcError(RPC.INVALID_REQUEST, "JSON-RPC version not supported");
  }
  const method = ownValue(v, "method");
  if (method === undefined || method === null) throw new CoreRpcError(RPC.INVALID_REQUEST, "Missing method");
  if (typeof method !== "string") throw new CoreRpcError(RPC.INVALID_REQUEST, "Method must be a string");
  call.method = method;
  const params = ownValue(v, "params");
  if (params === undefined || params === null) call.params = [];
  else if (typeof params === "object") call.params = params;
  else throw new CoreRpcError(RPC.INVALID_REQUEST, "Params must be an array or object");
}

function isNotification(call: RpcCall): boolean {
  return call.v2 && !call.hasId;
}

/** JSONRPCReplyObj as text: legacy always has result and error; 2.0 has exactly one; id only if sent. */
function replyText(
  call: RpcCall,
  resultJson: string | null,
  error: { code: number; message: string } | null,
) {
  let s = call.v2 ? '{"jsonrpc":"2.0",' : "{";
  if (error === null) s += '"result":' + (resultJson ?? "null") + (call.v2 ? "" : ',"error":null');
  else s += (call.v2 ? "" : '"result":null,') + '"error":' + JSON.stringify(error);
  if (call.hasId) s += ',"id":' + JSON.stringify(call.id ?? null);
  return s + "}";
}

function asRpcError(e: unknown): { code: number; message: string } {
  // Anything that is not an RPC error is a bug in parsing; Core reports those as parse errors.
  if (e instanceof CoreRpcError) return { code: e.code, message: e.message };
  return { code: RPC.PARSE_ERROR, message: errorText(e) };
}

function paramSpec(pattern: string): { optional: boolean; names: string } {
  return pattern.startsWith("?")
    ? { optional: true, names: pattern.slice(1) }
    : { optional: false, names: pattern };
}

/** transformNamedArguments: named → positional, nulls in holes, "args" for leading positionals. */
function namedToPositional(named: Record<string, unknown>, patterns: string[]): unknown[] {
  const argsIn = new Map(Object.entries(named));
  let out: unknown[] = [];
  let hole = 0;
  let initialHole = 0;
  let initialParam: string | undefined;
  for (const pattern of patterns) {
    const { names } = paramSpec(pattern);
    const found = names.split("|").find((n) => argsIn.has(n));
    if (found !== undefined) {
      // Holes between given parameters become nulls; trailing ones stay absent, as Core does.
      for (; hole > 0; hole--) out.push(null);
      initialParam ??= names;
      out.push(argsIn.get(found));
      argsIn.delete(found);
    } else {
      hole++;
      if (out.length === 0) initialHole = hole;
    }
  }
  if (argsIn.has("args")) {
    const positional = argsIn.get("args");
    argsIn.delete("args");
    if (Array.isArray(positional)) {
      if (initialHole < positional.length && initialParam !== undefined) {
        throw new CoreRpcError(
          RPC.INVALID_PARAMETER,
          `Parameter ${initialParam} specified twice both as positional and named argument`,
        );
      }
      const fromNames = out;
      out = [...positional];
      for (let i = out.length; i < fromNames.length; i++) out.push(fromNames[i]);
    }
  }
  if (argsIn.size > 0) {
    throw new CoreRpcError(RPC.INVALID_PARAMETER, `Unknown named parameter ${argsIn.keys().next().value}`);
  }
  return out;
}

/** RPCHelpMan::IsValidNumArgs; a wrong count answers -1 with the usage line, as Core answers with its help. */
function checkArgCount(method: string, patterns: string[], given: number): void {
  let required = 0;
  patterns.forEach((p, i) => {
    if (!paramSpec(p).optional) required = i + 1;
  });
  if (given >= required && given <= patterns.length) return;
  let usage = method;
  let inOptional = false;
  for (const p of patterns) {
    const { optional, names } = paramSpec(p);
    const name = names.split("|")[0];
    if (optional && !inOptional) usage += " (";
    if (!optional && inOptional) usage += " )";
    inOptional = optional;
    usage += " " + name;
  }
  if (inOptional) usage += " )";
  throw new CoreRpcError(
    RPC.MISC_ERROR,
    `${usage}\n\nWrong number of arguments: got ${given}, expected ${
      required === patterns.length ? required : `${required} to ${patterns.length}`
    }.`,
  );
}

function jsonTypeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v === "object" ? "object" : typeof v;
}

function decodeBase64Strict(s: string): Uint8Array | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i % Math.max(1, b.length)];
  return diff === 0;
}

/** The malformed-reply fault: status 200 and the first half of the body, which no JSON parser accepts. */
function malformed(reply: HttpReply): HttpReply {
  const full = reply.body === undefined
    ? new Uint8Array(0)
    : typeof reply.body === "string"
    ? encoder.encode(reply.body)
    : reply.body;
  const body = full.length >= 2
    ? full.subarray(0, Math.floor(full.length / 2))
    : encoder.encode('{"result":');
  return { status: 200, contentType: reply.contentType ?? JSON_TYPE, body };
}

// ---------------------------------------------------------------------------------------------------------------
// REST handlers

type RestFormat = "bin" | "hex" | "json" | "";

function restError(status: number, message: string): HttpReply {
  return { status, contentType: "text/plain", body: message + "\r\n" };
}

/** ParseDataFormat: drops the query, then splits off a known extension (an unknown one stays in the param). */
function parseDataFormat(part: string): { param: string; format: RestFormat } {
  const q = part.lastIndexOf("?");
  const param = q >= 0 ? part.slice(0, q) : part;
  const dot = param.lastIndexOf(".");
  if (dot < 0) return { param, format: "" };
  const suffix = param.slice(dot + 1);
  if (suffix === "bin" || suffix === "hex" || suffix === "json" || suffix === "") {
    return { param: param.slice(0, dot), format: suffix };
  }
  return { param, format: "" };
}

function parseHash(s: string): Uint8Array | null {
  return s.length === 64 && isHex(s) ? fromHexReversed(s) : null;
}

const AVAILABLE_FORMATS = "output format not found (available: .bin, .hex, .json)";

function restBlock(rest: RestProvider, part: string): HttpReply {
  const { param, format } = parseDataFormat(part);
  const hash = parseHash(param);
  if (!hash) return restError(400, "Invalid hash: " + param);
  const raw = rest.blockRaw(hash);
  if (!raw) return restError(404, param + " not found");
  switch (format) {
    case "bin":
      return { status: 200, contentType: "application/octet-stream", body: raw };
    case "hex":
      // The engine's own encoder: whole blocks are megabytes, and src/chain/hex.ts works a byte at a time.
      return { status: 200, contentType: "text/plain", body: raw.toHex() + "\n" };
    case "json":
      // Core would decode the block; simnet's provider has no decoded form to offer.
      return restError(404, "output format not found (available: .bin, .hex)");
    default:
      return restError(404, AVAILABLE_FORMATS);
  }
}

function restHeaders(rest: RestProvider, part: string, target: string): HttpReply {
  const { param, format } = parseDataFormat(part);
  const path = param.split("/");
  let rawCount: string;
  let hashStr: string;
  if (path.length === 2) {
    // The older form, /rest/headers/<count>/<hash>, still served by Core.
    [rawCount, hashStr] = path;
  } else if (path.length === 1) {
    hashStr = path[0];
    const q = target.indexOf("?");
    rawCount = (q >= 0 ? new URLSearchParams(target.slice(q + 1)).get("count") : null) ?? "5";
  } else {
    return restError(400, "Invalid URI format. Expected /rest/headers/<hash>.<ext>?count=<count>");
  }
  const count = /^\d+$/.test(rawCount) ? Number(rawCount) : NaN;
  if (!(count >= 1 && count <= MAX_REST_HEADERS_RESULTS)) {
    return restError(
      400,
      `Header count is invalid or out of acceptable range (1-${MAX_REST_HEADERS_RESULTS}): ${rawCount}`,
    );
  }
  const hash = parseHash(hashStr);
  if (!hash) return restError(400, "Invalid hash: " + hashStr);
  // An unknown or stale start hash is an empty list, not an error.
  const headers = rest.headers(hash, count) ?? [];
  const total = headers.reduce((n, h) => n + h.length, 0);
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const h of headers) {
    bytes.set(h, off);
    off += h.length;
  }
  switch (format) {
    case "bin":
      return { status: 200, contentType: "application/octet-stream", body: bytes };
    case "hex":
      return { status: 200, contentType: "text/plain", body: bytes.toHex() + "\n" };
    case "json":
      return restError(404, "output format not found (available: .bin, .hex)");
    default:
      return restError(404, AVAILABLE_FORMATS);
  }
}

/** Core's SAFE_CHARS_DEFAULT: what SanitizeString keeps when echoing a bad height. */
const SAFE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890 .,;-_/:?@()";

function restBlockHashByHeight(rest: RestProvider, part: string): HttpReply {
  const { param, format } = parseDataFormat(part);
  // ParseInt32: optional "+" or "-", decimal digits only, within int32; negative heights are then refused.
  const height = /^(\+?\d+|-\d+)$/.test(param) ? Number(param) : NaN;
  if (!Number.isInteger(height) || height < 0 || height > 0x7fffffff) {
    return restError(400, "Invalid height: " + [...param].filter((c) => SAFE_CHARS.includes(c)).join(""));
  }
  const hash = rest.blockHashByHeight(height);
  if (!hash) return restError(404, "Block height out of range");
  switch (format) {
    case "bin":
      return { status: 200, contentType: "application/octet-stream", body: hash };
    case "hex":
      return { status: 200, contentType: "text/plain", body: toHexReversed(hash) + "\n" };
    case "json":
      return {
        status: 200,
        contentType: JSON_TYPE,
        body: JSON.stringify({ blockhash: toHexReversed(hash) }) + "\n",
      };
    default:
      return restError(404, AVAILABLE_FORMATS);
  }
}

function restChainInfo(rest: RestProvider, part: string): HttpReply {
  if (parseDataFormat(part).format !== "json") {
    return restError(404, "output format not found (available: json)");
  }
  return { status: 200, contentType: JSON_TYPE, body: JSON.stringify(rest.chainInfo()) + "\n" };
}
