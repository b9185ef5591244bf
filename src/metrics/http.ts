// The METRICS listener: Prometheus text at /metrics, the status page at / and its data at /status.json. It
// also drives the sampling behind them (progress history, database size) while it runs. Read-only: nothing
// here can change the server, but it does reveal load and sizes, so METRICS should stay on loopback or behind
// a firewall.
import type { Log } from "../log.ts";
import { hostPort } from "../host_port.ts";
import type { CoulombMetrics } from "./coulomb.ts";
import { statusPage } from "./page.ts";
import { errorDetail, errorText } from "../error_text.ts";

/** What startMetricsServer needs. */
export interface MetricsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly metrics: CoulombMetrics;
  readonly log: Log;
  /** Sampling period of the progress history and database size (ms). */
  readonly sampleMs?: number;
}

/** A running metrics listener. */
export interface MetricsServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: { readonly host: string; readonly port: number };
  /** Stops sampling and listening. */
  close(): Promise<void>;
}

const PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Serves the metrics endpoints on host:port; throws if the address cannot be bound. */
export function startMetricsServer(opts: MetricsServerOptions): MetricsServer {
  const { metrics, log } = opts;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: opts.host, port: opts.port, onListen: () => {}, onError: (e) => internalError(log, e) },
      (req) => route(req, metrics),
    );
  } catch (e) {
    const where = hostPort(opts.host, opts.port);
    throw new Error(
      `cannot listen for METRICS on http://${where}: ${errorText(e)}`,
    );
  }
  const address = { host: server.addr.hostname, port: server.addr.port };
  const shown = hostPort(address.host, address.port);
  log.info(`serving metrics at http://${shown}/metrics and the status page at http://${shown}/`);

  let sizing: Promise<void> | undefined;
  const sample = () => {
    metrics.sampleProgress();
    // A database of hundreds of GB takes a moment to walk; never run two walks at once.
    sizing ??= metrics.sampleDbSize().catch((e) => log.debug(`measuring the database failed: ${String(e)}`))
      .finally(() => sizing = undefined);
  };
  sample();
  const timer = setInterval(sample, opts.sampleMs ?? metrics.history.intervalMs);

  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        await server.shutdown();
        await sizing;
      })();
      return closing;
    },
  };
}

function route(req: Request, metrics: CoulombMetrics): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("only GET and HEAD\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const path = new URL(req.url).pathname;
  switch (path) {
    case "/metrics":
      return new Response(metrics.registry.render(), {
        headers: { "content-type": PROMETHEUS_TYPE, "cache-control": "no-store" },
      });
    case "/status.json": {
      const status = metrics.status();
      if (!status) return new Response("starting\n", { status: 503, headers: { "retry-after": "1" } });
      return new Response(JSON.stringify(status), {
        headers: { "content-type": "application/json", "cache-control": "no-store" },
      });
    }
    case "/":
    case "/index.html": {
      const nonce = crypto.randomUUID().replaceAll("-", "");
      return new Response(statusPage(metrics.status(), nonce), {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy":
            `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; ` +
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
        },
      });
    }
    default:
      return new Response("not found: try /, /metrics or /status.json\n", { status: 404 });
  }
}

function internalError(log: Log, e: unknown): Response {
  log.error(`metrics endpoint failed: ${errorDetail(e)}`);
  return new Response("internal error\n", { status: 500 });
}
