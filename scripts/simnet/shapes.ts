// The byte shapes of simnet's fake transactions: output scripts of every common type and the scriptSig /
// witness a real wallet would attach when spending each, with exact sizes so a transaction's weight and
// fee are known before a byte is written. Signatures and keys are PRNG bytes in the right shape; nothing
// here is cryptographically valid, which is fine because simnet (like our indexer) never checks scripts.
import type { ByteWriter } from "../../src/chain/bytes.ts";
import type { Prng } from "./prng.ts";

/** Base output kinds; the low 4 bits of a kind code. */
export const Kind = {
  P2PK: 0,
  P2PKH: 1,
  P2SH: 2,
  P2WPKH: 3,
  P2WSH: 4,
  P2TR: 5,
  MULTISIG: 6,
  NONSTANDARD: 7,
  NULLDATA: 8,
} as const;

/**
 * A kind code is the base kind plus a spend-variant bit (0x10) derived from the script bytes, so both the
 * generator and a node that only sees the chain agree on how an output is spent:
 * P2SH: 2-of-3 multisig vs P2SH-P2WPKH; P2WSH: 2-of-3 multisig vs single key; P2TR: key vs script path.
 */
export const VARIANT = 0x10;

/** Bytes of payload an output script of each base kind consumes (the random part of the script). */
export const PAYLOAD_SIZE = 66;

/** Length of the output script for a kind code (NULLDATA excluded: its length varies). */
export function scriptLength(code: number): number {
  switch (code & 0x0f) {
    case Kind.P2PK:
      return code & VARIANT ? 67 : 35;
    case Kind.P2PKH:
      return 25;
    case Kind.P2SH:
      return 23;
    case Kind.P2WPKH:
      return 22;
    case Kind.P2WSH:
    case Kind.P2TR:
      return 34;
    case Kind.MULTISIG:
      return 71;
    case Kind.NONSTANDARD:
      return 35;
  }
  throw new RangeError(`no fixed script length for kind code ${code}`);
}

/** Whether a spend variant applies, decided from the first random script byte (realistic mixes). */
function variantFor(base: number, firstByte: number): number {
  if (base === Kind.P2SH) return (firstByte & 3) === 0 ? 0 : VARIANT; // mostly P2SH-P2WPKH
  if (base === Kind.P2WSH) return (firstByte & 3) === 0 ? VARIANT : 0; // mostly multisig
  if (base === Kind.P2TR) return (firstByte & 7) === 0 ? VARIANT : 0; // mostly key path
  return 0;
}

/**
 * Fills `payload[off..off+PAYLOAD_SIZE)` with fresh random script material for `base` and returns the
 * full kind code (variant included). P2PK gets an uncompressed key one time in eight, as old coins do.
 */
export function freshPayload(prng: Prng, base: number, payload: Uint8Array, off: number): number {
  prng.fill(payload, off, PAYLOAD_SIZE);
  // Keys must look like keys (02/03 prefix) or Core's Solver would call the script nonstandard.
  payload[off] = 2 | (payload[off] & 1);
  payload[off + 33] = 2 | (payload[off + 33] & 1);
  if (base === Kind.P2PK) return (payload[off + 65] & 7) === 0 ? Kind.P2PK | VARIANT : Kind.P2PK;
  // 20-byte hashes come from payload[1..21), 32-byte programs from payload[34..66): both clear of the key
  // prefix bytes forced above. The variant is read from what becomes script[2].
  return base |
    variantFor(base, base === Kind.P2WSH || base === Kind.P2TR ? payload[off + 34] : payload[off + 1]);
}

/** Writes CompactSize(len) ‖ script for a kind code from its payload (see freshPayload). */
export function writeOutputScript(w: ByteWriter, code: number, payload: Uint8Array, off: number): void {
  const p = payload;
  switch (code & 0x0f) {
    case Kind.P2PK:
      if (code & VARIANT) {
        w.u8(67).u8(65).u8(4).bytes(p.subarray(off + 1, off + 65)).u8(0xac);
      } else {
        w.u8(35).u8(33).bytes(p.subarray(off, off + 33)).u8(0xac);
      }
      return;
    case Kind.P2PKH:
      w.u8(25).u8(0x76).u8(0xa9).u8(20).bytes(p.subarray(off + 1, off + 21)).u8(0x88).u8(0xac);
      return;
    case Kind.P2SH:
      w.u8(23).u8(0xa9).u8(20).bytes(p.subarray(off + 1, off + 21)).u8(0x87);
      return;
    case Kind.P2WPKH:
      w.u8(22).u8(0).u8(20).bytes(p.subarray(off + 1, off + 21));
      return;
    case Kind.P2WSH:
      w.u8(34).u8(0).u8(32).bytes(p.subarray(off + 34, off + 66));
      return;
    case Kind.P2TR:
      w.u8(34).u8(0x51).u8(32).bytes(p.subarray(off + 34, off + 66));
      return;
    case Kind.MULTISIG: // bare 1-of-2
      w.u8(71).u8(0x51).u8(33).bytes(p.subarray(off, off + 33)).u8(33).bytes(p.subarray(off + 33, off + 66))
        .u8(0x52).u8(0xae);
      return;
    case Kind.NONSTANDARD: // a hash puzzle: OP_SHA256 <32> OP_EQUAL, spendable by anyone who knows the preimage
      w.u8(35).u8(0xa8).u8(32).bytes(p.subarray(off + 34, off + 66)).u8(0x87);
      return;
  }
  throw new RangeError(`cannot write an output script for kind code ${code}`);
}

