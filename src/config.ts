// Configuration is read once, at start-up, from ElectrumX's environment variables (so an operator can move
// over unchanged) with command-line flags overriding them. Everything is validated here, before anything
// opens a database or a socket, and every error names the variable so the operator knows what to fix.
import { parseArgs } from "node:util";
import { isIP } from "node:net";
import { isAbsolute, join } from "node:path";
import { LOG_LEVELS, type LogLevelName } from "./log.ts";
import { serverVersionString } from "./version.ts";
import { hostPort } from "./host_port.ts";

/** ElectrumX's names for the Bitcoin networks. */
export type Network = "mainnet" | "testnet" | "testnet4" | "signet" | "regtest";

/** The networks NET accepts. */
export const NETWORKS: readonly Network[] = ["mainnet", "testnet", "testnet4", "signet", "regtest"];

/** Bitcoin Core's `getblockchaininfo.chain` for each network. */
export const CORE_CHAIN: Readonly<Record<Network, string>> = {
  mainnet: "main",
  testnet: "test",
  testnet4: "testnet4",
  signet: "signet",
  regtest: "regtest",
};

/** Default ports per network: bitcoind's RPC port, and the Electrum tcp/ssl ports peers expect. */
export const DEFAULT_PORTS: Readonly<Record<Network, { daemonRpc: number; tcp: number; ssl: number }>> = {
  mainnet: { daemonRpc: 8332, tcp: 50001, ssl: 50002 },
  testnet: { daemonRpc: 18332, tcp: 51001, ssl: 51002 },
  testnet4: { daemonRpc: 48332, tcp: 51001, ssl: 51002 },
  signet: { daemonRpc: 38332, tcp: 51001, ssl: 51002 },
  regtest: { daemonRpc: 18443, tcp: 51001, ssl: 51002 },
};

/** Protocols a service can speak. */
export type ServiceProtocol = "tcp" | "ssl" | "ws" | "wss" | "rpc";

/**
 * One listening (or advertised) endpoint. An empty host in SERVICES becomes "::", every interface (IPv6 and
 * IPv4: the listeners fall back to "0.0.0.0" where IPv6 is off), as ElectrumX listens on all of them.
 */
export interface Service {
  readonly protocol: ServiceProtocol;
  readonly host: string;
  readonly port: number;
}

/** How peer discovery runs (ElectrumX's PEER_DISCOVERY). */
export type PeerDiscovery = "on" | "off" | "self";

/** A peer server named in PEERS (or built in): its host and the ports to try; null = not offered. */
export interface PeerSpec {
  readonly host: string;
  readonly tcpPort: number | null;
  readonly sslPort: number | null;
}

/** Where client sockets are served (see Config.socketThread). */
export type SocketThreadMode = "main" | "thread" | "both";

/** The validated, frozen configuration. Times carry their unit in the name. */
export interface Config {
  readonly coin: "Bitcoin";
  readonly net: Network;
  /** What bitcoind's getblockchaininfo must report as `chain`. */
  readonly coreChain: string;
  readonly dbDirectory: string;
  /** Normalized `http://[user:pass@]host:port/` URLs; they may hold passwords, so log only `redactUrl(u)`. */
  readonly daemonUrls: readonly string[];
  readonly daemonCookie: string | undefined;
  readonly daemonTimeoutMs: number;
  readonly daemonPollMs: number;
  readonly cacheMb: number;
  readonly flushSize: number;
  readonly reorgLimit: number;
  readonly logLevel: LogLevelName;
  readonly services: readonly Service[];
  readonly reportServices: readonly Service[];
  readonly sslCertfile: string | undefined;
  readonly sslKeyfile: string | undefined;
  readonly maxSessions: number;
  readonly maxSend: number;
  readonly maxRecv: number;
  readonly maxSubs: number;
  readonly maxSessionSubs: number;
  readonly bandwidthUnitCost: number;
  readonly costSoftLimit: number;
  readonly costHardLimit: number;
  readonly initialConcurrent: number;
  readonly requestSleepMs: number;
  readonly requestTimeoutS: number;
  readonly sessionTimeoutS: number;
  /**
   * Where client sockets are served: on the main thread (SOCKET_THREAD=off, or auto/overflow with one CPU), in
   * a thread of their own (on; auto with two or more CPUs; overflow with two or more CPUs on other systems than
   * Linux), or both (overflow on Linux with two or more CPUs: the first sessions on the main thread, then mostly
   * in the thread; src/server/listeners.ts).
   */
  readonly socketThread: SocketThreadMode;
  /** Absolute, or relative to the working directory; a relative BANNER_FILE is resolved against DB_DIRECTORY. */
  readonly bannerFile: string | undefined;
  readonly donationAddress: string;
  readonly peerDiscovery: PeerDiscovery;
  readonly peerAnnounce: boolean;
  /** Peer servers to check besides the built-in seeds (PEERS). */
  readonly peers: readonly PeerSpec[];
  /** Where to serve metrics over HTTP; undefined = off. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  readonly allowRoot: boolean;
  /** ElectrumX variables that are set but have no effect in Coulomb; worth a start-up warning. */
  readonly ignoredVariables: readonly string[];
}

