// The status page at "/": one self-contained HTML document (no external assets, so it works on an air-gapped
// host and leaks nothing to third parties). The first snapshot is embedded as JSON so the page renders without
// waiting for a request; after that it polls /status.json. The sync-progress chart is inline SVG drawn from the
// snapshot's history. The script runs under a per-response CSP nonce; nothing else may execute.
import type { StatusJson } from "./coulomb.ts";

/** How often the page polls /status.json (ms). */
export const PAGE_POLL_MS = 5000;

const STYLE = `
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:16px;color:#1d2733;background:#f6f8fa}
h1{font-size:22px;margin:0 0 4px}h1 small{font-weight:normal;color:#5b6875;font-size:14px}
h2{font-size:16px;margin:20px 0 6px}
.state{margin:0 0 10px;color:#5b6875}.state b{color:#1d2733}
.bar{height:10px;background:#dde3ea;border-radius:5px;overflow:hidden}.bar div{height:100%;background:#2f81f7;width:0}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:14px 0 0}
dl div{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:8px 10px}
dt{font-size:12px;color:#5b6875;text-transform:uppercase;letter-spacing:.04em}dd{margin:2px 0 0;font-size:18px}
svg{width:100%;height:auto;background:#fff;border:1px solid #dde3ea;border-radius:6px}
.foot{color:#5b6875;font-size:13px}.err{color:#b42318}
`;

