// The sandbox Coulomb runs in: Deno permission flags computed from the configuration, so the process can
// reach only its daemon(s) and listen addresses, read and write only its database directory (plus the files
// the configuration names), and read only its own environment variables. The same flags serve `deno run`
// (scripts/launch.ts) and `deno compile` (scripts/compile.ts), where they are baked into the binary.
import inspector from "node:inspector";
import { dirname, join, resolve } from "node:path";
import { isIP } from "node:net";
import { type Config, ConfigError, ENV_VARIABLES } from "./config.ts";
import { hostPort } from "./host_port.ts";
import type { Log } from "./log.ts";
import { SEEDS } from "./server/peer_seeds.ts";
import { errorText } from "./error_text.ts";

// classic-level loads its native addon through node-gyp-build, which reads these variables and probes
// /etc/alpine-release to choose a prebuilt binary. Without them the addon cannot load at all.
const ADDON_ENV = [
  "PREBUILDS_ONLY",
  "ELECTRON_RUN_AS_NODE",
  "npm_config_arch",
  "npm_config_platform",
  "LIBC",
  "npm_config_runtime",
  "npm_config_target",
  "npm_config_libc",
  "ARM_VERSION",
];
const ADDON_READ = ["/etc/alpine-release"];

/** The test-only hook: when set, main.ts tries the forbidden operations it lists at start and logs each outcome. */
export const PROBE_VARIABLE = "COULOMB_SANDBOX_PROBE";

/** Set by the launcher to its own pid: main.ts then shuts down if the launcher goes away (see main.ts). */
export const LAUNCHER_VARIABLE = "COULOMB_LAUNCHER_PID";

/** Where the project's npm packages live (the native LevelDB addon is loaded from there). */
export interface SandboxPaths {
  /** Absolute path of the node_modules directory holding classic-level (in a compiled binary: its VFS root). */
  nodeModules: string;
  /**
   * Absolute path of Coulomb's own source directory, which the socket thread's Worker loads its modules from
   * (Deno checks read permission for a Worker's modules). Omitted for a compiled binary: it embeds them.
   */
  code?: string;
}

/**
 * The net permissions a listen address needs. node:net binds what a name resolves to and Deno checks that
 * address, not the name: "localhost" is granted as its loopback addresses; any other name cannot be granted
 * ahead of time, so the sandbox refuses it (a ConfigError naming SERVICES) rather than let the bind fail.
 * "::" falls back to "0.0.0.0" where IPv6 is off, so both are granted.
 */
export function listenGrants(service: { protocol: string; host: string; port: number }): string[] {
  const { host, port } = service;
  if (host === "::") return [hostPort("::", port), hostPort("0.0.0.0", port)];
  if (host.toLowerCase() === "localhost") {
    return [hostPort("localhost", port), hostPort("127.0.0.1", port), hostPort("::1", port)];
  }
  if (isIP(host) === 0 && service.protocol !== "rpc") {
    throw new ConfigError(
      "SERVICES",
      `SERVICES: ${service.protocol}://${
        hostPort(host, port)
      } names a host; under the sandbox listen on an ` +
        "IP address (or localhost, or nothing for every interface): a name is resolved when the listener binds, " +
        "and the permission for its address cannot be granted ahead of time",
    );
  }
  return [hostPort(host, port)];
}

