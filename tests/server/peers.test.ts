// The peer table's rules with an injected connector and clock: what makes a peer good, bad or retried later,
// what server.add_peer accepts, and what server.peers.subscribe lists.
import assert from "node:assert/strict";
import type { PeerSpec } from "../../src/config.ts";
import { PeerError, type PeerLink, type PeerTarget } from "../../src/server/peer_client.ts";
import {
  featureTokens,
  isPublicHost,
  parsePeerEntry,
  PEER_RULES,
  PeerManager,
  type PeerManagerDeps,
  resolveHost,
  subnetBucket,
} from "../../src/server/peers.ts";

const GENESIS = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
const OTHER_GENESIS = "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943";
const OUR_HEIGHT = 100;
const header = (h: number) => h.toString(16).padStart(160, "0");

/** A fake peer server: answers like a well-behaved one unless `override` says otherwise. */
interface FakePeer {
  host: string;
  height?: number;
  genesis?: string;
  hosts?: Record<string, unknown>;
  peers?: unknown;
  /** Per-method replacement: a value to return, or a function. */
  override?: Record<string, unknown>;
  /** server.add_peer calls it received. */
  added?: unknown[];
  /** Connection refused. */
  down?: boolean;
  /** The address it is reached at; by default its own in 203.0.113/24 (its place in the world, from 1). */
  ip?: string;
}

class World {
  now = 1_000_000_000_000;
  readonly peers = new Map<string, FakePeer>();
  readonly dials: string[] = [];
  readonly logs: string[] = [];
  denied = new Set<string>();
  resolved = new Map<string, string[]>();

  add(p: FakePeer): FakePeer {
    p.added ??= [];
    this.peers.set(p.host, p);
    return p;
  }

  connector = (t: PeerTarget): Promise<PeerLink> => {
    this.dials.push(`${t.tls ? "s" : "t"}:${t.host}:${t.port}`);
    const p = this.peers.get(t.host);
    if (!p || p.down) return Promise.reject(new PeerError("connect", `${t.host}: connection refused`));
    const ip = /^[\d.]+$/.test(t.host)
      ? t.host
      : p.ip ?? `203.0.113.${[...this.peers.keys()].indexOf(t.host) + 1}`;
    // As a real link: hanging up fails the calls still waiting.
    const hungUp = Promise.withResolvers<never>();
    hungUp.promise.catch(() => {});
    const answered = (method: string, params: unknown[]): Promise<unknown> => {
      const o = p.override?.[method];
      if (typeof o === "function") return Promise.resolve().then(() => o(params));
      if (o !== undefined) return Promise.resolve(o);
      return Promise.resolve(answer(p, method, params));
    };
    return Promise.resolve({
      remoteIp: ip,
      close: () => hungUp.reject(new PeerError("closed", `${t.host}: closed`)),
      call: (method: string, params: unknown[]) => Promise.race([answered(method, params), hungUp.promise]),
    });
  };

  deps(
    extra: Partial<PeerManagerDeps> = {},
    config: Partial<PeerManagerDeps["config"]> = {},
  ): PeerManagerDeps {
    return {
      config: {
        net: "mainnet",
        peerDiscovery: "on",
        peerAnnounce: true,
        reportServices: [{ protocol: "ssl", host: "us.example.org", port: 50002 }],
        peers: [],
        ...config,
      },
      genesisHex: GENESIS,
      features: () => ({
        hosts: { "us.example.org": { ssl_port: 50002, tcp_port: null } },
        genesis_hash: GENESIS,
      }),
      software: "Coulomb test",
      chain: { height: () => OUR_HEIGHT, headerHex: (h) => h <= OUR_HEIGHT ? header(h) : undefined },
      connector: this.connector,
      resolve: (host) => Promise.resolve(this.resolved.get(host) ?? []),
      allowed: (host, port) => !this.denied.has(`${host}:${port}`),
      log: {
        debug: (m: string) => this.logs.push(`debug ${m}`),
        info: (m: string) => this.logs.push(`info ${m}`),
        warn: (m: string) => this.logs.push(`warn ${m}`),
      },
      now: () => this.now,
      seeds: [],
      ...extra,
    };
  }
}

