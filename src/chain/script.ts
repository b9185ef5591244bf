// Output script templates, the Electrum script hash / hashX, and Core-compatible asm rendering.
import { sha256 } from "./hash.ts";
import { toHex } from "./hex.ts";

/** Script templates, named as in the Electrum/ElectrumX world (Core's names differ slightly). */
export type ScriptType =
  | "p2pk"
  | "p2pkh"
  | "p2sh"
  | "p2wpkh"
  | "p2wsh"
  | "p2tr"
  | "nulldata"
  | "multisig"
  | "witness_unknown"
  | "nonstandard";

/** Opcodes this module needs by name. */
export const OP = {
  OP_0: 0x00,
  OP_PUSHDATA1: 0x4c,
  OP_PUSHDATA2: 0x4d,
  OP_PUSHDATA4: 0x4e,
  OP_1NEGATE: 0x4f,
  OP_1: 0x51,
  OP_16: 0x60,
  OP_RETURN: 0x6a,
  OP_DUP: 0x76,
  OP_EQUAL: 0x87,
  OP_EQUALVERIFY: 0x88,
  OP_HASH160: 0xa9,
  OP_CHECKSIG: 0xac,
  OP_CHECKMULTISIG: 0xae,
} as const;

/** Scripts longer than this can never be executed (Core's MAX_SCRIPT_SIZE). */
export const MAX_SCRIPT_SIZE = 10000;

/** Length of a hashX: the prefix of sha256(script) the index stores. */
export const HASHX_LENGTH = 11;

/** One decoded script operation; `data` is a view of the pushed bytes (empty for non-push opcodes). */
export interface ScriptOp {
  opcode: number;
  data: Uint8Array;
  /** Offset just past this operation. */
  end: number;
}

const EMPTY = new Uint8Array(0);

/** Decodes the operation at `pos`; returns null if a push runs past the end (Core's GetOp failing). */
export function readOp(script: Uint8Array, pos: number): ScriptOp | null {
  if (pos >= script.length) return null;
  const opcode = script[pos++];
  if (opcode > OP.OP_PUSHDATA4) return { opcode, data: EMPTY, end: pos };
  let size: number;
  if (opcode < OP.OP_PUSHDATA1) {
    size = opcode;
  } else if (opcode === OP.OP_PUSHDATA1) {
    if (script.length - pos < 1) return null;
    size = script[pos];
    pos += 1;
  } else if (opcode === OP.OP_PUSHDATA2) {
    if (script.length - pos < 2) return null;
    size = script[pos] | (script[pos + 1] << 8);
    pos += 2;
  } else {
    if (script.length - pos < 4) return null;
    size = (script[pos] | (script[pos + 1] << 8) | (script[pos + 2] << 16) | (script[pos + 3] << 24)) >>> 0;
    pos += 4;
  }
  if (script.length - pos < size) return null;
  return { opcode, data: script.subarray(pos, pos + size), end: pos + size };
}

/** If `script` is a witness program (BIP141: version opcode then one 2–40 byte push), its parts. */
export function witnessProgram(script: Uint8Array): { version: number; program: Uint8Array } | null {
  const n = script.length;
  if (n < 4 || n > 42) return null;
  const v = script[0];
  if (v !== OP.OP_0 && (v < OP.OP_1 || v > OP.OP_16)) return null;
  if (script[1] + 2 !== n) return null;
  return { version: v === OP.OP_0 ? 0 : v - OP.OP_1 + 1, program: script.subarray(2) };
}

/** True for a public key of a valid size for its header byte (Core's CPubKey::ValidSize). */
function validPubkeySize(key: Uint8Array): boolean {
  if (key.length === 33) return key[0] === 2 || key[0] === 3;
  if (key.length === 65) return key[0] === 4 || key[0] === 6 || key[0] === 7;
  return false;
}