/** The permission flags (for `deno run` or `deno compile`) for running Coulomb with `config`. */
export function permissionFlags(config: Config, paths: SandboxPaths): string[] {
  const net = new Set<string>();
  for (const url of config.daemonUrls) net.add(new URL(url).host);
  for (const s of config.services) for (const grant of listenGrants(s)) net.add(grant);
  if (config.metrics) net.add(hostPort(config.metrics.host, config.metrics.port));
  // Server.reloadTls (SIGHUP) proves a new certificate on a throwaway loopback listener before swapping it in.
  if (config.services.some((s) => s.protocol === "ssl" || s.protocol === "wss")) net.add("127.0.0.1:0");
  // Peer discovery reaches the seeds and PEERS only: Deno cannot grant "any host on port 50002", so peers
  // learned from other servers are contacted only when PEERS names them too (src/server/peers.ts skips the rest).
  if (config.peerDiscovery === "on") {
    for (const p of [...SEEDS[config.net], ...config.peers]) {
      for (const port of [p.sslPort, p.tcpPort]) if (port !== null) net.add(hostPort(p.host, port));
    }
  }

  const db = resolve(config.dbDirectory);
  const read = new Set<string>([db, paths.nodeModules, ...ADDON_READ]);
  if (paths.code !== undefined && config.socketThread !== "main") read.add(paths.code);
  for (const file of [config.daemonCookie, config.sslCertfile, config.sslKeyfile, config.bannerFile]) {
    if (file !== undefined) read.add(resolve(file));
  }
  // bitcoind replaces its cookie by writing .cookie.tmp and renaming it; reading the directory is not needed,
  // the file path is enough.
  const write = new Set<string>([db]);

  return [
    `--allow-net=${[...net].join(",")}`,
    `--allow-read=${[...read].join(",")}`,
    `--allow-write=${[...write].join(",")}`,
    `--allow-env=${[...ENV_VARIABLES, ...ADDON_ENV, PROBE_VARIABLE, LAUNCHER_VARIABLE].join(",")}`,
    `--allow-ffi=${paths.nodeModules}`,
    // Only for closeSignalInspector (Deno has no narrower descriptor for the inspector); it reveals host facts
    // such as the hostname and load, and grants nothing to read, write, connect or run.
    "--allow-sys",
  ];
}

/** The source directory (src/) beside a file of the project root (e.g. deno.json's URL). */
export function projectCode(rootFile: URL): string {
  return resolve(dirname(rootFile.pathname), "src");
}

/** The node_modules directory beside a file of the project root (e.g. deno.json's URL). */
export function projectNodeModules(rootFile: URL): string {
  return resolve(dirname(rootFile.pathname), "node_modules");
}

/**
 * The directory a compiled binary named `exeName` serves its embedded files from: `<tmp>/deno-compile-<name>`,
 * with `<tmp>` the runtime's TMPDIR (default /tmp). Deno grants reads there by itself; native addons are checked
 * against their path there (then copied to `<tmp>/deno-native-addons/` to be loaded).
 */
export function compiledRoot(exeName: string, tmpDir = "/tmp"): string {
  return join(tmpDir, `deno-compile-${exeName}`);
}

/** A sandbox refusal parsed from Deno's NotCapable message. */
export interface Denial {
  /** read, write, net, env, run, ffi, sys or import. */
  kind: string;
  /** The path, host:port, variable or command refused. */
  target: string;
  /** The flag that would allow it, e.g. "--allow-read". */
  flag: string;
}

// Deno's wording, e.g. `Requires read access to "/x", run again with the --allow-read flag`.
const DENIAL =
  /Requires (\w+) access to "?(.*?)"?, (?:run again with|specify the required permissions)[^.]*?(--allow-[a-z]+)(?: flag)?/;

/** The first refusal quoted in `message` (Deno's own, or one wrapped by another error); undefined if none. */
export function parseDenial(message: string): Denial | undefined {
  const m = DENIAL.exec(message);
  return m ? { kind: m[1], target: m[2], flag: m[3] } : undefined;
}

/**
 * What to tell the operator about an error: its message, with a sandbox refusal (even one wrapped in another
 * error's message) restated as the access and the flag that would grant it.
 */
export function describeError(err: unknown): string {
  const message = errorText(err);
  const d = parseDenial(message);
  if (!d) {
    return err instanceof Deno.errors.NotCapable ? `the sandbox denied an operation: ${message}` : message;
  }
  return message.replace(
    DENIAL,
    `the sandbox denied ${d.kind} access to "${d.target}" (add it to ${d.flag})`,
  );
}

/** For a sandbox refusal that stops Coulomb, how the flags come about and what to do; undefined otherwise. */
export function sandboxAdvice(err: unknown): string | undefined {
  const message = errorText(err);
  if (!(err instanceof Deno.errors.NotCapable) && !parseDenial(message)) return undefined;
  return "the permissions are computed from the configuration: `deno task start` recomputes them at every " +
    "start, a compiled binary keeps those of its build: rebuild it with `deno task compile` for this " +
    'configuration (docs/operations.md, "The sandbox")';
}

/** The probe variable's value, or undefined when unset or when reading it is not allowed. */
export function readProbeSpec(): string | undefined {
  return readOwnVariable(PROBE_VARIABLE);
}

/** One of Coulomb's own (non-configuration) variables, or undefined when unset or not readable. */
export function readOwnVariable(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
  return Deno.env.get(name);
}

