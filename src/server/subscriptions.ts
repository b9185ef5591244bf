// Who is subscribed to what: script hashes (by hashX) and new headers. The index answers the notifier's one
// question — which sessions care about this hashX, under which name — without looking at every session, and
// it holds each hashX's last computed status so that a block touching a popular script is hashed once.
import { BAD_REQUEST, RpcError, type SessionContext } from "./types.ts";

/** What the index needs of a session (SessionContext provides it). */
export type Subscriber = Pick<SessionContext, "id" | "notify" | "onClose" | "closed">;

/** One session's subscription to one hashX. */
export interface SessionSub {
  /** The script hash exactly as the client sent it; notifications echo it. */
  alias: string;
  /** The status last sent to this session (as reply or notification). */
  sent: string | null;
}

/** Everything about one subscribed hashX. */
export interface HashXEntry {
  readonly hashX: Uint8Array;
  readonly sessions: Map<Subscriber, SessionSub>;
  /** The cached current status; undefined when unknown or invalidated. */
  status: string | null | undefined;
  /** Whether that status included mempool transactions. */
  hasMempool: boolean;
  /** Bumped on every invalidation, so a status computed across one is not cached as current. */
  generation: number;
}

/** A subscribe still computing its status (SubscriptionIndex.begin); an unsubscribe meanwhile cancels it. */
export interface PendingSubscribe {
  cancelled: boolean;
}

/** Subscription counts over all sessions and per session. 0 disables a limit. */
export interface SubscriptionLimits {
  /** MAX_SUBS: script hash subscriptions over all sessions. */
  maxSubs: number;
  /** MAX_SESSION_SUBS: script hash subscriptions of one session. */
  maxSessionSubs: number;
}

/** The hashXs of a packed run of HASHX_LEN-byte ones (as FlushUpdate.touched), as views. */
export function* packedHashXs(packed: Uint8Array): Generator<Uint8Array> {
  for (let at = 0; at + 11 <= packed.length; at += 11) yield packed.subarray(at, at + 11);
}

/** A compact Map key for a hashX: one char per byte (11 bytes → 11 chars), no hex. */
export function hashXKey(hashX: Uint8Array): string {
  let s = "";
  for (let i = 0; i < hashX.length; i++) s += String.fromCharCode(hashX[i]);
  return s;
}

function commas(n: number): string {
  return n.toLocaleString("en-US");
}

/** The subscription index shared by the methods (subscribe/unsubscribe) and the notifier. */
export class SubscriptionIndex {
  private readonly entries = new Map<string, HashXEntry>();
  private readonly bySession = new Map<Subscriber, Set<string>>();
  private readonly headerSubs = new Set<Subscriber>();
  private readonly tracked = new Set<Subscriber>();
  private readonly pending = new Map<Subscriber, Map<string, Set<PendingSubscribe>>>();
  private total = 0;
  private invalidations = 0;

  constructor(private readonly limits: SubscriptionLimits) {}

  /** Script hash subscriptions over all sessions. */
  get count(): number {
    return this.total;
  }

  /** Counts invalidate() calls: a status computed while it stayed the same reflects every change signalled. */
  get epoch(): number {
    return this.invalidations;
  }

  /** Distinct subscribed hashXs. */
  get hashXCount(): number {
    return this.entries.size;
  }

  /** Script hash subscriptions of one session. */
  sessionCount(session: Subscriber): number {
    return this.bySession.get(session)?.size ?? 0;
  }

  /**
   * Throws RpcError 1 when one more subscription for this session would exceed MAX_SUBS or MAX_SESSION_SUBS
   * (a hashX it already has does not count again).
   */
  checkLimits(session: Subscriber, hashX: Uint8Array): void {
    const mine = this.bySession.get(session);
    if (mine?.has(hashXKey(hashX))) return;
    const { maxSubs, maxSessionSubs } = this.limits;
    if (maxSubs > 0 && this.total >= maxSubs) {
      throw new RpcError(BAD_REQUEST, `server subscription limit ${commas(maxSubs)} reached`);
    }
    if (maxSessionSubs > 0 && (mine?.size ?? 0) >= maxSessionSubs) {
      throw new RpcError(BAD_REQUEST, `your address subscription limit ${commas(maxSessionSubs)} reached`);
    }
  }

