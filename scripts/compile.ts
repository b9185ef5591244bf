// `deno task compile`: builds dist/coulomb, a single binary with Coulomb's sandbox baked in. A compiled
// binary's permissions are fixed when it is built, so the build reads the deployment's configuration (an
// envdir such as samples/runit/coulomb/env, the environment and the same flags as running) and grants exactly
// what src/permissions.ts computes from it. A binary built for one configuration refuses a different database
// directory, daemon or listen address at run time, with a message naming the permission: rebuild it then.
import { basename, isAbsolute, join, resolve } from "node:path";
import { type Config, ConfigError, ENV_VARIABLES, loadConfig } from "../src/config.ts";
import { compiledRoot, permissionFlags } from "../src/permissions.ts";
import { hostPort } from "../src/host_port.ts";

const ROOT_FILE = new URL("../deno.json", import.meta.url);
const MAIN_FILE = new URL("../main.ts", import.meta.url);
// Loaded with `new Worker`, which the module graph of main.ts does not show: it must be embedded explicitly.
const SOCKET_THREAD_FILE = new URL("../src/server/socket_thread.ts", import.meta.url);

/** The configuration a binary is built for when nothing else is given: a conventional single-host install. */
export const CONVENTIONAL_ENV: Readonly<Record<string, string>> = {
  NET: "mainnet",
  DB_DIRECTORY: "/var/lib/coulomb",
  DAEMON_URL: "http://127.0.0.1:8332/",
  DAEMON_COOKIE: "/var/lib/bitcoind/.cookie",
  SERVICES: "tcp://0.0.0.0:50001,ssl://0.0.0.0:50002,rpc://127.0.0.1:8000",
  SSL_CERTFILE: "/etc/coulomb/tls.crt",
  SSL_KEYFILE: "/etc/coulomb/tls.key",
};

/** What to build. */
export interface CompileOptions {
  /** The binary to write; its file name matters at run time (see compiledRoot). */
  output: string;
  /** A `deno compile --target` triple; the host's when undefined. */
  target?: string;
  /** TMPDIR of the service at run time (default /tmp): the binary's embedded files appear under it. */
  runtimeTmpDir: string;
}

/** The `deno compile …` arguments (after the executable) that build Coulomb for `config`. */
export function compileArgs(config: Config, opts: CompileOptions): string[] {
  const output = resolve(opts.output);
  const root = compiledRoot(basename(output), opts.runtimeTmpDir);
  return [
    "compile",
    // A release is built from exactly the locked dependencies.
    "--frozen",
    `--config=${ROOT_FILE.pathname}`,
    `--output=${output}`,
    ...(opts.target ? [`--target=${opts.target}`] : []),
    "--no-prompt",
    `--include=${SOCKET_THREAD_FILE.pathname}`,
    ...permissionFlags(config, { nodeModules: root }),
    MAIN_FILE.pathname,
  ];
}

/**
 * Reads a daemontools/runit envdir as `chpst -e` does: one variable per file, its value the first line with
 * trailing blanks removed and NULs turned into newlines; an empty file means "unset".
 */
export async function readEnvDir(dir: string): Promise<Record<string, string | undefined>> {
  const env: Record<string, string | undefined> = {};
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || entry.name.startsWith(".") || entry.name.includes("=")) continue;
    const text = await Deno.readTextFile(join(dir, entry.name));
    env[entry.name] = text === ""
      ? undefined
      : text.split("\n")[0].replace(/[ \t]+$/, "").replaceAll("\0", "\n");
  }
  return env;
}

/** Paths a compiled binary must know absolutely: its permissions cannot follow a working directory. */
export function checkAbsolutePaths(config: Config): void {
  const paths: [string, string | undefined][] = [
    ["DB_DIRECTORY", config.dbDirectory],
    ["DAEMON_COOKIE", config.daemonCookie],
    ["SSL_CERTFILE", config.sslCertfile],
    ["SSL_KEYFILE", config.sslKeyfile],
  ];
  for (const [name, path] of paths) {
    if (path !== undefined && !isAbsolute(path)) {
      throw new ConfigError(
        name,
        `${name} must be an absolute path for a compiled binary (got '${path}'): its permissions are fixed ` +
          "at build time, the working directory at run time is not",
      );
    }
  }
}

/** A command line as one copy-pasteable shell line. */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
}

