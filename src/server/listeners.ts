// The Electrum listeners: one per SERVICES entry (tcp, ssl, ws, wss; rpc:// is the admin interface, not here).
// The sockets belong to the socket side (src/server/socket_side.ts), which frames their input into messages;
// here each connection becomes a Session that those messages are fed to, and its replies go back to the socket
// side to be written. Reading pauses while the session has no room, so a client cannot make us buffer more than
// MAX_RECV plus a few read chunks of its input. One timer drives idle and request timeouts for all sessions.
//
// The socket side runs on this thread (SOCKET_THREAD=off), in its own thread (a Worker; on, or auto with two
// or more CPUs), or both (overflow: this thread until MAIN_THREAD_SESSIONS sessions are open, then mostly the
// Worker, which listens on the same ports with SO_REUSEPORT). The thread takes socket reads and writes off the
// thread that owns LevelDB, so the two cores share the work, but each request then crosses threads twice (CPU
// and two wake-ups). Measured with `deno task bench query` on 2 cores shared with the load generator, jemalloc
// preloaded (off → on): 1,000 × 1 p99 50.9–61.6 → 39.9–52.0 ms, 16 × 16 116–129k → 117–143k req/s, 16 × 1
// 37–45k → 25–29k; overflow has 16 × 1's speed but a worse 1,000 × 1 p99 (docs/operations.md, "Threads").
import { type Config, MAX_TIMER_MS, type ServiceProtocol } from "../config.ts";
import type { Log } from "../log.ts";
import { hostPort } from "../host_port.ts";
import { CostGroups, costSettings, DECAY_RECOMPUTE_MS } from "./limits.ts";
import { type Message, prepareMethods } from "./rpc.ts";
import { Session, type SessionInfo, type SessionLimits, type Transport } from "./session.ts";
import { SocketSide } from "./socket_side.ts";
import {
  ACK,
  Batcher,
  BINARY,
  BLANK,
  CLOSE,
  CLOSED,
  type ControlMessage,
  type ControlReply,
  ENDED,
  ENTRY,
  LINE,
  OPENED,
  OVERSIZE,
  type StartMessage,
  THREAD_BATCH_ENTRIES,
  WRITE,
  WRITTEN,
} from "./socket_messages.ts";
import type { MethodTable } from "./types.ts";
import { errorText } from "../error_text.ts";

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
  /** Called if the socket thread dies: every session is gone and nothing is served any more. */
  readonly onFatal?: (err: Error) => void;
  /** The socket thread's module (tests substitute one that fails). */
  readonly socketThreadModule?: URL;
  /** See TLS_HANDSHAKE_TIMEOUT_MS (tests shorten it). */
  readonly tlsHandshakeTimeoutMs?: number;
  /** How many script hashes a session is subscribed to: its cost decays more slowly the more it holds. */
  readonly subscriptionCount?: (session: Session) => number;
  /** SOCKET_THREAD=overflow: sessions on the main thread before the socket thread takes new connections. */
  readonly mainThreadSessions?: number;
  /** See OUTPUT_BUDGET_BYTES (tests lower it). */
  readonly outputBudgetBytes?: number;
}

/**
 * Reply bytes all sessions together may have queued before the server sheds the clients that are not reading
 * (their oldest write waiting at least STALLED_WRITE_MS), largest queue first. Each session is bounded by
 * 2 × MAX_SEND, but a thousand of them from a thousand networks would hold 16 GB (and the process about three
 * times that: the text, its copy in the socket thread, the encoded bytes).
 */
export const OUTPUT_BUDGET_BYTES = 1 << 30;
/** A write that has waited this long is a client not reading (as far as shedding output goes). */
export const STALLED_WRITE_MS = 2000;

/**
 * How long an ssl/wss connection may take to complete its TLS handshake. Until it does it is no session, so
 * neither MAX_SESSIONS nor the idle timeout covers it: without this limit, connections that never send a
 * ClientHello would each hold a file descriptor for good.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

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

/**
 * SOCKET_THREAD=overflow: the socket thread starts taking new connections once this many sessions are open on
 * the main thread. A few sessions are served fastest without crossing threads (16 × 1: 44k req/s against 27k), many
 * busy ones need the second core for their sockets (see the head of this file).
 */
