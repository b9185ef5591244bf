// A deliberately plain Electrum client for the server's end-to-end tests: newline-delimited JSON over a real
// TCP socket, replies matched by id, notifications kept in arrival order. It shares nothing with src/server, so
// a framing or ordering bug there cannot be mirrored here.
import { LineReader } from "../line_reader.ts";

/** A reply as it arrived on the wire. */
export interface Reply {
  jsonrpc?: string;
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string };
}

/** A server→client notification. */
export interface Notification {
  method: string;
  params: unknown[];
}

/** The error object of a reply, thrown by LineClient.request. */
export class ReplyError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "ReplyError";
  }
}

interface NotificationWaiter {
  from: number;
  pred: (n: Notification) => boolean;
  resolve: (n: Notification) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const ENC = new TextEncoder();

/** How long a test waits for something the server owes it before failing (a bound, not a synchronisation). */
export const WAIT_MS = 30_000;

/** One Electrum session over TCP. */
export class LineClient {
  /** Every notification received, in order. */
  readonly notifications: Notification[] = [];
  /** Messages that matched no pending request (id null, unknown ids), in order. */
  readonly unmatched: unknown[] = [];
  /** Resolves when the server closed the connection (or it failed). */
  readonly ended: Promise<void>;
  /** Complete lines received. */
  lines = 0;
  /** Why reading stopped, when it was not an ordinary close (e.g. the server sent a line that is not JSON). */
  failure: Error | undefined;

  private readonly pending = new Map<number | string, (r: Reply) => void>();
  private notificationWaiters: NotificationWaiter[] = [];
  private unmatchedWaiters: ((m: unknown) => void)[] = [];
  private nextId = 1;
  private isEnded = false;
  private closedByUs = false;

  private constructor(readonly conn: Deno.TcpConn) {
    this.ended = this.readLoop();
  }