function answer(p: FakePeer, method: string, params: unknown[]): unknown {
  const height = p.height ?? OUR_HEIGHT;
  switch (method) {
    case "server.version":
      return ["ElectrumX 1.16.0", "1.4"];
    case "server.features":
      return {
        hosts: p.hosts ?? { [p.host]: { tcp_port: 50001, ssl_port: 50002 } },
        genesis_hash: p.genesis ?? GENESIS,
        protocol_max: "1.4.2",
        protocol_min: "1.4",
        server_version: "ElectrumX 1.16.0",
        pruning: null,
        hash_function: "sha256",
      };
    case "blockchain.headers.subscribe":
      return { height, hex: header(height) };
    case "blockchain.block.header":
      return header(params[0] as number);
    case "server.peers.subscribe":
      return p.peers ?? [];
    case "server.add_peer":
      p.added!.push(params[0]);
      return true;
  }
  throw new PeerError("reply", `unknown method ${method}`);
}

const spec = (host: string, tcpPort: number | null = 50001, sslPort: number | null = 50002): PeerSpec => ({
  host,
  tcpPort,
  sslPort,
});

function record(m: PeerManager, host: string) {
  const r = m.records().find((p) => p.host === host);
  assert.ok(r, `${host} is in the table`);
  return r;
}

Deno.test("a good peer is verified over SSL first, listed, told about us, and its peers are learned", async () => {
  const w = new World();
  const a = w.add({
    host: "a.example.com",
    peers: [["198.51.100.7", "b.example.net", ["v1.4", "s", "t50011"]]],
  });
  // b's own features move its TCP port: what a server says of itself outranks what others said of it.
  w.add({ host: "b.example.net", hosts: { "b.example.net": { tcp_port: 50021, ssl_port: 50002 } } });
  const m = new PeerManager(w.deps({}, { peers: [spec("a.example.com")] }));
  await m.checkRound();
  assert.equal(w.dials[0], "s:a.example.com:50002");
  const r = record(m, "a.example.com");
  assert.equal(r.status, "good");
  assert.equal(r.serverVersion, "ElectrumX 1.16.0");
  assert.equal(a.added!.length, 1, "we announced ourselves");
  assert.deepEqual((a.added![0] as { hosts: unknown }).hosts, {
    "us.example.org": { ssl_port: 50002, tcp_port: null },
  });
  // b, learned from a, is checked in the same round (the next pass) at the ports a listed.
  assert.deepEqual(w.dials, ["s:a.example.com:50002", "s:b.example.net:50002"]);
  const b = record(m, "b.example.net");
  assert.equal(b.source, "peer");
  assert.equal(b.status, "good");
  assert.equal(b.tcpPort, 50021);
  assert.equal(b.sslPort, 50002);
  assert.equal(b.ip, "203.0.113.2");
  const list = m.subscribeList();
  assert.deepEqual(list.map((e) => e[1]).sort(), ["a.example.com", "b.example.net"]);
  assert.deepEqual(list.find((e) => e[1] === "a.example.com")![2], ["v1.4.2", "s", "t"]);
});

Deno.test("a peer that already lists us is not announced to again", async () => {
  const w = new World();
  const a = w.add({ host: "a.example.com", peers: [["192.0.2.1", "us.example.org", ["v1.6", "s"]]] });
  const m = new PeerManager(w.deps({}, { peers: [spec("a.example.com")] }));
  await m.checkRound();
  assert.equal(record(m, "a.example.com").status, "good");
  assert.equal(a.added!.length, 0);
  assert.ok(!m.records().some((p) => p.host === "us.example.org"), "we never add ourselves");
});

Deno.test("SSL refused falls back to TCP; a peer with neither backs off 300 s * 2^tries, capped", async () => {
  const w = new World();
  const m = new PeerManager(w.deps({}, { peers: [spec("down.example.com")] }));
  w.add({ host: "down.example.com", down: true });
  await m.checkRound();
  assert.deepEqual(w.dials, ["s:down.example.com:50002", "t:down.example.com:50001"]);
  let r = record(m, "down.example.com");
  assert.equal(r.status, "failed");
  assert.equal(r.tries, 1);
  assert.equal(r.nextTry, w.now + 600_000);
  // Not due yet: nothing dialled.
  w.now += 599_000;
  await m.checkRound();
  assert.equal(w.dials.length, 2);
  w.now += 1_000;
  await m.checkRound();
  r = record(m, "down.example.com");
  assert.equal(r.tries, 2);
  assert.equal(r.nextTry - r.lastTry, 1_200_000);
  for (let i = 0; i < 12; i++) {
    w.now = r.nextTry;
    await m.checkRound();
  }
  assert.equal(r.nextTry - r.lastTry, PEER_RULES.maxBackoffMs, "the backoff stops growing");
  // A configured peer is never forgotten however long it fails.
  assert.equal(record(m, "down.example.com").source, "config");
});

