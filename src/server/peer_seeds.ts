// The peers discovery starts from, per network. Kept apart from the discovery code so that the launcher can
// grant them in the sandbox without loading any of it.
import type { Network, PeerSpec } from "../config.ts";

/** Built-in seeds per network: long-running public servers; the table grows from their peer lists. */
export const SEEDS: Readonly<Record<Network, readonly PeerSpec[]>> = {
  mainnet: [
    { host: "electrum.blockstream.info", tcpPort: 50001, sslPort: 50002 },
    { host: "electrum.emzy.de", tcpPort: 50001, sslPort: 50002 },
    { host: "electrum.bitaroo.net", tcpPort: 50001, sslPort: 50002 },
    { host: "bitcoin.lukechilds.co", tcpPort: 50001, sslPort: 50002 },
    { host: "electrum.jochen-hoenicke.de", tcpPort: 50003, sslPort: 50005 },
  ],
  testnet: [
    { host: "testnet.qtornado.com", tcpPort: 51001, sslPort: 51002 },
    { host: "testnet.aranguren.org", tcpPort: 51001, sslPort: 51002 },
    { host: "electrum.blockstream.info", tcpPort: 60001, sslPort: 60002 },
  ],
  testnet4: [],
  signet: [],
  regtest: [],
};
