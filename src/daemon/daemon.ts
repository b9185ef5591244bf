// The bitcoind client. Everything above it (sync, mempool, server) assumes the daemon is eventually reachable,
// so this layer owns resilience: it retries transient failures forever with capped exponential back-off, fails
// over between URLs, waits out warm-up, follows cookie rotation, and says so in a few log lines instead of a
// line per failed request. Errors that retrying cannot fix (bad credentials, Core rejecting a request) go to
// the caller at once. Blocks come over REST when bitcoind allows it: raw bytes instead of hex in JSON.
import { sha256d } from "../chain/hash.ts";
import { fromHex, fromHexReversed, isHex, toHexReversed } from "../chain/hex.ts";
import type { Log } from "../log.ts";
import { redactUrl } from "../config.ts";
import {
  basicAuthHeader,
  CookieCredentials,
  type CredentialSource,
  StaticCredentials,
} from "./credentials.ts";
import { DAEMON_ERROR, DaemonError, RPC_IN_WARMUP, RPC_PARSE_ERROR, TransientError } from "./errors.ts";
import { Limiter } from "./limiter.ts";

export { DAEMON_ERROR, DaemonError } from "./errors.ts";

/** How to reach bitcoind and how hard to push it. */
export interface DaemonOptions {
  /** Normalized RPC URLs (see config's parseDaemonUrls); the first is used until it fails. */
  urls: readonly string[];
  /** bitcoind's .cookie file, for URLs without user:password. */
  cookieFile?: string;
  /** Longest wait for one HTTP reply, body included. */
  timeoutMs: number;
  log: Log;
  /** Concurrent HTTP requests; below Core's -rpcworkqueue (16 before v28, 64 since). Default 10. */
  maxInFlight?: number;
  /** First back-off delay after a transient failure; doubles up to retryMaxDelayMs. Default 250. */
  retryInitialDelayMs?: number;
  /** Back-off ceiling. Default 4000. */
  retryMaxDelayMs?: number;
  /** Fetch blocks over REST when bitcoind runs with -rest=1. Default true. */
  preferRest?: boolean;
  /** Parallel REST block downloads. Default 6. */
  restConcurrency?: number;
  /** 401s with unchanged credentials before giving up. Default 3. */
  authAttempts?: number;
  /**
   * How long a request whose caller timed out may still hold its in-flight slot, waiting for bitcoind's answer,
   * before it is aborted. Default 10 × timeoutMs.
   */
  abandonMs?: number;
}

/** What first contact learned about a node. */
export interface DaemonInfo {
  /** "28.1.0" */
  version: string;
  /** "/Satoshi:28.1.0/" */
  subversion: string;
  /** Core's chain name: main, test, testnet4, signet, regtest. */
  chain: string;
  /** Its block height at first contact. */
  blocks: number;
}

/** One item of batchSettled's answer. */
export type Settled<T> = { result: T } | { error: { code: number; message: string } };

interface Endpoint {
  /** URL without credentials: what fetch sees, so no error text can carry the password. */
  href: string;
  redacted: string;
  credentials: CredentialSource | undefined;
  info: DaemonInfo | undefined;
  /** First contact in progress, shared so that concurrent first requests log and check once. */
  identifying: Promise<void> | undefined;
  /** Why this URL was last passed over as unusable (wrong chain, credentials...), until it serves a call. */
  fault: string | undefined;
  /**
   * Its requests in flight (maxInFlight), abandoned ones included (see fetchLimited): one per URL, so that
   * requests hanging at a dead node do not hold up the next one.
   */
  limiter: Limiter;
  /** Aborted when the client moves to another URL: requests still waiting for this one's slots go there too. */
  leaving: AbortController;
}

/** A request that waited for the slots of a URL the client has since moved away from: retried at once. */
class LeftEndpoint extends Error {
  constructor() {
    super("the client moved to another DAEMON_URL");
  }
}

/**
 * Errors that make one URL unusable but say nothing of the others (not a 403: Core's -rpcwhitelist refuses one
 * method, and the URL serves the rest): with several configured, the client moves on
 * to the next one rather than failing. Without this, a blip on the first daemon moved the client to a backup on
 * the wrong chain (or with wrong credentials), and every later call failed there even once the first one was
 * back: sync stopped until a restart.
 */
