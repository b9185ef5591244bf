// Newline-delimited text from a byte stream (a socket's `readable`, a child's stdout): the framing every test
// client and log reader needs, in one place.

/**
 * Reads `\n`-terminated lines from a byte stream; a reset or a closed resource counts as the end. An
 * unterminated last line is dropped (a reply cut off by a disconnect is no reply) unless `keepTail`.
 */
export class LineReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #keepTail: boolean;
  readonly #decoder = new TextDecoder();
  #buf = "";
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>, opts: { keepTail?: boolean } = {}) {
    this.#reader = stream.getReader();
    this.#keepTail = opts.keepTail ?? false;
  }

  /** The next line without its `\n`; null at the end (after the unterminated tail, with `keepTail`). */
  async next(): Promise<string | null> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return line;
      }
      if (this.#ended) {
        const rest = this.#buf;
        this.#buf = "";
        return rest === "" || !this.#keepTail ? null : rest;
      }
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await this.#reader.read();
      } catch {
        chunk = { done: true, value: undefined };
      }
      if (chunk.done) {
        this.#ended = true;
        this.#buf += this.#decoder.decode();
      } else {
        this.#buf += this.#decoder.decode(chunk.value, { stream: true });
      }
    }
  }
}
