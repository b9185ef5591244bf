// `coulomb rpc` / `deno task rpc`: sends one admin command to a running Coulomb and prints the answer as a
// table (or raw JSON with --json). It needs no configuration beyond where the admin RPC listens: --host and
// --port, else the rpc:// entry of SERVICES when that is set, else ElectrumX's default 127.0.0.1:8000.
import { parseServices } from "../config.ts";
import { adminCall, AdminCallError } from "./client.ts";
import { formatResult } from "./format.ts";

/** Where output goes (tests capture it). */
export interface CliIo {
  /** Environment (only SERVICES is read). */
  readonly env: Record<string, string | undefined>;
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes: 0 done, 1 the command failed, 2 usage error, 3 no (usable) answer from the server. */
export const EXIT_OK = 0;
export const EXIT_COMMAND_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;

const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8000;

/** The usage text. */
export function rpcUsage(): string {
  return `Usage: coulomb rpc [--host HOST] [--port PORT] [--json] [--timeout SECONDS] COMMAND [ARGS...]
       (or: deno task rpc ...)

Sends COMMAND to a running Coulomb's admin RPC (the rpc:// service in SERVICES). Without --port/--host the
address comes from SERVICES' rpc:// entry when SERVICES is set, else ${DEFAULT_HOST}:${DEFAULT_PORT}.
\`deno task rpc\` may reach loopback addresses only (its network permission); for another host run
\`deno run --allow-net=HOST:PORT --allow-env=SERVICES scripts/rpc.ts\`.

Commands:
  getinfo                      heights, sync state, sessions, subscriptions, mempool, db size, uptime
  sessions                     open Electrum sessions
  groups                       IP groups of the sessions with their shared cost
  peers                        peer servers: status, ports, version, last good check, failures, source
  log_level LEVEL              debug, info, warning or error, effective at once
  disconnect ID...             close sessions (ids from 'sessions')
  query [--limit N] ITEM...    history, UTXOs and balance of addresses, hex scripts or script hashes
                               (a last argument that is a plain number is taken as the limit)
  reorg [N]                    NET=regtest only: undo the last N blocks (default 3) and re-sync them
  compact_history              merge history rows; runs while Coulomb keeps syncing and serving
  stop                         flush and shut down, as SIGTERM does
  help                         the server's own command list

Exit status: 0 done, 1 the command failed, 2 usage error, 3 the server could not be reached.`;
}

interface Parsed {
  host: string;
  port: number;
  json: boolean;
  timeoutMs: number;
  command: string;
  args: string[];
  limit: number | undefined;
}

/** Runs the CLI with `argv` (everything after "rpc"); returns the exit code. */
export async function runRpcCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: Parsed | "help";
  try {
    parsed = parseCli(argv, io.env);
  } catch (e) {
    io.stderr(`coulomb rpc: ${(e as Error).message}\n\n${rpcUsage()}`);
    return EXIT_USAGE;
  }
  if (parsed === "help") {
    io.stdout(rpcUsage());
    return EXIT_OK;
  }
  let params: unknown;
  try {
    params = paramsFor(parsed);
  } catch (e) {
    io.stderr(`coulomb rpc ${parsed.command}: ${(e as Error).message}`);
    return EXIT_USAGE;
  }
  let result: unknown;
  try {
    result = await adminCall(
      { host: parsed.host, port: parsed.port, timeoutMs: parsed.timeoutMs },
      parsed.command,
      params,
    );
  } catch (e) {
    if (e instanceof AdminCallError) {
      if (e.kind === "command") {
        if (parsed.json) {
          io.stdout(JSON.stringify({ error: { code: e.code ?? null, message: e.message } }, null, 2));
        }
        io.stderr(`coulomb rpc ${parsed.command}: ${e.message}`);
        return EXIT_COMMAND_FAILED;
      }
      io.stderr(`coulomb rpc: ${e.message}`);
      return EXIT_UNREACHABLE;
    }
    throw e;
  }
  io.stdout(parsed.json ? JSON.stringify(result, null, 2) : formatResult(parsed.command, result));
  return EXIT_OK;
}

function parseCli(argv: readonly string[], env: Record<string, string | undefined>): Parsed | "help" {
  let host: string | undefined;
  let port: number | undefined;
  let json = false;
  let timeoutMs = 0;
  let limit: number | undefined;
  let command: string | undefined;
  const args: string[] = [];
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith("--") && a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const take = () => inline ?? value(i++, flag);
    if (flag === "-h" || flag === "--help") return "help";
    if (flag === "--json") json = true;
    else if (flag === "--host") host = take();
    else if (flag === "--port" || flag === "-p") port = parsePort(take());
    else if (flag === "--timeout") timeoutMs = parseSeconds(take()) * 1000;
    else if ((flag === "--limit" || flag === "-l") && command === "query") limit = parseLimit(take());
    else if (a.startsWith("-") && !/^-\d+$/.test(a)) throw new Error(`unknown option ${a}`);
    else if (command === undefined) command = a;
    else args.push(a);
  }
  if (command === undefined) throw new Error("no command given");
  const fallback = serviceAddress(env);
  return {
    host: host ?? fallback.host,
    port: port ?? fallback.port,
    json,
    timeoutMs,
    command,
    args,
    limit,
  };
}

/** The admin address from SERVICES' rpc:// entry (0.0.0.0/:: mean "this host"); the default otherwise. */
export function serviceAddress(env: Record<string, string | undefined>): { host: string; port: number } {
  const services = env.SERVICES;
  if (services === undefined) return { host: DEFAULT_HOST, port: DEFAULT_PORT };
  let rpc;
  try {
    rpc = parseServices(services, "SERVICES", true).find((s) => s.protocol === "rpc");
  } catch {
    return { host: DEFAULT_HOST, port: DEFAULT_PORT };
  }
  if (!rpc) return { host: DEFAULT_HOST, port: DEFAULT_PORT };
  const host = rpc.host === "0.0.0.0" ? "127.0.0.1" : /^[0:]+$/.test(rpc.host) ? "::1" : rpc.host;
  return { host, port: rpc.port };
}

function paramsFor(p: Parsed): unknown {
  const { command, args } = p;
  switch (command) {
    case "query": {
      let items = args;
      let limit = p.limit;
      if (limit === undefined && items.length >= 2 && /^\d{1,7}$/.test(items[items.length - 1])) {
        limit = parseLimit(items[items.length - 1]);
        items = items.slice(0, -1);
      }
      if (items.length === 0) throw new Error("give an address, a hex script or a script hash");
      return limit === undefined ? { items } : { items, limit };
    }
    case "disconnect":
      if (args.length === 0) throw new Error("give the ids of the sessions to close (see 'sessions')");
      return args.map((a) => (/^\d+$/.test(a) ? Number(a) : a));
    case "reorg":
      if (args.length > 1) throw new Error("takes at most one argument, the number of blocks");
      return args.map((a) => (/^\d+$/.test(a) ? Number(a) : a));
    default:
      return args;
  }
}

function parsePort(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new Error(`--port must be 1-65535, got '${v}'`);
  return n;
}

function parseSeconds(v: string): number {
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0)) throw new Error(`--timeout must be a number of seconds, got '${v}'`);
  return n;
}

function parseLimit(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1)) throw new Error(`--limit must be a positive integer, got '${v}'`);
  return n;
}
