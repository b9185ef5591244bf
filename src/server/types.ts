/**
 * The contract between the transport layer (rpc.ts, session.ts, listeners.ts) and the protocol
 * methods (methods.ts). Method handlers see only these types, never sockets or framing.
 */
import { utf8Length } from "./utf8_length.ts";

const ENCODER = new TextEncoder();

/** JSON-RPC error code for bad argument values, out-of-range requests, rejected txs, negotiation errors. */
export const BAD_REQUEST = 1;
/** JSON-RPC error code for errors that bitcoind returned. */
export const DAEMON_ERROR = 2;

/** An error a handler throws to answer with this JSON-RPC code and message (the session stays open). */
export class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "RpcError";
  }
}

/**
 * A handler result that is already JSON text: the session sends it as it is. For big results built straight
 * from packed rows (histories, UTXO lists), where an object per entry and JSON.stringify would cost more than
 * the rest of the request.
 */
export class RawJson {
  /**
   * `ascii` promises that every character of `json` is below U+0080 (hex, numbers, fixed keys), so its UTF-8
   * size is its length and the session need not scan megabytes of text to check MAX_SEND.
   */
  constructor(readonly json: string, readonly ascii = false) {}

  /** The value it stands for, so that JSON.stringify of a result containing it still writes the same JSON. */
  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

/** A piece of a ByteJson that writes itself into the reply's buffer, so that a big result is written once. */
export interface JsonWriter {
  /** Its UTF-8 size. */
  readonly byteLength: number;
  /** Writes its `byteLength` bytes into `out` from `at`. */
  writeTo(out: Uint8Array, at: number): void;
}

/** A writer's bytes in a buffer of their own, exactly as long. */
export function jsonBytes(writer: JsonWriter): Uint8Array {
  const out = new Uint8Array(writer.byteLength);
  writer.writeTo(out, 0);
  return out;
}

/**
 * A large handler result already in UTF-8 JSON, in pieces (its text is their concatenation). The session writes
 * it into one reply buffer, which goes to the socket thread without a copy: a multi-megabyte history as a string
 * was decoded, flattened, copied between threads and encoded again, a third of its first call's time.
 */
export class ByteJson implements JsonWriter {
  /** Its UTF-8 size. */
  readonly byteLength: number;

  constructor(readonly parts: readonly (string | Uint8Array | JsonWriter)[]) {
    let n = 0;
    for (const p of parts) n += typeof p === "string" ? utf8Length(p) : p.byteLength;
    this.byteLength = n;
  }

  /** Writes its bytes into `out` from `at`. */
  writeTo(out: Uint8Array, at: number): void {
    for (const p of this.parts) {
      if (typeof p === "string") {
        at += ENCODER.encodeInto(p, out.subarray(at)).written;
      } else if (p instanceof Uint8Array) {
        out.set(p, at);
        at += p.length;
      } else {
        p.writeTo(out, at);
        at += p.byteLength;
      }
    }
  }

  /** The value it stands for, so that JSON.stringify of a result containing it still writes the same JSON. */
  toJSON(): unknown {
    return JSON.parse(new TextDecoder().decode(jsonBytes(this)));
  }
}

/** What a method handler sees of its session. */
export interface SessionContext {
  readonly id: number;
  /** "ip:port" of the peer. */
  readonly remoteAddress: string;
  /** Negotiated protocol version, e.g. "1.6". */
  readonly protocolVersion: string;
  /** The negotiated version as integers, e.g. [1, 6] or [1, 4, 2]; compare with versionAtLeast(). */
  readonly protocolTuple: readonly number[];
  /** Charge cost beyond the method's base cost. */
  addCost(cost: number): void;
  /** Queue a notification; it goes out in order with replies and never after close. */
  notify(method: string, params: unknown[]): void;
  /** Run fn when the session closes (subscriptions clean up here). */
  onClose(fn: () => void): void;
  readonly closed: boolean;
}

/** One protocol method: its parameters, version range, base cost and handler. */
export interface MethodSpec {
  /** Positional parameter names as in protocol.md §5 (named params use them); "?name" = optional. */
  params: string[];
  /** First protocol version that has the method, e.g. "1.6" for broadcast_package. */
  minVersion?: string;
  /** Last protocol version that has the method, e.g. "1.5.99" for relayfee (gone in 1.6). */
  maxVersion?: string;
  /** Base cost charged per call (aiorpcX units, protocol.md §7). */
  cost: number;
  /** Computes the result; missing optional arguments are undefined. */
  handler(ctx: SessionContext, args: unknown[]): unknown | Promise<unknown>;
  /**
   * Told of an error reply the session made for a call of this method outside the handler: its arguments did
   * not bind (`ran` false, the handler never ran) or its result was over MAX_SEND (`ran` true). Metrics count
   * them with the handler's own errors.
   */
  onErrorReply?(code: number, ran: boolean): void;
}

/** Every method the server answers besides server.version and server.ping, by name. */
export type MethodTable = ReadonlyMap<string, MethodSpec>;

/** True when version tuple v is at least min, comparing as integer tuples ([1,4] < [1,4,2] < [1,6]). */
export function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  const n = Math.max(v.length, min.length);
  for (let i = 0; i < n; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

/** Parses a dotted version string with at least one dot ("1.4", "1.4.2") into integers; null if malformed. */
export function parseVersion(s: string): number[] | null {
  if (typeof s !== "string" || !/^\d{1,9}(\.\d{1,9})+$/.test(s)) return null;
  return s.split(".").map(Number);
}
