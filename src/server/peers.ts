// Peer discovery (protocol.md §8, ElectrumX's behaviour): a table of other Electrum servers, filled from
// built-in seeds, PEERS, other servers' peer lists and server.add_peer calls. A peer is listed to clients only
// after we connected to it ourselves and it proved to follow our chain. Everything a peer says is untrusted:
// replies are type-checked and bounded, and a failing peer is retried later with exponential backoff.
import {
  DEFAULT_PORTS,
  ipKind,
  type Network,
  type PeerDiscovery,
  type PeerSpec,
  type Service,
} from "../config.ts";
import { lookup } from "node:dns/promises";
import type { Log } from "../log.ts";
import { hostPort } from "../host_port.ts";
import { SEEDS } from "./peer_seeds.ts";
import { normalizeIp, type PeerConnector, PeerError, type PeerLink, type PeerTarget } from "./peer_client.ts";
import { PROTOCOL_MAX, PROTOCOL_MIN } from "./rpc.ts";
import { parseVersion, versionAtLeast } from "./types.ts";

/** Where a peer came from. */
export type PeerSource = "seed" | "config" | "peer" | "add_peer";

/** Every status a peer can have, good first (the order of the `coulomb_peers` metric's series). */
export const PEER_STATUSES = ["good", "new", "failed", "bad"] as const;
/** new = never checked; good = last check passed; failed = unreachable or broken; bad = not on our chain. */
export type PeerStatus = typeof PEER_STATUSES[number];

/** One row of the peer table (times are Unix ms; 0 = never). */
export interface PeerRecord {
  readonly key: string;
  host: string;
  tcpPort: number | null;
  sslPort: number | null;
  source: PeerSource;
  status: PeerStatus;
  /** The address we reached it at (the host itself for an IP literal); "" until then. */
  ip: string;
  /** Its protocol_max, e.g. "1.6"; "" until checked. */
  protocolMax: string;
  /** Its server_version, e.g. "ElectrumX 1.16.0". */
  serverVersion: string;
  pruning: number | null;
  firstSeen: number;
  lastGood: number;
  lastTry: number;
  /** Consecutive failed checks. */
  tries: number;
  nextTry: number;
  /** Why the last check failed; "" after a good one. */
  reason: string;
}

/** The timing and size rules of discovery (ElectrumX's where it has one). */
export const PEER_RULES = {
  /** Base of the retry backoff: after n failures the next try is BACKOFF·2^n later (ElectrumX WAKEUP_SECS). */
  backoffMs: 300_000,
  /** The backoff stops growing here. */
  maxBackoffMs: 24 * 3600_000,
  /** A good peer is checked again this long after its last good check. */
  recheckMs: 3600_000,
  /** A peer is listed while its last good check is this recent (ElectrumX STALE_SECS). */
  staleMs: 3 * 3600_000,
  /** Learned peers failing this long since their last good check (or since first seen) are forgotten. */
  forgetMs: 3 * 24 * 3600_000,
  /** One accepted server.add_peer per caller subnet per this long (ElectrumX PEER_ADD_PAUSE). */
  addPeerPauseMs: 600_000,
  /** A peer's tip may differ from ours by this many blocks. */
  maxHeightGap: 5,
  /** Peers listed per IPv4 /16 or IPv6 /56 (ElectrumX code: 2). */
  perSubnet: 2,
  /** Checks running at once. */
  concurrency: 4,
  /** Passes of one round: peers learned in a pass are checked in the next. */
  passes: 3,
  /** The table's size limit; beyond it, a learned peer that never proved good makes room (see #evictOne). */
  maxPeers: 1000,
  /** Entries read from one peer's server.peers.subscribe. */
  maxLearned: 200,
  /** Of those, unknown peers taken at random (ElectrumX: 2). */
  learnPerReply: 2,
  /** How often the background loop looks for due checks. */
  wakeMs: 60_000,
  /**
   * A whole check (after connecting) may take this long: a peer answering each call just under the call
   * timeout would otherwise hold a check slot for minutes, and a round of such peers delay the re-checks that
   * keep good peers listed.
   */
  checkMs: 60_000,
} as const;

