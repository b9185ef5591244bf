// Little-endian cursor reading and growable writing over Uint8Array, with Bitcoin's CompactSize.
import { ChainFormatError } from "./errors.ts";

/** Largest CompactSize Bitcoin Core accepts as a length (MAX_SIZE). */
export const MAX_COMPACT_SIZE = 0x02000000;

/** A cursor over bytes; every read checks bounds and throws ChainFormatError with the offset. */
export class ByteReader {
  readonly view: DataView;
  pos: number;

  constructor(readonly data: Uint8Array, offset = 0) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.pos = offset;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.data.length - this.pos;
  }

  /** Throws unless `n` more bytes are available. */
  need(n: number): void {
    if (n > this.data.length - this.pos) {
      throw new ChainFormatError(
        "truncated",
        `need ${n} bytes, ${this.data.length - this.pos} left`,
        this.pos,
      );
    }
  }

  /** Reads one byte. */
  u8(): number {
    this.need(1);
    return this.data[this.pos++];
  }

  /** Reads a uint16 LE. */
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  /** Reads a uint32 LE. */
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Reads an int32 LE. */
  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Reads a uint64 LE as a number; throws above 2^53 (no Bitcoin amount or count gets there). */
  u64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    if (hi > 0x1fffff) throw new ChainFormatError("u64-too-large", "64-bit value exceeds 2^53", this.pos);
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }

  /** Reads an int64 LE amount as a number; throws outside ±2^53. */
  i64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getInt32(this.pos + 4, true);
    if (hi > 0x1fffff || hi < -0x200000) {
      throw new ChainFormatError("i64-too-large", "64-bit amount exceeds 2^53", this.pos);
    }
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }

  /** Reads a canonical CompactSize no larger than `max` (default MAX_COMPACT_SIZE). */
  compactSize(max = MAX_COMPACT_SIZE): number {
    const start = this.pos;
    const first = this.u8();
    let v: number;
    if (first < 0xfd) return first;
    if (first === 0xfd) {
      v = this.u16();
      if (v < 0xfd) throw new ChainFormatError("non-canonical-varint", "non-canonical CompactSize", start);
    } else if (first === 0xfe) {
      v = this.u32();
      if (v <= 0xffff) throw new ChainFormatError("non-canonical-varint", "non-canonical CompactSize", start);
    } else {
      v = this.u64();
      if (v <= 0xffffffff) {
        throw new ChainFormatError("non-canonical-varint", "non-canonical CompactSize", start);
      }
    }
    if (v > max) throw new ChainFormatError("varint-too-large", `CompactSize ${v} exceeds ${max}`, start);
    return v;
  }

  /** Returns a view (not a copy) of the next `n` bytes. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads a CompactSize length and returns a view of that many bytes. */
  varBytes(): Uint8Array {
    const start = this.pos;
    const n = this.compactSize();
    if (n > this.remaining) {
      throw new ChainFormatError("truncated", `length ${n} runs past the end of the data`, start);
    }
    return this.bytes(n);
  }

  /** Advances the cursor by `n` bytes. */
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
}

/** Number of bytes a CompactSize encoding of `n` takes. */
export function compactSizeLength(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : n <= 0xffffffff ? 5 : 9;
}

/** An append-only little-endian buffer that grows by doubling. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Appends one byte. */
  u8(v: number): this {
    this.reserve(1);
    this.buf[this.length++] = v;
    return this;
  }

  /** Appends a uint16 LE. */
  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }

  /** Appends a uint32 LE. */
  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }

  /** Appends an int32 LE. */
  i32(v: number): this {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** Appends a 64-bit LE integer given as a safe JS integer (amounts, counts); negative allowed. */
  i64(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
    this.reserve(8);
    const lo = v >>> 0;
    const hi = Math.floor(v / 0x100000000);
    this.view.setUint32(this.length, lo, true);
    this.view.setInt32(this.length + 4, hi, true);
    this.length += 8;
    return this;
  }

  /** Appends a canonical CompactSize. */
  compactSize(n: number): this {
    if (n < 0xfd) return this.u8(n);
    if (n <= 0xffff) return this.u8(0xfd).u16(n);
    if (n <= 0xffffffff) return this.u8(0xfe).u32(n);
    return this.u8(0xff).i64(n);
  }

  /** Appends raw bytes. */
  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }

  /** Appends a CompactSize length followed by the bytes. */
  varBytes(b: Uint8Array): this {
    return this.compactSize(b.length).bytes(b);
  }

  /** A view of everything written so far (shares memory until the next write that grows). */
  written(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** A copy of everything written so far, sized exactly. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}
