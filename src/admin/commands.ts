// The admin commands (ElectrumX's LocalRPC set, minus what Coulomb does not have): what each one reads from
// the running node and what it changes. Results are plain JSON; `coulomb rpc` renders them as tables.
import { addressToScript } from "../chain/address.ts";
import { fromHex, fromHexReversed, isHex, toHex, toHexReversed } from "../chain/hex.ts";
import { hashX, scriptHash } from "../chain/script.ts";
import { type Log, LOG_LEVELS, type LogLevelName } from "../log.ts";
import { sortedMempool, withoutConfirmed } from "../server/status.ts";
import { compactAllHistory, type CompactionResult } from "./compact.ts";
import { directorySize, nodeInfo, type NodeView, subscriptionsBySession } from "./node.ts";
import { type AdminCommand, type AdminCommands, AdminError, COMMAND_FAILED } from "./server.ts";
import { errorText } from "../error_text.ts";

/** What the commands need. */
export interface AdminCommandDeps {
  readonly view: NodeView;
  readonly log: Log;
  /** Rows per compaction chunk (tests make it small to exercise chunking). */
  readonly compactChunkRows?: number;
}

/** Default entries per list of `query`. */
export const DEFAULT_QUERY_LIMIT = 1000;
/** Largest `query` limit. */
export const MAX_QUERY_LIMIT = 1_000_000;
/** Blocks `reorg` backs up when not told (ElectrumX's default). */
export const DEFAULT_REORG_BLOCKS = 3;

/** One session in the `sessions` answer. */
export interface SessionRow {
  id: number;
  protocol: string;
  remote: string;
  client: string;
  version: string;
  cost: number;
  group: string | null;
  group_cost: number;
  requests: number;
  errors: number;
  pending: number;
  subs: number;
  recv_bytes: number;
  send_bytes: number;
  age_seconds: number;
  idle_seconds: number;
}

/** One IP group in the `groups` answer. */
export interface GroupRow {
  name: string;
  sessions: number;
  cost: number;
  retained: number;
  requests: number;
  errors: number;
  subs: number;
  recv_bytes: number;
  send_bytes: number;
}

/** The answer of `query` for one item. */
export interface QueryResult {
  item: string;
  /** Why the item could not be looked up; the other fields are absent then. */
  error?: string;
  kind?: "address" | "script" | "scripthash";
  script?: string;
  scripthash?: string;
  history?: { tx_hash: string; height: number }[];
  /** True when the history has more entries than the limit. */
  history_more?: boolean;
  utxos?: { tx_hash: string; tx_pos: number; height: number; value: number }[];
  utxos_more?: boolean;
  balance?: { confirmed: number; unconfirmed: number };
}

