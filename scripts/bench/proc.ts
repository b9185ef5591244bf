// What the benchmark reads about its child processes and their output: Linux /proc figures (peak RSS, CPU
// time), the size of a directory tree on disk, and log lines as they arrive on a pipe.

/** Memory and CPU figures of one process, from /proc/<pid>/status and /proc/<pid>/stat. */
export interface ProcFigures {
  /** Peak resident set size (VmHWM) in bytes. */
  peakRssBytes: number;
  /** Current resident set size (VmRSS) in bytes. */
  rssBytes: number;
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
}

/** Reads a live process's figures; undefined when /proc is unavailable or the process is gone. */
export function readProcFigures(pid: number): ProcFigures | undefined {
  try {
    const status = readProcFile(`/proc/${pid}/status`);
    const stat = readProcFile(`/proc/${pid}/stat`);
    return {
      peakRssBytes: statusKiB(status, "VmHWM") * 1024,
      rssBytes: statusKiB(status, "VmRSS") * 1024,
      cpuSeconds: statCpuSeconds(stat),
    };
  } catch {
    return undefined;
  }
}

/**
 * A /proc file's text. Deno reads /proc files only with --allow-all; without it, `cat` (under --allow-run)
 * reads them for us, so `deno task bench` and the bench's own tests run with narrower flags.
 */
export function readProcFile(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotCapable)) throw err;
    const out = new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" }).outputSync();
    if (!out.success) throw new Error(`cannot read ${path}`);
    return new TextDecoder().decode(out.stdout);
  }
}

/** The value of a `Key:   1234 kB` line of /proc/<pid>/status, in KiB (0 when absent). */
export function statusKiB(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, "m").exec(status);
  return m ? Number(m[1]) : 0;
}

// Linux reports CPU time in clock ticks; USER_HZ is 100 on every architecture Deno runs on.
const CLOCK_TICKS = 100;

/** utime + stime of /proc/<pid>/stat in seconds. The command name may hold spaces, so fields count from ")". */
export function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the name: state is field 3 of the full line, utime 14 and stime 15.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  return (utime + stime) / CLOCK_TICKS;
}

/** Bytes a directory tree occupies on disk (allocated blocks, like `du`; apparent size where unknown). */
export async function diskUsage(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) {
      total += await diskUsage(full);
    } else if (entry.isFile) {
      const st = await Deno.stat(full);
      total += st.blocks !== null ? st.blocks * 512 : st.size;
    }
  }
  return total;
}

/** Calls `onLine` for every line of a byte stream (without the newline), including an unterminated last one. */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  pending += decoder.decode();
  if (pending.length > 0) onLine(pending);
}
