// One Electrum client connection, independent of its transport. Messages come in whole (the listener frames
// them); requests run concurrently up to the session's allowed concurrency, but replies and notifications leave
// strictly in the order the requests arrived: each message takes a slot in an output queue when it arrives and
// the queue is flushed from the front as slots complete. Everything a client can make the session hold is
// bounded: pending messages (reading pauses), queued output (the session is closed), batch size, line size.
import type { Log } from "../log.ts";
import {
  concurrencyTarget,
  CONNECT_COST,
  type CostGroup,
  type CostGroups,
  CostMeter,
  type CostSettings,
  ERROR_COST,
  PARSE_ERROR_COST,
  sessionDecay,
  throttleFraction,
} from "./limits.ts";
import {
  batchMessage,
  bindArgs,
  claimsJsonRpc2,
  describe,
  errorMessage,
  EXCESSIVE_RESOURCE_USAGE,
  INTERNAL_ERROR,
  INVALID_REQUEST,
  MAX_BATCH_ITEMS,
  type Message,
  METHOD_NOT_FOUND,
  methodInVersion,
  negotiateVersion,
  notificationMessage,
  PARSE_ERROR,
  parseRequest,
  type PreparedMethod,
  prepareMethods,
  type Request,
  type RequestId,
  responseTooLargeMessage,
  resultMessage,
  resultMessageBytes,
  SERVER_BUSY,
} from "./rpc.ts";
import { BAD_REQUEST, ByteJson, type MethodSpec, RawJson, RpcError, type SessionContext } from "./types.ts";
import { utf8Length } from "./utf8_length.ts";
import { errorDetail } from "../error_text.ts";

/** How a session reaches its peer; the listener provides framing (newlines or WebSocket frames). */
export interface Transport {
  /** "ip:port" ("[v6]:port" for IPv6). */
  readonly remoteAddress: string;
  /** The peer's IP address alone, for grouping. */
  readonly remoteIp: string;
  /** Frames and sends whole messages; resolves with the bytes written once the OS has taken them. */
  write(messages: readonly Message[]): Promise<number>;
  /** Closes the connection now; a pending write or read fails. */
  close(): void;
}

/** Per-session limits from the configuration. */
export interface SessionLimits {
  readonly maxSend: number;
  readonly requestTimeoutMs: number;
  readonly sessionTimeoutMs: number;
  /** Messages received but not yet answered before reading pauses. */
  readonly maxPendingMessages: number;
  /** Queued output beyond which the peer is taken to be not reading and is disconnected. */
  readonly maxQueuedBytes: number;
}

/** What a Session needs; all of it is passed in. */
export interface SessionDeps {
  readonly id: number;
  /** "tcp", "ssl", "ws" or "wss", for reports. */
  readonly protocol: string;
  readonly transport: Transport;
  readonly methods: ReadonlyMap<string, PreparedMethod>;
  readonly limits: SessionLimits;
  readonly cost: CostSettings;
  readonly groups: CostGroups;
  readonly serverVersion: string;
  readonly log: Log;
  /** Called once when the session has closed. */
  readonly onClosed?: (session: Session) => void;
}

/** A snapshot of one session for the admin interface and tests. */
export interface SessionInfo {
  readonly id: number;
  readonly protocol: string;
  readonly remoteAddress: string;
  /** client_name from server.version (at most 100 characters), "" before it. */
  readonly client: string;
  /** Negotiated version, "" before server.version. */
  readonly protocolVersion: string;
  /** This session's own cost now. */
  readonly cost: number;
  /** The cost throttling looks at: the session's, or its IP group's total when that is higher. */
  readonly throttleCost: number;
  /** 0 below COST_SOFT_LIMIT, 1 at COST_HARD_LIMIT. */
  readonly throttleFraction: number;
  /** Requests allowed to run at once now. */
  readonly concurrency: number;
  /** IP group key ("203.0.113.0/24"), or undefined when exempt. */
  readonly group: string | undefined;
  readonly requests: number;
  readonly errors: number;
  /** Requests that were delayed by throttling. */
  readonly throttledRequests: number;
  readonly recvBytes: number;
  readonly sendBytes: number;
  /** Messages received but not yet answered, and notifications queued behind them. */
  readonly pendingMessages: number;
  /** Reply and notification bytes queued but not yet written. */
  readonly queuedBytes: number;
  readonly startedAt: number;
  readonly lastRecvAt: number;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const VERSION_COST = 0.5;
const PING_COST = 0.1;
/** The slowest reading (bytes per second) a write is given time for beyond SESSION_TIMEOUT; see tick(). */
export const MIN_READ_RATE = 1000;
// server.ping is answered here, without a handler, but its arguments are checked like any method's.
const PING = prepareMethods(new Map([["server.ping", { params: [], cost: PING_COST, handler: () => null }]]))
  .get("server.ping")!;
const MAX_CLIENT_NAME = 100;
// Deferring with a reaction on a settled promise instead of queueMicrotask: in the server, Deno's queueMicrotask
// took ~2 µs a call (6% of the main thread under 1,000 busy sessions in a CPU profile).
const RESOLVED = Promise.resolve();

const enum VersionState {
  None,
  Pending,
  Done,
  Failed,
}

/** One place in the output order: a single reply, a batch reply, or a notification. */
class Slot {
  /** Calls still running (for a batch, items). */
  pending: number;
  text: Message | null = null;
  closeAfter = false;
  /** For batches: each item's reply text and id, in request order. */
  items: (Message | null)[] | null = null;
  ids: RequestId[] | null = null;
  /** For batches: each valid item's method (its metrics learn of replies made too large). */
  methods: (string | undefined)[] | null = null;

