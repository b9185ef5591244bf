// The peer connection over real sockets on 127.0.0.1: replies matched by id, notifications ignored, and a
// hostile or silent peer turned into a rejected call and a closed socket, never a crash or a hang.
import assert from "node:assert/strict";
import net from "node:net";
import { PeerError, socketConnector } from "../../src/server/peer_client.ts";
import { makeCert } from "../tls_cert.ts";

type Handler = (line: string, sock: net.Socket) => void;

async function withServer(handler: Handler, fn: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let buf = "";
    sock.on("data", (d) => {
      buf += String(d);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        handler(buf.slice(0, i), sock);
        buf = buf.slice(i + 1);
      }
    });
  });
  const listening = Promise.withResolvers<void>();
  server.listen(0, "127.0.0.1", () => listening.resolve());
  await listening.promise;
  try {
    await fn((server.address() as net.AddressInfo).port);
  } finally {
    for (const s of sockets) s.destroy();
    const closed = Promise.withResolvers<void>();
    server.close(() => closed.resolve());
    await closed.promise;
  }
}

const limits = { maxLineBytes: 4096, connectTimeoutMs: 5000, callTimeoutMs: 300 };

Deno.test("peer link: replies are matched by id, notifications skipped, error replies rejected", async () => {
  await withServer((line, sock) => {
    const req = JSON.parse(line);
    // A notification first, then the answers in reverse order of arrival for "slow".
    sock.write(`{"jsonrpc":"2.0","method":"blockchain.headers.subscribe","params":[{}]}\n`);
    if (req.method === "fail") {
      sock.write(JSON.stringify({ id: req.id, error: { code: 1, message: "nope" } }) + "\n");
    } else sock.write(JSON.stringify({ id: req.id, result: [req.method, req.params] }) + "\n");
  }, async (port) => {
    const link = await socketConnector(limits)({ host: "127.0.0.1", port, tls: false });
    try {
      assert.equal(link.remoteIp, "127.0.0.1");
      const [a, b] = await Promise.all([link.call("one", [1]), link.call("two", ["x"])]);
      assert.deepEqual(a, ["one", [1]]);
      assert.deepEqual(b, ["two", ["x"]]);
      await assert.rejects(
        link.call("fail", []),
        (e: unknown) => e instanceof PeerError && e.code === "reply",
      );
    } finally {
      link.close();
    }
  });
});

Deno.test("peer link: an endless line, invalid JSON and silence each fail the call and close the socket", async () => {
  await withServer((line, sock) => {
    const req = JSON.parse(line);
    if (req.method === "flood") sock.write("x".repeat(10_000));
    if (req.method === "junk") sock.write("{not json\n");
    // "silent" gets nothing.
  }, async (port) => {
    const connect = socketConnector(limits);
    for (
      const [method, code, message] of [
        ["flood", "protocol", /exceeds 4096 bytes/],
        ["junk", "protocol", /not JSON/],
        ["silent", "timeout", /no answer to silent within 300 ms/],
      ] as const
    ) {
      const link = await connect({ host: "127.0.0.1", port, tls: false });
      await assert.rejects(link.call(method, []), (e: unknown) => {
        assert.ok(e instanceof PeerError);
        assert.equal(e.code, code);
        assert.match(e.message, message);
        return true;
      });
      // The link is dead: further calls fail at once.
      await assert.rejects(link.call("again", []), PeerError);
      link.close();
    }
  });
});

Deno.test("peer link: a refused connection is a connect error", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    socketConnector(limits)({ host: "127.0.0.1", port, tls: false }),
    (e: unknown) => e instanceof PeerError && e.code === "connect",
  );
});