const HELP =
  `Usage: deno task compile [--output FILE] [--target TRIPLE] [--runtime-tmpdir DIR] [--env-dir DIR]
                         [--dry-run] [coulomb flags...]

Builds a single Coulomb binary whose permissions are computed from the deployment's configuration and fixed
at build time. The configuration is, in increasing priority:
  - with --env-dir DIR: the variables of that runit/daemontools envdir (what chpst -e gives the service);
    otherwise Coulomb's variables in the environment (e.g. chpst -e /etc/sv/coulomb/env deno task compile)
    or, when they set neither DB_DIRECTORY nor DAEMON_URL, the conventional install:
    ${Object.entries(CONVENTIONAL_ENV).map(([k, v]) => `${k}=${v}`).join("\n    ")}
  - Coulomb's own flags (see coulomb --help).

  --output FILE          the binary (default dist/coulomb); install it under this same file name
  --target TRIPLE        cross-compile, e.g. aarch64-unknown-linux-gnu
  --runtime-tmpdir DIR   TMPDIR of the service at run time (default /tmp)
  --env-dir DIR          the service's envdir, e.g. samples/runit/coulomb/env
  --dry-run              print the deno compile command without running it`;

const OWN_VALUE_FLAGS = ["output", "target", "runtime-tmpdir", "env-dir"];

/** Splits our own flags from Coulomb's; returns undefined for --help. */
export function parseCompileArgs(
  argv: readonly string[],
): { own: Record<string, string>; dryRun: boolean; rest: string[] } | undefined {
  const own: Record<string, string> = {};
  const rest: string[] = [];
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return undefined;
    if (arg === "--dry-run") {
      dryRun = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (m && OWN_VALUE_FLAGS.includes(m[1])) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new ConfigError("argv", `--${m[1]} needs a value; see --help`);
      own[m[1]] = value;
      continue;
    }
    rest.push(arg);
  }
  return { own, dryRun, rest };
}

async function compile(argv: string[]): Promise<number> {
  let args;
  let config: Config;
  let opts: CompileOptions;
  let cmd: string[];
  try {
    args = parseCompileArgs(argv);
    if (!args) {
      console.log(HELP);
      return 0;
    }
    const envDir = args.own["env-dir"];
    let env;
    try {
      env = envDir ? await readEnvDir(envDir) : buildEnvironment(currentEnvironment());
    } catch (err) {
      if (!(err instanceof Deno.errors.NotCapable)) throw err;
      // The task may read the checkout only: an envdir elsewhere comes in through the environment instead.
      throw new ConfigError(
        "--env-dir",
        `cannot read ${envDir} (the compile task reads only inside the checkout); ` +
          `run \`chpst -e ${envDir} deno task compile\` instead`,
      );
    }
    const loaded = loadConfig(env, args.rest);
    if (!("coin" in loaded)) throw new ConfigError("argv", "--help and --version have no place in a build");
    checkAbsolutePaths(loaded);
    config = loaded;
    opts = {
      output: args.own.output ?? "dist/coulomb",
      target: args.own.target,
      runtimeTmpDir: args.own["runtime-tmpdir"] ?? "/tmp",
    };
    // The sandbox refuses what it cannot grant (a listen address given by name) as a configuration error.
    cmd = compileArgs(config, opts);
  } catch (err) {
    if (!(err instanceof ConfigError || err instanceof Deno.errors.NotFound)) throw err;
    console.error(`compile: ${err.message}`);
    return 2;
  }
  console.log(`building ${resolve(opts.output)} for NET=${config.net} DB_DIRECTORY=${config.dbDirectory}`);
  console.log(
    `  services ${
      config.services.map((s) => `${s.protocol}://${hostPort(s.host, s.port)}`).join(",") || "none"
    }`,
  );
  console.log(`  run it with TMPDIR=${opts.runtimeTmpDir} (or unset, for /tmp) and this same configuration`);
  console.log(shellLine(["deno", ...cmd]));
  if (args.dryRun) return 0;
  const status = await new Deno.Command(Deno.execPath(), { args: cmd, stdout: "inherit", stderr: "inherit" })
    .spawn().status;
  return status.code;
}

/**
 * The configuration to build for from the build's environment: taken as it is when it configures Coulomb (it
 * is then what the service will run with, e.g. under `chpst -e ENVDIR`), the conventional install otherwise.
 */
export function buildEnvironment(
  env: Record<string, string | undefined>,
): Record<string, string | undefined> {
  const configured = env.DB_DIRECTORY !== undefined || env.DAEMON_URL !== undefined;
  return configured ? env : { ...CONVENTIONAL_ENV, ...env };
}

function currentEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ENV_VARIABLES) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return env;
}

if (import.meta.main) Deno.exit(await compile(Deno.args));
