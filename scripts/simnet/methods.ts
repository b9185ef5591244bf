// Bitcoin Core's JSON-RPC methods over a SimNode: the same names, argument checks, result shapes, field
// order and error codes/messages as bitcoind 28.x (plus v29's `target`), so clients cannot tell simnet
// from a regtest node. Also the simnet-only control RPCs and the REST data provider.
import { bitsToTarget, headerHash, parseHeader } from "../../src/chain/header.ts";
import { fromHex, isHex, toHex, toHexReversed } from "../../src/chain/hex.ts";
import { ByteReader, compactSizeLength } from "../../src/chain/bytes.ts";
import { type Block, parseBlock } from "../../src/chain/block.ts";
import { decodeTransaction, isCoinbase, type Transaction, wtxid } from "../../src/chain/tx.ts";
import { classifyScript, isUnspendable, readOp, scriptAsm } from "../../src/chain/script.ts";
import { scriptToAddress } from "../../src/chain/address.ts";
import type { Network } from "../../src/chain/network.ts";
import type { MempoolEntry, SimNode } from "./node.ts";
import { type Acceptance, checkAcceptance, checkReplacement, feeForSize } from "./policy.ts";
import { CoreRpcError, type RestProvider, RPC, type RpcMethod, type RpcMethodTable } from "./rpc_types.ts";

// ---------------------------------------------------------------------------------------------------
// Constants of the node we imitate.

/** CLIENT_VERSION reported by getnetworkinfo (28.1.0). */
export const CORE_VERSION = 280100;
const SUBVERSION = "/Satoshi:28.1.0/";
const PROTOCOL_VERSION = 70016;
const COIN = 100_000_000;
const MAX_MONEY = 21_000_000 * COIN;
const MIN_RELAY_SAT_PER_KVB = 1000;
const DEFAULT_MAX_RAW_TX_FEE_RATE = 0.1 * COIN; // sat/kvB
const MAX_BIP125_RBF_SEQUENCE = 0xfffffffd;
const MAX_CONF_TARGET = 1008;
const MAX_PACKAGE_COUNT = 25;
const MAX_PACKAGE_WEIGHT = 404_000;
const MAX_MEMPOOL_BYTES = 300_000_000;
const MAX_OPCODE = 0xba;
const TX_DECODE_ERROR = "TX decode failed. Make sure the tx has at least one input.";
const UNDO_ERROR =
  "Undo data expected but can't be read. This could be due to disk corruption or a conflict with a pruning event.";

// ---------------------------------------------------------------------------------------------------
// Argument checking, as RPCHelpMan does it before a handler runs.

type ArgType = "num" | "str" | "bool" | "arr" | "obj" | "amount";

interface ArgSpec {
  /** Core's help name, with "|" aliases ("verbosity|verbose"). */
  names: string;
  type: ArgType;
  optional?: boolean;
  /** Core's RPCArgOptions.skip_type_check: the handler parses the value itself. */
  skipTypeCheck?: boolean;
}

/** The type name UniValue uses in its messages. */
function jsonTypeName(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return "number";
  if (typeof v === "string") return "string";
  if (Array.isArray(v)) return "array";
  return "object";
}

const EXPECTED_TYPE: Record<ArgType, string | null> = {
  num: "number",
  str: "string",
  bool: "bool",
  arr: "array",
  obj: "object",
  amount: null, // number or string, checked by amountFromValue
};

function isOmitted(v: unknown): boolean {
  return v === undefined || v === null;
}

/** Core's combined type-mismatch error: every bad argument in one object, pretty-printed with 4 spaces. */
function checkArgTypes(specs: ArgSpec[], args: unknown[]): void {
  const mismatch: Record<string, string> = {};
  let bad = false;
  specs.forEach((spec, i) => {
    const v = args[i];
    if (spec.skipTypeCheck) return;
    if (spec.optional && isOmitted(v)) return;
    const expected = EXPECTED_TYPE[spec.type];
    if (expected === null) return;
    const actual = jsonTypeName(v);
    if (actual !== expected) {
      mismatch[`Position ${i + 1} (${spec.names})`] =
        `JSON value of type ${actual} is not of expected type ${expected}`;
      bad = true;
    }
  });
  if (bad) throw new CoreRpcError(RPC.TYPE_ERROR, `Wrong type passed:\n${JSON.stringify(mismatch, null, 4)}`);
}

function method(specs: ArgSpec[], handler: (args: unknown[]) => unknown): RpcMethod {
  return {
    params: specs.map((s) => (s.optional ? "?" : "") + s.names),
    handler(args: unknown[]) {
      checkArgTypes(specs, args);
      return handler(args);
    },
  };
}

/** UniValue::getInt<int>: a runtime error (-1) for a non-number or a non-integral/out-of-range one. */
// UniValue's type-check error, word for word.
function wrongType(v: unknown, expected: string): CoreRpcError {
  return new CoreRpcError(
    RPC.MISC_ERROR,
    `JSON value of type ${jsonTypeName(v)} is not of expected type ${expected}`,
  );
}

function getInt(v: unknown): number {
  if (typeof v !== "number") throw wrongType(v, "number");
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw new CoreRpcError(RPC.MISC_ERROR, "JSON integer out of range");
  }
  return v;
}

function getBool(v: unknown): boolean {
  if (typeof v !== "boolean") throw wrongType(v, "bool");
  return v;
}

function getStr(v: unknown): string {
  if (typeof v !== "string") throw wrongType(v, "string");
  return v;
}

/** Core's ParseVerbosity: a number, or (where allowed) a bool meaning 1/0. */
function parseVerbosity(v: unknown, fallback: number, allowBool: boolean): number {
  if (isOmitted(v)) return fallback;
  if (typeof v === "boolean") {
    if (!allowBool) throw new CoreRpcError(RPC.TYPE_ERROR, "Verbosity was boolean but only integer allowed");
    return v ? 1 : 0;
  }
  return getInt(v);
}

const utf8 = new TextEncoder();

/** Core's ParseHashV: 64 hex digits, display order; returns internal byte order. */
function parseHash(v: unknown, name: string): Uint8Array {
  const s = getStr(v);
  const len = utf8.encode(s).length;
  if (len !== 64) {
    throw new CoreRpcError(RPC.INVALID_PARAMETER, `${name} must be of length 64 (not ${len}, for '${s}')`);
  }
  if (!isHex(s)) {
    throw new CoreRpcError(RPC.INVALID_PARAMETER, `${name} must be hexadecimal string (not '${s}')`);
  }
  return fromHex(s).reverse();
}

/**
 * Core's ParseFixedPoint(text, 8): an exact decimal with optional exponent, as satoshis; null when the
 * text is malformed or needs more than 8 decimals or 18 significant digits.
 */
export function parseFixedPoint(text: string): number | null {
  const m = /^(-)?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  if (m === null) return null;
  const [, sign, intPart, fracPart = "", expPart] = m;
  let digits = (intPart + fracPart).replace(/^0+(?=\d)/, "");
  let exponent = (expPart === undefined ? 0 : Number(expPart)) - fracPart.length + 8;
  // Trailing zeros carry no precision; dropping them lets "0.100000000" through, as Core does.
  while (exponent < 0 && digits.length > 1 && digits.endsWith("0")) {
    digits = digits.slice(0, -1);
    exponent++;
  }
  if (digits === "0") return 0;
  if (exponent < 0) return null;
  if (digits.length + exponent > 18) return null;
  const value = Number(BigInt(digits) * 10n ** BigInt(exponent));
  return sign ? -value : value;
}

