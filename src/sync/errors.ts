// Errors of the sync side that stop the indexer, with a stable code and a message an operator can act on.

/** Base of the sync side's errors (the processor's among them); `code` is stable. */
export class SyncError extends Error {
  override name = "SyncError";
  constructor(readonly code: string, message: string) {
    super(message);
  }
}