Deno.test("peer link: TLS with a self-signed certificate is accepted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A self-signed certificate, as most public Electrum servers have.
    const { cert, key } = await makeCert(dir, "peer");
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
    });
    const served = (async () => {
      const conn = await listener.accept();
      const buf = new Uint8Array(1024);
      const n = await conn.read(buf);
      const req = JSON.parse(new TextDecoder().decode(buf.subarray(0, n!)));
      await conn.write(new TextEncoder().encode(JSON.stringify({ id: req.id, result: "over tls" }) + "\n"));
      // Wait for the client to hang up before closing our side.
      await conn.read(buf).catch(() => null);
      conn.close();
    })();
    const link = await socketConnector(limits)({
      host: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      tls: true,
    });
    assert.equal(await link.call("server.version", []), "over tls");
    link.close();
    await served;
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("peer link: aborting a TLS handshake that never completes rejects at once", async () => {
  await withServer(() => {}, async (port) => {
    const abort = new AbortController();
    const connecting = socketConnector({ ...limits, connectTimeoutMs: 60_000 })(
      { host: "127.0.0.1", port, tls: true },
      abort.signal,
    );
    abort.abort();
    await assert.rejects(connecting, (e: unknown) => e instanceof PeerError && /stopped/.test(e.message));
  });
});

Deno.test("peer link: a connection that times out leaves no listener on the long-lived stop signal", async () => {
  await withServer(() => {}, async (port) => {
    // The peer manager's stop signal, with its "abort" listeners counted.
    const stop = new AbortController();
    let listeners = 0;
    const add = stop.signal.addEventListener.bind(stop.signal);
    const remove = stop.signal.removeEventListener.bind(stop.signal);
    stop.signal.addEventListener = ((type: string, fn: EventListener, opts?: AddEventListenerOptions) => {
      if (type === "abort") listeners++;
      add(type, fn, opts);
    }) as typeof stop.signal.addEventListener;
    stop.signal.removeEventListener = ((type: string, fn: EventListener, opts?: EventListenerOptions) => {
      if (type === "abort") listeners--;
      remove(type, fn, opts);
    }) as typeof stop.signal.removeEventListener;
    const connect = socketConnector({ ...limits, connectTimeoutMs: 30 });
    for (let i = 0; i < 5; i++) {
      // A TLS handshake the server never answers: the connect timeout ends it.
      await assert.rejects(
        connect({ host: "127.0.0.1", port, tls: true }, stop.signal),
        (e: unknown) => e instanceof PeerError && e.code === "timeout",
      );
    }
    assert.equal(listeners, 0);
  });
});

Deno.test("peer link: off regtest a host must be public when dialled, names by the addresses they resolve to", async () => {
  await withServer(() => {}, async (port) => {
    const connect = socketConnector(limits, true);
    for (const host of ["127.0.0.1", "::ffff:127.0.0.1", "localhost"]) {
      await assert.rejects(
        connect({ host, port, tls: false }),
        (e: unknown) =>
          e instanceof PeerError && e.code === "connect" &&
          /(loopback address|resolves to 127\.0\.0\.1|resolves to ::1), not a public/.test(e.message),
        host,
      );
    }
    // The same server is reachable where private addresses are allowed (regtest).
    const link = await socketConnector(limits)({ host: "localhost", port, tls: false });
    link.close();
  });
});

Deno.test("peer link: dotted quads with leading zeros are names (resolvers read them as octal) and checked as such", async () => {
  // As glibc's resolver answers for 012.0.0.1 (octal); the tests' sandbox allows no lookup of the real one.
  const resolver = (host: string) =>
    Promise.resolve(host === "012.0.0.1" ? [{ address: "10.0.0.1", family: 4 }] : []);
  const connect = socketConnector(limits, true, resolver);
  await assert.rejects(
    connect({ host: "012.0.0.1", port: 50001, tls: false }),
    (e: unknown) => e instanceof PeerError && /resolves to 10\.0\.0\.1, not a public address/.test(e.message),
  );
});

Deno.test("peer link: a name's lookup is bounded by the connect timeout and by the stop signal", async () => {
  const never = () => new Promise<never>(() => {});
  const connect = socketConnector({ ...limits, connectTimeoutMs: 30 }, true, never);
  await assert.rejects(
    connect({ host: "slow-dns.example.com", port: 50001, tls: false }),
    (e: unknown) =>
      e instanceof PeerError && e.code === "timeout" && /no address within 30 ms/.test(e.message),
  );
  const stop = new AbortController();
  const patient = socketConnector({ ...limits, connectTimeoutMs: 3_600_000 }, true, never);
  const pending = patient({ host: "slow-dns.example.com", port: 50001, tls: false }, stop.signal);
  stop.abort();
  await assert.rejects(pending, (e: unknown) => e instanceof PeerError && e.code === "closed");
});
