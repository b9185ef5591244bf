// Helpers of the service tests (tests/permissions.test.ts, tests/signals.test.ts): Coulomb started exactly as
// `deno task start` starts it (the launcher, then main.ts in its computed sandbox), its log read line by line,
// and a small Electrum client.
import assert from "node:assert/strict";
import { LineReader } from "./line_reader.ts";
import { LoggedProcess } from "./logged_process.ts";

const REPO = new URL("../", import.meta.url).pathname;

/** The `deno …` arguments of a deno.json task, split on blanks (our tasks quote nothing). */
export async function taskArgs(name: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).tasks as Record<string, string>;
  const words = tasks[name].split(/\s+/);
  assert.equal(words[0], "deno", `task ${name} runs deno`);
  return words.slice(1);
}

export { LoggedProcess } from "./logged_process.ts";

/** The environment of a regtest Coulomb on `dir`/db following a simnet (cookie auth, quick polls). */
export function simnetServiceEnv(
  dir: string,
  sim: { url: string; cookiePath?: string },
): Record<string, string> {
  return {
    NET: "regtest",
    DB_DIRECTORY: `${dir}/db`,
    DAEMON_URL: sim.url,
    DAEMON_COOKIE: sim.cookiePath!,
    DAEMON_POLL_MS: "50",
  };
}

/** Coulomb through `deno task start`'s command line. */
export async function startService(env: Record<string, string>): Promise<LoggedProcess> {
  return LoggedProcess.spawn(await taskArgs("start"), env);
}

const handedOut = new Set<number>();

/**
 * A TCP port nobody listens on right now (bound and released), never one this process was given before: the
 * kernel may offer a just-released port again, and two services of one test given the same port fail.
 */
export function freePort(): number {
  for (;;) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** A newline-delimited JSON-RPC client over one connection. */
export class ElectrumClient {
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Record<string, unknown>) => void>();
  private readonly reading: Promise<void>;

  constructor(private readonly conn: Deno.Conn) {
    this.reading = this.read().catch(() => {});
  }

  /** Sends one request; resolves to its result, rejects with its error. */
  async call(method: string, params: unknown[] = []): Promise<unknown> {
    const id = this.nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve) => this.pending.set(id, resolve));
    await this.conn.write(
      new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n"),
    );
    const r = await reply;
    if (r.error) throw new Error(`${method}: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  /** Closes the connection and waits for the reader. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed by the server.
    }
    await this.reading;
  }

  private async read(): Promise<void> {
    const lines = new LineReader(this.conn.readable);
    for (let line; (line = await lines.next()) !== null;) {
      const msg = JSON.parse(line);
      if (typeof msg.id === "number") this.pending.get(msg.id)?.(msg);
    }
  }
}
