// Notifications to subscribed sessions. The sync side calls onNewTip after a flush at the tip and onTouched
// with the hashXs a flush or a mempool refresh changed; the notifier recomputes each affected status once,
// and tells exactly the sessions subscribed to it whose last known status differs.
import { toHex } from "../chain/hex.ts";
import type { Log } from "../log.ts";
import { addressStatus, type StatusMempool, type StatusStore } from "./status.ts";
import { type HashXEntry, hashXKey, type SubscriptionIndex } from "./subscriptions.ts";
import { RpcError } from "./types.ts";

// Statuses computed at once by one run of onTouched.
const CONCURRENCY = 16;

/** Dependencies of a Notifier. */
export interface NotifierOptions {
  store: StatusStore;
  mempool: StatusMempool;
  subscriptions: SubscriptionIndex;
  /** The history cap (see historyLimit in status.ts). */
  historyLimit: number;
  log: Pick<Log, "info" | "warn" | "debug">;
}

/** What the notifier last announced, for the headers.subscribe reply. */
export interface TipInfo {
  height: number;
  hex: string;
}

/** Sends blockchain.headers.subscribe and blockchain.scripthash.subscribe notifications. */
export class Notifier {
  private lastTip: TipInfo | undefined;
  private newBlockPending = false;
  /** Touched while the mempool was not settled after a backup: computed by the first run after it is. */
  private deferred = new Map<string, Uint8Array>();
  // Runs of onTouched go one after another so that notifications about one hashX go out in order.
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: NotifierOptions) {}

  /** The last tip announced (undefined before the first). */
  get tip(): TipInfo | undefined {
    return this.lastTip;
  }

  /**
   * Announces a new tip to header subscribers, once per distinct tip (a same-height reorg counts as new).
   * The next onTouched also re-evaluates every subscribed status that had mempool transactions, whose
   * heights may have changed without anything touching them.
   */
  onNewTip(height: number, header: Uint8Array): void {
    const hex = toHex(header);
    if (this.lastTip && this.lastTip.height === height && this.lastTip.hex === hex) return;
    this.lastTip = { height, hex };
    this.newBlockPending = true;
    const params = [{ height, hex }];
    let n = 0;
    for (const s of this.opts.subscriptions.headerSubscribers()) {
      if (s.closed) continue;
      s.notify("blockchain.headers.subscribe", params);
      n++;
    }
    if (n > 0) this.opts.log.debug(`notified ${n} session${n === 1 ? "" : "s"} of height ${height}`);
  }

  /**
   * Recomputes the status of every touched subscribed hashX (and, after a new tip, of those whose last
   * status held mempool transactions) and notifies the sessions whose status changed. Resolves when done.
   */
  onTouched(hashXs: Iterable<Uint8Array>): Promise<void> {
    const touched = [...hashXs];
    const run = this.queue.then(() => this.process(touched));
    this.queue = run.catch(() => {});
    return run;
  }

  private async process(touched: Uint8Array[]): Promise<void> {
    const subs = this.opts.subscriptions;
    subs.invalidate(touched);
    if (this.unsettled()) {
      // After a backup the undone transactions are in neither the database nor the mempool until its next
      // refresh: statuses computed now would tell a wallet its payment vanished (a refresh that began before
      // the backup lands here). The run after that refresh computes them. Not awaited: that refresh waits for
      // this run to end.
      this.defer(touched);
      return;
    }
    if (this.deferred.size > 0) {
      touched = [...this.deferred.values(), ...touched];
      this.deferred.clear();
    }
    const due = new Set<HashXEntry>();
    for (const h of touched) {
      const e = subs.entry(h.subarray(0, 11));
      if (e) due.add(e);
    }
    if (this.newBlockPending) {
      this.newBlockPending = false;
      for (const e of subs.allEntries()) {
        if (e.hasMempool) {
          e.status = undefined;
          e.generation++;
          due.add(e);
        }
      }
    }
    // A few statuses at a time: the database reads overlap, the event loop stays responsive.
    let notified = 0;
    const queue = [...due];
    const worker = async () => {
      for (let e = queue.pop(); e; e = queue.pop()) {
        const n = await this.refresh(e); // not `notified += await`: that reads notified before awaiting
        notified += n;
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
    } catch (err) {
      // A failed read (the database closing, say) must not lose what this run was to tell: the next run does.
      this.defer([...due].map((e) => e.hashX));
      throw err;
    }
    if (notified > 0) {
      this.opts.log.debug(`sent ${notified} script hash notification${notified === 1 ? "" : "s"}`);
    }
  }

  // Keeps hashXs for a later run, each once however often it is touched meanwhile.
  private defer(hashXs: Iterable<Uint8Array>): void {
    for (const h of hashXs) this.deferred.set(hashXKey(h.subarray(0, 11)), h);
  }

  /**
   * True while the mempool lacks what a backup undid. The refresh that brings it back runs the notifier (the
   * follower's onRefresh), and that run computes what was deferred.
   */
  private unsettled(): boolean {
    return this.opts.mempool.behindBackup?.() === true;
  }

  // Computes an entry's status and notifies the sessions that last saw something else; returns how many.
  private async refresh(entry: HashXEntry): Promise<number> {
    if (entry.sessions.size === 0) return 0;
    const generation = entry.generation;
    let status: string | null;
    try {
      const r = await addressStatus(this.opts.store, this.opts.mempool, entry.hashX, this.opts.historyLimit);
      status = r.status;
      if (this.unsettled() || entry.generation !== generation) {
        // A flush or a backup landed while this was computed: the status may mix the states before and after
        // (or lack what the backup undid). The first run after it computes it again.
        this.defer([entry.hashX]);
        return 0;
      }
      entry.status = status;
      entry.hasMempool = r.hasMempool;
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      // ElectrumX's behaviour: a history grown past the cap ends the subscription with a null status.
      this.opts.log.info(`dropping subscriptions to a script hash: ${err.message}`);
      let n = 0;
      for (const [session, sub] of [...entry.sessions]) {
        this.opts.subscriptions.unsubscribe(session, entry.hashX);
        if (!session.closed) {
          session.notify("blockchain.scripthash.subscribe", [sub.alias, null]);
          n++;
        }
      }
      return n;
    }
    let n = 0;
    for (const [session, sub] of entry.sessions) {
      if (session.closed || sub.sent === status) continue;
      sub.sent = status;
      session.notify("blockchain.scripthash.subscribe", [sub.alias, status]);
      n++;
    }
    return n;
  }
}