Deno.test("learned peers failing for days are forgotten; a good peer is re-checked hourly and drops out when stale", async () => {
  const w = new World();
  w.add({ host: "a.example.com", peers: [["198.51.100.9", "gone.example.net", ["v1.4", "t"]]] });
  const m = new PeerManager(w.deps({}, { peers: [spec("a.example.com", 50001, null)] }));
  await m.checkRound();
  assert.equal(record(m, "a.example.com").nextTry, w.now + PEER_RULES.recheckMs);
  await m.checkRound();
  assert.equal(record(m, "gone.example.net").status, "failed");
  w.peers.get("a.example.com")!.down = true;
  w.now += PEER_RULES.recheckMs;
  await m.checkRound();
  assert.equal(record(m, "a.example.com").tries, 1);
  assert.equal(m.subscribeList().length, 1, "still listed: its last good check is recent");
  w.now += PEER_RULES.staleMs;
  assert.equal(m.subscribeList().length, 0, "stale");
  w.now += PEER_RULES.forgetMs;
  await m.checkRound();
  assert.ok(!m.records().some((p) => p.host === "gone.example.net"), "a learned peer is forgotten");
  assert.ok(m.records().some((p) => p.host === "a.example.com"), "a configured one is kept");
});

Deno.test("another chain's genesis, a tip too far away or a different header make a peer bad", async () => {
  const w = new World();
  w.add({ host: "fork.example.com", genesis: OTHER_GENESIS });
  w.add({ host: "ahead.example.com", height: OUR_HEIGHT + PEER_RULES.maxHeightGap + 1 });
  w.add({ host: "near.example.com", height: OUR_HEIGHT + PEER_RULES.maxHeightGap });
  w.add({
    host: "behind.example.com",
    height: OUR_HEIGHT - 2,
    override: { "blockchain.headers.subscribe": { height: OUR_HEIGHT - 2, hex: header(7) } },
  });
  w.add({
    host: "split.example.com",
    height: OUR_HEIGHT + 1,
    override: { "blockchain.block.header": header(5) },
  });
  w.add({ host: "elsewhere.example.com", hosts: { "other.example.com": { tcp_port: 50001 } } });
  w.add({ host: "old.example.com", override: { "server.version": ["ElectrumX 1.0", "1.2"] } });
  const hosts = ["fork", "ahead", "near", "behind", "split", "elsewhere", "old"].map((h) =>
    `${h}.example.com`
  );
  const m = new PeerManager(w.deps({}, { peers: hosts.map((h) => spec(h)) }));
  await m.checkRound();
  const status = Object.fromEntries(m.records().map((r) => [r.host.split(".")[0], r.status]));
  assert.deepEqual(status, {
    fork: "bad",
    ahead: "bad",
    near: "good",
    behind: "bad",
    split: "bad",
    elsewhere: "bad",
    old: "bad",
  });
  assert.match(record(m, "fork.example.com").reason, /another chain/);
  assert.match(record(m, "ahead.example.com").reason, /too far/);
  assert.match(record(m, "split.example.com").reason, /header at height 100 differs/);
  assert.match(record(m, "elsewhere.example.com").reason, /not among the hosts/);
  assert.match(record(m, "old.example.com").reason, /negotiated protocol 1\.2, below our minimum/);
  assert.equal(
    record(m, "fork.example.com").nextTry - w.now,
    PEER_RULES.maxBackoffMs,
    "bad peers wait longest",
  );
  assert.deepEqual(m.subscribeList().map((e) => e[1]), ["near.example.com"]);
});