/** A configuration problem; `variable` is the environment variable at fault. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly variable: string, message: string) {
    super(message);
  }
}

/** SERVICES when unset: Electrum over TCP and the admin RPC, both on loopback only, so a fresh install exposes
 * nothing to the network until the operator decides to. (ElectrumX listens on nothing when unset.) */
export const DEFAULT_SERVICES = "tcp://127.0.0.1:50001,rpc://127.0.0.1:8000";

/** ElectrumX's floor for MAX_SEND: header chunk replies are almost this large. */
const MIN_MAX_SEND = 350_000;

type Kind = "string" | "int" | "number" | "bool";

interface VarSpec {
  name: string;
  kind: Kind;
  /** Default shown in --help; undefined = unset. */
  def?: string;
  help: string;
  /** Extra flag spellings accepted besides the kebab-case of the name. */
  flagAliases?: string[];
  /** ElectrumX spellings of the same setting. */
  envAliases?: string[];
}

const VARS: readonly VarSpec[] = [
  { name: "COIN", kind: "string", def: "Bitcoin", help: "coin to serve; only Bitcoin is supported" },
  {
    name: "NET",
    kind: "string",
    def: "mainnet",
    help: "network: mainnet, testnet, testnet4, signet or regtest",
  },
  {
    name: "DB_DIRECTORY",
    kind: "string",
    flagAliases: ["db-dir"],
    help: "directory of the database (required)",
  },
  {
    name: "DB_ENGINE",
    kind: "string",
    def: "leveldb",
    help: "accepted for ElectrumX compatibility; only leveldb",
  },
  {
    name: "DAEMON_URL",
    kind: "string",
    help:
      "bitcoind RPC: comma-separated http://[user:pass@]host[:port][/], port defaulting to the network's (required)",
  },
  { name: "DAEMON_COOKIE", kind: "string", help: "bitcoind's .cookie file, used for URLs without user:pass" },
  { name: "DAEMON_TIMEOUT", kind: "number", def: "30", help: "seconds to wait for one bitcoind reply" },
  {
    name: "DAEMON_POLL_MS",
    kind: "int",
    def: "5000",
    envAliases: ["DAEMON_POLL_INTERVAL_BLOCKS"],
    help: "milliseconds between polls of bitcoind's tip",
  },
  { name: "CACHE_MB", kind: "int", def: "1200", help: "MB of unflushed UTXOs and history kept in memory" },
  {
    name: "FLUSH_SIZE",
    kind: "int",
    def: "4000000",
    help: "flush after this many cached UTXO + history entries",
  },
  {
    name: "REORG_LIMIT",
    kind: "int",
    help: "deepest reorg handled (default 200 on mainnet, 8000 on test networks)",
  },
  { name: "LOG_LEVEL", kind: "string", def: "info", help: "debug, info, warning or error" },
  {
    name: "SERVICES",
    kind: "string",
    def: DEFAULT_SERVICES,
    help: "listeners: protocol://host:port, comma-separated (tcp, ssl, ws, wss, rpc); empty = none",
  },
  { name: "REPORT_SERVICES", kind: "string", def: "", help: "services advertised to peers and clients" },
  { name: "SSL_CERTFILE", kind: "string", help: "TLS certificate (required with an ssl or wss service)" },
  { name: "SSL_KEYFILE", kind: "string", help: "TLS private key (required with an ssl or wss service)" },
  { name: "MAX_SESSIONS", kind: "int", def: "1000", help: "maximum concurrent client sessions" },
  {
    name: "MAX_SEND",
    kind: "int",
    def: "8100000",
    help: "largest reply in bytes (values below 350000 mean 350000)",
  },
  { name: "MAX_RECV", kind: "int", def: "1000000", help: "largest request in bytes" },
  { name: "MAX_SUBS", kind: "int", def: "250000", help: "maximum address subscriptions over all sessions" },
  { name: "MAX_SESSION_SUBS", kind: "int", def: "50000", help: "maximum address subscriptions per session" },
  { name: "BANDWIDTH_UNIT_COST", kind: "int", def: "5000", help: "bytes sent or received that cost 1.0" },
  { name: "COST_SOFT_LIMIT", kind: "int", def: "1000", help: "session cost where throttling starts" },
  { name: "COST_HARD_LIMIT", kind: "int", def: "10000", help: "session cost where the session is dropped" },
  {
    name: "INITIAL_CONCURRENT",
    kind: "int",
    def: "10",
    help: "concurrent requests per session before throttling",
  },
  {
    name: "REQUEST_SLEEP",
    kind: "int",
    def: "2500",
    help: "longest throttling delay per request, milliseconds",
  },
  {
    name: "REQUEST_TIMEOUT",
    kind: "int",
    def: "30",
    help:
      "seconds from a request's arrival (its wait for a turn included) before it is answered 'server busy'",
  },
  {
    name: "SESSION_TIMEOUT",
    kind: "int",
    def: "600",
    help: "seconds of client silence before disconnecting",
  },
  {
    name: "SOCKET_THREAD",
    kind: "string",
    def: "auto",
    help:
      "client sockets in a thread of their own: on, off, auto (on with two or more CPUs), or overflow (once 32 sessions are open)",
  },
  {
    name: "BANNER_FILE",
    kind: "string",
    help: "banner text file (relative paths are relative to DB_DIRECTORY)",
  },
  { name: "DONATION_ADDRESS", kind: "string", def: "", help: "donation address reported to clients" },
  { name: "PEER_DISCOVERY", kind: "string", def: "on", help: "on, off or self" },
  { name: "PEER_ANNOUNCE", kind: "bool", def: "on", help: "announce this server to peers (empty = off)" },
  {
    name: "PEERS",
    kind: "string",
    def: "",
    help: "peer servers to check besides the built-in seeds: 'host [t[PORT]] [s[PORT]]', comma-separated",
  },
  { name: "METRICS", kind: "string", def: "", help: "serve metrics at http://host:port (empty = off)" },
  { name: "ALLOW_ROOT", kind: "bool", def: "off", help: "allow running as root (any non-empty value = on)" },
];

