// The sandbox: the flags src/permissions.ts computes, the launcher and compile command lines built from them,
// every deno.json task, and — against a real simnet — a Coulomb started by `deno task start` that syncs and
// serves while every operation outside its configuration is refused and logged with the flag to add.
import assert from "node:assert/strict";
import { type Config, ConfigError, ENV_VARIABLES, loadConfig } from "../src/config.ts";
import {
  compiledRoot,
  describeError,
  listenGrants,
  parseDenial,
  permissionFlags,
  PROBE_VARIABLE,
  sandboxAdvice,
} from "../src/permissions.ts";
import { runArgs } from "../scripts/launch.ts";
import { SEEDS } from "../src/server/peer_seeds.ts";
import {
  buildEnvironment,
  checkAbsolutePaths,
  compileArgs,
  CONVENTIONAL_ENV,
  readEnvDir,
  shellLine,
} from "../scripts/compile.ts";
import { simnet, withTempDir } from "./integration/harness.ts";
import {
  ElectrumClient,
  freePort,
  LoggedProcess,
  simnetServiceEnv,
  startService,
  taskArgs,
} from "./launcher_harness.ts";

const REPO = new URL("../", import.meta.url).pathname;

function config(env: Record<string, string>, cpus = 2): Config {
  // Discovery off unless a test turns it on: the peer grants have a test of their own.
  const loaded = loadConfig(
    {
      DB_DIRECTORY: "/srv/db",
      DAEMON_URL: "http://u:p@10.0.0.5:8332/",
      PEER_DISCOVERY: "off",
      ...env,
    },
    [],
    cpus,
  );
  assert.ok("coin" in loaded);
  return loaded;
}

/** Flag name → its comma-separated values ("" when the flag has no value). */
function flagMap(args: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of args) {
    const m = /^(--allow-[a-z]+|-A)(?:=(.*))?$/.exec(a);
    if (m) out.set(m[1], m[2] === undefined ? [] : m[2].split(","));
  }
  return out;
}

/** The problems of a command line: all permissions, or file/network access without a scope. */
function unscoped(args: readonly string[]): string[] {
  const bad: string[] = [];
  for (const a of args) {
    if (a === "-A" || a === "--allow-all" || /^-[A-Za-z]*A[A-Za-z]*$/.test(a)) bad.push(a);
    if (/^--allow-(read|write|net)$/.test(a) || /^-[RWN]+$/.test(a)) bad.push(a);
    if (/^--allow-(read|write|net)=(.*)$/.exec(a)?.[2].split(",").some((v) => v === "" || v === "/")) {
      bad.push(a);
    }
  }
  return bad;
}

Deno.test("listenGrants: localhost as its loopback addresses; other names refused under the sandbox", () => {
  assert.deepEqual(listenGrants({ protocol: "tcp", host: "localhost", port: 50001 }), [
    "localhost:50001",
    "127.0.0.1:50001",
    "[::1]:50001",
  ]);
  assert.deepEqual(listenGrants({ protocol: "ssl", host: "10.1.2.3", port: 50002 }), ["10.1.2.3:50002"]);
  assert.deepEqual(listenGrants({ protocol: "ws", host: "fe80::1", port: 50003 }), ["[fe80::1]:50003"]);
  // The admin listener (Deno.listen) is checked by the name it is given.
  assert.deepEqual(listenGrants({ protocol: "rpc", host: "admin.lan", port: 8000 }), ["admin.lan:8000"]);
  assert.throws(
    () => listenGrants({ protocol: "tcp", host: "electrum.example", port: 50001 }),
    (e: unknown) => e instanceof ConfigError && e.variable === "SERVICES" && /names a host/.test(e.message),
  );
});

