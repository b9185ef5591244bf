// Readable renderings of admin command results for `coulomb rpc`: aligned tables and key/value lists.
// Unknown shapes fall back to indented JSON, so a newer server never leaves an older CLI printing nothing.
import { formatCount, formatDuration } from "../log.ts";

/** A table: header row and data rows, each cell already a string; numeric-looking columns align right. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const right = headers.map((_, i) =>
    rows.length > 0 && rows.every((r) => /^[-+]?[\d,.]+( ?[kMG]?B)?$|^$/.test(r[i] ?? ""))
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Bytes as "512 B", "1.5 kB", "20.3 MB", "4.10 GB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1000) return `${Math.max(0, Math.round(n || 0))} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1000, u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** Satoshis as BTC with 8 decimals: 150000000 → "1.50000000". */
export function formatBtc(sats: number): string {
  const neg = sats < 0;
  const abs = Math.abs(Math.trunc(sats));
  const whole = Math.floor(abs / 1e8);
  const frac = String(abs % 1e8).padStart(8, "0");
  return `${neg ? "-" : ""}${formatCount(whole)}.${frac}`;
}

type Row = Record<string, unknown>;

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

// Text from wallets and peers (client names, a peer's answers) is shown as it came, but never as control codes:
// an escape sequence in a client name would reach the operator's terminal (clear it, forge table rows).
function str(v: unknown): string {
  return v === null || v === undefined ? "" : withoutControls(String(v));
}

/** `s` with every control character (C0, DEL, C1) replaced by "?". */
export function withoutControls(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

function cost(v: unknown): string {
  return num(v).toFixed(1);
}

/** getinfo as an aligned key/value list. */
export function formatInfo(info: Row): string {
  const pairs: [string, string][] = [
    ["version", str(info.version)],
    ["network", str(info.network)],
    ["pid", str(info.pid)],
    ["uptime", str(info.uptime)],
    ["sync state", str(info.sync_state)],
    ["db height", formatCount(num(info.db_height))],
    ["indexed height", formatCount(num(info.indexed_height))],
    ["daemon height", formatCount(num(info.daemon_height))],
    ["tx count", formatCount(num(info.tx_count))],
    ["flush count", formatCount(num(info.flush_count))],
    ["db size", formatBytes(num(info.db_size))],
    ["db directory", str(info.db_directory)],
    [
      "indexed since start",
      `${formatCount(num(info.blocks_indexed))} blocks, ${formatCount(num(info.txs_indexed))} txs`,
    ],
    ["cache", `${formatBytes(num(info.cache_bytes))}, ${formatCount(num(info.cache_entries))} entries`],
    ["sessions", `${formatCount(num(info.sessions))} (${formatCount(num(info.groups))} groups)`],
    ["session errors", formatCount(num(info.session_errors))],
    ["pending requests", formatCount(num(info.pending_requests))],
    [
      "subscriptions",
      `${formatCount(num(info.subscriptions))} (${formatCount(num(info.subscribed_scripts))} scripts)`,
    ],
    [
      "mempool",
      `${formatCount(num(info.mempool_txs))} txs, ${formatCount(num(info.mempool_vsize))} vB` +
      (num(info.mempool_pending) > 0 ? `, ${formatCount(num(info.mempool_pending))} waiting for inputs` : ""),
    ],
  ];
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${k.padEnd(width)}${v}`).join("\n");
}

/** The sessions table (ElectrumX's columns where Coulomb has them). */
export function formatSessions(rows: Row[]): string {
  if (rows.length === 0) return "no sessions";
  return table(
    [
      "ID",
      "Proto",
      "Client",
      "Version",
      "Cost",
      "GroupCost",
      "Reqs",
      "Errs",
      "Pend",
      "Subs",
      "Recv",
      "Sent",
      "Age",
      "Peer",
    ],
    rows.map((r) => [
      str(r.id),
      str(r.protocol),
      str(r.client).slice(0, 24),
      str(r.version),
      cost(r.cost),
      cost(r.group_cost),
      formatCount(num(r.requests)),
      formatCount(num(r.errors)),
      formatCount(num(r.pending)),
      formatCount(num(r.subs)),
      formatBytes(num(r.recv_bytes)),
      formatBytes(num(r.send_bytes)),
      shortDuration(num(r.age_seconds)),
      str(r.remote),
    ]),
  ) + `\n${rows.length} session${rows.length === 1 ? "" : "s"}`;
}

/** The peers table; `nowMs` turns the check times into ages. */
export function formatPeers(rows: Row[], nowMs: number): string {
  const ago = (v: unknown) =>
    typeof v === "number" ? `${shortDuration(Math.max(0, nowMs / 1000 - v))} ago` : "never";
  const ports = (r: Row) =>
    [r.ssl_port != null ? `s${num(r.ssl_port)}` : "", r.tcp_port != null ? `t${num(r.tcp_port)}` : ""]
      .filter(Boolean).join(" ");
  const good = rows.filter((r) => r.status === "good").length;
  const failing = rows.filter((r) => r.status !== "good" && str(r.reason));
  const lines = [
    table(
      ["Host", "Status", "Ports", "Version", "Last good", "Last try", "Tries", "Source"],
      rows.map((r) => [
        str(r.host),
        str(r.status),
        ports(r),
        str(r.protocol),
        ago(r.last_good),
        ago(r.last_try),
        String(num(r.tries)),
        str(r.source),
      ]),
    ),
    `${rows.length} peer${rows.length === 1 ? "" : "s"}, ${good} good`,
  ];
  for (const r of failing) lines.push(`${str(r.host)}: ${str(r.reason)}`);
  return lines.join("\n");
}

/** The groups table. */
export function formatGroups(result: Row): string {
  const groups = Array.isArray(result.groups) ? result.groups as Row[] : [];
  const exempt = num(result.exempt_sessions);
  const lines: string[] = [];
  if (groups.length === 0) {
    lines.push("no groups");
  } else {
    lines.push(table(
      ["Group", "Sessions", "Cost", "Retained", "Reqs", "Errs", "Subs", "Recv", "Sent"],
      groups.map((g) => [
        str(g.name),
        formatCount(num(g.sessions)),
        cost(g.cost),
        cost(g.retained),
        formatCount(num(g.requests)),
        formatCount(num(g.errors)),
        formatCount(num(g.subs)),
        formatBytes(num(g.recv_bytes)),
        formatBytes(num(g.send_bytes)),
      ]),
    ));
  }
  if (exempt > 0) {
    lines.push(
      `${exempt} session${exempt === 1 ? " is" : "s are"} exempt from grouping (loopback or private address)`,
    );
  }
  return lines.join("\n");
}

/** query results in ElectrumX's line format. */
export function formatQuery(results: Row[]): string {
  const lines: string[] = [];
  for (const r of results) {
    if (lines.length) lines.push("");
    if (r.error) {
      lines.push(`${str(r.item)}: ${str(r.error)}`);
      continue;
    }
    if (r.kind === "address") lines.push(`Address: ${str(r.item)}`);
    if (r.script) lines.push(`Script: ${str(r.script)}`);
    lines.push(`Script hash: ${str(r.scripthash)}`);
    const history = Array.isArray(r.history) ? r.history as Row[] : [];
    history.forEach((h, i) => {
      const height = num(h.height);
      const where = height > 0
        ? `height ${formatCount(height)}`
        : height === 0
        ? "mempool"
        : "mempool (unconfirmed parent)";
      lines.push(`History #${i + 1}: ${where} tx_hash ${str(h.tx_hash)}`);
    });
    if (history.length === 0) lines.push("No history");
    if (r.history_more) {
      lines.push(`… more history beyond ${history.length} entries (raise the limit with --limit)`);
    }
    const utxos = Array.isArray(r.utxos) ? r.utxos as Row[] : [];
    utxos.forEach((u, i) => {
      const height = num(u.height);
      lines.push(
        `UTXO #${i + 1}: tx_hash ${str(u.tx_hash)} tx_pos ${num(u.tx_pos)} ` +
          `${height > 0 ? `height ${formatCount(height)}` : "mempool"} value ${formatCount(num(u.value))}`,
      );
    });
    if (utxos.length === 0) lines.push("No UTXOs");
    if (r.utxos_more) lines.push(`… more UTXOs beyond ${utxos.length} (raise the limit with --limit)`);
    const b = (r.balance ?? {}) as Row;
    const unconfirmed = num(b.unconfirmed);
    lines.push(
      `Balance: ${formatBtc(num(b.confirmed))} BTC` +
        (unconfirmed !== 0
          ? ` (unconfirmed ${unconfirmed > 0 ? "+" : ""}${formatBtc(unconfirmed)} BTC)`
          : ""),
    );
  }
  return lines.join("\n");
}