// ElectrumX refuses these since SERVICES replaced them; silently ignoring them would leave a migrated server
// listening somewhere the operator did not intend.
const OBSOLETE = [
  "HOST",
  "TCP_PORT",
  "SSL_PORT",
  "RPC_HOST",
  "RPC_PORT",
  "REPORT_HOST",
  "REPORT_TCP_PORT",
  "REPORT_SSL_PORT",
  "REPORT_HOST_TOR",
  "REPORT_TCP_PORT_TOR",
  "REPORT_SSL_PORT_TOR",
  "MAX_SUBSCRIPTIONS",
  "BANDWIDTH_LIMIT",
];

// ElectrumX settings that Coulomb accepts but does not act on.
const IGNORED = [
  "LOG_FORMAT",
  "ANON_LOGS",
  "LOG_SESSIONS",
  "TOR_BANNER_FILE",
  "EVENT_LOOP_POLICY",
  "DROP_CLIENT",
  "BLACKLIST_URL",
  "FORCE_PROXY",
  "TOR_PROXY_HOST",
  "TOR_PROXY_PORT",
  "SESSION_GROUP_BY_SUBNET_IPV4",
  "SESSION_GROUP_BY_SUBNET_IPV6",
  "DAEMON_POLL_INTERVAL_MEMPOOL",
];

const PROTOCOLS: readonly ServiceProtocol[] = ["tcp", "ssl", "ws", "wss", "rpc"];

function flagName(name: string): string {
  return name.toLowerCase().replaceAll("_", "-");
}

/** One raw setting with where it came from, so messages point at what the operator actually typed. */
interface Raw {
  value: string;
  source: string;
}

