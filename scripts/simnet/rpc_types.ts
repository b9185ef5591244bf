// The contract between simnet's Core-compatible HTTP transport (rpc_server.ts) and the simulated node's
// method implementations (methods.ts). The transport knows HTTP, auth, dialects, batches and faults; the
// methods know the chain. Neither imports the other's internals.

/** An error a method raises; the transport maps it to Core's JSON-RPC error object and HTTP status. */
export class CoreRpcError extends Error {
  override name = "CoreRpcError";
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Core's RPC error codes used by simnet (src/rpc/protocol.h). */
export const RPC = {
  MISC_ERROR: -1,
  TYPE_ERROR: -3,
  INVALID_ADDRESS_OR_KEY: -5,
  INVALID_PARAMETER: -8,
  DESERIALIZATION_ERROR: -22,
  VERIFY_ERROR: -25,
  VERIFY_REJECTED: -26,
  VERIFY_ALREADY_IN_UTXO_SET: -27,
  IN_WARMUP: -28,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  PARSE_ERROR: -32700,
} as const;

/** One RPC method as the transport sees it. */
export interface RpcMethod {
  /**
   * Core's help names for the positional parameters, in order; named-parameter requests are mapped onto
   * these. "a|b" lists aliases (e.g. "verbosity|verbose"). A name starting with "?" is optional.
   */
  params: string[];
  /** Receives positional arguments (named ones already mapped; missing trailing optionals are absent). */
  handler(args: unknown[]): unknown | Promise<unknown>;
}

/** Method name → implementation. */
export type RpcMethodTable = Record<string, RpcMethod>;

/** What the REST interface (`/rest/...`) needs from the node. Hashes are internal byte order. */
export interface RestProvider {
  /** Raw serialized block, or undefined if unknown. */
  blockRaw(hash: Uint8Array): Uint8Array | undefined;
  /** Active-chain block hash at a height, or undefined if out of range. */
  blockHashByHeight(height: number): Uint8Array | undefined;
  /** Up to `count` 80-byte headers starting at `hash` and following the active chain; undefined if unknown. */
  headers(hash: Uint8Array, count: number): Uint8Array[] | undefined;
  /** The same object getblockchaininfo returns. */
  chainInfo(): unknown;
}
