// compact_history: merges each script's history rows into few large ones. The layout writes one row per script
// per flush, and at the tip every block is a flush, so a busy script gains a row per block: after a year of
// blocks that is ~50,000 keys for one script, each costing LevelDB key overhead and an iterator step on every
// read of its history. Merging keeps the same tx_nums in far fewer rows. It runs in chunks, each between two
// steps of the sync loop, so blocks keep being indexed and clients keep being served while it works.
import type { HistoryCompaction } from "../db/store.ts";
import type { Log } from "../log.ts";

/** The store side of compaction. */
export interface CompactableStore {
  /** Merges rows from `from` (the start when undefined), visiting at most `maxRows` rows, in one atomic batch. */
  compactHistory(from: Uint8Array | undefined, maxRows: number): Promise<HistoryCompaction>;
}

/** The totals of a compaction run. */
export interface CompactionResult {
  rows_before: number;
  rows_after: number;
  rows_written: number;
  rows_deleted: number;
  chunks: number;
  seconds: number;
}

/** Rows visited per chunk: big enough to be efficient, small enough that a new block waits at most a moment. */
export const CHUNK_ROWS = 20_000;

/** Compacts the whole history index chunk by chunk, each chunk run through `exclusive` (the sync loop's). */
export async function compactAllHistory(
  store: CompactableStore,
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>,
  log: Pick<Log, "info">,
  chunkRows = CHUNK_ROWS,
): Promise<CompactionResult> {
  const started = performance.now();
  let from: Uint8Array | undefined;
  const total = { read: 0, written: 0, deleted: 0, chunks: 0 };
  let lastLog = started;
  do {
    const step = await exclusive(() => store.compactHistory(from, chunkRows));
    total.read += step.rowsRead;
    total.written += step.rowsWritten;
    total.deleted += step.rowsDeleted;
    total.chunks++;
    from = step.next;
    if (performance.now() - lastLog > 10_000) {
      lastLog = performance.now();
      log.info(`compacting history: ${total.read} rows visited, ${total.deleted} merged away so far`);
    }
  } while (from !== undefined);
  const result: CompactionResult = {
    rows_before: total.read,
    rows_after: total.read - total.deleted,
    rows_written: total.written,
    rows_deleted: total.deleted,
    chunks: total.chunks,
    seconds: Math.round((performance.now() - started) / 10) / 100,
  };
  log.info(
    `compacted history: ${result.rows_before} rows → ${result.rows_after} in ${result.seconds}s (${result.chunks} chunks)`,
  );
  return result;
}