const ENDPOINT_FAULTS: ReadonlySet<number> = new Set([
  DAEMON_ERROR.AUTH_REJECTED,
  DAEMON_ERROR.BAD_ENDPOINT,
  DAEMON_ERROR.WRONG_CHAIN,
]);

/** An HTTP 401; `changed` says whether fresh credentials are available for an immediate retry. */
class AuthRejected extends Error {
  constructor(readonly changed: boolean) {
    super("HTTP 401");
  }
}

interface RpcRequest {
  method: string;
  params: unknown[];
  id: number;
}

interface RpcReply {
  result?: unknown;
  error?: { code?: unknown; message?: unknown } | null;
  id?: unknown;
}

// Blocks per getblock batch on the JSON-RPC path: a batch runs sequentially on one Core thread, so several
// small batches in parallel use more of Core's workers, and each reply stays a bounded amount of hex.
const RPC_BLOCKS_PER_BATCH = 8;
/** A request the caller gave up on is aborted, freeing its slot, after this many timeouts (see fetchLimited). */
const ABANDON_AFTER = 10;

/** A fetch-based bitcoind client; provides the BlockSource methods the prefetcher uses. */
export class Daemon {
  /** Whether REST block fetches work: undefined until probed (and again after a failure). */
  restAvailable: boolean | undefined = undefined;

  private readonly endpoints: Endpoint[];
  private index = 0;
  private readonly log: Log;
  private readonly timeoutMs: number;
  private readonly abandonMs: number;
  private readonly restConcurrency: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly preferRest: boolean;
  private readonly authAttempts: number;
  private readonly closer = new AbortController();
  private nextId = 1;
  private down = false;
  private warmupMessage: string | undefined;
  private expectedChain: string | undefined;

  constructor(opts: DaemonOptions) {
    if (opts.urls.length === 0) throw new DaemonError(DAEMON_ERROR.BAD_ENDPOINT, "no daemon URL given");
    const cookie = opts.cookieFile ? new CookieCredentials(opts.cookieFile) : undefined;
    const maxInFlight = opts.maxInFlight ?? 10;
    this.endpoints = opts.urls.map((u) => endpointOf(u, cookie, new Limiter(maxInFlight)));
    this.log = opts.log;
    this.timeoutMs = opts.timeoutMs;
    this.abandonMs = opts.abandonMs ?? opts.timeoutMs * ABANDON_AFTER;
    this.restConcurrency = Math.max(1, Math.min(opts.restConcurrency ?? 6, maxInFlight));
    this.initialDelayMs = opts.retryInitialDelayMs ?? 250;
    this.maxDelayMs = Math.max(this.initialDelayMs, opts.retryMaxDelayMs ?? 4000);
    this.preferRest = opts.preferRest ?? true;
    this.authAttempts = Math.max(1, opts.authAttempts ?? 3);
  }

  /** The URL in use, password redacted. */
  get url(): string {
    return this.endpoints[this.index].redacted;
  }

  /** HTTP requests bitcoind may still be working on: those answered to nobody yet, abandoned ones included. */
  get inFlight(): number {
    return this.endpoints.reduce((n, ep) => n + ep.limiter.inUse, 0);
  }

  /** Stops all retries; pending and later requests reject with DaemonError CLOSED. */
  close(): void {
    this.closer.abort(new DaemonError(DAEMON_ERROR.CLOSED, "daemon client closed"));
  }

  /** One RPC, retried through transient failures; Core's errors are thrown as DaemonError(code, message). */
  async call<T>(method: string, params: unknown[] = []): Promise<T> {
    return await this.withRetry(async (ep) => {
      const request = { method, params, id: this.nextId++ };
      return unwrap(replyItem(await this.post(ep, request, method), request.id)) as T;
    });
  }

  /** The same method with each params list, in one HTTP request; the first item error is thrown. */
  async batch<T>(method: string, paramsList: unknown[][]): Promise<T[]> {
    const settled = await this.batchSettled<T>(method, paramsList);
    return settled.map((s) => {
      if ("error" in s) throw new DaemonError(s.error.code, s.error.message);
      return s.result;
    });
  }

