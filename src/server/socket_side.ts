// The socket side of the Electrum listeners: it owns the sockets, accepts connections, reads and frames their
// input (newlines or WebSocket frames), decodes UTF-8, and encodes and writes the replies. It talks to the
// sessions only through batches of src/server/socket_messages.ts, so it runs either in the socket thread (a
// Worker, src/server/socket_thread.ts) or on the main thread beside the sessions (SOCKET_THREAD=off).
//
// Sockets are node:net/node:tls ones rather than Deno.listen's: under load with many connections, Deno.Conn
// read loops serve connections very unevenly (measured with 1,000 sessions at saturation: some got 5 replies
// while others got 1,000 in the same 8 s), whereas node:net's data events go round fairly.
import net from "node:net";
import tls from "node:tls";
import { hostPort } from "../host_port.ts";
import { LineFramer, type LineSink } from "./line_framer.ts";
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
  ReadWindow,
  type StartMessage,
  WRITE,
  WRITTEN,
} from "./socket_messages.ts";
import { CLOSE_NORMAL, closeFrame, encodeTextFrames, WsFramer, type WsSink } from "./websocket.ts";
import { errorText } from "../error_text.ts";

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();
/** Input read after our close frame (or HTTP refusal) before the connection is cut at once. */
const AFTER_CLOSE_MAX = 1 << 20;
/** Input a TLS connection may send ahead of its replies (see Conn.tls); at least 2 × MAX_RECV. */
const TLS_HELD_MAX = 4 << 20;
/** How long a last frame (a WebSocket close, an HTTP refusal) may take to be written before the socket goes. */
const FAREWELL_MS = 1000;
/** How long "stop" waits for connections to finish closing (WebSocket close frames) before reporting. */
const STOP_GRACE_MS = 1500;

// A line of nothing but spaces, tabs and carriage returns: a keep-alive, or a flood of them.
function isBlank(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}

const NEWLINE = Uint8Array.of(0x0a);

// Newline-framed messages as chunks to write: text is encoded (runs of it together), a message already in bytes
// is written as it is, not copied into a bigger buffer.
function lineChunks(messages: readonly (string | Uint8Array)[]): Uint8Array[] {
  if (messages.length === 1 && typeof messages[0] === "string") return [ENCODER.encode(messages[0] + "\n")];
  const chunks: Uint8Array[] = [];
  let texts: string[] = [];
  for (const m of messages) {
    if (typeof m === "string") {
      texts.push(m);
      continue;
    }
    if (texts.length > 0) chunks.push(ENCODER.encode(texts.join("\n") + "\n"));
    texts = [];
    chunks.push(m, NEWLINE);
  }
  if (texts.length > 0) chunks.push(ENCODER.encode(texts.join("\n") + "\n"));
  return chunks;
}

interface Conn {
  readonly id: number;
  readonly sock: net.Socket;
  readonly ws: boolean;
  /**
   * TLS: Deno's node:tls keeps reading a paused socket and buffers what it reads without bound, so a TLS
   * connection is never paused; what arrives while it would be is held here instead (see #hold), up to a bound.
   */
  readonly tls: boolean;
  held: Uint8Array[] | undefined;
  heldBytes: number;
  /** The peer ended its side while input was held: ENDED follows that input. */
  endAfterHeld: boolean;
  /** Bytes read after our last frame was queued (see AFTER_CLOSE_MAX). */
  afterClose: number;
  /** Frames received bytes and hands them on (the "data" handler's work). */
  feed: (chunk: Uint8Array) => void;
  readonly window: ReadWindow;
  /** WebSocket only: the upgrade succeeded, so a close frame is due on close. */
  opened: boolean;
  /** A last frame (a close frame, an HTTP refusal) is queued: nothing more is read or written. */
  closeSent: boolean;
  pendingWrites: number;
  /** WebSocket only: a pong is being written; `pongNext` answers the latest ping that came meanwhile. */
  pongBusy: boolean;
  pongNext: Uint8Array | undefined;
  closing: boolean;
  /** Why we are closing it, reported with CLOSED. */
  reason: string | undefined;
  gone: boolean;
}

interface Listening {
  readonly server: net.Server;
  readonly tls: boolean;
  closed: boolean;
}

