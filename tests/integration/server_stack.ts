// The wired Coulomb of main.ts in this process (startIndexer, then startServing at the first tip, exactly as
// main() chains them) over an in-process simnet, plus a client-side barrier ("settle") that tells when the server
// has finished reacting to whatever the test did to the node, without sleeping.
import { reset } from "@logtape/logtape";
import { type Config, loadConfig } from "../../src/config.ts";
import { setupLogging } from "../../src/log.ts";
import { type Indexer, type Serving, startIndexer, startServing } from "../../main.ts";
import type { Simnet } from "../../scripts/simnet/main.ts";
import type { SimNode } from "../../scripts/simnet/node.ts";
import { type LineClient, type Notification, WAIT_MS } from "./server_client.ts";
import {
  type Coin,
  ElectrumModel,
  hex,
  p2wpkh,
  rhex,
  scripthashOf,
  sha256d,
  spendTx,
  statusOf,
  unrhex,
} from "./server_model.ts";
import type { IndexerProcess } from "./harness.ts";

/** A running Coulomb (indexer + Electrum server) over a simnet. */
export interface Stack {
  readonly sim: Simnet;
  readonly node: SimNode;
  readonly config: Config;
  readonly indexer: Indexer;
  readonly serving: Serving;
  /** The TCP port the server listens on. */
  readonly port: number;
  /** Stops the server, the indexer and simnet. */
  close(): Promise<void>;
}

/**
 * Starts Coulomb on `sim` with its database in `db`, serving TCP on an OS-chosen loopback port; resolves once it
 * serves (it has caught up). `env` adds or overrides configuration variables.
 */
export async function startStack(sim: Simnet, db: string, env: Record<string, string> = {}): Promise<Stack> {
  const loaded = loadConfig({
    NET: "regtest",
    DB_DIRECTORY: db,
    DAEMON_URL: sim.url,
    DAEMON_COOKIE: sim.cookiePath,
    DAEMON_POLL_MS: "20",
    SERVICES: "tcp://127.0.0.1:50001",
    PEER_DISCOVERY: "off",
    ...env,
  }, []);
  if ("help" in loaded || "version" in loaded) throw new Error("unexpected configuration result");
  // SERVICES rightly refuses port 0; in-process the listener may take any free port (it reports the real one).
  const config: Config = { ...loaded, services: [{ protocol: "tcp", host: "127.0.0.1", port: 0 }] };
  const ready = Promise.withResolvers<Serving>();
  let serving: Serving | undefined;
  let starting: Promise<void> | undefined;
  // As main(): the first tip starts serving; later tips go to the server's notifications.
  const onTip = (height: number) => {
    if (serving) return serving.onTip(height);
    starting ??= startServing(config, indexer).then((s) => {
      serving = s;
      ready.resolve(s);
    }, (err) => ready.reject(err));
  };
  const indexer: Indexer = await startIndexer(config, { onTip });
  indexer.done.catch((err) => ready.reject(err));
  let s: Serving;
  try {
    s = await ready.promise;
  } catch (err) {
    await indexer.stop().catch(() => {});
    throw err;
  }
  const tcp = s.server.addresses.find((a) => a.protocol === "tcp");
  if (!tcp) throw new Error("no tcp listener");
  return {
    sim,
    node: sim.node,
    config,
    indexer,
    serving: s,
    port: tcp.port,
    async close() {
      await s.stop();
      await indexer.stop();
    },
  };
}

/** The port of "listening for Electrum tcp connections on 127.0.0.1:P" in a child's log. */
export async function childPort(proc: IndexerProcess): Promise<number> {
  const m = await proc.waitFor(/listening for Electrum tcp connections on 127\.0\.0\.1:(\d+)/);
  return Number(m.match[1]);
}

/** Is `n` a scripthash notification for `sh` (optionally with this status)? */
export function isStatus(n: Notification, sh: string, status?: string | null): boolean {
  return n.method === "blockchain.scripthash.subscribe" && n.params[0] === sh &&
    (status === undefined || n.params[1] === status);
}

/**
 * A client-side barrier: settle() returns once the server has sent every notification caused by what the test
 * did to the node so far. It waits for the header notification of the node's tip (when it changed), then twice
 * subscribes the sessions to a fresh script hash, pays it from a pool of coins only this class uses, and waits
 * for the status that payment makes. The server handles mempool refreshes and per-tip work one run after
 * another; the second payment can only be seen by a refresh that starts after the first one's notification
 * went out, whose run comes after the block's. One round is not enough: the first payment may ride on the very
 * refresh that precedes a block's own run. The script hashes are fresh because a subscription that had mempool
 * transactions is re-evaluated by the run after a new tip, which could announce a payment early.
 */
export class Settler {
  /** The pool's script: never subscribed, so paying from it notifies nobody. */
  private readonly pool: Uint8Array;
  private readonly owned = new Set<string>();
  private readonly marks = new Map<LineClient, number>();
  private tipHex = "";
  private tipHeight = -1;
  private next = 0;

  constructor(
    private readonly node: SimNode,
    private readonly client: LineClient,
    private readonly salt: number,
    private readonly followers: readonly LineClient[] = [],
  ) {
    this.pool = p2wpkh(0xa5, salt);
    this.owned.add(scripthashOf(this.pool));
  }

  /** Index into the main client's notifications where the last settle() ended. */
  get mark(): number {
    return this.marks.get(this.client) ?? 0;
  }

