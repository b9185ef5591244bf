// The METRICS listener: Prometheus text at /metrics, the status page at / and its data at /status.json. It
// also drives the sampling behind them (progress history, database size) while it runs. Read-only: nothing
// here can change the server, but it does reveal load and sizes, so METRICS should stay on loopback or behind
// a firewall.
import type { Log } from "../log.ts";
import { hostPort } from "../host_port.ts";
import type { CoulombMetrics } from "./coulomb.ts";
import { statusPage } from "./page.ts";
import { errorDetail, errorText } from "../error_text.ts";
import { closeQuietly, serveConnections } from "../accept_loop.ts";

/** What startMetricsServer needs. */
export interface MetricsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly metrics: CoulombMetrics;
  readonly log: Log;
  /** Sampling period of the progress history and database size (ms). */
  readonly sampleMs?: number;
  /** A connection must have sent its request and read the reply within this long (ms). */
  readonly deadlineMs?: number;
  /** Connections served at once; more are closed as they arrive. */
  readonly maxConnections?: number;
}

/** A running metrics listener. */
export interface MetricsServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number };
  /** Stops sampling and listening. */
  close(): Promise<void>;
}

const PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

// A scraper or a browser needs well under a second; a client that takes longer is either broken or holding
// descriptors on purpose, and descriptors are what the Electrum listeners need to accept wallets.
const DEADLINE_MS = 10_000;
const MAX_CONNECTIONS = 16;
// Longest request head read (request line and headers); browsers send about 1 KB.
const MAX_HEAD = 16 * 1024;

/** Serves the metrics endpoints on host:port; throws if the address cannot be bound. */
export function startMetricsServer(opts: MetricsServerOptions): MetricsServer {
  const { metrics, log } = opts;
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.host, port: opts.port });
  } catch (e) {
    const where = hostPort(opts.host, opts.port);
    throw new Error(
      `cannot listen for METRICS on http://${where}: ${errorText(e)}`,
    );
  }
  const bound = listener.addr;
  const address = { host: bound.hostname, port: bound.port };
  const shown = hostPort(address.host, address.port);
  log.info(`serving metrics at http://${shown}/metrics and the status page at http://${shown}/`);

  const deadlineMs = opts.deadlineMs ?? DEADLINE_MS;
  const connections = serveConnections(listener, {
    maxConnections: opts.maxConnections ?? MAX_CONNECTIONS,
    serve: (conn) => {
      const timer = setTimeout(() => closeQuietly(conn), deadlineMs);
      return serveOne(conn, metrics, log).finally(() => clearTimeout(timer));
    },
    // E.g. out of file descriptors for a moment: the endpoint stays, the accept is tried again shortly.
    onAcceptError: (e) => log.warn(`accepting a metrics connection failed: ${errorText(e)}`),
  });

  let sizing: Promise<void> | undefined;
  const sample = () => {
    metrics.sampleProgress();
    // A database of hundreds of GB takes a moment to walk; never run two walks at once.
    sizing ??= metrics.sampleDbSize().catch((e) => log.debug(`measuring the database failed: ${String(e)}`))
      .finally(() => sizing = undefined);
  };
  sample();
  const timer = setInterval(sample, opts.sampleMs ?? metrics.history.intervalMs);

  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await connections.close();
        await sizing;
      })();
      return closing;
    },
  };
}

/**
 * One request and its reply over HTTP/1.1, then the connection closes: scrapers and the status page send one
 * request at a time and reconnect cheaply, and a server that never waits for a second request cannot be held
 * open by one that never comes.
 */
