// `deno task sync` / `deno task start`: reads the configuration, then runs main.ts in a child Deno process
// whose permissions are exactly what that configuration needs (see src/permissions.ts). Signals are passed
// on so that SIGTERM still means "flush and exit 0"; the child's exit code becomes ours.
import { ConfigError, loadConfig, readEnvironment } from "../src/config.ts";
import { permissionFlags, projectNodeModules } from "../src/permissions.ts";

const mainUrl = new URL("../main.ts", import.meta.url);
let loaded;
try {
  loaded = loadConfig(readEnvironment(), Deno.args);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`coulomb: ${err.message}`);
  Deno.exit(2);
}
if ("help" in loaded || "version" in loaded) {
  console.log("help" in loaded ? loaded.help : loaded.version);
  Deno.exit(0);
}

const flags = permissionFlags(loaded, {
  nodeModules: projectNodeModules(new URL("../deno.json", import.meta.url)),
});
if (Deno.env.get("COULOMB_PRINT_FLAGS")) console.error(`deno run ${flags.join(" ")} ${mainUrl.pathname}`);
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "--quiet", ...flags, mainUrl.pathname, ...Deno.args],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
const forward = (sig: Deno.Signal) => () => {
  try {
    child.kill(sig);
  } catch {
    // The child already exited; its status arrives below.
  }
};
const signals: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"];
const handlers = signals.map((sig) => [sig, forward(sig)] as const);
for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
const status = await child.status;
for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
Deno.exit(status.code);