/** Writes an OP_RETURN output script carrying `n` (0–80) random bytes. */
export function writeNullData(w: ByteWriter, prng: Prng, n: number, scratch: Uint8Array): void {
  prng.fill(scratch, 0, n);
  if (n <= 75) w.u8(n + 2).u8(0x6a).u8(n);
  else w.u8(n + 3).u8(0x6a).u8(0x4c).u8(n);
  w.bytes(scratch.subarray(0, n));
}

/** Size in bytes of the OP_RETURN script writeNullData makes for `n` data bytes (without its length prefix). */
export function nullDataScriptLength(n: number): number {
  return n <= 75 ? n + 2 : n + 3;
}

/** The kind code of an existing output script, as the generator would have assigned it; -1 if unspendable. */
export function kindCodeOf(script: Uint8Array): number {
  const n = script.length;
  if (n === 25 && script[0] === 0x76 && script[1] === 0xa9) return Kind.P2PKH;
  if (n === 23 && script[0] === 0xa9) return Kind.P2SH | variantFor(Kind.P2SH, script[2]);
  if (n === 22 && script[0] === 0 && script[1] === 20) return Kind.P2WPKH;
  if (n === 34 && script[0] === 0 && script[1] === 32) return Kind.P2WSH | variantFor(Kind.P2WSH, script[2]);
  if (n === 34 && script[0] === 0x51 && script[1] === 32) return Kind.P2TR | variantFor(Kind.P2TR, script[2]);
  if (n === 35 && script[0] === 33 && script[34] === 0xac) return Kind.P2PK;
  if (n === 67 && script[0] === 65 && script[66] === 0xac) return Kind.P2PK | VARIANT;
  if (n === 71 && script[0] === 0x51 && script[70] === 0xae) return Kind.MULTISIG;
  if (n > 0 && script[0] === 0x6a) return -1;
  if (n > 10000) return -1;
  // Anything else (our hash puzzles, or foreign scripts) is spent with a one-push scriptSig.
  return Kind.NONSTANDARD;
}

/** Signature-operation cost (BIP141 units) an output script adds to the transaction that creates it. */
export function outputSigops(code: number): number {
  const base = code & 0x0f;
  if (base === Kind.P2PK || base === Kind.P2PKH) return 4;
  if (base === Kind.MULTISIG) return 80; // legacy counting charges a bare CHECKMULTISIG 20 sigops
  return 0;
}

/** True when the kind's spend carries witness data. */
export function spendHasWitness(code: number): boolean {
  const base = code & 0x0f;
  return base === Kind.P2WPKH || base === Kind.P2WSH || base === Kind.P2TR ||
    (base === Kind.P2SH && (code & VARIANT) !== 0);
}

/** True for witness-program outputs (cheaper dust threshold in Core's policy). */
export function isWitnessKind(code: number): boolean {
  const base = code & 0x0f;
  return base === Kind.P2WPKH || base === Kind.P2WSH || base === Kind.P2TR;
}

/** Length of the scriptSig used to spend a kind code with DER signatures of `sig` bytes (71 or 72). */
export function scriptSigLength(code: number, sig: number): number {
  switch (code & 0x0f) {
    case Kind.P2PK:
      return 1 + sig;
    case Kind.P2PKH:
      return 1 + sig + 1 + 33;
    case Kind.P2SH:
      return code & VARIANT ? 23 : 1 + 2 * (1 + sig) + 2 + 105;
    case Kind.MULTISIG:
      return 1 + 1 + sig;
    case Kind.NONSTANDARD:
      return 33;
  }
  return 0;
}

/** Serialized witness bytes for spending a kind code (item count included); 1 (empty stack) for legacy. */
export function witnessLength(code: number, sig: number): number {
  switch (code & 0x0f) {
    case Kind.P2WPKH:
      return 1 + (1 + sig) + (1 + 33);
    case Kind.P2SH:
      return code & VARIANT ? 1 + (1 + sig) + (1 + 33) : 1;
    case Kind.P2WSH:
      return code & VARIANT ? 1 + (1 + sig) + (1 + 35) : 1 + 1 + 2 * (1 + sig) + (1 + 105);
    case Kind.P2TR:
      return code & VARIANT ? 1 + (1 + 64) + (1 + 34) + (1 + 33) : 1 + 1 + 64;
  }
  return 1;
}