  constructor(pending: number) {
    this.pending = pending;
  }
}

/** One request in flight: a whole message or one batch item. */
class Call {
  /** When it was received: REQUEST_TIMEOUT counts from here, waiting for a turn included (as aiorpcX). */
  readonly arrivedAt = Date.now();
  /** Took a place among the calls that may run (#active); one that times out before that never did. */
  started = false;
  done = false;
  closeAfter = false;
  /** Waiting for version negotiation: not counted as running. */
  parked = false;

  constructor(readonly req: Request, readonly slot: Slot, readonly index: number) {}
}

/** An Electrum session: JSON-RPC dispatch, version negotiation, ordering, cost and limits. */
export class Session implements SessionContext {
  readonly id: number;
  readonly protocol: string;
  readonly remoteAddress: string;
  protocolVersion = "";
  protocolTuple: readonly number[] = [];
  client = "";

  readonly startedAt: number;
  lastRecvAt: number;
  requests = 0;
  errors = 0;
  throttledRequests = 0;
  recvBytes = 0;
  sendBytes = 0;

  readonly #deps: SessionDeps;
  readonly #limits: SessionLimits;
  readonly #cost: CostSettings;
  readonly #meter: CostMeter;
  readonly #group: CostGroup | undefined;

  #closed = false;
  /** False once the session will take no more messages (closing, draining, or about to disconnect). */
  #accepting = true;
  /** True once calls that have not started are to be dropped rather than run. */
  #dropping = false;
  #draining = false;
  #closeAfterFlush = false;

  /** Set by the first message: whether this session speaks JSON-RPC 2.0 (else 1.0 is tolerated). */
  #jsonRpc2: boolean | undefined;
  #versionState = VersionState.None;
  #versionRequest: Request | undefined;
  #versionDone: Promise<void> | undefined;
  #versionResolve: (() => void) | undefined;

  #slots: (Slot | undefined)[] = [];
  #head = 0;
  #waiting: (Call | undefined)[] = [];
  #waitHead = 0;
  #active = 0;
  #pumping = false;
  readonly #inflight = new Set<Call>();

  #outParts: Message[] = [];
  #outBytes = 0;
  /** Reply and notification text completed but waiting behind an earlier, unfinished slot. */
  #heldBytes = 0;
  #writing = false;
  /** When the write in progress was handed to the transport; 0 when none is. */
  #writeSince = 0;
  /** Its size: UTF-16 units for text (as good as bytes for JSON), bytes for a message in bytes. */
  #writeChars = 0;

  #room: Promise<void> | undefined;
  #roomResolve: (() => void) | undefined;
  #closedPromise: Promise<void>;
  #closedResolve!: () => void;
  #closeCallbacks: (() => void)[] = [];

  constructor(deps: SessionDeps, now = Date.now()) {
    this.#deps = deps;
    this.#limits = deps.limits;
    this.#cost = deps.cost;
    this.id = deps.id;
    this.protocol = deps.protocol;
    this.remoteAddress = deps.transport.remoteAddress;
    this.startedAt = now;
    this.lastRecvAt = now;
    this.#meter = new CostMeter(deps.cost.decayPerSec, now);
    this.#group = deps.groups.join(deps.transport.remoteIp, this.#meter, now);
    this.#charge(CONNECT_COST, now);
    this.#closedPromise = new Promise((resolve) => this.#closedResolve = resolve);
  }

  // --- SessionContext ---------------------------------------------------------------------------------------

  /** True once the session has closed; nothing is sent after that. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Charges cost beyond a method's base cost. */
  addCost(cost: number): void {
    if (Number.isFinite(cost)) this.#charge(cost, Date.now());
  }

