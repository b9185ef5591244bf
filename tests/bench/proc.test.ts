import assert from "node:assert/strict";
import {
  diskUsage,
  forEachLine,
  readProcFigures,
  statCpuSeconds,
  statusKiB,
} from "../../scripts/bench/proc.ts";

Deno.test("statusKiB reads a /proc status field in KiB, 0 when absent", () => {
  const status = "Name:\tdeno\nVmPeak:\t 2000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n";
  assert.equal(statusKiB(status, "VmHWM"), 123456);
  assert.equal(statusKiB(status, "VmRSS"), 65432);
  assert.equal(statusKiB(status, "VmSwap"), 0);
});

Deno.test("statCpuSeconds adds utime and stime, even when the command name holds spaces and parentheses", () => {
  // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  const stat = "4242 (deno (worker) 1) R 1 2 3 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 9 0";
  assert.equal(statCpuSeconds(stat), 3.25);
});

Deno.test("readProcFigures reads this process and reports a vanished one as undefined", () => {
  const f = readProcFigures(Deno.pid);
  assert.ok(f !== undefined, "/proc is readable on Linux");
  assert.ok(f.rssBytes > 1 << 20 && f.peakRssBytes >= f.rssBytes);
  assert.ok(f.cpuSeconds >= 0);
  assert.equal(readProcFigures(0x3fffffff), undefined);
});

Deno.test("forEachLine splits on newlines across chunk and UTF-8 boundaries and keeps an unterminated tail", async () => {
  const bytes = new TextEncoder().encode("first\nsecond – ü\n\nthird");
  const chunks = [bytes.subarray(0, 3), bytes.subarray(3, 14), bytes.subarray(14, 15), bytes.subarray(15)];
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(chunk);
      c.close();
    },
  });
  const lines: string[] = [];
  await forEachLine(stream, (l) => lines.push(l));
  assert.deepEqual(lines, ["first", "second – ü", "", "third"]);
});

Deno.test("diskUsage sums the space of every file in a tree", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeFile(`${dir}/a`, new Uint8Array(10_000).fill(1));
    await Deno.writeFile(`${dir}/sub/b`, new Uint8Array(5_000).fill(2));
    const used = await diskUsage(dir);
    // Allocated blocks cover the bytes written, rounded up to the filesystem's block size.
    assert.ok(used >= 15_000, `got ${used}`);
    assert.ok(used <= 15_000 + 2 * 65_536, `got ${used}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
