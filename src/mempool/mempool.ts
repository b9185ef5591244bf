// Coulomb's copy of bitcoind's mempool, as the Electrum methods need it: which unconfirmed transactions touch a
// hashX, what they add to and take from its balance, which of its coins they create or spend, and the fee
// histogram. One refresh asks bitcoind for the txid list only; transactions are fetched once, when they first
// appear, and their prevouts resolved once (against the mempool, then the database). All fetching and
// resolving happens before anything visible changes; the changes are then applied in one synchronous step,
// so a reader never sees half a refresh.
import { isUnindexed } from "../chain/script.ts";
import { decodeTransaction, type Transaction } from "../chain/tx.ts";
import { fromHex, fromHexReversed, toHex, toHexReversed } from "../chain/hex.ts";
import { ChainFormatError } from "../chain/errors.ts";
import type { Settled } from "../daemon/daemon.ts";
import { isDaemonClosed } from "../daemon/errors.ts";
import { errorText } from "../error_text.ts";
import type { Log } from "../log.ts";
import { hashXInto } from "../sync/hashx.ts";
import { addToRateMap, compactHistogram } from "./histogram.ts";

/** Core's RPC_INVALID_ADDRESS_OR_KEY: for getrawtransaction, the tx left the mempool after getrawmempool. */
const RPC_NOT_FOUND = -5;
const HASHX_LEN = 11;
/** A packed outpoint of confirmed()'s `spends`: txid, then a u32 vout. */
const OUTPOINT_LEN = 36;
const TXID_HEX = /^[0-9a-f]{64}$/;

/** A mempool transaction as history and status need it. */
export interface MempoolTxInfo {
  /** Internal byte order; shared with the mempool, so read-only. */
  txid: Uint8Array;
  /** Display-order hex of txid (what goes on the wire and into status strings). */
  txidHex: string;
  /** Satoshis. */
  fee: number;
  vsize: number;
  /** Spends an output of another mempool tx: height -1 instead of 0. */
  hasUnconfirmedParent: boolean;
}

/** A mempool output paying a hashX that no mempool tx spends. */
export interface MempoolUtxo {
  /** Internal byte order; shared with the mempool, so read-only. */
  txHash: Uint8Array;
  vout: number;
  value: number;
}

/** The bitcoind calls the mempool needs (src/daemon's Daemon provides them). */
export interface MempoolDaemon {
  call<T>(method: string, params?: unknown[]): Promise<T>;
  batchSettled<T>(method: string, paramsList: unknown[][]): Promise<Settled<T>[]>;
}

/** The database reads the mempool needs (src/db's Store provides them). */
export interface MempoolStore {
  /** Replaced by a new object on every flush or backup, which is how the mempool notices them. */
  readonly state: { readonly height: number; readonly tipHash: Uint8Array };
  lookupUtxo(txid: Uint8Array, vout: number): Promise<{ hashX: Uint8Array; value: number } | undefined>;
}

/** Dependencies and tuning of a Mempool. */
export interface MempoolOptions {
  daemon: MempoolDaemon;
  store: MempoolStore;
  log: Log;
  /** Named in log lines. */
  network?: { readonly name: string };
  /** getrawtransaction calls per JSON-RPC batch (default 100). */
  batchSize?: number;
  /** Batches in flight at once while fetching new transactions (default 4). */
  fetchConcurrency?: number;
  /** A refresh recomputes the fee histogram only when it is older than this (default 120 s, as ElectrumX). */
  histogramRefreshMs?: number;
  /** Milliseconds clock, replaceable in tests. */
  now?: () => number;
  /** See BACKUP_WAIT_MS (tests shorten it). */
  backupWaitMs?: number;
}