Deno.test("permissionFlags: network only to the daemons, listeners and metrics; files only the configured ones", () => {
  const c = config({
    DAEMON_URL: "http://u:p@10.0.0.5:8332/,http://u:p@backup.example:8332/",
    DAEMON_COOKIE: "/var/lib/bitcoind/.cookie",
    SERVICES: "tcp://:50001,ssl://[::1]:50002,rpc://",
    SSL_CERTFILE: "/etc/coulomb/tls.crt",
    SSL_KEYFILE: "/etc/coulomb/tls.key",
    BANNER_FILE: "banner.txt",
    METRICS: "http://127.0.0.1:9100",
  });
  const flags = permissionFlags(c, { nodeModules: "/opt/coulomb/node_modules" });
  assert.deepEqual(unscoped(flags), []);
  const f = flagMap(flags);
  assert.deepEqual(f.get("--allow-net"), [
    "10.0.0.5:8332",
    "backup.example:8332",
    // An empty host is every interface: "::", or "0.0.0.0" where IPv6 is off.
    "[::]:50001",
    "0.0.0.0:50001",
    "[::1]:50002",
    "127.0.0.1:8000",
    "127.0.0.1:9100",
    // The throwaway listener that proves a reloaded certificate.
    "127.0.0.1:0",
  ]);
  assert.deepEqual(f.get("--allow-read"), [
    "/srv/db",
    "/opt/coulomb/node_modules",
    "/etc/alpine-release",
    "/var/lib/bitcoind/.cookie",
    "/etc/coulomb/tls.crt",
    "/etc/coulomb/tls.key",
    "/srv/db/banner.txt",
  ]);
  assert.deepEqual(f.get("--allow-write"), ["/srv/db"]);
  assert.deepEqual(f.get("--allow-ffi"), ["/opt/coulomb/node_modules"]);
  const env = f.get("--allow-env")!;
  for (const name of [...ENV_VARIABLES, PROBE_VARIABLE, "PREBUILDS_ONLY"]) {
    assert.ok(env.includes(name), name);
  }
  assert.ok(!env.includes("HOME") && !env.includes("PATH"));
  assert.ok(!f.has("--allow-run") && !f.has("-A"));
});

Deno.test("permissionFlags: the source directory is readable for the socket thread's Worker when there is one", () => {
  const paths = { nodeModules: "/opt/coulomb/node_modules", code: "/opt/coulomb/src" };
  const read = (env: Record<string, string>, cpus: number) =>
    flagMap(permissionFlags(config(env, cpus), paths)).get("--allow-read")!;
  // SOCKET_THREAD=on, or the default auto with a second CPU.
  assert.ok(read({ SOCKET_THREAD: "on" }, 1).includes("/opt/coulomb/src"));
  assert.ok(read({}, 2).includes("/opt/coulomb/src"));
  assert.ok(!read({ SOCKET_THREAD: "off" }, 2).includes("/opt/coulomb/src"));
  assert.ok(!read({}, 1).includes("/opt/coulomb/src"));
  // A compiled binary embeds the module: no source directory to grant.
  const compiled = flagMap(permissionFlags(config({ SOCKET_THREAD: "on" }), { nodeModules: "/n" })).get(
    "--allow-read",
  )!;
  assert.ok(!compiled.some((p) => p.endsWith("/src")));
});

Deno.test("permissionFlags: no TLS service, no throwaway listener; relative paths become absolute", () => {
  const flags = flagMap(
    permissionFlags(config({ DB_DIRECTORY: "data/db", SERVICES: "tcp://127.0.0.1:50001" }), {
      nodeModules: "/n",
    }),
  );
  assert.deepEqual(flags.get("--allow-net"), ["10.0.0.5:8332", "127.0.0.1:50001"]);
  assert.deepEqual(flags.get("--allow-write"), [`${Deno.cwd()}/data/db`]);
});

