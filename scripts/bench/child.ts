// The benchmarks' child processes (simnet, the indexer, the server): started with piped output, their lines
// handed over as they arrive and the last ones kept for error messages.
import { allocatorEnv, describeAllocator } from "../../src/allocator.ts";
import { forEachLine } from "./proc.ts";

/** Lines of a child's output kept for error messages. */
const KEPT_LINES = 200;

/** A child process of a benchmark; `lines` holds the last things it said. */
export interface BenchChild {
  proc: Deno.ChildProcess;
  lines: string[];
  /** Settles once the process exited and both pipes are drained, so the last lines are never lost. */
  exited: Promise<Deno.CommandStatus>;
}

/** `deno <args>` with `env`; every line of stdout and stderr goes to `onLine` after it is kept. */
export function spawnBenchChild(
  args: string[],
  env: Record<string, string>,
  onLine: (line: string, child: BenchChild) => void,
  cwd?: string,
): BenchChild {
  const proc = new Deno.Command(Deno.execPath(), {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const child: BenchChild = {
    proc,
    lines: [],
    exited: Promise.resolve(undefined as unknown as Deno.CommandStatus),
  };
  const take = (line: string) => {
    child.lines.push(line);
    if (child.lines.length > KEPT_LINES) child.lines.shift();
    onLine(line, child);
  };
  const out = forEachLine(proc.stdout, take);
  const err = forEachLine(proc.stderr, take);
  child.exited = Promise.all([out, err]).then(() => proc.status);
  return child;
}

/** The error for a child that exited before its benchmark was done, with its last lines. */
export function exitedError(what: string, status: Deno.CommandStatus, lines: readonly string[]): Error {
  const tail = lines.slice(-15).map((l) => `  ${l}`).join("\n");
  const how = `code ${status.code}${status.signal ? `, ${status.signal}` : ""}`;
  return new Error(`${what} exited early (${how}); last lines:\n${tail}`);
}

/**
 * The allocator environment `deno task start` gives Coulomb (src/allocator.ts) with `extra` on top (`extra`
 * alone when `launcherSettings` is false), and how that allocator reads in a report. A child inherits this
 * process's environment, so an LD_PRELOAD there counts as the operator's choice.
 */
export function benchAllocator(
  extra: Readonly<Record<string, string>>,
  launcherSettings: boolean,
): { env: Record<string, string>; description: string } {
  const inherited = Deno.env.toObject();
  const env = { ...(launcherSettings ? allocatorEnv({ ...inherited, ...extra }) : {}), ...extra };
  return { env, description: describeAllocator({ ...inherited, ...env }) };
}
