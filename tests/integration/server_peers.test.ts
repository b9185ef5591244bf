// Guarantee: two real Coulomb processes on one simnet chain find each other as ElectrumX servers do. A names B
// in PEERS: it checks B (version, features, headers, peer list), announces itself with server.add_peer, and
// lists B; B accepts the announcement from A's own address, checks A back, and lists A. No sleeps: every
// step is awaited on the processes' log lines, then the lists are read as a wallet reads them.
import assert from "node:assert/strict";
import { adminCall } from "../../src/admin/client.ts";
import { PROTOCOL_MAX } from "../../src/server/rpc.ts";
import { freePort, indexerEnv, IndexerProcess, simnet, withTempDir } from "./harness.ts";
import { LineClient } from "./server_client.ts";
import { childPort } from "./server_stack.ts";
import { startService } from "../launcher_harness.ts";

Deno.test("two local servers: A checks B from PEERS and announces itself; B checks A back; both list each other", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 110, seed: "server-peers" });
    const [portA, portB, rpcA] = [freePort(), freePort(), freePort()];
    const procs: IndexerProcess[] = [];
    const clients: LineClient[] = [];
    try {
      const b = IndexerProcess.start(indexerEnv(`${dir}/b`, sim, {
        SERVICES: `tcp://127.0.0.1:${portB}`,
        REPORT_SERVICES: `tcp://127.0.0.1:${portB}`,
        PEER_DISCOVERY: "on",
      }));
      procs.push(b);
      assert.equal(await childPort(b), portB);
      const a = IndexerProcess.start(indexerEnv(`${dir}/a`, sim, {
        SERVICES: `tcp://127.0.0.1:${portA},rpc://127.0.0.1:${rpcA}`,
        REPORT_SERVICES: `tcp://127.0.0.1:${portA}`,
        PEER_DISCOVERY: "on",
        PEERS: `127.0.0.1 t${portB}`,
      }));
      procs.push(a);

      await a.waitFor(
        new RegExp(`peer 127\\.0\\.0\\.1 t${portB} verified: Coulomb .*height ${sim.node.height}`),
      );
      await b.waitFor(/server\.add_peer from 127\.0\.0\.1: 127\.0\.0\.1 accepted as a candidate/);
      await b.waitFor(
        new RegExp(`peer 127\\.0\\.0\\.1 t${portA} verified: Coulomb .*height ${sim.node.height}`),
      );

      const list = async (port: number) => {
        const c = await LineClient.connect(port);
        clients.push(c);
        await c.hello("1.6");
        return await c.request("server.peers.subscribe");
      };
      assert.deepEqual(await list(portA), [["127.0.0.1", "127.0.0.1", [`v${PROTOCOL_MAX}`, `t${portB}`]]]);
      assert.deepEqual(await list(portB), [["127.0.0.1", "127.0.0.1", [`v${PROTOCOL_MAX}`, `t${portA}`]]]);

      // The operator's view of A's table: B, from PEERS, good, never failed.
      const r = await adminCall({ host: "127.0.0.1", port: rpcA }, "peers", []) as {
        discovery: string;
        peers: { host: string; status: string; source: string; tcp_port: number; tries: number }[];
      };
      assert.equal(r.discovery, "on");
      assert.deepEqual(
        r.peers.map((p) => [p.host, p.status, p.source, p.tcp_port, p.tries]),
        [["127.0.0.1", "good", "config", portB, 0]],
      );

      // Discovery stops with the server: both shut down cleanly on SIGTERM.
      for (const c of clients) c.close();
      for (const p of procs) p.kill("SIGTERM");
      for (const p of procs) {
        assert.equal((await p.finish()).code, 0, p.tail());
        assert.ok(p.find(/shut down cleanly/), p.tail());
      }
    } finally {
      for (const c of clients) c.close();
      for (const p of procs) await p.close();
      await sim.close();
    }
  });
});

Deno.test("inside the sandbox (deno task start): PEERS are checked, a peer learned from them is skipped and said so", async () => {
  await withTempDir(async (dir) => {
    const sim = await simnet(`${dir}/sim`, { blocks: 110, seed: "server-peers" });
    const [portA, portB, portC] = [freePort(), freePort(), freePort()];
    const procs: IndexerProcess[] = [];
    const clients: LineClient[] = [];
    try {
      // C and B run unsandboxed; B checks C, so B's peer list names C.
      const c = IndexerProcess.start(indexerEnv(`${dir}/c`, sim, {
        SERVICES: `tcp://127.0.0.1:${portC}`,
        REPORT_SERVICES: `tcp://127.0.0.1:${portC}`,
        PEER_DISCOVERY: "on",
      }));
      procs.push(c);
      assert.equal(await childPort(c), portC);
      const b = IndexerProcess.start(indexerEnv(`${dir}/b`, sim, {
        SERVICES: `tcp://127.0.0.1:${portB}`,
        REPORT_SERVICES: `tcp://127.0.0.1:${portB}`,
        PEER_DISCOVERY: "on",
        PEERS: `127.0.0.1 t${portC}`,
      }));
      procs.push(b);
      await b.waitFor(new RegExp(`peer 127\\.0\\.0\\.1 t${portC} verified`));

      // A runs as `deno task start` runs it: its sandbox grants B's port (PEERS) but not C's.
      const a = await startService({
        ...indexerEnv(`${dir}/a`, sim, {
          SERVICES: `tcp://127.0.0.1:${portA}`,
          REPORT_SERVICES: `tcp://127.0.0.1:${portA}`,
          PEER_DISCOVERY: "on",
          PEERS: `127.0.0.1 t${portB}`,
          LOG_LEVEL: "debug",
        }),
        HOME: dir,
      });
      procs.push(a);
      await a.waitFor(new RegExp(`peer 127\\.0\\.0\\.1 t${portB} verified: Coulomb`));
      await a.waitFor(/peer check: 1 peer outside the sandbox skipped: add them to PEERS/);
      assert.ok(
        a.find(new RegExp(`peer 127\\.0\\.0\\.1 t${portC}: outside the sandbox, not contacted`)),
        a.tail(),
      );
      // B still hears A's announcement and verifies it.
      await b.waitFor(new RegExp(`peer 127\\.0\\.0\\.1 t${portA} verified`));

      const client = await LineClient.connect(portA);
      clients.push(client);
      await client.hello("1.6");
      assert.deepEqual(await client.request("server.peers.subscribe"), [
        ["127.0.0.1", "127.0.0.1", [`v${PROTOCOL_MAX}`, `t${portB}`]],
      ]);
      assert.equal(a.find(/sandbox denied|NotCapable|Requires net access/), undefined, a.tail());
    } finally {
      for (const cl of clients) cl.close();
      for (const p of procs) await p.close();
      await sim.close();
    }
  });
});