/**
 * Parses the environment and command-line flags (flags win) into a frozen Config. Pure: `env` and the CPU
 * count (for SOCKET_THREAD=auto) are passed in.
 * Returns `{help}` or `{version}` text when asked for; throws ConfigError naming the variable at fault.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  argv: string[],
  cpus: number = navigator.hardwareConcurrency,
  os: string = Deno.build.os,
): Config | { help: string } | { version: string } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean", short: "V" },
  };
  const flagToVar = new Map<string, VarSpec>();
  for (const spec of VARS) {
    for (const flag of [flagName(spec.name), ...(spec.flagAliases ?? [])]) {
      options[flag] = { type: spec.kind === "bool" ? "boolean" : "string" };
      flagToVar.set(flag, spec);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false, allowNegative: true });
  } catch (e) {
    throw new ConfigError("argv", `${(e as Error).message}; see --help`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return { help: helpText() };
  if (values.version) return { version: serverVersionString() };

  const raw = new Map<string, Raw>();
  for (const spec of VARS) {
    for (const name of [...(spec.envAliases ?? []).toReversed(), spec.name]) {
      const v = env[name];
      if (v !== undefined) raw.set(spec.name, { value: v, source: name });
    }
  }
  for (const [flag, v] of Object.entries(values)) {
    const spec = flagToVar.get(flag);
    if (!spec || v === undefined) continue;
    // A boolean flag maps onto ElectrumX's "non-empty means on".
    raw.set(spec.name, { value: typeof v === "boolean" ? (v ? "1" : "") : v, source: `--${flag}` });
  }
  return buildConfig(env, raw, cpus, os);
}

function buildConfig(
  env: Record<string, string | undefined>,
  raw: Map<string, Raw>,
  cpus: number,
  os: string,
): Config {
  for (const name of OBSOLETE) {
    if (env[name]) {
      throw new ConfigError(
        name,
        `${name} is obsolete (as in ElectrumX); remove it and list listeners in SERVICES, e.g. ` +
          `SERVICES=tcp://:50001,ssl://:50002,rpc://127.0.0.1:8000`,
      );
    }
  }
  const str = (name: string): Raw | undefined => raw.get(name);
  const strOr = (name: string, def: string) => raw.get(name)?.value ?? def;

  const coin = strOr("COIN", "Bitcoin").trim();
  if (coin.toLowerCase() !== "bitcoin") {
    throw new ConfigError(
      "COIN",
      `${label(raw, "COIN")} must be Bitcoin (the only coin Coulomb serves), got '${coin}'`,
    );
  }
  const netRaw = strOr("NET", "mainnet").trim().toLowerCase();
  if (!(NETWORKS as readonly string[]).includes(netRaw)) {
    throw new ConfigError(
      "NET",
      `${label(raw, "NET")} must be one of ${NETWORKS.join(", ")}, got '${netRaw}'`,
    );
  }
  const net = netRaw as Network;

  const dbDirectory = (str("DB_DIRECTORY")?.value ?? "").trim();
  if (!dbDirectory) {
    throw new ConfigError(
      "DB_DIRECTORY",
      "DB_DIRECTORY (or --db-dir) is required: the directory for the database",
    );
  }
  const engine = strOr("DB_ENGINE", "leveldb").trim().toLowerCase();
  if (engine !== "leveldb") {
    throw new ConfigError(
      "DB_ENGINE",
      `${label(raw, "DB_ENGINE")} must be leveldb (Coulomb's only engine), got '${engine}'`,
    );
  }

  const daemonUrlRaw = str("DAEMON_URL")?.value ?? "";
  if (!daemonUrlRaw.trim()) {
    throw new ConfigError(
      "DAEMON_URL",
      "DAEMON_URL (or --daemon-url) is required: bitcoind's RPC address, e.g. http://user:pass@127.0.0.1:8332/",
    );
  }
  const daemonUrls = parseDaemonUrls(daemonUrlRaw, net, label(raw, "DAEMON_URL"));
  const cookieRaw = str("DAEMON_COOKIE")?.value.trim();
  const daemonCookie = cookieRaw ? cookieRaw : undefined;
  if (!daemonCookie) {
    const bare = daemonUrls.find((u) => !new URL(u).username);
    if (bare) {
      throw new ConfigError(
        "DAEMON_URL",
        `DAEMON_URL ${
          redactUrl(bare)
        } has no user:password and DAEMON_COOKIE is not set: put rpcuser:rpcpassword ` +
          `in the URL or point DAEMON_COOKIE at bitcoind's .cookie file (e.g. ~/.bitcoin/.cookie)`,
      );
    }
  }

  const int = (name: string, def: number, min: number, max?: number) => intVar(raw, name, def, min, max);
  const daemonTimeout = numberVar(raw, "DAEMON_TIMEOUT", 30);
  const costSoftLimit = int("COST_SOFT_LIMIT", 1000, 0);
  let costHardLimit = int("COST_HARD_LIMIT", 10000, 0);
  if (costHardLimit < costSoftLimit) {
    throw new ConfigError(
      "COST_HARD_LIMIT",
      `COST_HARD_LIMIT (${costHardLimit}) must be at least COST_SOFT_LIMIT (${costSoftLimit})`,
    );
  }
  // Equal limits would drop a session the moment it is first throttled; ElectrumX bumps the hard one likewise.
  if (costHardLimit === costSoftLimit && costSoftLimit > 0) costHardLimit++;

  const logLevelRaw = strOr("LOG_LEVEL", "info").trim().toLowerCase();
  const logLevel = (logLevelRaw === "warn" ? "warning" : logLevelRaw) as LogLevelName;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      "LOG_LEVEL",
      `${label(raw, "LOG_LEVEL")} must be one of ${LOG_LEVELS.join(", ")}, got '${logLevelRaw}'`,
    );
  }

  const peerAnnounce = boolVar(raw, "PEER_ANNOUNCE", true);
  const services = parseServices(strOr("SERVICES", DEFAULT_SERVICES), "SERVICES", true);
  const reportServices = parseServices(strOr("REPORT_SERVICES", ""), "REPORT_SERVICES", false);
  checkReportServices(reportServices, peerAnnounce, net);

  const sslCertfile = str("SSL_CERTFILE")?.value.trim() || undefined;
  const sslKeyfile = str("SSL_KEYFILE")?.value.trim() || undefined;
  const tlsService = services.find((s) => s.protocol === "ssl" || s.protocol === "wss");
  if (tlsService) {
    if (!sslCertfile) {
      throw new ConfigError(
        "SSL_CERTFILE",
        `SSL_CERTFILE is required because SERVICES has ${tlsService.protocol}://`,
      );
    }
    if (!sslKeyfile) {
      throw new ConfigError(
        "SSL_KEYFILE",
        `SSL_KEYFILE is required because SERVICES has ${tlsService.protocol}://`,
      );
    }
  }

  const peerDiscovery = oneOf(raw, "PEER_DISCOVERY", "on", ["on", "off", "self"] as const);
  const threadWord = oneOf(raw, "SOCKET_THREAD", "auto", ["on", "off", "auto", "overflow"] as const);
  // One CPU would only take turns between the two threads, paying for every crossing. Overflow's two places
  // need SO_REUSEPORT's load balancing, which only Linux has (elsewhere it is the thread alone).
  const socketThread: SocketThreadMode = threadWord === "on"
    ? "thread"
    : threadWord === "off" || cpus < 2
    ? "main"
    : threadWord === "overflow" && os === "linux"
    ? "both"
    : "thread";

  const bannerRaw = str("BANNER_FILE")?.value.trim();
  const bannerFile = bannerRaw
    ? (isAbsolute(bannerRaw) ? bannerRaw : join(dbDirectory, bannerRaw))
    : undefined;

  const config: Config = {
    coin: "Bitcoin",
    net,
    coreChain: CORE_CHAIN[net],
    dbDirectory,
    daemonUrls: Object.freeze(daemonUrls),
    daemonCookie,
    daemonTimeoutMs: Math.round(daemonTimeout * 1000),
    daemonPollMs: int("DAEMON_POLL_MS", 5000, 1, MAX_TIMER_MS),
    cacheMb: int("CACHE_MB", 1200, 1),
    flushSize: int("FLUSH_SIZE", 4_000_000, 1),
    reorgLimit: int("REORG_LIMIT", net === "mainnet" ? 200 : 8000, 1),
    logLevel,
    services: Object.freeze(services),
    reportServices: Object.freeze(reportServices),
    sslCertfile,
    sslKeyfile,
    maxSessions: int("MAX_SESSIONS", 1000, 1),
    maxSend: Math.max(MIN_MAX_SEND, int("MAX_SEND", 8_100_000, 1)),
    maxRecv: int("MAX_RECV", 1_000_000, 1),
    maxSubs: int("MAX_SUBS", 250_000, 0),
    maxSessionSubs: int("MAX_SESSION_SUBS", 50_000, 0),
    bandwidthUnitCost: int("BANDWIDTH_UNIT_COST", 5000, 1),
    costSoftLimit,
    costHardLimit,
    initialConcurrent: int("INITIAL_CONCURRENT", 10, 1),
    requestSleepMs: int("REQUEST_SLEEP", 2500, 0, MAX_TIMER_MS),
    requestTimeoutS: int("REQUEST_TIMEOUT", 30, 1, MAX_TIMER_S),
    sessionTimeoutS: int("SESSION_TIMEOUT", 600, 1, MAX_TIMER_S),
    socketThread,
    bannerFile,
    donationAddress: strOr("DONATION_ADDRESS", "").trim(),
    peerDiscovery,
    peerAnnounce,
    peers: Object.freeze(parsePeers(strOr("PEERS", ""), net)),
    metrics: parseMetrics(raw),
    allowRoot: boolVar(raw, "ALLOW_ROOT", false),
    ignoredVariables: Object.freeze(IGNORED.filter((n) => env[n] !== undefined)),
  };
  return Object.freeze(config);
}

/** A setting that is one of a few words (any case; empty = "off"); ConfigError naming them otherwise. */
function oneOf<W extends string>(raw: Map<string, Raw>, name: string, def: W, words: readonly W[]): W {
  const value = (raw.get(name)?.value ?? def).trim().toLowerCase();
  const word = (value === "" ? "off" : value) as W;
  if (!words.includes(word)) {
    const list = words.length > 1
      ? `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`
      : words[0];
    throw new ConfigError(name, `${label(raw, name)} must be ${list}, got '${value}'`);
  }
  return word;
}