/** A multisig key count: OP_1..OP_16, or the minimal one-byte push of 17..20 that Core also accepts. */
function multisigNumber(op: ScriptOp): number | null {
  if (op.opcode >= OP.OP_1 && op.opcode <= OP.OP_16) return op.opcode - OP.OP_1 + 1;
  if (op.opcode === 1 && op.data[0] >= 17 && op.data[0] <= 20) return op.data[0];
  return null;
}

function isMultisig(script: Uint8Array): boolean {
  if (script.length < 1 || script[script.length - 1] !== OP.OP_CHECKMULTISIG) return false;
  let op = readOp(script, 0);
  if (op === null) return false;
  const required = multisigNumber(op);
  if (required === null) return false;
  let keys = 0;
  for (;;) {
    op = readOp(script, op.end);
    if (op === null) return false;
    if (!validPubkeySize(op.data)) break;
    keys++;
  }
  const total = multisigNumber(op);
  if (total === null || total < required || total !== keys) return false;
  return op.end + 1 === script.length;
}

function isPushOnly(script: Uint8Array, pos: number): boolean {
  while (pos < script.length) {
    const op = readOp(script, pos);
    if (op === null || op.opcode > OP.OP_16) return false;
    pos = op.end;
  }
  return true;
}

/** Classifies an output script with Bitcoin Core's Solver rules. */
export function classifyScript(script: Uint8Array): ScriptType {
  const n = script.length;
  if (
    n === 25 && script[0] === OP.OP_DUP && script[1] === OP.OP_HASH160 && script[2] === 20 &&
    script[23] === OP.OP_EQUALVERIFY && script[24] === OP.OP_CHECKSIG
  ) return "p2pkh";
  if (n === 23 && script[0] === OP.OP_HASH160 && script[1] === 20 && script[22] === OP.OP_EQUAL) {
    return "p2sh";
  }
  const wp = witnessProgram(script);
  if (wp !== null) {
    if (wp.version === 0 && wp.program.length === 20) return "p2wpkh";
    if (wp.version === 0 && wp.program.length === 32) return "p2wsh";
    if (wp.version === 1 && wp.program.length === 32) return "p2tr";
    if (wp.version !== 0) return "witness_unknown";
    return "nonstandard";
  }
  if (n >= 1 && script[0] === OP.OP_RETURN && isPushOnly(script, 1)) return "nulldata";
  if (
    (n === 35 && script[0] === 33 && script[34] === OP.OP_CHECKSIG &&
      validPubkeySize(script.subarray(1, 34))) ||
    (n === 67 && script[0] === 65 && script[66] === OP.OP_CHECKSIG && validPubkeySize(script.subarray(1, 66)))
  ) return "p2pk";
  if (isMultisig(script)) return "multisig";
  return "nonstandard";
}

/** sha256(script) in internal order: the Electrum script hash (clients show it byte-reversed). */
export function scriptHash(script: Uint8Array): Uint8Array {
  return sha256(script);
}

/** The first 11 bytes of sha256(script), as a compact standalone copy. */
export function hashX(script: Uint8Array): Uint8Array {
  return sha256(script).slice(0, HASHX_LENGTH);
}

/** True for outputs nobody can ever spend: OP_RETURN-led or longer than MAX_SCRIPT_SIZE. */
export function isUnspendable(script: Uint8Array): boolean {
  return (script.length > 0 && script[0] === OP.OP_RETURN) || script.length > MAX_SCRIPT_SIZE;
}

/**
 * True for outputs the index leaves out, as ElectrumX does (protocol.md §4.2): scripts starting OP_RETURN or
 * OP_0 OP_RETURN. Empty and oversized scripts are indexed, unlike isUnspendable's Core rule, so that status
 * hashes match ElectrumX's; every script left out fails at once when run, so no input can spend one.
 */
export function isUnindexed(script: Uint8Array): boolean {
  const n = script.length;
  return n > 0 &&
    (script[0] === OP.OP_RETURN || (n > 1 && script[0] === OP.OP_0 && script[1] === OP.OP_RETURN));
}

const OPCODE_NAMES: string[] = buildOpcodeNames();

