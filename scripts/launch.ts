// `deno task start` / `deno task sync`: reads the configuration, then runs main.ts in a child Deno process
// whose permissions are exactly what that configuration needs (see src/permissions.ts). Signals are passed
// on so that SIGTERM still means "flush and exit 0", SIGHUP reloads the certificate and SIGUSR1/SIGUSR2 log a
// status; the child's exit code becomes ours.
import { type Config, ConfigError, loadConfig, readEnvironment } from "../src/config.ts";
import { allocatorEnv } from "../src/allocator.ts";
import {
  closeSignalInspector,
  LAUNCHER_VARIABLE,
  permissionFlags,
  projectCode,
  projectNodeModules,
} from "../src/permissions.ts";

const ROOT_FILE = new URL("../deno.json", import.meta.url);
const MAIN_FILE = new URL("../main.ts", import.meta.url);

/** The signals a supervisor may send that the launcher hands to Coulomb. */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGINT",
  "SIGHUP",
  "SIGUSR1",
  "SIGUSR2",
];

/** The `deno run …` arguments (after the executable) that start main.ts sandboxed for `config`. */
export function runArgs(config: Config, argv: readonly string[] = []): string[] {
  return [
    "run",
    "--quiet",
    // A service has no one to answer a permission prompt: a refusal must fail at once, with its message.
    "--no-prompt",
    `--config=${ROOT_FILE.pathname}`,
    ...permissionFlags(config, { nodeModules: projectNodeModules(ROOT_FILE), code: projectCode(ROOT_FILE) }),
    MAIN_FILE.pathname,
    ...argv,
  ];
}

async function launch(argv: string[]): Promise<number> {
  let args: string[];
  try {
    const loaded = loadConfig(readEnvironment(), argv);
    if ("help" in loaded || "version" in loaded) {
      console.log("help" in loaded ? loaded.help : loaded.version);
      return 0;
    }
    // The sandbox refuses what it cannot grant (a listen address given by name) as a configuration error.
    args = runArgs(loaded, argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`coulomb: ${err.message}`);
    return 2;
  }
  if (Deno.env.get("COULOMB_PRINT_FLAGS")) console.error(`deno ${args.join(" ")}`);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { ...allocatorEnv(Deno.env.toObject()), [LAUNCHER_VARIABLE]: String(Deno.pid) },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (sig: Deno.Signal) => () => {
    // The launcher may run anything (--allow-run): a debugger opened on it would be a way around the sandbox.
    if (sig === "SIGUSR1") closeSignalInspector((m) => console.error(`coulomb launcher: ${m}`));
    try {
      child.kill(sig);
    } catch {
      // The child already exited; its status arrives below.
    }
  };
  const handlers = FORWARDED_SIGNALS.map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  const status = await child.status;
  for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  // Coulomb killed by a signal: end the same way, so that the supervisor sees what happened to the service
  // (a death by SIGKILL, say) rather than an ordinary exit status 128 + n.
  if (status.signal !== null) {
    try {
      Deno.kill(Deno.pid, status.signal);
    } catch {
      // Not allowed or not possible: the exit status below says it as a shell would.
    }
  }
  return status.code;
}

if (import.meta.main) Deno.exit(await launch(Deno.args));
