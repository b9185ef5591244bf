// Server tests that must hold wherever the sockets live: each is registered once per place (Config.socketThread).
import type { SocketThreadMode } from "../../src/config.ts";

let current: SocketThreadMode = "thread";

/** Config.socketThread for the test running now (Deno runs a file's tests one at a time). */
export function socketThreadMode(): SocketThreadMode {
  return current;
}

/**
 * ServerOptions.mainThreadSessions for the tests: with "both", the socket thread starts listening once the
 * first session is open, so a test's later connections land on either side (31 in 32 in the thread).
 */
export const TEST_MAIN_THREAD_SESSIONS = 1;

/** Registers `fn` once with the sockets in the socket thread, once on the main thread, and once on both. */
export function testEveryMode(name: string, fn: () => Promise<void>): void {
  for (const mode of ["thread", "main", "both"] as const) {
    Deno.test(`${name} [sockets: ${mode}]`, () => {
      current = mode;
      return fn();
    });
  }
}