  /** Where the last settle() ended in `client`'s notifications (the main client or a follower). */
  markOf(client: LineClient): number {
    return this.marks.get(client) ?? 0;
  }

  /** True for the script hashes this class pays to (tests leave them out of their comparisons). */
  owns(scripthash: string): boolean {
    return this.owned.has(scripthash.toLowerCase());
  }

  /** Subscribes the main client to headers, funds the pool and settles; returns the model afterwards. */
  async start(): Promise<ElectrumModel> {
    const tip = await this.client.request<{ height: number; hex: string }>(
      "blockchain.headers.subscribe",
      [],
    );
    this.tipHeight = tip.height;
    this.tipHex = tip.hex;
    return await this.settle();
  }

  /** Waits until the server has reacted to everything done to the node so far; returns the model of now. */
  async settle(): Promise<ElectrumModel> {
    const height = this.node.height;
    const header = hex(this.node.blockInfo(this.node.tipHash)!.header);
    if (height !== this.tipHeight || header !== this.tipHex) {
      await this.client.waitNotification(
        (n) => n.method === "blockchain.headers.subscribe" && (n.params[0] as { hex: string }).hex === header,
        this.mark,
      );
      this.tipHeight = height;
      this.tipHex = header;
    }
    let coin = this.poolCoin(ElectrumModel.of(this.node));
    for (let round = 0; round < 2; round++) {
      const script = p2wpkh(0x5a, this.salt * 1000 + this.next++);
      const sh = scripthashOf(script);
      this.owned.add(sh);
      const watchers = round === 0 ? [this.client] : [this.client, ...this.followers];
      for (const c of watchers) {
        const status = await c.request("blockchain.scripthash.subscribe", [sh]);
        if (status !== null) throw new Error(`settle: fresh script hash ${sh} has status ${status}`);
      }
      const from = watchers.map((c) => c.notifications.length);
      const raw = spendTx([coin], [{ value: 10_000, script }, {
        value: coin.value - 12_000,
        script: this.pool,
      }]);
      this.node.acceptTx(raw);
      const txid = sha256d(raw);
      // A fresh script's only transaction: height -1 when it spends an unconfirmed coin (§4.3).
      const status = statusOf([{ tx_hash: rhex(txid), height: coin.confirmed ? 0 : -1 }]);
      coin = { txid, vout: 1, value: coin.value - 12_000, confirmed: false };
      for (const [i, c] of watchers.entries()) {
        let n: Notification;
        try {
          n = await c.waitNotification((x) => isStatus(x, sh, status), from[i], WAIT_MS);
        } catch (e) {
          throw new Error(`settle: the payment to ${sh} was not notified: ${(e as Error).message}`);
        }
        if (round === 1) this.marks.set(c, c.notifications.indexOf(n) + 1);
      }
    }
    return ElectrumModel.of(this.node);
  }

  // A pool coin to pay from; funds the pool from a confirmed coin when traffic, mining or a reorg left it
  // nothing.
  private poolCoin(model: ElectrumModel): Coin & { confirmed: boolean } {
    const poolSh = scripthashOf(this.pool);
    const found =
      model.listunspent(poolSh).filter((u) => u.value > 100_000).sort((a, b) => b.value - a.value)[0];
    if (found) {
      return {
        txid: unrhex(found.tx_hash),
        vout: found.tx_pos,
        value: found.value,
        confirmed: model.location(found.tx_hash) !== undefined,
      };
    }
    const c = model.spendableCoin(1_000_000);
    const raw = spendTx([c], [{ value: c.value - 5_000, script: this.pool }]);
    this.node.acceptTx(raw);
    return { txid: sha256d(raw), vout: 0, value: c.value - 5_000, confirmed: false };
  }
}

/** Fails with a clear message if the promise does not settle in `ms` (a bound, not a synchronisation). */
export async function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls simnet's JSON-RPC directly (as bitcoin-cli would): the daemon's own answer, to compare the server's with. */
export async function coreRpc<T>(sim: Simnet, method: string, params: unknown[] = []): Promise<T> {
  const { user, password } = await sim.credentials();
  const res = await fetch(sim.url, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`${user}:${password}`)}`, "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "1.0", id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

/**
 * Coulomb's log lines in this process, for asserting on what the server did to a session that cannot be
 * observed from outside (why it was closed). Logging is process-wide: stop() before the test ends.
 */
export class LogCapture {
  readonly lines: string[] = [];
  private waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

  private constructor() {}

  /** Starts capturing at `level`. */
  static async start(level: "debug" | "info" = "info"): Promise<LogCapture> {
    const capture = new LogCapture();
    await setupLogging(level, { sink: (line) => capture.add(line) });
    return capture;
  }

  /** The first line matching `re` from `from` on; rejects after `ms`. */
  waitFor(re: RegExp, from = 0, ms = WAIT_MS): Promise<string> {
    const found = this.lines.slice(from).find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return within(new Promise((resolve) => this.waiters.push({ re, resolve })), `a log line like ${re}`, ms);
  }

  /** Stops capturing (logging goes back to dropping everything). */
  async stop(): Promise<void> {
    await reset();
  }

  private add(line: string): void {
    this.lines.push(line);
    this.waiters = this.waiters.filter((w) => {
      if (!w.re.test(line)) return true;
      w.resolve(line);
      return false;
    });
  }
}
