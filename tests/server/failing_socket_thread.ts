// A socket thread that serves until its first connection sends a request, then dies: what a crash of the
// real one (src/server/socket_thread.ts) looks like to the listeners.
/// <reference lib="deno.worker" />
import type { ControlMessage } from "../../src/server/socket_messages.ts";
import { ENTRY, LINE } from "../../src/server/socket_messages.ts";
import { SocketSide } from "../../src/server/socket_side.ts";

const side = new SocketSide((msg) => {
  for (let i = 0; Array.isArray(msg) && i < msg.length; i += ENTRY) {
    if (msg[i] === LINE) throw new Error("socket thread test crash");
  }
  self.postMessage(msg);
});
self.onmessage = (e: MessageEvent<unknown[] | ControlMessage>) => side.handle(e.data);
