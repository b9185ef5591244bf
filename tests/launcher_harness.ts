// Helpers of the service tests (tests/permissions.test.ts, tests/signals.test.ts): Coulomb started exactly as
// `deno task start` starts it (the launcher, then main.ts in its computed sandbox), its log read line by line,
// a small Electrum client and throwaway TLS certificates.
import assert from "node:assert/strict";

const REPO = new URL("../", import.meta.url).pathname;

/** The `deno …` arguments of a deno.json task, split on blanks (our tasks quote nothing). */
export async function taskArgs(name: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`)).tasks as Record<string, string>;
  const words = tasks[name].split(/\s+/);
  assert.equal(words[0], "deno", `task ${name} runs deno`);
  return words.slice(1);
}

/** A line of the log and where it was. */
export interface LogLine {
  index: number;
  line: string;
  match: RegExpExecArray;
}

interface Waiter {
  re: RegExp;
  from: number;
  resolve: (m: LogLine) => void;
  reject: (e: Error) => void;
}

/** A process whose stderr is kept line by line and can be waited on. */
export class LoggedProcess {
  readonly lines: string[] = [];
  private waiters: Waiter[] = [];
  private ended = false;
  private readonly reading: Promise<void>;

  private constructor(private readonly child: Deno.ChildProcess) {
    this.reading = this.read();
  }

  /** `deno <args>` in the repository with only `env` (plus what Deno needs to find its caches). */
  static spawn(args: string[], env: Record<string, string>): LoggedProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: REPO,
      clearEnv: true,
      env: { ...passThroughEnv(), ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return new LoggedProcess(child);
  }

  /** Coulomb through `deno task start`'s command line. */
  static async start(env: Record<string, string>): Promise<LoggedProcess> {
    return LoggedProcess.spawn(await taskArgs("start"), env);
  }

  /** The first line at index >= `from` matching `re`; rejects once the process ended without one. */
  waitFor(re: RegExp, from = 0): Promise<LogLine> {
    const found = this.find(re, from);
    if (found) return Promise.resolve(found);
    if (this.ended) return Promise.reject(this.missing(re));
    return new Promise((resolve, reject) => this.waiters.push({ re, from, resolve, reject }));
  }

  /** The first line at index >= `from` matching `re`, if any yet. */
  find(re: RegExp, from = 0): LogLine | undefined {
    for (let i = from; i < this.lines.length; i++) {
      const match = re.exec(this.lines[i]);
      if (match) return { index: i, line: this.lines[i], match };
    }
    return undefined;
  }

  /** Sends a signal; a no-op once the process is gone. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
    }
  }

  /** Waits for the exit and the whole log. */
  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.child.status;
    await this.reading;
    return status;
  }

  /** The cleanup of every test: SIGKILL to the process and its children (the launcher's main.ts) if running. */
  async close(): Promise<void> {
    for (const pid of this.descendants(this.child.pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    this.kill("SIGKILL");
    await this.finish();
  }

  /** The pids of the process's descendants (the launcher's main.ts), deepest first. */
  descendantPids(): number[] {
    return this.descendants(this.child.pid);
  }

  // A killed launcher leaves its child running, holding our stderr pipe open: find it through /proc (Linux).
  private descendants(pid: number): number[] {
    let text = "";
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`);
    } catch {
      return [];
    }
    const kids = text.trim().split(/\s+/).filter(Boolean).map(Number);
    return kids.flatMap((k) => [...this.descendants(k), k]);
  }

  /** The last lines, for assertion messages. */
  tail(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }

  private missing(re: RegExp): Error {
    return new Error(`the process exited without logging ${re}; last lines:\n${this.tail()}`);
  }

  private async read(): Promise<void> {
    let partial = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.child.stderr) {
      partial += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        this.add(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    }
    if (partial) this.add(partial);
    this.ended = true;
    for (const w of this.waiters) w.reject(this.missing(w.re));
    this.waiters = [];
  }

  private add(line: string): void {
    const index = this.lines.length;
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      const match = index >= w.from ? w.re.exec(line) : null;
      if (match) w.resolve({ index, line, match });
      return !match;
    });
  }
}

function passThroughEnv(): Record<string, string> {
  const out: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** A TCP port nobody listens on right now (bound and released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A newline-delimited JSON-RPC client over one connection. */
export class ElectrumClient {
  private nextId = 1;
  private buffer = "";
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
    const decoder = new TextDecoder();
    for await (const chunk of this.conn.readable) {
      this.buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const msg = JSON.parse(this.buffer.slice(0, nl));
        this.buffer = this.buffer.slice(nl + 1);
        if (typeof msg.id === "number") this.pending.get(msg.id)?.(msg);
      }
    }
  }
}

/** A self-signed certificate for localhost (PEM files `<name>.pem` and `<name>.key` in `dir`). */
export async function makeCert(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
      // rustls refuses a CA certificate as a server's own.
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-days",
      "1",
      "-keyout",
      `${dir}/${name}.key`,
      "-out",
      `${dir}/${name}.pem`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return {
    cert: await Deno.readTextFile(`${dir}/${name}.pem`),
    key: await Deno.readTextFile(`${dir}/${name}.key`),
  };
}
