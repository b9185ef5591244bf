// Errors of the bitcoind client. Core's own RPC errors keep Core's code so callers can match on it (-5, -8, -25,
// -26 ...); failures of the client itself get codes in the -1000 range, which Core never uses.

/** A failed daemon request: `code` is Core's RPC error code or one of DAEMON_ERROR. */
export class DaemonError extends Error {
  override name = "DaemonError";
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Codes of errors raised by the client rather than by bitcoind's RPC layer. */
export const DAEMON_ERROR = {
  /** bitcoind keeps answering 401 to credentials that are not changing. */
  AUTH_REJECTED: -1001,
  /** HTTP 403: the RPC user may not call the method (-rpcwhitelist). */
  FORBIDDEN: -1002,
  /** The URL answers, but not like bitcoind's RPC port (404/405 without JSON). */
  BAD_ENDPOINT: -1003,
  /** A reply of the right shape but impossible content (e.g. a block whose header hashes elsewhere). */
  BAD_REPLY: -1004,
  /** The node runs another chain than the configured network. */
  WRONG_CHAIN: -1005,
  /** close() was called while the request waited. */
  CLOSED: -1006,
  /** The cookie file exists but does not hold `user:password`. */
  BAD_COOKIE: -1007,
} as const;

/** Core's code for "still starting up" (the message names the current phase). */
export const RPC_IN_WARMUP = -28;
/** Core's code for an unparsable request; only a mangling proxy can cause it with this client, so retry. */
export const RPC_PARSE_ERROR = -32700;

/** A failure worth retrying (daemon down, busy, warming up, garbled reply). Never leaves the client. */
export class TransientError extends Error {
  override name = "TransientError";
  constructor(message: string, readonly warmup = false) {
    super(message);
  }
}

/** Whether `err` only says the client was closed (on shutdown): nothing failed, so nothing to log. */
export function isDaemonClosed(err: unknown): boolean {
  return err instanceof DaemonError && err.code === DAEMON_ERROR.CLOSED;
}

/** Core's code for miscellaneous failures, among them "Block not available (pruned data)". */
export const RPC_MISC_ERROR = -1;

/** Whether `err` is bitcoind saying it pruned the block asked for: it will never have it again. */
export function isPrunedBlock(err: unknown): boolean {
  return err instanceof DaemonError && err.code === RPC_MISC_ERROR && /pruned data/i.test(err.message);
}