  /** Queues a notification behind every reply still owed, so a subscription's reply precedes its updates. */
  notify(method: string, params: unknown[]): void {
    if (this.#closed || this.#closeAfterFlush) return;
    let text: string;
    try {
      text = notificationMessage(method, params);
    } catch (e) {
      this.#deps.log.error(`session ${this.id}: cannot serialize ${method} notification: ${errorDetail(e)}`);
      return;
    }
    if (this.#head === this.#slots.length) {
      this.#emit(text);
    } else {
      const slot = new Slot(0);
      this.#slots.push(slot);
      this.#setText(slot, text);
    }
  }

  /** Runs fn when the session closes (at once if it already has). */
  onClose(fn: () => void): void {
    if (this.#closed) this.#runCloseCallback(fn);
    else this.#closeCallbacks.push(fn);
  }

  // --- input from the listener ----------------------------------------------------------------------------

  /** Handles one complete message (a line without "\n", or a WebSocket message); `bytes` may be reused after. */
  receive(bytes: Uint8Array): void {
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch {
      if (!this.#accepting) return;
      this.#received(bytes.length);
      this.#reject(null, PARSE_ERROR, "messages must be encoded in UTF-8", PARSE_ERROR_COST);
      return;
    }
    this.receiveText(text, bytes.length);
  }

  /** Handles one complete message already decoded from UTF-8; `bytes` is its encoded length. */
  receiveText(text: string, bytes: number): void {
    if (!this.#accepting) return;
    this.#received(bytes);
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      // Blank lines are keep-alives from some clients, not errors; but they cost what a ping costs.
      if (text.trim() === "") {
        this.receiveBlank(1, 0);
        return;
      }
      this.#reject(null, PARSE_ERROR, "invalid JSON", PARSE_ERROR_COST);
      return;
    }
    if (Array.isArray(payload)) this.#receiveBatch(payload);
    else this.#receiveOne(payload);
  }

  #received(bytes: number): void {
    const now = Date.now();
    this.lastRecvAt = now;
    this.recvBytes += bytes;
    this.#charge(bytes / this.#cost.bandwidthUnitCost, now);
  }

  /**
   * Notes `lines` blank lines (keep-alives) of `bytes` bytes: no reply, but each costs what a ping does, so a
   * flood of them (65,536 in a 64 KB read) reaches COST_HARD_LIMIT like any other.
   */
  receiveBlank(lines: number, bytes: number): void {
    this.#unanswered(bytes, lines * PING_COST);
  }

  /**
   * Notes bytes of a message dropped for exceeding MAX_RECV: no reply (as ElectrumX), but its bytes cost, and
   * the part that found it too long (`first`) costs an error too.
   */
  receiveOversize(bytes: number, first = true): void {
    if (first && this.#accepting) {
      this.errors++;
      this.#deps.log.debug(`session ${this.id}: dropping a message over MAX_RECV (${bytes} bytes so far)`);
    }
    this.#unanswered(bytes, first ? ERROR_COST : 0);
  }

  // Input that gets no reply still counts as activity and costs its bytes plus `cost`; past the hard limit the
  // session is closed.
  #unanswered(bytes: number, cost: number): void {
    if (!this.#accepting) return;
    this.#received(bytes);
    const now = Date.now();
    this.#charge(cost, now);
    if (this.#fraction(now) >= 1) this.#pushExcessive(null);
  }

  /**
   * Undefined while the session wants more input; otherwise a promise that settles when it does (or closes).
   * Listeners await it before each read, which is what bounds a pipelining client's backlog.
   */
  room(): Promise<void> | undefined {
    if (this.#closed) return undefined;
    if (!this.#accepting) return this.#closedPromise;
    if (this.#hasRoom()) return undefined;
    return this.#room ??= new Promise((resolve) => this.#roomResolve = resolve);
  }

  #hasRoom(): boolean {
    return this.#slots.length - this.#head < this.#limits.maxPendingMessages &&
      this.#outBytes + this.#heldBytes <= this.#limits.maxSend;
  }

  #wake(): void {
    if (this.#roomResolve && (this.#closed || !this.#accepting || this.#hasRoom())) {
      const resolve = this.#roomResolve;
      this.#room = this.#roomResolve = undefined;
      resolve();
    }
  }

  // --- parsing into calls ---------------------------------------------------------------------------------

  #receiveOne(payload: unknown): void {
    const req = parseRequest(payload, this.#jsonRpc2 ??= claimsJsonRpc2(payload));
    if ("invalid" in req) {
      this.#reject(req.id, req.invalid.code, req.invalid.message, ERROR_COST);
      return;
    }
    this.#noteVersionRequest(req);
    const slot = new Slot(1);
    this.#slots.push(slot);
    this.#enqueue(new Call(req, slot, -1));
  }

  #receiveBatch(items: unknown[]): void {
    if (items.length === 0) {
      this.#reject(null, INVALID_REQUEST, "batch is empty", ERROR_COST);
      return;
    }
    if (items.length > MAX_BATCH_ITEMS) {
      // Refused whole, and charged as if every item had been an error: a batch is not a way around costs.
      this.#reject(
        null,
        INVALID_REQUEST,
        `batch too large (${items.length} items, at most ${MAX_BATCH_ITEMS})`,
        ERROR_COST * Math.ceil(items.length / MAX_BATCH_ITEMS),
      );
      return;
    }
    const strict = this.#jsonRpc2 ??= claimsJsonRpc2(items);
    const slot = new Slot(items.length);
    slot.items = new Array(items.length).fill(null);
    slot.ids = new Array(items.length).fill(null);
    slot.methods = new Array(items.length).fill(undefined);
    const calls: Call[] = [];
    for (let i = 0; i < items.length; i++) {
      const req = parseRequest(items[i], strict);
      if ("invalid" in req) {
        const now = Date.now();
        this.errors++;
        this.#charge(ERROR_COST, now);
        // Invalid items never become calls, so the hard limit is checked here: a stream of all-invalid
        // batches would otherwise be answered for ever while its cost (and its IP group's) grew without bound.
        if (this.#fraction(now) >= 1) {
          this.#pushExcessive(null);
          return;
        }
        slot.items[i] = errorMessage(req.id, req.invalid.code, req.invalid.message);
        slot.ids[i] = req.id;
        slot.pending--;
        continue;
      }
      slot.ids[i] = req.id;
      slot.methods[i] = req.method;
      calls.push(new Call(req, slot, i));
    }
    this.#slots.push(slot);
    for (const call of calls) this.#noteVersionRequest(call.req);
    if (slot.pending === 0) {
      this.#completeBatch(slot);
      this.#flush();
      return;
    }
    for (const call of calls) this.#waiting.push(call);
    this.#pump();
  }

  /** A message that never becomes a call: answered at once (in order) with an error. */
  #reject(id: RequestId, code: number, message: string, cost: number): void {
    const now = Date.now();
    this.errors++;
    this.#charge(cost, now);
    if (this.#fraction(now) >= 1) {
      this.#pushExcessive(id);
      return;
    }
    const slot = new Slot(0);
    this.#slots.push(slot);
    this.#setText(slot, errorMessage(id, code, message));
    this.#flush();
  }

  #pushExcessive(id: RequestId): void {
    this.#logExcessive();
    const slot = new Slot(0);
    slot.closeAfter = true;
    this.#stopAccepting(true);
    this.#slots.push(slot);
    this.#setText(slot, errorMessage(id, EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"));
    this.#flush();
  }