// Kept small and dependency-free; numbers are formatted the same way the CLI formats them.
const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
const count = (n) => String(Math.trunc(Number(n) || 0)).replace(/\\B(?=(\\d{3})+(?!\\d))/g, ",");
const bytes = (n) => {
  n = Number(n) || 0;
  if (n < 1000) return Math.round(n) + " B";
  const u = ["kB", "MB", "GB", "TB"]; let i = 0; n /= 1000;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) + " " + u[i];
};
const set = (id, text, value) => {
  const el = $(id); el.textContent = text;
  if (value !== undefined) el.dataset.value = String(value);
};
const NS = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function chart(history) {
  const svg = $("chart"); while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 600, H = 220, L = 70, R = 10, T = 10, B = 30;
  svg.dataset.points = String(history.length);
  if (history.length === 0) { svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no samples yet")); return; }
  const t0 = history[0][0], t1 = Math.max(history[history.length - 1][0], t0 + 1);
  let lo = Infinity, hi = -Infinity;
  for (const [, h, d] of history) { lo = Math.min(lo, h, d < 0 ? h : d); hi = Math.max(hi, h, d); }
  if (hi <= lo) { hi = lo + 1; }
  const x = (t) => (L + (t - t0) / (t1 - t0) * (W - L - R)).toFixed(1);
  const y = (v) => (T + (1 - (v - lo) / (hi - lo)) * (H - T - B)).toFixed(1);
  svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#8c959f" }));
  svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#8c959f" }));
  svg.appendChild(el("text", { x: L - 6, y: T + 10, "text-anchor": "end", "font-size": 12, id: "chart-max" }, count(hi)));
  svg.appendChild(el("text", { x: L - 6, y: H - B, "text-anchor": "end", "font-size": 12, id: "chart-min" }, count(lo)));
  const mins = Math.round((t1 - t0) / 60000);
  svg.appendChild(el("text", { x: W - R, y: H - 8, "text-anchor": "end", "font-size": 12 }, mins >= 1 ? "last " + mins + " min" : "last minute"));
  const daemon = history.filter((p) => p[2] >= 0).map((p) => x(p[0]) + "," + y(p[2])).join(" ");
  if (daemon) svg.appendChild(el("polyline", { points: daemon, fill: "none", stroke: "#8c959f", "stroke-dasharray": "4 3", id: "chart-daemon" }));
  const ours = history.map((p) => x(p[0]) + "," + y(p[1])).join(" ");
  svg.appendChild(el("polyline", { points: ours, fill: "none", stroke: "#2f81f7", "stroke-width": 2, id: "chart-height" }));
}
function render(s) {
  set("version", s.version + " · " + s.network);
  set("sync_state", s.sync_state);
  const pct = s.daemon_height > 0 ? Math.min(100, Math.max(0, s.indexed_height / s.daemon_height * 100)) : 0;
  $("progress").style.width = pct.toFixed(1) + "%";
  set("percent", pct.toFixed(pct >= 99.95 || pct === 0 ? 0 : 2) + "%", pct.toFixed(2));
  set("db_height", count(s.db_height), s.db_height);
  set("indexed_height", count(s.indexed_height), s.indexed_height);
  set("daemon_height", s.daemon_height < 0 ? "unknown" : count(s.daemon_height), s.daemon_height);
  set("rate", s.blocks_per_sec.toFixed(1) + " blocks/s · " + count(s.txs_per_sec) + " tx/s", s.txs_per_sec);
  set("sessions", count(s.sessions), s.sessions);
  set("subscriptions", count(s.subscriptions), s.subscriptions);
  set("mempool", count(s.mempool_txs) + " txs · " + bytes(s.mempool_vsize).replace("B", "vB"), s.mempool_txs);
  set("requests", count(s.requests_total) + " (" + count(s.request_errors_total) + " errors)", s.requests_total);
  set("cache", bytes(s.cache_bytes), s.cache_bytes);
  set("db_size", bytes(s.db_size), s.db_size);
  set("tx_count", count(s.tx_count), s.tx_count);
  set("uptime", s.uptime, s.uptime_seconds);
  set("updated", new Date(s.time).toISOString().replace("T", " ").slice(0, 19) + " UTC");
  $("error").textContent = "";
  chart(s.history);
}
const initial = JSON.parse($("initial").textContent);
if (initial) render(initial);
setInterval(() => {
  fetch("/status.json", { cache: "no-store" })
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(render)
    .catch((e) => { $("error").textContent = "cannot reach the server: " + e.message; });
}, ${PAGE_POLL_MS});
`;

const TILES: [string, string][] = [
  ["db_height", "Height (flushed)"],
  ["indexed_height", "Indexed height"],
  ["daemon_height", "Daemon height"],
  ["percent", "Synced"],
  ["rate", "Sync rate (1 min)"],
  ["tx_count", "Transactions"],
  ["sessions", "Sessions"],
  ["subscriptions", "Subscriptions"],
  ["mempool", "Mempool"],
  ["requests", "Requests"],
  ["cache", "Unflushed cache"],
  ["db_size", "Database size"],
  ["uptime", "Uptime"],
];

/** The page, with `initial` embedded (null before the node exists) and its script bound to `nonce`. */
export function statusPage(initial: StatusJson | undefined, nonce: string): string {
  // "<" escaped so that no string in the data can close the script element.
  const data = JSON.stringify(initial ?? null).replaceAll("<", "\\u003c");
  const tiles = TILES.map(([id, label]) => `<div><dt>${label}</dt><dd id="${id}">–</dd></div>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Coulomb status</title><style nonce="${nonce}">${STYLE}</style></head>
<body>
<h1>Coulomb <small id="version"></small></h1>
<p class="state">State: <b id="sync_state">loading…</b> <span id="error" class="err"></span></p>
<div class="bar"><div id="progress"></div></div>
<dl>${tiles}</dl>
<h2>Sync progress</h2>
<svg id="chart" viewBox="0 0 600 220" role="img" aria-label="indexed height (solid) and daemon height (dashed) over time"></svg>
<p class="foot">Updated <span id="updated">–</span> · <a href="/metrics">/metrics</a> · <a href="/status.json">/status.json</a></p>
<script type="application/json" id="initial">${data}</script>
<script nonce="${nonce}">${SCRIPT}</script>
</body></html>
`;
}
