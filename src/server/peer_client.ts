// The client side of a peer check: one short-lived connection to another Electrum server, speaking
// newline-delimited JSON-RPC. The other side is untrusted, so every read is bounded (line length, time) and a
// misbehaving peer only ever costs us one rejected promise and a closed socket.
import dns from "node:dns";
import net from "node:net";
import tls from "node:tls";
import { ipKind } from "../config.ts";

/** A peer connection's failure; `code` says which step went wrong. */
export class PeerError extends Error {
  override name = "PeerError";
  constructor(readonly code: PeerErrorCode, message: string) {
    super(message);
  }
}

/** What went wrong with a peer: unreachable, slow, protocol abuse, an error reply, or a failed check. */
export type PeerErrorCode = "connect" | "timeout" | "protocol" | "reply" | "closed" | "bad-peer";

/** An open connection to a peer server. */
export interface PeerLink {
  /** The IP address actually connected to. */
  readonly remoteIp: string;
  /** Sends one request and waits for its reply (result, or PeerError "reply" for an error reply). */
  call(method: string, params: unknown[]): Promise<unknown>;
  /** Hangs up; pending calls reject. */
  close(): void;
}

/** How to reach one peer port. */
export interface PeerTarget {
  host: string;
  port: number;
  tls: boolean;
}

/** Opens a PeerLink, giving up when `signal` aborts; the peer manager is given one (tests inject their own). */
export type PeerConnector = (target: PeerTarget, signal?: AbortSignal) => Promise<PeerLink>;

/** Bounds of a connection. */
export interface PeerLinkLimits {
  /** Longest reply line accepted, in bytes. */
  maxLineBytes: number;
  /** Milliseconds to wait for the connection (TCP and TLS handshake). */
  connectTimeoutMs: number;
  /** Milliseconds to wait for each reply. */
  callTimeoutMs: number;
}

/** Bounds a check uses unless told otherwise: peer lists are a few kB, 1 MB is generous and still cheap. */
export const DEFAULT_LINK_LIMITS: PeerLinkLimits = {
  maxLineBytes: 1 << 20,
  connectTimeoutMs: 15_000,
  callTimeoutMs: 20_000,
};

/** Resolves a host name to all its addresses (node:dns lookup's answer); tests inject their own. */
export type HostLookup = (host: string) => Promise<dns.LookupAddress[]>;

const systemLookup: HostLookup = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

/**
 * A connector over real sockets: TCP, or TLS that accepts any certificate (peers' are mostly self-signed). With
 * `publicOnly`, a host name is resolved first (within the connect timeout) and refused if any of its addresses
 * is loopback, private or reserved; the connection then tries exactly the addresses checked, in turn. A name
 * that passed as public could otherwise lead the server to its own network (or be made to, by a DNS answer
 * that changes between check and connect).
 */
export function socketConnector(
  limits: PeerLinkLimits = DEFAULT_LINK_LIMITS,
  publicOnly = false,
  lookup: HostLookup = systemLookup,
): PeerConnector {
  return async (target, signal) => {
    const where = `${target.tls ? "ssl" : "tcp"}://${target.host}:${target.port}`;
    if (!publicOnly) return await openLink(target, undefined, limits, signal);
    if (net.isIP(target.host) !== 0) {
      const kind = ipKind(target.host);
      if (kind !== "public") throw new PeerError("connect", `${where}: a ${kind} address, not a public one`);
      return await openLink(target, undefined, limits, signal);
    }
    let addresses: dns.LookupAddress[];
    try {
      addresses = await within(lookup(target.host), where, limits.connectTimeoutMs, signal);
    } catch (err) {
      if (err instanceof PeerError) throw err;
      // The sandbox grants host:port, which does not allow a lookup alone; it allows only the hosts an
      // operator named, so those are dialled by name.
      if ((err as { code?: string }).code === "EPERM") {
        return await openLink(target, undefined, limits, signal);
      }
      throw new PeerError("connect", `${where}: cannot resolve: ${(err as Error).message}`);
    }
    const bad = addresses.find((a) => ipKind(a.address) !== "public");
    if (bad || addresses.length === 0) {
      throw new PeerError(
        "connect",
        `${where}: resolves to ${bad?.address ?? "nothing"}, not a public address`,
      );
    }
    return await openLink(target, addresses, limits, signal);
  };
}

// `p`, or a PeerError once `ms` pass or `signal` aborts (a slow DNS server must not hold a check or a stop).
function within<T>(p: Promise<T>, where: string, ms: number, signal?: AbortSignal): Promise<T> {
  if (signal?.aborted) return Promise.reject(new PeerError("closed", `${where}: stopped`));
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const timer = setTimeout(() => {
      done();
      reject(new PeerError("timeout", `${where}: no address within ${ms} ms`));
    }, ms);
    const onAbort = () => {
      done();
      reject(new PeerError("closed", `${where}: stopped`));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    p.then((v) => (done(), resolve(v)), (e) => (done(), reject(e)));
  });
}