/** Core's AmountFromValue: BTC as a JSON number or string, to satoshis. */
function amountFromValue(v: unknown): number {
  if (typeof v !== "number" && typeof v !== "string") {
    throw new CoreRpcError(RPC.TYPE_ERROR, "Amount is not a number or string");
  }
  const sats = parseFixedPoint(typeof v === "number" ? numberText(v) : v);
  if (sats === null) throw new CoreRpcError(RPC.TYPE_ERROR, "Invalid amount");
  if (sats < 0 || sats > MAX_MONEY) throw new CoreRpcError(RPC.TYPE_ERROR, "Amount out of range");
  return sats;
}

/** How a JSON number reads as text; JS prints large/small ones with an exponent, which Core also accepts. */
function numberText(v: number): string {
  return Number.isFinite(v) ? String(v).replace("e+", "e") : "NaN";
}

/** Core's ParseFeeRate: BTC/kvB to sat/kvB; 1 BTC/kvB or more is refused. */
function parseFeeRate(v: unknown): number {
  const rate = amountFromValue(v);
  if (rate >= COIN) {
    throw new CoreRpcError(
      RPC.INVALID_PARAMETER,
      "Fee rates larger than or equal to 1BTC/kvB are not accepted",
    );
  }
  return rate;
}

// ---------------------------------------------------------------------------------------------------
// Formatting helpers.

/** ValueFromAmount: satoshis as a BTC JSON number (correctly rounded, so it reads back exactly). */
function btc(sats: number): number {
  return sats / COIN;
}

const HEX_PAIRS = (() => {
  const t = new Uint16Array(256);
  const chars = "0123456789abcdef";
  // Little-endian memory order: the first char is the low byte.
  for (let i = 0; i < 256; i++) t[i] = chars.charCodeAt(i >> 4) | (chars.charCodeAt(i & 15) << 8);
  return t;
})();
const latin1 = new TextDecoder("latin1");

/** Hex of a possibly large buffer (whole blocks) without building the string a byte at a time. */
function bigHex(bytes: Uint8Array): string {
  if (bytes.length < 256) return toHex(bytes);
  const out = new Uint16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = HEX_PAIRS[bytes[i]];
  return latin1.decode(out);
}

function hash64(n: bigint): string {
  return n.toString(16).padStart(64, "0");
}

function bitsHex(bits: number): string {
  return (bits >>> 0).toString(16).padStart(8, "0");
}

/**
 * Core's GetDifficulty: the target's ratio to 0x1d00ffff's, in doubles as Core computes it, then rounded to
 * the 16 significant digits UniValue prints, so clients parse the same number they would from bitcoind.
 */
