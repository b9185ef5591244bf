// Server side of RFC 6455 over a byte stream we already own (a TCP or TLS connection), so that WebSocket
// sessions get the same accept loop, MAX_SESSIONS, read back-pressure, bounded buffers and TLS reload as raw
// TCP ones. Deno.upgradeWebSocket would buffer whole messages of any size before we could refuse them.
import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";

/** Largest HTTP upgrade request accepted, headers included. */
export const MAX_HANDSHAKE_BYTES = 8192;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Close codes used here (RFC 6455 §7.4.1). */
export const CLOSE_NORMAL = 1000;
/** Endpoint going away (server shutdown). */
export const CLOSE_GOING_AWAY = 1001;
/** The peer broke the framing rules. */
export const CLOSE_PROTOCOL_ERROR = 1002;
/** A text message (or a close reason) that is not UTF-8. */
export const CLOSE_INVALID_DATA = 1007;

/** What WsFramer extracts from the byte stream. */
export interface WsSink {
  /** The HTTP upgrade was valid; send `response` before anything else. */
  open(response: Uint8Array): void;
  /** The HTTP upgrade was refused; send `response` and close. */
  reject(response: Uint8Array, reason: string): void;
  /** One complete text or binary message (a view, valid during the call only). */
  message(bytes: Uint8Array): void;
  /** Part of a message longer than the limit was dropped: as LineSink.oversize, frames and fragments alike. */
  oversize(bytes: number, first: boolean): void;
  /** Send this control frame (a pong). */
  control(frame: Uint8Array): void;
  /**
   * A frame that completes no message (a ping, a pong, a fragment before the last) arrived; `bytes` is its
   * payload when that belongs to no message. Such frames cost like keep-alives: reading them is work too.
   */
  idle(bytes: number): void;
  /** The peer closed or broke the protocol: send `frame` (a close frame) and close the connection. */
  close(frame: Uint8Array, reason: string): void;
}

const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

const HEADER_END = new Uint8Array([13, 10, 13, 10]);
const EMPTY = new Uint8Array(0);
const LATIN1 = new TextDecoder("latin1");
const ENCODER = new TextEncoder();

/**
 * Incremental parser for the server side of a WebSocket: first the HTTP upgrade request, then masked client
 * frames. Data messages over `maxMessage` bytes are skipped frame by frame, never buffered.
 */
export class WsFramer {
  #handshake: Uint8Array | null = new Uint8Array(0);
  #ended = false;

  // Current frame header.
  #hdr = new Uint8Array(14);
  #hdrLen = 0;
  #inFrame = false;
  #opcode = 0;
  #fin = false;
  #mask = new Uint8Array(4);
  #maskPos = 0;
  #remaining = 0;

  // Current message (may span fragments), unmasked into one buffer that grows by doubling: a message sent as
  // a million one-byte fragments must cost its bytes, not a million allocations.
  #msgActive = false;
  #msgText = false;
  #msgBuf = EMPTY;
  #msgBytes = 0;
  #msgSkipping = false;

  // Current control frame payload.
  #ctrl = new Uint8Array(125);
  #ctrlLen = 0;

  constructor(readonly maxMessage: number) {}

