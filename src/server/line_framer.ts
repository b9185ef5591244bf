// Newline framing for Electrum's TCP and SSL transports, with a bounded buffer: pure, so the socket thread
// (src/server/socket_thread.ts) runs it without loading the rest of the server.
/** Receives what LineFramer extracts from the byte stream. */
export interface LineSink {
  /** One complete line without its "\n"; a view that is only valid during the call. */
  line(bytes: Uint8Array): void;
  /**
   * Part of a line longer than the limit was dropped: `bytes` arrived since the last report. `first` is true for
   * the report that finds the line too long, made as soon as it is (a line that never ends must not be read for
   * free); later parts are reported each time another limit's worth arrives, and at the line's end.
   */
  oversize(bytes: number, first: boolean): void;
}

const NEWLINE = 0x0a;

/**
 * Splits a byte stream into "\n"-terminated lines of at most `maxLine` bytes. A longer line is dropped and the
 * stream resynchronises at the next newline, so memory stays under maxLine + one read chunk whatever arrives.
 */
export class LineFramer {
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  /** Bytes of an oversized line skipped and not yet reported; -1 when not skipping. */
  #skipped = -1;

  constructor(readonly maxLine: number) {}

  /** Bytes held for an incomplete line. */
  get buffered(): number {
    return this.#partBytes;
  }

  /** Feeds a chunk; complete lines go to `sink` before this returns. `chunk` may be reused afterwards. */
  push(chunk: Uint8Array, sink: LineSink): void {
    let start = 0;
    const end = chunk.length;
    while (start < end) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) {
        this.#hold(chunk.subarray(start), sink);
        return;
      }
      if (this.#skipped >= 0) {
        const rest = this.#skipped + nl - start;
        if (rest > 0) sink.oversize(rest, false);
        this.#skipped = -1;
      } else if (this.#partBytes === 0) {
        if (nl - start > this.maxLine) sink.oversize(nl - start, true);
        else sink.line(chunk.subarray(start, nl));
      } else {
        const total = this.#partBytes + nl - start;
        if (total > this.maxLine) {
          sink.oversize(total, true);
        } else {
          const line = new Uint8Array(total);
          let off = 0;
          for (const p of this.#parts) {
            line.set(p, off);
            off += p.length;
          }
          line.set(chunk.subarray(start, nl), off);
          sink.line(line);
        }
        this.#parts = [];
        this.#partBytes = 0;
      }
      start = nl + 1;
    }
  }

  #hold(rest: Uint8Array, sink: LineSink): void {
    if (this.#skipped >= 0) {
      this.#skipped += rest.length;
      if (this.#skipped >= this.maxLine) {
        sink.oversize(this.#skipped, false);
        this.#skipped = 0;
      }
      return;
    }
    if (this.#partBytes + rest.length > this.maxLine) {
      // Too long already: reported now, then what we hold is forgotten and bytes are counted until the newline.
      sink.oversize(this.#partBytes + rest.length, true);
      this.#skipped = 0;
      this.#parts = [];
      this.#partBytes = 0;
      return;
    }
    this.#parts.push(rest.slice());
    this.#partBytes += rest.length;
  }
}
