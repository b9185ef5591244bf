// Logging goes through @logtape/logtape so that libraries and tests share one configuration, but callers see a
// deliberately tiny surface: a logger per category taking plain strings. Plain strings matter because logtape
// treats "{...}" in a message as a placeholder, and our messages quote JSON, URLs and script text.
import { configure, getConfig, getLogger, type LogLevel, type LogRecord } from "@logtape/logtape";

/** The levels an operator can choose with LOG_LEVEL (ElectrumX's names). */
export type LogLevelName = "debug" | "info" | "warning" | "error";

/** The level names LOG_LEVEL accepts, most verbose first. */
export const LOG_LEVELS: readonly LogLevelName[] = ["debug", "info", "warning", "error"];

/** What every module receives to log with. */
export interface Log {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** True when messages of `level` would be written, so callers can skip building costly debug text. */
  enabled(level: LogLevelName): boolean;
}

/** Options of setupLogging. */
export interface LoggingOptions {
  /** Receives each formatted line (without a newline); defaults to writing to stderr. */
  sink?: (line: string) => void;
}

// Every Coulomb category hangs under this root so that foreign libraries using logtape stay silent.
const ROOT = "coulomb";
const RANK: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warning: 3, error: 4, fatal: 5 };

/** Configures logging once at start-up; calling it again replaces the previous configuration. */
export async function setupLogging(level: LogLevelName, opts: LoggingOptions = {}): Promise<void> {
  const write = opts.sink ?? stderrSink();
  const sink = (record: LogRecord) => write(formatRecord(record));
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: ROOT, sinks: ["main"], lowestLevel: level },
      // Configuring the meta logger ourselves stops logtape printing its own banner to the console, while
      // still surfacing its internal errors (a failing sink) on our stream.
      { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
    ],
  });
}

/** A logger for one subsystem, e.g. getLog("daemon"); usable before setupLogging (it drops everything). */
export function getLog(category: string): Log {
  const logger = getLogger([ROOT, ...category.split(".")]);
  // A one-value tagged template makes logtape keep the string verbatim instead of parsing placeholders.
  const plain = (message: string) => [["", ""] as unknown as TemplateStringsArray, message] as const;
  return {
    debug: (m) => logger.debug(...plain(m)),
    info: (m) => logger.info(...plain(m)),
    warn: (m) => logger.warn(...plain(m)),
    error: (m) => logger.error(...plain(m)),
    enabled: (level) => {
      // The configured level lives in logtape's own state; reading it back keeps this module stateless.
      const root = getConfig()?.loggers.find((l) => l.category === ROOT);
      return root?.lowestLevel != null && RANK[level] >= RANK[root.lowestLevel];
    },
  };
}

/** Formats one record as `YYYY-MM-DD HH:MM:SS.mmm LEVEL category message` (UTC). */
export function formatRecord(record: LogRecord): string {
  const category = record.category[0] === ROOT ? record.category.slice(1) : record.category;
  return `${formatTimestamp(record.timestamp)} ${record.level.toUpperCase()} ${category.join(".")} ${
    renderMessage(record.message)
  }`;
}

/** `YYYY-MM-DD HH:MM:SS.mmm` in UTC: servers log in UTC so lines from several hosts line up. */
export function formatTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

function renderMessage(parts: readonly unknown[]): string {
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    out += typeof p === "string" ? p : i % 2 === 1 ? Deno.inspect(p) : String(p);
  }
  // One event, one line: an embedded newline would let a peer's data forge log lines.
  return out.includes("\n") ? out.replaceAll("\r", "").replaceAll("\n", "\\n") : out;
}

function stderrSink(): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    const bytes = encoder.encode(line + "\n");
    let off = 0;
    while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
  };
}

/** Seconds as ElectrumX prints uptimes and ETAs: "1d 02h 03m 04s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d}d ${pad(h)}h ${pad(m)}m ${pad(s % 60)}s`;
}

/** An integer with thousands separators: 1234567 → "1,234,567" (locale-independent). */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const neg = n < 0;
  const digits = String(Math.trunc(Math.abs(n)));
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += ",";
    out += digits[i];
  }
  return neg ? "-" + out : out;
}
