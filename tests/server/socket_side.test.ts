// SocketSide driven directly, as the listeners drive it: what it reports about a connection that fails.
import assert from "node:assert/strict";
import net from "node:net";
import { CLOSED, type ControlReply, ENTRY, LINE, OPENED } from "../../src/server/socket_messages.ts";
import { noIpv6, SocketSide } from "../../src/server/socket_side.ts";

type Entry = { op: number; id: number; a: unknown };

// A SocketSide on this thread with its output collected; `next` waits for the first entry matching `pred`.
function harness() {
  const entries: Entry[] = [];
  const controls: ControlReply[] = [];
  let wake: (() => void) | undefined;
  const side = new SocketSide((msg) => {
    if (Array.isArray(msg)) {
      for (let i = 0; i < msg.length; i += ENTRY) {
        entries.push({ op: msg[i] as number, id: msg[i + 1] as number, a: msg[i + 2] });
      }
    } else {
      controls.push(msg);
    }
    wake?.();
  });
  async function next(pred: (e: Entry) => boolean): Promise<Entry> {
    while (true) {
      const found = entries.find(pred);
      if (found) return found;
      await new Promise<void>((resolve) => wake = resolve);
    }
  }
  async function control(type: ControlReply["type"]): Promise<ControlReply> {
    while (true) {
      const found = controls.find((c) => c.type === type);
      if (found) return found;
      await new Promise<void>((resolve) => wake = resolve);
    }
  }
  return { side, next, control };
}

Deno.test("a connection reset by its peer is reported closed with the error as the reason", async () => {
  const h = harness();
  h.side.handle({
    type: "start",
    services: [{ protocol: "tcp", host: "127.0.0.1", port: 0 }],
    maxRecv: 1000,
    handshakeTimeoutMs: 10_000,
  });
  const listening = await h.control("listening");
  assert.equal(listening.type, "listening");
  const port = listening.type === "listening" ? listening.ports[0] : 0;
  try {
    const client = net.connect({ host: "127.0.0.1", port });
    client.on("error", () => {});
    await new Promise((resolve) => client.once("connect", resolve));
    const opened = await h.next((e) => e.op === OPENED);
    client.write("hello\n");
    await h.next((e) => e.op === LINE && e.id === opened.id);
    // A reset (SO_LINGER 0), not a FIN: the server's next read fails with ECONNRESET.
    client.resetAndDestroy();
    const closed = await h.next((e) => e.op === CLOSED && e.id === opened.id);
    assert.match(String(closed.a), /^connection failed: .*ECONNRESET/);
  } finally {
    h.side.handle({ type: "stop" });
    await h.control("stopped");
  }
});

Deno.test("noIpv6: only address-family errors make '::' fall back to 0.0.0.0", () => {
  for (const code of ["EAFNOSUPPORT", "EADDRNOTAVAIL", "EPROTONOSUPPORT"]) {
    assert.equal(noIpv6({ code }), true);
  }
  for (const err of [{ code: "EADDRINUSE" }, { code: "EACCES" }, new Error("x"), null, undefined]) {
    assert.equal(noIpv6(err), false);
  }
});
