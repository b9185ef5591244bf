// The sandbox Coulomb runs in: Deno permission flags computed from the configuration, so the process can
// reach only its daemon(s) and listen addresses, read and write only its database directory (plus the files
// the configuration names), and read only its own environment variables.
import { dirname, resolve } from "node:path";
import { type Config, ENV_VARIABLES } from "./config.ts";

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

/** Where the project's npm packages live (the native LevelDB addon is loaded from there). */
export interface SandboxPaths {
  /** Absolute path of the node_modules directory holding classic-level. */
  nodeModules: string;
}

/** The `deno run` permission flags for running Coulomb with `config`. */
export function permissionFlags(config: Config, paths: SandboxPaths): string[] {
  const net = new Set<string>();
  for (const url of config.daemonUrls) net.add(new URL(url).host);
  for (const s of config.services) net.add(`${s.host === "" ? "0.0.0.0" : s.host}:${s.port}`);

  const db = resolve(config.dbDirectory);
  const read = new Set<string>([db, paths.nodeModules, ...ADDON_READ]);
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
    `--allow-env=${[...ENV_VARIABLES, ...ADDON_ENV].join(",")}`,
    `--allow-ffi=${paths.nodeModules}`,
  ];
}

/** The node_modules directory beside a file of the project root (e.g. deno.json's URL). */
export function projectNodeModules(rootFile: URL): string {
  return resolve(dirname(rootFile.pathname), "node_modules");
}
