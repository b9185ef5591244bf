// The admin RPC listener (the rpc:// service of SERVICES): newline-delimited JSON-RPC 2.0, as ElectrumX's
// LocalRPC speaks it, so `coulomb rpc` and scripts written for electrumx_rpc's wire format both work. Requests
// on one connection are answered one after another, in order. Anyone who can connect can stop the server, so
// the default address is loopback and a non-loopback one is warned about.
import type { Log } from "../log.ts";
import { hostPort } from "../host_port.ts";
import { errorDetail, errorText } from "../error_text.ts";
import { closeQuietly, serveConnections } from "../accept_loop.ts";
import { withoutControls } from "./format.ts";

/** JSON-RPC 2.0's reserved error codes. */
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** A command refused its arguments or could not do what was asked (ElectrumX's RPCError code 1). */
export const COMMAND_FAILED = 1;

/** Longest request line accepted; larger ones are refused and the connection closed. */
export const MAX_REQUEST_BYTES = 1_000_000;
/** Admin connections open at once; more are closed on accept. */
export const MAX_CONNECTIONS = 32;
/**
 * How long a connection may leave us waiting for (the rest of) a request before it is closed: 32 connections
 * that never finish a line would otherwise lock the operator out. Commands may run longer; only reading counts.
 */
export const READ_TIMEOUT_MS = 10_000;

/** An error a command throws to answer with this code and message. */
export class AdminError extends Error {
  override name = "AdminError";
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** One admin command. */
export interface AdminCommand {
  /** Parameter names, for named parameters: "?x" optional, "...x" collects the remaining positional ones. */
  readonly params: readonly string[];
  /** One line for `coulomb rpc help`. */
  readonly help: string;
  /** Does the work; throws AdminError for a failure the operator should see. */
  run(args: unknown[]): unknown | Promise<unknown>;
}

/** The command table, by name. */
export type AdminCommands = ReadonlyMap<string, AdminCommand>;

/** What startAdminServer needs. */
export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly commands: AdminCommands;
  readonly log: Log;
  /** See READ_TIMEOUT_MS (tests shorten it). */
  readonly readTimeoutMs?: number;
}

/** A running admin listener. */
export interface AdminServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number };
  /** Stops accepting and closes every admin connection. */
  close(): Promise<void>;
}

type Id = string | number | null;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8", { fatal: true });

/** Binds the admin RPC on host:port and serves `commands`; throws if the address cannot be bound. */
export function startAdminServer(opts: AdminServerOptions): AdminServer {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: opts.host, port: opts.port, transport: "tcp" });
  } catch (e) {
    throw new Error(`cannot listen for admin RPC on ${hostPort(opts.host, opts.port)}: ${errorText(e)}`);
  }
  const addr = listener.addr as Deno.NetAddr;
  const address = { host: addr.hostname, port: addr.port };
  opts.log.info(`admin RPC listening on ${hostPort(address.host, address.port)}`);
  if (!isLoopback(opts.host)) {
    opts.log.warn(
      `admin RPC listens on ${opts.host}, not loopback: anyone who can reach it can disconnect clients and ` +
        "stop Coulomb; firewall it or use rpc://127.0.0.1:8000",
    );
  }
  const connections = serveConnections(listener, {
    maxConnections: MAX_CONNECTIONS,
    serve: (conn) => serveConnection(conn, opts),
    onAcceptError: (e) => opts.log.warn(`admin RPC: accepting failed: ${errorText(e)}`),
    onRefused: () => opts.log.warn(`admin RPC: refused a connection: ${MAX_CONNECTIONS} are open`),
  });

  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= connections.close();
      return closing;
    },
  };
}

async function serveConnection(conn: Deno.Conn, opts: AdminServerOptions): Promise<void> {
  const buf = new Uint8Array(65536);
  let pending: Uint8Array = new Uint8Array(0);
  const timeoutMs = opts.readTimeoutMs ?? READ_TIMEOUT_MS;
  // A reply the client does not take within the timeout holds its slot no longer than a line it never finishes.
  const writeAll = async (text: string) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      closeQuietly(conn);
    }, timeoutMs);
    try {
      return await writeText(conn, text);
    } finally {
      clearTimeout(timer);
      if (late) {
        opts.log.info(`admin RPC: closed a connection that did not take its reply in ${timeoutMs} ms`);
      }
    }
  };
  for (;;) {
    let n: number | null;
    const timer = setTimeout(() => closeQuietly(conn), timeoutMs);
    try {
      n = await conn.read(buf);
    } catch {
      return;
    } finally {
      clearTimeout(timer);
    }
    if (n === null) return;
    pending = concat(pending, buf.subarray(0, n));
    let start = 0;
    for (let nl = pending.indexOf(10, start); nl >= 0; nl = pending.indexOf(10, start)) {
      const line = pending.subarray(start, nl);
      start = nl + 1;
      if (line.length > MAX_REQUEST_BYTES) {
        await writeAll(tooLarge());
        return;
      }
      const reply = await handleLine(line, opts);
      if (reply !== null && !(await writeAll(reply + "\n"))) return;
    }
    pending = pending.slice(start);
    if (pending.length > MAX_REQUEST_BYTES) {
      await writeAll(tooLarge());
      return;
    }
  }
}