Deno.test("permissionFlags: peer discovery adds the network's seeds and PEERS, nothing with it off", () => {
  const net = (env: Record<string, string>) =>
    flagMap(permissionFlags(config({ SERVICES: "tcp://127.0.0.1:50001", ...env }), { nodeModules: "/n" }))
      .get("--allow-net")!;
  const base = ["10.0.0.5:8332", "127.0.0.1:50001"];
  const peers = "peer.example.org s50012, [2001:db8::7] t, other.example.net";
  assert.deepEqual(net({ PEERS: peers }), base, "PEER_DISCOVERY=off grants nothing more");
  const testnet = net({
    NET: "testnet",
    DAEMON_URL: "http://u:p@10.0.0.5:18332/",
    PEER_DISCOVERY: "on",
    PEERS: peers,
  });
  assert.deepEqual(testnet.slice(0, 2), ["10.0.0.5:18332", "127.0.0.1:50001"]);
  const added = testnet.slice(2);
  for (const s of SEEDS.testnet) {
    assert.ok(added.includes(`${s.host}:${s.sslPort}`) && added.includes(`${s.host}:${s.tcpPort}`), s.host);
  }
  // PEERS: only the ports named (a letter alone is the network's default), both defaults for a bare host.
  assert.deepEqual(added.slice(-4), [
    "peer.example.org:50012",
    "[2001:db8::7]:51001",
    "other.example.net:51002",
    "other.example.net:51001",
  ]);
  assert.equal(added.length, SEEDS.testnet.length * 2 + 4);
  // Regtest has no seeds; a regtest PEERS entry may be local.
  assert.deepEqual(net({ NET: "regtest", PEER_DISCOVERY: "on", PEERS: "127.0.0.1 t50001" }), [
    "10.0.0.5:8332",
    "127.0.0.1:50001",
  ]);
  assert.deepEqual(
    net({
      NET: "regtest",
      PEER_DISCOVERY: "on",
      PEERS: "127.0.0.1 t50011",
      SERVICES: "tcp://127.0.0.1:50001",
    }),
    ["10.0.0.5:8332", "127.0.0.1:50001", "127.0.0.1:50011"],
  );
});

Deno.test("no deno.json task grants everything or unscoped file and network access", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).tasks as Record<string, string>;
  assert.ok(Object.keys(tasks).length >= 6);
  for (const [name, command] of Object.entries(tasks)) {
    for (const part of command.split("&&")) {
      assert.deepEqual(unscoped(part.trim().split(/\s+/)), [], `task ${name}: ${part.trim()}`);
    }
  }
  // The checker itself catches what it should.
  assert.deepEqual(unscoped(["run", "-A", "x.ts"]), ["-A"]);
  assert.deepEqual(unscoped(["run", "--allow-read", "--allow-net=", "-RN"]), [
    "--allow-read",
    "--allow-net=",
    "-RN",
  ]);
});

Deno.test("launcher: main.ts runs with the computed flags, never prompting", () => {
  const c = config({ SERVICES: "tcp://127.0.0.1:50001" });
  const args = runArgs(c, ["--log-level", "debug"]);
  assert.deepEqual(unscoped(args), []);
  assert.equal(args[0], "run");
  assert.ok(args.includes("--no-prompt"));
  assert.ok(args.includes(`--allow-write=/srv/db`));
  assert.deepEqual(args.slice(-3), [`${REPO}main.ts`, "--log-level", "debug"]);
});

Deno.test("compile: the deno compile command bakes in the same sandbox, addon paths inside the binary", () => {
  const c = config({ ...CONVENTIONAL_ENV });
  const args = compileArgs(c, { output: "dist/coulomb", runtimeTmpDir: "/tmp" });
  assert.deepEqual(unscoped(args), []);
  assert.equal(args[0], "compile");
  assert.ok(args.includes("--frozen") && args.includes("--no-prompt"));
  assert.ok(args.includes(`--output=${Deno.cwd()}/dist/coulomb`));
  assert.equal(args.at(-1), `${REPO}main.ts`);
  // The socket thread's module is loaded with new Worker, outside main.ts's module graph.
  assert.ok(args.includes(`--include=${REPO}src/server/socket_thread.ts`));
  const f = flagMap(args);
  // Native addons are checked against their path inside the binary's virtual file system.
  assert.deepEqual(f.get("--allow-ffi"), ["/tmp/deno-compile-coulomb"]);
  assert.ok(!f.get("--allow-read")!.some((p) => p.includes("node_modules")));
  assert.deepEqual(f.get("--allow-write"), ["/var/lib/coulomb"]);
  assert.deepEqual(f.get("--allow-net"), [
    "127.0.0.1:8332",
    "0.0.0.0:50001",
    "0.0.0.0:50002",
    "127.0.0.1:8000",
    "127.0.0.1:0",
  ]);
  const renamed = flagMap(compileArgs(c, { output: "/x/coulomb-2", runtimeTmpDir: "/run/tmp", target: "t" }));
  assert.deepEqual(renamed.get("--allow-ffi"), [compiledRoot("coulomb-2", "/run/tmp")]);
  assert.equal(compiledRoot("coulomb-2", "/run/tmp"), "/run/tmp/deno-compile-coulomb-2");
});