  /** Like batch, but each item's error is returned in place (e.g. -5 for a tx that left the mempool). */
  async batchSettled<T>(method: string, paramsList: unknown[][]): Promise<Settled<T>[]> {
    if (paramsList.length === 0) return [];
    return await this.withRetry(async (ep) => {
      const base = this.nextId;
      this.nextId += paramsList.length;
      const requests = paramsList.map((params, i) => ({ method, params, id: base + i }));
      const items = replyBatch(await this.post(ep, requests, method), requests);
      return items.map((item) => {
        if (item.error != null) return { error: errorOf(item.error) };
        return { result: item.result as T };
      });
    });
  }

  /**
   * Learns the node's version and chain (at first contact this is logged) and throws DaemonError WRONG_CHAIN
   * when it is not `expectedCoreChain` (Core's name: main, test, testnet4, signet, regtest). Nodes reached
   * later by failover are checked too.
   */
  async checkNetwork(expectedCoreChain: string): Promise<DaemonInfo> {
    this.expectedChain = expectedCoreChain;
    for (const ep of this.endpoints) if (ep.info) this.verifyChain(ep, ep.info);
    return await this.withRetry((ep) => Promise.resolve(ep.info!));
  }

  /** Height of the node's active tip. */
  async getBlockCount(): Promise<number> {
    const n = await this.call<unknown>("getblockcount");
    if (!Number.isSafeInteger(n)) throw badReply("getblockcount", n);
    return n as number;
  }

  /** Active-chain hashes (internal byte order) for heights from .. from+count-1. */
  async getBlockHashes(from: number, count: number): Promise<Uint8Array[]> {
    if (count <= 0) return [];
    const params = Array.from({ length: count }, (_, i) => [from + i]);
    const hexes = await this.batch<unknown>("getblockhash", params);
    return hexes.map((h) => {
      if (!isHex(h) || h.length !== 64) throw badReply("getblockhash", h);
      return fromHexReversed(h);
    });
  }

