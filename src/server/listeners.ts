// The Electrum listeners: one per SERVICES entry (tcp, ssl, ws, wss; rpc:// is the admin interface, not here).
// Each accepted connection becomes a Session fed by a read loop that frames bytes into messages (newlines or
// WebSocket frames) and pauses while the session has no room, so a client cannot make us buffer more than
// MAX_RECV plus a read chunk of its input. One timer drives idle and request timeouts for all sessions.
import type { Config, ServiceProtocol } from "../config.ts";
import type { Log } from "../log.ts";
import { CostGroups, costSettings } from "./limits.ts";
import { LineFramer, type LineSink, prepareMethods } from "./rpc.ts";
import { Session, type SessionInfo, type SessionLimits, type Transport } from "./session.ts";
import type { MethodTable } from "./types.ts";
import { CLOSE_NORMAL, closeFrame, encodeTextFrames, WsFramer, type WsSink } from "./websocket.ts";

export type { SessionInfo } from "./session.ts";

/** What startServer needs. */
export interface ServerOptions {
  readonly config: Config;
  /** Every method except server.version and server.ping, which the session answers itself. */
  readonly methods: MethodTable;
  readonly log: Log;
  /** "Coulomb 0.1.0": server.version's first result element. */
  readonly serverVersion: string;
  /** PEM certificate chain and key for ssl/wss; read from SSL_CERTFILE/SSL_KEYFILE when omitted. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** A bound listener; `port` is the real one when the configuration said 0. */
export interface ServerAddress {
  readonly protocol: ServiceProtocol;
  readonly host: string;
  readonly port: number;
}

/** A running Electrum server. */
export interface Server {
  /** Snapshots of the open sessions. */
  sessions(): SessionInfo[];
  /** Closes the open session with this id at once (the admin interface's disconnect); false if there is none. */
  closeSession(id: number, reason: string): boolean;
  readonly addresses: readonly ServerAddress[];
  /** Replaces the TLS certificate for new ssl/wss connections; open sessions keep theirs. Rejects if unusable. */
  reloadTls(cert: string, key: string): Promise<void>;
  /** Stops accepting, lets received requests be answered, then closes every session. */
  close(): Promise<void>;
}

/** Messages a session may have unanswered before its reads pause. */
export const MAX_PENDING_MESSAGES = 256;
/** How often idle sessions and overdue requests are looked for (ms). */
export const TICK_MS = 500;
/** Extra time a graceful close grants beyond REQUEST_TIMEOUT before cutting sessions off (ms). */
export const CLOSE_GRACE_MS = 2000;
const REFUSAL_LOG_INTERVAL_MS = 10_000;
const FIRST_READ_BUFFER = 4096;
const MAX_READ_BUFFER = 65536;

/** Binds every tcp/ssl/ws/wss service of the configuration and serves Electrum sessions on them. */
export function startServer(opts: ServerOptions): Promise<Server> {
  try {
    return Promise.resolve(new ElectrumServer(opts));
  } catch (e) {
    return Promise.reject(e);
  }
}

interface Listening {
  readonly protocol: ServiceProtocol;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly ws: boolean;
  listener: Deno.Listener;
  closed: boolean;
  /** The accept loop; settles after the listener is closed. */
  loop: Promise<void>;
}

const ENCODER = new TextEncoder();

class ElectrumServer implements Server {
  readonly addresses: readonly ServerAddress[];
  readonly #opts: ServerOptions;
  readonly #log: Log;
  readonly #methods;
  readonly #cost;
  readonly #limits: SessionLimits;
  readonly #groups = new CostGroups();
  readonly #sessions = new Set<Session>();
  readonly #listening: Listening[] = [];
  #tls: { cert: string; key: string } | undefined;
  #nextId = 1;
  #tick: ReturnType<typeof setInterval>;
  #lastSweep = Date.now();
  #closing: Promise<void> | undefined;
  #refused = 0;
  #lastRefusalLog = 0;

