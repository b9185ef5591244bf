// The service samples (runit envdir and scripts, systemd unit), their NOTES and the configuration table of
// docs/operations.md, checked against what src/config.ts actually accepts: an operator copying them gets a
// configuration that loads, and every variable is explained somewhere.
import assert from "node:assert/strict";
import { type Config, ENV_VARIABLES, helpText, loadConfig } from "../src/config.ts";
import { ALLOCATOR_ENV, findJemalloc, JEMALLOC_CONF, JEMALLOC_PATHS } from "../src/allocator.ts";
import { compileArgs, CONVENTIONAL_ENV, readEnvDir } from "../scripts/compile.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ENV_DIR = `${ROOT}samples/runit/coulomb/env`;
const UNIT = `${ROOT}samples/systemd/coulomb.service`;

/** One variable as `--help` describes it. */
interface HelpRow {
  names: string[];
  flags: string[];
  /** As printed after "default:", or undefined when none is printed. */
  def: string | undefined;
}

function helpRows(): HelpRow[] {
  const rows: HelpRow[] = [];
  for (const line of helpText().split("\n")) {
    const m = /^ {2}(--[^(]+?) \(([A-Z0-9_, ]+)\)\s{2,}(.*)$/.exec(line);
    if (!m) continue;
    const def = /\[default: (.*)\]$/.exec(m[3])?.[1];
    rows.push({ flags: m[1].split(", "), names: m[2].split(", "), def });
  }
  return rows;
}

/** The first name of every setting: what runit files and NOTES entries are called. */
function configVariables(): string[] {
  return helpRows().map((r) => r.names[0]);
}

/** The unit's Environment= lines, without the allocator settings (checked on their own). */
function unitEnvironment(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm)) {
    if (!(m[1] in ALLOCATOR_ENV) && m[1] !== "LD_PRELOAD" && m[1] !== "MALLOC_CONF") env[m[1]] = m[2];
  }
  return env;
}

function asConfig(loaded: ReturnType<typeof loadConfig>): Config {
  assert.ok("coin" in loaded, "expected a configuration");
  return loaded;
}

Deno.test("help lists every variable the configuration reads (the basis of the checks below)", () => {
  const rows = helpRows();
  assert.equal(rows.length, 36);
  const named = new Set(rows.flatMap((r) => r.names));
  for (const name of named) assert.ok(ENV_VARIABLES.includes(name), name);
  assert.deepEqual(rows.find((r) => r.names[0] === "CACHE_MB")?.def, "1200");
});

Deno.test("samples: every runit env file and systemd Environment= line is a variable Coulomb reads", async () => {
  const variables = configVariables();
  const envDir = await readEnvDir(ENV_DIR);
  assert.ok(Object.keys(envDir).length >= 5);
  for (const name of Object.keys(envDir)) assert.ok(variables.includes(name), `env/${name}`);
  const unit = unitEnvironment(await Deno.readTextFile(UNIT));
  assert.ok(Object.keys(unit).length >= 5);
  for (const name of Object.keys(unit)) assert.ok(variables.includes(name), `Environment=${name}`);
});

Deno.test("samples: the runit envdir and the systemd unit load as one and the same configuration", async () => {
  const fromEnvDir = asConfig(loadConfig(await readEnvDir(ENV_DIR), []));
  const fromUnit = asConfig(loadConfig(unitEnvironment(await Deno.readTextFile(UNIT)), []));
  assert.deepEqual(fromUnit, fromEnvDir);
  assert.equal(fromEnvDir.net, "mainnet");
  assert.equal(fromEnvDir.dbDirectory, "/var/lib/coulomb");
  assert.deepEqual(fromEnvDir.services.map((s) => s.protocol), ["tcp", "ssl", "rpc"]);
  assert.deepEqual(fromEnvDir.ignoredVariables, []);
});

Deno.test("samples: their permissions are those of a binary built with the conventional defaults", async () => {
  const opts = { output: "dist/coulomb", runtimeTmpDir: "/tmp" };
  const samples = compileArgs(asConfig(loadConfig(await readEnvDir(ENV_DIR), [])), opts);
  const conventional = compileArgs(asConfig(loadConfig(CONVENTIONAL_ENV, [])), opts);
  assert.deepEqual(samples, conventional);
});

Deno.test("samples/NOTES has one entry per variable, stating exactly what the samples set", async () => {
  const notes = await Deno.readTextFile(`${ROOT}samples/NOTES`);
  const entries = new Map<string, string | undefined>();
  for (const line of notes.split("\n")) {
    const m = /^([A-Z][A-Z0-9_]+)(?: = (.+)| unset)$/.exec(line);
    if (m) {
      assert.ok(!entries.has(m[1]), `${m[1]} twice`);
      entries.set(m[1], m[2]);
      continue;
    }
    // Anything else at the start of a line would be an entry in the wrong format.
    assert.ok(!/^[A-Z][A-Z0-9_]+\b/.test(line), `malformed entry: ${line}`);
  }
  assert.deepEqual([...entries.keys()].sort(), configVariables().sort());
  const envDir = await readEnvDir(ENV_DIR);
  for (const [name, value] of entries) assert.equal(value, envDir[name], name);
  // Every entry is explained (an indented paragraph follows it).
  for (const name of entries.keys()) {
    assert.match(notes, new RegExp(`^${name}(?: = .+| unset)\\n {4}\\S`, "m"), name);
  }
});

