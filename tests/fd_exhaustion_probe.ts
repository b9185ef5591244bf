// Run by the metrics and admin listener tests in a process with few file descriptors: it starts the listener
// named by its argument ("metrics" or "admin"), takes every free descriptor, lets a client connect (the kernel
// completes the connection; accepting it needs a descriptor), frees a few once the listener has reported the
// failed accept, and prints what the client then received and what was logged.
import { CoulombMetrics } from "../src/metrics/coulomb.ts";
import { startMetricsServer } from "../src/metrics/http.ts";
import { startAdminServer } from "../src/admin/server.ts";

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
const which = Deno.args[0];
const server = which === "admin"
  ? startAdminServer({
    host: "127.0.0.1",
    port: 0,
    log,
    commands: new Map([["ping", { params: [], help: "answers pong", run: () => "pong" }]]),
  })
  : startMetricsServer({ host: "127.0.0.1", port: 0, metrics: new CoulombMetrics(), log });
const request = which === "admin"
  ? '{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}\n'
  : "GET /metrics HTTP/1.0\r\n\r\n";
const clientCode = `
await Deno.stdin.read(new Uint8Array(1));
const conn = await Deno.connect({ hostname: "127.0.0.1", port: ${server.address.port} });
await conn.write(new TextEncoder().encode(${JSON.stringify(request)}));
const buf = new Uint8Array(65536);
const n = await conn.read(buf);
console.log(new TextDecoder().decode(buf.subarray(0, n ?? 0)).split(/\\r?\\n/)[0]);
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
// A few turns of the event loop with the descriptors still taken: a listener that retried at once would fail
// and warn again on each.
for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 0));
for (const f of held.splice(0, 8)) f.close();
const out = new TextDecoder().decode((await client.output()).stdout).trim();
for (const f of held) f.close();
await server.close();
console.log(JSON.stringify({ reply: out, warnings }));
