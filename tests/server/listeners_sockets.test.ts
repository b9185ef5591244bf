// The listeners' node:net sockets: half-closed peers are answered, and many pipelined requests from many
// connections all get their replies, in order; with the sockets in the socket thread and on the main thread.
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import type { Config } from "../../src/config.ts";
import { startServer } from "../../src/server/listeners.ts";
import type { MethodSpec } from "../../src/server/types.ts";
import { socketThreadMode, TEST_MAIN_THREAD_SESSIONS, testEveryMode } from "./socket_modes.ts";

const quiet = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
} as unknown as Parameters<typeof startServer>[0]["log"];

async function server(gate: Promise<void> = Promise.resolve()) {
  const base = loadConfig(
    {
      DB_DIRECTORY: "/tmp/coulomb-test",
      DAEMON_URL: "http://u:p@127.0.0.1:8332/",
    },
    [],
  );
  const config: Config = {
    ...(base as Config),
    services: [{ protocol: "tcp", host: "127.0.0.1", port: 0 }],
    socketThread: socketThreadMode(),
  };
  const methods = new Map<string, MethodSpec>([
    ["test.echo", { params: ["value"], cost: 0, handler: (_ctx, [v]) => v }],
    // Answers on a later turn, so that replies complete out of order and must be put back in order.
    ["test.later", { params: ["value"], cost: 0, handler: (_ctx, [v]) => Promise.resolve().then(() => v) }],
    // Answers once the test opens the gate.
    ["test.gated", { params: ["value", "pad"], cost: 0, handler: (_ctx, [v]) => gate.then(() => v) }],
  ]);
  return await startServer({
    config,
    methods,
    log: quiet,
    serverVersion: "Coulomb 0.1.0",
    mainThreadSessions: TEST_MAIN_THREAD_SESSIONS,
  });
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
}

const line = (id: number, method: string, params: unknown[]) =>
  JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n";

testEveryMode(
  "a peer that shuts down its sending side gets every reply, then the connection closes",
  async () => {
    const gate = Promise.withResolvers<void>();
    const s = await server(gate.promise);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.addresses[0].port });
      // More requests than a session takes before it stops reading (256), padded so that they arrive in several
      // reads: reading has to pause, then resume once replies go out.
      const pad = "x".repeat(400);
      let text = line(0, "server.version", ["t", "1.4"]);
      for (let i = 1; i <= 600; i++) text += line(i, "test.gated", [i, pad]);
      const writing = conn.write(new TextEncoder().encode(text)).then(() => conn.closeWrite());
      // Nothing is answered before the peer has shut down its side, so the replies come after its EOF.
      await writing;
      gate.resolve();
      const replies = (await readAll(conn)).trim().split("\n").map((l) => JSON.parse(l));
      conn.close();
      assert.equal(replies.length, 601);
      assert.deepEqual(replies.map((r) => r.id), [...Array(601).keys()]);
      for (let i = 1; i <= 600; i++) assert.equal(replies[i].result, i);
    } finally {
      await s.close();
    }
  },
);

testEveryMode("many connections pipelining at once all get all their replies, in order", async () => {
  const s = await server();
  try {
    const port = s.addresses[0].port;
    const clients = await Promise.all(
      Array.from({ length: 50 }, async (_, c) => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        let text = line(0, "server.version", ["t", "1.4"]);
        for (let i = 1; i <= 400; i++) text += line(i, "test.later", [`${c}:${i}`]);
        await conn.write(new TextEncoder().encode(text));
        await conn.closeWrite();
        const replies = (await readAll(conn)).trim().split("\n").map((l) => JSON.parse(l));
        conn.close();
        return { c, replies };
      }),
    );
    for (const { c, replies } of clients) {
      assert.equal(replies.length, 401, `client ${c}`);
      for (let i = 1; i <= 400; i++) assert.equal(replies[i].result, `${c}:${i}`);
    }
  } finally {
    await s.close();
  }
});
