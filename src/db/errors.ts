/** Raised by the storage layer; `code` is stable and machine-readable, the message says what to do. */
export class DbError extends Error {
  override name = "DbError";
  constructor(
    /** e.g. "wrong-network", "newer-format", "corrupt", "locked", "not-a-database". */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