Deno.test("compile: the configuration comes from the environment, or the conventional install when unset", () => {
  assert.deepEqual(buildEnvironment({}), CONVENTIONAL_ENV);
  assert.deepEqual(buildEnvironment({ CACHE_MB: "100" }), { ...CONVENTIONAL_ENV, CACHE_MB: "100" });
  const own = { DB_DIRECTORY: "/d", DAEMON_URL: "http://u:p@h:1/" };
  assert.deepEqual(buildEnvironment(own), own);
  assert.throws(
    () => checkAbsolutePaths(config({ DB_DIRECTORY: "rel/db" })),
    /DB_DIRECTORY must be an absolute/,
  );
  assert.throws(
    () => checkAbsolutePaths(config({ DAEMON_URL: "h:1", DAEMON_COOKIE: ".cookie" })),
    /DAEMON_COOKIE must be an absolute/,
  );
  checkAbsolutePaths(config({ ...CONVENTIONAL_ENV }));
});

Deno.test("compile: envdirs read as chpst -e reads them", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/NET`, "regtest  \nignored second line\n");
    await Deno.writeTextFile(`${dir}/BANNER`, "a\0b");
    await Deno.writeTextFile(`${dir}/EMPTY`, "");
    await Deno.writeTextFile(`${dir}/.hidden`, "x");
    await Deno.mkdir(`${dir}/sub`);
    assert.deepEqual(await readEnvDir(dir), { NET: "regtest", BANNER: "a\nb", EMPTY: undefined });
  });
});

Deno.test("deno task demo refuses directories its sandbox cannot write, before starting anything", async () => {
  for (const [flag, root] of [["--db-dir", ".data"], ["--datadir", ".simnet"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...await taskArgs("demo"), flag, "/tmp/elsewhere"],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2);
    assert.match(
      new TextDecoder().decode(out.stderr),
      new RegExp(`${flag} must be a directory under ${root}/`),
    );
  }
});

Deno.test("deno task compile --dry-run prints exactly the deno compile command it would run", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...await taskArgs("compile"), "--dry-run", "--env-dir", "samples/runit/coulomb/env"],
    cwd: REPO,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const printed = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
  const samples = loadConfig(await readEnvDir(`${REPO}samples/runit/coulomb/env`), []);
  assert.ok("coin" in samples);
  const expected = [
    "deno",
    ...compileArgs(samples, { output: `${REPO}dist/coulomb`, runtimeTmpDir: "/tmp" }),
  ];
  assert.equal(printed, shellLine(expected));
  assert.doesNotMatch(printed, / -A | --allow-all /);
});

Deno.test("deno task start refuses a listen host name with a message and exit status 2", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: await taskArgs("start"),
    cwd: REPO,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      NO_COLOR: "1",
      DB_DIRECTORY: "/tmp/coulomb-never-created",
      DAEMON_URL: "http://u:p@127.0.0.1:1/",
      SERVICES: "tcp://electrum.example:50001",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /tcp:\/\/electrum\.example:50001 names a host/);
});

Deno.test("sandbox messages name the access and the flag that would grant it", () => {
  const err = new Deno.errors.NotCapable(
    'Requires read access to "/etc/shadow", run again with the --allow-read flag',
  );
  assert.deepEqual(parseDenial(err.message), { kind: "read", target: "/etc/shadow", flag: "--allow-read" });
  assert.equal(
    describeError(err),
    'the sandbox denied read access to "/etc/shadow" (add it to --allow-read)',
  );
  assert.match(sandboxAdvice(err)!, /deno task compile/);
  assert.equal(describeError(new Error("plain")), "plain");
  assert.equal(sandboxAdvice(new Error("plain")), undefined);
  const net = new Deno.errors.NotCapable(
    'Requires net access to "10.1.1.1:80", run again with the --allow-net flag',
  );
  assert.equal(describeError(net), 'the sandbox denied net access to "10.1.1.1:80" (add it to --allow-net)');
  // Wrapped by a module that names what it was doing.
  const wrapped = new Error(`cannot read /db/COULOMB: ${err.message}`);
  assert.equal(
    describeError(wrapped),
    'cannot read /db/COULOMB: the sandbox denied read access to "/etc/shadow" (add it to --allow-read)',
  );
  assert.ok(sandboxAdvice(wrapped));
});

Deno.test({
  name:
    "deno task start: syncs and serves inside the sandbox; reads, writes, connections elsewhere are denied",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const sim = await simnet(`${dir}/sim`, { blocks: 120, seed: "p1-sandbox" });
      // Things the process could reach without the sandbox: an existing file, a writable directory, a
      // listening port, a variable, a shell.
      await Deno.writeTextFile(`${dir}/secret.txt`, "not for coulomb\n");
      const bait = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const baitPort = (bait.addr as Deno.NetAddr).port;
      let baitAccepted = false;
      const baitLoop = (async () => {
        for await (const conn of bait) {
          baitAccepted = true;
          conn.close();
        }
      })();
      const port = freePort();
      const localPort = freePort();
      const probes = [
        `read=${dir}/secret.txt`,
        `write=${dir}/planted.txt`,
        `connect=127.0.0.1:${baitPort}`,
        `listen=127.0.0.1:${freePort()}`,
        "env=HOME",
        "run=/bin/sh",
      ];
      const proc = await startService({
        ...simnetServiceEnv(dir, sim),
        // localhost is granted as its loopback addresses (node:net binds what the name resolves to).
        SERVICES: `tcp://127.0.0.1:${port},tcp://localhost:${localPort}`,
        // The socket thread's Worker must be able to load its modules inside the sandbox.
        SOCKET_THREAD: "on",
        [PROBE_VARIABLE]: probes.join(","),
        HOME: dir,
      });
      try {
        await proc.waitFor(new RegExp(`listening for Electrum tcp connections on 127\\.0\\.0\\.1:${port}`));
        for (const probe of probes) {
          const [op, target] = probe.split(/=(.*)/);
          const m = await proc.waitFor(
            new RegExp(`sandbox probe: ${op} ${escape(target)}: (\\w+) \\((.*)\\)$`),
          );
          assert.equal(m.match[1], "denied", m.line);
          assert.match(m.match[2], /^the sandbox denied \w+ access to ".*" \(add it to --allow-\w+\)$/);
        }
        assert.match(proc.find(/sandbox probe: read /)!.line, /add it to --allow-read/);
        assert.match(proc.find(/sandbox probe: connect /)!.line, /add it to --allow-net/);
        assert.equal(baitAccepted, false);
        await assert.rejects(Deno.stat(`${dir}/planted.txt`), Deno.errors.NotFound);

        // Meanwhile it synced from the daemon (cookie read, LevelDB written) and serves the chain.
        await proc.waitFor(/caught up to height 120$/);
        const client = new ElectrumClient(await Deno.connect({ hostname: "127.0.0.1", port }));
        assert.deepEqual(await client.call("server.version", ["sandbox-test", "1.4"]), [
          "Coulomb 0.1.0",
          "1.4",
        ]);
        const tip = await client.call("blockchain.headers.subscribe") as { height: number };
        assert.equal(tip.height, sim.node.height);
        await client.close();
        const local = new ElectrumClient(await Deno.connect({ hostname: "localhost", port: localPort }));
        assert.deepEqual(await local.call("server.version", ["sandbox-test", "1.4"]), [
          "Coulomb 0.1.0",
          "1.4",
        ]);
        await local.close();
        assert.equal(proc.find(/serving client sockets on the main thread/), undefined, proc.tail());

        proc.kill("SIGTERM");
        assert.equal((await proc.finish()).code, 0, proc.tail());
      } finally {
        await proc.close();
        bait.close();
        await baitLoop.catch(() => {});
        await sim.close();
      }
    }),
});

