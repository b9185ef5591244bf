// Signals a supervisor sends, against a real Coulomb started by `deno task start` (launcher + sandboxed
// main.ts) on a simnet chain: SIGHUP swaps the TLS certificate for new connections while open sessions carry
// on (and a broken certificate is refused without harm), SIGUSR1/SIGUSR2 log a status summary, SIGTERM flushes
// and exits 0.
import assert from "node:assert/strict";
import { ALLOCATOR_ENV, findJemalloc } from "../src/allocator.ts";
import { simnet, withTempDir } from "./integration/harness.ts";
import {
  ElectrumClient,
  freePort,
  type LoggedProcess,
  simnetServiceEnv,
  startService,
} from "./launcher_harness.ts";
import { makeCert } from "./tls_cert.ts";

Deno.test({
  name: "signals: SIGHUP reloads the certificate, SIGUSR1/SIGUSR2 log a status, SIGTERM exits 0",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const sim = await simnet(`${dir}/sim`, { blocks: 110, seed: "p1-signals" });
      const one = await makeCert(dir, "one");
      const two = await makeCert(dir, "two");
      // The configured files start as certificate one; SIGHUP must pick up whatever they hold then.
      await Deno.writeTextFile(`${dir}/tls.crt`, one.cert);
      await Deno.writeTextFile(`${dir}/tls.key`, one.key);
      const [tcpPort, sslPort] = [freePort(), freePort()];
      const proc = await startService({
        ...simnetServiceEnv(dir, sim),
        SERVICES: `tcp://127.0.0.1:${tcpPort},ssl://127.0.0.1:${sslPort}`,
        SSL_CERTFILE: `${dir}/tls.crt`,
        SSL_KEYFILE: `${dir}/tls.key`,
      });
      const tls = async (ca: string) => {
        const conn = await Deno.connectTls({ hostname: "localhost", port: sslPort, caCerts: [ca] });
        await conn.handshake();
        return new ElectrumClient(conn);
      };
      const clients: ElectrumClient[] = [];
      try {
        await proc.waitFor(
          new RegExp(`listening for Electrum ssl connections on 127\\.0\\.0\\.1:${sslPort}`),
        );
        // The launcher starts main.ts with glibc's allocator settings (Deno reads /proc/<pid>/* only with -A).
        const [server] = proc.descendantPids();
        const environ = await new Deno.Command("cat", { args: [`/proc/${server}/environ`] }).output();
        const env = new TextDecoder().decode(environ.stdout).split("\0");
        for (const [k, v] of Object.entries(ALLOCATOR_ENV)) assert.ok(env.includes(`${k}=${v}`), k);
        // …and with jemalloc in place of glibc's malloc where it is installed: preloaded, and loaded.
        const jemalloc = findJemalloc();
        assert.equal(
          env.find((e) => e.startsWith("LD_PRELOAD=")),
          jemalloc === undefined ? undefined : `LD_PRELOAD=${jemalloc}`,
        );
        const maps = await new Deno.Command("cat", { args: [`/proc/${server}/maps`] }).output();
        assert.equal(new TextDecoder().decode(maps.stdout).includes("libjemalloc"), jemalloc !== undefined);
        const before = await tls(one.cert);
        clients.push(before);
        assert.deepEqual(await before.call("server.version", ["old", "1.4"]), ["Coulomb 0.1.0", "1.4"]);
        const plain = new ElectrumClient(await Deno.connect({ hostname: "127.0.0.1", port: tcpPort }));
        clients.push(plain);
        await plain.call("server.version", ["plain", "1.4"]);
        await plain.call("blockchain.headers.subscribe");

        // SIGHUP with certificate two in the files.
        await Deno.writeTextFile(`${dir}/tls.crt`, two.cert);
        await Deno.writeTextFile(`${dir}/tls.key`, two.key);
        let from = proc.lines.length;
        proc.kill("SIGHUP");
        await proc.waitFor(/INFO server TLS certificate reloaded$/, from);
        const after = await tls(two.cert);
        clients.push(after);
        assert.deepEqual(await after.call("server.version", ["new", "1.4"]), ["Coulomb 0.1.0", "1.4"]);
        await assert.rejects(tls(one.cert), "new connections no longer see certificate one");
        // The session opened before the reload carries on over its old certificate.
        assert.equal(await before.call("server.ping"), null);
        assert.equal(await plain.call("server.ping"), null);

        // A broken pair is refused; the listener keeps serving certificate two.
        await Deno.writeTextFile(`${dir}/tls.crt`, "not a certificate\n");
        from = proc.lines.length;
        proc.kill("SIGHUP");
        await proc.waitFor(/ERROR main SIGHUP: keeping the current TLS certificate: /, from);
        const still = await tls(two.cert);
        clients.push(still);
        assert.deepEqual(await still.call("server.version", ["still", "1.4"]), ["Coulomb 0.1.0", "1.4"]);

        // SIGUSR1: the status summary, with this process's real numbers.
        from = proc.lines.length;
        proc.kill("SIGUSR1");
        const height = await proc.waitFor(
          /status: height (\d+) \(flushed (\d+)\), daemon height (\d+), caught up$/,
          from,
        );
        assert.deepEqual(height.match.slice(1).map(Number), [110, 110, 110]);
        const sessions = await proc.waitFor(
          /status: sessions (\d+), subscriptions \d+ \(\d+ script hashes\)$/,
          from,
        );
        assert.equal(Number(sessions.match[1]), clients.length);
        await proc.waitFor(/status: mempool \d+ txs, [\d,]+ vbytes, \d+ waiting for prevouts$/, from);
        await proc.waitFor(/status: peers 0 verified of 0 known$/, from);
        await proc.waitFor(/status: cache [\d,]+ MB in [\d,]+ entries, 0 unflushed blocks$/, from);
        await proc.waitFor(/status: memory rss [\d,]+ MB, heap [\d,]+ MB; uptime 0d 00h \d\dm \d\ds$/, from);
        // The Deno runtime answers SIGUSR1 by opening a debugger; it must not stay open.
        await proc.waitFor(
          /closed the debugger the Deno runtime opened on SIGUSR1|Failed to start inspector/,
          from,
        );

        // SIGUSR2: the same summary, without the runtime's debugger.
        from = proc.lines.length;
        proc.kill("SIGUSR2");
        await proc.waitFor(/INFO main status: height 110 \(flushed 110\)/, from);
        assert.equal(await before.call("server.ping"), null);

        // SIGTERM: sessions closed, flushed, exit 0.
        from = proc.lines.length;
        proc.kill("SIGTERM");
        const status = await proc.finish();
        assert.equal(status.code, 0, proc.tail());
        assert.ok(proc.find(/INFO main shut down cleanly$/, from), proc.tail());
      } finally {
        for (const c of clients) await c.close();
        await proc.close();
        await sim.close();
      }
    }),
});