Deno.test("hostile replies fail the check without throwing, and junk peer entries are ignored", async () => {
  const w = new World();
  const junkPeers = [
    "nonsense",
    [1, 2, 3],
    ["1.2.3.4", "no ports.example.com", ["v1.4"]],
    ["1.2.3.4", "bad host!", ["t"]],
    ["1.2.3.4", "10.0.0.1", ["t"]],
    ["1.2.3.4", "x.onion", ["t"]],
    ["1.2.3.4", "ok.example.org", ["t99999", "s50002", { x: 1 }]],
  ];
  w.add({ host: "a.example.com", peers: junkPeers });
  w.add({ host: "v.example.com", override: { "server.version": { not: "an array" } } });
  w.add({ host: "f.example.com", override: { "server.features": "text" } });
  w.add({ host: "h.example.com", override: { "blockchain.headers.subscribe": { height: "high" } } });
  w.add({
    host: "t.example.com",
    override: {
      "server.features": () => Promise.reject(new PeerError("timeout", "no answer within 20000 ms")),
    },
  });
  w.add({
    host: "p.example.com",
    override: {
      "server.features": {
        ...answer({ host: "p.example.com" }, "server.features", []) as object,
        pruning: "lots",
      },
    },
  });
  const hosts = ["a", "v", "f", "h", "t", "p"].map((h) => `${h}.example.com`);
  const m = new PeerManager(w.deps({}, { peers: hosts.map((h) => spec(h)) }));
  await m.checkRound();
  const status = Object.fromEntries(m.records().map((r) => [r.host, r.status]));
  assert.equal(status["a.example.com"], "good");
  for (const h of ["v", "f", "h", "t", "p"]) assert.notEqual(status[`${h}.example.com`], "good", h);
  assert.match(record(m, "t.example.com").reason, /no answer/);
  // Of the junk list only the one well-formed public entry was learned, with the one valid port.
  const learned = m.records().filter((r) => r.source === "peer");
  assert.deepEqual(learned.map((r) => [r.host, r.tcpPort, r.sslPort]), [["ok.example.org", null, 50002]]);
});

Deno.test("server.add_peer: the host must be the caller's address; rate limited per subnet and per domain; then checked", async () => {
  const w = new World();
  const m = new PeerManager(w.deps());
  const features = (hosts: Record<string, unknown>, genesis = GENESIS) => ({ hosts, genesis_hash: genesis });
  w.add({ host: "new.example.com" });
  w.resolved.set("new.example.com", ["198.51.100.20"]);
  assert.equal(await m.addPeer("203.0.113.5", features({ "new.example.com": { ssl_port: 50002 } })), false);
  assert.equal(await m.addPeer("198.51.100.20", "not an object"), false);
  assert.equal(
    await m.addPeer("198.51.100.20", features({ "new.example.com": { ssl_port: 50002 } }, OTHER_GENESIS)),
    false,
  );
  assert.equal(await m.addPeer("198.51.100.20", features({ "new.example.com": { ssl_port: "x" } })), false);
  assert.equal(await m.addPeer("10.1.2.3", features({ "10.1.2.3": { tcp_port: 50001 } })), false, "private");
  assert.equal(m.records().length, 0);
  assert.equal(
    await m.addPeer("::ffff:198.51.100.20", features({ "new.example.com": { ssl_port: 50002 } })),
    true,
  );
  // The check it started: the peer is verified and listed.
  await m.check("new.example.com");
  assert.equal(record(m, "new.example.com").status, "good");
  assert.equal(record(m, "new.example.com").source, "add_peer");
  assert.deepEqual(m.subscribeList().map((e) => e[1]), ["new.example.com"]);
  // Another one from the same /16 within 600 s is refused; after the pause it is accepted.
  w.add({ host: "198.51.7.7" });
  assert.equal(await m.addPeer("198.51.7.7", features({ "198.51.7.7": { tcp_port: 50001 } })), false);
  w.now += PEER_RULES.addPeerPauseMs;
  assert.equal(await m.addPeer("198.51.7.7", features({ "198.51.7.7": { tcp_port: 50001 } })), true);
  await m.check("198.51.7.7");
  assert.equal(record(m, "198.51.7.7").status, "good");
  // And per domain (ElectrumX's bucket): a second name under example.com, from another subnet, waits too; so
  // does a second IP literal.
  w.now += PEER_RULES.addPeerPauseMs;
  for (const [host, ip] of [["other.example.com", "203.0.113.9"], ["more.example.com", "198.51.200.5"]]) {
    w.add({ host });
    w.resolved.set(host, [ip]);
  }
  w.add({ host: "192.0.2.44" });
  w.add({ host: "9.9.9.9" });
  assert.equal(await m.addPeer("192.0.2.44", features({ "192.0.2.44": { tcp_port: 50001 } })), true);
  assert.equal(await m.addPeer("203.0.113.9", features({ "other.example.com": { tcp_port: 50001 } })), true);
  assert.equal(await m.addPeer("198.51.200.5", features({ "more.example.com": { tcp_port: 50001 } })), false);
  assert.equal(await m.addPeer("9.9.9.9", features({ "9.9.9.9": { tcp_port: 50001 } })), false);
  w.now += PEER_RULES.addPeerPauseMs;
  assert.equal(await m.addPeer("198.51.200.5", features({ "more.example.com": { tcp_port: 50001 } })), true);
  assert.equal(await m.addPeer("9.9.9.9", features({ "9.9.9.9": { tcp_port: 50001 } })), true);
});