/** Builds the command table over a running node. */
export function createAdminCommands(deps: AdminCommandDeps): AdminCommands {
  const { view, log } = deps;
  const m = new Map<string, AdminCommand>();
  let compacting: Promise<CompactionResult> | undefined;

  m.set("getinfo", {
    params: [],
    help: "summary of the server: heights, sync state, sessions, subscriptions, mempool, db size, uptime",
    run: async () => nodeInfo(view, await directorySize(view.store.dir)),
  });

  m.set("sessions", {
    params: [],
    help: "every open Electrum session: client, protocol, cost, requests, subscriptions, bytes, age",
    run: () => sessionRows(view),
  });

  m.set("groups", {
    params: [],
    help: "IP groups (/24 IPv4, /48 IPv6) of the open sessions with their shared cost",
    run: () => groupRows(view),
  });

  m.set("peers", {
    params: [],
    help: "peer servers: where each came from, its status, ports, version, last good check and failures",
    run: () => peerRows(view),
  });

  m.set("log_level", {
    params: ["level"],
    help: "change the log level now: debug, info, warning or error",
    run: async ([level]) => {
      const name = typeof level === "string" ? level.trim().toLowerCase() : "";
      const normalized = (name === "warn" ? "warning" : name) as LogLevelName;
      if (!LOG_LEVELS.includes(normalized)) {
        throw new AdminError(
          COMMAND_FAILED,
          `unknown log level '${shown(level)}'; use one of ${LOG_LEVELS.join(", ")}`,
        );
      }
      await view.setLogLevel(normalized);
      log.info(`log level set to ${normalized} (admin RPC)`);
      return `log level set to ${normalized}`;
    },
  });

  m.set("disconnect", {
    params: ["...session_ids"],
    help: "close the sessions with these ids (see `sessions`)",
    run: ([ids]) => {
      const list = ids as unknown[];
      if (list.length === 0) throw new AdminError(COMMAND_FAILED, "give at least one session id");
      const server = view.serving()?.server;
      return list.map((raw) => {
        const id = typeof raw === "string" && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
        if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
          return `not a session id: ${shown(raw)}`;
        }
        if (server?.closeSession(id, "disconnected by the operator")) {
          log.info(`session ${id}: disconnected by the operator`);
          return `disconnected ${id}`;
        }
        return `unknown session ${id}`;
      });
    },
  });

  m.set("query", {
    params: ["items", "?limit"],
    help: "history, UTXOs and balance of addresses, hex output scripts or script hashes",
    run: async ([items, limitArg]) => {
      const list = Array.isArray(items) ? items : [items];
      if (list.length === 0) {
        throw new AdminError(COMMAND_FAILED, "give an address, a hex script or a script hash");
      }
      const limit = limitArg === undefined || limitArg === null
        ? DEFAULT_QUERY_LIMIT
        : positiveInt(limitArg, "limit", MAX_QUERY_LIMIT);
      const out: QueryResult[] = [];
      for (const item of list) out.push(await query(view, item, limit));
      return out;
    },
  });

  m.set("reorg", {
    params: ["?count"],
    help:
      `testing only (NET=regtest): undo the last N blocks (default ${DEFAULT_REORG_BLOCKS}) and re-sync them`,
    run: async ([countArg]) => {
      if (view.config.net !== "regtest") {
        throw new AdminError(
          COMMAND_FAILED,
          `reorg is a testing command and runs only with NET=regtest; this server is on ${view.config.net}`,
        );
      }
      const count = countArg === undefined || countArg === null
        ? DEFAULT_REORG_BLOCKS
        : positiveInt(countArg, "count", Number.MAX_SAFE_INTEGER);
      log.info(`admin RPC: forced reorg of ${count} block${count === 1 ? "" : "s"}`);
      let done: { height: number; undone: number };
      try {
        done = await view.loop.reorg(count);
      } catch (e) {
        throw new AdminError(COMMAND_FAILED, `reorg failed: ${errorText(e)}`);
      }
      return `backed up ${done.undone} block${
        done.undone === 1 ? "" : "s"
      } to height ${done.height}; re-syncing from the daemon`;
    },
  });

  m.set("compact_history", {
    params: [],
    help: "merge each script's history rows (one per flush) into few large rows; runs alongside syncing",
    run: async () => {
      if (compacting) throw new AdminError(COMMAND_FAILED, "a history compaction is already running");
      log.info("admin RPC: compacting history");
      compacting = compactAllHistory(
        view.store,
        (fn) => view.loop.runExclusive(fn),
        log,
        deps.compactChunkRows,
      );
      try {
        return await compacting;
      } catch (e) {
        throw new AdminError(
          COMMAND_FAILED,
          `compaction stopped: ${errorText(e)}`,
        );
      } finally {
        compacting = undefined;
      }
    },
  });

  m.set("stop", {
    params: [],
    help: "flush and shut down cleanly, as SIGTERM does",
    run: () => {
      log.info("admin RPC: stop requested");
      view.requestStop("stop requested over the admin RPC");
      return "stopping";
    },
  });

  m.set("help", {
    params: [],
    help: "this list",
    run: () => Object.fromEntries([...m].map(([name, c]) => [name, usageOf(name, c)])),
  });
  return m;
}