function label(raw: Map<string, Raw>, name: string): string {
  const src = raw.get(name)?.source;
  return src && src !== name ? `${name} (from ${src})` : name;
}

/** The longest a timer can wait: setTimeout and AbortSignal.timeout treat anything longer as 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The same in whole seconds. */
const MAX_TIMER_S = Math.floor(MAX_TIMER_MS / 1000);

function intVar(
  raw: Map<string, Raw>,
  name: string,
  def: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const r = raw.get(name);
  if (r === undefined) return def;
  const v = r.value.trim().replaceAll("_", "");
  const what = min > 0 ? "a positive integer" : "a non-negative integer";
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `${label(raw, name)} must be ${what}, got '${r.value}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ConfigError(name, `${label(raw, name)} must be ${what}, got '${r.value}'`);
  }
  if (n > max) {
    throw new ConfigError(
      name,
      `${label(raw, name)} must be at most ${max} (a timer's limit), got '${r.value}'`,
    );
  }
  return n;
}

function numberVar(raw: Map<string, Raw>, name: string, def: number): number {
  const r = raw.get(name);
  if (r === undefined) return def;
  const v = r.value.trim();
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  // At least a millisecond, at most what a timer can wait: beyond either, every wait would end at once.
  if (!(n >= 0.001) || !(n <= MAX_TIMER_S)) {
    throw new ConfigError(
      name,
      `${label(raw, name)} must be a number of seconds from 0.001 to ${MAX_TIMER_S}, got '${r.value}'`,
    );
  }
  return n;
}