Deno.test("server.add_peer looks up one name per caller per 600 s, whatever the caller sends", async () => {
  const w = new World();
  const lookups: string[] = [];
  const deps = w.deps();
  const m = new PeerManager({ ...deps, resolve: (host) => (lookups.push(host), deps.resolve(host)) });
  const hosts: Record<string, unknown> = {};
  for (let i = 0; i < 4; i++) hosts[`n${i}.slow-dns.example`] = { tcp_port: 50001 };
  for (let i = 0; i < 100; i++) {
    assert.equal(await m.addPeer("203.0.113.5", { hosts, genesis_hash: GENESIS }), false);
  }
  assert.deepEqual(lookups, ["n0.slow-dns.example"], "the first host, once");
  w.now += PEER_RULES.addPeerPauseMs;
  assert.equal(await m.addPeer("203.0.113.5", { hosts, genesis_hash: GENESIS }), false);
  assert.equal(lookups.length, 2);
});

Deno.test("server.peers.subscribe lists at most 2 per IPv4 /16 off regtest, all on regtest", async () => {
  for (const net of ["mainnet", "regtest"] as const) {
    const w = new World();
    const hosts = ["198.51.1.1", "198.51.2.2", "198.51.3.3", "203.0.113.1"];
    for (const h of hosts) w.add({ host: h });
    const m = new PeerManager(w.deps({}, { net, peers: hosts.map((h) => spec(h, 50001, null)) }));
    await m.checkRound();
    const listed = m.subscribeList();
    assert.equal(listed.length, net === "mainnet" ? 3 : 4, net);
    assert.equal(listed.filter((e) => e[0].startsWith("198.51.")).length, net === "mainnet" ? 2 : 3);
    assert.deepEqual(listed.find((e) => e[0] === "203.0.113.1"), ["203.0.113.1", "203.0.113.1", [
      "v1.4.2",
      ...(net === "mainnet" ? ["s", "t"] : ["s50002", "t50001"]),
    ]]);
  }
});

Deno.test("private and loopback peers are ignored except on regtest; onions always", async () => {
  const entries = [["1", "127.0.0.1", ["t"]], ["1", "192.168.1.4", ["t"]], ["1", "localhost", ["t"]], [
    "1",
    "x.onion",
    ["t"],
  ]];
  for (const net of ["mainnet", "regtest"] as const) {
    const w = new World();
    w.add({ host: "a.example.com", peers: entries });
    // random() = 0: of the peers it names that we would take, the first ones.
    const m = new PeerManager(w.deps({ random: () => 0 }, { net, peers: [spec("a.example.com")] }));
    await m.checkRound();
    const learned = m.records().filter((r) => r.source === "peer").map((r) => r.host).sort();
    assert.deepEqual(learned, net === "mainnet" ? [] : ["127.0.0.1", "192.168.1.4"], net);
  }
});

Deno.test("a peer's list adds at most 2 peers we do not know, at random, whatever its length", async () => {
  const w = new World();
  const named = Array.from({ length: 200 }, (_, i) => ["203.0.113.9", `n${i}.evil.example`, ["t"]]);
  w.add({ host: "a.example.com", peers: [["198.51.100.7", "b.example.net", ["t"]], ...named] });
  w.add({ host: "b.example.net" });
  const picks = [0.999, 0.5];
  const m = new PeerManager(
    w.deps({ random: () => picks.shift() ?? 0 }, { peers: [spec("a.example.com"), spec("b.example.net")] }),
  );
  await m.checkRound();
  const learned = m.records().filter((r) => r.source === "peer").map((r) => r.host).sort();
  // The first 200 entries are read; b is known already (configured) and does not count. Of the 199 unknown
  // names left, the last, then the middle one of the rest.
  assert.deepEqual(learned, ["n198.evil.example", "n99.evil.example"]);
});

