// simnet's command line: generate (or load) a deterministic regtest chain and serve it over Bitcoin Core's
// JSON-RPC and REST interfaces, so the indexer, the demo and the benchmarks have a bitcoind to talk to.
// Also usable in-process through startSimnet().
import { parseArgs } from "node:util";
import { SimNode } from "./node.ts";
import { controlMethods, coreMethods, restProvider } from "./methods.ts";
import { faultMethods, newFaults, type RpcServer, startRpcServer } from "./rpc_server.ts";
import type { RpcMethodTable } from "./rpc_types.ts";
import { errorText } from "../../src/error_text.ts";

/** What to simulate and how to serve it. */
export interface SimnetOptions {
  /** Blocks to generate on top of genesis. */
  blocks: number;
  /** PRNG seed: the same seed and sizes give a byte-identical chain. */
  seed: string;
  /** RPC port; 0 lets the OS choose (see Simnet.port). */
  port: number;
  /** Where the chain cache and (with cookie auth) `.cookie` live. */
  datadir: string;
  /** Approximate total transaction count; the generator's default when absent. */
  txs?: number;
  /** Fixed credentials; without them a cookie is written into `datadir`, as bitcoind does. */
  rpcuser?: string;
  rpcpassword?: string;
  /** Serve confirmed transactions by txid alone (Core's -txindex). */
  txindex?: boolean;
  /** Enable `/rest/...` (Core's -rest=1); default true. */
  rest?: boolean;
  /** Address to bind; default 127.0.0.1. */
  hostname?: string;
}

/** A running simnet. */
export interface Simnet {
  node: SimNode;
  server: RpcServer;
  /** `http://127.0.0.1:<port>`, the JSON-RPC endpoint (REST under `/rest/`). */
  url: string;
  port: number;
  /** The cookie file, when cookie auth is used. */
  cookiePath?: string;
  /** Current credentials (re-read from the cookie, which changes on restart/rotation). */
  credentials(): Promise<{ user: string; password: string }>;
  /** Stops serving and deletes the cookie. */
  close(): Promise<void>;
}

/** Opens (or generates) the chain and starts the RPC/REST server. */
export async function startSimnet(opts: SimnetOptions): Promise<Simnet> {
  if ((opts.rpcuser === undefined) !== (opts.rpcpassword === undefined)) {
    throw new Error("rpcuser and rpcpassword must be given together (or neither, for cookie auth)");
  }
  await Deno.mkdir(opts.datadir, { recursive: true });
  const node = await SimNode.open({
    datadir: opts.datadir,
    seed: opts.seed,
    blocks: opts.blocks,
    txs: opts.txs,
    txindex: opts.txindex ?? false,
  });
  const startedAt = Date.now();
  const faults = newFaults();
  const core = coreMethods(node, { startedAt });
  const methods: RpcMethodTable = {
    ...core,
    ...controlMethods(node),
    ...faultMethods(faults),
  };
  const hostname = opts.hostname ?? "127.0.0.1";
  const server = await startRpcServer({
    hostname,
    port: opts.port,
    methods,
    rest: opts.rest === false ? undefined : restProvider(node, () => core.getblockchaininfo.handler([])),
    auth: opts.rpcuser !== undefined
      ? { user: opts.rpcuser, password: opts.rpcpassword! }
      : { cookieDir: opts.datadir },
    faults,
  });
  const url = `http://${hostname}:${server.port}`;
  const fixed = opts.rpcuser !== undefined ? { user: opts.rpcuser, password: opts.rpcpassword! } : null;
  return {
    node,
    server,
    url,
    port: server.port,
    cookiePath: server.cookiePath,
    async credentials() {
      if (fixed !== null) return fixed;
      const text = await Deno.readTextFile(server.cookiePath!);
      const colon = text.indexOf(":");
      return { user: text.slice(0, colon), password: text.slice(colon + 1) };
    },
    close: () => server.close(),
  };
}

const HELP = `Usage: deno task simnet [options]

Serves a deterministic simulated Bitcoin Core (regtest) over JSON-RPC and REST.

  --blocks N          blocks to generate on top of genesis (default 200)
  --seed S            chain seed (default "coulomb")
  --txs N             approximate total transactions (default: the generator's)
  --port P            RPC port, 0 for any free one (default 18443)
  --datadir DIR       chain cache and .cookie location (default .simnet)
  --rpcuser U         fixed credentials (with --rpcpassword); otherwise cookie auth
  --rpcpassword W
  --txindex           serve confirmed transactions by txid (Core's -txindex)
  --no-rest           disable /rest/ (Core's -rest=0)
  --help              this text

Prints "simnet ready height=H rpc=http://127.0.0.1:P" once serving. SIGINT/SIGTERM stop it cleanly.`;

/** Parses the command line into options; throws Error with a user-facing message on bad input. */
export function parseCommandLine(argv: string[]): SimnetOptions | "help" {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      blocks: { type: "string" },
      seed: { type: "string" },
      txs: { type: "string" },
      port: { type: "string" },
      datadir: { type: "string" },
      rpcuser: { type: "string" },
      rpcpassword: { type: "string" },
      txindex: { type: "boolean" },
      "no-rest": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length > 0) throw new Error(`unexpected argument '${positionals[0]}' (see --help)`);
  const int = (name: string, text: string | undefined, fallback: number | undefined, max: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n > max) {
      throw new Error(`--${name} must be an integer between 0 and ${max}, got '${text}'`);
    }
    return n;
  };
  if ((values.rpcuser === undefined) !== (values.rpcpassword === undefined)) {
    throw new Error("--rpcuser and --rpcpassword must be given together (or neither, for cookie auth)");
  }
  const seed = values.seed ?? "coulomb";
  if (seed.length === 0) throw new Error("--seed must not be empty");
  return {
    blocks: int("blocks", values.blocks, 200, 10_000_000)!,
    seed,
    txs: int("txs", values.txs, undefined, 1_000_000_000),
    port: int("port", values.port, 18443, 65535)!,
    datadir: values.datadir ?? ".simnet",
    rpcuser: values.rpcuser,
    rpcpassword: values.rpcpassword,
    txindex: values.txindex ?? false,
    rest: !values["no-rest"],
  };
}

async function main(): Promise<number> {
  let opts: SimnetOptions | "help";
  try {
    opts = parseCommandLine(Deno.args);
  } catch (e) {
    console.error(`simnet: ${errorText(e)}`);
    return 2;
  }
  if (opts === "help") {
    console.log(HELP);
    return 0;
  }
  let simnet: Simnet;
  try {
    simnet = await startSimnet(opts);
  } catch (e) {
    console.error(`simnet: cannot start: ${errorText(e)}`);
    return 1;
  }
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(`simnet ready height=${simnet.node.height} rpc=${simnet.url}`);
  await stopped.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await simnet.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