/** Signature-operation cost of spending a kind code (P2SH redeem scripts ×4, witness scripts ×1). */
export function inputSigops(code: number): number {
  switch (code & 0x0f) {
    case Kind.P2SH:
      return code & VARIANT ? 1 : 12;
    case Kind.P2WPKH:
      return 1;
    case Kind.P2WSH:
      return code & VARIANT ? 1 : 3;
  }
  return 0;
}

/** Random bytes for signatures, keys and scripts, sized for the largest item. */
export class ShapeWriter {
  private readonly sig = new Uint8Array(72);
  private readonly key = new Uint8Array(33);
  private readonly big = new Uint8Array(105);

  constructor(private readonly prng: Prng) {}

  private pushSig(w: ByteWriter, len: number): void {
    const s = this.sig;
    this.prng.fill(s, 0, len);
    // DER: 30 len 02 rlen r 02 20 s sighash. A 33-byte r (leading 00) is what makes 72-byte signatures.
    s[0] = 0x30;
    s[1] = len - 3;
    s[2] = 0x02;
    if (len === 72) {
      s[3] = 33;
      s[4] = 0;
      s[5] |= 0x80;
    } else {
      s[3] = 32;
      s[4] &= 0x7f;
    }
    const sAt = len - 35;
    s[sAt] = 0x02;
    s[sAt + 1] = 32;
    s[sAt + 2] &= 0x7f;
    s[len - 1] = 0x01;
    w.u8(len).bytes(s.subarray(0, len));
  }

  private pushKey(w: ByteWriter): void {
    const k = this.key;
    this.prng.fill(k);
    k[0] = 2 | (k[0] & 1);
    w.u8(33).bytes(k);
  }

  private pushRandom(w: ByteWriter, n: number): void {
    this.prng.fill(this.big, 0, n);
    w.bytes(this.big.subarray(0, n));
  }

  private multisigScript(w: ByteWriter, m: number, n: number): void {
    w.u8(0x50 + m);
    for (let i = 0; i < n; i++) this.pushKey(w);
    w.u8(0x50 + n).u8(0xae);
  }

  /** Writes CompactSize(len) ‖ scriptSig spending `code`; must match scriptSigLength. */
  writeScriptSig(w: ByteWriter, code: number, sig: number): void {
    const len = scriptSigLength(code, sig);
    w.compactSize(len); // a P2SH 2-of-3 spend with 72-byte signatures needs the 3-byte form
    switch (code & 0x0f) {
      case Kind.P2PK:
        this.pushSig(w, sig);
        return;
      case Kind.P2PKH:
        this.pushSig(w, sig);
        this.pushKey(w);
        return;
      case Kind.P2SH:
        if (code & VARIANT) {
          w.u8(22).u8(0).u8(20);
          this.pushRandom(w, 20);
        } else {
          w.u8(0);
          this.pushSig(w, sig);
          this.pushSig(w, sig);
          w.u8(0x4c).u8(105);
          this.multisigScript(w, 2, 3);
        }
        return;
      case Kind.MULTISIG:
        w.u8(0);
        this.pushSig(w, sig);
        return;
      case Kind.NONSTANDARD:
        w.u8(32);
        this.pushRandom(w, 32);
        return;
    }
  }

  /** Writes the witness stack spending `code` (a single 0x00 for legacy inputs); must match witnessLength. */
  writeWitness(w: ByteWriter, code: number, sig: number): void {
    switch (code & 0x0f) {
      case Kind.P2WPKH:
        w.u8(2);
        this.pushSig(w, sig);
        this.pushKey(w);
        return;
      case Kind.P2SH:
        if (code & VARIANT) {
          w.u8(2);
          this.pushSig(w, sig);
          this.pushKey(w);
        } else {
          w.u8(0);
        }
        return;
      case Kind.P2WSH:
        if (code & VARIANT) {
          w.u8(2);
          this.pushSig(w, sig);
          w.u8(35);
          this.pushKey(w);
          w.u8(0xac);
        } else {
          w.u8(4).u8(0);
          this.pushSig(w, sig);
          this.pushSig(w, sig);
          w.u8(105);
          this.multisigScript(w, 2, 3);
        }
        return;
      case Kind.P2TR:
        if (code & VARIANT) {
          w.u8(3).u8(64);
          this.pushRandom(w, 64);
          w.u8(34).u8(32);
          this.pushRandom(w, 32);
          w.u8(0xac).u8(33).u8(0xc0);
          this.pushRandom(w, 32);
        } else {
          w.u8(1).u8(64);
          this.pushRandom(w, 64);
        }
        return;
    }
    w.u8(0);
  }
}