/** `name args — help`, for `help`. */
function usageOf(name: string, c: AdminCommand): string {
  const args = c.params.map((p) =>
    p.startsWith("?") ? `[${p.slice(1)}]` : p.startsWith("...") ? `${p.slice(3)}...` : p
  );
  return `${[name, ...args].join(" ")} — ${c.help}`;
}

function positiveInt(v: unknown, name: string, max: number): number {
  const n = typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new AdminError(
      COMMAND_FAILED,
      `${name} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** The `sessions` answer. */
export function sessionRows(view: NodeView, now = Date.now()): SessionRow[] {
  const serving = view.serving();
  if (!serving) return [];
  const subs = subscriptionsBySession(serving.subscriptions);
  return serving.server.sessions().sort((a, b) => a.id - b.id).map((s) => ({
    id: s.id,
    protocol: s.protocol,
    remote: s.remoteAddress,
    client: s.client,
    version: s.protocolVersion,
    cost: round(s.cost),
    group: s.group ?? null,
    group_cost: round(s.throttleCost),
    requests: s.requests,
    errors: s.errors,
    pending: s.pendingMessages,
    subs: subs.get(s.id) ?? 0,
    recv_bytes: s.recvBytes,
    send_bytes: s.sendBytes,
    age_seconds: Math.max(0, Math.floor((now - s.startedAt) / 1000)),
    idle_seconds: Math.max(0, Math.floor((now - s.lastRecvAt) / 1000)),
  }));
}

/**
 * The `groups` answer. A member's throttle cost is the larger of its own and its group's total, and the total
 * (members plus what departed members left behind) is at least every member's own cost, so the largest
 * throttle cost among the members is the group's cost.
 */
export function groupRows(view: NodeView): { groups: GroupRow[]; exempt_sessions: number } {
  const rows = new Map<string, GroupRow & { memberCost: number }>();
  let exempt = 0;
  for (const s of sessionRows(view)) {
    if (s.group === null) {
      exempt++;
      continue;
    }
    let g = rows.get(s.group);
    if (!g) {
      g = {
        name: s.group,
        sessions: 0,
        cost: 0,
        retained: 0,
        requests: 0,
        errors: 0,
        subs: 0,
        recv_bytes: 0,
        send_bytes: 0,
        memberCost: 0,
      };
      rows.set(s.group, g);
    }
    g.sessions++;
    g.cost = Math.max(g.cost, s.group_cost);
    g.memberCost += s.cost;
    g.requests += s.requests;
    g.errors += s.errors;
    g.subs += s.subs;
    g.recv_bytes += s.recv_bytes;
    g.send_bytes += s.send_bytes;
  }
  const groups = [...rows.values()].map(({ memberCost, ...g }) => ({
    ...g,
    retained: round(Math.max(0, g.cost - memberCost)),
  }));
  groups.sort((a, b) => b.cost - a.cost || a.name.localeCompare(b.name));
  return { groups, exempt_sessions: exempt };
}

/** Resolves a query item to a script (or only a script hash) and reads its history, UTXOs and balance. */
async function query(view: NodeView, item: unknown, limit: number): Promise<QueryResult> {
  if (typeof item !== "string" || item.trim() === "") {
    return { item: shown(item), error: "expected an address, a hex script or a 64-digit script hash" };
  }
  const text = item.trim();
  let kind: QueryResult["kind"];
  let script: Uint8Array | undefined;
  let sh: Uint8Array;
  try {
    script = addressToScript(text, view.network);
    kind = "address";
  } catch (addressError) {
    if (isHex(text) && text.length === 64) {
      // 32 raw script bytes would be a nonsensical script; 64 hex digits is what wallets show as a script hash.
      kind = "scripthash";
    } else if (isHex(text) && text.length > 0 && text.length % 2 === 0) {
      kind = "script";
      script = fromHex(text);
    } else {
      return {
        item: text,
        error: `not an address, hex script or script hash: ${(addressError as Error).message}`,
      };
    }
  }
  let hx: Uint8Array;
  if (script) {
    sh = scriptHash(script);
    hx = hashX(script);
  } else {
    sh = fromHexReversed(text);
    hx = sh.slice(0, 11);
  }
  const store = view.store;
  const mempool = view.serving()?.mempool;
  const confirmed = await store.history(hx, { limit: limit + 1 });
  const utxos = await store.utxos(hx);
  const balance = await store.balance(hx);
  const pool = mempool
    ? withoutConfirmed(sortedMempool(mempool.history(hx)), confirmed, store.state.height)
    : [];
  const history: { tx_hash: string; height: number }[] = [];
  for (const c of confirmed) history.push({ tx_hash: toHexReversed(c.txHash), height: c.height });
  for (const p of pool) history.push({ tx_hash: p.txidHex, height: p.hasUnconfirmedParent ? -1 : 0 });
  const unspent: { tx_hash: string; tx_pos: number; height: number; value: number }[] = [];
  const seen = new Set<string>();
  for (const u of utxos) {
    if (mempool?.isSpent(u.txHash, u.vout)) continue;
    const txHash = toHexReversed(u.txHash);
    seen.add(`${txHash}:${u.vout}`);
    unspent.push({ tx_hash: txHash, tx_pos: u.vout, height: u.height, value: u.value });
  }
  // Between a flush and the next mempool refresh a just-confirmed output is in both; count it once.
  for (const u of mempool?.utxos(hx) ?? []) {
    const txHash = toHexReversed(u.txHash);
    if (seen.has(`${txHash}:${u.vout}`)) continue;
    unspent.push({ tx_hash: txHash, tx_pos: u.vout, height: 0, value: u.value });
  }
  return {
    item: text,
    kind,
    ...(script ? { script: toHex(script) } : {}),
    scripthash: toHexReversed(sh),
    history: history.slice(0, limit),
    history_more: history.length > limit,
    utxos: unspent.slice(0, limit),
    utxos_more: unspent.length > limit,
    balance: { confirmed: balance, unconfirmed: mempool?.balanceDelta(hx) ?? 0 },
  };
}

/** One peer in the `peers` answer; times are Unix seconds, null when never. */
export interface PeerRow {
  host: string;
  status: string;
  source: string;
  tcp_port: number | null;
  ssl_port: number | null;
  ip: string;
  protocol: string;
  server_version: string;
  last_good: number | null;
  last_try: number | null;
  tries: number;
  reason: string;
}

/** The `peers` answer: the discovery mode, every peer in the table (good ones first), and a note if idle. */
export function peerRows(view: NodeView): { discovery: string; peers: PeerRow[]; note?: string } {
  const discovery = view.config.peerDiscovery ?? "off";
  const secs = (ms: number) => ms > 0 ? Math.floor(ms / 1000) : null;
  const rank: Record<string, number> = { good: 0, new: 1, failed: 2, bad: 3 };
  const peers = [...(view.serving()?.peers?.records() ?? [])]
    .sort((a, b) => rank[a.status] - rank[b.status] || a.host.localeCompare(b.host))
    .map((p) => ({
      host: p.host,
      status: p.status,
      source: p.source,
      tcp_port: p.tcpPort,
      ssl_port: p.sslPort,
      ip: p.ip,
      protocol: p.protocolMax,
      server_version: p.serverVersion,
      last_good: secs(p.lastGood),
      last_try: secs(p.lastTry),
      tries: p.tries,
      reason: p.reason,
    }));
  if (peers.length > 0) return { discovery, peers };
  const note = discovery === "off"
    ? "peer discovery is off (PEER_DISCOVERY=off)"
    : discovery === "self"
    ? "PEER_DISCOVERY=self: no peers are contacted, only this server is listed"
    : view.serving()
    ? "no peers known yet: this network has no built-in seeds; name some in PEERS"
    : "peer discovery starts once the server has caught up and serves";
  return { discovery, peers, note };
}

// An argument as text for a message: JSON for anything but a string, since String() throws for some objects
// ({"toString": null}) and says nothing useful for others.
function shown(v: unknown): string {
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return "?";
  }
}
