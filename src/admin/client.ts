// The client side of the admin RPC: one request over one connection, the way `coulomb rpc` talks to a running
// server. Failures are split by what the operator has to do about them: nothing listening (start Coulomb or
// fix the port), a garbled reply, or the command itself refusing.
import { hostPort } from "../host_port.ts";
import { errorText } from "../error_text.ts";

/** Why an admin call failed: "connect" (nothing answered), "protocol" (bad reply), "command" (an error reply). */
export class AdminCallError extends Error {
  override name = "AdminCallError";
  constructor(readonly kind: "connect" | "protocol" | "command", message: string, readonly code?: number) {
    super(message);
  }
}

/** Where and how to call. */
export interface AdminCallOptions {
  readonly host: string;
  readonly port: number;
  /** Give up after this many milliseconds; 0 waits as long as the command takes. */
  readonly timeoutMs?: number;
}

/** Largest reply accepted (a `query` with a big limit can be large, but not unbounded). */
export const MAX_REPLY_BYTES = 512 * 1024 * 1024;

/** Sends one JSON-RPC request and returns its result; throws AdminCallError. */
export async function adminCall(opts: AdminCallOptions, method: string, params: unknown): Promise<unknown> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: opts.host, port: opts.port });
  } catch (e) {
    const why = errorText(e);
    throw new AdminCallError(
      "connect",
      `cannot reach Coulomb's admin RPC at ${where(opts)}: ${why}. Is Coulomb running with ` +
        `rpc://${where(opts)} in SERVICES? (--port and --host choose another address)`,
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  if (opts.timeoutMs && opts.timeoutMs > 0) {
    timer = setTimeout(() => {
      timedOut = true;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }, opts.timeoutMs);
  }
  try {
    const request = JSON.stringify({ jsonrpc: "2.0", method, params, id: 1 }) + "\n";
    const bytes = new TextEncoder().encode(request);
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    const line = await readLine(conn);
    return parseReply(line);
  } catch (e) {
    if (e instanceof AdminCallError) throw e;
    if (timedOut) {
      throw new AdminCallError(
        "protocol",
        `no answer from ${where(opts)} within ${opts.timeoutMs! / 1000} s`,
      );
    }
    throw new AdminCallError("protocol", `the admin RPC at ${where(opts)} failed: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Already closed (timeout or peer).
    }
  }
}

async function readLine(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) {
      throw new AdminCallError("protocol", "the server closed the connection without answering");
    }
    const chunk = buf.slice(0, n);
    const nl = chunk.indexOf(10);
    if (nl >= 0) {
      chunks.push(chunk.subarray(0, nl));
      break;
    }
    chunks.push(chunk);
    total += n;
    if (total > MAX_REPLY_BYTES) throw new AdminCallError("protocol", "the reply is too large");
  }
  const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all);
}

/** The result of a JSON-RPC reply line, or the AdminCallError it carries. */
export function parseReply(line: string): unknown {
  let reply: unknown;
  try {
    reply = JSON.parse(line);
  } catch {
    throw new AdminCallError("protocol", `the reply is not JSON: ${line.slice(0, 200)}`);
  }
  if (typeof reply !== "object" || reply === null || Array.isArray(reply)) {
    throw new AdminCallError("protocol", "the reply is not a JSON-RPC response object");
  }
  const r = reply as { result?: unknown; error?: { code?: unknown; message?: unknown } };
  if (r.error !== undefined && r.error !== null) {
    const code = typeof r.error.code === "number" ? r.error.code : undefined;
    const message = typeof r.error.message === "string" ? r.error.message : JSON.stringify(r.error);
    throw new AdminCallError("command", message, code);
  }
  if (!("result" in r)) throw new AdminCallError("protocol", "the reply has neither result nor error");
  return r.result;
}

function where(opts: AdminCallOptions): string {
  return hostPort(opts.host, opts.port);
}