  /** Feeds received bytes; results go to `sink` before this returns. */
  push(chunk: Uint8Array, sink: WsSink): void {
    if (this.#ended) return;
    let i = 0;
    if (this.#handshake !== null) {
      i = this.#pushHandshake(chunk, sink);
      if (i < 0) return;
    }
    const n = chunk.length;
    while (i < n && !this.#ended) {
      if (!this.#inFrame) {
        i = this.#readHeader(chunk, i, sink);
        continue;
      }
      const take = Math.min(this.#remaining, n - i);
      const part = chunk.subarray(i, i + take);
      i += take;
      this.#remaining -= take;
      if (this.#opcode >= OP_CLOSE) {
        this.#unmaskInto(part, this.#ctrl, this.#ctrlLen);
        this.#ctrlLen += take;
      } else if (this.#msgSkipping) {
        // While skipping, #msgBytes counts what has not been reported yet.
        this.#msgBytes += take;
        if (this.#msgBytes >= this.maxMessage) {
          sink.oversize(this.#msgBytes, false);
          this.#msgBytes = 0;
        }
      } else if (this.#msgBytes + take > this.maxMessage) {
        // Reported at once: a frame or a run of fragments that never ends must not be read for free.
        sink.oversize(this.#msgBytes + take, true);
        this.#msgSkipping = true;
        this.#msgBuf = EMPTY;
        this.#msgBytes = 0;
      } else {
        // Room for the rest of this frame too (up to the limit), so that a whole frame takes one allocation.
        const upTo = this.#msgBytes + take;
        this.#reserve(upTo + Math.min(this.#remaining, this.maxMessage - upTo));
        this.#unmaskInto(part, this.#msgBuf, this.#msgBytes);
        this.#msgBytes = upTo;
      }
      if (this.#remaining === 0) this.#endFrame(sink);
    }
  }

  #reserve(bytes: number): void {
    const buf = this.#msgBuf;
    if (bytes <= buf.length) return;
    const grown = new Uint8Array(Math.max(bytes, Math.min(this.maxMessage, buf.length * 2)));
    grown.set(buf.subarray(0, this.#msgBytes));
    this.#msgBuf = grown;
  }

  /** Returns where frames start in `chunk`, or -1 when the handshake is incomplete or refused. */
  #pushHandshake(chunk: Uint8Array, sink: WsSink): number {
    const held = this.#handshake!;
    const all = new Uint8Array(held.length + chunk.length);
    all.set(held);
    all.set(chunk, held.length);
    const end = indexOfSeq(all, HEADER_END, Math.max(0, held.length - 3));
    if (end < 0 || end + 4 > MAX_HANDSHAKE_BYTES) {
      if (all.length > MAX_HANDSHAKE_BYTES) {
        this.#ended = true;
        sink.reject(
          httpError(431, "Request Header Fields Too Large", "request headers too large"),
          "headers too large",
        );
        return -1;
      }
      this.#handshake = all;
      return -1;
    }
    this.#handshake = null;
    const result = upgradeResponse(LATIN1.decode(all.subarray(0, end)));
    if ("error" in result) {
      this.#ended = true;
      sink.reject(result.error, result.reason);
      return -1;
    }
    sink.open(result.response);
    // Frames the client sent right behind its request arrive in the same chunk.
    return end + 4 - held.length;
  }

  #readHeader(chunk: Uint8Array, start: number, sink: WsSink): number {
    const hdr = this.#hdr;
    let i = start;
    while (i < chunk.length) {
      const need = this.#headerLength();
      if (this.#hdrLen >= need) break;
      hdr[this.#hdrLen++] = chunk[i++];
      // An unmasked frame's header is shorter than we would wait for: refuse it as soon as it shows.
      if (this.#hdrLen === 2 && (hdr[1] & 0x80) === 0) {
        this.#hdrLen = 0;
        return this.#fail(sink, "client frame not masked", chunk.length);
      }
    }
    if (this.#hdrLen < this.#headerLength()) return i;
    const b0 = hdr[0];
    const b1 = hdr[1];
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.#fail(sink, "reserved bits set", chunk.length);
    let len = b1 & 0x7f;
    let off = 2;
    if (len === 126) {
      len = (hdr[2] << 8) | hdr[3];
      off = 4;
    } else if (len === 127) {
      const hi = ((hdr[2] << 24) >>> 0) + (hdr[3] << 16) + (hdr[4] << 8) + hdr[5];
      const lo = ((hdr[6] << 24) >>> 0) + (hdr[7] << 16) + (hdr[8] << 8) + hdr[9];
      if (hi > 0x1fffff) return this.#fail(sink, "frame length over 2^53", chunk.length);
      len = hi * 2 ** 32 + lo;
      off = 10;
    }
    this.#mask.set(hdr.subarray(off, off + 4));
    this.#hdrLen = 0;
    if (opcode >= OP_CLOSE) {
      if (opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG) {
        return this.#fail(sink, `unknown opcode ${opcode}`, chunk.length);
      }
      if (!fin || len > 125) return this.#fail(sink, "fragmented or oversized control frame", chunk.length);
      this.#ctrlLen = 0;
    } else if (opcode === OP_CONTINUATION) {
      if (!this.#msgActive) return this.#fail(sink, "continuation without a message", chunk.length);
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.#msgActive) return this.#fail(sink, "new message inside a fragmented one", chunk.length);
      this.#msgActive = true;
      this.#msgText = opcode === OP_TEXT;
      this.#msgBuf = EMPTY;
      this.#msgBytes = 0;
      this.#msgSkipping = false;
    } else {
      return this.#fail(sink, `unknown opcode ${opcode}`, chunk.length);
    }
    this.#opcode = opcode;
    this.#fin = fin;
    this.#maskPos = 0;
    this.#remaining = len;
    this.#inFrame = true;
    if (len === 0) this.#endFrame(sink);
    return i;
  }

  #headerLength(): number {
    if (this.#hdrLen < 2) return 2;
    const len = this.#hdr[1] & 0x7f;
    return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + 4;
  }

  #unmaskInto(src: Uint8Array, dst: Uint8Array, at: number): void {
    const mask = this.#mask;
    let p = this.#maskPos;
    for (let k = 0; k < src.length; k++) {
      dst[at + k] = src[k] ^ mask[p];
      p = (p + 1) & 3;
    }
    this.#maskPos = p;
  }

  #endFrame(sink: WsSink): void {
    this.#inFrame = false;
    const opcode = this.#opcode;
    if (opcode === OP_PING) {
      sink.idle(this.#ctrlLen);
      sink.control(encodeFrame(OP_PONG, this.#ctrl.slice(0, this.#ctrlLen)));
      return;
    }
    if (opcode === OP_PONG) {
      sink.idle(this.#ctrlLen);
      return;
    }
    if (opcode === OP_CLOSE) {
      const body = this.#ctrl.subarray(0, this.#ctrlLen);
      if (body.length === 1) return void this.#fail(sink, "close frame of 1 byte", 0);
      const code = body.length >= 2 ? (body[0] << 8) | body[1] : CLOSE_NORMAL;
      if (!receivableCloseCode(code)) return void this.#fail(sink, `close code ${code}`, 0);
      if (!isUtf8(body.subarray(2))) {
        return void this.#fail(sink, "close reason not UTF-8", 0, CLOSE_INVALID_DATA);
      }
      this.#ended = true;
      // Echo the peer's status code, as RFC 6455 §5.5.1 suggests.
      sink.close(closeFrame(code), "peer closed the WebSocket");
      return;
    }
    if (!this.#fin) {
      sink.idle(0);
      return;
    }
    this.#msgActive = false;
    if (this.#msgSkipping) {
      if (this.#msgBytes > 0) sink.oversize(this.#msgBytes, false);
    } else {
      const bytes = this.#msgBuf.subarray(0, this.#msgBytes);
      // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection (fragments are checked together,
      // since one character may span two).
      if (this.#msgText && !isUtf8(bytes)) {
        return void this.#fail(sink, "text message not UTF-8", 0, CLOSE_INVALID_DATA);
      }
      sink.message(bytes);
    }
    this.#msgBuf = EMPTY;
    this.#msgBytes = 0;
  }

  /** Ends the stream for a protocol violation; returns `end` so callers can skip the rest of the chunk. */
  #fail(sink: WsSink, reason: string, end: number, code = CLOSE_PROTOCOL_ERROR): number {
    this.#ended = true;
    this.#msgBuf = EMPTY;
    sink.close(closeFrame(code), `WebSocket protocol error: ${reason}`);
    return end;
  }
}

// Codes a peer may send in a close frame (RFC 6455 §7.4; 1012–1014 registered since). 1005 and 1006 only
// report a close without a code, 1015 a failed TLS handshake: none is ever sent.
function receivableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/** The 101 response for a valid upgrade request, or an HTTP error response and the reason. */
export function upgradeResponse(
  head: string,
): { response: Uint8Array } | { error: Uint8Array; reason: string } {
  const lines = head.split("\r\n");
  const requestLine = /^GET (\S+) HTTP\/1\.1$/.exec(lines[0]);
  if (!requestLine) {
    return {
      error: httpError(400, "Bad Request", "expected a WebSocket upgrade"),
      reason: "not a GET request",
    };
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  if (!headers.get("host")) {
    return { error: httpError(400, "Bad Request", "missing Host header"), reason: "no Host header" };
  }
  const tokens = (name: string) => (headers.get(name) ?? "").toLowerCase().split(",").map((t) => t.trim());
  if (!tokens("upgrade").includes("websocket") || !tokens("connection").includes("upgrade")) {
    return {
      error: httpError(426, "Upgrade Required", "this port speaks Electrum over WebSocket", [
        "Upgrade: websocket",
      ]),
      reason: "no WebSocket upgrade headers",
    };
  }
  if (headers.get("sec-websocket-version") !== "13") {
    return {
      error: httpError(426, "Upgrade Required", "WebSocket version 13 required", [
        "Sec-WebSocket-Version: 13",
      ]),
      reason: "unsupported WebSocket version",
    };
  }
  const key = headers.get("sec-websocket-key") ?? "";
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) {
    return { error: httpError(400, "Bad Request", "invalid Sec-WebSocket-Key"), reason: "invalid key" };
  }
  const response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`;
  return { response: ENCODER.encode(response) };
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + WS_GUID).digest("base64");
}

function httpError(status: number, text: string, body: string, extra: string[] = []): Uint8Array {
  const head = [`HTTP/1.1 ${status} ${text}`, "Connection: close", "Content-Type: text/plain; charset=utf-8"]
    .concat(extra, [`Content-Length: ${body.length + 1}`]).join("\r\n");
  return ENCODER.encode(`${head}\r\n\r\n${body}\n`);
}

/** One unmasked, final server frame. */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const headerLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(headerLen + len);
  writeFrameHeader(out, 0, opcode, len);
  out.set(payload, headerLen);
  return out;
}

function writeFrameHeader(out: Uint8Array, at: number, opcode: number, len: number): number {
  out[at] = 0x80 | opcode;
  if (len < 126) {
    out[at + 1] = len;
    return at + 2;
  }
  if (len < 65536) {
    out[at + 1] = 126;
    out[at + 2] = len >> 8;
    out[at + 3] = len & 255;
    return at + 4;
  }
  out[at + 1] = 127;
  const hi = Math.floor(len / 2 ** 32);
  const lo = len >>> 0;
  out[at + 2] = hi >>> 24;
  out[at + 3] = (hi >>> 16) & 255;
  out[at + 4] = (hi >>> 8) & 255;
  out[at + 5] = hi & 255;
  out[at + 6] = lo >>> 24;
  out[at + 7] = (lo >>> 16) & 255;
  out[at + 8] = (lo >>> 8) & 255;
  out[at + 9] = lo & 255;
  return at + 10;
}

/** Text frames for whole messages (text, or its UTF-8 bytes), concatenated into one buffer for a single write. */
export function encodeTextFrames(messages: readonly (string | Uint8Array)[]): Uint8Array {
  const encoded = messages.map((m) => typeof m === "string" ? ENCODER.encode(m) : m);
  let total = 0;
  for (const e of encoded) total += e.length + (e.length < 126 ? 2 : e.length < 65536 ? 4 : 10);
  const out = new Uint8Array(total);
  let at = 0;
  for (const e of encoded) {
    at = writeFrameHeader(out, at, OP_TEXT, e.length);
    out.set(e, at);
    at += e.length;
  }
  return out;
}

/** A close frame with a status code. */
export function closeFrame(code: number): Uint8Array {
  return encodeFrame(OP_CLOSE, new Uint8Array([code >> 8, code & 255]));
}

function indexOfSeq(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (
    let i = hay.indexOf(needle[0], from);
    i >= 0 && i <= hay.length - needle.length;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    for (let k = 1; k < needle.length; k++) if (hay[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}