/** ElectrumX's rule: any non-empty (after trimming) value is on, empty is off. */
function boolVar(raw: Map<string, Raw>, name: string, def: boolean): boolean {
  const r = raw.get(name);
  return r === undefined ? def : r.value.trim() !== "";
}

/**
 * Splits and normalizes DAEMON_URL: each entry becomes `scheme://[user:pass@]host:port/path/`, with `http://`
 * added to a bare `host[:port]` and the network's RPC port filled in when none is given.
 */
export function parseDaemonUrls(value: string, net: Network, variable = "DAEMON_URL"): string[] {
  const out: string[] = [];
  for (const part of value.split(",")) {
    const entry = part.trim().replace(/\/+$/, "");
    if (!entry) continue;
    out.push(normalizeDaemonUrl(entry, net, variable));
  }
  if (out.length === 0) {
    throw new ConfigError("DAEMON_URL", `${variable} has no URL in it; give bitcoind's RPC address`);
  }
  return out;
}

function normalizeDaemonUrl(entry: string, net: Network, variable: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `http://${entry}`;
  const bad = (why: string) =>
    new ConfigError("DAEMON_URL", `${variable} entry '${redactUrl(entry)}' is not usable: ${why}`);
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw bad("not a valid URL (expected http://[user:pass@]host[:port]/)");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw bad("only http:// and https:// are supported");
  }
  if (!url.hostname) throw bad("no host");
  if (url.search || url.hash) throw bad("a query or fragment makes no sense for bitcoind");
  // The URL parser hides an explicit ":80", so look at what was written to know whether a port was given.
  const afterScheme = withScheme.slice(withScheme.indexOf("://") + 3);
  const authority = afterScheme.slice(afterScheme.lastIndexOf("@") + 1).split("/")[0];
  const hasPort = /:\d+$/.test(authority);
  const port = hasPort
    ? Number(url.port || (url.protocol === "https:" ? 443 : 80))
    : DEFAULT_PORTS[net].daemonRpc;
  if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
  const userinfo = url.username ? `${url.username}${url.password ? ":" + url.password : ""}@` : "";
  const path = url.pathname.endsWith("/") ? url.pathname : url.pathname + "/";
  return `${url.protocol}//${userinfo}${url.hostname}:${port}${path}`;
}

/** The URL with any password replaced by "***"; safe for logs and errors even when the URL is malformed. */
export function redactUrl(url: string): string {
  const schemeEnd = url.indexOf("://");
  const start = schemeEnd >= 0 ? schemeEnd + 3 : 0;
  // The last "@" ends the userinfo (a password may itself contain "@"); if a path holds one we over-redact,
  // which is the safe direction.
  const at = url.lastIndexOf("@");
  if (at < start) return url;
  const userinfo = url.slice(start, at);
  const colon = userinfo.indexOf(":");
  if (colon < 0) return url;
  return `${url.slice(0, start)}${userinfo.slice(0, colon)}:***${url.slice(at)}`;
}

/** Parses a SERVICES-style list; `defaults` fills in ElectrumX's host and rpc-port defaults. */
export function parseServices(value: string, variable: string, defaults: boolean): Service[] {
  const out: Service[] = [];
  const seen = new Set<string>();
  for (const part of value.split(",")) {
    const entry = part.trim();
    if (!entry) continue;
    const service = parseService(entry, variable, defaults);
    const key = hostPort(service.host, service.port);
    if (seen.has(key)) throw new ConfigError(variable, `${variable} lists address ${key} more than once`);
    seen.add(key);
    out.push(Object.freeze(service));
  }
  return out;
}

