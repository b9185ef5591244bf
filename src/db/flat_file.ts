// Append-only files of fixed-size records. Reads and writes are positional (pread/pwrite through node:fs): one
// system call and no shared cursor, so a read can never land where a write moved the cursor, and the server's
// header and txid reads cost one op each instead of a seek plus a read (Deno.FsFile has no positional read).
import fs from "node:fs";
import { DbError } from "./errors.ts";

/** One flat file of `recordSize`-byte records. */
export class FlatFile {
  // -1 once closed: the number may already belong to another file, so nothing may use it again.
  #fd: number;

  private constructor(fd: number, readonly path: string, readonly recordSize: number) {
    this.#fd = fd;
  }

  /** Opens (creating if missing) the file at `path`. */
  static open(path: string, recordSize: number): FlatFile {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    return new FlatFile(fd, path, recordSize);
  }

  /** Current size of the file in bytes. */
  byteLength(): number {
    return fs.fstatSync(this.#handle()).size;
  }

  /** Reads `count` records from record `index`; throws DbError "corrupt" if the file is too short. */
  read(index: number, count: number): Uint8Array {
    const out = new Uint8Array(count * this.recordSize);
    this.readInto(index * this.recordSize, out);
    return out;
  }

  /** Fills `out` from byte `position`. */
  readInto(position: number, out: Uint8Array): void {
    const fd = this.#handle();
    let got = 0;
    while (got < out.length) {
      const n = fs.readSync(fd, out, got, out.length - got, position + got);
      if (n === 0) {
        throw new DbError(
          "corrupt",
          `${this.path} ends at ${position + got} bytes, reading ${out.length} bytes at ${position}; ` +
            "the database is damaged: delete it and resync",
        );
      }
      got += n;
    }
  }

  /** Writes `data` at byte `position`. */
  writeAt(position: number, data: Uint8Array): void {
    const fd = this.#handle();
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(fd, data, done, data.length - done, position + done);
    }
  }

  /** Flushes written data to the disk (off the event loop). */
  sync(): Promise<void> {
    const fd = this.#handle();
    return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => err ? reject(err) : resolve()));
  }

  /** Cuts the file to `bytes`. */
  truncate(bytes: number): void {
    fs.ftruncateSync(this.#handle(), bytes);
  }

  /** Closes the handle; closing twice is harmless. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    fs.closeSync(fd);
  }

  #handle(): number {
    if (this.#fd < 0) throw new DbError("closed", `${this.path} is closed: the database is shutting down`);
    return this.#fd;
  }
}
