// hashX (the first 11 bytes of sha256(script)) for every output of every block: the processor's single biggest
// CPU cost after parsing. Written straight into the caller's buffer by src/chain/hash.ts's allocation-free
// SHA-256 (nearly every script fits one block), against 1.18 µs and two allocations per output for
// @noble/hashes' sha256 + slice.
import { sha256Into } from "../chain/hash.ts";
import { HASHX_LENGTH } from "../chain/script.ts";

/** Writes hashX(script) (11 bytes) into `out` at `off`. */
export function hashXInto(script: Uint8Array, out: Uint8Array, off: number): void {
  sha256Into(script, 0, script.length, out, off, HASHX_LENGTH);
}
