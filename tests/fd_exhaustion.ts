// Runs tests/fd_exhaustion_probe.ts for a listener in a child process limited to 200 file descriptors.

/** What the probe's client received and what the listener logged as warnings. */
export interface ProbeResult {
  reply: string;
  warnings: string[];
}

/** Starts the probe for `listener` under `ulimit -n 200`; throws with its stderr if it fails. */
export async function runOutOfDescriptors(listener: "metrics" | "admin"): Promise<ProbeResult> {
  const probe = new URL("./fd_exhaustion_probe.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command("bash", {
    args: ["-c", 'ulimit -n 200 && exec "$0" run -A "$1" "$2"', Deno.execPath(), probe, listener],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`the probe failed: ${new TextDecoder().decode(stderr)}`);
  return JSON.parse(new TextDecoder().decode(stdout)) as ProbeResult;
}