// Connects to target.host; with `checked`, to those addresses only (in turn, as for any name).
function openLink(
  target: PeerTarget,
  checked: dns.LookupAddress[] | undefined,
  limits: PeerLinkLimits,
  signal?: AbortSignal,
): Promise<PeerLink> {
  const lookup = checked && fixedLookup(checked);
  const { promise, resolve, reject } = Promise.withResolvers<PeerLink>();
  const where = `${target.tls ? "ssl" : "tcp"}://${target.host}:${target.port}`;
  if (signal?.aborted) return Promise.reject(new PeerError("closed", `${where}: stopped`));
  let sock: net.Socket;
  try {
    // Electrum servers' certificates are self-signed as a rule; ElectrumX does not verify them either. The
    // checks that matter (genesis, headers, its own host list) run over the connection.
    sock = target.tls
      ? tls.connect({
        host: target.host,
        port: target.port,
        rejectUnauthorized: false,
        servername: sni(target),
        ...(lookup ? { lookup } : {}),
      })
      : net.connect({ host: target.host, port: target.port, ...(lookup ? { lookup } : {}) });
  } catch (err) {
    return Promise.reject(new PeerError("connect", `${where}: ${(err as Error).message}`));
  }
  const timer = setTimeout(() => {
    // The signal lives as long as the peer manager: a listener left on it would keep this socket for as long.
    signal?.removeEventListener("abort", onAbort);
    sock.destroy();
    reject(new PeerError("timeout", `${where}: no connection within ${limits.connectTimeoutMs} ms`));
  }, limits.connectTimeoutMs);
  const onAbort = () => {
    clearTimeout(timer);
    sock.destroy();
    reject(new PeerError("closed", `${where}: stopped`));
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  const onError = (err: Error) => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    sock.destroy();
    reject(new PeerError("connect", `${where}: ${err.message}`));
  };
  sock.once("error", onError);
  sock.once(target.tls ? "secureConnect" : "connect", () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    sock.off("error", onError);
    resolve(new LineLink(sock, where, limits));
  });
  return promise;
}

// SNI must be a name, never an IP literal.
// A node:net lookup function that answers with addresses already resolved and checked.
function fixedLookup(addresses: dns.LookupAddress[]): net.LookupFunction {
  return (_host, options, callback) => {
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0].address, addresses[0].family);
  };
}

function sni(target: PeerTarget): string | undefined {
  return /^[\d.]+$/.test(target.host) || target.host.includes(":") ? undefined : target.host;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Newline-delimited JSON-RPC over one socket, with bounded lines and per-call timeouts. */
class LineLink implements PeerLink {
  readonly remoteIp: string;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failure: PeerError | undefined;

  constructor(
    private readonly sock: net.Socket,
    private readonly where: string,
    private readonly limits: PeerLinkLimits,
  ) {
    this.remoteIp = normalizeIp(sock.remoteAddress ?? "");
    sock.on("data", (d: Uint8Array) => this.onData(d));
    sock.on("error", (e: Error) => this.fail(new PeerError("closed", `${where}: ${e.message}`)));
    sock.on("close", () => this.fail(new PeerError("closed", `${where}: connection closed`)));
  }

  call(method: string, params: unknown[]): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const timer = setTimeout(() => {
      this.pending.delete(id);
      reject(
        new PeerError(
          "timeout",
          `${this.where}: no answer to ${method} within ${this.limits.callTimeoutMs} ms`,
        ),
      );
      // A peer that stops answering is not worth keeping the socket open for.
      this.close();
    }, this.limits.callTimeoutMs);
    this.pending.set(id, { resolve, reject, timer });
    this.sock.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
    return promise;
  }

  close(): void {
    this.fail(new PeerError("closed", `${this.where}: closed`));
  }

  private onData(d: Uint8Array): void {
    let start = 0;
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, start)) {
      this.chunks.push(d.subarray(start, i));
      const line = concat(this.chunks, this.buffered + i - start);
      this.chunks = [];
      this.buffered = 0;
      start = i + 1;
      if (line.length > this.limits.maxLineBytes) return this.tooLong();
      this.onLine(line);
      if (this.failure) return;
    }
    if (start < d.length) {
      this.chunks.push(d.slice(start));
      this.buffered += d.length - start;
      if (this.buffered > this.limits.maxLineBytes) this.tooLong();
    }
  }

  private tooLong(): void {
    this.fail(
      new PeerError("protocol", `${this.where}: a reply line exceeds ${this.limits.maxLineBytes} bytes`),
    );
  }

  private onLine(line: Uint8Array): void {
    let msg: unknown;
    try {
      msg = JSON.parse(new TextDecoder().decode(line));
    } catch {
      return this.fail(new PeerError("protocol", `${this.where}: a reply is not JSON`));
    }
    // Notifications (no id) and batches are not ours to answer; a peer may legitimately send notifications.
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return;
    const m = msg as { id?: unknown; result?: unknown; error?: unknown };
    if (typeof m.id !== "number") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error !== undefined && m.error !== null) {
      const e = m.error as { message?: unknown };
      const text = typeof e?.message === "string" ? e.message.slice(0, 200) : "an error";
      p.reject(new PeerError("reply", `${this.where}: answered ${text}`));
    } else {
      p.resolve(m.result);
    }
  }

  private fail(err: PeerError): void {
    if (this.failure) return;
    this.failure = err;
    this.chunks = [];
    this.sock.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An IP address as peers list it: IPv4-mapped IPv6 back to IPv4, no brackets, lower case. */
export function normalizeIp(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, "").toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  return mapped ? mapped[1] : bare;
}
