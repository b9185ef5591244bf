// The peers discovery starts from, per network. Kept apart from the discovery code so that the launcher can
// grant them in the sandbox without loading any of it. The lists are ElectrumX's (lib/coins.py, 2026) without
// its onion entries (Coulomb has no Tor proxy), in the same notation as PEERS: they are servers that Electrum
// itself and ElectrumX operators already rely on, not a choice of ours.
import { type Network, parsePeers, type PeerSpec } from "../config.ts";

const SEED_TEXT: Readonly<Record<Network, string>> = {
  mainnet: [
    "electrum.vom-stausee.de s t",
    "electrum.hsmiths.com s t",
    "helicarrier.bauerj.eu s t",
    "electrum.hodlister.co s",
    "electrum3.hodlister.co s",
    "btc.usebsv.com s50006",
    "fortress.qtornado.com s443 t",
    "ecdsa.net s110 t",
    "e2.keff.org s t",
    "currentlane.lovebitco.in s t",
    "electrum.jochen-hoenicke.de s50005 t50003",
    "vps5.hsmiths.com s",
    "electrum.emzy.de s",
    "electrum1.cipig.net t10000 s20000",
    "ulrichard.ch s",
    "hodlers.beer s",
    "5.9.83.108 s",
  ].join(","),
  testnet: [
    "testnet.qtornado.com s t",
    "blackie.c3-soft.com s57006 t57005",
    "electrum.blockstream.info t60001 s60002",
    "testnet.aranguren.org s t",
    "v22019051929289916.bestsrv.de s50002 t50001",
  ].join(","),
  testnet4: [
    "blackie.c3-soft.com s57010 t57009",
    "testnet4-electrumx.wakiyamap.dev",
    "13.212.194.61 s60002 t50001",
    "v22019051929289916.bestsrv.de s60002 t60001",
    "fulcrum.theuplink.net s60002",
    "134.199.227.217 s50002 t50001",
    "bitcoin.stagemole.eu s5010 t5000",
    "testnet4.qtornado.com s51012 t51011",
  ].join(","),
  signet: "",
  regtest: "",
};

/** Built-in seeds per network: long-running public servers; the table grows from their peer lists. */
export const SEEDS: Readonly<Record<Network, readonly PeerSpec[]>> = {
  mainnet: parsePeers(SEED_TEXT.mainnet, "mainnet"),
  testnet: parsePeers(SEED_TEXT.testnet, "testnet"),
  testnet4: parsePeers(SEED_TEXT.testnet4, "testnet4"),
  signet: parsePeers(SEED_TEXT.signet, "signet"),
  regtest: parsePeers(SEED_TEXT.regtest, "regtest"),
};