/** compact_history's totals. */
export function formatCompaction(r: Row): string {
  return `history rows: ${formatCount(num(r.rows_before))} → ${formatCount(num(r.rows_after))} ` +
    `(${formatCount(num(r.rows_deleted))} merged away, ${formatCount(num(r.rows_written))} rewritten) ` +
    `in ${num(r.seconds)} s, ${formatCount(num(r.chunks))} chunk${num(r.chunks) === 1 ? "" : "s"}`;
}

/** Renders a command's result for people; falls back to indented JSON for shapes it does not know. */
export function formatResult(command: string, result: unknown): string {
  const isRow = typeof result === "object" && result !== null && !Array.isArray(result);
  const rows = Array.isArray(result) && result.every((r) => typeof r === "object" && r !== null);
  switch (command) {
    case "getinfo":
      if (isRow) return formatInfo(result as Row);
      break;
    case "sessions":
      if (Array.isArray(result) && rows) return formatSessions(result as Row[]);
      break;
    case "groups":
      if (isRow) return formatGroups(result as Row);
      break;
    case "peers":
      if (isRow) {
        const peers = (result as Row).peers;
        const note = str((result as Row).note);
        if (Array.isArray(peers) && peers.length === 0) return `no peers${note ? `: ${note}` : ""}`;
        if (Array.isArray(peers)) return formatPeers(peers as Row[], Date.now());
      }
      break;
    case "query":
      if (Array.isArray(result) && rows) return formatQuery(result as Row[]);
      break;
    case "compact_history":
      if (isRow) return formatCompaction(result as Row);
      break;
    case "help":
      if (isRow) return Object.values(result as Row).map(str).join("\n");
      break;
  }
  if (typeof result === "string") return result;
  if (Array.isArray(result) && result.every((r) => typeof r === "string")) return result.join("\n");
  return JSON.stringify(result, null, 2);
}

function shortDuration(seconds: number): string {
  // "0d 01h 02m 03s" → "01h02m03s"-like compactness for a table column.
  const [d, h, m, s] = formatDuration(seconds).split(" ");
  if (d !== "0d") return `${d}${h}`;
  if (h !== "00h") return `${h}${m}`;
  return `${m}${s}`;
}