/** Our own chain, as far as checks compare it. */
export interface LocalChain {
  /** Our tip height (-1 before anything is indexed). */
  height(): number;
  /** Our 80-byte header at `height`, as lowercase hex; undefined beyond our tip. */
  headerHex(height: number): string | undefined;
}

/** What PeerManager needs. */
export interface PeerManagerDeps {
  config: {
    readonly net: Network;
    readonly peerDiscovery: PeerDiscovery;
    readonly peerAnnounce: boolean;
    readonly reportServices: readonly Pick<Service, "protocol" | "host" | "port">[];
    readonly peers: readonly PeerSpec[];
  };
  /** Our genesis block hash in display hex. */
  genesisHex: string;
  /** Our server.features answer (what we announce with server.add_peer). */
  features(): Record<string, unknown>;
  /** Our server.version software string. */
  software: string;
  chain: LocalChain;
  connector: PeerConnector;
  /** The IP addresses a host name resolves to (server.add_peer's caller check). */
  resolve(host: string): Promise<string[]>;
  /** Whether the sandbox lets us connect to host:port (Deno.permissions in production). */
  allowed(host: string, port: number): boolean;
  log: Pick<Log, "debug" | "info" | "warn">;
  /** Milliseconds clock (tests move it). */
  now?: () => number;
  /** Uniform in [0, 1): which of a peer's unknown peers to learn (tests fix it). Default Math.random. */
  random?: () => number;
  /** Seeds instead of the built-in ones (tests). */
  seeds?: readonly PeerSpec[];
  /** PEER_RULES.checkMs unless given (tests). */
  checkMs?: number;
}

/** One entry of server.peers.subscribe: [ip, host, feature tokens]. */
export type PeerEntry = [string, string, string[]];

/** The /16 (IPv4) or /56 (IPv6) a listed address counts against; the address itself for anything else. */
export function subnetBucket(ip: string): string {
  const v4 = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(ip);
  if (v4) return `${v4[1]}.${v4[2]}/16`;
  if (ip.includes(":")) {
    const groups = expandIpv6(ip);
    if (groups) return `${groups.slice(0, 3).join(":")}:${groups[3].slice(0, 2)}/56`;
  }
  return ip;
}

// The address one good peer may have (ElectrumX's internal bucket): an IPv4 address, an IPv6 /64, or the host.
function addressBucket(ip: string): string {
  const groups = ip.includes(":") ? expandIpv6(ip) : undefined;
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : ip;
}

function expandIpv6(ip: string): string[] | undefined {
  const halves = ip.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array(Math.max(0, fill)).fill("0"), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.map((g) => g.toLowerCase().padStart(4, "0"));
}

/** True for hosts a public peer may have: names with a dot and public addresses; no loopback, private, onion. */
export function isPublicHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost") || h.endsWith(".local") || h.endsWith(".onion")) {
    return false;
  }
  const kind = ipKind(h);
  if (kind === "name") {
    // A name's last label is a top-level domain, with a letter and not hex: resolvers read "0x7f.1" or
    // "2130706433.1" as numbers, i.e. as addresses that were never checked.
    const tld = h.slice(h.lastIndexOf(".") + 1);
    return h.includes(".") && /^[a-z0-9.-]+$/.test(h) && /[a-z]/.test(tld) && !/^0x[0-9a-f]*$/.test(tld);
  }
  return kind === "public";
}

function isIpLiteral(host: string): boolean {
  return ipKind(host) !== "name";
}

function validHostSyntax(host: string): boolean {
  return host.length > 0 && host.length <= 253 && (/^[a-z0-9.-]+$/.test(host) || /^[0-9a-f:.]+$/.test(host));
}

function validPort(v: unknown): number | null | undefined {
  if (v === null || v === undefined) return null;
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535 ? v as number : undefined;
}

/** The feature tokens of one peer for server.peers.subscribe (letter alone = the network's default port). */
export function featureTokens(
  p: Pick<PeerRecord, "protocolMax" | "pruning" | "sslPort" | "tcpPort">,
  net: Network,
): string[] {
  const d = DEFAULT_PORTS[net];
  const out = [`v${p.protocolMax || PROTOCOL_MAX}`];
  if (p.pruning !== null) out.push(`p${p.pruning}`);
  if (p.sslPort !== null) out.push(p.sslPort === d.ssl ? "s" : `s${p.sslPort}`);
  if (p.tcpPort !== null) out.push(p.tcpPort === d.tcp ? "t" : `t${p.tcpPort}`);
  return out;
}

