// Walks a serialized transaction recording where its parts are, without hashing or allocating per part.
// The node replays whole chains through this when it builds its UTXO set; txids come from the cache.
import { ChainFormatError } from "../../src/chain/errors.ts";

/** Offsets of one transaction's inputs and outputs inside the buffer it was scanned in. */
export class TxScanner {
  start = 0;
  end = 0;
  /** Offset just past the outputs (where witnesses or the locktime begin). */
  prefixEnd = 0;
  segwit = false;
  nIn = 0;
  nOut = 0;
  /** Offset of each input's previous txid. */
  inPrevOff = new Uint32Array(64);
  inVout = new Uint32Array(64);
  outValue = new Float64Array(64);
  /** Offset and length of each output script. */
  outScriptOff = new Uint32Array(64);
  outScriptLen = new Uint32Array(64);
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new ChainFormatError("truncated", "transaction runs past the end of its buffer", this.pos);
    }
  }

  private varint(): number {
    this.need(1);
    const b = this.buf, p = this.pos;
    const first = b[p];
    if (first < 0xfd) {
      this.pos = p + 1;
      return first;
    }
    if (first === 0xfd) {
      this.need(3);
      this.pos = p + 3;
      return b[p + 1] | (b[p + 2] << 8);
    }
    if (first === 0xfe) {
      this.need(5);
      this.pos = p + 5;
      return (b[p + 1] | (b[p + 2] << 8) | (b[p + 3] << 16) | (b[p + 4] << 24)) >>> 0;
    }
    throw new ChainFormatError("varint-too-large", "64-bit CompactSize in a transaction", p);
  }

  private ensureIn(n: number): void {
    if (n <= this.inPrevOff.length) return;
    const cap = Math.max(n, this.inPrevOff.length * 2);
    this.inPrevOff = new Uint32Array(cap);
    this.inVout = new Uint32Array(cap);
  }

  private ensureOut(n: number): void {
    if (n <= this.outValue.length) return;
    const cap = Math.max(n, this.outValue.length * 2);
    this.outValue = new Float64Array(cap);
    this.outScriptOff = new Uint32Array(cap);
    this.outScriptLen = new Uint32Array(cap);
  }

  /** Scans the transaction starting at `buf[off]`; returns the offset just past it. */
  scan(buf: Uint8Array, off: number): number {
    this.buf = buf;
    this.start = off;
    this.pos = off + 4;
    this.need(2);
    this.segwit = buf[this.pos] === 0 && buf[this.pos + 1] === 1;
    if (this.segwit) this.pos += 2;
    const nIn = this.varint();
    this.ensureIn(nIn);
    this.nIn = nIn;
    for (let i = 0; i < nIn; i++) {
      this.need(36);
      this.inPrevOff[i] = this.pos;
      const p = this.pos + 32;
      this.inVout[i] = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
      this.pos += 36;
      const len = this.varint();
      this.need(len + 4);
      this.pos += len + 4;
    }
    const nOut = this.varint();
    this.ensureOut(nOut);
    this.nOut = nOut;
    for (let j = 0; j < nOut; j++) {
      this.need(8);
      const p = this.pos;
      const lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
      const hi = (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24)) >>> 0;
      this.outValue[j] = hi * 4294967296 + lo;
      this.pos += 8;
      const len = this.varint();
      this.need(len);
      this.outScriptOff[j] = this.pos;
      this.outScriptLen[j] = len;
      this.pos += len;
    }
    this.prefixEnd = this.pos;
    if (this.segwit) {
      for (let i = 0; i < nIn; i++) {
        const items = this.varint();
        for (let k = 0; k < items; k++) {
          const len = this.varint();
          this.need(len);
          this.pos += len;
        }
      }
    }
    this.need(4);
    this.pos += 4;
    this.end = this.pos;
    return this.pos;
  }

  /** Size without witness data (marker, flag and witnesses removed). */
  get baseSize(): number {
    return this.segwit ? this.prefixEnd - this.start - 2 + 4 : this.end - this.start;
  }

  /** BIP141 weight: 3 × base size + total size. */
  get weight(): number {
    return 3 * this.baseSize + (this.end - this.start);
  }
}

/** Offset of the first transaction in a raw block (just past the header and the tx count). */
export function firstTxOffset(raw: Uint8Array): number {
  const first = raw[80];
  return 80 + (first < 0xfd ? 1 : first === 0xfd ? 3 : 5);
}
