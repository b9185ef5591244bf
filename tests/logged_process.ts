// A child Deno process whose stderr (Coulomb's log) is kept line by line and can be awaited: the integration
// tests wait on log lines instead of sleeping.
import { LineReader } from "./line_reader.ts";

const REPO = new URL("../", import.meta.url).pathname;

// COULOMB_IT_ECHO=1 copies every child log line to stderr, to follow a test that hangs.
const ECHO = Deno.env.get("COULOMB_IT_ECHO") === "1";

/** A line of the log and where it was. */
export interface LineMatch {
  index: number;
  line: string;
  match: RegExpExecArray;
}

interface Waiter {
  re: RegExp;
  from: number;
  resolve: (m: LineMatch) => void;
  reject: (e: Error) => void;
}

/** A process whose stderr is kept line by line and can be waited on. */
export class LoggedProcess {
  readonly lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  private waiters: Waiter[] = [];
  private exited = false;
  private readonly listeners: ((line: string, index: number) => void)[] = [];
  private readonly reading: Promise<void>;

  private constructor(private readonly child: Deno.ChildProcess, private readonly name: string) {
    this.reading = this.readLines();
    this.status = child.status;
  }

  /** `deno <args>` in the repository with only `env` (plus what Deno needs to find its caches). */
  static spawn(args: string[], env: Record<string, string>, name = "coulomb"): LoggedProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: REPO,
      clearEnv: true,
      env: { ...passThroughEnv(), ...env },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return new LoggedProcess(child, name);
  }

  /** Calls `fn` for every line from now on (after waiters are served). */
  onLine(fn: (line: string, index: number) => void): void {
    this.listeners.push(fn);
  }

  /**
   * The first line at index >= `from` matching `re`; rejects if the process ends without one, or if none comes
   * within `patienceMs`: a liveness guard so that a stuck process fails the test with its log instead of hanging
   * it (far above anything these tests need, it measures nothing).
   */
  waitFor(re: RegExp, from = 0, patienceMs = 60_000): Promise<LineMatch> {
    const found = this.find(re, from);
    if (found) return Promise.resolve(found);
    if (this.exited) return Promise.reject(this.endedWithout(re));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no line matching ${re} for ${patienceMs / 1000}s; last lines:\n${this.tail()}`));
      }, patienceMs);
      const waiter: Waiter = {
        re,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** The first line at index >= `from` matching `re`, if any yet. */
  find(re: RegExp, from = 0): LineMatch | undefined {
    return this.findAll(re, from, 1)[0];
  }

  /** Every line at index >= `from` matching `re` (at most `limit`). */
  findAll(re: RegExp, from = 0, limit = Infinity): LineMatch[] {
    const out: LineMatch[] = [];
    for (let i = Math.max(0, from); i < this.lines.length && out.length < limit; i++) {
      const m = re.exec(this.lines[i]);
      if (m) out.push({ index: i, line: this.lines[i], match: m });
    }
    return out;
  }

  /** Sends a signal; a no-op once the process is gone. */
  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch (e) {
      if (!(e instanceof TypeError)) throw e; // already exited
    }
  }

  /** Waits for the process to exit and its log to be read completely. */
  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.reading;
    return status;
  }

  /** The cleanup of every test: SIGKILL to the process and its descendants (a launcher's main.ts), then wait. */
  async close(): Promise<void> {
    for (const pid of this.descendantPids()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }
    this.kill("SIGKILL");
    await this.finish();
  }

  /** The pids of the process's descendants (a launcher's main.ts), deepest first. */
  descendantPids(): number[] {
    return descendants(this.child.pid);
  }

  /** The last lines of the log, for assertion messages. */
  tail(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }

  private endedWithout(re: RegExp): Error {
    return new Error(`${this.name} exited without logging ${re}; last lines:\n${this.tail()}`);
  }

  private async readLines(): Promise<void> {
    const lines = new LineReader(this.child.stderr, { keepTail: true });
    for (let line; (line = await lines.next()) !== null;) this.addLine(line);
    await this.child.status;
    this.exited = true;
    for (const w of this.waiters) w.reject(this.endedWithout(w.re));
    this.waiters = [];
  }

  private addLine(line: string): void {
    if (ECHO) console.error(`[${this.name}] ${line}`);
    const index = this.lines.length;
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (index < w.from) return true;
      const m = w.re.exec(line);
      if (!m) return true;
      w.resolve({ index, line, match: m });
      return false;
    });
    for (const fn of this.listeners) fn(line, index);
  }
}

// A killed launcher leaves its child running, holding our stderr pipe open: find it through /proc (Linux). A
// child is listed under the thread that spawned it, which in Deno is rarely the main one, so every thread's list
// is read; through `sh` and `cat` because Deno lets only --allow-all read another process's /proc entries.
function descendants(pid: number): number[] {
  const out = new Deno.Command("sh", {
    args: ["-c", 'cat /proc/"$1"/task/*/children 2>/dev/null', "sh", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const kids = new TextDecoder().decode(out.stdout).trim().split(/\s+/).filter(Boolean).map(Number);
  return kids.flatMap((k) => [...descendants(k), k]);
}

// What the child needs from our environment to find Deno's caches; nothing that configures Coulomb.
function passThroughEnv(): Record<string, string> {
  const out: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) out[name] = v;
  }
  return out;
}