Deno.test("samples: runit scripts exec the service with its envdir and log through svlogd", async () => {
  for (const file of ["run", "log/run"]) {
    const path = `${ROOT}samples/runit/coulomb/${file}`;
    assert.ok(((await Deno.stat(path)).mode ?? 0) & 0o111, `${file} is executable`);
    assert.match(await Deno.readTextFile(path), /^#!\/bin\/sh\n/);
  }
  const run = await Deno.readTextFile(`${ROOT}samples/runit/coulomb/run`);
  assert.match(run, /^exec 2>&1$/m);
  assert.match(run, /^exec chpst -e \.\/env -u coulomb:coulomb -o \d+ \/usr\/local\/bin\/coulomb$/m);
  assert.match(await Deno.readTextFile(`${ROOT}samples/runit/coulomb/log/run`), /^exec .*svlogd /m);
});

Deno.test("samples: both services start Coulomb with the launcher's glibc allocator settings", async () => {
  const expected = Object.entries(ALLOCATOR_ENV).map(([k, v]) => `${k}=${v}`).sort();
  const run = await Deno.readTextFile(`${ROOT}samples/runit/coulomb/run`);
  const exported = /^export (.+)$/m.exec(run)?.[1].split(" ") ?? [];
  assert.deepEqual(exported.sort(), expected);
  // Exported before the service is exec'd, not after.
  assert.ok(run.indexOf("\nexport MALLOC_") < run.indexOf("\nexec chpst"));
  const unit = await Deno.readTextFile(UNIT);
  const set = [...unit.matchAll(/^Environment=(MALLOC_(?!CONF=)[A-Z_]+=\S+)$/gm)].map((m) => m[1]).sort();
  assert.deepEqual(set, expected);
  const notes = await Deno.readTextFile(`${ROOT}samples/NOTES`);
  for (const kv of expected) assert.ok(notes.replace(/\s+/g, " ").includes(kv), `NOTES explain ${kv}`);
});

Deno.test("samples: both services preload jemalloc, the run script only where it is installed", async () => {
  const unit = await Deno.readTextFile(UNIT);
  const preload = /^Environment=LD_PRELOAD=(\S+)$/m.exec(unit)?.[1];
  assert.ok(preload !== undefined && JEMALLOC_PATHS.includes(preload), `unit preloads ${preload}`);
  assert.match(unit, new RegExp(`^Environment=MALLOC_CONF=${JEMALLOC_CONF}$`, "m"));
  // Run the real run script with a chpst that prints the environment it was given instead of starting
  // Coulomb: LD_PRELOAD must be there exactly when this machine has the library at the script's path.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/chpst`, "#!/bin/sh\nexec env\n");
    await Deno.chmod(`${dir}/chpst`, 0o755);
    const out = await new Deno.Command("sh", {
      args: [`${ROOT}samples/runit/coulomb/run`],
      cwd: `${ROOT}samples/runit/coulomb`,
      env: { PATH: `${dir}:/usr/bin:/bin` },
      clearEnv: true,
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const env = new TextDecoder().decode(out.stdout).split("\n");
    assert.ok(env.includes("MALLOC_ARENA_MAX=2"), "the run script reached chpst");
    // The script looks where the launcher looks, in the same order, and picks what the launcher would.
    const run = await Deno.readTextFile(`${ROOT}samples/runit/coulomb/run`);
    const list = /^for jemalloc in ([^;]+); do$/m.exec(run.replace(/ \\\n\s*/g, " "))?.[1];
    assert.deepEqual(list?.split(" "), [...JEMALLOC_PATHS]);
    const path = findJemalloc();
    assert.equal(
      env.find((e) => e.startsWith("LD_PRELOAD=")),
      path === undefined ? undefined : `LD_PRELOAD=${path}`,
    );
    assert.equal(env.includes(`MALLOC_CONF=${JEMALLOC_CONF}`), path !== undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("samples: the systemd unit reloads with SIGHUP, stops with SIGTERM and keeps V8's JIT possible", async () => {
  const unit = await Deno.readTextFile(UNIT);
  assert.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(unit, /^KillSignal=SIGTERM$/m);
  for (
    const key of ["NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "StateDirectory=coulomb"]
  ) {
    assert.match(unit, new RegExp(`^${key}$`, "m"), key);
  }
  assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=(yes|true)/m);
});

Deno.test("docs/operations.md: the configuration table matches --help (names, flags, defaults)", async () => {
  const doc = await Deno.readTextFile(`${ROOT}docs/operations.md`);
  const table = new Map<string, { flags: string; def: string }>();
  for (const m of doc.matchAll(/^\| `([A-Z][A-Z0-9_]+)`[^|]*\| ([^|]+) \| ([^|]+) \|/gm)) {
    table.set(m[1], { flags: m[2].trim(), def: m[3].trim() });
  }
  const rows = helpRows();
  assert.deepEqual([...table.keys()].sort(), rows.map((r) => r.names[0]).sort());
  for (const r of rows) {
    const row = table.get(r.names[0])!;
    assert.equal(row.flags, r.flags.map((f) => `\`${f}\``).join(", "), r.names[0]);
    assert.equal(row.def, r.def === undefined ? "—" : `\`${r.def}\``, r.names[0]);
  }
});
