// Addresses ⇄ output scripts: Base58Check for P2PKH/P2SH, bech32/bech32m for witness programs.
import { base58CheckDecode, base58CheckEncode } from "./base58.ts";
import { bech32Decode, decodeSegwitAddress, encodeSegwitAddress } from "./bech32.ts";
import { ChainFormatError } from "./errors.ts";
import { type Network, NETWORKS } from "./network.ts";
import { classifyScript, witnessProgram } from "./script.ts";

// Longest plausible address: 90 for bech32, ~35 for base58; anything longer is rejected before decoding.
const MAX_ADDRESS_LENGTH = 90;

function withPrefix(prefix: number, hash: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + hash.length);
  out[0] = prefix;
  out.set(hash, 1);
  return out;
}

/** The address paying to `script` on `net`, or null for scripts with no address (P2PK, OP_RETURN, …). */
export function scriptToAddress(script: Uint8Array, net: Network): string | null {
  switch (classifyScript(script)) {
    case "p2pkh":
      return base58CheckEncode(withPrefix(net.p2pkhPrefix, script.subarray(3, 23)));
    case "p2sh":
      return base58CheckEncode(withPrefix(net.p2shPrefix, script.subarray(2, 22)));
    case "p2wpkh":
    case "p2wsh":
    case "p2tr":
    case "witness_unknown": {
      const wp = witnessProgram(script)!;
      return encodeSegwitAddress(net.bech32Hrp, wp.version, wp.program);
    }
    default:
      return null;
  }
}

function p2pkhScript(hash: Uint8Array): Uint8Array {
  const s = new Uint8Array(25);
  s.set([0x76, 0xa9, 0x14]);
  s.set(hash, 3);
  s.set([0x88, 0xac], 23);
  return s;
}

function p2shScript(hash: Uint8Array): Uint8Array {
  const s = new Uint8Array(23);
  s.set([0xa9, 0x14]);
  s.set(hash, 2);
  s[22] = 0x87;
  return s;
}

function knownHrpPrefix(lower: string): string | null {
  let best: string | null = null;
  for (const n of Object.values(NETWORKS)) {
    const hrp = n.bech32Hrp;
    if (lower.startsWith(hrp + "1") && (best === null || hrp.length > best.length)) best = hrp;
  }
  return best;
}

/** True for a well-formed bech32/bech32m string whose HRP belongs to no network we know (e.g. ltc1…). */
function looksLikeOtherBech32(address: string): boolean {
  try {
    bech32Decode(address);
    return true;
  } catch {
    return false;
  }
}

/** The output script an address pays to; throws ChainFormatError for a bad or other-network address. */
export function addressToScript(address: string, net: Network): Uint8Array {
  if (typeof address !== "string" || address.length === 0 || address.length > MAX_ADDRESS_LENGTH) {
    throw new ChainFormatError(
      "bad-address",
      "address must be a non-empty string of at most 90 characters",
      0,
    );
  }
  const hrp = knownHrpPrefix(address.toLowerCase());
  if (hrp !== null) {
    const decoded = decodeSegwitAddress(address);
    if (decoded.hrp !== net.bech32Hrp) {
      throw new ChainFormatError(
        "wrong-network",
        `address is for a network with prefix "${decoded.hrp}", not ${net.name} ("${net.bech32Hrp}")`,
        0,
      );
    }
    const script = new Uint8Array(2 + decoded.program.length);
    script[0] = decoded.version === 0 ? 0 : 0x50 + decoded.version;
    script[1] = decoded.program.length;
    script.set(decoded.program, 2);
    return script;
  }

  let payload: Uint8Array;
  try {
    payload = base58CheckDecode(address);
  } catch (e) {
    if (looksLikeOtherBech32(address)) {
      throw new ChainFormatError("wrong-network", `address is not a ${net.name} address`, 0);
    }
    if (e instanceof ChainFormatError && e.code === "bad-checksum") throw e;
    throw new ChainFormatError("bad-address", `not a valid ${net.name} address`, 0);
  }
  if (payload.length !== 21) {
    throw new ChainFormatError("bad-address", `address payload is ${payload.length} bytes, expected 21`, 0);
  }
  const prefix = payload[0];
  const hash = payload.subarray(1);
  if (prefix === net.p2pkhPrefix) return p2pkhScript(hash);
  if (prefix === net.p2shPrefix) return p2shScript(hash);
  for (const other of Object.values(NETWORKS)) {
    if (prefix === other.p2pkhPrefix || prefix === other.p2shPrefix) {
      throw new ChainFormatError("wrong-network", `address is for ${other.name}, not ${net.name}`, 0);
    }
  }
  throw new ChainFormatError("bad-address", `unknown address version byte 0x${prefix.toString(16)}`, 0);
}
