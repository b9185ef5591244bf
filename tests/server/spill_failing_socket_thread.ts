// A socket thread for SOCKET_THREAD=overflow's second side that fails while it starts, in one of two ways chosen
// by the module's query string: "crash" accepts a first connection (its OPENED reaches the listeners) and then
// dies before saying it listens; "tls" holds its start until a TLS reload arrives, then reports the start as
// failed and never answers the reload.
/// <reference lib="deno.worker" />
import { type ControlMessage, ENTRY, OPENED } from "../../src/server/socket_messages.ts";
import { SocketSide } from "../../src/server/socket_side.ts";

const mode = new URL(import.meta.url).searchParams.get("mode");
let started = false;
const side = new SocketSide((msg) => {
  if (!Array.isArray(msg)) {
    if (msg.type === "listening") return; // never announced
    self.postMessage(msg);
    return;
  }
  self.postMessage(msg);
  for (let i = 0; i < msg.length; i += ENTRY) {
    if (msg[i] === OPENED) {
      setTimeout(() => {
        throw new Error("spill test crash");
      });
    }
  }
});
self.onmessage = (e: MessageEvent<unknown[] | ControlMessage>) => {
  const msg = e.data;
  if (mode === "tls" && !Array.isArray(msg)) {
    if (msg.type === "start") {
      started = true;
      return;
    }
    if (msg.type === "tls" && started) {
      self.postMessage({ type: "failed", message: "spill test failure" });
      return;
    }
  }
  side.handle(msg);
};
