// SocketSide driven directly, as the listeners drive it: what it reports about a connection that fails.
import assert from "node:assert/strict";
import net from "node:net";
import {
  ACK,
  BLANK,
  CLOSED,
  type ControlReply,
  ENTRY,
  LINE,
  OPENED,
  ReadWindow,
  WRITE,
  WRITTEN,
} from "../../src/server/socket_messages.ts";
import { noIpv6, SocketSide } from "../../src/server/socket_side.ts";

type Entry = { op: number; id: number; a: unknown; b: unknown };

// A SocketSide on this thread with its output collected; `next` waits for the first entry matching `pred`.
function harness(onBatch?: (batch: unknown[]) => void) {
  const entries: Entry[] = [];
  const controls: ControlReply[] = [];
  let wake: (() => void) | undefined;
  const side = new SocketSide((msg) => {
    if (Array.isArray(msg)) {
      onBatch?.(msg);
      for (let i = 0; i < msg.length; i += ENTRY) {
        entries.push({ op: msg[i] as number, id: msg[i + 1] as number, a: msg[i + 2], b: msg[i + 3] });
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
  return { side, next, control, entries };
}

/** Starts the harness's side on a loopback port and returns the port. */
async function listen(h: ReturnType<typeof harness>, maxRecv: number, readWindow = 256): Promise<number> {
  h.side.handle({
    type: "start",
    services: [{ protocol: "tcp", host: "127.0.0.1", port: 0 }],
    maxRecv,
    readWindow,
    handshakeTimeoutMs: 10_000,
  });
  const listening = await h.control("listening");
  assert.equal(listening.type, "listening");
  return listening.type === "listening" ? listening.ports[0] : 0;
}

/** A node:net client of the side, connected, and the id the side gave its connection. */
async function connect(
  h: ReturnType<typeof harness>,
  port: number,
): Promise<{ client: net.Socket; id: number }> {
  const client = net.connect({ host: "127.0.0.1", port });
  client.on("error", () => {});
  await new Promise((resolve) => client.once("connect", resolve));
  return { client, id: (await h.next((e) => e.op === OPENED)).id };
}

Deno.test("a connection reset by its peer is reported closed with the error as the reason", async () => {
  const h = harness();
  const port = await listen(h, 1000);
  try {
    const { client, id } = await connect(h, port);
    client.write("hello\n");
    await h.next((e) => e.op === LINE && e.id === id);
    // A reset (SO_LINGER 0), not a FIN: the server's next read fails with ECONNRESET.
    client.resetAndDestroy();
    const closed = await h.next((e) => e.op === CLOSED && e.id === id);
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

Deno.test("ReadWindow: pauses when `size` messages are outstanding, resumes when an ACK brings them below", () => {
  const w = new ReadWindow(3);
  assert.equal(w.delivered(), false);
  assert.equal(w.delivered(), false);
  assert.equal(w.delivered(), true, "the third outstanding message pauses reading");
  assert.equal(w.paused, true);
  assert.equal(
    w.delivered(),
    false,
    "already paused: messages of the same read are counted, no second pause",
  );
  assert.equal(w.outstanding, 4);
  assert.equal(w.acked(1), false, "3 still outstanding: stays paused");
  assert.equal(w.acked(1), true, "2 outstanding: resumes");
  assert.equal(w.paused, false);
  assert.equal(w.acked(10), false, "an ACK beyond what is outstanding leaves it at 0");
  assert.equal(w.outstanding, 0);
});

Deno.test("a pipelining client is read only while the listeners acknowledge what they took", async () => {
  const WINDOW = 4;
  const LINES = 300;
  let outstanding = 0;
  let overrun = 0;
  let acks = 0;
  let connId = -1;
  let ackTimer: ReturnType<typeof setTimeout> | undefined;
  const h = harness((batch) => {
    let lines = 0;
    for (let i = 0; i < batch.length; i += ENTRY) if (batch[i] === LINE) lines++;
    if (lines === 0) return;
    // A read after the window filled and before an ACK is what must not happen.
    if (outstanding >= WINDOW) overrun++;
    outstanding += lines;
    // A slow session: the ACK comes a turn later, while a socket that kept reading would deliver more.
    if (outstanding >= WINDOW && ackTimer === undefined) {
      ackTimer = setTimeout(() => {
        ackTimer = undefined;
        acks++;
        h.side.handle([ACK, connId, outstanding, 0]);
        outstanding = 0;
      }, 1);
    }
  });
  const port = await listen(h, 100_000, WINDOW);
  const { client, id } = await connect(h, port);
  connId = id;
  try {
    const pad = "x".repeat(2000);
    let text = "";
    for (let i = 0; i < LINES; i++) text += `${i} ${pad}\n`;
    client.write(text);
    await h.next((e) => e.op === LINE && String(e.a).startsWith(`${LINES - 1} `));
    assert.equal(overrun, 0, "reads went on after the window was full");
    assert.ok(acks >= LINES / WINDOW / 40, `${acks} ACKs`);
  } finally {
    clearTimeout(ackTimer);
    client.destroy();
    h.side.handle({ type: "stop" });
    await h.control("stopped");
  }
});

Deno.test("blank lines are summed per read, not sent one by one; other lines keep their order", async () => {
  const h = harness();
  const port = await listen(h, 1000);
  const { client, id } = await connect(h, port);
  try {
    client.write("first\n\n \r\n\t\nlast\n");
    await h.next((e) => e.op === LINE && e.a === "last");
    const mine = h.entries.filter((e) => e.id === id && (e.op === LINE || e.op === BLANK));
    assert.deepEqual(mine.filter((e) => e.op === LINE).map((e) => e.a), ["first", "last"]);
    const blank = mine.filter((e) => e.op === BLANK);
    assert.equal(blank.reduce((n, e) => n + (e.a as number), 0), 3, "three blank lines");
    assert.equal(blank.reduce((n, e) => n + (e.b as number), 0), 3, "of 3 bytes without their newlines");
  } finally {
    client.destroy();
    h.side.handle({ type: "stop" });
    await h.control("stopped");
  }
});

Deno.test("WRITE: text and messages already in bytes go out in order, each with its newline", async () => {
  const h = harness();
  const port = await listen(h, 1000);
  const { client, id } = await connect(h, port);
  try {
    let received = "";
    const decoder = new TextDecoder();
    client.on("data", (d: Uint8Array) => received += decoder.decode(d, { stream: true }));
    const big = new TextEncoder().encode(`"${"b".repeat(300_000)}"`);
    const messages = ['"a€"', big, '"c"', '"d"', new TextEncoder().encode('"e"')];
    h.side.handle([WRITE, id, messages, 0]);
    const written = await h.next((e) => e.op === WRITTEN && e.id === id);
    const expected = `"a€"\n"${"b".repeat(300_000)}"\n"c"\n"d"\n"e"\n`;
    assert.equal(written.a, new TextEncoder().encode(expected).length, "WRITTEN counts every byte");
    while (received.length < expected.length) await new Promise((resolve) => client.once("data", resolve));
    assert.equal(received, expected);
  } finally {
    client.destroy();
    h.side.handle({ type: "stop" });
    await h.control("stopped");
  }
});