/** Sockets, framing and writes for the listeners; fed with `handle`, answering through `post`. */
export class SocketSide {
  readonly #post: (msg: unknown[] | ControlReply) => void;
  readonly #out: Batcher;
  readonly #conns = new Map<number, Conn>();
  readonly #listening: Listening[] = [];
  /** MAX_RECV, from the start message. */
  #maxRecv = 0;
  /** Each connection's ReadWindow size, from the start message. */
  #readWindow = 1;
  #nextId = 1;
  #idStep = 1;
  /** The certificate for ssl/wss listeners, kept current by "tls" messages. */
  #tls: { cert: string; key: string } | undefined;
  #stopping = false;
  #stopTimer: ReturnType<typeof setTimeout> | undefined;

  /** `batchEntries`: see Batcher; the socket thread passes THREAD_BATCH_ENTRIES. */
  constructor(post: (msg: unknown[] | ControlReply) => void, batchEntries = Infinity) {
    this.#post = post;
    this.#out = new Batcher((batch) => post(batch), batchEntries);
  }

  /** Takes one message from the listeners: a batch of connection commands or a control message. */
  handle(msg: unknown[] | ControlMessage): void {
    if (Array.isArray(msg)) {
      for (let i = 0; i < msg.length; i += ENTRY) {
        this.#command(msg[i] as number, msg[i + 1] as number, msg[i + 2]);
      }
      return;
    }
    switch (msg.type) {
      case "start":
        this.#maxRecv = msg.maxRecv;
        this.#readWindow = Math.max(1, msg.readWindow);
        this.#listen(msg).then(
          (bound) =>
            this.#reply({
              type: "listening",
              ports: bound.map((b) => b.port),
              hosts: bound.map((b) => b.host),
            }),
          (err) => this.#reply({ type: "failed", message: errorText(err) }),
        );
        break;
      case "tls":
        this.#tls = { cert: msg.cert, key: msg.key };
        try {
          for (const l of this.#listening) {
            if (l.tls && !l.closed) {
              (l.server as tls.Server).setSecureContext({ cert: msg.cert, key: msg.key });
            }
          }
          this.#reply({ type: "tls-done" });
        } catch (err) {
          this.#reply({ type: "tls-done", error: errorText(err) });
        }
        break;
      case "unlisten":
        this.#unlisten();
        this.#reply({ type: "unlistened" });
        break;
      case "stop":
        this.#unlisten();
        for (const c of this.#conns.values()) this.#closeConn(c, "server shutting down");
        // WebSocket peers get their close frame (bounded by #closeConn's own timer) before this reports.
        this.#stopTimer = setTimeout(() => this.#stopped(), STOP_GRACE_MS);
        if (this.#conns.size === 0) this.#stopped();
        break;
    }
  }

  #unlisten(): void {
    this.#stopping = true;
    for (const l of this.#listening) closeListener(l);
  }

  #stopped(): void {
    clearTimeout(this.#stopTimer);
    this.#stopTimer = undefined;
    this.#reply({ type: "stopped" });
  }

  #reply(msg: ControlReply): void {
    // Control replies must not overtake connection traffic that was added before them.
    this.#out.flush();
    this.#post(msg);
  }

  #command(op: number, id: number, a: unknown): void {
    const c = this.#conns.get(id);
    if (c === undefined || c.gone) return;
    switch (op) {
      case ACK:
        if (c.window.acked(a as number) && !c.closeSent) this.#resumeReading(c);
        break;
      case WRITE: {
        // RFC 6455 §5.5.1: no data frame after our close frame (replies still owed are dropped).
        if (c.closeSent) break;
        const messages = a as (string | Uint8Array)[];
        const chunks = c.ws ? [encodeTextFrames(messages)] : lineChunks(messages);
        let bytes = 0;
        for (const chunk of chunks) bytes += chunk.length;
        this.#write(c, chunks, (err) => {
          if (err) this.#closeConn(c, `write failed: ${errorText(err)}`);
          else this.#out.add(WRITTEN, id, bytes, 0);
        });
        break;
      }
      case CLOSE:
        this.#closeConn(c, undefined);
        break;
    }
  }

  async #listen(s: StartMessage): Promise<{ host: string; port: number }[]> {
    if (s.ids) {
      this.#nextId = s.ids.first;
      this.#idStep = s.ids.step;
    }
    if (s.tls) this.#tls = { ...s.tls };
    const reusePort = s.reusePort !== undefined;
    const copies = Math.max(1, s.copies ?? 1);
    const bound: { host: string; port: number }[] = [];
    try {
      for (let index = 0; index < s.services.length; index++) {
        const spec = s.services[index];
        const where = `${spec.protocol}://${hostPort(spec.host, spec.port)}`;
        let host = spec.host;
        let port = spec.port;
        const first = this.#server(spec.protocol, index, s.handshakeTimeoutMs, where);
        const more = Array.from(
          { length: copies - 1 },
          () => this.#server(spec.protocol, index, s.handshakeTimeoutMs, where),
        );
        try {
          if (s.reusePort?.checkFree && port !== 0) await checkFree(port, host);
          await bindAnyFamily(first, port, host, reusePort);
          ({ address: host, port } = first.address() as net.AddressInfo);
          // All at once: connections keep arriving elsewhere until these listen.
          await Promise.all(more.map((server) => bind(server, port, host, reusePort)));
        } catch (e) {
          throw new Error(`cannot listen on ${where}: ${errorText(e)}`);
        }
        for (const server of [first, ...more]) {
          // E.g. out of file descriptors: node retries the accept itself; say so rather than crash.
          server.on(
            "error",
            (e) => this.#log("warn", `accepting ${spec.protocol} connections failed: ${errorText(e)}`),
          );
        }
        bound.push({ host, port });
      }
    } catch (e) {
      for (const l of this.#listening) closeListener(l);
      throw e;
    }
    return bound;
  }

  /** A listening server for one service, not yet bound. */
  #server(protocol: string, index: number, handshakeTimeoutMs: number, where: string): net.Server {
    const secure = protocol === "ssl" || protocol === "wss";
    const ws = protocol === "ws" || protocol === "wss";
    let server: net.Server;
    try {
      server = secure
        ? tls.createServer({
          cert: this.#tls!.cert,
          key: this.#tls!.key,
          allowHalfOpen: true,
          handshakeTimeout: handshakeTimeoutMs,
        })
        : net.createServer({ allowHalfOpen: true });
    } catch (e) {
      throw new Error(`cannot listen on ${where}: ${errorText(e)}`);
    }
    server.on(
      secure ? "secureConnection" : "connection",
      (sock: net.Socket) => this.#accept(sock, index, secure, ws),
    );
    // A failed or timed-out handshake concerns that connection only, which must go: node:tls (as Deno
    // provides it) reports a handshake timeout without closing the socket.
    if (secure) server.on("tlsClientError", (_err: Error, sock: tls.TLSSocket) => sock.destroy());
    this.#listening.push({ server, tls: secure, closed: false });
    return server;
  }

  #accept(sock: net.Socket, listener: number, secure: boolean, ws: boolean): void {
    // Before anything else: an error event without a listener would take the thread down.
    sock.on("error", () => {});
    if (this.#stopping) {
      sock.destroy();
      return;
    }
    if (!secure) sock.setNoDelay(true);
    const id = this.#nextId;
    this.#nextId += this.#idStep;
    const c: Conn = {
      id,
      sock,
      ws,
      tls: secure,
      held: undefined,
      heldBytes: 0,
      endAfterHeld: false,
      afterClose: 0,
      feed: () => {},
      window: new ReadWindow(this.#readWindow),
      opened: false,
      closeSent: false,
      pendingWrites: 0,
      pongBusy: false,
      pongNext: undefined,
      closing: false,
      reason: undefined,
      gone: false,
    };
    this.#conns.set(id, c);
    // What failed becomes the close reason (the session logs it), unless we were already closing for our own.
    sock.on("error", (e) => {
      if (!c.closing) c.reason ??= `connection failed: ${errorText(e)}`;
    });
    const out = this.#out;
    out.add(OPENED, id, listener, `${sock.remoteAddress ?? ""} ${sock.remotePort ?? 0}`);
    const maxRecv = this.#maxRecv;
    const delivered = () => {
      if (c.window.delivered()) this.#stopReading(c);
    };
    // Blank lines and message-less WebSocket frames of one read, sent as one BLANK entry after it.
    let blankLines = 0, blankBytes = 0;
    const blank = (bytes: number) => {
      blankLines++;
      blankBytes += bytes;
    };
    const line = (bytes: Uint8Array) => {
      if (isBlank(bytes)) {
        blank(bytes.length);
        return;
      }
      let text: string;
      try {
        text = UTF8.decode(bytes);
      } catch {
        out.add(BINARY, id, bytes.slice(), 0);
        delivered();
        return;
      }
      out.add(LINE, id, text, bytes.length);
      delivered();
    };
    const oversize = (bytes: number, first: boolean) => {
      out.add(OVERSIZE, id, bytes, first ? 1 : 0);
      delivered();
    };
    let push: (chunk: Uint8Array) => void;
    if (ws) {
      const framer = new WsFramer(maxRecv);
      const sink = this.#wsSink(c, line, oversize, blank);
      push = (chunk) => framer.push(chunk, sink);
    } else {
      const framer = new LineFramer(maxRecv);
      const sink: LineSink = { line, oversize };
      push = (chunk) => framer.push(chunk, sink);
    }
    c.feed = (chunk) => {
      push(chunk);
      if (blankLines > 0) {
        out.add(BLANK, id, blankLines, blankBytes);
        blankLines = blankBytes = 0;
        delivered();
      }
    };
    sock.on("data", (chunk: Uint8Array) => {
      if (c.gone) return;
      if (c.closeSent) {
        // What the peer had in flight, and its own close frame, may still come; one that goes on is cut off.
        c.afterClose += chunk.byteLength;
        if (c.afterClose > AFTER_CLOSE_MAX) sock.destroy();
        return;
      }
      // A plain view of the Buffer: the framer's indexOf is then the engine's, not the Buffer polyfill's.
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (c.held !== undefined) this.#hold(c, bytes);
      else c.feed(bytes);
    });
    // The peer may only have shut down its sending side: the session answers what it asked, then closes.
    sock.on("end", () => {
      if (c.gone) return;
      if (c.heldBytes > 0) c.endAfterHeld = true;
      else out.add(ENDED, id, 0, 0);
    });
    sock.on("close", () => this.#gone(c, c.reason ?? "connection closed"));
  }

  #wsSink(
    c: Conn,
    line: (bytes: Uint8Array) => void,
    oversize: (bytes: number, first: boolean) => void,
    idle: (bytes: number) => void,
  ): WsSink {
    return {
      open: (response) => {
        this.#write(c, [response], (err) => {
          if (err) this.#closeConn(c, "handshake write failed");
        });
        c.opened = true;
      },
      reject: (response, reason) => {
        const peer = hostPort(c.sock.remoteAddress ?? "", c.sock.remotePort ?? 0);
        this.#log("debug", `connection ${c.id} ${peer}: WebSocket upgrade refused: ${reason}`);
        this.#farewell(c, response, reason);
      },
      message: line,
      oversize,
      idle,
      control: (frame) => {
        // A peer that pings without reading must not make us queue pongs without end: one pong at a time,
        // and of the pings that arrive meanwhile only the latest is answered (RFC 6455 §5.5.3 allows it).
        if (c.pongBusy) c.pongNext = frame;
        else this.#pong(c, frame);
      },
      close: (frame, reason) => this.#farewell(c, frame, reason),
    };
  }

  // The read window is full: reading stops until the answering side acknowledges (ACK). A TLS socket is not
  // paused (see Conn.tls): its input is held instead.
  #stopReading(c: Conn): void {
    if (c.tls) c.held ??= [];
    else c.sock.pause();
  }

  #resumeReading(c: Conn): void {
    if (!c.tls) {
      c.sock.resume();
      return;
    }
    const held = c.held;
    c.held = undefined;
    c.heldBytes = 0;
    if (held === undefined) return;
    for (let i = 0; i < held.length; i++) {
      if (c.gone || c.closing || c.closeSent) return;
      // The window may fill again part way: the rest waits for the next ACK.
      if (c.held !== undefined) {
        for (let j = i; j < held.length; j++) this.#hold(c, held[j]);
        return;
      }
      c.feed(held[i]);
    }
    if (c.endAfterHeld && c.held === undefined && !c.gone) {
      c.endAfterHeld = false;
      this.#out.add(ENDED, c.id, 0, 0);
    }
  }

  // Input a TLS client sent while its read window was full. A plain TCP client would be held back by its own
  // send buffer at about this point; one that goes on sending over TLS is cut off rather than buffered.
  #hold(c: Conn, bytes: Uint8Array): void {
    c.held!.push(bytes);
    c.heldBytes += bytes.length;
    if (c.heldBytes > Math.max(TLS_HELD_MAX, 2 * this.#maxRecv)) {
      this.#closeConn(c, `sent ${c.heldBytes} bytes ahead of its replies`);
    }
  }

  // Writes a last frame and closes. Reading stops at once: a peer that broke the protocol, or closed, may not
  // go on sending for free (the framer would drop it uncharged); and one that does not read it within
  // FAREWELL_MS does not hold the socket open behind a full send buffer.
  #farewell(c: Conn, last: Uint8Array, reason: string): void {
    this.#writeLast(c, last, () => this.#closeConn(c, reason));
  }

  // Writes `last` after which nothing is read or written, then runs `then` once it is written or FAREWELL_MS
  // has passed. A TLS socket would buffer what it reads while paused: it is read, and dropped (up to
  // AFTER_CLOSE_MAX).
  #writeLast(c: Conn, last: Uint8Array, then: () => void): void {
    c.closeSent = true;
    if (!c.tls) c.sock.pause();
    const timer = setTimeout(then, FAREWELL_MS);
    this.#write(c, [last], () => {
      clearTimeout(timer);
      then();
    });
  }

  #pong(c: Conn, frame: Uint8Array): void {
    c.pongBusy = true;
    this.#write(c, [frame], (err) => {
      c.pongBusy = false;
      if (err) {
        this.#closeConn(c, "write failed");
        return;
      }
      const next = c.pongNext;
      c.pongNext = undefined;
      if (next !== undefined) this.#pong(c, next);
    });
  }

  // Writes the chunks in order; `done` runs once, when the last is written (or with the first error).
  #write(c: Conn, chunks: readonly Uint8Array[], done: (err: Error | null | undefined) => void): void {
    if (c.sock.destroyed) {
      done(new Error("connection closed"));
      return;
    }
    c.pendingWrites++;
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) c.sock.write(chunks[i]);
    c.sock.write(chunks[last], (err) => {
      c.pendingWrites--;
      done(err);
    });
  }

  #closeConn(c: Conn, reason: string | undefined): void {
    if (c.gone || c.closing) return;
    c.closing = true;
    c.reason = reason;
    if (c.ws && c.opened && !c.closeSent && c.pendingWrites === 0 && !c.sock.destroyed) {
      // Best effort goodbye; a peer that is not reading does not get to hold the socket open.
      this.#writeLast(c, closeFrame(CLOSE_NORMAL), () => c.sock.destroy());
      return;
    }
    c.sock.destroy();
  }

  #gone(c: Conn, reason: string): void {
    if (c.gone) return;
    c.gone = true;
    this.#conns.delete(c.id);
    this.#out.add(CLOSED, c.id, reason, 0);
    if (this.#stopTimer !== undefined && this.#conns.size === 0) this.#stopped();
  }

  #log(level: "debug" | "info" | "warn", text: string): void {
    this.#reply({ type: "log", level, text });
  }
}

function bind(server: net.Server, port: number, host: string, reusePort: boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host, reusePort }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Binds host:port; "::" on a system without IPv6 falls back to every IPv4 interface. */
async function bindAnyFamily(
  server: net.Server,
  port: number,
  host: string,
  reusePort: boolean,
): Promise<void> {
  try {
    await bind(server, port, host, reusePort);
  } catch (e) {
    if (host !== "::" || !noIpv6(e)) throw e;
    await bind(server, port, "0.0.0.0", reusePort);
  }
}

/** Fails (EADDRINUSE) when anything listens on host:port, even with SO_REUSEPORT: binds it alone for a moment. */
async function checkFree(port: number, host: string): Promise<void> {
  const probe = net.createServer();
  await bindAnyFamily(probe, port, host, false);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/** Whether a failed bind to "::" means the system has no IPv6 (rather than, say, the port being taken). */
export function noIpv6(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "EAFNOSUPPORT" || code === "EADDRNOTAVAIL" || code === "EPROTONOSUPPORT";
}

function closeListener(l: Listening): void {
  if (l.closed) return;
  l.closed = true;
  l.server.close();
}
