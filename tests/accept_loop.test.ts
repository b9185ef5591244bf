// The operator listeners' accept loop over real sockets: the connection cap, handlers ended by close().
import assert from "node:assert/strict";
import { serveConnections } from "../src/accept_loop.ts";

Deno.test("serveConnections: refuses beyond the cap, and close() ends every connection and waits for its handler", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const started: Deno.Conn[] = [];
  const ended: number[] = [];
  let refused = 0;
  const served = serveConnections(listener, {
    maxConnections: 2,
    serve: async (conn) => {
      started.push(conn);
      const buf = new Uint8Array(16);
      // Reads until the connection is closed, by the peer or by close().
      try {
        while (await conn.read(buf) !== null) { /* ignore */ }
      } catch {
        // closed under us
      }
      ended.push(started.indexOf(conn));
    },
    onAcceptError: () => assert.fail("no accept should fail"),
    onRefused: () => refused++,
  });
  const clients = [
    await Deno.connect({ hostname: "127.0.0.1", port }),
    await Deno.connect({ hostname: "127.0.0.1", port }),
  ];
  for (const c of clients) await c.write(Uint8Array.of(1));
  // The third is accepted after the first two (kernel order) while both are held: closed unserved.
  const third = await Deno.connect({ hostname: "127.0.0.1", port });
  assert.equal(await third.read(new Uint8Array(1)).catch(() => null), null);
  third.close();
  assert.equal(refused, 1);
  assert.equal(started.length, 2);
  await served.close();
  assert.deepEqual(ended.sort(), [0, 1], "both handlers finished before close() resolved");
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
  for (const c of clients) c.close();
});
