// The Electrum listeners: one per SERVICES entry (tcp, ssl, ws, wss; rpc:// is the admin interface, not here).
// Each accepted connection becomes a Session fed by the socket's data events, framed into messages (newlines or
// WebSocket frames); reading pauses while the session has no room, so a client cannot make us buffer more than
// MAX_RECV plus a read chunk of its input. One timer drives idle and request timeouts for all sessions.
//
// Sockets are node:net/node:tls ones rather than Deno.listen's: under load with many connections, Deno.Conn
// read loops serve connections very unevenly (measured with 1,000 sessions at saturation: some got 5 replies
// while others got 1,000 in the same 8 s, p99 750 ms), whereas node:net's data events go round fairly (p99
// 55 ms) at the same throughput and CPU. See /work/notes/perf-query.md.
import net from "node:net";
import tls from "node:tls";
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

/** Binds every tcp/ssl/ws/wss service of the configuration and serves Electrum sessions on them. */
export async function startServer(opts: ServerOptions): Promise<Server> {
  const server = new ElectrumServer(opts);
  await server.listen();
  return server;
}

interface Listening {
  readonly protocol: ServiceProtocol;
  readonly host: string;
  port: number;
  readonly tls: boolean;
  readonly ws: boolean;
  server: net.Server;
  closed: boolean;
}

const ENCODER = new TextEncoder();

