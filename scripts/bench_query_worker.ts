// The load generator of `bench query`, one Worker per share of the sessions. It has to stay cheap: it runs on
// the same two cores as the server it measures. Requests are pre-encoded lines handed over once; replies are
// never parsed: the server answers each session in request order, so a reply is one "\n" and its latency is
// measured against the oldest send time still outstanding. One byte tells a result from an error.
//
// Sockets are node:net ones, as in the server: Deno.Conn read loops serve 1,000 connections unevenly, so some
// replies sat unread in the client for tens of milliseconds and were counted as the server's latency (1,000 × 1
// measured p99 78–108 ms with Deno.Conn, where a C epoll client saw 45–58 ms against the same server).
/// <reference lib="deno.worker" />
import net from "node:net";

/** Sets up the sessions: connect, negotiate, then wait for "run". */
export interface SetupMessage {
  type: "setup";
  host: string;
  port: number;
  sessions: number;
  /** Requests each session keeps in flight. */
  inflight: number;
  /** Every request line (with its "\n"), back to back. */
  lines: Uint8Array;
  /** Start of each line in `lines`, plus the end: length = lines + 1. */
  offsets: Uint32Array;
  /** Where this worker's sessions start reading the line list, so workers do not ask the same things. */
  firstLine: number;
  /**
   * Requests per second each session sends, on a fixed schedule; 0 sends the next one as soon as a reply comes
   * back. When paced, latency counts from the scheduled time, so a server that falls behind is not flattered
   * by the client waiting for it (no coordinated omission).
   */
  ratePerSession: number;
}

/** Starts the load: `warmupMs` unmeasured, then `durationMs` measured. */
export interface RunMessage {
  type: "run";
  warmupMs: number;
  durationMs: number;
}

/** What a worker sends back. */
export type WorkerReply =
  | { type: "ready"; connectMs: number }
  | { type: "failed"; message: string }
  | {
    type: "done";
    /** Replies received in the measured window. */
    replies: number;
    /** Of which error replies. */
    errors: number;
    /** Latency of each measured reply, milliseconds. */
    latencies: Float64Array;
    bytesIn: number;
    bytesOut: number;
    /** Sessions that ended (closed by the server or failed) before the end. */
    lost: number;
  };

const NEWLINE = 0x0a;
// Consecutive sessions start this many lines apart in the request list (a prime: they never line up).
const SESSION_STRIDE = 7919;
// Every reply line starts `{"jsonrpc":"2.0","` and continues with `result` or `error`: byte 18 tells them apart.
const KIND_OFFSET = 18;
const ERROR_BYTE = 0x65; // 'e'
const CONNECT_BATCH = 64;
const ENCODER = new TextEncoder();

interface Client {
  sock: net.Socket;
  cursor: number;
  sent: Float64Array;
  head: number;
  tail: number;
  mask: number;
  /** Paced sessions: the scheduled time of the next send, sends owed, and the pending timer. */
  next: number;
  owed: number;
  timer: ReturnType<typeof setTimeout> | 0;
  /** Bytes still to skip in the current reply line before its kind byte; -1 once it has been looked at. */
  kindIn: number;
  /** The current reply line is an error. */
  lineError: boolean;
  /** Settles when the session ends (closed by either side). */
  ended: Promise<void>;
}

let setup: SetupMessage | undefined;
let clients: Client[] = [];
let running = false;
let measureFrom = Infinity;
let measureTo = Infinity;
let replies = 0;
let errors = 0;
let bytesIn = 0;
let bytesOut = 0;
let lost = 0;
let latencies = new Float64Array(1 << 16);
let latencyCount = 0;

self.onmessage = (e: MessageEvent<SetupMessage | RunMessage>) => {
  const msg = e.data;
  if (msg.type === "setup") {
    setup = msg;
    connectAll(msg).then(
      (ms) => self.postMessage({ type: "ready", connectMs: ms } satisfies WorkerReply),
      (err) =>
        self.postMessage({ type: "failed", message: String(err?.message ?? err) } satisfies WorkerReply),
    );
  } else if (msg.type === "run") {
    run(msg);
  }
};

async function connectAll(s: SetupMessage): Promise<number> {
  const started = performance.now();
  const ringSize = 1 << Math.ceil(Math.log2(Math.max(2, s.inflight)));
  const lineCount = s.offsets.length - 1;
  for (let i = 0; i < s.sessions; i += CONNECT_BATCH) {
    const batch: Promise<Client>[] = [];
    for (let j = i; j < Math.min(s.sessions, i + CONNECT_BATCH); j++) {
      batch.push((async () => {
        const sock = await connect(s.host, s.port);
        sock.setNoDelay(true);
        await hello(sock);
        const ended = Promise.withResolvers<void>();
        sock.on("close", () => ended.resolve());
        return {
          sock,
          cursor: (s.firstLine + j * SESSION_STRIDE) % lineCount,
          sent: new Float64Array(ringSize),
          head: 0,
          tail: 0,
          mask: ringSize - 1,
          next: 0,
          owed: 0,
          timer: 0,
          kindIn: KIND_OFFSET,
          lineError: false,
          ended: ended.promise,
        };
      })());
    }
    clients.push(...await Promise.all(batch));
  }
  return performance.now() - started;
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    sock.once("error", reject);
    sock.once("connect", () => {
      sock.off("error", reject);
      // Failures after this end the session (counted as lost while running), they must not throw.
      sock.on("error", () => {});
      resolve(sock);
    });
  });
}

