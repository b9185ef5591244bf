// Append-only files of fixed-size records. Reads are synchronous (seek + read with no await in between), so
// they cannot interleave with a write on the same handle; the server reads headers and txids this way.
import { DbError } from "./errors.ts";

/** One flat file of `recordSize`-byte records. */
export class FlatFile {
  private constructor(
    private readonly file: Deno.FsFile,
    readonly path: string,
    readonly recordSize: number,
  ) {}

  /** Opens (creating if missing) the file at `path`. */
  static open(path: string, recordSize: number): FlatFile {
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    return new FlatFile(file, path, recordSize);
  }

  /** Current size of the file in bytes. */
  byteLength(): number {
    return this.file.statSync().size;
  }

  /** Reads `count` records from record `index`; throws DbError "corrupt" if the file is too short. */
  read(index: number, count: number): Uint8Array {
    const out = new Uint8Array(count * this.recordSize);
    this.readInto(index * this.recordSize, out);
    return out;
  }

  /** Fills `out` from byte `position`. */
  readInto(position: number, out: Uint8Array): void {
    this.file.seekSync(position, Deno.SeekMode.Start);
    let got = 0;
    while (got < out.length) {
      const n = this.file.readSync(out.subarray(got));
      if (n === null || n === 0) {
        throw new DbError(
          "corrupt",
          `${this.path} ends at ${position + got} bytes, reading ${out.length} bytes at ${position}; ` +
            "the database is damaged: delete it and resync",
        );
      }
      got += n;
    }
  }

  /** Writes `data` at byte `position` (synchronously, so no read can move the cursor in between). */
  writeAt(position: number, data: Uint8Array): void {
    this.file.seekSync(position, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) done += this.file.writeSync(data.subarray(done));
  }

  /** Flushes written data to the disk. */
  async sync(): Promise<void> {
    await this.file.syncData();
  }

  /** Cuts the file to `bytes`. */
  truncate(bytes: number): void {
    this.file.truncateSync(bytes);
  }

  /** Closes the handle. */
  close(): void {
    this.file.close();
  }
}