  #logExcessive(): void {
    const now = Date.now();
    this.#deps.log.info(
      `session ${this.id} ${this.remoteAddress}: closing for excessive resource usage (cost ${
        Math.round(this.#throttleCost(now))
      }, COST_HARD_LIMIT ${this.#cost.hardLimit})`,
    );
  }

  #noteVersionRequest(req: Request): void {
    if (req.method === "server.version" && this.#versionState === VersionState.None) {
      this.#versionState = VersionState.Pending;
      this.#versionRequest = req;
      this.#versionDone = new Promise((resolve) => this.#versionResolve = resolve);
    }
  }

  #settleVersion(state: VersionState): void {
    this.#versionState = state;
    const resolve = this.#versionResolve;
    this.#versionResolve = undefined;
    resolve?.();
  }

  #stopAccepting(drop: boolean): void {
    this.#accepting = false;
    if (drop) this.#dropping = true;
    this.#wake();
  }

  // --- running calls ---------------------------------------------------------------------------------------

  #enqueue(call: Call): void {
    this.#waiting.push(call);
    this.#pump();
  }

  /** Starts waiting calls while the concurrency target allows; calls past the hard limit start at once. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#waitHead < this.#waiting.length) {
        const now = Date.now();
        const f = this.#fraction(now);
        const call = this.#waiting[this.#waitHead]!;
        if (call.done) {
          // Timed out while it waited (tick).
          this.#waiting[this.#waitHead++] = undefined;
          continue;
        }
        if (f < 1 && this.#active >= concurrencyTarget(f, this.#cost.initialConcurrent)) break;
        this.#waiting[this.#waitHead++] = undefined;
        this.#start(call, f);
      }
      if (this.#waitHead === this.#waiting.length) {
        this.#waiting.length = 0;
        this.#waitHead = 0;
      } else if (this.#waitHead >= 1024) {
        // A client that always keeps more calls waiting than may run would otherwise grow this without end.
        this.#waiting = this.#waiting.slice(this.#waitHead);
        this.#waitHead = 0;
      }
    } finally {
      this.#pumping = false;
    }
  }

  #start(call: Call, f: number): void {
    this.#active++;
    call.started = true;
    this.requests++;
    if (this.#dropping || this.#closed) {
      this.#finish(call, null);
      return;
    }
    if (f >= 1) {
      this.#logExcessive();
      this.errors++;
      call.closeAfter = true;
      this.#stopAccepting(true);
      this.#finish(
        call,
        call.req.id === null
          ? null
          : errorMessage(call.req.id, EXCESSIVE_RESOURCE_USAGE, "excessive resource usage"),
      );
      return;
    }
    this.#inflight.add(call);
    const sleep = f * this.#cost.requestSleepMs;
    if (sleep >= 1) {
      this.throttledRequests++;
      setTimeout(() => this.#run(call), sleep);
      return;
    }
    this.#run(call);
  }

  #run(call: Call): void {
    // Timed out while it slept (tick).
    if (call.done) return;
    if (this.#closed || this.#dropping) {
      this.#finish(call, null);
      return;
    }
    const out = this.#execute(call);
    if (out instanceof Promise) out.then((text) => this.#finish(call, text));
    else this.#finish(call, out);
  }

  #finish(call: Call, text: Message | null): void {
    if (call.done) return;
    call.done = true;
    this.#inflight.delete(call);
    if (call.parked) call.parked = false;
    else if (call.started) this.#active--;
    const slot = call.slot;
    if (call.closeAfter) slot.closeAfter = true;
    if (call.index < 0) {
      slot.pending = 0;
      this.#setText(slot, text);
    } else {
      slot.items![call.index] = text;
      if (--slot.pending === 0) this.#completeBatch(slot);
    }
    if (slot.pending === 0) this.#flush();
    this.#pump();
  }

  /** Runs one request; never throws. Returns the reply line (null for notifications) or a promise of it. */
  #execute(call: Call): Message | null | Promise<Message | null> {
    const req = call.req;
    const id = req.id;
    if (req.method === "server.version") return this.#serverVersion(call);
    if (this.#versionState !== VersionState.Done) {
      if (this.#versionState === VersionState.Pending) {
        return this.#afterVersion(call, () => this.#execute(call));
      }
      if (this.#versionState === VersionState.Failed) return null;
      call.closeAfter = true;
      this.#stopAccepting(true);
      this.#deps.log.info(
        `session ${this.id} ${this.remoteAddress}: ${describe(req.method)} before server.version`,
      );
      return this.#error(id, BAD_REQUEST, "use server.version to identify client");
    }
    if (req.method === "server.ping") {
      try {
        bindArgs(PING, req.params);
      } catch (e) {
        return this.#error(id, (e as RpcError).code, (e as RpcError).message);
      }
      this.#charge(PING_COST, Date.now());
      return id === null ? null : resultMessage(id, "null");
    }
    const m = this.#deps.methods.get(req.method);
    if (m === undefined || !methodInVersion(m, this.protocolTuple)) {
      return this.#error(id, METHOD_NOT_FOUND, `unknown method "${describe(req.method)}"`);
    }
    let args: unknown[];
    try {
      args = bindArgs(m, req.params);
    } catch (e) {
      m.spec.onErrorReply?.((e as RpcError).code, false);
      return this.#error(id, (e as RpcError).code, (e as RpcError).message);
    }
    this.#charge(m.spec.cost, Date.now());
    let result: unknown;
    try {
      result = m.spec.handler(this, args);
    } catch (e) {
      return this.#failure(id, req.method, e);
    }
    if (result instanceof Promise) {
      return result.then((r) => this.#reply(id, r, m.spec), (e) => this.#failure(id, req.method, e));
    }
    return this.#reply(id, result, m.spec);
  }

  #reply(id: RequestId, result: unknown, spec: MethodSpec): Message | null {
    if (id === null || this.#closed) return null;
    const maxSend = this.#limits.maxSend;
    if (result instanceof ByteJson) {
      let bytes: Uint8Array | undefined;
      try {
        bytes = resultMessageBytes(id, result, maxSend);
      } catch (e) {
        return this.#failure(id, "result serialization", e);
      }
      return bytes ?? this.#tooLarge(id, spec);
    }
    let json: string;
    try {
      json = result === undefined ? "null" : result instanceof RawJson ? result.json : JSON.stringify(result);
    } catch (e) {
      return this.#failure(id, "result serialization", e);
    }
    const text = resultMessage(id, json);
    if (text.length * 3 > maxSend && replyBytes(id, json, text, result) > maxSend) {
      return this.#tooLarge(id, spec);
    }
    return text;
  }

  #tooLarge(id: RequestId, spec: MethodSpec | undefined): string | null {
    spec?.onErrorReply?.(INVALID_REQUEST, true);
    return this.#error(id, INVALID_REQUEST, responseTooLargeMessage(this.#limits.maxSend));
  }

  /**
   * Runs `then` once version negotiation has settled. Meanwhile the call does not count as running: calls
   * parked ahead of server.version (e.g. earlier in its batch) must not use up the concurrency that
   * server.version itself needs to start.
   */
  #afterVersion(
    call: Call,
    then: () => Message | null | Promise<Message | null>,
  ): Promise<Message | null> {
    call.parked = true;
    this.#active--;
    this.#pump();
    return this.#versionDone!.then(() => {
      if (call.done) return null;
      call.parked = false;
      this.#active++;
      return this.#closed || this.#dropping ? null : then();
    });
  }

  #error(id: RequestId, code: number, message: string): string | null {
    this.errors++;
    this.#charge(ERROR_COST, Date.now());
    return id === null ? null : errorMessage(id, code, message);
  }

  #failure(id: RequestId, method: string, e: unknown): string | null {
    if (e instanceof RpcError) return this.#error(id, e.code, e.message);
    this.#deps.log.error(`session ${this.id}: ${method} failed: ${errorDetail(e)}`);
    return this.#error(id, INTERNAL_ERROR, "internal server error");
  }

  #serverVersion(call: Call): Message | null | Promise<Message | null> {
    const req = call.req;
    const id = req.id;
    this.#charge(VERSION_COST, Date.now());
    if (this.#versionState === VersionState.Pending && req !== this.#versionRequest) {
      // A second server.version that overtook the first (e.g. in a batch): answer once that one is done.
      return this.#afterVersion(call, () => this.#serverVersion(call));
    }
    if (this.#versionState === VersionState.Done || this.#versionState === VersionState.Failed) {
      return this.#error(id, BAD_REQUEST, "server.version already sent");
    }
    // 1.6 requires extra arguments to be ignored, so no bindArgs here.
    let clientName: unknown;
    let requested: unknown;
    if (Array.isArray(req.params)) {
      [clientName, requested] = req.params;
    } else {
      clientName = req.params.client_name;
      requested = req.params.protocol_version;
    }
    const negotiated = negotiateVersion(requested);
    if (negotiated === null) {
      call.closeAfter = true;
      this.#stopAccepting(true);
      this.#settleVersion(VersionState.Failed);
      this.#deps.log.info(
        `session ${this.id} ${this.remoteAddress}: unsupported protocol version ${describe(requested)}`,
      );
      return this.#error(id, BAD_REQUEST, `unsupported protocol version: ${describe(requested)}`);
    }
    this.client = clientName === undefined || clientName === null
      ? ""
      : String(typeof clientName === "string" ? clientName : describe(clientName)).slice(0, MAX_CLIENT_NAME);
    this.protocolVersion = negotiated.version;
    this.protocolTuple = negotiated.tuple;
    this.#settleVersion(VersionState.Done);
    return id === null
      ? null
      : resultMessage(id, JSON.stringify([this.#deps.serverVersion, negotiated.version]));
  }

  // --- output ----------------------------------------------------------------------------------------------

  #completeBatch(slot: Slot): void {
    const items = slot.items!;
    const ids = slot.ids!;
    const maxSend = this.#limits.maxSend;
    let chars = 2;
    for (const t of items) if (t !== null) chars += t.length + 1;
    const checkSize = chars * 3 > maxSend;
    const parts: Message[] = [];
    let bytes = 2;
    for (let i = 0; i < items.length; i++) {
      let t = items[i];
      if (t === null) continue;
      if (checkSize) {
        const len = (typeof t === "string" ? utf8Length(t) : t.length) + 1;
        if (bytes + len > maxSend) {
          // Items that no longer fit become errors, as ElectrumX does, so the client learns which ones.
          t = this.#tooLarge(ids[i], this.#deps.methods.get(slot.methods![i] ?? "")?.spec)!;
          bytes += t.length + 1;
        } else {
          bytes += len;
        }
      }
      parts.push(t);
    }
    slot.items = null;
    this.#setText(slot, parts.length === 0 ? null : batchMessage(parts));
  }

  /** Moves completed slots from the front of the queue to the output. */
  #flush(): void {
    const slots = this.#slots;
    while (this.#head < slots.length) {
      const slot = slots[this.#head]!;
      if (slot.pending > 0) break;
      slots[this.#head++] = undefined;
      if (slot.text !== null) {
        this.#heldBytes -= slot.text.length;
        this.#emit(slot.text);
      }
      if (this.#closed) return;
      if (slot.closeAfter) {
        // Nothing after this slot is sent: the session is going away.
        this.#closeAfterFlush = true;
        this.#slots = [];
        this.#head = 0;
        if (!this.#writing) this.close("disconnecting after error");
        return;
      }
    }
    if (this.#head === slots.length) {
      slots.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024) {
      this.#slots = slots.slice(this.#head);
      this.#head = 0;
    }
    this.#wake();
    this.#maybeFinishDrain();
  }

  /** Completes a slot's text; until flushed it counts as held output. */
  #setText(slot: Slot, text: Message | null): void {
    slot.text = text;
    if (text === null) return;
    this.#heldBytes += text.length;
    this.#checkQueued();
  }

  /** Closes a session whose queued output passed the bound: its peer is not reading (or asks for too much). */
  #checkQueued(): boolean {
    const queued = this.#outBytes + this.#heldBytes;
    if (queued <= this.#limits.maxQueuedBytes) return false;
    this.#deps.log.info(
      `session ${this.id} ${this.remoteAddress}: closing: peer is not reading its replies (${queued} bytes queued)`,
    );
    this.close("not reading");
    return true;
  }

  #emit(text: Message): void {
    if (this.#closed) return;
    this.#outParts.push(text);
    this.#outBytes += text.length;
    // Charged when queued, not when written: a peer that never reads would otherwise hold up to
    // 2 × MAX_SEND of replies at no cost (and, with its IP group, as many such sessions as it likes). Length in
    // UTF-16 units plus the newline: replies are JSON, almost always ASCII.
    this.#charge((text.length + 1) / this.#cost.bandwidthUnitCost, Date.now());
    if (this.#checkQueued()) return;
    if (!this.#writing) {
      this.#writing = true;
      // Deferred so that replies completed in the same turn go out in one write.
      RESOLVED.then(() => this.#writeLoop());
    }
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#outParts.length > 0 && !this.#closed) {
        const parts = this.#outParts;
        this.#outParts = [];
        let chars = 0;
        for (const p of parts) chars += p.length;
        this.#writeSince = Date.now();
        this.#writeChars = chars;
        const written = await this.#deps.transport.write(parts);
        this.#writeSince = 0;
        this.sendBytes += written;
        this.#outBytes -= chars;
        this.#wake();
      }
    } catch (e) {
      this.#writing = false;
      this.close(`write failed: ${errorDetail(e)}`);
      return;
    }
    this.#writing = false;
    if (this.#closeAfterFlush) this.close("disconnecting after error");
    else this.#maybeFinishDrain();
  }

  // --- timers, drain, close -------------------------------------------------------------------------------

  /**
   * Periodic housekeeping from the server: request timeouts, the idle timeout and the write timeout. Returns
   * why it closed the session, if it did.
   */
  tick(now: number): "idle" | "not reading" | undefined {
    if (this.#closed) return undefined;
    // A peer that takes far longer than SESSION_TIMEOUT over a write is not reading: keep-alives sent meanwhile
    // must not let it hold its queued replies for ever. A write is allowed SESSION_TIMEOUT plus its size at
    // MIN_READ_RATE, so that a slow but reading client (a poor mobile link, Tor) still gets a large reply.
    const allowed = this.#limits.sessionTimeoutMs + (this.#writeChars / MIN_READ_RATE) * 1000;
    if (this.#writeSince !== 0 && now - this.#writeSince > allowed) {
      this.#deps.log.info(
        `session ${this.id} ${this.remoteAddress}: closing: peer has not read for too long`,
      );
      this.close("not reading");
      return "not reading";
    }
    // A session waiting for our replies is not idle: REQUEST_TIMEOUT bounds that wait, and the write timeout
    // above the wait for a reply to be taken.
    if (
      now - this.lastRecvAt > this.#limits.sessionTimeoutMs && this.#head === this.#slots.length &&
      this.#writeSince === 0
    ) {
      this.#deps.log.debug(`session ${this.id} ${this.remoteAddress}: closing idle session`);
      this.close("idle");
      return "idle";
    }
    // Calls running, sleeping off throttling, or still waiting for a turn: each is answered REQUEST_TIMEOUT after
    // it arrived. A handler keeps running; whatever it returns later is ignored because the call is done.
    const timeout = this.#limits.requestTimeoutMs;
    const late: Call[] = [];
    for (const call of this.#inflight) if (now - call.arrivedAt >= timeout) late.push(call);
    for (let i = this.#waitHead; i < this.#waiting.length; i++) {
      const call = this.#waiting[i];
      // In arrival order: the first one still in time ends the search.
      if (call === undefined || call.done) continue;
      if (now - call.arrivedAt < timeout) break;
      late.push(call);
    }
    if (late.length === 0) return undefined;
    // No call may start until all of these are answered: one that is about to time out must not take a turn.
    const pumping = this.#pumping;
    this.#pumping = true;
    try {
      for (const call of late) {
        this.#deps.log.info(`session ${this.id}: ${describe(call.req.method)} timed out`);
        this.#finish(call, this.#error(call.req.id, SERVER_BUSY, "server busy - request timed out"));
      }
    } finally {
      this.#pumping = pumping;
    }
    this.#pump();
    return undefined;
  }

  /** Reply and notification bytes queued or held, not yet written. */
  get queuedBytes(): number {
    return this.#outBytes + this.#heldBytes;
  }

  /** How long the write in progress has waited for the peer (0 when none is in progress). */
  writeWaitMs(now: number): number {
    return this.#writeSince === 0 ? 0 : Math.max(0, now - this.#writeSince);
  }

  /** Stops taking messages, lets every received request be answered and written, then closes. */
  drain(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#draining = true;
    this.#stopAccepting(false);
    this.#maybeFinishDrain();
    return this.#closedPromise;
  }

  #maybeFinishDrain(): void {
    if (
      this.#draining && !this.#closed && this.#head === this.#slots.length &&
      this.#waitHead === this.#waiting.length &&
      this.#active === 0 && this.#outParts.length === 0 && !this.#writing
    ) {
      this.close("server shutting down");
    }
  }

  /** Resolves when the session has closed. */
  get done(): Promise<void> {
    return this.#closedPromise;
  }

  /** Closes the connection at once; queued output is discarded and pending handlers' results ignored. */
  close(reason = "closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#accepting = false;
    this.#dropping = true;
    const now = Date.now();
    try {
      this.#deps.transport.close();
    } catch {
      // Already closed by the peer.
    }
    if (this.#group) this.#deps.groups.leave(this.#group, this.#meter, now);
    this.#outParts = [];
    this.#outBytes = 0;
    this.#heldBytes = 0;
    this.#slots = [];
    this.#head = 0;
    this.#waiting = [];
    this.#waitHead = 0;
    this.#inflight.clear();
    this.#settleVersion(this.#versionState === VersionState.Done ? VersionState.Done : VersionState.Failed);
    this.#wake();
    this.#closedResolve();
    const callbacks = this.#closeCallbacks;
    this.#closeCallbacks = [];
    for (const fn of callbacks) this.#runCloseCallback(fn);
    this.#deps.log.debug(`session ${this.id} ${this.remoteAddress}: closed (${reason})`);
    this.#deps.onClosed?.(this);
  }

  #runCloseCallback(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#deps.log.error(`session ${this.id}: close callback failed: ${errorDetail(e)}`);
    }
  }

  // --- accounting -----------------------------------------------------------------------------------------

  /** Sets this session's cost decay for the subscriptions it holds (see sessionDecay). */
  updateDecay(subscriptions: number, now = Date.now()): void {
    this.#meter.setDecay(sessionDecay(this.#cost.hardLimit, subscriptions), now);
  }

  #charge(cost: number, now: number): void {
    this.#meter.add(cost, now);
    this.#group?.charged(cost);
  }

  #throttleCost(now: number): number {
    const own = this.#meter.value(now);
    return this.#group ? Math.max(own, this.#group.total(now)) : own;
  }

  #fraction(now: number): number {
    return throttleFraction(this.#throttleCost(now), this.#cost.softLimit, this.#cost.hardLimit);
  }

  /** A snapshot for reports. */
  info(now = Date.now()): SessionInfo {
    const f = this.#fraction(now);
    return {
      id: this.id,
      protocol: this.protocol,
      remoteAddress: this.remoteAddress,
      client: this.client,
      protocolVersion: this.protocolVersion,
      cost: this.#meter.value(now),
      throttleCost: this.#throttleCost(now),
      throttleFraction: f,
      concurrency: concurrencyTarget(f, this.#cost.initialConcurrent),
      group: this.#group?.key,
      requests: this.requests,
      errors: this.errors,
      throttledRequests: this.throttledRequests,
      recvBytes: this.recvBytes,
      sendBytes: this.sendBytes,
      pendingMessages: this.#slots.length - this.#head,
      queuedBytes: this.#outBytes + this.#heldBytes,
      startedAt: this.startedAt,
      lastRecvAt: this.lastRecvAt,
    };
  }
}

// The UTF-8 size of a reply line: an ASCII RawJson result counts by its length, only the id is scanned.
function replyBytes(id: RequestId, json: string, text: string, result: unknown): number {
  if (result instanceof RawJson && result.ascii) return json.length + utf8Length(resultMessage(id, ""));
  return utf8Length(text);
}