/** Reads one server.peers.subscribe entry; undefined when it is malformed or offers no port. */
export function parsePeerEntry(v: unknown, net: Network): PeerSpec | undefined {
  if (!Array.isArray(v) || v.length < 3 || typeof v[1] !== "string" || !Array.isArray(v[2])) return undefined;
  const host = v[1].toLowerCase();
  if (!validHostSyntax(host)) return undefined;
  const d = DEFAULT_PORTS[net];
  let tcpPort: number | null = null, sslPort: number | null = null;
  for (const t of v[2].slice(0, 20)) {
    if (typeof t !== "string") continue;
    const m = /^([ts])(\d{0,5})$/.exec(t);
    if (!m) continue;
    const port = m[2] === "" ? (m[1] === "t" ? d.tcp : d.ssl) : Number(m[2]);
    if (port < 1 || port > 65535) continue;
    if (m[1] === "t") tcpPort = port;
    else sslPort = port;
  }
  if (tcpPort === null && sslPort === null) return undefined;
  return { host, tcpPort, sslPort };
}

/** Why a peer's server.features is unacceptable for the host we dialled; undefined when it is fine. */
export function featuresProblem(f: unknown, host: string, genesisHex: string): string | undefined {
  if (typeof f !== "object" || f === null || Array.isArray(f)) return "server.features is not an object";
  const o = f as Record<string, unknown>;
  if (typeof o.genesis_hash !== "string" || o.genesis_hash.toLowerCase() !== genesisHex) {
    return `it follows another chain (genesis ${String(o.genesis_hash).slice(0, 64)})`;
  }
  const hosts = o.hosts;
  if (typeof hosts !== "object" || hosts === null || Array.isArray(hosts)) {
    return "server.features has no hosts";
  }
  const names = Object.keys(hosts).slice(0, 50).map((h) => h.toLowerCase());
  if (!names.includes(host.toLowerCase())) return `${host} is not among the hosts it reports`;
  const max = typeof o.protocol_max === "string" ? parseVersion(o.protocol_max) : null;
  if (!max || !versionAtLeast(max, parseVersion(PROTOCOL_MIN)!)) {
    return `its protocol_max ${String(o.protocol_max).slice(0, 20)} is below our minimum ${PROTOCOL_MIN}`;
  }
  if (
    o.pruning !== null && o.pruning !== undefined &&
    !(Number.isInteger(o.pruning) && (o.pruning as number) >= 0)
  ) {
    return "server.features has an invalid pruning value";
  }
  return undefined;
}