  /** Raw blocks for the given hashes (internal order), over REST when available, else batched getblock. */
  async getRawBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    if (hashes.length === 0) return [];
    if (this.preferRest && this.restAvailable !== false) {
      const ep = this.endpoints[this.index];
      if (this.restAvailable === undefined) this.setRest(await this.probeRest(ep), ep);
      if (this.restAvailable) return await this.restBlocks(ep, hashes);
    }
    return await this.rpcBlocks(hashes);
  }

  /** A raw transaction; without -txindex a confirmed one needs the hash of its block. */
  async getRawTransaction(txid: Uint8Array, blockHash?: Uint8Array): Promise<Uint8Array> {
    const params: unknown[] = [toHexReversed(txid), 0];
    if (blockHash) params.push(toHexReversed(blockHash));
    const hex = await this.call<unknown>("getrawtransaction", params);
    if (!isHex(hex) || hex.length === 0) throw badReply("getrawtransaction", hex);
    return fromHex(hex);
  }

  // --- retry machinery ---------------------------------------------------------------------------------------

  private async withRetry<T>(op: (ep: Endpoint) => Promise<T>): Promise<T> {
    let delay = this.initialDelayMs;
    let authFailures = 0;
    // URLs this call found unusable: it fails only when every configured one is.
    const unusable = new Set<number>();
    for (;;) {
      this.closer.signal.throwIfAborted();
      const i = this.index;
      const ep = this.endpoints[i];
      try {
        if (!ep.info) await this.identifyOnce(ep);
        const result = await op(ep);
        this.markUp(ep);
        return result;
      } catch (e) {
        if (this.closer.signal.aborted) throw this.closer.signal.reason;
        if (e instanceof LeftEndpoint) continue;
        let err = e;
        if (e instanceof AuthRejected) {
          if (e.changed) continue; // bitcoind restarted and wrote a new cookie: retry with it now.
          if (++authFailures >= this.authAttempts) {
            authFailures = 0;
            err = new DaemonError(
              DAEMON_ERROR.AUTH_REJECTED,
              `bitcoind rejected the RPC credentials of ${ep.redacted}: check DAEMON_URL or DAEMON_COOKIE`,
            );
          }
          // Core already delays its 401s by 250 ms; back off as well rather than hammer it.
        } else if (e instanceof TransientError) {
          this.markDown(ep, i, e);
        }
        if (err instanceof DaemonError) {
          if (!ENDPOINT_FAULTS.has(err.code) || !this.passOver(ep, i, err, unusable)) throw err;
          continue;
        } else if (!(err instanceof AuthRejected || err instanceof TransientError)) {
          throw err;
        }
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.maxDelayMs);
      }
    }
  }

  private markDown(ep: Endpoint, i: number, e: TransientError): void {
    if (e.warmup) {
      // Warm-up is progress, not failure: one line per phase, and no failover away from a node that is coming up.
      if (e.message !== this.warmupMessage) {
        this.warmupMessage = e.message;
        this.log.info(`daemon ${ep.redacted} is warming up: ${e.message}; waiting`);
      }
      return;
    }
    const wasDown = this.down;
    if (!wasDown) {
      this.down = true;
      this.log.warn(`daemon ${ep.redacted} unavailable: ${e.message}; retrying`);
    } else {
      this.log.debug(`daemon ${ep.redacted} still unavailable: ${e.message}`);
    }
    // Several requests fail together when a daemon dies; only the first may move us on, or we would skip URLs.
    if (this.endpoints.length > 1 && this.index === i) {
      this.moveTo((i + 1) % this.endpoints.length);
      const msg = `failing over to daemon ${this.endpoints[this.index].redacted}`;
      if (wasDown) this.log.debug(msg);
      else this.log.info(msg);
    }
  }

  /**
   * Moves on from URL `i`, unusable for `err`, to the next configured one this call has not found unusable;
   * false when there is none (a single URL, or all of them unusable), and the caller should fail with `err`.
   */
  private passOver(ep: Endpoint, i: number, err: DaemonError, unusable: Set<number>): boolean {
    unusable.add(i);
    if (unusable.size >= this.endpoints.length) return false;
    if (ep.fault !== err.message) {
      ep.fault = err.message;
      this.log.warn(`${err.message}; using the next DAEMON_URL`);
    }
    if (this.index === i) {
      let next = (i + 1) % this.endpoints.length;
      while (unusable.has(next)) next = (next + 1) % this.endpoints.length;
      this.moveTo(next);
    }
    return true;
  }

  // Uses URL `next` from now on; requests queued for the old one's slots follow.
  private moveTo(next: number): void {
    const old = this.endpoints[this.index];
    this.index = next;
    old.leaving.abort();
    old.leaving = new AbortController();
  }

  private markUp(ep: Endpoint): void {
    ep.fault = undefined;
    if (this.down) {
      this.down = false;
      this.log.info(`daemon ${ep.redacted} is back`);
      // It may have restarted with other options; ask again before the next REST fetch.
      if (this.restAvailable !== undefined) this.restAvailable = undefined;
    }
    this.warmupMessage = undefined;
  }

  private identifyOnce(ep: Endpoint): Promise<void> {
    ep.identifying ??= this.identify(ep).finally(() => (ep.identifying = undefined));
    return ep.identifying;
  }

  private async identify(ep: Endpoint): Promise<void> {
    const base = this.nextId;
    this.nextId += 2;
    const requests = [
      { method: "getnetworkinfo", params: [], id: base },
      { method: "getblockchaininfo", params: [], id: base + 1 },
    ];
    const [net, chain] = replyBatch(await this.post(ep, requests, "getnetworkinfo"), requests).map(
      unwrap,
    ) as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    if (typeof net !== "object" || net === null || typeof chain !== "object" || chain === null) {
      throw badReply("getnetworkinfo/getblockchaininfo", net);
    }
    const info: DaemonInfo = {
      version: formatCoreVersion(net.version),
      subversion: String(net.subversion ?? ""),
      chain: String(chain.chain ?? "?"),
      blocks: Number(chain.blocks ?? -1),
    };
    this.verifyChain(ep, info);
    this.log.info(`connected to daemon ${ep.redacted}: version ${info.version}, chain ${info.chain}`);
    ep.info = info;
  }

  private verifyChain(ep: Endpoint, info: DaemonInfo): void {
    if (this.expectedChain !== undefined && info.chain !== this.expectedChain) {
      throw new DaemonError(
        DAEMON_ERROR.WRONG_CHAIN,
        `daemon ${ep.redacted} is on chain '${info.chain}' but '${this.expectedChain}' is configured: ` +
          `point DAEMON_URL at a ${this.expectedChain} node or change NET`,
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.closer.signal;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  // --- one HTTP exchange -------------------------------------------------------------------------------------

  /** POSTs one JSON-RPC request or batch; returns the parsed JSON body or throws a classified error. */
  private async post(ep: Endpoint, body: RpcRequest | RpcRequest[], what: string): Promise<unknown> {
    const userPass = ep.credentials ? await ep.credentials.get() : undefined;
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (userPass !== undefined) headers.Authorization = basicAuthHeader(userPass);
    const { status, contentType, text } = await this.exchange(ep, ep.href, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    if (status === 401) {
      throw new AuthRejected(
        userPass !== undefined && ep.credentials ? await ep.credentials.refresh(userPass) : false,
      );
    }
    if (status === 403) {
      throw new DaemonError(
        DAEMON_ERROR.FORBIDDEN,
        `daemon ${ep.redacted} refused ${what} (HTTP 403): allow it for this user in bitcoind's -rpcwhitelist`,
      );
    }
    if (!contentType.includes("json")) {
      if (status === 404 || status === 405) {
        throw new DaemonError(
          DAEMON_ERROR.BAD_ENDPOINT,
          `${ep.redacted} answered HTTP ${status} without JSON: is DAEMON_URL bitcoind's RPC address?`,
        );
      }
      // Core's 503 "Work queue depth exceeded" and proxies' error pages land here.
      throw new TransientError(`HTTP ${status} ${snippet(text)}`.trim());
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new TransientError(`malformed JSON reply (HTTP ${status}, ${text.length} bytes)`);
    }
  }

  /** One fetch under the in-flight cap and the timeout, body read completely. */
  private async exchange(
    ep: Endpoint,
    href: string,
    init: RequestInit,
  ): Promise<{ status: number; contentType: string; text: string }> {
    const res = await this.fetchLimited(ep, href, init, (r) => r.text());
    return { status: res.status, contentType: res.headers.get("content-type") ?? "", text: res.body };
  }

  /**
   * One request under its endpoint's in-flight cap. The caller waits at most the timeout; the request itself
   * goes on, and keeps its slot, until bitcoind answers it or abandonMs passes. Core does not cancel an RPC whose
   * client hung up: when a stalled node's requests were dropped at the timeout, each freed slot sent another,
   * and the node's queue grew by the cap every timeout (to 150 requests after 15 timeouts with a cap of 10)
   * until it refused every RPC client with 503.
   */
  private async fetchLimited<B>(
    ep: Endpoint,
    href: string,
    init: RequestInit,
    read: (r: Response) => Promise<B>,
  ): Promise<{ status: number; headers: Headers; body: B }> {
    let release: () => void;
    const leaving = ep.leaving.signal;
    try {
      release = await ep.limiter.acquire(AbortSignal.any([this.closer.signal, leaving]));
    } catch (e) {
      if (this.closer.signal.aborted || !leaving.aborted) throw this.transportError(e);
      throw new LeftEndpoint();
    }
    const abandon = new AbortController();
    const abandonTimer = setTimeout(() => abandon.abort(), this.abandonMs);
    const request = (async () => {
      const res = await fetch(href, {
        ...init,
        signal: AbortSignal.any([abandon.signal, this.closer.signal]),
      });
      return { status: res.status, headers: res.headers, body: await read(res) };
    })();
    const settled = () => {
      clearTimeout(abandonTimer);
      release();
    };
    request.then(settled, settled);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TransientError(`no reply within ${this.timeoutMs / 1000}s`)),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([request, timeout]);
    } catch (e) {
      throw this.transportError(e);
    } finally {
      clearTimeout(timer);
    }
  }

  private transportError(e: unknown): Error {
    if (this.closer.signal.aborted) return this.closer.signal.reason;
    if (e instanceof TransientError) return e;
    if (e instanceof DOMException && e.name === "TimeoutError") {
      return new TransientError(`no reply within ${this.timeoutMs / 1000}s`);
    }
    const err = e as Error;
    const cause = err.cause instanceof Error ? err.cause.message : err.message;
    // Deno prefixes the URL; we never put credentials in it, but the prefix is noise in a log line.
    return new TransientError(String(cause).replace(/^error sending request for url \([^)]*\): /, ""));
  }

  // --- blocks ------------------------------------------------------------------------------------------------

  private async rpcBlocks(hashes: Uint8Array[]): Promise<Uint8Array[]> {
    const chunks: Promise<Uint8Array[]>[] = [];
    for (let i = 0; i < hashes.length; i += RPC_BLOCKS_PER_BATCH) {
      const part = hashes.slice(i, i + RPC_BLOCKS_PER_BATCH);
      chunks.push(
        this.batch<unknown>("getblock", part.map((h) => [toHexReversed(h), 0])).then((hexes) =>
          hexes.map((hex, k) => {
            if (!isHex(hex)) throw badReply("getblock", hex);
            return checkBlock(fromHex(hex), part[k], "getblock");
          })
        ),
      );
    }
    return (await Promise.all(chunks)).flat();
  }

  private async restBlocks(ep: Endpoint, hashes: Uint8Array[]): Promise<Uint8Array[]> {
    const out: (Uint8Array | undefined)[] = new Array(hashes.length);
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      // Stop taking work after a failure: the rest goes over JSON-RPC, which knows how to wait for a daemon.
      while (failure === undefined && next < hashes.length) {
        const k = next++;
        try {
          out[k] = await this.restBlock(ep, hashes[k]);
        } catch (e) {
          if (this.closer.signal.aborted) throw this.closer.signal.reason;
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.restConcurrency, hashes.length) }, worker));
    const missing = Array.from(out.keys()).filter((k) => out[k] === undefined);
    if (missing.length > 0) {
      this.log.debug(
        `REST block fetch from ${ep.redacted} failed (${(failure as Error).message}); ` +
          `fetching ${missing.length} block(s) over JSON-RPC`,
      );
      this.restAvailable = undefined;
      const got = await this.rpcBlocks(missing.map((k) => hashes[k]));
      missing.forEach((k, j) => (out[k] = got[j]));
    }
    return out as Uint8Array[];
  }

  private async restBlock(ep: Endpoint, hash: Uint8Array): Promise<Uint8Array> {
    const href = new URL(`rest/block/${toHexReversed(hash)}.bin`, ep.href).href;
    const res = await this.fetchLimited(ep, href, {}, async (r) => {
      if (r.status !== 200) {
        await r.body?.cancel();
        return undefined;
      }
      return await readBody(r);
    });
    if (res.body === undefined) throw new Error(`HTTP ${res.status}`);
    return checkBlock(res.body, hash, "REST");
  }

  private async probeRest(ep: Endpoint): Promise<boolean | undefined> {
    try {
      const res = await this.exchange(ep, new URL("rest/chaininfo.json", ep.href).href, {});
      if (res.status === 200) {
        JSON.parse(res.text);
        return true;
      }
      // Core without -rest has no handler there (404); some proxies forbid the path (403).
      if (res.status === 404 || res.status === 403) return false;
      return undefined;
    } catch (e) {
      if (this.closer.signal.aborted) throw this.closer.signal.reason;
      this.log.debug(`REST probe of ${ep.redacted} failed: ${(e as Error).message}`);
      return undefined;
    }
  }

  private setRest(available: boolean | undefined, ep: Endpoint): void {
    if (available === false) {
      this.log.info(
        "REST interface disabled on the daemon; fetching blocks over JSON-RPC (enable -rest=1 to halve the bytes)",
      );
    } else if (available === true) {
      this.log.debug(`fetching blocks over REST from ${ep.redacted}`);
    }
    this.restAvailable = available;
  }
}

