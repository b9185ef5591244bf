// JSON-RPC 2.0 as Electrum speaks it (protocol.md §2, §3, §6): request validation, reply text, parameter
// binding with ElectrumX's messages and version negotiation. Pure: no sockets, no clocks, so each piece is
// testable alone and the session's hot path stays allocation-light.
import { formatCount } from "../log.ts";
import {
  ByteJson,
  jsonBytes,
  type MethodSpec,
  type MethodTable,
  parseVersion,
  RpcError,
  versionAtLeast,
} from "./types.ts";

/** Unparsable JSON or bytes that are not UTF-8. */
export const PARSE_ERROR = -32700;
/** Not a valid request object (bad id, no method, empty batch, response too large). */
export const INVALID_REQUEST = -32600;
/** Unknown method, or one the negotiated protocol version does not have. */
export const METHOD_NOT_FOUND = -32601;
/** Wrong number or names of parameters. */
export const INVALID_PARAMS = -32602;
/** An unexpected failure inside the server. */
export const INTERNAL_ERROR = -32603;
/** The session exceeded COST_HARD_LIMIT; it is closed after this reply. */
export const EXCESSIVE_RESOURCE_USAGE = -101;
/** A request ran longer than REQUEST_TIMEOUT. */
export const SERVER_BUSY = -102;

/** Most items one batch may hold; larger batches are refused whole (each item still costs, see limits.ts). */
export const MAX_BATCH_ITEMS = 1000;

/** A JSON-RPC id as Electrum uses it; null marks a notification (no reply). */
export type RequestId = number | string | null;

/** A structurally valid request. */
export interface Request {
  readonly id: RequestId;
  readonly method: string;
  /** Positional or named parameters; a missing `params` is []. */
  readonly params: unknown[] | Record<string, unknown>;
}

/** A message that is not a valid request: answered with `error`, under `id` when it had a usable one. */
export interface InvalidRequest {
  readonly invalid: RpcError;
  readonly id: RequestId;
}

/**
 * Whether a session's first message claims JSON-RPC 2.0 (for a batch, its first item): such a session must
 * obey 2.0 fully, one that does not is tolerated as 1.0 (protocol.md §2, aiorpcX's auto-detection).
 */
export function claimsJsonRpc2(first: unknown): boolean {
  const msg = Array.isArray(first) ? first[0] : first;
  return typeof msg === "object" && msg !== null && (msg as Record<string, unknown>).jsonrpc === "2.0";
}

/**
 * Validates one decoded JSON value as a request (id number/string/null, method string, params array/object).
 * `strict` (a 2.0 session, see claimsJsonRpc2): "jsonrpc" must be "2.0"; otherwise it may also be "1.0" or
 * absent.
 */
export function parseRequest(payload: unknown, strict: boolean): Request | InvalidRequest {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return invalid(INVALID_REQUEST, "request object must be a dictionary", null);
  }
  const msg = payload as Record<string, unknown>;
  const rawId = msg.id;
  let id: RequestId = null;
  if (rawId !== undefined && rawId !== null) {
    if (typeof rawId !== "number" && typeof rawId !== "string") {
      return invalid(INVALID_REQUEST, `invalid "id": ${describe(rawId)}`, null);
    }
    // 1e400 parses as Infinity, which no reply can echo: answering a result under id null would leave the
    // client with a reply it cannot match, so it is refused like any other id that cannot be used.
    if (typeof rawId === "number" && !Number.isFinite(rawId)) {
      return invalid(INVALID_REQUEST, `invalid "id": a number too large to echo back`, null);
    }
    id = rawId;
  }
  const version = msg.jsonrpc;
  if (strict ? version !== "2.0" : version !== undefined && version !== "2.0" && version !== "1.0") {
    return invalid(
      INVALID_REQUEST,
      strict ? '"jsonrpc" is not "2.0"' : '"jsonrpc" is neither "2.0" nor "1.0"',
      id,
    );
  }
  const method = msg.method;
  if (typeof method !== "string") return invalid(INVALID_REQUEST, 'request has no "method" string', id);
  const params = msg.params;
  if (params === undefined) return { id, method, params: [] };
  if (typeof params !== "object" || params === null) {
    return invalid(INVALID_PARAMS, `invalid request arguments: ${describe(params)}`, id);
  }
  return { id, method, params: params as unknown[] | Record<string, unknown> };
}