  /**
   * Records that `session` is subscribed to `hashX` under `alias` and was just told `status`, which held
   * mempool transactions if `hasMempool` (such statuses are re-evaluated on every new block). A repeated
   * subscription replaces the alias (as ElectrumX does). Checks the limits first (see checkLimits).
   */
  subscribe(
    session: Subscriber,
    hashX: Uint8Array,
    alias: string,
    status: string | null,
    hasMempool = false,
  ): void {
    if (session.closed) return;
    this.checkLimits(session, hashX);
    this.track(session);
    const key = hashXKey(hashX);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = {
        hashX: hashX.slice(),
        sessions: new Map(),
        status: undefined,
        hasMempool: false,
        generation: 0,
      };
      this.entries.set(key, entry);
    }
    // Over-including costs one recomputation on the next block; missing one would miss a -1 → 0 change.
    if (hasMempool) entry.hasMempool = true;
    if (!entry.sessions.has(session)) this.total++;
    entry.sessions.set(session, { alias, sent: status });
    let mine = this.bySession.get(session);
    if (!mine) this.bySession.set(session, mine = new Set());
    mine.add(key);
  }

  /**
   * Notes that `session` asked to subscribe to `hashX` and is computing its status; pass the result to end()
   * when done, and subscribe only if it was not cancelled. The request came first, so an unsubscribe that
   * arrives before the status is known ends it.
   */
  begin(session: Subscriber, hashX: Uint8Array): PendingSubscribe {
    const pending = { cancelled: false };
    let mine = this.pending.get(session);
    if (!mine) this.pending.set(session, mine = new Map());
    const key = hashXKey(hashX);
    let set = mine.get(key);
    if (!set) mine.set(key, set = new Set());
    set.add(pending);
    return pending;
  }

  /** Forgets a subscribe noted by begin(). */
  end(session: Subscriber, hashX: Uint8Array, pending: PendingSubscribe): void {
    const mine = this.pending.get(session);
    const key = hashXKey(hashX);
    const set = mine?.get(key);
    if (!mine || !set?.delete(pending) || set.size > 0) return;
    mine.delete(key);
    if (mine.size === 0) this.pending.delete(session);
  }

  /** Ends one subscription, or cancels the subscribes still pending for it; true if there was either. */
  unsubscribe(session: Subscriber, hashX: Uint8Array): boolean {
    const key = hashXKey(hashX);
    const mine = this.pending.get(session);
    const pending = mine?.get(key);
    // Cancelled ones are forgotten here (end() then finds nothing), so a second unsubscribe answers false.
    if (pending) {
      for (const p of pending) p.cancelled = true;
      mine!.delete(key);
      if (mine!.size === 0) this.pending.delete(session);
    }
    const had = pending !== undefined;
    const subs = this.bySession.get(session);
    if (!subs?.delete(key)) return had;
    if (subs.size === 0) this.bySession.delete(session);
    this.dropFromEntry(key, session);
    return true;
  }

  /** Subscribes a session to new-tip notifications. */
  subscribeHeaders(session: Subscriber): void {
    if (session.closed) return;
    this.track(session);
    this.headerSubs.add(session);
  }

  /** Sessions subscribed to headers. */
  headerSubscribers(): Iterable<Subscriber> {
    return this.headerSubs;
  }

  /** The entry of a subscribed hashX, or undefined when nobody is subscribed to it. */
  entry(hashX: Uint8Array): HashXEntry | undefined {
    return this.entries.get(hashXKey(hashX));
  }

  /** Every subscribed hashX's entry. */
  allEntries(): IterableIterator<HashXEntry> {
    return this.entries.values();
  }

  /** Forgets a session's subscriptions (called when it closes). */
  removeSession(session: Subscriber): void {
    this.headerSubs.delete(session);
    this.tracked.delete(session);
    this.pending.delete(session);
    const mine = this.bySession.get(session);
    if (!mine) return;
    this.bySession.delete(session);
    for (const key of mine) this.dropFromEntry(key, session);
  }

  /** Marks cached statuses of these hashXs stale. */
  invalidate(hashXs: Iterable<Uint8Array>): void {
    this.invalidations++;
    for (const h of hashXs) {
      const entry = this.entries.get(hashXKey(h.subarray(0, 11)));
      if (entry) {
        entry.status = undefined;
        entry.generation++;
      }
    }
  }

  /**
   * Invalidates what a flush or a backup may have changed: the statuses of `hashXs` (every status when
   * undefined), and every status that held mempool transactions, whose heights change (-1 to 0) when their
   * parents confirm without anything touching them.
   */
  invalidateChanged(hashXs: Iterable<Uint8Array> | undefined): void {
    this.invalidations++;
    for (const entry of this.entries.values()) {
      if (hashXs === undefined || entry.hasMempool) {
        entry.status = undefined;
        entry.generation++;
      }
    }
    if (hashXs !== undefined) this.invalidate(hashXs);
  }

  private dropFromEntry(key: string, session: Subscriber): void {
    const entry = this.entries.get(key);
    if (!entry?.sessions.delete(session)) return;
    this.total--;
    if (entry.sessions.size === 0) this.entries.delete(key);
  }

  // One close hook per session, registered the first time it subscribes to anything.
  private track(session: Subscriber): void {
    if (this.tracked.has(session)) return;
    this.tracked.add(session);
    session.onClose(() => this.removeSession(session));
  }
}
