// Parameters of the Bitcoin networks Coulomb serves. Genesis headers are verified by hashing in the tests.
import { ChainFormatError } from "./errors.ts";
import { fromHex, fromHexReversed } from "./hex.ts";

/** Everything Coulomb needs to know about one Bitcoin network. */
export interface Network {
  name: "mainnet" | "testnet" | "testnet4" | "signet" | "regtest";
  /** The `chain` value bitcoind's getblockchaininfo reports: main, test, testnet4, signet, regtest. */
  coreChain: string;
  /** Genesis block hash, internal order. */
  genesisHash: Uint8Array;
  /** The 80-byte genesis header. */
  genesisHeader: Uint8Array;
  p2pkhPrefix: number;
  p2shPrefix: number;
  wifPrefix: number;
  bech32Hrp: string;
  /** bitcoind's default RPC port. */
  rpcPort: number;
  /** Directory under bitcoind's datadir holding the `.cookie` file ("." for mainnet). */
  cookieDir: string;
  halvingInterval: number;
  powLimitBits: number;
  /** Block subsidy at height 0, in satoshis. */
  initialSubsidy: number;
  /**
   * BIP30's exceptions: blocks whose coinbase repeats an earlier coinbase's txid while that one's outputs are
   * unspent, replacing them (mainnet 91842 and 91880, as bitcoind's IsBIP30Repeat). Hash in internal order.
   */
  overwritingCoinbases: readonly { readonly height: number; readonly hash: Uint8Array }[];
}

// Main, testnet3, signet and regtest share the 2009 coinbase, so their headers differ only in time/bits/nonce.
const SATOSHI_ROOT = "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a";
const NULL_PREV = "00".repeat(32);

function network(
  name: Network["name"],
  coreChain: string,
  genesisHashHex: string,
  genesisHeaderHex: string,
  rest: Omit<Network, "name" | "coreChain" | "genesisHash" | "genesisHeader" | "overwritingCoinbases">,
  overwritingCoinbases: [number, string][] = [],
): Network {
  return Object.freeze({
    name,
    coreChain,
    genesisHash: fromHexReversed(genesisHashHex),
    genesisHeader: fromHex(genesisHeaderHex),
    ...rest,
    overwritingCoinbases: Object.freeze(
      overwritingCoinbases.map(([height, hash]) => Object.freeze({ height, hash: fromHexReversed(hash) })),
    ),
  });
}

const COIN = 100_000_000;

/** The supported networks by name. */
export const NETWORKS: Record<Network["name"], Network> = Object.freeze({
  mainnet: network(
    "mainnet",
    "main",
    "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "01000000" + NULL_PREV + SATOSHI_ROOT + "29ab5f49" + "ffff001d" + "1dac2b7c",
    {
      p2pkhPrefix: 0x00,
      p2shPrefix: 0x05,
      wifPrefix: 0x80,
      bech32Hrp: "bc",
      rpcPort: 8332,
      cookieDir: ".",
      halvingInterval: 210_000,
      powLimitBits: 0x1d00ffff,
      initialSubsidy: 50 * COIN,
    },
    [
      [91842, "00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec"],
      [91880, "00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"],
    ],
  ),
  testnet: network(
    "testnet",
    "test",
    "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943",
    "01000000" + NULL_PREV + SATOSHI_ROOT + "dae5494d" + "ffff001d" + "1aa4ae18",
    {
      p2pkhPrefix: 0x6f,
      p2shPrefix: 0xc4,
      wifPrefix: 0xef,
      bech32Hrp: "tb",
      rpcPort: 18332,
      cookieDir: "testnet3",
      halvingInterval: 210_000,
      powLimitBits: 0x1d00ffff,
      initialSubsidy: 50 * COIN,
    },
  ),
  testnet4: network(
    "testnet4",
    "testnet4",
    "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    "01000000" + NULL_PREV + "4e7b2b9128fe0291db0693af2ae418b767e657cd407e80cb1434221eaea7a07a" + "046f3566" +
      "ffff001d" + "bb0c7817",
    {
      p2pkhPrefix: 0x6f,
      p2shPrefix: 0xc4,
      wifPrefix: 0xef,
      bech32Hrp: "tb",
      rpcPort: 48332,
      cookieDir: "testnet4",
      halvingInterval: 210_000,
      powLimitBits: 0x1d00ffff,
      initialSubsidy: 50 * COIN,
    },
  ),
  signet: network(
    "signet",
    "signet",
    "00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6",
    "01000000" + NULL_PREV + SATOSHI_ROOT + "008f4d5f" + "ae77031e" + "8ad22203",
    {
      p2pkhPrefix: 0x6f,
      p2shPrefix: 0xc4,
      wifPrefix: 0xef,
      bech32Hrp: "tb",
      rpcPort: 38332,
      cookieDir: "signet",
      halvingInterval: 210_000,
      powLimitBits: 0x1e0377ae,
      initialSubsidy: 50 * COIN,
    },
  ),
  regtest: network(
    "regtest",
    "regtest",
    "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    "01000000" + NULL_PREV + SATOSHI_ROOT + "dae5494d" + "ffff7f20" + "02000000",
    {
      p2pkhPrefix: 0x6f,
      p2shPrefix: 0xc4,
      wifPrefix: 0xef,
      bech32Hrp: "bcrt",
      rpcPort: 18443,
      cookieDir: "regtest",
      halvingInterval: 150,
      powLimitBits: 0x207fffff,
      initialSubsidy: 50 * COIN,
    },
  ),
});

const ALIASES = new Map<string, Network["name"]>([
  ["mainnet", "mainnet"],
  ["main", "mainnet"],
  ["bitcoin", "mainnet"],
  ["testnet", "testnet"],
  ["test", "testnet"],
  ["testnet3", "testnet"],
  ["testnet4", "testnet4"],
  ["signet", "signet"],
  ["regtest", "regtest"],
]);

/** Looks a network up by our name, Core's chain name or a common alias (case-insensitive). */
export function networkByName(name: string): Network {
  const key = ALIASES.get(String(name).trim().toLowerCase());
  if (key === undefined) {
    throw new ChainFormatError(
      "unknown-network",
      `unknown network "${name}"; use one of mainnet, testnet, testnet4, signet, regtest`,
      0,
    );
  }
  return NETWORKS[key];
}

/** New coins a block at `height` may create, in satoshis (halving every `halvingInterval` blocks). */
export function blockSubsidy(height: number, net: Network): number {
  if (!Number.isInteger(height) || height < 0) throw new RangeError(`bad block height ${height}`);
  const halvings = Math.floor(height / net.halvingInterval);
  if (halvings >= 64) return 0;
  // Division by a power of two is exact in floating point, so this equals Core's right shift.
  return Math.floor(net.initialSubsidy / 2 ** halvings);
}