/** Answers one request line; null when nothing is to be sent (a notification or a blank line). */
export async function handleLine(
  line: Uint8Array,
  opts: Pick<AdminServerOptions, "commands" | "log">,
): Promise<string | null> {
  let text: string;
  try {
    text = DECODER.decode(line);
  } catch {
    return errorReply(null, PARSE_ERROR, "request is not UTF-8");
  }
  if (text.trim() === "") return null;
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return errorReply(null, PARSE_ERROR, "request is not valid JSON");
  }
  if (Array.isArray(payload)) {
    if (payload.length === 0) return errorReply(null, INVALID_REQUEST, "empty batch");
    const parts: string[] = [];
    for (const item of payload) {
      const r = await handleRequest(item, opts);
      if (r !== null) parts.push(r);
    }
    return parts.length ? `[${parts.join(",")}]` : null;
  }
  return await handleRequest(payload, opts);
}

async function handleRequest(
  req: unknown,
  opts: Pick<AdminServerOptions, "commands" | "log">,
): Promise<string | null> {
  if (typeof req !== "object" || req === null || Array.isArray(req)) {
    return errorReply(null, INVALID_REQUEST, "a request must be a JSON object");
  }
  const r = req as Record<string, unknown>;
  const hasId = "id" in r;
  const id = validId(r.id) ? r.id as Id : null;
  if (hasId && !validId(r.id)) {
    return errorReply(null, INVALID_REQUEST, "id must be a string, number or null");
  }
  if (typeof r.method !== "string") return errorReply(id, INVALID_REQUEST, "method must be a string");
  const command = opts.commands.get(r.method);
  if (!command) {
    return hasId
      ? errorReply(id, METHOD_NOT_FOUND, `unknown command '${printable(r.method)}'; try 'help'`)
      : null;
  }
  let args: unknown[];
  try {
    args = bindParams(command, r.params ?? []);
  } catch (e) {
    return hasId ? errorReply(id, INVALID_PARAMS, (e as Error).message) : null;
  }
  try {
    const result = await command.run(args);
    if (!hasId) return null;
    return JSON.stringify({ jsonrpc: "2.0", result: result === undefined ? null : result, id });
  } catch (e) {
    if (e instanceof AdminError) return hasId ? errorReply(id, e.code, e.message) : null;
    opts.log.error(
      `admin RPC: ${r.method} failed: ${errorDetail(e)}`,
    );
    return hasId ? errorReply(id, INTERNAL_ERROR, `${r.method} failed: ${errorText(e)}`) : null;
  }
}

/** Maps positional or named params onto the command's parameter list; throws with a usable message. */
export function bindParams(command: Pick<AdminCommand, "params">, params: unknown): unknown[] {
  const names = command.params;
  const rest = names.length > 0 && names[names.length - 1].startsWith("...");
  const fixed = rest ? names.slice(0, -1) : names;
  const required = fixed.filter((n) => !n.startsWith("?")).length;
  const usage = () => names.map((n) => n.startsWith("?") ? `[${n.slice(1)}]` : n).join(" ") || "no arguments";
  if (Array.isArray(params)) {
    if (params.length < required) throw new Error(`too few arguments; expected: ${usage()}`);
    if (!rest && params.length > fixed.length) throw new Error(`too many arguments; expected: ${usage()}`);
    if (!rest) return params;
    return [...params.slice(0, fixed.length), params.slice(fixed.length)];
  }
  if (typeof params === "object" && params !== null) {
    const p = params as Record<string, unknown>;
    const known = new Set(names.map((n) => n.replace(/^\?|^\.\.\./, "")));
    for (const k of Object.keys(p)) {
      if (!known.has(k)) throw new Error(`unknown argument '${printable(k)}'; expected: ${usage()}`);
    }
    const out: unknown[] = [];
    for (const n of fixed) {
      const bare = n.replace(/^\?/, "");
      if (!(bare in p) && !n.startsWith("?")) {
        throw new Error(`missing argument '${bare}'; expected: ${usage()}`);
      }
      out.push(p[bare]);
    }
    if (rest) {
      const v = p[names[names.length - 1].slice(3)];
      out.push(v === undefined ? [] : Array.isArray(v) ? v : [v]);
    }
    return out;
  }
  throw new Error("params must be an array or an object");
}

function validId(v: unknown): boolean {
  return v === null || v === undefined || typeof v === "string" ||
    (typeof v === "number" && Number.isFinite(v));
}

function tooLarge(): string {
  return errorReply(
    null,
    INVALID_REQUEST,
    `request larger than ${MAX_REQUEST_BYTES} bytes; connection closed`,
  ) + "\n";
}

function errorReply(id: Id, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id });
}

/** At most 80 characters of a client-supplied string, for error messages. */
function printable(s: string): string {
  return withoutControls(s.length > 80 ? s.slice(0, 80) + "…" : s);
}

async function writeText(conn: Deno.Conn, text: string): Promise<boolean> {
  const bytes = ENCODER.encode(text);
  try {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    return true;
  } catch {
    return false;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || /^0*:(0*:)*0*1$/.test(h);
}
