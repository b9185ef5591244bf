// The embedded default: a simnet bitcoind in this process, and Coulomb syncing it into a local LevelDB
// directory, following new blocks until Ctrl-C. It needs nothing but Deno: the README's run command.
import { isAbsolute, relative, resolve, sep as SEP } from "node:path";
import { parseArgs } from "node:util";
import { main } from "../main.ts";
import { startSimnet } from "./simnet/main.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    blocks: { type: "string", default: "1000" },
    seed: { type: "string", default: "coulomb-demo" },
    txs: { type: "string" },
    datadir: { type: "string", default: ".simnet/demo" },
    "db-dir": { type: "string", default: ".data/demo" },
    "mine-every": { type: "string", default: "30" },
    help: { type: "boolean", short: "h" },
  },
});
if (args.values.help) {
  console.log(
    `deno task demo [--blocks N] [--txs N] [--seed S] [--datadir DIR] [--db-dir DIR] [--mine-every SECONDS]

Starts simnet (a simulated regtest bitcoind) with a generated chain, then runs Coulomb against it with
DB_DIRECTORY=--db-dir. simnet mines a block with its mempool traffic every --mine-every seconds (0 = never),
so the indexer has a moving tip to follow. Ctrl-C flushes and exits. The demo task may write only under
.simnet/ and .data/ (its permissions), so --datadir and --db-dir must be there.`,
  );
  Deno.exit(0);
}

// Refused here, with the reason, rather than by the sandbox halfway through starting.
const places = [
  { flag: "--datadir", dir: args.values.datadir!, root: ".simnet" },
  { flag: "--db-dir", dir: args.values["db-dir"]!, root: ".data" },
];
for (const { flag, dir, root } of places) {
  const rel = relative(resolve(root), resolve(dir));
  if (rel.split(SEP)[0] === ".." || isAbsolute(rel)) {
    console.error(
      `demo: ${flag} must be a directory under ${root}/ (the demo task may write only there), got '${dir}'`,
    );
    Deno.exit(2);
  }
}

const simnet = await startSimnet({
  blocks: Number(args.values.blocks),
  seed: args.values.seed!,
  txs: args.values.txs === undefined ? undefined : Number(args.values.txs),
  port: 0,
  datadir: args.values.datadir!,
});
console.error(`simnet serving ${simnet.node.height} blocks at ${simnet.url}`);

const mineEvery = Number(args.values["mine-every"]);
const miner = mineEvery > 0
  ? setInterval(() => {
    simnet.node.addMempoolTraffic(20);
    simnet.node.mine(1, { includeMempool: true });
  }, mineEvery * 1000)
  : undefined;

const env: Record<string, string | undefined> = {
  NET: "regtest",
  DB_DIRECTORY: args.values["db-dir"],
  DAEMON_URL: simnet.url,
  DAEMON_COOKIE: simnet.cookiePath,
  DAEMON_POLL_MS: "1000",
  LOG_LEVEL: "info",
};
const code = await main([], env);
if (miner !== undefined) clearInterval(miner);
await simnet.close();
Deno.exit(code);
