// The METRICS listener's HTTP handling over real sockets: what it answers, and that clients which never finish
// a request, or too many at once, cannot keep descriptors from the rest of the process.
import assert from "node:assert/strict";
import { CoulombMetrics } from "../../src/metrics/coulomb.ts";
import { type MetricsServer, startMetricsServer } from "../../src/metrics/http.ts";
import type { Log } from "../../src/log.ts";
import { runOutOfDescriptors } from "../fd_exhaustion.ts";

function recordingLog(lines: string[]): Log {
  const put = (line: string) => void lines.push(line);
  return { debug: put, info: put, warn: put, error: put, enabled: () => true };
}

async function withServer(
  opts: { deadlineMs?: number; maxConnections?: number },
  body: (server: MetricsServer, lines: string[]) => Promise<void>,
): Promise<void> {
  const lines: string[] = [];
  const server = startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    metrics: new CoulombMetrics(),
    log: recordingLog(lines),
    sampleMs: 60_000,
    ...opts,
  });
  try {
    await body(server, lines);
  } finally {
    await server.close();
  }
}

/** Everything the server sends until it closes the connection (reset counts as closed). */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

async function exchange(server: MetricsServer, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
  try {
    await conn.write(new TextEncoder().encode(request));
    return await readToEnd(conn);
  } finally {
    conn.close();
  }
}

Deno.test("metrics http: answers GET and HEAD, refuses malformed and oversized heads", async () => {
  await withServer({}, async (server) => {
    const got = await fetch(`http://127.0.0.1:${server.address.port}/metrics`);
    assert.equal(got.status, 200);
    assert.match(got.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(await got.text(), /# TYPE coulomb_requests_total counter/);

    const head = await exchange(server, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    const length = Number(/content-length: (\d+)/.exec(head)![1]);
    assert.ok(length > 0);
    assert.ok(head.endsWith("\r\n\r\n"), "HEAD has no body");

    // Absolute form (what a proxy sends) and a query string both reach the path.
    assert.match(await exchange(server, "GET http://h/metrics?x=1 HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 200 OK/);
    // Before the node is attached the status data is not there yet.
    assert.match(await exchange(server, "GET /status.json HTTP/1.0\r\n\r\n"), /^HTTP\/1\.1 503 /);
    assert.match(await exchange(server, "GET /nope HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 404 /);
    assert.match(await exchange(server, "hello\r\n\r\n"), /^HTTP\/1\.1 400 Bad Request/);
    // Lines ended by a bare LF, as RFC 9112 lets a server accept (and as hand-typed requests end).
    assert.match(await exchange(server, "GET /metrics HTTP/1.0\n\n"), /^HTTP\/1\.1 200 OK/);
    assert.match(await exchange(server, "GET /metrics HTTP/1.1\nHost: x\n\n"), /^HTTP\/1\.1 200 OK/);
    assert.match(await exchange(server, "\r\nGET /metrics HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 200 OK/);
    assert.match(await exchange(server, "GET / HTTP/2.0\r\n\r\n"), /^HTTP\/1\.1 400 /);
    const huge = `GET / HTTP/1.1\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`;
    assert.match(await exchange(server, huge), /^HTTP\/1\.1 431 /);
    // A request head split across many writes is still one request.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    try {
      for (const part of ["GE", "T /metr", "ics HTTP/1.1\r", "\n", "\r", "\n"]) {
        await conn.write(new TextEncoder().encode(part));
      }
      assert.match(await readToEnd(conn), /^HTTP\/1\.1 200 OK/);
    } finally {
      conn.close();
    }
  });
});

Deno.test("metrics http: a client that never finishes its request is closed at the deadline", async () => {
  let logged: string[] = [];
  await withServer({ deadlineMs: 200 }, async (server, lines) => {
    logged = lines;
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    try {
      await partial.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
      // Each read ends only because the server closed the connection; nothing was answered.
      assert.equal(await readToEnd(silent), "");
      assert.equal(await readToEnd(partial), "");
    } finally {
      silent.close();
      partial.close();
    }
  });
  // Closing waited for both exchanges to end. Nothing failed on the server's side: a client that runs out of
  // time is not worth a log line.
  assert.deepEqual(logged.filter((l) => !l.startsWith("serving metrics")), []);
});

Deno.test("metrics http: connections beyond the cap are closed, and served again once others leave", async () => {
  await withServer({ maxConnections: 2, deadlineMs: 600_000 }, async (server) => {
    const port = server.address.port;
    // Two connections that never finish their request hold both places. The server accepts in the order the
    // kernel queued the connections, so the third one is accepted while both are still held.
    const held = [
      await Deno.connect({ hostname: "127.0.0.1", port }),
      await Deno.connect({ hostname: "127.0.0.1", port }),
    ];
    for (const c of held) await c.write(new TextEncoder().encode("GET /"));
    assert.equal(await probe(port), undefined, "over the cap: closed without an answer");
    for (const c of held) c.close();
    // The server sees them go within a few turns of its event loop (it runs in this process); each probe
    // gives it those turns, so no timer is needed.
    let answer: string | undefined;
    for (let i = 0; i < 100 && answer === undefined; i++) answer = await probe(port);
    assert.match(answer ?? "", /^HTTP\/1\.1 200 OK/);
  });
});

/** One full GET /metrics on a new connection: the reply, or undefined when closed without one. */
async function probe(port: number): Promise<string | undefined> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n\r\n")).catch(() => 0);
    const got = await readToEnd(conn);
    return got === "" ? undefined : got;
  } finally {
    conn.close();
  }
}

Deno.test("metrics http: out of file descriptors, an accept waits and is retried; the listener carries on", async () => {
  const got = await runOutOfDescriptors("metrics");
  assert.equal(got.reply, "HTTP/1.1 200 OK");
  assert.match(
    got.warnings[0],
    /^accepting a metrics connection failed: .*(Too many open files|os error 24)/,
  );
});