function parseService(entry: string, variable: string, defaults: boolean): Service {
  const bad = (why: string) => new ConfigError(variable, `${variable} entry '${entry}' is invalid: ${why}`);
  const m = /^([a-z]+):\/\/(.*)$/i.exec(entry);
  if (!m) throw bad("expected protocol://host:port, e.g. tcp://:50001");
  const protocol = m[1].toLowerCase() as ServiceProtocol;
  if (!PROTOCOLS.includes(protocol)) throw bad(`unknown protocol '${m[1]}' (use ${PROTOCOLS.join(", ")})`);
  const rest = m[2].replace(/\/$/, "");
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw bad("unclosed '[' in an IPv6 address");
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after && !after.startsWith(":")) throw bad("expected ':port' after the IPv6 address");
    portText = after ? after.slice(1) : undefined;
    if (!/^[0-9a-f:.]+$/i.test(host)) throw bad(`'${host}' is not an IPv6 address`);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0 && rest.indexOf(":") !== colon) {
      throw bad("put an IPv6 address in brackets, e.g. [::1]:50001");
    }
    host = colon >= 0 ? rest.slice(0, colon) : rest;
    portText = colon >= 0 ? rest.slice(colon + 1) : undefined;
    if (host && !/^[a-z0-9.-]+$/i.test(host)) throw bad(`'${host}' is not a host name or address`);
  }
  if (!host) {
    if (!defaults) throw bad("a host is required");
    host = protocol === "rpc" ? "127.0.0.1" : "::";
  }
  if (host.toLowerCase().endsWith(".onion") && defaults) throw bad("an onion address cannot be listened on");
  let port: number;
  if (portText === undefined || portText === "") {
    if (!(defaults && protocol === "rpc")) throw bad("a port is required (only rpc defaults, to 8000)");
    port = 8000;
  } else {
    if (!/^\d+$/.test(portText)) throw bad(`port '${portText}' is not a number`);
    port = Number(portText);
    if (port < 1 || port > 65535) throw bad(`port ${port} is out of range 1-65535`);
  }
  return { protocol, host, port };
}

function checkReportServices(services: Service[], peerAnnounce: boolean, net: Network): void {
  for (const s of services) {
    const bad = (why: string) =>
      new ConfigError("REPORT_SERVICES", `REPORT_SERVICES entry ${s.protocol}://${s.host}:${s.port} ${why}`);
    if (s.protocol === "rpc") throw bad("is invalid: rpc is never advertised");
    // A regtest network is local by nature: its servers announce loopback and private addresses to each other.
    if (net === "regtest") continue;
    const host = s.host.toLowerCase();
    if (host === "localhost") throw bad("is invalid: localhost cannot be reached by others");
    const kind = ipKind(host);
    if (kind === "unspecified" || kind === "multicast" || kind === "loopback") {
      throw bad(`is invalid: a ${kind} address cannot be reached by others`);
    }
    if (kind === "private" && peerAnnounce) {
      throw bad("is a private address; peers cannot reach it (set PEER_ANNOUNCE= to keep it)");
    }
  }
}

/**
 * What an address literal is: unspecified, multicast, loopback, private (incl. link-local, shared CGNAT space and
 * reserved ranges nobody can route to), public, or a name. An IPv4 address written as IPv6 (`::ffff:127.0.0.1`,
 * `::ffff:7f00:1`) is what its IPv4 address is: a socket connects to that.
 */
export function ipKind(
  host: string,
): "unspecified" | "multicast" | "loopback" | "private" | "public" | "name" {
  // Strictly dotted decimal: resolvers read "012.0.0.1" as octal (10.0.0.1), so that spelling is a name here.
  const v4 = isIP(host) === 4 ? /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host) : null;
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    if (a === 0) return "unspecified";
    if (a === 127) return "loopback";
    if (a >= 224 && a <= 239) return "multicast";
    if (
      a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127) || (a === 198 && (b === 18 || b === 19)) || a >= 240
    ) {
      return "private";
    }
    return "public";
  }
  if (host.includes(":")) {
    const mapped = mappedIpv4(host);
    if (mapped !== undefined) return ipKind(mapped);
    if (/^[0:]+$/.test(host)) return "unspecified";
    if (/^[0:]+1$/.test(host)) return "loopback";
    if (host.startsWith("ff")) return "multicast";
    // fc00::/7 (unique local) and fe80::/10 (link-local: fe80 to febf).
    if (/^f[cd]/i.test(host) || /^fe[89ab]/i.test(host)) return "private";
    return "public";
  }
  return "name";
}

