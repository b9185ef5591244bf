// Resource accounting for Electrum sessions, after aiorpcX/ElectrumX (protocol.md §7). Every session carries a
// cost that grows with what it asks for and decays linearly with time (more slowly the more script hashes it
// is subscribed to, recomputed every 300 s); past COST_SOFT_LIMIT its requests are
// delayed and its concurrency shrinks, at COST_HARD_LIMIT it is cut off. Sessions from one public /24 (IPv4) or
// /48 (IPv6) share a group whose cost counts against each member, so opening many connections buys nothing;
// the group keeps what departed members owed for a while, so reconnecting buys nothing either.
import type { Config } from "../config.ts";

/** Cost of any error reply (aiorpcX). */
export const ERROR_COST = 100;
/** Cost of a message that is not UTF-8 JSON: garbage is far more suspicious than a bad argument. */
export const PARSE_ERROR_COST = 1000;
/** Cost charged when a session opens, so that connection floods from one network are throttled too. */
export const CONNECT_COST = 5;
/** How fast a group forgets the cost of departed members: ElectrumX's 600 per 5 minutes. */
export const RETAINED_DECAY_PER_SEC = 2;
/** How long a group's member total may be reused before it is summed again (ms); keeps big groups cheap. */
export const GROUP_SUM_TTL_MS = 1000;

/** The throttling knobs, in ElectrumX's names and units. */
export interface CostSettings {
  readonly softLimit: number;
  readonly hardLimit: number;
  /** Cost decay per second of a session without subscriptions (hard/10000, as aiorpcX); see sessionDecay. */
  readonly decayPerSec: number;
  readonly requestSleepMs: number;
  readonly initialConcurrent: number;
  readonly bandwidthUnitCost: number;
}

/** The throttling knobs of a Config. */
export function costSettings(config: Config): CostSettings {
  return {
    softLimit: config.costSoftLimit,
    hardLimit: config.costHardLimit,
    decayPerSec: config.costHardLimit / 10000,
    requestSleepMs: config.requestSleepMs,
    initialConcurrent: config.initialConcurrent,
    bandwidthUnitCost: config.bandwidthUnitCost,
  };
}

/** How often each session's decay is recomputed from its subscriptions (ElectrumX's 300 s). */
export const DECAY_RECOMPUTE_MS = 300_000;

/**
 * A session's cost decay per second, hard/(10000 + 5·subscriptions) as ElectrumX's: a session holding many
 * subscriptions costs the server on every block, so what it spends decays more slowly.
 */
export function sessionDecay(hardLimit: number, subscriptions: number): number {
  return hardLimit / (10000 + 5 * subscriptions);
}

/** A cost that decays linearly to zero; time is passed in (ms) so that tests control it. */
export class CostMeter {
  #cost = 0;
  #at: number;
  #decayPerSec: number;

  constructor(decayPerSec: number, now: number) {
    this.#decayPerSec = decayPerSec;
    this.#at = now;
  }

  get decayPerSec(): number {
    return this.#decayPerSec;
  }

  /** Changes the decay rate from `now` on (what decayed until then is kept). */
  setDecay(perSec: number, now: number): void {
    this.value(now);
    this.#decayPerSec = perSec;
  }

  /** The cost at time `now` after decay. */
  value(now: number): number {
    if (now > this.#at) {
      this.#cost = Math.max(0, this.#cost - ((now - this.#at) / 1000) * this.#decayPerSec);
      this.#at = now;
    }
    return this.#cost;
  }

  /** Adds `delta` (may be negative; the cost never goes below zero) and returns the new cost. */
  add(delta: number, now: number): number {
    this.#cost = Math.max(0, this.value(now) + delta);
    return this.#cost;
  }
}

/** Sessions sharing one network prefix. */
export class CostGroup {
  readonly members = new Set<CostMeter>();
  /** What departed members still owed when they left, decaying at RETAINED_DECAY_PER_SEC. */
  readonly retained: CostMeter;
  #sum = 0;
  #sumAt = -Infinity;
  /** Charges to members since the sum was taken, so a burst counts at once and not a second later. */
  #since = 0;

  constructor(readonly key: string, now: number) {
    this.retained = new CostMeter(RETAINED_DECAY_PER_SEC, now);
  }

  /**
   * Retained cost plus every member's cost. Summing all members is O(members), so the sum is taken at most
   * every GROUP_SUM_TTL_MS and charges in between are added as they happen (their decay over that second is
   * ignored).
   */
  total(now: number): number {
    if (now - this.#sumAt >= GROUP_SUM_TTL_MS || now < this.#sumAt) {
      let sum = 0;
      for (const m of this.members) sum += m.value(now);
      this.#sum = sum;
      this.#sumAt = now;
      this.#since = 0;
    }
    return Math.max(0, this.#sum + this.#since) + this.retained.value(now);
  }

  /** Records a charge to one member's meter (call alongside CostMeter.add). */
  charged(cost: number): void {
    this.#since += cost;
  }

  /** Forgets the cached member sum (after a member joins or leaves). */
  invalidate(): void {
    this.#sumAt = -Infinity;
  }
}

/** All IP groups of a server. */
export class CostGroups {
  readonly #groups = new Map<string, CostGroup>();

