// What the listeners (src/server/listeners.ts) and their socket side (src/server/socket_side.ts, in the socket
// thread or on the main thread) say to each other.
// Per-connection traffic travels in batches: flat arrays of [op, connection id, a, b] quadruples, one
// postMessage per turn of either event loop (or per THREAD_BATCH_ENTRIES entries between threads), because a
// message per line would cost more than the line itself.
// Everything else (start, TLS reload, stop) is a control object.
import type { Service } from "../config.ts";

/** The first message to the socket thread. */
export interface StartMessage {
  readonly type: "start";
  /** The listeners to bind, in the order OPENED's listener index refers to. */
  readonly services: readonly Service[];
  /** Longest message accepted (MAX_RECV); longer ones are dropped and reported as oversize. */
  readonly maxRecv: number;
  /** Messages a connection may have delivered without an ACK before its reading pauses (see ReadWindow). */
  readonly readWindow: number;
  /** An ssl/wss connection whose TLS handshake takes longer is closed (it is not a session yet). */
  readonly handshakeTimeoutMs: number;
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * Bind with SO_REUSEPORT, so the other socket side can listen on the same ports (SOCKET_THREAD=overflow). The
   * side that binds first checks that nobody else holds the port: with the option set, a second Coulomb
   * started by mistake on the same port would otherwise share it silently instead of failing.
   */
  readonly reusePort?: { readonly checkFree: boolean };
  /** Listening sockets per service (all on the same address; default 1): the kernel spreads connections. */
  readonly copies?: number;
  /** Connection ids are first, first + step, …: two socket sides feeding one set of listeners never clash. */
  readonly ids?: { readonly first: number; readonly step: number };
}

/** Control messages to the socket thread. */
export type ControlMessage =
  | StartMessage
  | { readonly type: "tls"; readonly cert: string; readonly key: string }
  /** Stop accepting; open connections stay. */
  | { readonly type: "unlisten" }
  /** Close every connection and report "stopped". */
  | { readonly type: "stop" };

/** Control messages from the socket thread. */
export type ControlReply =
  | { readonly type: "listening"; readonly ports: readonly number[]; readonly hosts: readonly string[] }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "tls-done"; readonly error?: string }
  | { readonly type: "unlistened" }
  | { readonly type: "stopped" }
  | { readonly type: "log"; readonly level: "debug" | "info" | "warn"; readonly text: string };

/** Slots per entry of a batch: op, connection id, a, b. */
export const ENTRY = 4;

// Socket thread → listeners.
/** A connection was accepted: a = listener index, b = "ip port". */
export const OPENED = 1;
/** One message: a = its text, b = its length in bytes. */
export const LINE = 2;
/** One message that is not UTF-8: a = its bytes. */
export const BINARY = 3;
/** Part of a message over MAX_RECV was dropped: a = its bytes, b = 1 for the part that found it too long. */
export const OVERSIZE = 4;
/** The oldest pending write reached the OS: a = bytes written. */
export const WRITTEN = 5;
/** The peer shut down its sending side. */
export const ENDED = 6;
/** The connection is gone: a = why. */
export const CLOSED = 7;
/**
 * Blank lines (or empty WebSocket messages) of one read, summed rather than sent one by one (a 64 KB read
 * can hold 65,536): a = how many, b = their bytes.
 */
export const BLANK = 8;

// Listeners → socket thread.
/**
 * Send these messages, framed: a = (string | Uint8Array)[], a Uint8Array being a message's UTF-8 bytes. Each WRITE
 * is answered by one WRITTEN or a CLOSED.
 */
export const WRITE = 11;
/** The listeners took a = n more of the connection's messages (LINE, BINARY, OVERSIZE, BLANK): see ReadWindow. */
export const ACK = 12;
/** Close the connection (after a WebSocket close frame when one is due). */
export const CLOSE = 14;

/**
 * Entries per batch between threads before it leaves without waiting for the end of the turn. When one thread
 * reads or answers 1,000 sessions in one turn, the other would otherwise sit idle until that turn ends and get
 * everything at once: the two threads took turns instead of working side by side. On the main thread alone
 * (SOCKET_THREAD=off) there is nothing to overlap, so batches there stay one per turn.
 */
export const THREAD_BATCH_ENTRIES = 64;

/**
 * A batch being filled: it leaves at the end of the turn (a microtask), or as soon as it holds `maxEntries`
 * (by default, never before the end of the turn).
 */
export class Batcher {
  #entries: unknown[] = [];
  /** Buffers that leave with the batch instead of being copied (see transfer). */
  #transfer: ArrayBuffer[] = [];
  #scheduled = false;
  readonly #maxSlots: number;

  constructor(readonly post: (batch: unknown[], transfer: ArrayBuffer[]) => void, maxEntries = Infinity) {
    this.#maxSlots = Math.max(1, maxEntries) * ENTRY;
  }

  /**
   * Hands `buffer` over with the batch that carries the next entry added: between threads it moves instead of
   * being copied, and is unusable here afterwards.
   */
  transfer(buffer: ArrayBuffer): void {
    this.#transfer.push(buffer);
  }

  /** Adds one entry; it leaves with the others at the end of this turn, or now if the batch is full. */
  add(op: number, id: number, a: unknown, b: unknown): void {
    this.#entries.push(op, id, a, b);
    if (this.#entries.length >= this.#maxSlots) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        if (this.#scheduled) this.flush();
      });
    }
  }

  /** Posts what has been added (if anything) now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#entries.length === 0) return;
    const batch = this.#entries;
    const transfer = this.#transfer;
    this.#entries = [];
    if (transfer.length > 0) this.#transfer = [];
    this.post(batch, transfer);
  }
}

/**
 * The socket side's flow control of one connection. It counts the messages it has delivered and the listeners
 * have not acknowledged, and stops reading when `size` are outstanding: the listeners acknowledge only while
 * the session has room, so a pipelining client is held back at the socket, where the kernel's buffers and TCP
 * stop it, and not after its messages have crossed to the main thread. (Pausing on a message from the listeners
 * instead let the socket thread read on for as long as that message took to arrive: 80,000 requests, 17 MB,
 * piled up in one throttled session.) A chunk that is already read is framed whole, so a window can be
 * overshot by the messages of one read.
 */
export class ReadWindow {
  #outstanding = 0;
  #paused = false;

  constructor(readonly size: number) {}

  /** Messages delivered and not yet acknowledged. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Whether reading is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Counts one delivered message; true when reading must pause now. */
  delivered(): boolean {
    this.#outstanding++;
    if (this.#paused || this.#outstanding < this.size) return false;
    this.#paused = true;
    return true;
  }

  /** Counts `n` acknowledged messages; true when reading must resume now. */
  acked(n: number): boolean {
    this.#outstanding = Math.max(0, this.#outstanding - n);
    if (!this.#paused || this.#outstanding >= this.size) return false;
    this.#paused = false;
    return true;
  }
}