// Sends server.version and waits for its reply; nothing else is in flight yet, so the line ends the chunk.
function hello(sock: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Uint8Array) => {
      if (chunk.indexOf(NEWLINE) < 0) return;
      sock.off("data", onData);
      sock.off("close", onClose);
      if (chunk[KIND_OFFSET] === ERROR_BYTE) reject(new Error("server.version failed"));
      else resolve();
    };
    const onClose = () => reject(new Error("the server closed the connection during server.version"));
    sock.on("data", onData);
    sock.once("close", onClose);
    sock.write(
      ENCODER.encode('{"jsonrpc":"2.0","id":0,"method":"server.version","params":["coulomb-bench","1.4"]}\n'),
    );
  });
}

function run(msg: RunMessage): void {
  const now = performance.now();
  measureFrom = now + msg.warmupMs;
  measureTo = measureFrom + msg.durationMs;
  running = true;
  if (setup!.ratePerSession > 0) {
    // Random phases, so that the sessions' schedules do not line up into bursts.
    const interval = 1000 / setup!.ratePerSession;
    for (const c of clients) c.next = now + Math.random() * interval;
  }
  const loops = clients.map((c) => drive(c));
  setTimeout(() => {
    running = false;
    self.postMessage(
      {
        type: "done",
        replies,
        errors,
        latencies: latencies.slice(0, latencyCount),
        bytesIn,
        bytesOut,
        lost,
      } satisfies WorkerReply,
    );
    for (const c of clients) {
      clearTimeout(c.timer);
      c.sock.destroy();
    }
    clients = [];
    void Promise.allSettled(loops).then(() => self.close());
  }, measureTo - now + 1);
}

function drive(c: Client): Promise<void> {
  const s = setup!;
  const pace = s.ratePerSession > 0 ? 1000 / s.ratePerSession : 0;
  c.sock.on("data", (chunk: Uint8Array) => {
    const done = onReplies(c, chunk, performance.now());
    if (!running || done === 0) return;
    if (pace > 0) owe(c, done, pace);
    else send(c, done);
  });
  if (pace > 0) owe(c, s.inflight, pace);
  else send(c, s.inflight);
  return c.ended.then(() => {
    if (running) lost++;
  });
}

// Counts the complete reply lines in a chunk; returns how many ended in it.
function onReplies(c: Client, view: Uint8Array, now: number): number {
  const n = view.length;
  bytesIn += n;
  let pos = 0;
  let done = 0;
  while (pos < n) {
    if (c.kindIn >= 0) {
      if (pos + c.kindIn >= n) {
        c.kindIn -= n - pos;
        break;
      }
      c.lineError = view[pos + c.kindIn] === ERROR_BYTE;
      c.kindIn = -1;
    }
    const nl = view.indexOf(NEWLINE, pos);
    if (nl < 0) break;
    const sentAt = c.sent[c.head++ & c.mask];
    // An error answers nothing a wallet asked: counted as an error, not as a reply or a latency.
    if (c.lineError) {
      if (now >= measureFrom && now < measureTo) errors++;
    } else if (now >= measureFrom && now < measureTo) {
      replies++;
      if (latencyCount === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[latencyCount++] = now - sentAt;
    }
    done++;
    pos = nl + 1;
    c.kindIn = KIND_OFFSET;
    c.lineError = false;
  }
  return done;
}

// Paced sending: `count` more requests are due, each at the next free slot of the session's schedule. Those
// whose time has come go out now (stamped with their scheduled time); a timer sends the rest.
function owe(c: Client, count: number, pace: number): void {
  c.owed += count;
  if (c.timer === 0) pay(c, pace);
}

function pay(c: Client, pace: number): void {
  if (!running) return;
  const now = performance.now();
  let due = 0;
  while (c.owed > 0 && c.next <= now) {
    c.sent[c.tail++ & c.mask] = c.next;
    c.next += pace;
    c.owed--;
    due++;
  }
  if (due > 0) writeLines(c, due);
  if (c.owed > 0) {
    c.timer = setTimeout(() => {
      c.timer = 0;
      pay(c, pace);
    }, Math.max(0, c.next - now));
  }
}

// Sends the session's next `count` request lines in one write (two when the list wraps around).
function send(c: Client, count: number): void {
  const now = performance.now();
  for (let i = 0; i < count; i++) c.sent[c.tail++ & c.mask] = now;
  writeLines(c, count);
}

function writeLines(c: Client, count: number): void {
  const s = setup!;
  const lineCount = s.offsets.length - 1;
  let from = c.cursor;
  let left = count;
  while (left > 0) {
    const take = Math.min(left, lineCount - from);
    const bytes = s.lines.subarray(s.offsets[from], s.offsets[from + take]);
    bytesOut += bytes.length;
    // The socket keeps writes in order and buffers what the kernel does not take at once.
    c.sock.write(bytes);
    left -= take;
    from = (from + take) % lineCount;
  }
  c.cursor = from;
}