function endpointOf(url: string, cookie: CookieCredentials | undefined, limiter: Limiter): Endpoint {
  const u = new URL(url);
  let credentials: CredentialSource | undefined = cookie;
  if (u.username) {
    credentials = new StaticCredentials(`${decode(u.username)}:${decode(u.password)}`);
  }
  u.username = "";
  u.password = "";
  return {
    href: u.href,
    redacted: redactUrl(url),
    credentials,
    info: undefined,
    identifying: undefined,
    fault: undefined,
    limiter,
    leaving: new AbortController(),
  };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Core's integer version (280100) as "28.1.0". */
export function formatCoreVersion(v: unknown): string {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) return String(v);
  return `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`;
}

function replyItem(reply: unknown, id: number): RpcReply {
  if (typeof reply !== "object" || reply === null || Array.isArray(reply)) {
    throw new TransientError("reply is not a JSON-RPC object");
  }
  const item = reply as RpcReply;
  if (item.error == null && !("result" in item)) {
    throw new TransientError("reply has neither result nor error");
  }
  if (item.id !== undefined && item.id !== null && item.id !== id) {
    throw new TransientError(`reply id ${JSON.stringify(item.id)} does not match request ${id}`);
  }
  retryable(item);
  return item;
}

function replyBatch(reply: unknown, requests: RpcRequest[]): RpcReply[] {
  if (!Array.isArray(reply)) {
    // Some proxies (and Core for a whole-batch parse failure) answer a batch with one error object.
    if (typeof reply === "object" && reply !== null) retryable(reply as RpcReply);
    throw new TransientError("batch reply is not an array");
  }
  const byId = new Map<unknown, RpcReply>();
  for (const r of reply) {
    if (typeof r === "object" && r !== null) byId.set((r as RpcReply).id, r as RpcReply);
  }
  return requests.map((req) => {
    const item = byId.get(req.id);
    if (!item) throw new TransientError(`batch reply lacks id ${req.id}`);
    if (item.error == null && !("result" in item)) {
      throw new TransientError("batch item has neither result nor error");
    }
    retryable(item);
    return item;
  });
}