Deno.test("one good peer per IPv4 address or IPv6 /64, as ElectrumX: another name for it is bad", async () => {
  for (const [first, second] of [["198.51.100.7", "198.51.100.7"], ["2001:db8:1:2::5", "2001:db8:1:2::99"]]) {
    const w = new World();
    w.add({ host: "a.example.com", ip: first });
    w.add({ host: "b.example.net", ip: second });
    w.add({ host: "c.example.org", ip: "198.51.100.8" });
    const m = new PeerManager(
      w.deps({}, { peers: [spec("a.example.com"), spec("b.example.net"), spec("c.example.org")] }),
    );
    await m.checkRound();
    assert.equal(record(m, "a.example.com").status, "good");
    assert.equal(record(m, "b.example.net").status, "bad");
    assert.match(record(m, "b.example.net").reason, /a\.example\.com is already a good peer at/);
    assert.equal(record(m, "c.example.org").status, "good", "a neighbouring address is another machine");
    // Re-checking the good one is not blocked by itself.
    await m.check("a.example.com");
    assert.equal(record(m, "a.example.com").status, "good");
  }
});

Deno.test("a check that takes too long ends at its deadline and counts as a failure", async () => {
  const w = new World();
  // Answers everything but the peer list, which never comes.
  w.add({ host: "slow.example.com", override: { "server.peers.subscribe": () => new Promise(() => {}) } });
  w.add({ host: "ok.example.net" });
  const m = new PeerManager(
    w.deps({ checkMs: 50 }, { peers: [spec("slow.example.com"), spec("ok.example.net")] }),
  );
  await m.checkRound();
  const slow = record(m, "slow.example.com");
  assert.equal(slow.status, "failed");
  assert.match(slow.reason, /the check took longer than 50 ms/);
  assert.equal(record(m, "ok.example.net").status, "good");
});

Deno.test("a full table makes room by forgetting hearsay that never proved good, never a good or configured peer", async () => {
  const w = new World();
  const m = new PeerManager(w.deps({}, { net: "regtest", peers: [spec("conf.example.com")] }));
  const announce = (ip: string) =>
    m.addPeer(ip, { hosts: { [ip]: { tcp_port: 50001 } }, genesis_hash: GENESIS });
  // On regtest add_peer is not rate limited: fill the table with announcements nobody answers.
  const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  let i = 1;
  while (m.records().length < PEER_RULES.maxPeers) assert.equal(await announce(ip(i++)), true);
  await m.checkRound(); // every announced peer is refused a connection: all of them fail
  assert.ok(m.records().every((r) => r.host === "conf.example.com" || r.status === "failed"));
  // A new announcement still gets in; the configured peer stays.
  assert.equal(await announce("10.200.0.1"), true);
  assert.equal(m.records().length, PEER_RULES.maxPeers);
  assert.ok(m.records().some((r) => r.host === "10.200.0.1"));
  assert.ok(m.records().some((r) => r.host === "conf.example.com"));
});

Deno.test("peers outside the sandbox are skipped with one info line per round, and not counted as failures", async () => {
  const w = new World();
  w.denied.add("a.example.com:50001").add("a.example.com:50002").add("b.example.com:50002");
  w.add({ host: "a.example.com" });
  w.add({ host: "b.example.com" });
  const m = new PeerManager(w.deps({}, { peers: [spec("a.example.com"), spec("b.example.com")] }));
  await m.checkRound();
  assert.deepEqual(w.dials, ["t:b.example.com:50001"], "only the allowed port is dialled");
  assert.equal(record(m, "a.example.com").tries, 0);
  assert.equal(record(m, "a.example.com").status, "new");
  assert.deepEqual(w.logs.filter((l) => l.includes("outside the sandbox")), [
    "debug peer a.example.com s50002 t50001: outside the sandbox, not contacted",
    "info peer check: 1 peer outside the sandbox skipped: add them to PEERS",
  ]);
  assert.match(record(m, "a.example.com").reason, /outside the sandbox/);
  // The sandbox does not change: later rounds neither retry nor log it again until a day has passed.
  w.now += PEER_RULES.recheckMs;
  await m.checkRound();
  assert.equal(w.logs.filter((l) => l.includes("outside the sandbox")).length, 2);
  w.now += PEER_RULES.maxBackoffMs;
  await m.checkRound();
  assert.equal(w.logs.filter((l) => l.startsWith("debug") && l.includes("outside the sandbox")).length, 1);
  assert.equal(w.logs.filter((l) => l.startsWith("info") && l.includes("outside the sandbox")).length, 2);
});

