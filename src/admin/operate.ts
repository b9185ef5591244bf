// Starts the operator interfaces of a running node: the admin RPC on each rpc:// service of SERVICES and, with
// METRICS set, the metrics endpoint. main() and the tests use this same function, so what is tested is what
// runs.
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import type { CoulombMetrics } from "../metrics/coulomb.ts";
import { type MetricsServer, startMetricsServer } from "../metrics/http.ts";
import { createAdminCommands } from "./commands.ts";
import type { NodeView } from "./node.ts";
import { type AdminServer, startAdminServer } from "./server.ts";

/** The running operator interfaces. */
export interface Operations {
  /** Bound admin RPC addresses (real ports). */
  readonly rpc: readonly { readonly host: string; readonly port: number }[];
  /** The bound metrics address, when METRICS is set. */
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  /** Closes every listener. */
  close(): Promise<void>;
}

/** Opens the admin RPC (every rpc:// service) and the metrics endpoint (METRICS) over `view`. */
export function startOperations(
  config: Pick<Config, "services" | "metrics">,
  view: NodeView,
  metrics: CoulombMetrics | undefined,
  opts: { compactChunkRows?: number; sampleMs?: number } = {},
): Operations {
  const admins: AdminServer[] = [];
  let metricsServer: MetricsServer | undefined;
  const close = async () => {
    await Promise.all([...admins.map((a) => a.close()), metricsServer?.close()]);
  };
  try {
    const rpcServices = config.services.filter((s) => s.protocol === "rpc");
    if (rpcServices.length > 0) {
      const log = getLog("admin");
      const commands = createAdminCommands({ view, log, compactChunkRows: opts.compactChunkRows });
      for (const s of rpcServices) {
        admins.push(startAdminServer({ host: s.host, port: s.port, commands, log }));
      }
    }
    if (metrics && config.metrics) {
      metrics.attach(view);
      metricsServer = startMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        metrics,
        log: getLog("metrics"),
        sampleMs: opts.sampleMs,
      });
    }
  } catch (err) {
    void close();
    throw err;
  }
  return { rpc: admins.map((a) => a.address), metrics: metricsServer?.address, close };
}