function invalid(code: number, message: string, id: RequestId): InvalidRequest {
  return { invalid: new RpcError(code, message), id };
}

/** A short, single-line rendering of a client-supplied value for an error message. */
export function describe(value: unknown): string {
  let s: string;
  try {
    s = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** The reply line for a successful request. `resultJson` is the already-serialized result. */
export function resultMessage(id: RequestId, resultJson: string): string {
  return `{"jsonrpc":"2.0","result":${resultJson},"id":${idJson(id)}}`;
}

/**
 * One outgoing message: its text, or its UTF-8 bytes in a buffer of its own (large results, see ByteJson), which
 * the transport may take over (a socket thread's transport transfers the buffer).
 */
export type Message = string | Uint8Array;

/**
 * resultMessage as UTF-8, for a result in bytes, in a buffer of its own (it can be transferred); undefined
 * rather than a reply longer than `maxBytes`.
 */
export function resultMessageBytes(
  id: RequestId,
  result: ByteJson,
  maxBytes: number,
): Uint8Array | undefined {
  const reply = new ByteJson(['{"jsonrpc":"2.0","result":', result, `,"id":${idJson(id)}}`]);
  return reply.byteLength > maxBytes ? undefined : jsonBytes(reply);
}

/** A batch's reply: its items' replies in a JSON array (as bytes if any of them is). */
export function batchMessage(items: readonly Message[]): Message {
  if (items.every((m) => typeof m === "string")) return `[${items.join(",")}]`;
  return jsonBytes(new ByteJson(["[", ...items.flatMap((m, i) => i === 0 ? [m] : [",", m]), "]"]));
}

/** The reply line for a failed request. */
export function errorMessage(id: RequestId, code: number, message: string): string {
  return `{"jsonrpc":"2.0","error":{"code":${code},"message":${JSON.stringify(message)}},"id":${idJson(id)}}`;
}

/** A server→client notification line. */
export function notificationMessage(method: string, params: unknown[]): string {
  return `{"jsonrpc":"2.0","method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`;
}

function idJson(id: RequestId): string {
  return typeof id === "number" ? (Number.isFinite(id) ? String(id) : "null") : JSON.stringify(id);
}

/** ElectrumX's text for a reply over MAX_SEND (sic: no closing parenthesis, as clients match it). */
export function responseTooLargeMessage(maxSend: number): string {
  return `response too large (over ${formatCount(maxSend)} bytes`;
}

// --- methods and parameters ------------------------------------------------------------------------------

/** A MethodSpec with its version bounds and parameter names parsed once at start-up. */
export interface PreparedMethod {
  readonly name: string;
  readonly spec: MethodSpec;
  readonly min: readonly number[] | undefined;
  readonly max: readonly number[] | undefined;
  /** Parameter names without the "?" marker. */
  readonly names: readonly string[];
  readonly required: number;
}

/** Parses every spec's versions and parameters; throws on a malformed table (a programming error). */
export function prepareMethods(table: MethodTable): Map<string, PreparedMethod> {
  const out = new Map<string, PreparedMethod>();
  for (const [name, spec] of table) {
    const version = (v: string | undefined, what: string) => {
      if (v === undefined) return undefined;
      const t = parseVersion(v);
      if (!t) throw new Error(`method ${name}: ${what} '${v}' is not a dotted version`);
      return t;
    };
    let required = 0;
    let optionalSeen = false;
    const names = spec.params.map((p) => {
      const optional = p.startsWith("?");
      if (!optional && optionalSeen) throw new Error(`method ${name}: required '${p}' after an optional`);
      optionalSeen ||= optional;
      if (!optional) required++;
      return optional ? p.slice(1) : p;
    });
    out.set(name, {
      name,
      spec,
      min: version(spec.minVersion, "minVersion"),
      max: version(spec.maxVersion, "maxVersion"),
      names,
      required,
    });
  }
  return out;
}

/** True when the method exists in protocol version `v`. */
export function methodInVersion(m: PreparedMethod, v: readonly number[]): boolean {
  return (m.min === undefined || versionAtLeast(v, m.min)) &&
    (m.max === undefined || versionAtLeast(m.max, v));
}

/**
 * Turns positional or named params into the handler's argument array (length = number of declared params,
 * missing optionals undefined). Throws RpcError(INVALID_PARAMS) with ElectrumX's wording.
 */
export function bindArgs(m: PreparedMethod, params: unknown[] | Record<string, unknown>): unknown[] {
  const method = m.name;
  const n = m.names.length;
  if (Array.isArray(params)) {
    const len = params.length;
    if (len < m.required) {
      throw new RpcError(
        INVALID_PARAMS,
        `${len} argument${len === 1 ? "" : "s"} passed to method "${method}" but it requires ${m.required}`,
      );
    }
    if (len > n) {
      throw new RpcError(
        INVALID_PARAMS,
        `${len} argument${len === 1 ? "" : "s"} passed to method ${method} taking at most ${n}`,
      );
    }
    if (len === n) return params;
    const args = params.slice();
    while (args.length < n) args.push(undefined);
    return args;
  }
  const missing: string[] = [];
  for (let i = 0; i < m.required; i++) if (!Object.hasOwn(params, m.names[i])) missing.push(m.names[i]);
  if (missing.length) {
    throw new RpcError(
      INVALID_PARAMS,
      `method "${method}" requires parameter${missing.length === 1 ? "" : "s"} ${quoteSorted(missing)}`,
    );
  }
  const excess = Object.keys(params).filter((k) => !m.names.includes(k));
  if (excess.length) {
    throw new RpcError(
      INVALID_PARAMS,
      `method "${method}" does not take parameter${excess.length === 1 ? "" : "s"} ${quoteSorted(excess)}`,
    );
  }
  return m.names.map((name) => params[name]);
}

function quoteSorted(names: string[]): string {
  return names.toSorted().map((n) => `"${n}"`).join(", ");
}

// --- version negotiation -------------------------------------------------------------------------------

/**
 * The protocol versions that define something, oldest first; a client may also name a version between them
 * (see negotiateVersion). 1.5 was skipped by the protocol. 1.4.3 only added a Namecoin method, so for Bitcoin it
 * is 1.4.2 under another name; ElectrumX negotiates it, and so do we.
 */
export const PROTOCOL_VERSIONS: readonly string[] = ["1.4", "1.4.1", "1.4.2", "1.4.3", "1.6"];
/** The oldest protocol version served. */
export const PROTOCOL_MIN = PROTOCOL_VERSIONS[0];
/** The newest protocol version served. */
export const PROTOCOL_MAX = PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.length - 1];

/** A negotiated protocol version. */
export interface Negotiated {
  readonly version: string;
  readonly tuple: readonly number[];
}

/**
 * Negotiates server.version's `protocol_version` (a string, a [min, max] pair, or undefined/null for the server's
 * minimum) by protocol.md's rule: the lower of the two maxima, if it is not below either minimum, echoed as
 * computed ("1.4.9" from a client whose newest is 1.4.9 speaks 1.4.3's methods under that name, as ElectrumX
 * answers); null when there is none. 1.5 was never defined, so a maximum in 1.5.x becomes the newest 1.4
 * version. Like ElectrumX, a malformed version counts as 0: a bad maximum is unsupported, a bad minimum no
 * constraint.
 */
export function negotiateVersion(requested: unknown): Negotiated | null {
  const serverMin = parseVersion(PROTOCOL_MIN)!;
  const serverMax = parseVersion(PROTOCOL_MAX)!;
  let clientMin: readonly number[];
  let clientMax: readonly number[];
  if (requested === undefined || requested === null) {
    clientMin = clientMax = serverMin;
  } else if (Array.isArray(requested) && requested.length === 2) {
    clientMin = versionOrZero(requested[0]);
    clientMax = versionOrZero(requested[1]);
  } else {
    clientMin = clientMax = versionOrZero(requested);
  }
  let tuple = versionAtLeast(clientMax, serverMax) ? serverMax : clientMax;
  if (versionAtLeast(tuple, V1_5) && !versionAtLeast(tuple, V1_6)) tuple = parseVersion(NEWEST_1_4)!;
  if (!versionAtLeast(tuple, clientMin) || !versionAtLeast(tuple, serverMin)) return null;
  return { version: tuple.join("."), tuple };
}

const V1_5 = [1, 5];
const V1_6 = [1, 6];
const NEWEST_1_4 = PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.length - 2];

function versionOrZero(v: unknown): readonly number[] {
  return (typeof v === "string" ? parseVersion(v) : null) ?? [0];
}