function buildOpcodeNames(): string[] {
  const names = new Array<string>(256).fill("OP_UNKNOWN");
  const named: [number, string][] = [
    [0x00, "0"],
    [0x4c, "OP_PUSHDATA1"],
    [0x4d, "OP_PUSHDATA2"],
    [0x4e, "OP_PUSHDATA4"],
    [0x4f, "-1"],
    [0x50, "OP_RESERVED"],
    [0x61, "OP_NOP"],
    [0x62, "OP_VER"],
    [0x63, "OP_IF"],
    [0x64, "OP_NOTIF"],
    [0x65, "OP_VERIF"],
    [0x66, "OP_VERNOTIF"],
    [0x67, "OP_ELSE"],
    [0x68, "OP_ENDIF"],
    [0x69, "OP_VERIFY"],
    [0x6a, "OP_RETURN"],
    [0x6b, "OP_TOALTSTACK"],
    [0x6c, "OP_FROMALTSTACK"],
    [0x6d, "OP_2DROP"],
    [0x6e, "OP_2DUP"],
    [0x6f, "OP_3DUP"],
    [0x70, "OP_2OVER"],
    [0x71, "OP_2ROT"],
    [0x72, "OP_2SWAP"],
    [0x73, "OP_IFDUP"],
    [0x74, "OP_DEPTH"],
    [0x75, "OP_DROP"],
    [0x76, "OP_DUP"],
    [0x77, "OP_NIP"],
    [0x78, "OP_OVER"],
    [0x79, "OP_PICK"],
    [0x7a, "OP_ROLL"],
    [0x7b, "OP_ROT"],
    [0x7c, "OP_SWAP"],
    [0x7d, "OP_TUCK"],
    [0x7e, "OP_CAT"],
    [0x7f, "OP_SUBSTR"],
    [0x80, "OP_LEFT"],
    [0x81, "OP_RIGHT"],
    [0x82, "OP_SIZE"],
    [0x83, "OP_INVERT"],
    [0x84, "OP_AND"],
    [0x85, "OP_OR"],
    [0x86, "OP_XOR"],
    [0x87, "OP_EQUAL"],
    [0x88, "OP_EQUALVERIFY"],
    [0x89, "OP_RESERVED1"],
    [0x8a, "OP_RESERVED2"],
    [0x8b, "OP_1ADD"],
    [0x8c, "OP_1SUB"],
    [0x8d, "OP_2MUL"],
    [0x8e, "OP_2DIV"],
    [0x8f, "OP_NEGATE"],
    [0x90, "OP_ABS"],
    [0x91, "OP_NOT"],
    [0x92, "OP_0NOTEQUAL"],
    [0x93, "OP_ADD"],
    [0x94, "OP_SUB"],
    [0x95, "OP_MUL"],
    [0x96, "OP_DIV"],
    [0x97, "OP_MOD"],
    [0x98, "OP_LSHIFT"],
    [0x99, "OP_RSHIFT"],
    [0x9a, "OP_BOOLAND"],
    [0x9b, "OP_BOOLOR"],
    [0x9c, "OP_NUMEQUAL"],
    [0x9d, "OP_NUMEQUALVERIFY"],
    [0x9e, "OP_NUMNOTEQUAL"],
    [0x9f, "OP_LESSTHAN"],
    [0xa0, "OP_GREATERTHAN"],
    [0xa1, "OP_LESSTHANOREQUAL"],
    [0xa2, "OP_GREATERTHANOREQUAL"],
    [0xa3, "OP_MIN"],
    [0xa4, "OP_MAX"],
    [0xa5, "OP_WITHIN"],
    [0xa6, "OP_RIPEMD160"],
    [0xa7, "OP_SHA1"],
    [0xa8, "OP_SHA256"],
    [0xa9, "OP_HASH160"],
    [0xaa, "OP_HASH256"],
    [0xab, "OP_CODESEPARATOR"],
    [0xac, "OP_CHECKSIG"],
    [0xad, "OP_CHECKSIGVERIFY"],
    [0xae, "OP_CHECKMULTISIG"],
    [0xaf, "OP_CHECKMULTISIGVERIFY"],
    [0xb0, "OP_NOP1"],
    [0xb1, "OP_CHECKLOCKTIMEVERIFY"],
    [0xb2, "OP_CHECKSEQUENCEVERIFY"],
    [0xb3, "OP_NOP4"],
    [0xb4, "OP_NOP5"],
    [0xb5, "OP_NOP6"],
    [0xb6, "OP_NOP7"],
    [0xb7, "OP_NOP8"],
    [0xb8, "OP_NOP9"],
    [0xb9, "OP_NOP10"],
    [0xba, "OP_CHECKSIGADD"],
    [0xff, "OP_INVALIDOPCODE"],
  ];
  for (const [code, name] of named) names[code] = name;
  for (let i = 1; i <= 16; i++) names[0x50 + i] = String(i);
  return names;
}

