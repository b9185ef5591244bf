// The admin `peers` command over a peer table: rows ordered good first with times in seconds, a note saying
// why the table is empty, and the CLI's table rendering.
import assert from "node:assert/strict";
import { peerRows } from "../../src/admin/commands.ts";
import { formatPeers, formatResult } from "../../src/admin/format.ts";
import type { NodeView } from "../../src/admin/node.ts";
import type { PeerRecord } from "../../src/server/peers.ts";

function peer(host: string, extra: Partial<PeerRecord>): PeerRecord {
  return {
    key: host,
    host,
    tcpPort: 50001,
    sslPort: null,
    source: "config",
    status: "new",
    ip: "",
    protocolMax: "",
    serverVersion: "",
    pruning: null,
    firstSeen: 0,
    lastGood: 0,
    lastTry: 0,
    tries: 0,
    nextTry: 0,
    reason: "",
    ...extra,
  };
}

function view(discovery: "on" | "off" | "self", records: PeerRecord[] | undefined): NodeView {
  return {
    config: { peerDiscovery: discovery },
    serving: () => records === undefined ? undefined : { peers: { records: () => records } },
  } as unknown as NodeView;
}

Deno.test("admin peers: good peers first, times in Unix seconds, and a note only when empty", () => {
  const records = [
    peer("z.example.org", {
      status: "failed",
      tries: 2,
      lastTry: 1_700_000_100_000,
      reason: "connection refused",
    }),
    peer("a.example.org", {
      status: "good",
      sslPort: 50002,
      protocolMax: "1.4.2",
      lastGood: 1_700_000_050_000,
      lastTry: 1_700_000_050_000,
      source: "peer",
    }),
  ];
  const r = peerRows(view("on", records));
  assert.equal(r.discovery, "on");
  assert.equal(r.note, undefined);
  assert.deepEqual(r.peers.map((p) => [p.host, p.status, p.last_good, p.last_try, p.tries]), [
    ["a.example.org", "good", 1_700_000_050, 1_700_000_050, 0],
    ["z.example.org", "failed", null, 1_700_000_100, 2],
  ]);
  const text = formatPeers(r.peers as unknown as Record<string, unknown>[], 1_700_000_110_000);
  const lines = text.split("\n");
  assert.match(lines[0], /^Host\s+Status\s+Ports\s+Version\s+Last good\s+Last try\s+Tries\s+Source$/);
  assert.match(
    lines[1],
    /^a\.example\.org\s+good\s+s50002 t50001\s+1\.4\.2\s+01m00s ago\s+01m00s ago\s+0\s+peer$/,
  );
  assert.match(lines[2], /^z\.example\.org\s+failed\s+t50001\s+never\s+00m10s ago\s+2\s+config$/);
  assert.equal(lines[3], "2 peers, 1 good");
  assert.equal(lines[4], "z.example.org: connection refused");
});

Deno.test("admin peers: an empty table says why", () => {
  assert.match(peerRows(view("off", [])).note!, /PEER_DISCOVERY=off/);
  assert.match(peerRows(view("self", [])).note!, /only this server/);
  assert.match(peerRows(view("on", [])).note!, /PEERS/);
  assert.match(peerRows(view("on", undefined)).note!, /once the server has caught up/);
  assert.equal(
    formatResult("peers", peerRows(view("off", []))),
    "no peers: peer discovery is off (PEER_DISCOVERY=off)",
  );
});