  /** Puts a session's meter into the group of `ip`; undefined when the address is exempt from grouping. */
  join(ip: string, meter: CostMeter, now: number): CostGroup | undefined {
    const key = ipGroupKey(ip);
    if (key === undefined) return undefined;
    let group = this.#groups.get(key);
    if (!group) {
      group = new CostGroup(key, now);
      this.#groups.set(key, group);
    }
    group.members.add(meter);
    group.invalidate();
    return group;
  }

  /** Removes a departing session; the group keeps what it still owed. */
  leave(group: CostGroup, meter: CostMeter, now: number): void {
    if (!group.members.delete(meter)) return;
    group.retained.add(meter.value(now), now);
    group.invalidate();
  }

  /** Drops groups with no members and nothing retained; run it now and then. */
  sweep(now: number): void {
    for (const [key, group] of this.#groups) {
      if (group.members.size === 0 && group.retained.value(now) === 0) this.#groups.delete(key);
    }
  }

  /** The group of `key` (e.g. "203.0.113.0/24"), if it exists. */
  get(key: string): CostGroup | undefined {
    return this.#groups.get(key);
  }

  /** How many groups exist. */
  get size(): number {
    return this.#groups.size;
  }
}

/**
 * How far a cost is between the soft and hard limits: 0 below soft, 1 at hard (may exceed 1). A hard limit
 * not above the soft one disables throttling (aiorpcX).
 */
export function throttleFraction(cost: number, soft: number, hard: number): number {
  const range = hard - soft;
  if (range <= 0 || cost <= soft) return 0;
  return (cost - soft) / range;
}

/** Requests a session may run at once for throttle fraction f: ceil((1−f)·initial), 0 once f ≥ 1. */
export function concurrencyTarget(f: number, initial: number): number {
  if (f >= 1) return 0;
  return Math.max(1, Math.ceil((1 - f) * initial));
}

/**
 * The group key of an address: "a.b.c.0/24" for public IPv4, the first 48 bits for public IPv6; undefined for
 * loopback, private, link-local and unparsable addresses, which are exempt (ElectrumX exempts private IPs).
 */
export function ipGroupKey(ip: string): string | undefined {
  const v4 = parseIPv4(ip);
  if (v4) return isPrivateIPv4(v4) ? undefined : `${v4[0]}.${v4[1]}.${v4[2]}.0/24`;
  const v6 = parseIPv6(ip);
  if (!v6) return undefined;
  // IPv4-mapped (::ffff:a.b.c.d) is an IPv4 peer behind a dual-stack socket.
  if (v6[0] === 0 && v6[1] === 0 && v6[2] === 0 && v6[3] === 0 && v6[4] === 0 && v6[5] === 0xffff) {
    return ipGroupKey(`${v6[6] >> 8}.${v6[6] & 255}.${v6[7] >> 8}.${v6[7] & 255}`);
  }
  if (isPrivateIPv6(v6)) return undefined;
  return `${v6[0].toString(16)}:${v6[1].toString(16)}:${v6[2].toString(16)}::/48`;
}

function parseIPv4(s: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  return parts.every((p) => p <= 255) ? parts : undefined;
}

function isPrivateIPv4([a, b]: number[]): boolean {
  return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168);
}

/** Eight 16-bit groups, or undefined. Accepts "::" shortening, a trailing dotted IPv4 and a %zone suffix. */
function parseIPv6(input: string): number[] | undefined {
  let s = input;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (!s.includes(":")) return undefined;
  const lastColon = s.lastIndexOf(":");
  const last = s.slice(lastColon + 1);
  if (last.includes(".")) {
    // A trailing dotted IPv4 stands for the last two groups.
    const v4 = parseIPv4(last);
    if (!v4) return undefined;
    s = `${s.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${
      ((v4[2] << 8) | v4[3]).toString(16)
    }`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !rest) return undefined;
  const fixed = head.length + rest.length;
  if (halves.length === 1) return fixed === 8 ? head : undefined;
  if (fixed > 7) return undefined;
  return [...head, ...new Array(8 - fixed).fill(0), ...rest];
}

function isPrivateIPv6(g: number[]): boolean {
  const allZeroPrefix = g.slice(0, 7).every((x) => x === 0);
  if (allZeroPrefix && (g[7] === 0 || g[7] === 1)) return true; // :: and ::1
  if ((g[0] & 0xfe00) === 0xfc00) return true; // fc00::/7 unique local
  if ((g[0] & 0xffc0) === 0xfe80) return true; // fe80::/10 link-local
  return false;
}