Deno.test({
  name:
    "SOCKET_THREAD=overflow under the sandbox: the socket thread listens beside the main thread and serves",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const sim = await simnet(`${dir}/sim`, { blocks: 110, seed: "overflow-sandbox" });
      const port = freePort();
      const proc = await startService({
        ...simnetServiceEnv(dir, sim),
        SERVICES: `tcp://127.0.0.1:${port}`,
        SOCKET_THREAD: "overflow",
      });
      const clients: ElectrumClient[] = [];
      try {
        await proc.waitFor(/caught up to height 110$/);
        await proc.waitFor(
          /client sockets are served on the main thread, and by a thread of their own once 32/,
        );
        // The 32nd session starts the thread's listeners (SO_REUSEPORT, on the port the sandbox grants).
        for (let i = 0; i < 32; i++) {
          const c = new ElectrumClient(await Deno.connect({ hostname: "127.0.0.1", port }));
          clients.push(c);
          await c.call("server.version", [`overflow-${i}`, "1.4"]);
        }
        await proc.waitFor(
          /32 sessions on the main thread: new connections now go mostly to the socket thread$/,
        );
        for (let i = 0; i < 16; i++) {
          const c = new ElectrumClient(await Deno.connect({ hostname: "127.0.0.1", port }));
          clients.push(c);
          await c.call("server.version", [`after-${i}`, "1.4"]);
        }
        for (const c of clients) {
          const tip = await c.call("blockchain.headers.subscribe") as { height: number };
          assert.equal(tip.height, 110);
        }
        assert.equal(proc.find(/WARN|ERROR/), undefined, proc.tail());
        proc.kill("SIGTERM");
        assert.equal((await proc.finish()).code, 0, proc.tail());
      } finally {
        for (const c of clients) await c.close();
        await proc.close();
        await sim.close();
      }
    }),
});