/** The peer table and the checks that keep it current. */
export class PeerManager {
  readonly #deps: PeerManagerDeps;
  readonly #now: () => number;
  readonly #table = new Map<string, PeerRecord>();
  readonly #checking = new Map<string, Promise<void>>();
  readonly #links = new Set<PeerLink>();
  readonly #addPeerAt = new Map<string, number>();
  readonly #outsideLogged = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(deps: PeerManagerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    if (deps.config.peerDiscovery !== "on") return;
    for (const s of deps.seeds ?? SEEDS[deps.config.net]) this.#learn(s, "seed");
    for (const s of deps.config.peers) this.#learn(s, "config");
  }

  /** Starts the background checks (discovery on only): a round now, then whatever is due every minute. */
  start(): void {
    if (this.#deps.config.peerDiscovery !== "on" || this.#stopped) return;
    const tick = () => {
      this.#timer = undefined;
      if (this.#stopped) return;
      void this.checkRound().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, PEER_RULES.wakeMs);
      });
    };
    tick();
  }

  /** Stops the loop, hangs up on every peer being checked and waits for the checks to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#abort.abort();
    for (const link of this.#links) link.close();
    await this.#round;
    await Promise.allSettled([...this.#checking.values()]);
  }

  /** Every peer in the table, for the admin `peers` command. */
  records(): readonly PeerRecord[] {
    return [...this.#table.values()];
  }

  /** Checks every peer that is due, a few at a time; resolves when all are done. */
  checkRound(): Promise<void> {
    this.#round ??= this.#runRound().finally(() => this.#round = undefined);
    return this.#round;
  }

  async #runRound(): Promise<void> {
    const now = this.#now();
    for (const [key, p] of this.#table) {
      if (p.status !== "good" && p.source !== "seed" && p.source !== "config") {
        const since = p.lastGood || p.firstSeen;
        if (now - since > PEER_RULES.forgetMs) {
          this.#table.delete(key);
          this.#outsideLogged.delete(key);
        }
      }
    }
    // Peers learned during a pass are checked in the next one, so the table fills out within one round (three
    // passes: the seeds, their peers, and those peers' peers).
    const seen = new Set<string>();
    let outside = 0;
    for (let pass = 0; pass < PEER_RULES.passes && !this.#stopped; pass++) {
      const at = this.#now();
      const due = [...this.#table.values()].filter((p) =>
        p.nextTry <= at && !seen.has(p.key) && !this.#checking.has(p.key)
      );
      if (due.length === 0) break;
      const queue: PeerRecord[] = [];
      for (const p of due) {
        seen.add(p.key);
        if (this.#targets(p).length > 0) {
          queue.push(p);
          continue;
        }
        outside++;
        // The sandbox does not change while we run: look at it again only in a day (it may be forgotten then).
        p.nextTry = at + PEER_RULES.maxBackoffMs;
        p.reason = "outside the sandbox: add it to PEERS to have it checked";
        if (!this.#outsideLogged.has(p.key)) {
          this.#outsideLogged.add(p.key);
          this.#deps.log.debug(`peer ${describe(p)}: outside the sandbox, not contacted`);
        }
      }
      const worker = async () => {
        for (let p = queue.shift(); p && !this.#stopped; p = queue.shift()) await this.check(p.key);
      };
      await Promise.all(Array.from({ length: PEER_RULES.concurrency }, worker));
    }
    if (outside > 0) {
      this.#deps.log.info(
        `peer check: ${outside} peer${
          outside === 1 ? "" : "s"
        } outside the sandbox skipped: add them to PEERS`,
      );
    }
  }

  /** Checks one peer now (joins a check already running); resolves when it is done, never rejects. */
  check(key: string): Promise<void> {
    const running = this.#checking.get(key);
    if (running) return running;
    const p = this.#table.get(key);
    if (!p || this.#stopped) return Promise.resolve();
    const done = this.#check(p).finally(() => this.#checking.delete(key));
    this.#checking.set(key, done);
    return done;
  }

  async #check(p: PeerRecord): Promise<void> {
    const targets = this.#targets(p);
    if (targets.length === 0) return;
    p.lastTry = this.#now();
    let failure: PeerError | undefined;
    for (const target of targets) {
      let link: PeerLink;
      try {
        link = await this.#deps.connector(target, this.#abort.signal);
      } catch (err) {
        if (this.#stopped) return;
        failure = asPeerError(err);
        continue;
      }
      if (this.#stopped) return link.close();
      this.#links.add(link);
      const checkMs = this.#deps.checkMs ?? PEER_RULES.checkMs;
      let late = false;
      // Hanging up makes the call in progress fail, which ends the check.
      const deadline = setTimeout(() => {
        late = true;
        link.close();
      }, checkMs);
      try {
        await this.#verify(p, link);
        return;
      } catch (err) {
        // A check cut short by our own shutdown says nothing about the peer.
        if (this.#stopped) return;
        failure = late
          ? new PeerError("timeout", `the check took longer than ${checkMs} ms`)
          : asPeerError(err);
        break;
      } finally {
        clearTimeout(deadline);
        link.close();
        this.#links.delete(link);
      }
    }
    this.#failed(p, failure ?? new PeerError("connect", "no port to try"));
  }

  // SSL first when offered (as ElectrumX), then TCP; only what the sandbox lets us reach.
  #targets(p: PeerRecord): PeerTarget[] {
    const out: PeerTarget[] = [];
    if (p.sslPort !== null && this.#deps.allowed(p.host, p.sslPort)) {
      out.push({ host: p.host, port: p.sslPort, tls: true });
    }
    if (p.tcpPort !== null && this.#deps.allowed(p.host, p.tcpPort)) {
      out.push({ host: p.host, port: p.tcpPort, tls: false });
    }
    return out;
  }

  async #verify(p: PeerRecord, link: PeerLink): Promise<void> {
    const bad = (why: string) => new PeerError("bad-peer", why);
    const version = await link.call("server.version", [this.#deps.software, [PROTOCOL_MIN, PROTOCOL_MAX]]);
    if (!Array.isArray(version) || typeof version[0] !== "string" || typeof version[1] !== "string") {
      throw new PeerError("protocol", "server.version answered something other than [software, version]");
    }
    const negotiated = parseVersion(version[1]);
    if (!negotiated || !versionAtLeast(negotiated, parseVersion(PROTOCOL_MIN)!)) {
      throw bad(`it negotiated protocol ${version[1].slice(0, 20)}, below our minimum ${PROTOCOL_MIN}`);
    }
    const features = await link.call("server.features", []);
    const problem = featuresProblem(features, p.host, this.#deps.genesisHex);
    if (problem) throw bad(problem);
    const f = features as Record<string, unknown>;

    const tip = await link.call("blockchain.headers.subscribe", []);
    const t = tip as { height?: unknown; hex?: unknown } | null;
    if (typeof t !== "object" || t === null || !Number.isInteger(t.height) || typeof t.hex !== "string") {
      throw new PeerError(
        "protocol",
        "blockchain.headers.subscribe answered something other than {height, hex}",
      );
    }
    const theirs = t.height as number;
    const ours = this.#deps.chain.height();
    if (Math.abs(theirs - ours) > PEER_RULES.maxHeightGap) {
      throw bad(`its height ${theirs} is too far from ours (${ours})`);
    }
    // The same header at the lower of the two tips: it follows our chain, not just a chain of our height.
    const common = Math.min(theirs, ours);
    if (common >= 0) {
      const theirHeader = theirs === common ? t.hex : await link.call("blockchain.block.header", [common]);
      if (
        typeof theirHeader !== "string" || theirHeader.toLowerCase() !== this.#deps.chain.headerHex(common)
      ) {
        throw bad(`its header at height ${common} differs from ours`);
      }
    }

    const list = await link.call("server.peers.subscribe", []);
    let listsUs = false;
    if (Array.isArray(list)) {
      const unknown: PeerSpec[] = [];
      for (const entry of list.slice(0, PEER_RULES.maxLearned)) {
        const spec = parsePeerEntry(entry, this.#deps.config.net);
        if (!spec) continue;
        if (this.#isSelf(spec.host, spec.tcpPort, spec.sslPort)) listsUs = true;
        else if (
          this.#acceptable(spec) && !this.#table.has(this.#key(spec.host, spec.tcpPort, spec.sslPort))
        ) {
          unknown.push(spec);
        }
      }
      // As ElectrumX: a few of the peers it names that we do not know, at random. Taking all of them let one
      // hostile peer fill the table with names of its own (200 per reply, 1,000 after one round).
      for (let n = 0; n < PEER_RULES.learnPerReply && unknown.length > 0; n++) {
        const [spec] = unknown.splice(Math.floor((this.#deps.random ?? Math.random)() * unknown.length), 1);
        this.#learn(spec, "peer");
      }
    }
    // As ElectrumX: announce ourselves only to peers that do not list us yet.
    const { peerAnnounce, reportServices } = this.#deps.config;
    if (peerAnnounce && reportServices.length > 0 && !listsUs) {
      try {
        const accepted = await link.call("server.add_peer", [this.#deps.features()]);
        this.#deps.log.debug(`peer ${p.host}: server.add_peer answered ${JSON.stringify(accepted)}`);
      } catch (err) {
        this.#deps.log.debug(`peer ${p.host}: server.add_peer failed: ${(err as Error).message}`);
      }
    }

    const hosts = f.hosts as Record<string, unknown>;
    const ports = Object.entries(hosts).find(([h]) => h.toLowerCase() === p.host)?.[1] as
      | Record<string, unknown>
      | undefined;
    const tcp = validPort(ports?.tcp_port), ssl = validPort(ports?.ssl_port);
    if (tcp !== undefined && ssl !== undefined && (tcp !== null || ssl !== null)) {
      p.tcpPort = tcp;
      p.sslPort = ssl;
    }
    // As ElectrumX: one recently good peer per IPv4 address or IPv6 /64, so that one machine cannot stand in
    // the list under many names (off regtest, where local servers share 127.0.0.1). Checked here, with no await
    // left before the peer counts as good, so that two names checked side by side cannot both pass.
    const address = addressBucket(link.remoteIp || p.host);
    if (this.#deps.config.net !== "regtest") {
      const cutoff = this.#now() - PEER_RULES.staleMs;
      for (const q of this.#table.values()) {
        if (q !== p && q.status === "good" && q.lastGood > cutoff && addressBucket(q.ip) === address) {
          throw bad(`${q.host} is already a good peer at ${address}`);
        }
      }
    }
    const wasGood = p.status === "good";
    p.status = "good";
    p.ip = link.remoteIp || p.host;
    p.protocolMax = String(f.protocol_max);
    p.serverVersion = typeof f.server_version === "string"
      ? f.server_version.slice(0, 80)
      : version[0].slice(0, 80);
    p.pruning = Number.isInteger(f.pruning) ? f.pruning as number : null;
    p.lastGood = this.#now();
    p.tries = 0;
    p.reason = "";
    p.nextTry = p.lastGood + PEER_RULES.recheckMs;
    const line = `peer ${
      describe(p)
    } verified: ${p.serverVersion}, protocol ${p.protocolMax}, height ${theirs}`;
    if (wasGood) this.#deps.log.debug(line);
    else this.#deps.log.info(line);
  }

  #failed(p: PeerRecord, err: PeerError): void {
    p.tries++;
    p.reason = err.message.slice(0, 200);
    p.status = err.code === "bad-peer" ? "bad" : "failed";
    const backoff = p.status === "bad"
      ? PEER_RULES.maxBackoffMs
      : Math.min(PEER_RULES.backoffMs * 2 ** p.tries, PEER_RULES.maxBackoffMs);
    p.nextTry = p.lastTry + backoff;
    const line = `peer ${describe(p)} check failed (try ${p.tries}): ${p.reason}`;
    if (p.status === "bad") this.#deps.log.info(line);
    else this.#deps.log.debug(line);
  }

  /** server.peers.subscribe: recently verified peers, at most PEER_RULES.perSubnet per subnet (except regtest). */
  subscribeList(): PeerEntry[] {
    const { peerDiscovery, net } = this.#deps.config;
    if (peerDiscovery === "off") return [];
    if (peerDiscovery === "self") return this.#selfEntries();
    const cutoff = this.#now() - PEER_RULES.staleMs;
    const recent = [...this.#table.values()]
      // As ElectrumX: a peer stays listed while its last good check is recent, even if a re-check just failed
      // (a restart or a network blip should not drop it at once); one on another chain never is.
      .filter((p) => p.status !== "bad" && p.lastGood > 0 && p.lastGood >= cutoff)
      .sort((a, b) => b.lastGood - a.lastGood);
    const perBucket = new Map<string, number>();
    const out: PeerEntry[] = [];
    for (const p of recent) {
      if (net !== "regtest") {
        const bucket = subnetBucket(p.ip);
        const n = perBucket.get(bucket) ?? 0;
        if (n >= PEER_RULES.perSubnet) continue;
        perBucket.set(bucket, n + 1);
      }
      out.push([p.ip || p.host, p.host, featureTokens(p, net)]);
    }
    return out;
  }

  #selfEntries(): PeerEntry[] {
    const byHost = new Map<string, PeerRecord>();
    for (const s of this.#deps.config.reportServices) {
      if (s.protocol !== "tcp" && s.protocol !== "ssl") continue;
      const r = byHost.get(s.host) ?? blankRecord(s.host, null, null, "config", 0);
      if (s.protocol === "tcp" && r.tcpPort === null) r.tcpPort = s.port;
      if (s.protocol === "ssl" && r.sslPort === null) r.sslPort = s.port;
      byHost.set(s.host, r);
    }
    return [...byHost.values()].map((r) => [r.host, r.host, featureTokens(r, this.#deps.config.net)]);
  }

  /**
   * server.add_peer from `remoteIp`: true when one of the announced hosts is (or resolves to) the caller's
   * address and it is now a candidate; it is listed only once our own check of it succeeds.
   */
  async addPeer(remoteIp: string, features: unknown): Promise<boolean> {
    const { peerDiscovery, net } = this.#deps.config;
    if (peerDiscovery !== "on" || this.#stopped) return false;
    const caller = normalizeIp(remoteIp);
    const reject = (why: string) => {
      this.#deps.log.debug(`server.add_peer from ${caller} refused: ${why}`);
      return false;
    };
    if (typeof features !== "object" || features === null || Array.isArray(features)) {
      return reject("features is not an object");
    }
    const f = features as Record<string, unknown>;
    if (typeof f.genesis_hash !== "string" || f.genesis_hash.toLowerCase() !== this.#deps.genesisHex) {
      return reject("another chain's genesis hash");
    }
    if (typeof f.hosts !== "object" || f.hosts === null || Array.isArray(f.hosts)) return reject("no hosts");
    const bucket = subnetBucket(caller);
    const now = this.#now();
    if (this.#addPeerAt.size > PEER_RULES.maxPeers) {
      for (const [b, at] of this.#addPeerAt) {
        if (now - at >= PEER_RULES.addPeerPauseMs) this.#addPeerAt.delete(b);
      }
    }
    const last = this.#addPeerAt.get(bucket);
    if (net !== "regtest" && last !== undefined && now - last < PEER_RULES.addPeerPauseMs) {
      return reject(
        `another peer from ${bucket} was added less than ${PEER_RULES.addPeerPauseMs / 1000} s ago`,
      );
    }
    for (const [rawHost, rawPorts] of Object.entries(f.hosts as Record<string, unknown>).slice(0, 4)) {
      const host = rawHost.toLowerCase();
      if (!validHostSyntax(host) || (net !== "regtest" && !isPublicHost(host)) || host.endsWith(".onion")) {
        continue;
      }
      const ports = (typeof rawPorts === "object" && rawPorts !== null ? rawPorts : {}) as Record<
        string,
        unknown
      >;
      const tcpPort = validPort(ports.tcp_port), sslPort = validPort(ports.ssl_port);
      if (tcpPort === undefined || sslPort === undefined || (tcpPort === null && sslPort === null)) continue;
      if (this.#isSelf(host, tcpPort, sslPort)) continue;
      // As ElectrumX, only the first usable host counts. One peer per 600 s per domain (its last two labels; IP
      // literals share one bucket), so many names under one domain pointing at one host do not add many peers.
      const domain = isIpLiteral(host) ? "ip_addr" : `domain ${host.split(".").slice(-2).join(".")}`;
      const lastDomain = this.#addPeerAt.get(domain);
      if (net !== "regtest" && lastDomain !== undefined && now - lastDomain < PEER_RULES.addPeerPauseMs) {
        return reject(
          `another peer of ${domain} was added less than ${PEER_RULES.addPeerPauseMs / 1000} s ago`,
        );
      }
      // The attempt takes the caller's turn whatever its outcome: a caller gets one name looked up per 600 s
      // (before, every call could make four lookups, of names the caller's own slow DNS servers answer).
      this.#addPeerAt.set(bucket, now);
      let matches = isIpLiteral(host) && normalizeIp(host) === caller;
      if (!matches && !isIpLiteral(host)) {
        try {
          matches = (await this.#deps.resolve(host)).map(normalizeIp).includes(caller);
        } catch (err) {
          this.#deps.log.debug(`server.add_peer: cannot resolve ${host}: ${(err as Error).message}`);
        }
      }
      if (!matches) return reject(`${host} is not the caller's address`);
      this.#addPeerAt.set(domain, now);
      const key = this.#learn({ host, tcpPort, sslPort }, "add_peer");
      if (!key) return reject("the peer table is full");
      this.#deps.log.info(`server.add_peer from ${caller}: ${host} accepted as a candidate, checking it`);
      const p = this.#table.get(key)!;
      if (p.status !== "good") {
        p.tcpPort = tcpPort;
        p.sslPort = sslPort;
        p.nextTry = now;
        // Checked at once unless many checks run already; then the next round takes it (it is due).
        if (this.#checking.size < PEER_RULES.concurrency) void this.check(key);
      }
      return true;
    }
    return reject("none of its hosts is a public name or address with a port");
  }

  // Whether a peer's host may be contacted at all: public (off regtest) and not an onion.
  #acceptable(spec: PeerSpec): boolean {
    const host = spec.host.toLowerCase();
    return (this.#deps.config.net === "regtest" || isPublicHost(host)) && !host.endsWith(".onion");
  }

  // Adds a peer unless known, ourselves, private (off regtest) or beyond the table's size; its key or undefined.
  #learn(spec: PeerSpec, source: PeerSource): string | undefined {
    const host = spec.host.toLowerCase();
    if (!this.#acceptable(spec) || this.#isSelf(host, spec.tcpPort, spec.sslPort)) return undefined;
    const key = this.#key(host, spec.tcpPort, spec.sslPort);
    const known = this.#table.get(key);
    if (known) {
      // What the operator said outranks hearsay: a configured peer keeps its ports and is never forgotten.
      if (source === "config" || source === "seed") {
        known.source = source;
        known.tcpPort = spec.tcpPort;
        known.sslPort = spec.sslPort;
      }
      return key;
    }
    if (this.#table.size >= PEER_RULES.maxPeers && !this.#evictOne()) return undefined;
    this.#table.set(key, blankRecord(host, spec.tcpPort, spec.sslPort, source, this.#now(), key));
    return key;
  }

  // Makes room by forgetting one peer learned from others that never proved good: a bad one first, then a failed
  // one, then one not checked yet, the oldest of each. A full table of such hearsay (a hostile peer's names)
  // otherwise turned every new peer away, legitimate ones included, until they were forgotten days later.
  // False when every entry has been good or came from the operator.
  #evictOne(): boolean {
    for (const status of ["bad", "failed", "new"] as const) {
      for (const [k, q] of this.#table) {
        if (
          (q.source === "peer" || q.source === "add_peer") && q.lastGood === 0 && q.status === status &&
          !this.#checking.has(k)
        ) {
          this.#table.delete(k);
          return true;
        }
      }
    }
    return false;
  }

  // Keyed by host, as ElectrumX; on regtest several servers share one host, so the ports are part of the key.
  #key(host: string, tcp: number | null, ssl: number | null): string {
    return this.#deps.config.net === "regtest" ? `${host} t${tcp ?? ""} s${ssl ?? ""}` : host;
  }

  #isSelf(host: string, tcp: number | null, ssl: number | null): boolean {
    const ours = this.#deps.features().hosts;
    if (typeof ours !== "object" || ours === null) return false;
    for (const [h, ports] of Object.entries(ours as Record<string, Record<string, unknown>>)) {
      if (h.toLowerCase() !== host) continue;
      if (this.#deps.config.net !== "regtest") return true;
      if ((tcp !== null && ports?.tcp_port === tcp) || (ssl !== null && ports?.ssl_port === ssl)) return true;
    }
    return false;
  }
}

function blankRecord(
  host: string,
  tcpPort: number | null,
  sslPort: number | null,
  source: PeerSource,
  now: number,
  key = host,
): PeerRecord {
  return {
    key,
    host,
    tcpPort,
    sslPort,
    source,
    status: "new",
    ip: isIpLiteral(host) ? normalizeIp(host) : "",
    protocolMax: "",
    serverVersion: "",
    pruning: null,
    firstSeen: now,
    lastGood: 0,
    lastTry: 0,
    tries: 0,
    nextTry: now,
    reason: "",
  };
}

function describe(p: PeerRecord): string {
  const ports = [p.sslPort !== null ? `s${p.sslPort}` : "", p.tcpPort !== null ? `t${p.tcpPort}` : ""];
  return `${p.host} ${ports.filter(Boolean).join(" ")}`;
}

function asPeerError(err: unknown): PeerError {
  return err instanceof PeerError ? err : new PeerError("protocol", (err as Error)?.message ?? String(err));
}

/** Whether the running process may connect to host:port (Deno's sandbox; everything under -A). */
export function sandboxAllows(host: string, port: number): boolean {
  return Deno.permissions.querySync({ name: "net", host: hostPort(host, port) }).state === "granted";
}

/**
 * The addresses a host name resolves to, by the system resolver. Inside the sandbox this is refused (Deno grants
 * name lookups only with unscoped network access), so server.add_peer then accepts IP-literal hosts only.
 */
export async function resolveHost(host: string): Promise<string[]> {
  return (await lookup(host, { all: true })).map((a) => a.address);
}
