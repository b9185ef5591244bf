// Run by tests/metrics/http.test.ts in a process with few file descriptors: it takes every free one, lets a
// client connect (the kernel completes the connection; accepting it needs a descriptor), frees a few once the
// server has reported the failed accept, and prints what the client then received.
import { CoulombMetrics } from "../../src/metrics/coulomb.ts";
import { startMetricsServer } from "../../src/metrics/http.ts";

const warned = Promise.withResolvers<void>();
const warnings: string[] = [];
const put = () => {};
const log = {
  debug: put,
  info: put,
  warn: (line: string) => {
    warnings.push(line);
    warned.resolve();
  },
  error: put,
  enabled: () => true,
};
const server = startMetricsServer({ host: "127.0.0.1", port: 0, metrics: new CoulombMetrics(), log });
const clientCode = `
await Deno.stdin.read(new Uint8Array(1));
const conn = await Deno.connect({ hostname: "127.0.0.1", port: ${server.address.port} });
await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.0\\r\\n\\r\\n"));
const buf = new Uint8Array(65536);
const n = await conn.read(buf);
console.log(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\\r\\n")[0]);
`;
// The client connects once told to (its own process has descriptors to spare).
const client = new Deno.Command(Deno.execPath(), {
  args: ["eval", clientCode],
  stdin: "piped",
  stdout: "piped",
})
  .spawn();
const go = client.stdin.getWriter();
const held: Deno.FsFile[] = [];
for (;;) {
  try {
    held.push(Deno.openSync("/dev/null"));
  } catch {
    break;
  }
}
await go.write(Uint8Array.of(10));
await warned.promise;
for (const f of held.splice(0, 8)) f.close();
const out = new TextDecoder().decode((await client.output()).stdout).trim();
for (const f of held) f.close();
await server.close();
console.log(JSON.stringify({ reply: out, warnings }));