Deno.test({
  name: "a binary built for another configuration stops at once, naming the permission to add",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const env = {
        NET: "regtest",
        DAEMON_URL: "http://u:p@127.0.0.1:18443/",
        SERVICES: "",
      };
      // The flags a build for DB_DIRECTORY=<dir>/built would bake in; run with <dir>/moved instead.
      const built = config({ ...env, DB_DIRECTORY: `${dir}/built` });
      const flags = permissionFlags(built, { nodeModules: `${REPO}node_modules` });
      const proc = LoggedProcess.spawn(
        ["run", "--quiet", "--no-prompt", `--config=${REPO}deno.json`, ...flags, `${REPO}main.ts`],
        { ...env, DB_DIRECTORY: `${dir}/moved` },
      );
      try {
        const status = await proc.finish();
        assert.equal(status.code, 1, proc.tail());
        const m = await proc.waitFor(/ERROR main cannot start: (.*)$/);
        // The store names the file it could not open; the refusal within is restated with its flag.
        const moved = escape(`${dir}/moved`);
        const denied =
          `the sandbox denied (read|write) access to "${moved}[^"]*" \\(add it to --allow-(read|write)\\)$`;
        assert.match(m.match[1], new RegExp(denied));
        await proc.waitFor(/ERROR main .*rebuild it with `deno task compile`/, m.index + 1);
      } finally {
        await proc.close();
      }
    }),
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
