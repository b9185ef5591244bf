// Server tests that must hold wherever the sockets live: each is registered once per SOCKET_THREAD mode.

let current = "on";

/** SOCKET_THREAD for the test running now (Deno runs a file's tests one at a time). */
export function socketThread(): string {
  return current;
}

/** Registers `fn` once with the sockets in the socket thread and once on the main thread. */
export function testBothModes(name: string, fn: () => Promise<void>): void {
  for (const mode of ["on", "off"]) {
    Deno.test(`${name} [SOCKET_THREAD=${mode}]`, () => {
      current = mode;
      return fn();
    });
  }
}