/** Turns the RPC errors that mean "try again" into TransientError. */
function retryable(item: RpcReply): void {
  if (item.error == null) return;
  const { code, message } = errorOf(item.error);
  if (code === RPC_IN_WARMUP) throw new TransientError(message, true);
  if (code === RPC_PARSE_ERROR) throw new TransientError(`bitcoind could not parse the request: ${message}`);
}

function errorOf(error: { code?: unknown; message?: unknown }): { code: number; message: string } {
  const code = typeof error.code === "number" ? error.code : -1;
  const message = typeof error.message === "string" ? error.message : JSON.stringify(error);
  return { code, message };
}

function unwrap(item: RpcReply): unknown {
  if (item.error != null) {
    const { code, message } = errorOf(item.error);
    throw new DaemonError(code, message);
  }
  return item.result;
}

function badReply(method: string, value: unknown): DaemonError {
  const shown = typeof value === "string" ? `'${value.slice(0, 80)}'` : JSON.stringify(value)?.slice(0, 80);
  return new DaemonError(DAEMON_ERROR.BAD_REPLY, `daemon answered ${method} with ${shown}`);
}

function checkBlock(raw: Uint8Array, hash: Uint8Array, via: string): Uint8Array {
  if (raw.length < 81 || !equalBytes(sha256d(raw.subarray(0, 80)), hash)) {
    throw new DaemonError(
      DAEMON_ERROR.BAD_REPLY,
      `daemon sent ${raw.length} bytes over ${via} that are not block ${toHexReversed(hash)}`,
    );
  }
  return raw;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function snippet(text: string): string {
  const t = text.trim().replace(/\s+/g, " ");
  return t.length > 120 ? t.slice(0, 120) + "…" : t;
}

// Reads a body into one buffer of its Content-Length. Response.arrayBuffer() costs several times the block
// size in native memory that is returned late (measured: 700 MB peak RSS against 250 MB fetching 1 GB of
// blocks while keeping 100 MB of them).
async function readBody(r: Response): Promise<Uint8Array> {
  const length = Number(r.headers.get("content-length"));
  if (!Number.isSafeInteger(length) || length <= 0 || r.body === null) {
    return new Uint8Array(await r.arrayBuffer());
  }
  const out = new Uint8Array(length);
  let at = 0;
  for await (const chunk of r.body) {
    if (at + chunk.length > length) throw new Error("REST body longer than its Content-Length");
    out.set(chunk, at);
    at += chunk.length;
  }
  if (at !== length) throw new Error("REST body shorter than its Content-Length");
  return out;
}