export const MAIN_THREAD_SESSIONS = 32;
/** Listening sockets per service in the socket thread, beside the main thread's one: it gets 31 in 32. */
export const SPILL_LISTENERS = 31;

/** Messages a session may have unanswered before its reads pause. */
export const MAX_PENDING_MESSAGES = 256;
/**
 * Messages the socket side delivers for one connection before it stops reading until they are acknowledged;
 * with MAX_PENDING_MESSAGES this bounds what one session can hold at about twice that (plus one read's lines).
 */
export const READ_WINDOW = 256;
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

const SOCKET_THREAD = new URL("./socket_thread.ts", import.meta.url);
/** Where the socket side runs: messages to it, and a way to stop it. */
interface SocketLink {
  readonly thread: boolean;
  /** Sends `msg`; the buffers in `transfer` move with it (to a thread) instead of being copied. */
  post(msg: unknown[] | ControlMessage, transfer?: ArrayBuffer[]): void;
  close(): void;
}

/** The socket side in a Worker; structured clone carries the messages. */
function workerLink(
  module: URL,
  deliver: (msg: unknown[] | ControlReply) => void,
  fail: (err: Error) => void,
): SocketLink {
  const worker = new Worker(module, { type: "module" });
  worker.onmessage = (e: MessageEvent<unknown[] | ControlReply>) => deliver(e.data);
  worker.onerror = (e) => {
    e.preventDefault();
    fail(new Error(`the socket thread failed: ${String(e.message).split("\n")[0]}`));
  };
  return {
    thread: true,
    post: (msg, transfer) => worker.postMessage(msg, transfer ?? []),
    close: () => worker.terminate(),
  };
}

/** The socket side on this thread: the same messages, handed over by reference. */
function inlineLink(deliver: (msg: unknown[] | ControlReply) => void): SocketLink {
  // Its messages arrive in a later microtask, as a Worker's would arrive later: never inside a call to it.
  const side = new SocketSide((msg) => queueMicrotask(() => deliver(msg)));
  let closed = false;
  return {
    thread: false,
    post: (msg) => {
      if (!closed) side.handle(msg);
    },
    close: () => closed = true,
  };
}

// Whether `bytes` spans the whole of an ArrayBuffer, so that handing the buffer over takes nothing else with it.
function ownsBuffer(bytes: Uint8Array): bytes is Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength;
}

/** The main thread's end of one connection: replies go to the socket thread, which acknowledges each write. */
class RemoteTransport implements Transport {
  readonly remoteAddress: string;
  session!: Session;
  /** Messages taken from the socket side and not yet acknowledged to it (see ReadWindow). */
  unacked = 0;
  /** An ACK waits for the session to have room. */
  acking = false;
  closed = false;
  /** Writes sent but not yet acknowledged, oldest first. */
  readonly #pending: { resolve: (n: number) => void; reject: (e: Error) => void }[] = [];
  #pendingHead = 0;

  constructor(readonly id: number, readonly remoteIp: string, port: number, readonly out: Batcher) {
    this.remoteAddress = hostPort(remoteIp, port);
  }