Deno.test("PEER_DISCOVERY off contacts nobody and lists nobody; self lists only ourselves", async () => {
  const w = new World();
  w.add({ host: "a.example.com" });
  const off = new PeerManager(
    w.deps({ seeds: [spec("a.example.com")] }, { peerDiscovery: "off", peers: [spec("a.example.com")] }),
  );
  await off.checkRound();
  assert.deepEqual(w.dials, []);
  assert.deepEqual(off.subscribeList(), []);
  assert.equal(
    await off.addPeer("1.2.3.4", { hosts: { "1.2.3.4": { tcp_port: 1 } }, genesis_hash: GENESIS }),
    false,
  );
  const self = new PeerManager(w.deps({}, {
    peerDiscovery: "self",
    reportServices: [{ protocol: "tcp", host: "us.example.org", port: 50001 }, {
      protocol: "ssl",
      host: "us.example.org",
      port: 50012,
    }],
  }));
  await self.checkRound();
  assert.deepEqual(w.dials, []);
  assert.deepEqual(self.subscribeList(), [["us.example.org", "us.example.org", ["v1.6", "s50012", "t"]]]);
});

Deno.test("helpers: subnet buckets, public hosts, entry parsing and tokens", () => {
  assert.equal(subnetBucket("198.51.100.7"), "198.51/16");
  assert.equal(subnetBucket("2001:db8:1:2ff::1"), "2001:0db8:0001:02/56");
  assert.equal(subnetBucket("2001:db8:1:2aa::9"), subnetBucket("2001:db8:1:2ff::1"));
  assert.notEqual(subnetBucket("2001:db8:1:3ff::1"), subnetBucket("2001:db8:1:2ff::1"));
  assert.ok(isPublicHost("electrum.example.com"));
  assert.ok(isPublicHost("8.8.8.8"));
  for (
    const h of ["localhost", "127.0.0.1", "10.0.0.1", "::1", "fe80::1", "intranet", "a.local", "x.onion"]
  ) {
    assert.ok(!isPublicHost(h), h);
  }
  // Addresses in other spellings, which a socket connects to all the same, and reserved ranges.
  for (
    const h of [
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "0:0:0:0:0:ffff:a00:1",
      "fe90::1",
      "100.64.0.1",
      "198.18.0.1",
      "240.0.0.1",
      "0x7f.1",
      "0x7f.0.0.1",
      "2130706433.1",
      "10.0.0.0x1",
      "012.0.0.1",
    ]
  ) {
    assert.ok(!isPublicHost(h), h);
  }
  assert.ok(isPublicHost("::ffff:8.8.8.8"));
  assert.ok(isPublicHost("0x7f.example.com"));
  assert.deepEqual(parsePeerEntry(["1.2.3.4", "E.Example.com", ["v1.4", "s", "t50009"]], "testnet"), {
    host: "e.example.com",
    tcpPort: 50009,
    sslPort: 51002,
  });
  assert.deepEqual(
    featureTokens({ protocolMax: "1.4", pruning: 1000, sslPort: null, tcpPort: 50001 }, "mainnet"),
    [
      "v1.4",
      "p1000",
      "t",
    ],
  );
});

Deno.test("resolveHost asks the system resolver (the add_peer caller check for host names)", async () => {
  assert.ok((await resolveHost("localhost")).some((a) => a === "127.0.0.1" || a === "::1"));
  await assert.rejects(resolveHost("no-such-host.invalid"));
});

Deno.test("stop() cuts a hanging connection attempt short and does not count it against the peer", async () => {
  const w = new World();
  const attempted = Promise.withResolvers<void>();
  const hanging = (_t: PeerTarget, signal?: AbortSignal) => {
    attempted.resolve();
    return new Promise<PeerLink>((_, reject) => {
      signal?.addEventListener("abort", () => reject(new PeerError("closed", "stopped")));
    });
  };
  const m = new PeerManager(w.deps({ connector: hanging }, { peers: [spec("slow.example.com")] }));
  const round = m.checkRound();
  await attempted.promise;
  await m.stop();
  await round;
  const r = record(m, "slow.example.com");
  assert.equal(r.tries, 0);
  assert.equal(r.status, "new");
  assert.equal(
    await m.addPeer("198.51.100.1", { hosts: { "198.51.100.1": { tcp_port: 1 } }, genesis_hash: GENESIS }),
    false,
  );
});
