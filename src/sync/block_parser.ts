// Turning raw blocks into block records, on this thread or in a Worker. The processor calls `forEach` with the
// blocks of one advance() and applies each record as it becomes available, in order. With a Worker, up to
// `slots` blocks are parsed ahead while the main thread applies: on a 2-core machine parsing and hashing (a
// third of the indexer's CPU) then runs beside applying and flushing instead of before it. advance() is
// synchronous, so the main thread waits for a record with Atomics.wait rather than a promise.
import { ChainFormatError } from "../chain/errors.ts";
import { encodeBlockRecord } from "./block_record.ts";

/** Slot states (Int32 words in shared memory). */
export const SLOT_FREE = 0;
/** The worker owns the slot. */
export const SLOT_WORKING = 1;
/** The slot holds a record. */
export const SLOT_DONE = 2;
/** The record did not fit the slot: parse that block on this thread. */
export const SLOT_TOO_BIG = 3;
/** The slot holds a failure (see writeFailure). */
export const SLOT_FAILED = 4;

/** The first message to the worker: the shared memory. */
export interface ParserInit {
  type: "init";
  control: SharedArrayBuffer;
  busy: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  slotBytes: number;
}

/** One block to parse into `slot`. */
export interface ParseJob {
  type: "job";
  slot: number;
  raw: Uint8Array;
}

/** A parse failure as it crosses threads. */
export interface ParseFailure {
  code: string;
  message: string;
  offset?: number;
}

/** Index of a slot's state word in the control array (word 0 is the worker's ready flag). */
export function slotState(slot: number): number {
  return 1 + slot;
}

/** Writes a failure into a slot: u32 length, then JSON. */
export function writeFailure(slots: Uint8Array, base: number, room: number, f: ParseFailure): void {
  const bytes = new TextEncoder().encode(JSON.stringify(f)).subarray(0, Math.max(0, room - 4));
  const n = bytes.length;
  slots[base] = n;
  slots[base + 1] = n >>> 8;
  slots[base + 2] = n >>> 16;
  slots[base + 3] = n >>> 24;
  slots.set(bytes, base + 4);
}

function readFailure(slots: Uint8Array, base: number): ParseFailure {
  const n = (slots[base] | (slots[base + 1] << 8) | (slots[base + 2] << 16) | (slots[base + 3] << 24)) >>> 0;
  // Copied out of shared memory: TextDecoder does not read SharedArrayBuffer views.
  return JSON.parse(new TextDecoder().decode(slots.slice(base + 4, base + 4 + n)));
}

/** The parse worker stopped answering or could not start. */
export class ParserError extends Error {
  override name = "ParserError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Receives record `index` of a forEach call; the record is valid only during the call. */
export type ApplyRecord = (index: number, record: Uint8Array, off: number) => void;

/** Parses blocks into records and hands them over in order. */
export interface BlockParser {
  /** Parses `raws` and calls `apply` for each record in order; throws at the first block that does not parse. */
  forEach(raws: readonly Uint8Array[], apply: ApplyRecord): void;
  /** Milliseconds this thread spent parsing or waiting for parsed records. */
  readonly waitMs: number;
  /** Milliseconds a worker spent parsing (0 without one). */
  readonly workerMs: number;
  /** Resolves once parsing can start: true when a worker runs it, false when it stays on this thread. */
  ready(): Promise<boolean>;
  /** Stops the worker, if any. */
  close(): void;
}

/** Parses on the calling thread. */
export class InlineParser implements BlockParser {
  private buf = new Uint8Array(1 << 16);
  waitMs = 0;
  readonly workerMs = 0;

  forEach(raws: readonly Uint8Array[], apply: ApplyRecord): void {
    for (let i = 0; i < raws.length; i++) {
      const started = performance.now();
      const off = this.encode(raws[i]);
      this.waitMs += performance.now() - started;
      apply(i, this.buf, off);
    }
  }

  /** Encodes one block into the scratch buffer (grown as needed); returns the record's offset. */
  encode(raw: Uint8Array): number {
    // Give back the room a rare huge block needed; its record has been applied by now.
    if (this.buf.length > 1 << 24) this.buf = new Uint8Array(1 << 16);
    const n = encodeBlockRecord(raw, this.buf, 0, this.buf.length);
    if (n < 0) {
      this.buf = new Uint8Array(Math.max(-n, this.buf.length * 2));
      encodeBlockRecord(raw, this.buf, 0, this.buf.length);
    }
    return 0;
  }

  ready(): Promise<boolean> {
    return Promise.resolve(false);
  }

  close(): void {}
}

/** Options of WorkerParser. */
export interface WorkerParserOptions {
  /** Blocks parsed ahead (default 8). */
  slots?: number;
  /** Room per record (default 2 MiB; bigger records are parsed on this thread). */
  slotBytes?: number;
  /** Longest wait for one record before the worker is declared stuck (default 60 s). */
  timeoutMs?: number;
  /** The worker's module (tests); default parse_worker.ts. */
  moduleUrl?: URL;
  /** Told once when the worker cannot run (e.g. no read permission for its module) and parsing stays here. */
  warn?: (message: string) => void;
}

/** Parses in a Worker, `slots` blocks ahead of the caller. Call close() when done, or the process stays up. */
export class WorkerParser implements BlockParser {
  private readonly worker: Worker;
  private readonly control: Int32Array;
  private readonly busy: Float64Array;
  private readonly slots: Uint8Array;
  private readonly slotCount: number;
  private readonly slotBytes: number;
  private readonly timeoutMs: number;
  private readonly inline = new InlineParser();
  private readonly started: Promise<boolean>;
  private failure: string | undefined;
  private closed = false;
  waitMs = 0;
  /** Blocks whose record did not fit a slot and were parsed on this thread. */
  inlineFallbacks = 0;