class ElectrumServer implements Server {
  addresses: readonly ServerAddress[];
  readonly #opts: ServerOptions;
  readonly #services: readonly Config["services"][number][];
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
    this.#services = config.services.filter((s) => s.protocol !== "rpc");
    if (this.#services.some((s) => s.protocol === "ssl" || s.protocol === "wss")) {
      this.#tls = opts.tls ? { ...opts.tls } : readTlsFiles(config);
    }
    this.addresses = [];
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
  }

  /** Binds every service; on a failure closes what was bound and throws, naming the service. */
  async listen(): Promise<void> {
    try {
      for (const s of this.#services) {
        const secure = s.protocol === "ssl" || s.protocol === "wss";
        const entry: Listening = {
          protocol: s.protocol,
          host: s.host,
          port: s.port,
          tls: secure,
          ws: s.protocol === "ws" || s.protocol === "wss",
          server: undefined as unknown as net.Server,
          closed: false,
        };
        entry.server = await this.#bind(entry);
        this.#listening.push(entry);
      }
    } catch (e) {
      for (const l of this.#listening) l.server.close();
      clearInterval(this.#tick);
      throw e;
    }
    this.addresses = this.#listening.map((l) => ({
      protocol: l.protocol,
      host: (l.server.address() as net.AddressInfo).address,
      port: l.port,
    }));
    for (const l of this.#listening) {
      this.#log.info(`listening for Electrum ${l.protocol} connections on ${formatHostPort(l.host, l.port)}`);
    }
  }

  async #bind(l: Listening): Promise<net.Server> {
    const where = `${l.protocol}://${formatHostPort(l.host, l.port)}`;
    let server: net.Server;
    try {
      server = l.tls
        ? tls.createServer({ cert: this.#tls!.cert, key: this.#tls!.key, allowHalfOpen: true })
        : net.createServer({ allowHalfOpen: true });
    } catch (e) {
      throw new Error(`cannot listen on ${where}: ${errorText(e)}`);
    }
    server.on(l.tls ? "secureConnection" : "connection", (sock: net.Socket) => this.#accept(sock, l));
    // A failed handshake concerns that connection only.
    if (l.tls) server.on("tlsClientError", () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(l.port, l.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (e) {
      server.close();
      throw new Error(`cannot listen on ${where}: ${errorText(e)}`);
    }
    // E.g. out of file descriptors: node retries the accept itself; say so rather than crash.
    server.on("error", (e) => this.#log.warn(`accepting ${l.protocol} connections failed: ${errorText(e)}`));
    l.port = (server.address() as net.AddressInfo).port;
    return server;
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

  reloadTls(cert: string, key: string): Promise<void> {
    try {
      // Prove the pair works before touching the live listeners (node:tls does not check that the key matches).
      const probe = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
      probe.close();
      for (const l of this.#listening) {
        if (l.tls && !l.closed) (l.server as tls.Server).setSecureContext({ cert, key });
      }
    } catch (e) {
      return Promise.reject(e);
    }
    this.#tls = { cert, key };
    this.#log.info("TLS certificate reloaded");
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    // The servers' close callbacks fire once their connections are gone, i.e. after the sessions below.
    const released = this.#listening.filter((l) => !l.closed).map((l) => {
      l.closed = true;
      return new Promise<void>((resolve) => l.server.close(() => resolve()));
    });
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
    await Promise.all(released);
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

  #accept(sock: net.Socket, l: Listening): void {
    // Before anything else: an error event without a listener would take the process down.
    sock.on("error", () => {});
    if (this.#closing) {
      sock.destroy();
      return;
    }
    if (this.#sessions.size >= this.#opts.config.maxSessions) {
      sock.destroy();
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
    if (!l.tls) sock.setNoDelay(true);
    const transport = new SocketTransport(sock, l.ws);
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
    const maxRecv = this.#opts.config.maxRecv;
    let push: (chunk: Uint8Array) => void;
    if (l.ws) {
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
    sock.on("data", (chunk: Uint8Array) => {
      if (session.closed) return;
      // A plain view of the Buffer: the framer's indexOf is then the engine's, not the Buffer polyfill's.
      push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      const room = session.room();
      if (room) {
        sock.pause();
        room.then(() => {
          if (!session.closed) sock.resume();
        });
      }
    });
    // The peer may only have shut down its sending side: answer what it asked, then close.
    sock.on("end", () => {
      session.drain().then(() => session.close("connection closed"));
    });
    sock.on("error", (e) => {
      if (!session.closed) this.#log.debug(`session ${session.id}: connection failed: ${errorText(e)}`);
    });
    sock.on("close", () => session.close("connection closed"));
  }
}

function wsSink(session: Session, transport: SocketTransport, log: Log): WsSink {
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

/** A node:net (or node:tls) socket with newline or WebSocket framing; the socket keeps writes in order. */
class SocketTransport implements Transport {
  readonly remoteAddress: string;
  readonly remoteIp: string;
  /** WebSocket only: the upgrade succeeded, so a close frame is due on close. */
  opened = false;
  closeSent = false;
  #pendingWrites = 0;
  #closed = false;

  constructor(readonly sock: net.Socket, readonly ws: boolean) {
    this.remoteIp = sock.remoteAddress ?? "";
    this.remoteAddress = formatHostPort(this.remoteIp, sock.remotePort ?? 0);
  }

  write(messages: readonly string[]): Promise<number> {
    const bytes = this.ws
      ? encodeTextFrames(messages)
      : ENCODER.encode(messages.length === 1 ? messages[0] + "\n" : messages.join("\n") + "\n");
    return this.writeRaw(bytes);
  }

  /** Writes bytes after everything queued before them; resolves once the OS has taken them. */
  writeRaw(bytes: Uint8Array): Promise<number> {
    if (this.sock.destroyed) return Promise.reject(new Error("connection closed"));
    this.#pendingWrites++;
    return new Promise((resolve, reject) => {
      this.sock.write(bytes, (err) => {
        this.#pendingWrites--;
        if (err) reject(err);
        else resolve(bytes.length);
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.ws && this.opened && !this.closeSent && this.#pendingWrites === 0 && !this.sock.destroyed) {
      // Best effort goodbye; a peer that is not reading does not get to hold the socket open.
      this.closeSent = true;
      const timer = setTimeout(() => this.sock.destroy(), 1000);
      this.sock.write(closeFrame(CLOSE_NORMAL), () => {
        clearTimeout(timer);
        this.sock.destroy();
      });
      return;
    }
    this.sock.destroy();
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