/** Core's name for an opcode as asm shows it ("OP_DUP", "0", "1".."16", "OP_UNKNOWN"). */
export function opcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode & 0xff];
}

const SIGHASH_NAMES: Record<number, string> = {
  0x01: "ALL",
  0x81: "ALL|ANYONECANPAY",
  0x02: "NONE",
  0x82: "NONE|ANYONECANPAY",
  0x03: "SINGLE",
  0x83: "SINGLE|ANYONECANPAY",
};

/** Strict DER signature plus hashtype byte (BIP66's IsValidSignatureEncoding). */
function isStrictDerSignature(sig: Uint8Array): boolean {
  const n = sig.length;
  if (n < 9 || n > 73) return false;
  if (sig[0] !== 0x30 || sig[1] !== n - 3) return false;
  const lenR = sig[3];
  if (5 + lenR >= n) return false;
  const lenS = sig[5 + lenR];
  if (lenR + lenS + 7 !== n) return false;
  if (sig[2] !== 0x02 || lenR === 0 || (sig[4] & 0x80)) return false;
  if (lenR > 1 && sig[4] === 0 && !(sig[5] & 0x80)) return false;
  if (sig[lenR + 4] !== 0x02 || lenS === 0 || (sig[lenR + 6] & 0x80)) return false;
  if (lenS > 1 && sig[lenR + 6] === 0 && !(sig[lenR + 7] & 0x80)) return false;
  return true;
}

/** Little-endian sign-magnitude number of up to 4 bytes, as Core's CScriptNum reads it. */
function scriptNum(data: Uint8Array): number {
  if (data.length === 0) return 0;
  let v = 0;
  for (let i = 0; i < data.length; i++) v += data[i] * 2 ** (8 * i);
  const last = data.length - 1;
  if (data[last] & 0x80) return -(v - 0x80 * 2 ** (8 * last));
  return v;
}

/**
 * Core-style asm (ScriptToAsmStr). With `decodeSighash` (how Core renders scriptSigs), a push that is a
 * strict-DER signature shows its hashtype as e.g. "[ALL]".
 */
export function scriptAsm(script: Uint8Array, decodeSighash = false): string {
  const parts: string[] = [];
  const trySighash = decodeSighash && !isUnspendable(script);
  let pos = 0;
  while (pos < script.length) {
    const op = readOp(script, pos);
    if (op === null) {
      parts.push("[error]");
      break;
    }
    pos = op.end;
    if (op.opcode > OP.OP_PUSHDATA4) {
      parts.push(OPCODE_NAMES[op.opcode]);
    } else if (op.data.length <= 4) {
      parts.push(String(scriptNum(op.data)));
    } else if (trySighash && isStrictDerSignature(op.data) && SIGHASH_NAMES[op.data[op.data.length - 1]]) {
      const last = op.data.length - 1;
      parts.push(toHex(op.data.subarray(0, last)) + "[" + SIGHASH_NAMES[op.data[last]] + "]");
    } else {
      parts.push(toHex(op.data));
    }
  }
  return parts.join(" ");
}