testWithoutDaemon(
  "signals: SIGTERM while bitcoind cannot be reached at startup exits 0, through the launcher too",
  async (proc) => {
    proc.kill("SIGTERM");
    const status = await proc.finish();
    assert.equal(status.signal, null, proc.tail());
    assert.equal(status.code, 0, proc.tail());
    assert.ok(proc.find(/shut down cleanly/), proc.tail());
  },
);

testWithoutDaemon(
  "signals: when Coulomb dies by a signal, the launcher ends by the same signal",
  async (proc) => {
    const [server] = proc.descendantPids();
    Deno.kill(server, "SIGKILL");
    const status = await proc.finish();
    assert.equal(status.signal, "SIGKILL", proc.tail());
  },
);

Deno.test({
  name: "signals: a launcher killed outright does not leave Coulomb running: it notices and shuts down",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withTempDir(async (dir) => {
      const sim = await simnet(`${dir}/sim`, { blocks: 110, seed: "p1-orphan" });
      const port = freePort();
      const proc = await startService({
        ...simnetServiceEnv(dir, sim),
        SERVICES: `tcp://127.0.0.1:${port}`,
      });
      try {
        await proc.waitFor(/listening for Electrum tcp connections/);
        const [server] = proc.descendantPids();
        proc.kill("SIGKILL"); // the launcher only
        assert.equal((await proc.finish()).signal, "SIGKILL");
        await proc.waitFor(/the launcher \(process \d+\) is gone: shutting down/);
        await proc.waitFor(/shut down cleanly/);
        // And the process is gone, its database lock with it.
        while (await Deno.stat(`/proc/${server}`).then(() => true, () => false)) {
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await proc.close();
        await sim.close();
      }
    }),
});

/** A test of Coulomb through the launcher with a DAEMON_URL nobody answers, once it says it keeps trying. */
function testWithoutDaemon(name: string, body: (proc: LoggedProcess) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withTempDir(async (dir) => {
        const proc = await startService({
          NET: "regtest",
          DB_DIRECTORY: `${dir}/db`,
          DAEMON_URL: `http://u:p@127.0.0.1:${freePort()}/`,
          SERVICES: `tcp://127.0.0.1:${freePort()}`,
        });
        try {
          await proc.waitFor(/unavailable: .*; retrying/);
          await body(proc);
        } finally {
          await proc.close();
        }
      }),
  });
}