  constructor(opts: ServerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    const config = opts.config;
    this.#methods = prepareMethods(opts.methods);
    this.#cost = costSettings(config);
    this.#limits = {
      maxSend: config.maxSend,
      requestTimeoutMs: config.requestTimeoutS * 1000,
      sessionTimeoutMs: config.sessionTimeoutS * 1000,
      maxPendingMessages: MAX_PENDING_MESSAGES,
      maxQueuedBytes: 2 * config.maxSend,
    };
    const services = config.services.filter((s) => s.protocol !== "rpc");
    if (services.some((s) => s.protocol === "ssl" || s.protocol === "wss")) {
      this.#tls = opts.tls ? { ...opts.tls } : readTlsFiles(config);
    }
    try {
      for (const s of services) {
        const tls = s.protocol === "ssl" || s.protocol === "wss";
        const listener = listen(s.protocol, s.host, s.port, tls ? this.#tls : undefined);
        const addr = listener.addr as Deno.NetAddr;
        const entry: Listening = {
          protocol: s.protocol,
          host: s.host,
          port: addr.port,
          tls,
          ws: s.protocol === "ws" || s.protocol === "wss",
          listener,
          closed: false,
          loop: Promise.resolve(),
        };
        this.#listening.push(entry);
      }
    } catch (e) {
      for (const l of this.#listening) l.listener.close();
      throw e;
    }
    this.addresses = this.#listening.map((l) => ({
      protocol: l.protocol,
      host: (l.listener.addr as Deno.NetAddr).hostname,
      port: l.port,
    }));
    for (const l of this.#listening) {
      this.#log.info(`listening for Electrum ${l.protocol} connections on ${formatHostPort(l.host, l.port)}`);
      l.loop = this.#acceptLoop(l);
    }
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
  }

  sessions(): SessionInfo[] {
    const now = Date.now();
    return [...this.#sessions].map((s) => s.info(now));
  }

  closeSession(id: number, reason: string): boolean {
    for (const s of this.#sessions) {
      if (s.id !== id) continue;
      s.close(reason);
      return true;
    }
    return false;
  }

  async reloadTls(cert: string, key: string): Promise<void> {
    // Prove the pair works before touching the live listeners: a refused pair must not cost us the port.
    const probe = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
    probe.close();
    for (const l of this.#listening) {
      if (!l.tls || l.closed) continue;
      l.closed = true;
      l.listener.close();
      // The port is only released once the pending accept has been cancelled.
      await l.loop;
      let fresh: Deno.Listener;
      try {
        fresh = listen(l.protocol, l.host, l.port, { cert, key });
      } catch (e) {
        // The port was ours a moment ago; go back to the old certificate rather than stop serving.
        this.#replaceListener(l, listen(l.protocol, l.host, l.port, this.#tls));
        throw new Error(
          `could not reopen ${l.protocol} port ${l.port} with the new certificate: ${errorText(e)}`,
        );
      }
      this.#replaceListener(l, fresh);
    }
    this.#tls = { cert, key };
    this.#log.info("TLS certificate reloaded");
  }

  #replaceListener(l: Listening, listener: Deno.Listener): void {
    l.listener = listener;
    l.closed = false;
    l.loop = this.#acceptLoop(l);
  }

  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    for (const l of this.#listening) {
      if (l.closed) continue;
      l.closed = true;
      l.listener.close();
    }
    await Promise.all(this.#listening.map((l) => l.loop));
    const sessions = [...this.#sessions];
    if (sessions.length) this.#log.info(`closing ${sessions.length} sessions`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cutoff = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#limits.requestTimeoutMs + CLOSE_GRACE_MS);
    });
    await Promise.race([Promise.all(sessions.map((s) => s.drain())), cutoff]);
    clearTimeout(timer);
    for (const s of this.#sessions) s.close("server shutting down");
    clearInterval(this.#tick);
  }

  #onTick(): void {
    const now = Date.now();
    let idle = 0;
    for (const s of this.#sessions) if (s.tick(now)) idle++;
    // One line for all of them: a busy server may drop hundreds of idle wallets at once.
    if (idle) {
      this.#log.info(
        `closed ${idle} idle session(s) (SESSION_TIMEOUT ${this.#opts.config.sessionTimeoutS} s)`,
      );
    }
    if (now - this.#lastSweep > 60_000) {
      this.#groups.sweep(now);
      this.#lastSweep = now;
    }
  }

  async #acceptLoop(l: Listening): Promise<void> {
    const listener = l.listener;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (l.closed || listener !== l.listener) return;
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        // E.g. out of file descriptors: back off instead of spinning on a failing accept.
        this.#log.warn(`accepting ${l.protocol} connections failed: ${errorText(e)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      this.#accept(conn, l);
    }
  }

  #accept(conn: Deno.Conn, l: Listening): void {
    if (this.#closing) {
      conn.close();
      return;
    }
    if (this.#sessions.size >= this.#opts.config.maxSessions) {
      conn.close();
      this.#refused++;
      const now = Date.now();
      if (now - this.#lastRefusalLog >= REFUSAL_LOG_INTERVAL_MS) {
        this.#log.warn(
          `refused ${this.#refused} connection(s): MAX_SESSIONS (${this.#opts.config.maxSessions}) sessions are open`,
        );
        this.#refused = 0;
        this.#lastRefusalLog = now;
      }
      return;
    }
    if (!l.tls) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // Not fatal: only latency.
      }
    }
    const transport = new ConnTransport(conn, l.ws);
    const session = new Session({
      id: this.#nextId++,
      protocol: l.protocol,
      transport,
      methods: this.#methods,
      limits: this.#limits,
      cost: this.#cost,
      groups: this.#groups,
      serverVersion: this.#opts.serverVersion,
      log: this.#log,
      onClosed: (s) => this.#sessions.delete(s),
    });
    this.#sessions.add(session);
    this.#log.debug(`session ${session.id} ${session.remoteAddress}: ${l.protocol} connection`);
    this.#readLoop(conn, l.ws, session, transport);
  }

  async #readLoop(conn: Deno.Conn, ws: boolean, session: Session, transport: ConnTransport): Promise<void> {
    const maxRecv = this.#opts.config.maxRecv;
    let push: (chunk: Uint8Array) => void;
    if (ws) {
      const framer = new WsFramer(maxRecv);
      const sink = wsSink(session, transport, this.#log);
      push = (chunk) => framer.push(chunk, sink);
    } else {
      const framer = new LineFramer(maxRecv);
      const sink: LineSink = {
        line: (bytes) => session.receive(bytes),
        oversize: (bytes) => session.receiveOversize(bytes),
      };
      push = (chunk) => framer.push(chunk, sink);
    }
    let buf = new Uint8Array(FIRST_READ_BUFFER);
    try {
      while (!session.closed) {
        const room = session.room();
        if (room) {
          await room;
          continue;
        }
        const n = await conn.read(buf);
        if (n === null) {
          // The peer may only have shut down its sending side: answer what it asked, then close.
          await session.drain();
          break;
        }
        push(buf.subarray(0, n));
        if (n === buf.length && buf.length < MAX_READ_BUFFER) buf = new Uint8Array(buf.length * 4);
      }
    } catch (e) {
      if (!session.closed) this.#log.debug(`session ${session.id}: read failed: ${errorText(e)}`);
    }
    session.close("connection closed");
  }
}

