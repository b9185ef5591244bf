import assert from "node:assert/strict";
import {
  acceptKey,
  closeFrame,
  encodeFrame,
  encodeTextFrames,
  upgradeResponse,
  WsFramer,
  type WsSink,
} from "../../src/server/websocket.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const UPGRADE =
  "GET /electrum HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\r\n";

/** A client frame (masked), as browsers send them. */
function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
  mask = [0x37, 0xfa, 0x21, 0x3d],
) {
  const data = typeof payload === "string" ? enc.encode(payload) : payload;
  const len = data.length;
  const head = len < 126 ? [len] : len < 65536 ? [126, len >> 8, len & 255] : [127, 0, 0, 0, 0, ...u32(len)];
  const out = new Uint8Array(1 + head.length + 4 + len);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out.set(head, 1);
  out[1] |= 0x80;
  out.set(mask, 1 + head.length);
  const at = 1 + head.length + 4;
  for (let i = 0; i < len; i++) out[at + i] = data[i] ^ mask[i & 3];
  return out;
}

function u32(n: number) {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

function concat(...parts: Uint8Array[]) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function recorder() {
  const events: (string | number | [string, string])[] = [];
  // Frames that complete no message, and their message-less payload bytes (not in `events`).
  const idle = { frames: 0, bytes: 0 };
  const sink: WsSink = {
    idle: (n) => {
      idle.frames++;
      idle.bytes += n;
    },
    open: (r) => events.push(["open", dec.decode(r)]),
    reject: (r, reason) => events.push(["reject", `${dec.decode(r).split("\r\n")[0]} (${reason})`]),
    message: (b) => events.push(dec.decode(b)),
    // The report that finds a message too long as a number; later parts of it as "+bytes".
    oversize: (n, first) => events.push(first ? n : `+${n}`),
    control: (f) => events.push(["control", [...f].join(",")]),
    close: (f, reason) => events.push(["close", `${[...f].join(",")} ${reason}`]),
  };
  return { events, sink, idle };
}

function feed(framer: WsFramer, bytes: Uint8Array, chunk: number) {
  const r = recorder();
  for (let i = 0; i < bytes.length; i += chunk) framer.push(bytes.slice(i, i + chunk), r.sink);
  return r.events;
}

Deno.test("acceptKey matches RFC 6455's example", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("upgrade handshake: 101 for a valid request, 426/400 otherwise", () => {
  const good = upgradeResponse(UPGRADE.slice(0, -4));
  assert.ok("response" in good);
  assert.equal(
    dec.decode(good.response),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
  );
  const status = (head: string) => {
    const r = upgradeResponse(head);
    return "error" in r ? dec.decode(r.error).split("\r\n")[0] : "101";
  };
  assert.equal(status("GET / HTTP/1.1\r\nHost: x"), "HTTP/1.1 426 Upgrade Required");
  assert.equal(
    status(UPGRADE.slice(0, -4).replace("Version: 13", "Version: 8")),
    "HTTP/1.1 426 Upgrade Required",
  );
  assert.equal(
    status(UPGRADE.slice(0, -4).replace("dGhlIHNhbXBsZSBub25jZQ==", "short")),
    "HTTP/1.1 400 Bad Request",
  );
  assert.equal(status("POST / HTTP/1.1\r\nUpgrade: websocket"), "HTTP/1.1 400 Bad Request");
  assert.equal(
    status(UPGRADE.slice(0, -4).replace("Host: example.com\r\n", "")),
    "HTTP/1.1 400 Bad Request",
    "RFC 6455 §4.2.1: a Host header is required",
  );
  assert.equal(status('{"jsonrpc":"2.0","id":1,"method":"server.version"}'), "HTTP/1.1 400 Bad Request");
});

Deno.test("WsFramer: handshake then frames, byte by byte or all at once, masked and fragmented", () => {
  const stream = concat(
    enc.encode(UPGRADE),
    clientFrame(1, '{"id":1}'),
    clientFrame(9, "hi"), // ping
    clientFrame(1, '{"id":', false),
    clientFrame(10, ""), // an unsolicited pong between fragments is allowed and ignored
    clientFrame(0, "2", false),
    clientFrame(0, "}", true),
    clientFrame(2, "binary is accepted too"),
    clientFrame(1, "x".repeat(300)),
    clientFrame(1, "y".repeat(70_000)),
  );
  const expected = (events: unknown[]) => {
    assert.equal((events[0] as string[])[0], "open");
    assert.deepEqual(events.slice(1, 3), ['{"id":1}', [
      "control",
      [...encodeFrame(10, enc.encode("hi"))].join(","),
    ]]);
    assert.deepEqual(events.slice(3, 5), ['{"id":2}', "binary is accepted too"]);
    assert.equal(events[5], "x".repeat(300));
    assert.equal(events[6], "y".repeat(70_000));
    assert.equal(events.length, 7);
  };
  expected(feed(new WsFramer(100_000), stream, stream.length));
  expected(feed(new WsFramer(100_000), stream, 1));
  expected(feed(new WsFramer(100_000), stream, 1000));
});

Deno.test("WsFramer: messages over the limit are skipped without buffering, and the next one is intact", () => {
  const framer = new WsFramer(1000);
  const big = concat(clientFrame(1, "a".repeat(800), false), clientFrame(0, "b".repeat(800), true));
  const stream = concat(enc.encode(UPGRADE), big, clientFrame(1, "after"));
  const events = feed(framer, stream, 97);
  // Reported as soon as it passes 1,000 bytes (within the read of 97 that does), the rest when it ends.
  const first = events[1] as number;
  assert.ok(first > 1000 && first <= 1097, `first report ${first}`);
  assert.deepEqual(events.slice(2), [`+${1600 - first}`, "after"]);
});

Deno.test("WsFramer: a frame or a run of fragments that never ends is reported while it arrives", () => {
  // One frame announcing 10 MB of which 50 KB arrive.
  const header = new Uint8Array([0x81, 0xff, 0, 0, 0, 0, 0, 0x98, 0x96, 0x80, 1, 2, 3, 4]);
  const huge = concat(enc.encode(UPGRADE), header, new Uint8Array(50_000));
  const e1 = feed(new WsFramer(10_000), huge, 1000);
  const first = e1[1] as number;
  assert.ok(first > 10_000 && first <= 11_000, `first report ${first}`);
  assert.deepEqual(e1.slice(2), ["+10000", "+10000", "+10000"]);
  // Non-final fragments without end: the same.
  const frags = concat(enc.encode(UPGRADE), clientFrame(1, "a".repeat(600), false));
  const parts = [frags];
  for (let i = 0; i < 99; i++) parts.push(clientFrame(0, "b".repeat(600), false));
  const e2 = feed(new WsFramer(10_000), concat(...parts), 4096);
  const reported = e2.slice(1).map((e) => typeof e === "number" ? e : Number(String(e).slice(1)));
  assert.equal(typeof e2[1], "number", "the first report counts as the error");
  assert.ok(e2.slice(2).every((e) => typeof e === "string" && e.startsWith("+")));
  assert.ok(reported.reduce((a, b) => a + b, 0) > 60_000 - 10_000, `${reported}`);
});

Deno.test("WsFramer: a message in 100,000 one-byte fragments arrives whole; the limit counts all of them", () => {
  const text = Array.from({ length: 100_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
  const frames = [clientFrame(1, text[0], false)];
  for (let i = 1; i < text.length; i++) frames.push(clientFrame(0, text[i], i === text.length - 1));
  const stream = concat(enc.encode(UPGRADE), ...frames, clientFrame(1, "next"));
  for (const chunk of [stream.length, 4096, 7]) {
    assert.deepEqual(
      feed(new WsFramer(100_000), stream, chunk).slice(1),
      [text, "next"],
      `chunks of ${chunk}`,
    );
  }
  // One byte over the limit, spread over fragments: skipped, reported with its full length.
  assert.deepEqual(feed(new WsFramer(99_999), stream, 4096).slice(1), [100_000, "next"]);
});

Deno.test("WsFramer: pings, pongs and fragments before the last are reported as idle frames", () => {
  const r = recorder();
  const framer = new WsFramer(1000);
  framer.push(
    concat(
      enc.encode(UPGRADE),
      clientFrame(9, "ping!"),
      clientFrame(10, "pong"),
      clientFrame(1, "", false),
      clientFrame(0, "", false),
      clientFrame(0, "{}", true),
    ),
    r.sink,
  );
  assert.deepEqual(r.events.slice(1).filter((e) => typeof e === "string"), ["{}"]);
  assert.deepEqual(
    r.idle,
    { frames: 4, bytes: 9 },
    "ping and pong payloads; empty fragments count as frames",
  );
});

Deno.test("WsFramer: close is echoed; protocol violations close with 1002", () => {
  const close = feed(
    new WsFramer(100),
    concat(enc.encode(UPGRADE), clientFrame(8, new Uint8Array([0x03, 0xe9]))),
    500,
  );
  assert.deepEqual(close[1], ["close", `${[...closeFrame(1001)].join(",")} peer closed the WebSocket`]);

  const unmasked = concat(enc.encode(UPGRADE), new Uint8Array([0x81, 0x02, 0x7b, 0x7d]));
  const e1 = feed(new WsFramer(100), unmasked, 500);
  assert.deepEqual(e1[1], [
    "close",
    `${[...closeFrame(1002)].join(",")} WebSocket protocol error: client frame not masked`,
  ]);

  const orphan = feed(new WsFramer(100), concat(enc.encode(UPGRADE), clientFrame(0, "x")), 500);
  assert.match((orphan[1] as string[])[1], /continuation without a message/);

  const rsv = clientFrame(1, "x");
  rsv[0] |= 0x40;
  assert.match(
    (feed(new WsFramer(100), concat(enc.encode(UPGRADE), rsv), 500)[1] as string[])[1],
    /reserved bits/,
  );

  // Nothing is parsed after the stream ended.
  const after = feed(new WsFramer(100), concat(unmasked, clientFrame(1, "late")), 500);
  assert.equal(after.length, 2);
});

Deno.test("WsFramer: close codes a peer may not send, a 1-byte close body and a reason that is not UTF-8 fail", () => {
  const closeWith = (body: number[]) =>
    feed(new WsFramer(100), concat(enc.encode(UPGRADE), clientFrame(8, new Uint8Array(body))), 500)[1];
  const code = (event: unknown) => {
    const bytes = (event as string[])[1].split(" ")[0].split(",").map(Number);
    return (bytes[2] << 8) | bytes[3];
  };
  for (const ok of [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999]) {
    assert.equal(code(closeWith([ok >> 8, ok & 255])), ok, `${ok} is echoed`);
  }
  assert.equal(code(closeWith([])), 1000, "no code: a normal close");
  for (const bad of [0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000]) {
    assert.equal(code(closeWith([bad >> 8, bad & 255])), 1002, `${bad} may not be sent (RFC 6455 §7.4)`);
  }
  assert.equal(code(closeWith([0x03])), 1002, "a close body of 1 byte");
  assert.equal(code(closeWith([0x03, 0xe8, 0xc3, 0x28])), 1007, "a close reason that is not UTF-8");
  assert.equal(code(closeWith([0x03, 0xe8, ...enc.encode("bye ✓")])), 1000);
});

Deno.test("WsFramer: a text message that is not UTF-8 fails with 1007, fragments checked together", () => {
  const run = (...frames: Uint8Array[]) => feed(new WsFramer(100), concat(enc.encode(UPGRADE), ...frames), 7);
  const bad = run(clientFrame(1, new Uint8Array([0x7b, 0xc3, 0x28, 0x7d])), clientFrame(1, "{}"));
  assert.equal(bad.length, 2, "nothing after the failure");
  assert.match((bad[1] as string[])[1], /^136,2,3,239 WebSocket protocol error: text message not UTF-8$/);
  // "✓" (e2 9c 93) split across two fragments is fine; a bad byte in the second fragment is not.
  const check = enc.encode("✓");
  assert.deepEqual(
    run(clientFrame(1, check.subarray(0, 2), false), clientFrame(0, check.subarray(2)))[1],
    "✓",
  );
  const split = run(clientFrame(1, check.subarray(0, 2), false), clientFrame(0, new Uint8Array([0x28])));
  assert.match((split[1] as string[])[1], /^136,2,3,239 /);
  // A binary message is not text: its bytes go on as they are (the session answers them with -32700).
  assert.equal(run(clientFrame(2, new Uint8Array([0xc3, 0x28])))[1], "\ufffd(");
});

Deno.test("WsFramer: a request that is not an upgrade is refused, and so are endless headers", () => {
  const plain = feed(new WsFramer(100), enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 5);
  assert.deepEqual(plain, [["reject", "HTTP/1.1 426 Upgrade Required (no WebSocket upgrade headers)"]]);
  const endless = feed(
    new WsFramer(100),
    enc.encode("GET / HTTP/1.1\r\n" + "X-Pad: y\r\n".repeat(2000)),
    1000,
  );
  assert.deepEqual(endless, [["reject", "HTTP/1.1 431 Request Header Fields Too Large (headers too large)"]]);
  // Over the limit with its end in the same chunk as the part that crosses the limit: refused all the same.
  const big = enc.encode(UPGRADE.replace("Origin:", "X-Pad: " + "y".repeat(9000) + "\r\nOrigin:"));
  for (const chunk of [big.length, 8000]) {
    assert.deepEqual(feed(new WsFramer(100), big, chunk), [
      ["reject", "HTTP/1.1 431 Request Header Fields Too Large (headers too large)"],
    ]);
  }
});

Deno.test("encodeTextFrames uses the 7-bit, 16-bit and 64-bit length forms", () => {
  const lens = [0, 125, 126, 65535, 65536];
  const frames = encodeTextFrames(lens.map((n) => "z".repeat(n)));
  let at = 0;
  for (const n of lens) {
    assert.equal(frames[at], 0x81);
    const b1 = frames[at + 1];
    if (n < 126) {
      assert.equal(b1, n);
      at += 2;
    } else if (n < 65536) {
      assert.equal(b1, 126);
      assert.equal((frames[at + 2] << 8) | frames[at + 3], n);
      at += 4;
    } else {
      assert.equal(b1, 127);
      assert.deepEqual([...frames.subarray(at + 2, at + 10)], [0, 0, 0, 0, ...u32(n)]);
      at += 10;
    }
    assert.ok(frames.subarray(at, at + n).every((b) => b === 0x7a));
    at += n;
  }
  assert.equal(at, frames.length);
});