/** Raised for replies of bitcoind that the mempool cannot use; `code` is stable, e.g. "bad-reply". */
export class MempoolError extends Error {
  override name = "MempoolError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Everything the mempool holds for one hashX. */
interface HashXState {
  readonly key: string;
  readonly hashX: Uint8Array;
  readonly txs: Set<Entry>;
  /** Sum over txs of outputs paying this hashX minus inputs spending its coins. */
  delta: number;
}

/** One resolved mempool transaction. Parsed fields are not kept: only what queries read. */
interface Entry {
  /** Display hex txid; the key of `txs`. */
  readonly hex: string;
  readonly txid: Uint8Array;
  readonly raw: Uint8Array;
  readonly fee: number;
  readonly vsize: number;
  /** Outpoint keys ("hex:vout") of its inputs; the same strings are the keys of `spent`. */
  readonly spends: string[];
  readonly outStates: (HashXState | null)[];
  readonly outValues: number[];
  /** Distinct hashXs it touches, and its balance change for each. */
  readonly states: HashXState[];
  readonly deltas: number[];
  /** Inputs spending outputs of transactions now in the mempool; > 0 means height -1. */
  parentInputs: number;
  /** Refresh generation in which getrawmempool last listed it. */
  seen: number;
}

/** A transaction fetched but not (yet) resolvable: kept so the next refresh need not fetch it again. */
interface Pending {
  tx: Transaction;
  seen: number;
}

/** A new or pending transaction during one refresh. */
interface Candidate {
  readonly hex: string;
  readonly tx: Transaction;
  readonly parentHexes: string[];
  /** hashX of each output, packed (11 bytes each); unspendable outputs stay zero and have a null key. */
  readonly outHashX: Uint8Array;
  readonly outKeys: (string | null)[];
  inKeys: string[];
  inHashX: Uint8Array[];
  inValues: number[];
  /** Outpoint keys of its inputs, once resolved. */
  spends: string[];
  /** Inputs spending other candidates not yet resolved. */
  waiting: number;
  children: Candidate[];
  ok: boolean;
}

/**
 * Longest that answers wait for the refresh after a backup (see Mempool.backedUp), in milliseconds: long enough
 * for a slow bitcoind to list and return a reorg's transactions, short of REQUEST_TIMEOUT's 30 s.
 */
export const BACKUP_WAIT_MS = 20_000;
/** Longest that notifications wait for that refresh (see Mempool.behindBackup), in milliseconds. */
export const BEHIND_MAX_MS = 120_000;

/** What flushes did while a refresh was between its list and its update. */
interface SinceList {
  /** Txids the flushes confirmed. */
  readonly confirmed: Set<string>;
  /** Outpoint keys the flushes' blocks spent. */
  readonly spent: Set<string>;
  /** Txids dropped as conflicts of those blocks (with their descendants). */
  readonly evicted: Set<string>;
}

/** removeEntry's generation when every remaining entry stays (a confirmation, not a refresh). */
const ANY_GENERATION = -1;

function outpointKey(hex: string, vout: number): string {
  return `${hex}:${vout}`;
}

function byMempoolOrder(a: Entry, b: Entry): number {
  const pa = a.parentInputs > 0 ? 1 : 0, pb = b.parentInputs > 0 ? 1 : 0;
  if (pa !== pb) return pa - pb;
  return a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : 0;
}

/** Follows bitcoind's mempool; see refresh() and the query methods. */
export class Mempool {
  private readonly daemon: MempoolDaemon;
  private readonly store: MempoolStore;
  private readonly log: Log;
  private readonly networkName: string;
  private readonly batchSize: number;
  private readonly fetchConcurrency: number;
  private readonly histogramRefreshMs: number;
  private readonly now: () => number;

  private readonly txs = new Map<string, Entry>();
  private readonly hashXs = new Map<string, HashXState>();
  /** Outpoint key → the mempool tx spending it. */
  private readonly spent = new Map<string, Entry>();
  private readonly pending = new Map<string, Pending>();
  /** Txids whose raw bytes did not decode: not fetched again while bitcoind lists them. */
  private readonly undecodable = new Map<string, number>();
  /** Set from a backup until the next refresh (see backedUp()); resolves, and is cleared, then. */
  private catchingUp:
    | { promise: Promise<void>; resolve: () => void; timer: ReturnType<typeof setTimeout> }
    | undefined;
  /** Backups so far: a refresh whose list was taken before the latest one cannot end the wait for it. */
  private backups = 0;
  private readonly backupWaitMs: number;
  /** From a backup until a refresh has brought back what it undid; the wait for answers may end before. */
  private behind = false;
  private behindSince = 0;
  private behindWarned = false;
  /** Logged once per mempool load of bitcoind (see daemonLoading). */
  private loadingWarned = false;
  /** `backups` when the inputs of kept transactions were last checked (see displaced). */
  private keptCheckedAt = 0;
  /** Refreshes skipped because bitcoind's tip was not the database's (see refreshOnce). */
  behindTip = 0;
  /**
   * While a refresh is between its list and its update: what flushes changed meanwhile (see confirmed()), which
   * it must not undo. Undefined otherwise, so that flushes nobody races with (a long catch-up) collect nothing.
   */
  private sinceList: SinceList | undefined;
  private generation = 0;
  private totalVsize = 0;
  private lastTriedState: unknown = undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private refreshed = false;
  private histogram: [number, number][] = [];
  private histogramAt = -Infinity;
  private histogramDirty = true;

  constructor(opts: MempoolOptions) {
    this.daemon = opts.daemon;
    this.store = opts.store;
    this.log = opts.log;
    this.networkName = opts.network?.name ?? "";
    this.batchSize = Math.max(1, Math.floor(opts.batchSize ?? 100));
    this.fetchConcurrency = Math.max(1, Math.floor(opts.fetchConcurrency ?? 4));
    this.histogramRefreshMs = opts.histogramRefreshMs ?? 120_000;
    this.now = opts.now ?? Date.now;
    this.backupWaitMs = opts.backupWaitMs ?? BACKUP_WAIT_MS;
  }