export function difficulty(bits: number): number {
  let shift = (bits >>> 24) & 0xff;
  let diff = 0x0000ffff / (bits & 0x00ffffff);
  while (shift < 29) {
    diff *= 256.0;
    shift++;
  }
  while (shift > 29) {
    diff /= 256.0;
    shift--;
  }
  return Number(diff.toPrecision(16));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** memcmp order of internal-order hashes: how Core's uint256 operator< sorts. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// ---------------------------------------------------------------------------------------------------
// Output scripts as Core describes them: type names, addresses and inferred descriptors.

const SECP_P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;

/** The Jacobi symbol (a/n) for odd n: for prime n, 1 iff a is a non-zero square mod n. */
function jacobi(a: bigint, n: bigint): number {
  let t = 1;
  a %= n;
  while (a !== 0n) {
    while ((a & 1n) === 0n) {
      a >>= 1n;
      const r = n & 7n;
      if (r === 3n || r === 5n) t = -t;
    }
    [a, n] = [n, a];
    if ((a & 3n) === 3n && (n & 3n) === 3n) t = -t;
    a %= n;
  }
  return n === 1n ? t : 0;
}

/** XOnlyPubKey::IsFullyValid: x is a field element with a curve point (x³+7 is a square mod p). */
export function isValidXOnly(x32: Uint8Array): boolean {
  const x = BigInt("0x" + toHex(x32));
  if (x >= SECP_P) return false;
  const rhs = (x * x * x + 7n) % SECP_P;
  return rhs === 0n || jacobi(rhs, SECP_P) === 1;
}

const DESC_INPUT_CHARSET = "0123456789()[],'/*abcdefgh@:$%{}" + "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~" +
  'ijklmnopqrstuvwxyzABCDEFGH`#"\\ ';
const DESC_CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
// The BCH generator of descriptor checksums, each 40-bit constant split into (high 8 bits, low 32 bits).
const DESC_GEN: [number, number][] = [
  [0xf5, 0xdee51989],
  [0xa9, 0xfdca3312],
  [0x1b, 0xab10e32d],
  [0x37, 0x06b1677a],
  [0x64, 0x4d626ffd],
];

/** Core's DescriptorChecksum (BIP380): 8 characters, or "" if the text has a character outside the set. */
export function descriptorChecksum(desc: string): string {
  // The 40-bit state is kept as hi (8 bits) and lo (32 bits) so plain number bit operations suffice.
  let hi = 0, lo = 1;
  const polyMod = (val: number) => {
    const c0 = hi >>> 3;
    const shifted = ((hi & 7) * 0x100000000 + lo) * 32;
    hi = Math.floor(shifted / 0x100000000);
    lo = (shifted % 0x100000000) ^ val;
    for (let i = 0; i < 5; i++) {
      if ((c0 >>> i) & 1) {
        hi ^= DESC_GEN[i][0];
        lo ^= DESC_GEN[i][1];
      }
    }
    lo >>>= 0;
  };
  let cls = 0, clsCount = 0;
  for (const ch of desc) {
    const pos = DESC_INPUT_CHARSET.indexOf(ch);
    if (pos < 0) return "";
    polyMod(pos & 31);
    cls = cls * 3 + (pos >> 5);
    if (++clsCount === 3) {
      polyMod(cls);
      cls = 0;
      clsCount = 0;
    }
  }
  if (clsCount > 0) polyMod(cls);
  for (let j = 0; j < 8; j++) polyMod(0);
  const c = hi * 0x100000000 + ((lo ^ 1) >>> 0);
  let out = "";
  for (let j = 0; j < 8; j++) out += DESC_CHECKSUM_CHARSET[Math.floor(c / 2 ** (5 * (7 - j))) % 32];
  return out;
}

const CORE_TYPE_NAMES: Record<string, string> = {
  p2pk: "pubkey",
  p2pkh: "pubkeyhash",
  p2sh: "scripthash",
  p2wpkh: "witness_v0_keyhash",
  p2wsh: "witness_v0_scripthash",
  p2tr: "witness_v1_taproot",
  nulldata: "nulldata",
  multisig: "multisig",
  witness_unknown: "witness_unknown",
  nonstandard: "nonstandard",
};

function isPayToAnchor(script: Uint8Array): boolean {
  return script.length === 4 && script[0] === 0x51 && script[1] === 0x02 && script[2] === 0x4e &&
    script[3] === 0x73;
}

/** Core's Solver type name (GetTxnOutputType). */
export function coreScriptType(script: Uint8Array): string {
  if (isPayToAnchor(script)) return "anchor";
  return CORE_TYPE_NAMES[classifyScript(script)];
}

/** The pubkeys of a bare multisig script that Solver accepted, with the threshold. */
function multisigParts(script: Uint8Array): { threshold: number; keys: Uint8Array[] } {
  const keys: Uint8Array[] = [];
  let op = readOp(script, 0)!;
  const threshold = op.opcode >= 0x51 ? op.opcode - 0x50 : op.data[0];
  for (;;) {
    op = readOp(script, op.end)!;
    if (op.opcode > 0x4e || (op.data.length !== 33 && op.data.length !== 65)) break;
    const h = op.data[0];
    const sizeOk = op.data.length === 33 ? h === 2 || h === 3 : h === 4 || h === 6 || h === 7;
    if (!sizeOk) break;
    keys.push(op.data);
  }
  return { threshold, keys };
}

/** InferPubkey's acceptance with no key metadata: any non-hybrid key (no curve check). */
function nonHybrid(key: Uint8Array): boolean {
  return key[0] === 2 || key[0] === 3 || key[0] === 4;
}

/** InferDescriptor(script, no signing provider) followed by ToString with checksum. */
export function inferDescriptor(script: Uint8Array, type: string, address: string | null): string {
  let body: string | null = null;
  if (type === "pubkey") {
    const key = script.subarray(1, script.length - 1);
    if (nonHybrid(key)) body = `pk(${toHex(key)})`;
  } else if (type === "multisig") {
    const { threshold, keys } = multisigParts(script);
    if (keys.every(nonHybrid)) body = `multi(${threshold},${keys.map(toHex).join(",")})`;
  } else if (type === "witness_v1_taproot") {
    const x = script.subarray(2, 34);
    if (isValidXOnly(x)) body = `rawtr(${toHex(x)})`;
  }
  if (body === null) body = address !== null ? `addr(${address})` : `raw(${toHex(script)})`;
  return body + "#" + descriptorChecksum(body);
}

/** Core's ExtractDestination → EncodeDestination, for the types that have an address. */
function addressOf(script: Uint8Array, type: string, net: Network): string | null {
  switch (type) {
    case "pubkeyhash":
    case "scripthash":
    case "witness_v0_keyhash":
    case "witness_v0_scripthash":
    case "witness_v1_taproot":
    case "witness_unknown":
    case "anchor":
      return scriptToAddress(script, net);
    default:
      return null;
  }
}

/** ScriptToUniv(script, include_hex, include_address): {asm, desc, hex, address?, type}. */
export function scriptPubKeyJson(script: Uint8Array, net: Network): Record<string, unknown> {
  const type = coreScriptType(script);
  const address = addressOf(script, type, net);
  // ExtractDestination yields a PubKeyDestination for P2PK, which has no address; only addr() uses it.
  const desc = inferDescriptor(script, type, address);
  const out: Record<string, unknown> = { asm: scriptAsm(script), desc, hex: toHex(script) };
  if (address !== null) out.address = address;
  out.type = type;
  return out;
}

/** CScript::HasValidOps: every opcode decodes and none is above OP_CHECKSIGADD. */
function hasValidOps(script: Uint8Array): boolean {
  let pos = 0;
  while (pos < script.length) {
    const op = readOp(script, pos);
    if (op === null || op.opcode > MAX_OPCODE) return false;
    pos = op.end;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------
// Transactions and blocks as JSON.

/** A spent output as Core's undo data records it. */
export interface Prevout {
  value: number;
  script: Uint8Array;
  height: number;
  coinbase: boolean;
}

/** TxToUniv: the decoded transaction; `undo` adds the fee (and with `showPrevout`, each input's prevout). */
export function coreTxJson(
  tx: Transaction,
  net: Network,
  undo: Prevout[] | null,
  showPrevout: boolean,
  includeHex: boolean,
): Record<string, unknown> {
  const coinbase = isCoinbase(tx);
  const entry: Record<string, unknown> = {
    txid: toHexReversed(tx.txid),
    hash: toHexReversed(wtxid(tx)),
    version: tx.version >>> 0,
    size: tx.size,
    vsize: tx.vsize,
    weight: tx.weight,
    locktime: tx.locktime >>> 0,
  };
  let totalIn = 0;
  const vin = tx.inputs.map((input, i) => {
    const o: Record<string, unknown> = {};
    if (coinbase) {
      o.coinbase = toHex(input.scriptSig);
    } else {
      o.txid = toHexReversed(input.prevTxid);
      o.vout = input.prevVout >>> 0;
      o.scriptSig = { asm: scriptAsm(input.scriptSig, true), hex: toHex(input.scriptSig) };
    }
    const stack = tx.witnesses?.[i];
    if (stack !== undefined && stack.length > 0) o.txinwitness = stack.map(toHex);
    if (undo !== null) {
      const prev = undo[i];
      totalIn += prev.value;
      if (showPrevout) {
        o.prevout = {
          generated: prev.coinbase,
          height: prev.height,
          value: btc(prev.value),
          scriptPubKey: scriptPubKeyJson(prev.script, net),
        };
      }
    }
    o.sequence = input.sequence >>> 0;
    return o;
  });
  entry.vin = vin;
  let totalOut = 0;
  entry.vout = tx.outputs.map((output, n) => {
    totalOut += output.value;
    return { value: btc(output.value), n, scriptPubKey: scriptPubKeyJson(output.script, net) };
  });
  if (undo !== null) entry.fee = btc(totalIn - totalOut);
  if (includeHex) entry.hex = bigHex(tx.raw);
  return entry;
}

/** The number of transactions a raw block holds (the CompactSize after the header). */
function blockTxCount(raw: Uint8Array): number {
  return new ByteReader(raw, 80).compactSize();
}

/** What blockheaderToJSON needs beyond the 80 header bytes: the block's place in the chain. */
export interface HeaderContext {
  height: number;
  /** Depth in the active chain, or -1 for a stale block. */
  confirmations: number;
  medianTime: number;
  chainwork: bigint;
  nTx: number;
  /** The next block in the active chain, if any. */
  nextHash?: Uint8Array;
}

/** blockheaderToJSON: Core's header object, in Core's key order. */
export function coreHeaderJson(header80: Uint8Array, ctx: HeaderContext): Record<string, unknown> {
  const h = parseHeader(header80);
  const o: Record<string, unknown> = {
    hash: toHexReversed(headerHash(header80)),
    confirmations: ctx.confirmations,
    height: ctx.height,
    version: h.version,
    versionHex: bitsHex(h.version),
    merkleroot: toHexReversed(h.merkleRoot),
    time: h.time,
    mediantime: ctx.medianTime,
    nonce: h.nonce,
    bits: bitsHex(h.bits),
    target: hash64(bitsToTarget(h.bits)),
    difficulty: difficulty(h.bits),
    chainwork: hash64(ctx.chainwork),
    nTx: ctx.nTx,
  };
  if (ctx.height > 0) o.previousblockhash = toHexReversed(h.prevHash);
  if (ctx.nextHash !== undefined) o.nextblockhash = toHexReversed(ctx.nextHash);
  return o;
}

/** The size/strippedsize/weight getblock reports for a decoded block. */
export function blockSizes(
  block: Block,
  raw: Uint8Array,
): { strippedsize: number; size: number; weight: number } {
  let stripped = 80 + compactSizeLength(block.txs.length);
  for (const tx of block.txs) stripped += tx.baseSize;
  return { strippedsize: stripped, size: raw.length, weight: stripped * 3 + raw.length };
}

interface BlockInfo {
  height: number;
  raw: Uint8Array;
  header: Uint8Array;
  inActiveChain: boolean;
  nextHash?: Uint8Array;
  chainwork: bigint;
  medianTime: number;
}

// ---------------------------------------------------------------------------------------------------
// The method tables.

/** Options for coreMethods. */
export interface CoreMethodOptions {
  /** When the node started (ms since epoch), for `uptime`. */
  startedAt: number;
}

/** Bitcoin Core's read and relay RPCs (blockchain, rawtransaction, mempool, fees, net) over `node`. */
export function coreMethods(node: SimNode, opts: CoreMethodOptions): RpcMethodTable {
  const net: Network = node.network;
  const genesisHash = node.hashAt(0)!;
  const genesisCoinbaseTxid = parseHeader(node.blockInfo(genesisHash)!.header).merkleRoot.slice();
  // Transactions this node was handed over RPC stay "unbroadcast": simnet has no peers to take them.
  const unbroadcast = new Set<string>();
  let diskCache: { tip: string; bytes: number } | null = null;

  const blockInfo = (hash: Uint8Array): BlockInfo | undefined => node.blockInfo(hash);

  function headerJson(info: BlockInfo): Record<string, unknown> {
    return coreHeaderJson(info.header, {
      height: info.height,
      confirmations: info.inActiveChain ? node.height - info.height + 1 : -1,
      medianTime: info.medianTime,
      chainwork: info.chainwork,
      nTx: blockTxCount(info.raw),
      nextHash: info.inActiveChain ? info.nextHash : undefined,
    });
  }

  function chainInfo(): Record<string, unknown> {
    const tip = node.tipHash;
    const info = blockInfo(tip)!;
    const h = parseHeader(info.header);
    const tipHex = toHexReversed(tip);
    if (diskCache === null || diskCache.tip !== tipHex) {
      // Core counts blk*.dat (8 bytes of framing per block) plus undo files; raw sizes are close enough.
      let bytes = 0;
      for (let i = 0; i <= node.height; i++) bytes += blockInfo(node.hashAt(i)!)!.raw.length + 8;
      diskCache = { tip: tipHex, bytes };
    }
    return {
      chain: net.coreChain,
      blocks: node.height,
      headers: node.height,
      bestblockhash: tipHex,
      bits: bitsHex(h.bits),
      target: hash64(bitsToTarget(h.bits)),
      difficulty: difficulty(h.bits),
      time: h.time,
      mediantime: info.medianTime,
      verificationprogress: 1,
      initialblockdownload: false,
      chainwork: hash64(info.chainwork),
      size_on_disk: diskCache.bytes,
      pruned: false,
      warnings: [],
    };
  }

  /** The outputs each transaction of a known block spent (the block's undo data); [] for the coinbase. */
  function blockUndo(hash: Uint8Array): Prevout[][] {
    const undo = node.blockPrevouts(hash);
    if (undo === undefined) throw new CoreRpcError(RPC.INTERNAL_ERROR, UNDO_ERROR);
    return undo;
  }

  // ---- mempool views ----

  /** The mempool as one request sees it: single entries fetched on demand, the whole pool only if needed. */
  interface PoolView {
    get(key: string): MempoolEntry | undefined;
    all(): Map<string, MempoolEntry>;
  }

  // Mempool transactions never change, so their decoded form is kept while they stay in the pool.
  const decodedPool = new Map<string, Transaction>();

  function poolView(): PoolView {
    const some = new Map<string, MempoolEntry | null>();
    let every: Map<string, MempoolEntry> | null = null;
    return {
      get(key) {
        if (every !== null) return every.get(key);
        let e = some.get(key);
        if (e === undefined) {
          e = node.mempoolTx(fromHex(key)) ?? null;
          some.set(key, e);
        }
        return e ?? undefined;
      },
      all() {
        if (every === null) {
          every = new Map();
          for (const e of node.mempoolEntries()) every.set(toHex(e.txid), e);
          for (const k of decodedPool.keys()) if (!every.has(k)) decodedPool.delete(k);
        }
        return every;
      },
    };
  }

  function decodedEntry(e: MempoolEntry): Transaction {
    const key = toHex(e.txid);
    let tx = decodedPool.get(key);
    if (tx === undefined) {
      tx = decodeTransaction(e.raw);
      decodedPool.set(key, tx);
    }
    return tx;
  }

  function closure(
    view: PoolView,
    start: MempoolEntry,
    next: (e: MempoolEntry) => Uint8Array[],
  ): MempoolEntry[] {
    const seen = new Map<string, MempoolEntry>([[toHex(start.txid), start]]);
    const stack = [start];
    while (stack.length > 0) {
      for (const id of next(stack.pop()!)) {
        const key = toHex(id);
        const e = view.get(key);
        if (e !== undefined && !seen.has(key)) {
          seen.set(key, e);
          stack.push(e);
        }
      }
    }
    return [...seen.values()];
  }

  function signalsRbf(e: MempoolEntry): boolean {
    return decodedEntry(e).inputs.some((i) => i.sequence >>> 0 <= MAX_BIP125_RBF_SEQUENCE);
  }

  /** entryToJSON: one mempool entry with its ancestor/descendant aggregates. */
  function entryJson(view: PoolView, e: MempoolEntry): Record<string, unknown> {
    const ancestors = closure(view, e, (x) => x.depends);
    const descendants = closure(view, e, (x) => x.spentBy);
    const sum = (list: MempoolEntry[], f: (x: MempoolEntry) => number) => list.reduce((a, x) => a + f(x), 0);
    return {
      vsize: e.vsize,
      weight: e.weight,
      time: e.time,
      height: e.height,
      descendantcount: descendants.length,
      descendantsize: sum(descendants, (x) => x.vsize),
      ancestorcount: ancestors.length,
      ancestorsize: sum(ancestors, (x) => x.vsize),
      wtxid: toHexReversed(e.wtxid),
      fees: {
        base: btc(e.fee),
        modified: btc(e.fee),
        ancestor: btc(sum(ancestors, (x) => x.fee)),
        descendant: btc(sum(descendants, (x) => x.fee)),
      },
      depends: e.depends.map(toHexReversed).sort(),
      spentby: [...e.spentBy].sort(compareBytes).map(toHexReversed),
      "bip125-replaceable": ancestors.some(signalsRbf),
      unbroadcast: unbroadcast.has(toHex(e.txid)),
    };
  }

  /** Core lists the mempool by ancestor count, then by feerate (higher first), then by txid. */
  function sortedPool(view: PoolView): MempoolEntry[] {
    const depth = new Map<MempoolEntry, number>();
    const all = view.all();
    for (const e of all.values()) depth.set(e, closure(view, e, (x) => x.depends).length);
    return [...all.values()].sort((a, b) => {
      const da = depth.get(a)!, db = depth.get(b)!;
      if (da !== db) return da - db;
      const f1 = a.fee * b.vsize, f2 = b.fee * a.vsize;
      if (f1 !== f2) return f2 - f1;
      return compareBytes(b.txid, a.txid);
    });
  }

  function pruneUnbroadcast(view: PoolView): void {
    for (const k of unbroadcast) if (view.get(k) === undefined) unbroadcast.delete(k);
  }

  // ---- transaction submission ----

  /** Decodes a hex transaction the way DecodeHexTx is used by the relay RPCs. */
  function decodeHexTx(hex: string): Transaction | null {
    if (!isHex(hex) || hex.length === 0) return null;
    try {
      return decodeTransaction(fromHex(hex));
    } catch {
      return null;
    }
  }

  function checkBurn(tx: Transaction, maxBurn: number): void {
    for (const out of tx.outputs) {
      if ((isUnspendable(out.script) || !hasValidOps(out.script)) && out.value > maxBurn) {
        throw new CoreRpcError(
          RPC.VERIFY_ERROR,
          "Unspendable output exceeds maximum configured by user (maxburnamount)",
        );
      }
    }
  }

  /** Outpoints spent by mempool transactions (and, for packages, earlier package members). */
  /** Every outpoint the mempool spends, and the key of the transaction spending it. */
  function spentOutpoints(view: PoolView): Map<string, string> {
    const spent = new Map<string, string>();
    for (const [key, e] of view.all()) {
      for (const i of decodedEntry(e).inputs) spent.set(toHex(i.prevTxid) + ":" + i.prevVout, key);
    }
    return spent;
  }

  /**
   * What mempool acceptance would say about `tx` without adding it: SimNode's own checks (policy.ts
   * checkAcceptance) over the mempool snapshot `view`. `pending` are transactions treated as already in the
   * mempool (earlier members of a package).
   */
  function precheck(
    tx: Transaction,
    view: PoolView,
    spent: Map<string, string>,
    pending: Map<string, Transaction>,
    allowReplacement: boolean,
    allowCarveouts: boolean,
  ): Acceptance {
    const spendHeight = node.height + 1;
    return checkAcceptance(tx, {
      spendHeight,
      medianTime: blockInfo(node.tipHash)!.medianTime,
      spender: (txid, vout) => spent.get(toHex(txid) + ":" + vout),
      allowReplacement,
      allowCarveouts,
      poolEntry: (k) => {
        const e = view.get(k);
        return e === undefined
          ? undefined
          : { vsize: e.vsize, parents: e.depends.map(toHex), children: e.spentBy.map(toHex) };
      },
      coin: (txid, vout) => {
        const utxo = node.utxo(txid, vout);
        if (utxo !== undefined) return utxo;
        const key = toHex(txid);
        const entry = view.get(key);
        const out = (entry !== undefined ? decodedEntry(entry) : pending.get(key))?.outputs[vout];
        if (out === undefined || isUnspendable(out.script)) return undefined;
        return { value: out.value, script: out.script, height: spendHeight, coinbase: false, parent: key };
      },
    });
  }

  /**
   * Single-transaction test acceptance (Core's ProcessTransaction with test_accept): precheck, then the
   * replacement rules when it conflicts with the mempool.
   */
  function testAccept(tx: Transaction, view: PoolView): Acceptance {
    const check = precheck(tx, view, spentOutpoints(view), new Map(), true, true);
    if (!check.ok || check.conflicts.size === 0) return check;
    const replacement = checkReplacement(tx, check.fee, check.vsize, check.conflicts, (k) => {
      const e = view.get(k);
      if (e === undefined) return undefined;
      return {
        fee: e.fee,
        vsize: e.vsize,
        inputTxids: decodedEntry(e).inputs.map((i) => toHex(i.prevTxid)),
        children: e.spentBy.map(toHex),
      };
    });
    return replacement.ok ? check : replacement;
  }

  // ---- the table ----

  const table: RpcMethodTable = {
    getblockchaininfo: method([], () => chainInfo()),

    getblockcount: method([], () => node.height),

    getbestblockhash: method([], () => toHexReversed(node.tipHash)),

    getblockhash: method([{ names: "height", type: "num" }], ([h]) => {
      const height = getInt(h);
      if (height < 0 || height > node.height) {
        throw new CoreRpcError(RPC.INVALID_PARAMETER, "Block height out of range");
      }
      return toHexReversed(node.hashAt(height)!);
    }),

    getblockheader: method(
      [{ names: "blockhash", type: "str" }, { names: "verbose", type: "bool", optional: true }],
      ([hashArg, verboseArg]) => {
        const hash = parseHash(hashArg, "hash");
        const verbose = isOmitted(verboseArg) ? true : getBool(verboseArg);
        const info = blockInfo(hash);
        if (info === undefined) throw new CoreRpcError(RPC.INVALID_ADDRESS_OR_KEY, "Block not found");
        if (!verbose) return toHex(info.header);
        return headerJson(info);
      },
    ),

    getblock: method(
      [
        { names: "blockhash", type: "str" },
        { names: "verbosity|verbose", type: "num", optional: true, skipTypeCheck: true },
      ],
      ([hashArg, verbosityArg]) => {
        const hash = parseHash(hashArg, "blockhash");
        const verbosity = parseVerbosity(verbosityArg, 1, true);
        const info = blockInfo(hash);
        if (info === undefined) throw new CoreRpcError(RPC.INVALID_ADDRESS_OR_KEY, "Block not found");
        if (verbosity <= 0) return bigHex(info.raw);
        const block = parseBlock(info.raw);
        const result: Record<string, unknown> = { ...headerJson(info), ...blockSizes(block, info.raw) };
        if (verbosity === 1) {
          result.tx = block.txs.map((tx) => toHexReversed(tx.txid));
          return result;
        }
        // Genesis has no undo data (Core never connects its transactions).
        const undo = info.height > 0 ? blockUndo(hash) : null;
        result.tx = block.txs.map((tx, index) =>
          coreTxJson(tx, net, index > 0 && undo !== null ? undo[index] : null, verbosity >= 3, true)
        );
        return result;
      },
    ),

    getrawtransaction: method(
      [
        { names: "txid", type: "str" },
        { names: "verbosity|verbose", type: "num", optional: true, skipTypeCheck: true },
        { names: "blockhash", type: "str", optional: true },
      ],
      ([txidArg, verbosityArg, blockArg]) => {
        const txid = parseHash(txidArg, "parameter 1");
        if (equalBytes(txid, genesisCoinbaseTxid)) {
          throw new CoreRpcError(
            RPC.INVALID_ADDRESS_OR_KEY,
            "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",
          );
        }
        const verbosity = parseVerbosity(verbosityArg, 0, true);
        let given: { hash: Uint8Array; info: BlockInfo } | null = null;
        if (!isOmitted(blockArg)) {
          const hash = parseHash(blockArg, "parameter 3");
          const info = blockInfo(hash);
          if (info === undefined) throw new CoreRpcError(RPC.INVALID_ADDRESS_OR_KEY, "Block hash not found");
          given = { hash, info };
        }
        // GetTransaction: mempool (only without a block), then txindex, then the given block.
        let raw: Uint8Array | undefined;
        let hashBlock: Uint8Array | null = null;
        if (given === null) raw = node.mempoolTx(txid)?.raw;
        if (raw === undefined && node.txindex) {
          const hit = node.findIndexedTx(txid);
          if (hit !== undefined && (given === null || equalBytes(given.hash, hit.blockHash))) {
            raw = hit.raw;
            hashBlock = hit.blockHash;
          }
        }
        if (raw === undefined && given !== null) {
          raw = node.txInBlock(txid, given.hash);
          if (raw !== undefined) hashBlock = given.hash;
        }
        if (raw === undefined) {
          const why = given !== null
            ? "No such transaction found in the provided block"
            : node.txindex
            ? "No such mempool or blockchain transaction"
            : "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries";
          throw new CoreRpcError(
            RPC.INVALID_ADDRESS_OR_KEY,
            why + ". Use gettransaction for wallet transactions.",
          );
        }
        if (verbosity <= 0) return bigHex(raw);
        const result: Record<string, unknown> = {};
        if (given !== null) result.in_active_chain = given.info.inActiveChain;
        const tx = decodeTransaction(raw);
        let undo: Prevout[] | null = null;
        if (verbosity >= 2 && hashBlock !== null && !isCoinbase(tx)) {
          const index = parseBlock(blockInfo(hashBlock)!.raw).txs.findIndex((t) => equalBytes(t.txid, txid));
          undo = blockUndo(hashBlock)[index];
        }
        Object.assign(result, coreTxJson(tx, net, undo, undo !== null, true));
        if (hashBlock !== null) {
          result.blockhash = toHexReversed(hashBlock);
          const binfo = blockInfo(hashBlock)!;
          if (binfo.inActiveChain) {
            const time = parseHeader(binfo.header).time;
            result.confirmations = node.height - binfo.height + 1;
            result.time = time;
            result.blocktime = time;
          } else {
            result.confirmations = 0;
          }
        }
        return result;
      },
    ),

    getrawmempool: method(
      [
        { names: "verbose", type: "bool", optional: true },
        { names: "mempool_sequence", type: "bool", optional: true },
      ],
      ([verboseArg, seqArg]) => {
        const verbose = isOmitted(verboseArg) ? false : getBool(verboseArg);
        const withSeq = isOmitted(seqArg) ? false : getBool(seqArg);
        const view = poolView();
        pruneUnbroadcast(view);
        if (verbose) {
          if (withSeq) {
            throw new CoreRpcError(
              RPC.INVALID_PARAMETER,
              "Verbose results cannot contain mempool sequence values.",
            );
          }
          const o: Record<string, unknown> = {};
          for (const e of sortedPool(view)) o[toHexReversed(e.txid)] = entryJson(view, e);
          return o;
        }
        const txids = sortedPool(view).map((e) => toHexReversed(e.txid));
        const seq = node.mempoolSequence;
        return withSeq ? { txids, mempool_sequence: seq } : txids;
      },
    ),

    getmempoolentry: method([{ names: "txid", type: "str" }], ([txidArg]) => {
      const txid = parseHash(txidArg, "parameter 1");
      const view = poolView();
      const e = view.get(toHex(txid));
      if (e === undefined) throw new CoreRpcError(RPC.INVALID_ADDRESS_OR_KEY, "Transaction not in mempool");
      pruneUnbroadcast(view);
      return entryJson(view, e);
    }),

    getmempoolinfo: method([], () => {
      const view = poolView();
      pruneUnbroadcast(view);
      let bytes = 0, fees = 0, usage = 0;
      const all = view.all();
      for (const e of all.values()) {
        bytes += e.vsize;
        fees += e.fee;
        // Core reports allocator usage; a transaction costs roughly its size twice over plus bookkeeping.
        usage += 2 * e.raw.length + 384;
      }
      return {
        loaded: true,
        size: all.size,
        bytes,
        usage,
        total_fee: btc(fees),
        maxmempool: MAX_MEMPOOL_BYTES,
        mempoolminfee: btc(MIN_RELAY_SAT_PER_KVB),
        minrelaytxfee: btc(MIN_RELAY_SAT_PER_KVB),
        incrementalrelayfee: btc(MIN_RELAY_SAT_PER_KVB),
        unbroadcastcount: unbroadcast.size,
        fullrbf: true,
      };
    }),

    sendrawtransaction: method(
      [
        { names: "hexstring", type: "str" },
        { names: "maxfeerate", type: "amount", optional: true },
        { names: "maxburnamount", type: "amount", optional: true },
      ],
      ([hexArg, feeRateArg, burnArg]) => {
        const maxBurn = isOmitted(burnArg) ? 0 : amountFromValue(burnArg);
        const tx = decodeHexTx(getStr(hexArg));
        if (tx === null) throw new CoreRpcError(RPC.DESERIALIZATION_ERROR, TX_DECODE_ERROR);
        checkBurn(tx, maxBurn);
        const maxRate = isOmitted(feeRateArg) ? DEFAULT_MAX_RAW_TX_FEE_RATE : parseFeeRate(feeRateArg);
        // BroadcastTransaction: confirmed ⇒ -27; already in the mempool ⇒ fine; else the fee cap, then accept.
        for (let i = 0; i < tx.outputs.length; i++) {
          if (node.utxo(tx.txid, i) !== undefined) {
            throw new CoreRpcError(RPC.VERIFY_ALREADY_IN_UTXO_SET, "Transaction outputs already in utxo set");
          }
        }
        if (node.mempoolTx(tx.txid) !== undefined) return toHexReversed(tx.txid);
        if (maxRate > 0) {
          // Core caps the fee only after the transaction passed validation; otherwise the node's reason wins.
          const check = testAccept(tx, poolView());
          if (check.ok && check.fee > feeForSize(maxRate, tx.vsize)) {
            throw new CoreRpcError(
              RPC.VERIFY_ERROR,
              "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
            );
          }
        }
        const txid = node.acceptTx(tx.raw);
        unbroadcast.add(toHex(txid));
        return toHexReversed(txid);
      },
    ),

    estimatesmartfee: method(
      [{ names: "conf_target", type: "num" }, { names: "estimate_mode", type: "str", optional: true }],
      ([targetArg, modeArg]) => {
        const target = getInt(targetArg);
        if (target < 1 || target > MAX_CONF_TARGET) {
          throw new CoreRpcError(
            RPC.INVALID_PARAMETER,
            `Invalid conf_target, must be between 1 and ${MAX_CONF_TARGET}`,
          );
        }
        if (!isOmitted(modeArg)) {
          const mode = getStr(modeArg).toUpperCase();
          if (mode !== "UNSET" && mode !== "ECONOMICAL" && mode !== "CONSERVATIVE") {
            throw new CoreRpcError(
              RPC.INVALID_PARAMETER,
              'Invalid estimate_mode parameter, must be one of: "unset", "economical", "conservative"',
            );
          }
        }
        const { satPerVb, blocks } = node.estimateFeeRate(target);
        // Core reports the target it could answer for in `blocks`, with an estimate or without one.
        if (satPerVb === undefined) return { errors: ["Insufficient data or no feerate found"], blocks };
        const satPerKvB = Math.max(Math.round(satPerVb * 1000), MIN_RELAY_SAT_PER_KVB);
        return { feerate: btc(satPerKvB), blocks };
      },
    ),

    getnetworkinfo: method([], () => ({
      version: CORE_VERSION,
      subversion: SUBVERSION,
      protocolversion: PROTOCOL_VERSION,
      localservices: "0000000000000c09",
      localservicesnames: ["NETWORK", "WITNESS", "NETWORK_LIMITED", "P2P_V2"],
      localrelay: true,
      timeoffset: 0,
      networkactive: true,
      connections: 0,
      connections_in: 0,
      connections_out: 0,
      networks: ["ipv4", "ipv6", "onion", "i2p", "cjdns"].map((name) => ({
        name,
        limited: !(name === "ipv4" || name === "ipv6"),
        reachable: name === "ipv4" || name === "ipv6",
        proxy: "",
        proxy_randomize_credentials: false,
      })),
      relayfee: btc(MIN_RELAY_SAT_PER_KVB),
      incrementalfee: btc(MIN_RELAY_SAT_PER_KVB),
      localaddresses: [],
      warnings: [],
    })),

    uptime: method([], () => Math.floor((Date.now() - opts.startedAt) / 1000)),

    getindexinfo: method([{ names: "index_name", type: "str", optional: true }], ([nameArg]) => {
      const name = isOmitted(nameArg) ? "" : getStr(nameArg);
      const result: Record<string, unknown> = {};
      if (node.txindex && (name === "" || name === "txindex")) {
        result.txindex = { synced: true, best_block_height: node.height };
      }
      return result;
    }),

    submitpackage: method(
      [
        { names: "package", type: "arr" },
        { names: "maxfeerate", type: "amount", optional: true },
        { names: "maxburnamount", type: "amount", optional: true },
      ],
      ([pkgArg, feeRateArg, burnArg]) => {
        const raws = pkgArg as unknown[];
        if (raws.length < 2 || raws.length > MAX_PACKAGE_COUNT) {
          throw new CoreRpcError(
            RPC.INVALID_PARAMETER,
            `Array must contain between 2 and ${MAX_PACKAGE_COUNT} transactions.`,
          );
        }
        const maxRate = isOmitted(feeRateArg) ? DEFAULT_MAX_RAW_TX_FEE_RATE : parseFeeRate(feeRateArg);
        const maxBurn = isOmitted(burnArg) ? 0 : amountFromValue(burnArg);
        const txs = raws.map((r) => {
          const hex = getStr(r);
          const tx = decodeHexTx(hex);
          if (tx === null) {
            throw new CoreRpcError(
              RPC.DESERIALIZATION_ERROR,
              `TX decode failed: ${hex} Make sure the tx has at least one input.`,
            );
          }
          checkBurn(tx, maxBurn);
          return tx;
        });
        if (!isChildWithParentsTree(txs)) {
          throw new CoreRpcError(
            RPC.VERIFY_ERROR,
            "package topology disallowed. not child-with-parents or parents depend on each other.",
          );
        }
        // IsWellFormedPackage comes before any member is looked at: e.g. two parents spending one coin.
        const malformed = packagePolicyError(txs);
        if (malformed !== null) {
          return { package_msg: malformed, "tx-results": {}, "replaced-transactions": [] };
        }
        // Members go in one at a time, parents first (no package feerate: a parent must pay its own way); after
        // a failure the rest are still tried, as Core does (a child of a failed parent then misses its inputs).
        let failed = false;
        const results: Record<string, unknown> = {};
        const replaced: Uint8Array[] = [];
        for (const tx of txs) {
          const r: Record<string, unknown> = { txid: toHexReversed(tx.txid) };
          const existing = node.mempoolTx(tx.txid);
          if (existing !== undefined) {
            r.vsize = existing.vsize;
            r.fees = { base: btc(existing.fee) };
          } else {
            // Core compares the feerate cap after PreChecks and before the replacement rules, as CFeeRate values
            // (truncated sat/kvB).
            const view = poolView();
            const check = precheck(tx, view, spentOutpoints(view), new Map(), true, false);
            if (check.ok && maxRate > 0 && Math.floor((check.fee * 1000) / check.vsize) > maxRate) {
              r.error = "max feerate exceeded";
              failed = true;
            } else {
              try {
                node.acceptTx(tx.raw, replaced, { package: true });
                const entry = node.mempoolTx(tx.txid)!;
                unbroadcast.add(toHex(tx.txid));
                r.vsize = entry.vsize;
                r.fees = {
                  base: btc(entry.fee),
                  "effective-feerate": btc(Math.floor((entry.fee * 1000) / entry.vsize)),
                  "effective-includes": [toHexReversed(wtxid(tx))],
                };
              } catch (e) {
                if (!(e instanceof CoreRpcError)) throw e;
                r.error = e.message;
                failed = true;
              }
            }
          }
          results[toHexReversed(wtxid(tx))] = r;
        }
        return {
          package_msg: failed ? "transaction failed" : "success",
          "tx-results": results,
          // Core gathers them in a set of txids: ordered by their bytes (internal order), not by eviction.
          "replaced-transactions": replaced.map(toHex).sort().map((h) => toHexReversed(fromHex(h))),
        };
      },
    ),

    testmempoolaccept: method(
      [{ names: "rawtxs", type: "arr" }, { names: "maxfeerate", type: "amount", optional: true }],
      ([rawArg, feeRateArg]) => {
        const raws = rawArg as unknown[];
        if (raws.length < 1 || raws.length > MAX_PACKAGE_COUNT) {
          throw new CoreRpcError(
            RPC.INVALID_PARAMETER,
            `Array must contain between 1 and ${MAX_PACKAGE_COUNT} transactions.`,
          );
        }
        const maxRate = isOmitted(feeRateArg) ? DEFAULT_MAX_RAW_TX_FEE_RATE : parseFeeRate(feeRateArg);
        const txs = raws.map((r) => {
          const hex = getStr(r);
          const tx = decodeHexTx(hex);
          if (tx === null) {
            throw new CoreRpcError(
              RPC.DESERIALIZATION_ERROR,
              `TX decode failed: ${hex} Make sure the tx has at least one input.`,
            );
          }
          return tx;
        });
        const view = poolView();
        const results = txs.map((tx) => ({
          txid: toHexReversed(tx.txid),
          wtxid: toHexReversed(wtxid(tx)),
        } as Record<string, unknown>));
        if (txs.length > 1) {
          const policy = packagePolicyError(txs);
          if (policy !== null) return results.map((r) => ({ ...r, "package-error": policy }));
        }
        // Members are checked in order, each seeing the earlier ones as if already in the mempool; after
        // the first failure the rest stay unvalidated (no "allowed" key), as in Core.
        const spent = spentOutpoints(view);
        const pending = new Map<string, Transaction>();
        for (let k = 0; k < txs.length; k++) {
          const tx = txs[k], r = results[k];
          let check: ReturnType<typeof precheck>;
          if (view.get(toHex(tx.txid)) !== undefined) {
            check = { ok: false, code: RPC.VERIFY_REJECTED, reason: "txn-already-in-mempool" };
          } else if (tx.outputs.some((_, i) => node.utxo(tx.txid, i) !== undefined)) {
            check = { ok: false, code: RPC.VERIFY_REJECTED, reason: "txn-already-known" };
          } else {
            // One transaction may replace; several are a package, which testmempoolaccept never lets replace.
            check = txs.length === 1
              ? testAccept(tx, view)
              : precheck(tx, view, spent, pending, false, false);
          }
          if (!check.ok) {
            r.allowed = false;
            // Core reports the reason alone here (state.GetRejectReason()); sendrawtransaction's message adds
            // the details after ", " (state.ToString()).
            r["reject-reason"] = check.reason === "bad-txns-inputs-missingorspent"
              ? "missing-inputs"
              : check.reason.split(", ")[0];
            break;
          }
          if (feeForSize(maxRate, check.vsize) > 0 && check.fee > feeForSize(maxRate, check.vsize)) {
            r.allowed = false;
            r["reject-reason"] = "max-fee-exceeded";
            break;
          }
          r.allowed = true;
          r.vsize = check.vsize;
          r.fees = {
            base: btc(check.fee),
            "effective-feerate": btc(Math.floor((check.fee * 1000) / check.vsize)),
            "effective-includes": [r.wtxid],
          };
          for (const i of tx.inputs) spent.set(toHex(i.prevTxid) + ":" + i.prevVout, toHex(tx.txid));
          pending.set(toHex(tx.txid), tx);
        }
        return results;
      },
    ),
  };
  return table;
}

/** IsChildWithParentsTree: the last transaction spends every other one, and those do not spend each other. */
function isChildWithParentsTree(txs: Transaction[]): boolean {
  const child = txs[txs.length - 1];
  const parents = new Set(txs.slice(0, -1).map((tx) => toHex(tx.txid)));
  const spentByChild = new Set(child.inputs.map((i) => toHex(i.prevTxid)));
  for (const p of parents) if (!spentByChild.has(p)) return false;
  return txs.slice(0, -1).every((tx) => tx.inputs.every((i) => !parents.has(toHex(i.prevTxid))));
}

/**
 * The context-free package checks of Core's testmempoolaccept (IsWellFormedPackage): a PCKG_POLICY reason,
 * or null.
 */
function packagePolicyError(txs: Transaction[]): string | null {
  if (txs.reduce((a, tx) => a + tx.weight, 0) > MAX_PACKAGE_WEIGHT) return "package-too-large";
  const ids = txs.map((tx) => toHex(tx.txid));
  if (new Set(ids).size !== ids.length) return "package-contains-duplicates";
  const later = new Set(ids);
  for (const tx of txs) {
    later.delete(toHex(tx.txid));
    if (tx.inputs.some((i) => later.has(toHex(i.prevTxid)))) return "package-not-sorted";
  }
  // Each transaction's inputs against the earlier ones' (Core's IsConsistentPackage): one spending an outpoint
  // twice is CheckTransaction's to refuse (bad-txns-inputs-duplicate), not a conflict in the package.
  const spends = new Set<string>();
  for (const tx of txs) {
    const keys = tx.inputs.map((i) => toHex(i.prevTxid) + ":" + i.prevVout);
    if (keys.some((k) => spends.has(k))) return "conflict-in-package";
    for (const k of keys) spends.add(k);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// simnet-only control RPCs.

function controlCount(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new CoreRpcError(RPC.INVALID_PARAMETER, `${name} must be an integer between ${min} and ${max}`);
  }
  return v;
}

/** The simnet_* RPCs that drive the simulated chain: mine, add mempool traffic, reorganise, describe. */
export function controlMethods(node: SimNode): RpcMethodTable {
  return {
    simnet_mine: {
      params: ["nblocks", "?include_mempool"],
      handler([n, includeArg]) {
        const count = controlCount(n, "nblocks", 0, 10_000);
        if (!isOmitted(includeArg) && typeof includeArg !== "boolean") {
          throw new CoreRpcError(RPC.INVALID_PARAMETER, "include_mempool must be a boolean");
        }
        const includeMempool = includeArg !== false;
        return node.mine(count, { includeMempool }).map(toHexReversed);
      },
    },
    simnet_addtraffic: {
      params: ["count"],
      handler([n]) {
        return node.addMempoolTraffic(controlCount(n, "count", 0, 100_000)).map(toHexReversed);
      },
    },
    simnet_reorg: {
      params: ["depth", "?options"],
      handler([d, optsArg]) {
        const depth = controlCount(d, "depth", 1, node.height);
        const opts = isOmitted(optsArg) ? {} : optsArg;
        if (typeof opts !== "object" || Array.isArray(opts)) {
          throw new CoreRpcError(RPC.INVALID_PARAMETER, "options must be an object");
        }
        const o = opts as Record<string, unknown>;
        for (const key of Object.keys(o)) {
          if (key !== "extra_blocks" && key !== "to_mempool" && key !== "double_spend") {
            throw new CoreRpcError(RPC.INVALID_PARAMETER, `Unknown option ${key}`);
          }
        }
        const pick = (key: string) => isOmitted(o[key]) ? undefined : controlCount(o[key], key, 0, 1_000_000);
        const r = node.reorg(depth, {
          extraBlocks: pick("extra_blocks"),
          toMempool: pick("to_mempool"),
          doubleSpend: pick("double_spend"),
        });
        return {
          old_hashes: r.oldHashes.map(toHexReversed),
          new_hashes: r.newHashes.map(toHexReversed),
          moved: r.moved.map(toHexReversed),
          to_mempool: r.toMempool.map(toHexReversed),
          double_spent: r.doubleSpent.map(toHexReversed),
          conflicts: r.conflicts.map(toHexReversed),
          evicted: r.evicted.map(toHexReversed),
        };
      },
    },
    simnet_info: {
      params: [],
      handler() {
        const out: Record<string, unknown> = {
          height: node.height,
          bestblockhash: toHexReversed(node.tipHash),
          mempool_size: node.mempoolEntries().length,
          txindex: node.txindex,
          seed: node.options.seed,
          initial_blocks: node.options.blocks,
          initial_txs: node.options.txs,
        };
        return out;
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// REST.

/** The data Core's REST interface serves, from `node`. */
export function restProvider(node: SimNode, chainInfo?: () => unknown): RestProvider {
  const info = chainInfo ??
    (() => coreMethods(node, { startedAt: Date.now() }).getblockchaininfo.handler([]));
  return {
    blockRaw: (hash) => node.blockInfo(hash)?.raw,
    blockHashByHeight: (height) => node.hashAt(height),
    headers(hash, count) {
      // rest_headers walks the active chain from the block; a stale or unknown block yields no headers.
      const start = node.blockInfo(hash);
      if (start === undefined || !start.inActiveChain) return [];
      const out: Uint8Array[] = [];
      for (let h = start.height; h <= node.height && out.length < count; h++) {
        out.push(node.blockInfo(node.hashAt(h)!)!.header);
      }
      return out;
    },
    chainInfo: info,
  };
}
