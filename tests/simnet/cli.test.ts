// simnet's command line as a real child process: the ready line, cookie auth, clean shutdown on signals.
import assert from "node:assert/strict";
import { parseCommandLine } from "../../scripts/simnet/main.ts";
import { LineReader } from "../line_reader.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = "scripts/simnet/main.ts";
// Exactly the permissions `deno task simnet` grants, so the test proves the task works as configured.
const PERMS = (() => {
  const task: string = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).tasks.simnet;
  const words = task.split(/\s+/);
  assert.equal(words[0], "deno");
  assert.equal(words[1], "run");
  assert.equal(words[words.length - 1], MAIN);
  return words.slice(2, -1);
})();
const READY = /^simnet ready height=(\d+) rpc=http:\/\/127\.0\.0\.1:(\d+)$/;

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMS, MAIN, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
}

/** Reads stdout lines until the ready line; returns it with a function that drains the rest. */
async function waitReady(child: Deno.ChildProcess, stderr: Promise<string>) {
  const lines = new LineReader(child.stdout, { keepTail: true });
  for (let line; (line = await lines.next()) !== null;) {
    const m = READY.exec(line);
    if (!m) continue;
    const rest = async () => {
      const out: string[] = [];
      for (let l; (l = await lines.next()) !== null;) out.push(l);
      return out.join("\n");
    };
    return { height: Number(m[1]), port: Number(m[2]), rest };
  }
  throw new Error(`simnet exited before it was ready: ${await stderr}`);
}

async function rpc(port: number, user: string, password: string, method: string, params: unknown[] = []) {
  return await fetch(`http://127.0.0.1:${port}/`, {
    method: "POST",
    headers: { Authorization: "Basic " + btoa(`${user}:${password}`) },
    body: JSON.stringify({ jsonrpc: "2.0", method, params, id: 1 }),
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Starts simnet, checks it serves with its cookie, stops it with `signal`, checks the cookie is gone. */
async function runOnce(datadir: string, signal: Deno.Signal, blocks: number): Promise<void> {
  const child = spawn([
    "--port",
    "0",
    "--datadir",
    datadir,
    "--blocks",
    String(blocks),
    "--seed",
    "cli-test",
  ]);
  const stderr = new Response(child.stderr).text();
  let exited = false;
  try {
    const ready = await waitReady(child, stderr);
    assert.equal(ready.height, blocks);
    assert.ok(ready.port > 0);
    const cookie = await Deno.readTextFile(`${ROOT}/${datadir}/.cookie`);
    assert.match(cookie, /^__cookie__:[0-9a-f]{64}$/);
    const password = cookie.slice("__cookie__:".length);
    const res = await rpc(ready.port, "__cookie__", password, "getblockcount");
    assert.equal(res.status, 200);
    assert.equal((await res.json()).result, blocks);
    const denied = await rpc(ready.port, "__cookie__", "wrong", "getblockcount");
    assert.equal(denied.status, 401);
    await denied.body?.cancel();

    child.kill(signal);
    const status = await child.status;
    exited = true;
    assert.equal(status.code, 0, await stderr);
    assert.equal(await ready.rest(), "");
    assert.equal(await exists(`${ROOT}/${datadir}/.cookie`), false);
  } finally {
    if (!exited) {
      child.kill("SIGKILL");
      await child.status;
    }
    await stderr;
  }
}

Deno.test("simnet CLI: ready line, cookie auth, SIGTERM then SIGINT (second start loads the cache)", async () => {
  // Inside the working directory: the task only grants read/write access to ".".
  await Deno.mkdir(`${ROOT}/.simnet`, { recursive: true });
  const abs = await Deno.makeTempDir({ dir: `${ROOT}/.simnet`, prefix: "cli-test-" });
  const datadir = abs.slice(abs.lastIndexOf("/.simnet/") + 1);
  try {
    await runOnce(datadir, "SIGTERM", 25);
    await runOnce(datadir, "SIGINT", 25);
  } finally {
    await Deno.remove(abs, { recursive: true });
  }
});

Deno.test("simnet CLI: --help prints usage, bad arguments exit 2 with a message", async () => {
  const help = await new Deno.Command(Deno.execPath(), { args: ["run", ...PERMS, MAIN, "--help"], cwd: ROOT })
    .output();
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /^Usage: deno task simnet/);
  for (const bad of [["--port", "70000"], ["--blocks", "-3"], ["--bogus"], ["--rpcuser", "u"], ["extra"]]) {
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", ...PERMS, MAIN, ...bad], cwd: ROOT })
      .output();
    assert.equal(out.code, 2, bad.join(" "));
    assert.match(new TextDecoder().decode(out.stderr), /^simnet: /, bad.join(" "));
    assert.equal(out.stdout.length, 0);
  }
});

Deno.test("command line parsing: defaults and values", () => {
  assert.deepEqual(parseCommandLine([]), {
    blocks: 200,
    seed: "coulomb",
    txs: undefined,
    port: 18443,
    datadir: ".simnet",
    rpcuser: undefined,
    rpcpassword: undefined,
    txindex: false,
    rest: true,
  });
  assert.deepEqual(
    parseCommandLine([
      "--blocks=7",
      "--seed",
      "s",
      "--txs",
      "90",
      "--port",
      "0",
      "--datadir",
      "/tmp/x",
      "--rpcuser",
      "u",
      "--rpcpassword",
      "p",
      "--txindex",
      "--no-rest",
    ]),
    {
      blocks: 7,
      seed: "s",
      txs: 90,
      port: 0,
      datadir: "/tmp/x",
      rpcuser: "u",
      rpcpassword: "p",
      txindex: true,
      rest: false,
    },
  );
  assert.equal(parseCommandLine(["--help"]), "help");
  assert.throws(() => parseCommandLine(["--port", "1.5"]), /--port must be an integer/);
  assert.throws(() => parseCommandLine(["--rpcpassword", "p"]), /together/);
  assert.throws(() => parseCommandLine(["--seed", ""]), /seed/);
});