async function serveOne(conn: Deno.Conn, metrics: CoulombMetrics, log: Log): Promise<void> {
  let reply: Response;
  let head = false;
  let request: RequestHead | number | undefined;
  try {
    request = await readHead(conn);
  } catch {
    return; // closed by the deadline, or reset by the peer, before a whole head arrived
  }
  if (request === undefined) return; // the peer left first
  if (typeof request === "number") {
    reply = new Response(request === 431 ? "request head too large\n" : "bad request\n", { status: request });
  } else {
    head = request.method === "HEAD";
    try {
      reply = route(request.method, request.path, metrics);
    } catch (e) {
      reply = internalError(log, e);
    }
  }
  try {
    await writeAll(conn, await encodeResponse(reply, head));
    // Closing with unread input (a body we ignore) would reset the connection and could destroy the reply
    // before the client reads it: end our side and let the client close first (the deadline still applies).
    await conn.closeWrite();
    const sink = new Uint8Array(4096);
    while (await conn.read(sink) !== null) { /* discard */ }
  } catch {
    // The peer left or the deadline closed it; a half-sent reply is all it gets.
  }
}

interface RequestHead {
  readonly method: string;
  readonly path: string;
}

/** Reads a request head; a status number when it is malformed or too large, undefined when the peer left. */
async function readHead(conn: Deno.Conn): Promise<RequestHead | number | undefined> {
  const buf = new Uint8Array(MAX_HEAD);
  let filled = 0;
  for (;;) {
    if (filled === buf.length) return 431;
    const n = await conn.read(buf.subarray(filled));
    if (n === null) return undefined;
    const from = Math.max(0, filled - 3);
    filled += n;
    const end = indexOfBlankLine(buf, from, filled);
    if (end >= 0) return parseHead(new TextDecoder("latin1").decode(buf.subarray(0, end)));
  }
}

/** Where the head ends: an empty line, after CRLF or (as RFC 9112 lets servers accept) a bare LF. */
function indexOfBlankLine(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    if (buf[i] !== 10) continue;
    if (i + 1 < to && buf[i + 1] === 10) return i;
    if (i + 2 < to && buf[i + 1] === 13 && buf[i + 2] === 10) return i;
  }
  return -1;
}

function parseHead(text: string): RequestHead | number {
  // RFC 9112 §2.2: an empty line before the request line (left over from a previous request) is skipped.
  const line = text.split("\n").map((l) => l.replace(/\r$/, "")).find((l) => l !== "") ?? "";
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m) return 400;
  const target = m[2];
  if (target.startsWith("/")) return { method: m[1], path: target.replace(/[?#].*$/, "") };
  try {
    return { method: m[1], path: new URL(target).pathname }; // absolute form, as proxies send
  } catch {
    return 400;
  }
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

async function encodeResponse(res: Response, head: boolean): Promise<Uint8Array> {
  const body = new Uint8Array(await res.arrayBuffer());
  let text = `HTTP/1.1 ${res.status} ${REASONS[res.status] ?? "Status"}\r\n`;
  for (const [name, value] of res.headers) text += `${name}: ${value}\r\n`;
  text += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const top = new TextEncoder().encode(text);
  if (head) return top;
  const out = new Uint8Array(top.length + body.length);
  out.set(top);
  out.set(body, top.length);
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

function route(method: string, path: string, metrics: CoulombMetrics): Response {
  if (method !== "GET" && method !== "HEAD") {
    return new Response("only GET and HEAD\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  switch (path) {
    case "/metrics":
      return new Response(metrics.registry.render(), {
        headers: { "content-type": PROMETHEUS_TYPE, "cache-control": "no-store" },
      });
    case "/status.json": {
      const status = metrics.status();
      if (!status) return new Response("starting\n", { status: 503, headers: { "retry-after": "1" } });
      return new Response(JSON.stringify(status), {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    case "/":
    case "/index.html": {
      const nonce = crypto.randomUUID().replaceAll("-", "");
      return new Response(statusPage(metrics.status(), nonce), {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy":
            `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; ` +
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
        },
      });
    }
    default:
      return new Response("not found: try /, /metrics or /status.json\n", { status: 404 });
  }
}

function internalError(log: Log, e: unknown): Response {
  log.error(`metrics endpoint failed: ${errorDetail(e)}`);
  return new Response("internal error\n", { status: 500 });
}