  /** Connects to 127.0.0.1:port. */
  static async connect(port: number): Promise<LineClient> {
    return new LineClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** True once the connection is gone. */
  get closed(): boolean {
    return this.isEnded;
  }

  /** server.version; returns the result or throws ReplyError. */
  hello(version: unknown = "1.6", client = "coulomb-it"): Promise<[string, string]> {
    return this.request("server.version", [client, version]);
  }

  /** Sends bytes as they are. */
  async sendRaw(data: string | Uint8Array): Promise<void> {
    let bytes = typeof data === "string" ? ENC.encode(data) : data;
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** Sends one request and resolves with its raw reply. */
  call(method: string, params: unknown = []): Promise<Reply> {
    const id = this.nextId++;
    const reply = this.expect(id);
    this.sendRaw(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n").catch(() => {});
    return reply;
  }

  /** Sends one request; resolves with its result or rejects with ReplyError. */
  async request<T = unknown>(method: string, params: unknown = []): Promise<T> {
    const r = await this.call(method, params);
    if (r.error) throw new ReplyError(r.error.code, r.error.message);
    return r.result as T;
  }

  /** Sends the calls as one batch line; resolves with their replies in call order. */
  async batch(calls: readonly (readonly [string, unknown])[]): Promise<Reply[]> {
    const ids = calls.map(() => this.nextId++);
    const replies = ids.map((id) => this.expect(id));
    const line = JSON.stringify(
      calls.map(([method, params], i) => ({ jsonrpc: "2.0", id: ids[i], method, params })),
    );
    await this.sendRaw(line + "\n");
    return await Promise.all(replies);
  }

  /** Every call answered, `size` per batch line, a few lines in flight: fast for thousands of requests. */
  async many(calls: readonly (readonly [string, unknown])[], size = 250): Promise<Reply[]> {
    const out: Reply[] = new Array(calls.length);
    const chunks: number[] = [];
    for (let i = 0; i < calls.length; i += size) chunks.push(i);
    let next = 0;
    const worker = async () => {
      while (next < chunks.length) {
        const start = chunks[next++];
        const replies = await this.batch(calls.slice(start, start + size));
        replies.forEach((r, k) => out[start + k] = r);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    return out;
  }

  /** The next message that matched no request (e.g. a parse error's reply, id null). */
  nextUnmatched(): Promise<unknown> {
    if (this.unmatched.length > 0) return Promise.resolve(this.unmatched.shift());
    if (this.isEnded) return Promise.reject(new Error("connection closed"));
    return new Promise((resolve) => this.unmatchedWaiters.push(resolve));
  }

  /** The first notification at index >= `from` that satisfies `pred`; rejects after `ms`. */
  waitNotification(pred: (n: Notification) => boolean, from = 0, ms = WAIT_MS): Promise<Notification> {
    for (let i = from; i < this.notifications.length; i++) {
      if (pred(this.notifications[i])) return Promise.resolve(this.notifications[i]);
    }
    return new Promise((resolve, reject) => {
      const w: NotificationWaiter = {
        from,
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.notificationWaiters = this.notificationWaiters.filter((x) => x !== w);
          reject(
            new Error(`no matching notification within ${ms} ms (${this.notifications.length} received)`),
          );
        }, ms),
      };
      this.notificationWaiters.push(w);
    });
  }

  /** Closes the connection from our side. */
  close(): void {
    if (this.closedByUs) return;
    this.closedByUs = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  private expect(id: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      if (this.isEnded) {
        reject(new Error("connection closed"));
        return;
      }
      this.pending.set(id, resolve);
    });
  }

  private dispatch(msg: unknown): void {
    if (Array.isArray(msg)) {
      // A batch reply: route each item by id; an unknowable one (id null) is kept as a whole.
      if (msg.length > 0 && msg.every((m) => this.pending.has((m as Reply)?.id as number))) {
        for (const m of msg) this.dispatch(m);
        return;
      }
      this.keepUnmatched(msg);
      return;
    }
    const m = msg as { id?: number | string | null; method?: unknown; params?: unknown };
    if (m && typeof m === "object" && typeof m.method === "string" && !("id" in m)) {
      const n = { method: m.method, params: m.params as unknown[] };
      const index = this.notifications.length;
      this.notifications.push(n);
      this.notificationWaiters = this.notificationWaiters.filter((w) => {
        if (index < w.from || !w.pred(n)) return true;
        clearTimeout(w.timer);
        w.resolve(n);
        return false;
      });
      return;
    }
    const resolve = m && m.id !== null && m.id !== undefined ? this.pending.get(m.id) : undefined;
    if (resolve) {
      this.pending.delete(m.id!);
      resolve(m as Reply);
      return;
    }
    this.keepUnmatched(msg);
  }

  private keepUnmatched(msg: unknown): void {
    const w = this.unmatchedWaiters.shift();
    if (w) w(msg);
    else this.unmatched.push(msg);
  }

  private async readLoop(): Promise<void> {
    const lines = new LineReader(this.conn.readable);
    try {
      for (let line; (line = await lines.next()) !== null;) {
        this.lines++;
        this.dispatch(JSON.parse(line));
      }
    } catch (e) {
      // A reset or our own close is how sessions end; anything else (e.g. a line that is not JSON) is kept.
      const ordinary = e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BadResource ||
        e instanceof Deno.errors.Interrupted;
      if (!this.closedByUs && !ordinary) this.failure = e as Error;
    } finally {
      this.isEnded = true;
      const gone = new Error("connection closed");
      for (const w of this.notificationWaiters) {
        clearTimeout(w.timer);
        w.reject(gone);
      }
      this.notificationWaiters = [];
      for (const w of this.unmatchedWaiters) w(undefined);
      this.unmatchedWaiters = [];
      // Requests still owed a reply learn that none will come.
      for (const resolve of this.pending.values()) {
        resolve({ id: null, error: { code: 0, message: "connection closed before the reply" } });
      }
      this.pending.clear();
      this.close();
    }
  }
}