/** One probe attempt and its outcome. */
export interface ProbeResult {
  /** read, write, connect, listen, env, run or ffi. */
  op: string;
  target: string;
  outcome: "denied" | "allowed" | "failed";
  /** The denial or failure text; empty when allowed. */
  detail: string;
}

const PROBE_OPS = ["read", "write", "connect", "listen", "env", "run", "ffi"];

/**
 * Tries each `op=target` of a comma-separated spec (read=/path, write=/path, connect=host:port,
 * listen=host:port, env=NAME, run=/bin/sh, ffi=/lib.so) and logs one line per attempt: `sandbox probe: read
 * /path: denied (...)`. Nothing read is logged; a write that succeeds is removed again. Used by the tests that
 * prove the sandbox; harmless in production, where every attempt should be denied.
 */
export async function runSandboxProbe(spec: string, log: Log): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (const item of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf("=");
    const op = eq < 0 ? item : item.slice(0, eq);
    const target = eq < 0 ? "" : item.slice(eq + 1);
    let result: ProbeResult;
    if (!PROBE_OPS.includes(op) || !target) {
      result = { op, target, outcome: "failed", detail: `expected one of ${PROBE_OPS.join(", ")}=target` };
    } else {
      try {
        await attempt(op, target);
        result = { op, target, outcome: "allowed", detail: "" };
      } catch (err) {
        const denied = err instanceof Deno.errors.NotCapable;
        result = { op, target, outcome: denied ? "denied" : "failed", detail: describeError(err) };
      }
    }
    results.push(result);
    const line = `sandbox probe: ${result.op} ${result.target}: ${result.outcome}` +
      (result.detail ? ` (${result.detail})` : "");
    if (result.outcome === "allowed") log.warn(line);
    else log.info(line);
  }
  return results;
}

async function attempt(op: string, target: string): Promise<void> {
  switch (op) {
    case "read": {
      using file = await Deno.open(target, { read: true });
      await file.read(new Uint8Array(1));
      return;
    }
    case "write": {
      // createNew: never clobber an existing file, even where writing is (wrongly) allowed.
      const file = await Deno.open(target, { write: true, createNew: true });
      file.close();
      await Deno.remove(target);
      return;
    }
    case "connect": {
      const { hostname, port } = splitHostPort(target);
      (await Deno.connect({ hostname, port })).close();
      return;
    }
    case "listen": {
      const { hostname, port } = splitHostPort(target);
      Deno.listen({ hostname, port }).close();
      return;
    }
    case "env":
      Deno.env.get(target);
      return;
    case "run":
      // Without the inherited environment: under jemalloc it holds LD_PRELOAD, and Deno then refuses any spawn
      // for that reason first, which would not say whether `target` itself may run.
      await new Deno.Command(target, { clearEnv: true, stdin: "null", stdout: "null", stderr: "null" })
        .output();
      return;
    case "ffi":
      Deno.dlopen(target, {}).close();
      return;
  }
}

function splitHostPort(target: string): { hostname: string; port: number } {
  const colon = target.lastIndexOf(":");
  const hostname = target.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(target.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`'${target}' is not host:port`);
  }
  return { hostname, port };
}

/**
 * Since Deno 2.9.2 a SIGUSR1 makes the runtime open a debugger on 127.0.0.1:9229, where any local user could
 * attach and run code inside the process. Call this from a SIGUSR1 listener: it closes that debugger as soon
 * as it appears (the runtime opens it a few milliseconds after the listeners run), unless one was already open
 * before the signal (a deliberate --inspect). Reports through `report`.
 */
export function closeSignalInspector(report: (message: string) => void, waitMs = 1000): void {
  if (Deno.permissions.querySync({ name: "sys" }).state !== "granted") {
    report(
      "SIGUSR1 may have opened Deno's debugger on 127.0.0.1:9229 and it cannot be closed without --allow-sys",
    );
    return;
  }
  if (inspector.url()) return;
  const start = performance.now();
  const poll = () => {
    const url = inspector.url();
    if (url) {
      inspector.close();
      report(`closed the debugger the Deno runtime opened on SIGUSR1 (${url.replace(/\/[^/]*$/, "")})`);
    } else if (performance.now() - start < waitMs) {
      setTimeout(poll, 1);
    }
  };
  poll();
}