  write(messages: readonly Message[]): Promise<number> {
    if (this.closed) return Promise.reject(new Error("connection closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      for (const m of messages) {
        // A message in bytes has a buffer of its own (see Message): it moves to the socket thread uncopied.
        if (typeof m !== "string" && ownsBuffer(m)) this.out.transfer(m.buffer);
      }
      this.out.add(WRITE, this.id, messages, 0);
    });
  }

  /** The socket thread wrote the oldest pending write. */
  written(bytes: number): void {
    const p = this.#pending[this.#pendingHead];
    if (p === undefined) return;
    this.#pending[this.#pendingHead++] = undefined as never;
    if (this.#pendingHead === this.#pending.length) {
      this.#pending.length = 0;
      this.#pendingHead = 0;
    }
    p.resolve(bytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.out.add(CLOSE, this.id, 0, 0);
    this.gone();
  }

  /** The connection is gone: writes still pending fail. */
  gone(): void {
    this.closed = true;
    const err = new Error("connection closed");
    for (let i = this.#pendingHead; i < this.#pending.length; i++) this.#pending[i].reject(err);
    this.#pending.length = 0;
    this.#pendingHead = 0;
  }
}

/** One socket side as the server sees it: its link, the commands being batched for it, its control replies. */
class Side {
  readonly out: Batcher;
  readonly waiting = new Map<string, (reply: ControlReply) => void>();
  /** Its start was answered with "listening". */
  listening = false;
  /** Open sessions on its connections. */
  sessions = 0;

  constructor(readonly link: SocketLink) {
    // Only between threads do batches leave before the end of the turn (see THREAD_BATCH_ENTRIES).
    this.out = new Batcher(
      (batch, transfer) => link.post(batch, transfer),
      link.thread ? THREAD_BATCH_ENTRIES : Infinity,
    );
  }
}

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
  readonly #conns = new Map<number, RemoteTransport>();
  /** The side that listens from the start. */
  #primary: Side;
  /** SOCKET_THREAD=overflow: the socket thread, which starts listening beside the primary once it is busy. */
  readonly #spill: Side | undefined;
  #spillState: "waiting" | "starting" | "listening" | "failed" = "waiting";
  #spillStarted: Promise<void> | undefined;
  readonly #mainThreadSessions: number;
  #bound = false;
  /** The socket thread could not start (e.g. no read permission for its module): serve from this thread. */
  #threadUnavailable: Error | undefined;
  #tls: { cert: string; key: string } | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #nextId = 1;
  #tick: ReturnType<typeof setInterval>;
  #lastSweep = Date.now();
  #lastDecay = Date.now();
  #closing: Promise<void> | undefined;
  #dead: Error | undefined;
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
    this.#mainThreadSessions = opts.mainThreadSessions ?? MAIN_THREAD_SESSIONS;
    this.#services = config.services.filter((s) => s.protocol !== "rpc");
    if (this.#services.some((s) => s.protocol === "ssl" || s.protocol === "wss")) {
      this.#tls = opts.tls ? { ...opts.tls } : readTlsFiles(config);
    }
    this.addresses = [];
    this.#primary = this.#side(config.socketThread === "thread");
    // Started now so that it is ready when needed: a Worker takes a moment to load its modules.
    if (config.socketThread === "both") this.#spill = this.#side(true);
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
  }

  #side(thread: boolean): Side {
    const deliver = (msg: unknown[] | ControlReply) => this.#onMessage(side, msg);
    const side: Side = new Side(
      thread
        ? workerLink(
          this.#opts.socketThreadModule ?? SOCKET_THREAD,
          deliver,
          (err) => this.#threadFailed(side, err),
        )
        : inlineLink(deliver),
    );
    return side;
  }

  #startMessage(extra: Partial<StartMessage>): StartMessage {
    return {
      type: "start",
      services: this.#services,
      maxRecv: this.#opts.config.maxRecv,
      readWindow: READ_WINDOW,
      handshakeTimeoutMs: this.#opts.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
      tls: this.#tls,
      ...extra,
    };
  }

  /** Binds every service; on a failure closes what was bound and throws, naming the service. */
  async listen(): Promise<void> {
    // Beside the socket thread, the two sides' connection ids are odd and even, and the ports are shared.
    const start = this.#startMessage(
      this.#spill ? { reusePort: { checkFree: true }, ids: { first: 1, step: 2 } } : {},
    );
    let reply = await this.#control(this.#primary, start, ["listening", "failed"]);
    if (this.#threadUnavailable) {
      this.#log.warn(`${this.#threadUnavailable.message}; serving client sockets on the main thread`);
      this.#threadUnavailable = undefined;
      this.#primary = this.#side(false);
      reply = await this.#control(this.#primary, start, ["listening", "failed"]);
    }
    if (reply.type !== "listening") {
      clearInterval(this.#tick);
      this.#primary.link.close();
      this.#spill?.link.close();
      throw new Error(reply.type === "failed" ? reply.message : "the socket side did not start");
    }
    this.#primary.listening = true;
    this.addresses = this.#services.map((s, i) => ({
      protocol: s.protocol,
      host: reply.hosts[i],
      port: reply.ports[i],
    }));
    this.#bound = true;
    this.#log.info(
      this.#spill
        ? `client sockets are served on the main thread, and by a thread of their own once ${this.#mainThreadSessions} sessions are open`
        : this.#primary.link.thread
        ? "client sockets are served by a thread of their own"
        : "client sockets are served on the main thread",
    );
    for (const a of this.addresses) {
      this.#log.info(`listening for Electrum ${a.protocol} connections on ${hostPort(a.host, a.port)}`);
    }
  }

  /**
   * The main thread has its share of sessions: the socket thread listens on the same ports, SPILL_LISTENERS
   * sockets per service beside the main thread's one, so the kernel hands it nearly all new connections. The
   * main thread keeps listening and keeps the sessions it has: closing its listener would reset connections
   * waiting in that listener's queue, so this happens once and is never undone.
   */
  #spillOver(): void {
    const spill = this.#spill!;
    this.#spillState = "starting";
    const services = this.#services.map((s, i) => ({
      ...s,
      host: this.addresses[i].host,
      port: this.addresses[i].port,
    }));
    const start = this.#startMessage({
      services,
      reusePort: { checkFree: false },
      copies: SPILL_LISTENERS,
      ids: { first: 2, step: 2 },
    });
    this.#spillStarted = this.#control(spill, start, ["listening", "failed"]).then(
      (reply) => {
        if (reply.type === "listening") {
          spill.listening = true;
          this.#spillState = "listening";
          this.#log.info(
            `${this.#primary.sessions} sessions on the main thread: new connections now go mostly to the socket thread`,
          );
        } else {
          this.#spillFailed(new Error(reply.type === "failed" ? reply.message : "it did not start"));
        }
      },
      (err) => this.#spillFailed(err),
    );
  }

  #spillFailed(err: Error): void {
    if (this.#spillState === "failed") return;
    const spill = this.#spill!;
    this.#spillState = "failed";
    this.#log.warn(
      `the socket thread cannot serve (${err.message}); every connection stays on the main thread`,
    );
    spill.link.close();
    // Whatever was still asked of it will not be answered, and connections it accepted before failing are
    // gone with it: their sessions must not wait for a CLOSED that never comes.
    failWaiting(spill, err);
    for (const [id, t] of this.#conns) {
      if (t.out !== spill.out) continue;
      this.#conns.delete(id);
      t.gone();
      t.session.close("socket thread failed");
    }
  }

  /** The sides that listen (or are being started): commands and control go to each. */
  #active(): Side[] {
    const sides = [this.#primary];
    if (this.#spill && (this.#spillState === "starting" || this.#spillState === "listening")) {
      sides.push(this.#spill);
    }
    return sides;
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
    // One at a time: each side answers a reload with one "tls-done", which must go to the call that asked.
    const next = this.#reloading.then(() => this.#reloadTls(cert, key));
    this.#reloading = next.catch(() => {});
    return next;
  }

  async #reloadTls(cert: string, key: string): Promise<void> {
    // Prove the pair works before touching the live listeners (node:tls does not check that the key matches).
    const probe = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
    probe.close();
    // A socket thread that starts meanwhile takes the new pair from this too: its servers are made from it.
    this.#tls = { cert, key };
    for (const side of this.#active()) {
      let reply: ControlReply;
      try {
        reply = await this.#control(side, { type: "tls", cert, key }, ["tls-done"]);
      } catch (e) {
        // A socket thread that failed while starting serves nothing: the main thread has the new pair.
        if (side === this.#spill && this.#spillState === "failed") continue;
        throw e;
      }
      if (reply.type === "tls-done" && reply.error !== undefined) throw new Error(reply.error);
    }
    this.#log.info("TLS certificate reloaded");
  }

  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    await this.#spillStarted;
    const sides = this.#active();
    if (!this.#dead) {
      await Promise.all(sides.map((side) => this.#control(side, { type: "unlisten" }, ["unlistened"])));
    }
    const sessions = [...this.#sessions];
    if (sessions.length) this.#log.info(`closing ${sessions.length} sessions`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cutoff = new Promise<void>((resolve) => {
      // Capped at what a timer can wait: beyond it setTimeout fires at once.
      timer = setTimeout(resolve, Math.min(this.#limits.requestTimeoutMs + CLOSE_GRACE_MS, MAX_TIMER_MS));
    });
    await Promise.race([Promise.all(sessions.map((s) => s.drain())), cutoff]);
    clearTimeout(timer);
    for (const s of this.#sessions) s.close("server shutting down");
    clearInterval(this.#tick);
    if (!this.#dead) {
      await Promise.all(sides.map((side) => this.#control(side, { type: "stop" }, ["stopped"])));
    }
    this.#primary.link.close();
    this.#spill?.link.close();
  }

  /** Sends a control message and waits for the first reply of one of `types`; rejects if the thread dies. */
  #control(side: Side, msg: ControlMessage, types: readonly string[]): Promise<ControlReply> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      const take = (reply: ControlReply) => {
        for (const t of types) side.waiting.delete(t);
        if (reply.type === "failed" && !types.includes("failed")) reject(new Error(reply.message));
        else resolve(reply);
      };
      for (const t of types) side.waiting.set(t, take);
      side.out.flush();
      side.link.post(msg);
    });
  }

  /**
   * A socket thread died. Before the server listened, listen() falls back to this thread; a thread that was
   * to take the overflow leaves every connection to the main thread; one that was serving is fatal.
   */
  #threadFailed(side: Side, err: Error): void {
    if (!side.link.thread) return;
    if (side === this.#spill && !side.listening) {
      this.#spillFailed(err);
      return;
    }
    if (this.#bound) {
      this.#fail(err);
      return;
    }
    this.#threadUnavailable = err;
    side.link.close();
    failWaiting(side, err);
  }

  #fail(err: Error): void {
    if (this.#dead) return;
    this.#dead = err;
    this.#log.error(err.message);
    for (const t of this.#conns.values()) t.session.close("socket thread failed");
    this.#conns.clear();
    for (const side of [this.#primary, this.#spill]) {
      if (side === undefined) continue;
      failWaiting(side, err);
      if (side.link.thread) {
        side.link.close();
      } else {
        // The main thread's own socket side is alive (SOCKET_THREAD=overflow): it must still close the sessions'
        // connections (the CLOSEs just queued) and stop listening, or new clients would be accepted into a
        // server that answers nothing. close() ends its link.
        side.out.flush();
        side.link.post({ type: "stop" });
      }
    }
    this.#opts.onFatal?.(err);
  }

  #onMessage(side: Side, msg: unknown[] | ControlReply): void {
    if (!Array.isArray(msg)) {
      if (msg.type === "log") {
        this.#log[msg.level](msg.text);
        return;
      }
      const take = side.waiting.get(msg.type);
      if (take) take(msg);
      return;
    }
    for (let i = 0; i < msg.length; i += ENTRY) {
      const op = msg[i] as number;
      const id = msg[i + 1] as number;
      if (op === OPENED) {
        this.#open(side, id, msg[i + 2] as number, msg[i + 3] as string);
        continue;
      }
      const t = this.#conns.get(id);
      if (t === undefined) continue;
      const session = t.session;
      switch (op) {
        case LINE:
          session.receiveText(msg[i + 2] as string, msg[i + 3] as number);
          break;
        case BINARY:
          session.receive(msg[i + 2] as Uint8Array);
          break;
        case OVERSIZE:
          session.receiveOversize(msg[i + 2] as number, msg[i + 3] === 1);
          break;
        case BLANK:
          session.receiveBlank(msg[i + 2] as number, msg[i + 3] as number);
          break;
        case WRITTEN:
          t.written(msg[i + 2] as number);
          continue;
        case ENDED:
          session.drain().then(() => session.close("connection closed"));
          continue;
        case CLOSED:
          this.#conns.delete(id);
          t.gone();
          session.close(msg[i + 2] as string);
          continue;
      }
      // Acknowledged in halves of the window, so a steady client costs one ACK per READ_WINDOW / 2 messages
      // and its reading never stops while its session keeps up.
      if (++t.unacked >= READ_WINDOW / 2 && !t.acking && !session.closed) this.#ack(t);
    }
  }

  /** Acknowledges what the transport's session has taken, once the session has room for more. */
  #ack(t: RemoteTransport): void {
    const session = t.session;
    const room = session.room();
    if (room === undefined) {
      t.out.add(ACK, t.id, t.unacked, 0);
      t.unacked = 0;
      return;
    }
    t.acking = true;
    room.then(() => {
      t.acking = false;
      if (session.closed || t.closed) return;
      t.out.add(ACK, t.id, t.unacked, 0);
      t.unacked = 0;
    });
  }

  #open(side: Side, id: number, listener: number, peer: string): void {
    const protocol = this.#services[listener].protocol;
    const space = peer.lastIndexOf(" ");
    const transport = new RemoteTransport(id, peer.slice(0, space), Number(peer.slice(space + 1)), side.out);
    if (this.#closing || this.#dead) {
      transport.close();
      return;
    }
    if (this.#sessions.size >= this.#opts.config.maxSessions) {
      transport.close();
      this.#noteRefused();
      return;
    }
    const session = new Session({
      id: this.#nextId++,
      protocol,
      transport,
      methods: this.#methods,
      limits: this.#limits,
      cost: this.#cost,
      groups: this.#groups,
      serverVersion: this.#opts.serverVersion,
      log: this.#log,
      onClosed: (s) => {
        this.#sessions.delete(s);
        side.sessions--;
      },
    });
    transport.session = session;
    this.#conns.set(id, transport);
    this.#sessions.add(session);
    side.sessions++;
    this.#log.debug(`session ${session.id} ${session.remoteAddress}: ${protocol} connection`);
    if (
      side === this.#primary && this.#spillState === "waiting" && this.#spill &&
      side.sessions >= this.#mainThreadSessions
    ) {
      this.#spillOver();
    }
  }

  /** Closes stalled sessions, largest queue first, until the queued output is back within the budget. */
  #shedOutput(queued: number, budget: number, now: number): void {
    const stalled = [...this.#sessions].filter((s) => !s.closed && s.writeWaitMs(now) >= STALLED_WRITE_MS);
    stalled.sort((a, b) => b.queuedBytes - a.queuedBytes);
    let closed = 0;
    for (const s of stalled) {
      if (queued <= budget) break;
      queued -= s.queuedBytes;
      s.close("not reading, and the server's output budget is spent");
      closed++;
    }
    if (closed > 0) {
      this.#log.warn(
        `closed ${closed} session(s) not reading their replies: queued output over ${budget} bytes in all`,
      );
    }
  }

  #noteRefused(): void {
    this.#refused++;
    const now = Date.now();
    if (now - this.#lastRefusalLog >= REFUSAL_LOG_INTERVAL_MS) {
      this.#log.warn(
        `refused ${this.#refused} connection(s): MAX_SESSIONS (${this.#opts.config.maxSessions}) sessions are open`,
      );
      this.#refused = 0;
      this.#lastRefusalLog = now;
    }
  }

  #onTick(): void {
    const now = Date.now();
    let idle = 0;
    let queued = 0;
    for (const s of this.#sessions) {
      const closed = s.tick(now);
      if (closed === "idle") idle++;
      else if (closed === undefined) queued += s.queuedBytes;
    }
    const budget = this.#opts.outputBudgetBytes ?? OUTPUT_BUDGET_BYTES;
    if (queued > budget) this.#shedOutput(queued, budget, now);
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
    const count = this.#opts.subscriptionCount;
    if (count !== undefined && now - this.#lastDecay >= DECAY_RECOMPUTE_MS) {
      for (const s of this.#sessions) s.updateDecay(count(s), now);
      this.#lastDecay = now;
    }
  }
}

/** Every control call still waiting on the side gets a "failed" reply: nothing will answer it. */
function failWaiting(side: Side, err: Error): void {
  const waiting = new Set(side.waiting.values());
  side.waiting.clear();
  for (const take of waiting) take({ type: "failed", message: err.message });
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