function wsSink(session: Session, transport: ConnTransport, log: Log): WsSink {
  return {
    open: (response) => {
      transport.writeRaw(response).catch(() => session.close("handshake write failed"));
      transport.opened = true;
    },
    reject: (response, reason) => {
      log.debug(`session ${session.id} ${session.remoteAddress}: WebSocket upgrade refused: ${reason}`);
      transport.writeRaw(response).finally(() => session.close(reason)).catch(() => {});
    },
    message: (bytes) => session.receive(bytes),
    oversize: (bytes) => session.receiveOversize(bytes),
    control: (frame) => {
      transport.writeRaw(frame).catch(() => session.close("write failed"));
    },
    close: (frame, reason) => {
      transport.closeSent = true;
      transport.writeRaw(frame).finally(() => session.close(reason)).catch(() => {});
    },
  };
}

/** A Deno connection with newline or WebSocket framing; writes are serialized so frames never interleave. */
class ConnTransport implements Transport {
  readonly remoteAddress: string;
  readonly remoteIp: string;
  /** WebSocket only: the upgrade succeeded, so a close frame is due on close. */
  opened = false;
  closeSent = false;
  #chain: Promise<unknown> = Promise.resolve();
  #pendingWrites = 0;
  #closed = false;

  constructor(readonly conn: Deno.Conn, readonly ws: boolean) {
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteIp = addr.hostname;
    this.remoteAddress = formatHostPort(addr.hostname, addr.port);
  }

  write(messages: readonly string[]): Promise<number> {
    const bytes = this.ws
      ? encodeTextFrames(messages)
      : ENCODER.encode(messages.length === 1 ? messages[0] + "\n" : messages.join("\n") + "\n");
    return this.writeRaw(bytes);
  }

  /** Writes bytes after everything queued before them. */
  writeRaw(bytes: Uint8Array): Promise<number> {
    this.#pendingWrites++;
    const p = this.#chain.then(() => this.#writeAll(bytes)).finally(() => this.#pendingWrites--);
    this.#chain = p.catch(() => {});
    return p;
  }

  async #writeAll(bytes: Uint8Array): Promise<number> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
    return bytes.length;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.ws && this.opened && !this.closeSent && this.#pendingWrites === 0) {
      // Best effort goodbye; a peer that is not reading does not get to hold the socket open.
      this.closeSent = true;
      const timer = setTimeout(() => this.#closeConn(), 1000);
      this.conn.write(closeFrame(CLOSE_NORMAL)).catch(() => {}).finally(() => {
        clearTimeout(timer);
        this.#closeConn();
      });
      return;
    }
    this.#closeConn();
  }

  #closeConn(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

function listen(
  protocol: ServiceProtocol,
  host: string,
  port: number,
  tls: { cert: string; key: string } | undefined,
): Deno.Listener {
  try {
    return tls
      ? Deno.listenTls({ hostname: host, port, cert: tls.cert, key: tls.key })
      : Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (e) {
    throw new Error(`cannot listen on ${protocol}://${formatHostPort(host, port)}: ${errorText(e)}`);
  }
}

function readTlsFiles(config: Config): { cert: string; key: string } {
  const read = (path: string | undefined, variable: string) => {
    if (!path) throw new Error(`${variable} is required for ssl and wss services`);
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(`cannot read ${variable} ${path}: ${errorText(e)}`);
    }
  };
  return { cert: read(config.sslCertfile, "SSL_CERTFILE"), key: read(config.sslKeyfile, "SSL_KEYFILE") };
}

function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
