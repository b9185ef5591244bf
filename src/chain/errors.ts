/** Raised when bytes do not form a valid Bitcoin structure; `offset` is where decoding stopped. */
export class ChainFormatError extends Error {
  override name = "ChainFormatError";
  constructor(
    /** Stable machine-readable reason, e.g. "truncated", "non-canonical-varint". */
    readonly code: string,
    message: string,
    /** Byte offset into the buffer being decoded at which the problem was found. */
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}