  /** Number of transactions in the mempool (those whose prevouts are resolved). */
  get size(): number {
    return this.txs.size;
  }

  /** Sum of their virtual sizes. */
  get vsizeTotal(): number {
    return this.totalVsize;
  }

  /** Transactions bitcoind lists that are fetched but wait for unknown prevouts (the DB lags the daemon). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * One poll: getrawmempool, fetch the new transactions in batches (a -5 means one left meanwhile and is
   * ignored), resolve their prevouts, drop the ones that left. A transaction whose prevouts are unknown waits
   * for a later refresh. Does nothing while bitcoind's tip is not the database's (behindTip counts those).
   * Returns each hashX whose mempool state changed, once. Concurrent calls run one after another. Call it
   * again after every new block (with confirmed() at the flush): children of confirmed transactions may
   * resolve, conflicts leave.
   */
  refresh(): Promise<Uint8Array[]> {
    const run = this.queue.then(() => this.refreshOnce());
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Drops the transactions a flush has just confirmed (32-byte txids, internal order) at once, with the flush,
   * rather than at the next refresh: in between, get_balance would count them as confirmed and unconfirmed,
   * get_mempool would list them, and their children would keep height -1. With `spends` (the outpoints the
   * flush's blocks spend, 36 bytes each: txid in internal order, vout as a little-endian u32) it also drops
   * the transactions that spend one of them (a replacement we never saw was mined, say) and their
   * descendants, as bitcoind did when it connected the block: until the next refresh they would otherwise
   * count a payment that can no longer happen and list coins that no longer exist. Returns each hashX whose
   * mempool state changed (children's included), once. Never throws (the store calls it inside a flush).
   */
  confirmed(txids: Uint8Array, spends?: Uint8Array): Uint8Array[] {
    const touched = new Map<string, Uint8Array>();
    const since = this.sinceList;
    let removed = 0;
    for (let i = 0; i + 32 <= txids.length; i += 32) {
      const hex = toHexReversed(txids.subarray(i, i + 32));
      // A refresh under way may have listed it before the block and be about to add it.
      since?.confirmed.add(hex);
      this.pending.delete(hex);
      const e = this.txs.get(hex);
      if (e === undefined) continue;
      this.removeEntry(e, ANY_GENERATION, touched);
      removed++;
    }
    if (spends !== undefined && (this.spent.size > 0 || since !== undefined)) {
      removed += this.dropConflicts(spends, touched);
    }
    if (removed > 0) this.histogramDirty = true;
    return [...touched.values()];
  }

  /**
   * confirmed()'s second half: removes every transaction spending one of `spends` and its descendants. The
   * block's own transactions are gone by now, so whatever still spends one of those outpoints conflicts.
   */
  private dropConflicts(spends: Uint8Array, touched: Map<string, Uint8Array>): number {
    const since = this.sinceList;
    const doomed: Entry[] = [];
    const marked = new Set<Entry>();
    for (let i = 0; i + OUTPOINT_LEN <= spends.length; i += OUTPOINT_LEN) {
      const vout =
        (spends[i + 32] | (spends[i + 33] << 8) | (spends[i + 34] << 16) | (spends[i + 35] << 24)) >>>
        0;
      const key = outpointKey(toHexReversed(spends.subarray(i, i + 32)), vout);
      since?.spent.add(key);
      const e = this.spent.get(key);
      if (e !== undefined && !marked.has(e)) {
        marked.add(e);
        doomed.push(e);
      }
    }
    // Parents come before their children, so each removal sees its descendants still in place.
    for (let k = 0; k < doomed.length; k++) {
      this.forEachChild(doomed[k], (child) => {
        if (!marked.has(child)) {
          marked.add(child);
          doomed.push(child);
        }
      });
    }
    for (const e of doomed) {
      since?.evicted.add(e.hex);
      this.removeEntry(e, ANY_GENERATION, touched);
    }
    if (doomed.length > 0) {
      this.log.debug(`mempool: a block's spends conflict with ${doomed.length} transaction(s); dropped them`);
    }
    return doomed.length;
  }

  /**
   * The database has gone back (a reorg): the transactions of the blocks it undid are now in neither it nor
   * this mempool until the next refresh fetches them from bitcoind. Until then settled() makes answers wait,
   * at most BACKUP_WAIT_MS (bitcoind may be unreachable).
   */
  backedUp(): void {
    this.backups++;
    if (!this.behind) this.behindSince = this.now();
    this.behind = true;
    this.behindWarned = false;
    if (this.catchingUp !== undefined) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => this.stopWaiting(), this.backupWaitMs);
    Deno.unrefTimer(timer);
    this.catchingUp = { promise, resolve, timer };
  }

  /** Resolves once the mempool matches the database again after a backup; undefined when it already does. */
  settled(): Promise<void> | undefined {
    return this.catchingUp?.promise;
  }

  /** Backups so far (see backedUp()): an answer computed while this changed may have read either side of one. */
  backupCount(): number {
    return this.backups;
  }

  /**
   * True from a backup until a refresh has brought back the transactions it undid. Unlike settled(), which
   * gives up after BACKUP_WAIT_MS so that answers are not held for ever, this stays true: notifications, which
   * can wait, are not computed from a mempool that lacks them.
   */
  behindBackup(): boolean {
    if (!this.behind) return false;
    if (this.now() - this.behindSince < BEHIND_MAX_MS) return true;
    // bitcoind has not let a refresh through for minutes (down, or refusing getrawmempool): notifications
    // cannot wait for ever, new blocks included. They go out from what is known, once warned.
    if (!this.behindWarned) {
      this.behindWarned = true;
      const since = Math.round(BEHIND_MAX_MS / 1000);
      this.log.warn(
        `mempool: no refresh since a reorg ${since} s ago; notifying without the transactions it took back ` +
          "until one succeeds",
      );
    }
    return false;
  }

  private stopWaiting(): void {
    const c = this.catchingUp;
    if (c === undefined) return;
    this.catchingUp = undefined;
    clearTimeout(c.timer);
    c.resolve();
  }

  /** Mempool transactions touching hashX: height 0 before -1, then by display-order txid (protocol 1.6). */
  history(hashX: Uint8Array): MempoolTxInfo[] {
    const state = this.hashXs.get(toHex(hashX.subarray(0, HASHX_LEN)));
    if (state === undefined) return [];
    const entries = [...state.txs];
    if (entries.length > 1) entries.sort(byMempoolOrder);
    return entries.map((e) => ({
      txid: e.txid,
      txidHex: e.hex,
      fee: e.fee,
      vsize: e.vsize,
      hasUnconfirmedParent: e.parentInputs > 0,
    }));
  }

  /** Unconfirmed balance change: mempool outputs paying hashX minus mempool spends of its coins. */
  balanceDelta(hashX: Uint8Array): number {
    return this.hashXs.get(toHex(hashX.subarray(0, HASHX_LEN)))?.delta ?? 0;
  }

  /** Mempool outputs paying hashX that no mempool tx spends, by display txid then vout. */
  utxos(hashX: Uint8Array): MempoolUtxo[] {
    const state = this.hashXs.get(toHex(hashX.subarray(0, HASHX_LEN)));
    if (state === undefined) return [];
    const out: MempoolUtxo[] = [];
    const entries = [...state.txs];
    if (entries.length > 1) entries.sort((a, b) => (a.hex < b.hex ? -1 : a.hex > b.hex ? 1 : 0));
    for (const e of entries) {
      for (let j = 0; j < e.outStates.length; j++) {
        if (e.outStates[j] !== state || this.spent.has(outpointKey(e.hex, j))) continue;
        out.push({ txHash: e.txid, vout: j, value: e.outValues[j] });
      }
    }
    return out;
  }

  /** Whether some mempool tx spends this outpoint (txid internal order) — listunspent hides it. */
  isSpent(txid: Uint8Array, vout: number): boolean {
    return this.spent.has(outpointKey(toHexReversed(txid), vout));
  }

  /** Whether the transaction (txid internal order) is in the mempool. */
  has(txid: Uint8Array): boolean {
    return this.txs.has(toHexReversed(txid));
  }

  /** The raw bytes of a mempool transaction (txid internal order), for blockchain.transaction.get. */
  rawTx(txid: Uint8Array): Uint8Array | undefined {
    return this.txs.get(toHexReversed(txid))?.raw;
  }

  /** mempool.get_fee_histogram: ElectrumX's bins, as of the last recomputation (see histogramRefreshMs). */
  feeHistogram(): [number, number][] {
    return this.histogram;
  }

  // ---- refresh ------------------------------------------------------------------------------------------

  private async refreshOnce(): Promise<Uint8Array[]> {
    // The list must belong to the block the database is at. Taken while bitcoind is at a block we have not
    // flushed yet, it lacks that block's transactions, which the database does not hold either: for a
    // moment they would be nowhere (a payment vanishing from the wallet); taken across a block it could add
    // back what we have confirmed. So it counts only when bitcoind's tip before and after it is our tip;
    // otherwise the refresh after our next flush takes it (ElectrumX waits for the same).
    const backups = this.backups;
    const before = await this.daemon.call<unknown>("getbestblockhash");
    const list = await this.daemon.call<unknown>("getrawmempool", [false]);
    const after = await this.daemon.call<unknown>("getbestblockhash");
    const ours = toHexReversed(this.store.state.tipHash);
    if (before !== ours || after !== ours) {
      this.behindTip++;
      return [];
    }
    if (!Array.isArray(list)) {
      throw new MempoolError("bad-reply", `getrawmempool returned ${typeof list}, not a list of txids`);
    }
    const meanwhile: SinceList = { confirmed: new Set(), spent: new Set(), evicted: new Set() };
    this.sinceList = meanwhile;
    try {
      return await this.update(list, meanwhile, backups);
    } finally {
      this.sinceList = undefined;
    }
  }

  /** refreshOnce() once its list is known to belong to the database's block. */
  private async update(
    list: unknown[],
    meanwhile: SinceList,
    backups: number,
  ): Promise<Uint8Array[]> {
    const gen = ++this.generation;
    const fresh: string[] = [];
    let known = 0;
    for (const item of list) {
      const hex = item as string;
      const e = this.txs.get(hex);
      if (e !== undefined) {
        if (e.seen !== gen) known++;
        e.seen = gen;
        continue;
      }
      const p = this.pending.get(hex);
      if (p !== undefined) {
        p.seen = gen;
        continue;
      }
      if (this.undecodable.has(hex)) {
        this.undecodable.set(hex, gen);
        continue;
      }
      if (typeof item !== "string" || !TXID_HEX.test(item)) {
        throw new MempoolError("bad-reply", `getrawmempool returned ${JSON.stringify(item)}, not a txid`);
      }
      fresh.push(hex);
    }
    let removed: Entry[] = [];
    if (known !== this.txs.size) {
      for (const e of this.txs.values()) if (e.seen !== gen) removed.push(e);
    }
    let kept: Entry[] = [];
    if (removed.length > 0 && await this.daemonLoading()) {
      // A restarted bitcoind lists its mempool as it reloads it (mempool.dat, for minutes on a big one): what
      // it has not reloaded yet is not gone. Kept as listed until it reports the load done, unless a listed
      // transaction spends one of its coins (below).
      for (const e of removed) e.seen = gen;
      kept = removed;
      if (!this.loadingWarned) {
        this.loadingWarned = true;
        this.log.info(
          `mempool: bitcoind is still loading its mempool; keeping ${removed.length} transaction(s) it has not ` +
            "listed again yet",
        );
      }
      removed = [];
    }
    for (const [hex, p] of this.pending) if (p.seen !== gen) this.pending.delete(hex);
    for (const [hex, g] of this.undecodable) if (g !== gen) this.undecodable.delete(hex);

    const fetched = fresh.length > 0 ? await this.fetch(fresh, gen) : [];
    if (kept.length > 0) removed = await this.displaced(kept, fetched, gen);
    const state = this.store.state;
    const retry = this.pending.size > 0 &&
      (fetched.length > 0 || removed.length > 0 || state !== this.lastTriedState);
    this.lastTriedState = state;
    const candidates = new Map<string, Candidate>();
    for (const tx of fetched) this.addCandidate(candidates, tx);
    if (retry) { for (const [hex, p] of this.pending) this.addCandidate(candidates, p.tx, hex); }
    const order = candidates.size > 0 ? await this.resolve(candidates, gen) : [];

    // Everything below is synchronous: readers see the mempool before or after this refresh, never between.
    const touched = new Map<string, Uint8Array>();
    // A flush during this refresh may have confirmed some already (confirmed()).
    for (const e of removed) if (this.txs.get(e.hex) === e) this.removeEntry(e, gen, touched);
    let added = 0;
    for (const c of order) {
      if (meanwhile.confirmed.has(c.hex)) {
        // Its children failed against it here but would resolve against its confirmed outputs: retry them.
        this.lastTriedState = undefined;
        continue;
      }
      if (!c.ok) {
        if (!this.pending.has(c.hex)) this.pending.set(c.hex, { tx: c.tx, seen: gen });
        continue;
      }
      // Resolved before a block spent one of its coins (or dropped a parent of it): bitcoind dropped it too.
      if (
        meanwhile.spent.size > 0 &&
        (c.spends.some((op) => meanwhile.spent.has(op)) ||
          c.parentHexes.some((h) => meanwhile.evicted.has(h)))
      ) {
        meanwhile.evicted.add(c.hex);
        continue;
      }
      this.pending.delete(c.hex);
      this.addEntry(c, gen, touched);
      added++;
    }
    if (added > 0 || removed.length > 0) this.histogramDirty = true;
    this.maybeRecomputeHistogram();
    this.logRefresh(added, removed.length);
    // A list taken before a backup lacks what that backup undid: only a later refresh can end the wait.
    if (this.backups === backups) {
      this.behind = false;
      this.stopWaiting();
    }
    return [...touched.values()];
  }

  // The kept transactions (see update) that bitcoind cannot be holding, with their kept descendants; marked
  // unlisted. bitcoind never holds two spends of one coin, so one that a listed transaction (just fetched, or
  // pending) spends a coin of was replaced (a fee bump or a double spend accepted while it was loading). After a
  // reorg, one may also spend a coin that is no longer anywhere (its block undone, its transaction not back).
  private async displaced(kept: Entry[], fetched: Transaction[], gen: number): Promise<Entry[]> {
    const keep = new Set(kept);
    const out: Entry[] = [];
    const check = (tx: Transaction) => {
      for (const input of tx.inputs) {
        const e = this.spent.get(outpointKey(toHexReversed(input.prevTxid), input.prevVout));
        if (e !== undefined && keep.delete(e)) out.push(e);
      }
    };
    const listed = new Set<string>();
    for (const tx of fetched) {
      check(tx);
      listed.add(toHexReversed(tx.txid));
    }
    for (const [hex, p] of this.pending) {
      if (p.seen !== gen) continue;
      check(p.tx);
      listed.add(hex);
    }
    if (this.keptCheckedAt !== this.backups) {
      this.keptCheckedAt = this.backups;
      for (const e of keep) {
        for (const op of e.spends) {
          const colon = op.lastIndexOf(":");
          const parent = op.slice(0, colon);
          if (this.txs.has(parent) || listed.has(parent)) continue;
          const coin = await this.store.lookupUtxo(fromHexReversed(parent), Number(op.slice(colon + 1)));
          // A flush during the lookup may have confirmed it (confirmed() took it out): nothing to decide.
          if (this.txs.get(e.hex) !== e) break;
          if (coin === undefined) {
            keep.delete(e);
            out.push(e);
            break;
          }
        }
      }
    }
    for (let k = 0; k < out.length; k++) {
      if (this.txs.get(out[k].hex) !== out[k]) continue;
      this.forEachChild(out[k], (child) => {
        if (keep.delete(child)) out.push(child);
      });
    }
    for (const e of out) e.seen = gen - 1;
    return out;
  }

  // True while bitcoind says it is still loading its mempool (getmempoolinfo's `loaded`, Core 0.19 and later).
  // A node that cannot say (older, or the call refused) counts as loaded: that was the behaviour before.
  private async daemonLoading(): Promise<boolean> {
    let loading = false;
    try {
      const info = await this.daemon.call<{ loaded?: unknown }>("getmempoolinfo");
      loading = info?.loaded === false;
    } catch (err) {
      if (isDaemonClosed(err)) throw err;
      this.log.debug(`mempool: getmempoolinfo failed (${errorText(err)}); taking the list as complete`);
    }
    if (!loading) this.loadingWarned = false;
    return loading;
  }

  /** getrawtransaction for each txid, batchSize per request, a few requests at once; decoded, in list order. */
  private async fetch(hexes: string[], gen: number): Promise<Transaction[]> {
    const batches: string[][] = [];
    for (let i = 0; i < hexes.length; i += this.batchSize) batches.push(hexes.slice(i, i + this.batchSize));
    const results: Transaction[][] = new Array(batches.length);
    let next = 0, gone = 0, failed = 0;
    let firstFailure = "";
    let aborted = false;
    const work = async () => {
      while (next < batches.length && !aborted) {
        const b = next++;
        const batch = batches[b];
        const replies = await this.daemon.batchSettled<unknown>(
          "getrawtransaction",
          batch.map((hex) => [hex, 0]),
        );
        const txs: Transaction[] = [];
        for (let i = 0; i < batch.length; i++) {
          const reply = replies[i];
          if (reply === undefined || "error" in reply) {
            if (reply?.error.code === RPC_NOT_FOUND) {
              gone++;
            } else {
              failed++;
              firstFailure ||= reply ? `${reply.error.message} (code ${reply.error.code})` : "no reply";
            }
            continue;
          }
          const tx = this.decode(batch[i], reply.result, gen);
          if (tx !== null) txs.push(tx);
        }
        results[b] = txs;
      }
    };
    // After one request fails the others stop taking batches: the refresh fails as a whole and is retried.
    const worker = () =>
      work().catch((err) => {
        aborted = true;
        throw err;
      });
    await Promise.all(Array.from({ length: Math.min(this.fetchConcurrency, batches.length) }, worker));
    if (gone > 0) this.log.debug(`mempool: ${gone} of ${hexes.length} new transactions left before fetching`);
    if (failed > 0) {
      this.log.warn(
        `mempool: bitcoind could not return ${failed} of ${hexes.length} new transactions ` +
          `(first: ${firstFailure}); trying again at the next refresh`,
      );
    }
    return results.flat();
  }

  /** Decodes one getrawtransaction reply, or records why it is unusable and returns null. */
  private decode(hex: string, result: unknown, gen: number): Transaction | null {
    let why: string;
    try {
      if (typeof result !== "string") throw new ChainFormatError("bad-reply", "not a hex string", 0);
      const tx = decodeTransaction(fromHex(result));
      if (toHexReversed(tx.txid) === hex) return tx;
      why = `the bytes hash to ${toHexReversed(tx.txid)}`;
    } catch (err) {
      why = err instanceof ChainFormatError ? err.message : String(err);
    }
    this.undecodable.set(hex, gen);
    this.log.warn(`mempool: ignoring transaction ${hex} from bitcoind: ${why}`);
    return null;
  }

  private addCandidate(candidates: Map<string, Candidate>, tx: Transaction, hex = toHexReversed(tx.txid)) {
    const n = tx.outputs.length;
    const outHashX = new Uint8Array(n * HASHX_LEN);
    const outKeys: (string | null)[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const script = tx.outputs[j].script;
      if (isUnindexed(script)) {
        outKeys[j] = null;
        continue;
      }
      hashXInto(script, outHashX, j * HASHX_LEN);
      outKeys[j] = toHex(outHashX.subarray(j * HASHX_LEN, (j + 1) * HASHX_LEN));
    }
    candidates.set(hex, {
      hex,
      tx,
      parentHexes: tx.inputs.map((i) => toHexReversed(i.prevTxid)),
      outHashX,
      outKeys,
      inKeys: [],
      inHashX: [],
      inValues: [],
      spends: [],
      waiting: 0,
      children: [],
      ok: false,
    });
  }

  /**
   * Resolves every candidate's prevouts, parents before children (a candidate spending another is resolved
   * after it, and fails if it failed). Returns the candidates in that order with `ok` set.
   */
  private async resolve(candidates: Map<string, Candidate>, gen: number): Promise<Candidate[]> {
    // Kahn's algorithm over candidate → candidate spends; anything left in a cycle never resolves.
    const ready: Candidate[] = [];
    for (const c of candidates.values()) {
      for (const ph of c.parentHexes) {
        const p = candidates.get(ph);
        // A parent spent by several inputs counts (and releases the child) once per input.
        if (p !== undefined && p !== c) {
          c.waiting++;
          p.children.push(c);
        }
      }
      if (c.waiting === 0) ready.push(c);
    }
    const order: Candidate[] = [];
    const claimed = new Set<string>();
    for (let i = 0; i < ready.length; i++) {
      const c = ready[i];
      c.ok = await this.resolveInputs(c, candidates, gen, claimed);
      // A failed candidate gives its outpoints back: the conflict check only counts what gets added.
      if (!c.ok) { for (const op of c.spends) claimed.delete(op); }
      order.push(c);
      for (const child of c.children) if (--child.waiting === 0) ready.push(child);
    }
    for (const c of candidates.values()) if (c.waiting > 0) order.push(c);
    return order;
  }

  private async resolveInputs(
    c: Candidate,
    candidates: Map<string, Candidate>,
    gen: number,
    claimed: Set<string>,
  ): Promise<boolean> {
    const inputs = c.tx.inputs;
    c.inKeys = new Array(inputs.length);
    c.inHashX = new Array(inputs.length);
    c.inValues = new Array(inputs.length);
    c.spends = [];
    for (let i = 0; i < inputs.length; i++) {
      const ph = c.parentHexes[i], vout = inputs[i].prevVout;
      const op = outpointKey(ph, vout);
      // Two spends of one outpoint mean our snapshot is inconsistent; the later one waits for a refresh.
      const spender = this.spent.get(op);
      if (claimed.has(op) || (spender !== undefined && spender.seen === gen)) return false;
      claimed.add(op);
      c.spends.push(op);
      const parentCandidate = candidates.get(ph);
      if (parentCandidate !== undefined) {
        if (!parentCandidate.ok || vout >= parentCandidate.outKeys.length) return false;
        const key = parentCandidate.outKeys[vout];
        if (key === null) return false;
        c.inKeys[i] = key;
        c.inHashX[i] = parentCandidate.outHashX.subarray(vout * HASHX_LEN, (vout + 1) * HASHX_LEN);
        c.inValues[i] = parentCandidate.tx.outputs[vout].value;
        continue;
      }
      const parent = this.txs.get(ph);
      if (parent !== undefined && parent.seen === gen) {
        const st = parent.outStates[vout];
        if (st == null) return false;
        c.inKeys[i] = st.key;
        c.inHashX[i] = st.hashX;
        c.inValues[i] = parent.outValues[vout];
        continue;
      }
      const coin = await this.store.lookupUtxo(inputs[i].prevTxid, vout);
      if (coin === undefined) return false;
      c.inKeys[i] = toHex(coin.hashX);
      c.inHashX[i] = coin.hashX;
      c.inValues[i] = coin.value;
    }
    return true;
  }

  private stateOf(key: string, hashX: Uint8Array): HashXState {
    let st = this.hashXs.get(key);
    if (st === undefined) {
      st = { key, hashX: hashX.slice(), txs: new Set(), delta: 0 };
      this.hashXs.set(key, st);
    }
    return st;
  }

  private addEntry(c: Candidate, gen: number, touched: Map<string, Uint8Array>): void {
    const tx = c.tx;
    const states: HashXState[] = [];
    const deltas: number[] = [];
    const charge = (st: HashXState, amount: number) => {
      const k = states.indexOf(st);
      if (k >= 0) deltas[k] += amount;
      else {
        states.push(st);
        deltas.push(amount);
      }
    };
    let valueIn = 0, valueOut = 0;
    const spends = c.spends;
    let parentInputs = 0;
    for (let i = 0; i < tx.inputs.length; i++) {
      charge(this.stateOf(c.inKeys[i], c.inHashX[i]), -c.inValues[i]);
      valueIn += c.inValues[i];
      if (this.txs.has(c.parentHexes[i])) parentInputs++;
    }
    const outStates = new Array<HashXState | null>(tx.outputs.length);
    const outValues = new Array<number>(tx.outputs.length);
    for (let j = 0; j < tx.outputs.length; j++) {
      const value = tx.outputs[j].value;
      outValues[j] = value;
      valueOut += value;
      const key = c.outKeys[j];
      if (key === null) {
        outStates[j] = null;
        continue;
      }
      const st = this.stateOf(key, c.outHashX.subarray(j * HASHX_LEN, (j + 1) * HASHX_LEN));
      outStates[j] = st;
      charge(st, value);
    }
    const e: Entry = {
      hex: c.hex,
      txid: tx.txid,
      raw: tx.raw,
      fee: valueIn - valueOut,
      vsize: tx.vsize,
      spends,
      outStates,
      outValues,
      states,
      deltas,
      parentInputs,
      seen: gen,
    };
    this.txs.set(e.hex, e);
    this.totalVsize += e.vsize;
    for (const op of spends) this.spent.set(op, e);
    for (let k = 0; k < states.length; k++) {
      states[k].txs.add(e);
      states[k].delta += deltas[k];
      touched.set(states[k].key, states[k].hashX);
    }
    // Children already here spent this tx's outputs while it was confirmed (it came back in a reorg).
    this.forEachChild(e, (child) => {
      if (child.parentInputs++ === 0) this.touch(child, touched);
    });
  }

  private removeEntry(e: Entry, gen: number, touched: Map<string, Uint8Array>): void {
    this.txs.delete(e.hex);
    this.totalVsize -= e.vsize;
    for (const op of e.spends) if (this.spent.get(op) === e) this.spent.delete(op);
    for (let k = 0; k < e.states.length; k++) {
      const st = e.states[k];
      st.txs.delete(e);
      st.delta -= e.deltas[k];
      touched.set(st.key, st.hashX);
      if (st.txs.size === 0) this.hashXs.delete(st.key);
    }
    // Children that stay lose an unconfirmed parent (it was confirmed): their height may go -1 → 0.
    this.forEachChild(e, (child) => {
      if ((gen === ANY_GENERATION || child.seen === gen) && --child.parentInputs === 0) {
        this.touch(child, touched);
      }
    });
  }

  private forEachChild(e: Entry, fn: (child: Entry) => void): void {
    for (let j = 0; j < e.outValues.length; j++) {
      const child = this.spent.get(outpointKey(e.hex, j));
      if (child !== undefined && child !== e) fn(child);
    }
  }

  private touch(e: Entry, touched: Map<string, Uint8Array>): void {
    for (const st of e.states) touched.set(st.key, st.hashX);
  }

  private maybeRecomputeHistogram(): void {
    const now = this.now();
    if (!this.histogramDirty || now - this.histogramAt < this.histogramRefreshMs) return;
    const sizes = new Map<number, number>();
    for (const e of this.txs.values()) addToRateMap(sizes, e.fee, e.vsize);
    this.histogram = compactHistogram(sizes);
    this.histogramAt = now;
    this.histogramDirty = false;
  }

  private logRefresh(added: number, removed: number): void {
    const summary = `${this.txs.size} txs, ${this.totalVsize} vbytes` +
      (this.pending.size > 0 ? `, ${this.pending.size} waiting for their inputs` : "");
    if (!this.refreshed) {
      this.refreshed = true;
      const on = this.networkName ? ` (${this.networkName})` : "";
      this.log.info(`mempool${on} synced: ${summary}`);
    } else if ((added > 0 || removed > 0) && this.log.enabled("debug")) {
      this.log.debug(`mempool: +${added} -${removed} → ${summary}`);
    }
  }
}