  constructor(opts: WorkerParserOptions = {}) {
    this.slotCount = opts.slots ?? 8;
    this.slotBytes = opts.slotBytes ?? 2 << 20;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    const control = new SharedArrayBuffer(4 * (1 + this.slotCount));
    const busy = new SharedArrayBuffer(8);
    const slots = new SharedArrayBuffer(this.slotCount * this.slotBytes);
    this.control = new Int32Array(control);
    this.busy = new Float64Array(busy);
    this.slots = new Uint8Array(slots);
    this.worker = new Worker(opts.moduleUrl ?? new URL("./parse_worker.ts", import.meta.url), {
      type: "module",
    });
    const started = Promise.withResolvers<boolean>();
    this.started = started.promise;
    this.worker.onmessage = () => started.resolve(true);
    // A worker that cannot load (typically: no read permission for its modules) must not take the process
    // down: parsing stays on this thread.
    this.worker.onerror = (e) => {
      e.preventDefault();
      if (this.failure === undefined) {
        this.failure = String(e.message).split("\n")[0];
        opts.warn?.(`the parse worker cannot run (${this.failure}); parsing blocks on the main thread`);
      }
      started.resolve(false);
    };
    const init: ParserInit = { type: "init", control, busy, slots, slotBytes: this.slotBytes };
    this.worker.postMessage(init);
  }

  ready(): Promise<boolean> {
    return this.started;
  }

  get workerMs(): number {
    return this.busy[0];
  }

  forEach(raws: readonly Uint8Array[], apply: ApplyRecord): void {
    if (this.closed) throw new ParserError("parser-closed", "the block parser was closed");
    // Until the worker has started (or if it never does), parse here rather than block on it.
    if (this.failure !== undefined || Atomics.load(this.control, 0) === 0) {
      const before = this.inline.waitMs;
      try {
        this.inline.forEach(raws, apply);
      } finally {
        this.waitMs += this.inline.waitMs - before;
      }
      return;
    }
    const started = performance.now();
    this.drain();
    const n = raws.length, slots = this.slotCount;
    let next = 0;
    while (next < n && next < slots) this.submit(raws[next], next++);
    this.waitMs += performance.now() - started;
    for (let i = 0; i < n; i++) {
      const slot = i % slots;
      const waitFrom = performance.now();
      const state = this.await(slot);
      const base = slot * this.slotBytes;
      if (state === SLOT_FAILED) {
        const f = readFailure(this.slots, base);
        Atomics.store(this.control, slotState(slot), SLOT_FREE);
        this.waitMs += performance.now() - waitFrom;
        throw new ChainFormatError(f.code, f.message, f.offset ?? 0);
      }
      if (state === SLOT_TOO_BIG) {
        Atomics.store(this.control, slotState(slot), SLOT_FREE);
        if (next < n) this.submit(raws[next], next++);
        this.inlineFallbacks++;
        this.inline.forEach([raws[i]], (_, rec, off) => {
          this.waitMs += performance.now() - waitFrom;
          apply(i, rec, off);
        });
        continue;
      }
      this.waitMs += performance.now() - waitFrom;
      apply(i, this.slots, base);
      Atomics.store(this.control, slotState(slot), SLOT_FREE);
      if (next < n) this.submit(raws[next], next++);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.terminate();
  }

  private submit(raw: Uint8Array, index: number): void {
    const slot = index % this.slotCount;
    Atomics.store(this.control, slotState(slot), SLOT_WORKING);
    // A view into a bigger buffer would be cloned whole; send only its bytes.
    const whole = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength;
    const job: ParseJob = { type: "job", slot, raw: whole ? raw : raw.slice() };
    this.worker.postMessage(job);
  }

  // Waits while the slot is WORKING; returns its new state.
  private await(slot: number): number {
    const word = slotState(slot);
    while (Atomics.load(this.control, word) === SLOT_WORKING) {
      if (Atomics.wait(this.control, word, SLOT_WORKING, this.timeoutMs) === "timed-out") {
        throw new ParserError(
          "parse-worker-stuck",
          `the parse worker produced nothing for ${this.timeoutMs} ms; restart Coulomb`,
        );
      }
    }
    return Atomics.load(this.control, word);
  }

  // Jobs of an earlier call that stopped early (an apply threw) may still be running: let them finish first.
  private drain(): void {
    for (let s = 0; s < this.slotCount; s++) {
      if (Atomics.load(this.control, slotState(s)) === SLOT_WORKING) this.await(s);
      Atomics.store(this.control, slotState(s), SLOT_FREE);
    }
  }
}
