// The socket thread: a Worker running the listeners' socket side (src/server/socket_side.ts), so that socket
// reads and writes, framing and UTF-8 work happen beside the main thread, which owns LevelDB and answers the
// requests. Used with SOCKET_THREAD=on, auto on two or more CPUs, and beside the main thread's own sockets
// with overflow (src/server/listeners.ts says what each costs).
/// <reference lib="deno.worker" />
import { type ControlMessage, THREAD_BATCH_ENTRIES } from "./socket_messages.ts";
import { SocketSide } from "./socket_side.ts";

const side = new SocketSide((msg) => self.postMessage(msg), THREAD_BATCH_ENTRIES);
self.onmessage = (e: MessageEvent<unknown[] | ControlMessage>) => side.handle(e.data);