// The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d or ::ffff:XXXX:XXXX), or undefined.
function mappedIpv4(host: string): string | undefined {
  let h = host.toLowerCase();
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(h);
  if (dotted) h = `${dotted[1]}0:0`;
  const halves = h.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return undefined;
  const groups = [...head, ...Array(fill).fill("0"), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  const n = groups.map((g) => parseInt(g, 16));
  if (n.slice(0, 5).some((g) => g !== 0) || n[5] !== 0xffff) return undefined;
  return dotted ? dotted[2] : `${n[6] >> 8}.${n[6] & 255}.${n[7] >> 8}.${n[7] & 255}`;
}

/**
 * PEERS: comma-separated entries `host [t[PORT]] [s[PORT]]` (ElectrumX's peer notation): `t`/`s` alone mean the
 * network's default TCP/SSL port, a bare host means both defaults. IPv6 hosts may be bracketed. Loopback and
 * private hosts are refused except on regtest, whose servers are local by nature.
 */
export function parsePeers(text: string, net: Network): PeerSpec[] {
  const out: PeerSpec[] = [];
  const defaults = DEFAULT_PORTS[net];
  for (const entry of text.split(",").map((e) => e.trim()).filter(Boolean)) {
    const bad = (why: string) => new ConfigError("PEERS", `PEERS entry '${entry}' ${why}`);
    const [rawHost, ...tokens] = entry.split(/\s+/);
    const host = rawHost.replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (!/^[a-z0-9.-]+$/.test(host) && !(host.includes(":") && isIP(host) === 6)) {
      // "1.2.3.4:50002" would otherwise pass for IPv6 and fail later as a permission flag.
      throw bad(
        `has '${rawHost}', which is not a host name or address (ports are written after it: 'host s50002 t50001')`,
      );
    }
    let tcpPort: number | null = null;
    let sslPort: number | null = null;
    for (const t of tokens) {
      const m = /^([ts])(\d*)$/i.exec(t);
      if (!m) throw bad(`has '${t}'; expected t, tPORT, s or sPORT`);
      const port = m[2] === "" ? (m[1].toLowerCase() === "t" ? defaults.tcp : defaults.ssl) : Number(m[2]);
      if (port < 1 || port > 65535) throw bad(`has port ${port}, out of range 1-65535`);
      if (m[1].toLowerCase() === "t") tcpPort = port;
      else sslPort = port;
    }
    if (tokens.length === 0) [tcpPort, sslPort] = [defaults.tcp, defaults.ssl];
    if (net !== "regtest") {
      const kind = ipKind(host);
      if (host === "localhost" || host.endsWith(".localhost") || (kind !== "public" && kind !== "name")) {
        throw bad("is not a public address (loopback and private peers are for NET=regtest only)");
      }
    }
    if (host.endsWith(".onion")) throw bad("is an onion address; Coulomb has no Tor proxy to reach it");
    out.push({ host, tcpPort, sslPort });
  }
  return out;
}

function parseMetrics(raw: Map<string, Raw>): Config["metrics"] {
  const r = raw.get("METRICS");
  const v = r?.value.trim() ?? "";
  if (!v) return undefined;
  const bad = () =>
    new ConfigError("METRICS", `${label(raw, "METRICS")} must be empty or http://host:port, got '${v}'`);
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(v) ? v : `http://${v}`);
  } catch {
    throw bad();
  }
  if (
    url.protocol !== "http:" || !url.port || url.username || (url.pathname !== "/" && url.pathname !== "")
  ) {
    throw bad();
  }
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return Object.freeze({ host, port: Number(url.port) });
}

/** The --help text: every flag with its variable, default and meaning. */
export function helpText(): string {
  const lines = [
    `${serverVersionString()}: an Electrum server for Bitcoin`,
    "",
    "Usage: coulomb [flags]",
    "Every setting is an environment variable (ElectrumX's names); a flag overrides its variable.",
    "Boolean flags take no value; --no-<flag> turns one off.",
    "",
  ];
  const rows = VARS.map((s) => {
    const flags = [flagName(s.name), ...(s.flagAliases ?? [])].map((f) => `--${f}`).join(", ");
    const envs = [s.name, ...(s.envAliases ?? [])].join(", ");
    const def = s.def === undefined ? "" : ` [default: ${s.def === "" ? "empty" : s.def}]`;
    return { left: `${flags} (${envs})`, right: `${s.help}${def}` };
  });
  rows.push({ left: "-h, --help", right: "print this help and exit" });
  rows.push({ left: "-V, --version", right: "print the version and exit" });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  for (const r of rows) lines.push(`  ${r.left.padEnd(width)}${r.right}`);
  lines.push("", "Secrets: passwords in DAEMON_URL are never logged.");
  return lines.join("\n");
}

/** Every environment variable the configuration reads (with ElectrumX aliases), for a narrow `--allow-env`. */
export const ENV_VARIABLES: readonly string[] = [
  ...VARS.flatMap((v) => [v.name, ...(v.envAliases ?? [])]),
  // loadConfig also looks for these, to refuse obsolete ones and report ignored ones.
  ...OBSOLETE,
  ...IGNORED,
];

/** Reads only Coulomb's own variables, so the process needs `--allow-env` for those names alone. */
export function readEnvironment(
  names: readonly string[] = ENV_VARIABLES,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const name of names) env[name] = Deno.env.get(name);
  return env;
}
