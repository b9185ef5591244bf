import assert from "node:assert/strict";
import {
  type Config,
  ConfigError,
  DEFAULT_SERVICES,
  ENV_VARIABLES,
  loadConfig,
  parseDaemonUrls,
  parseServices,
  redactUrl,
} from "../src/config.ts";
import { serverVersionString } from "../src/version.ts";

const BASE = { DB_DIRECTORY: "/var/coulomb", DAEMON_URL: "http://rpc:secret@127.0.0.1:8332/" };

function load(env: Record<string, string | undefined>, argv: string[] = [], cpus = 2): Config {
  const r = loadConfig(env, argv, cpus, "linux");
  assert.ok(!("help" in r) && !("version" in r), "expected a Config");
  return r as Config;
}

function rejects(
  env: Record<string, string | undefined>,
  variable: string,
  message: RegExp,
  argv: string[] = [],
) {
  assert.throws(() => loadConfig(env, argv), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.equal(e.variable, variable);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("defaults match ElectrumX for an otherwise empty environment", () => {
  const c = load(BASE);
  assert.equal(c.coin, "Bitcoin");
  assert.equal(c.net, "mainnet");
  assert.equal(c.coreChain, "main");
  assert.equal(c.dbDirectory, "/var/coulomb");
  assert.deepEqual(c.daemonUrls, ["http://rpc:secret@127.0.0.1:8332/"]);
  assert.equal(c.daemonTimeoutMs, 30_000);
  assert.equal(c.daemonPollMs, 5000);
  assert.equal(c.cacheMb, 1200);
  assert.equal(c.flushSize, 4_000_000);
  assert.equal(c.reorgLimit, 200);
  assert.equal(c.logLevel, "info");
  assert.deepEqual(c.services, [
    { protocol: "tcp", host: "127.0.0.1", port: 50001 },
    { protocol: "rpc", host: "127.0.0.1", port: 8000 },
  ]);
  assert.equal(DEFAULT_SERVICES, "tcp://127.0.0.1:50001,rpc://127.0.0.1:8000");
  assert.deepEqual(c.reportServices, []);
  assert.equal(c.maxSessions, 1000);
  assert.equal(c.maxSend, 8_100_000);
  assert.equal(c.maxRecv, 1_000_000);
  assert.equal(c.maxSubs, 250_000);
  assert.equal(c.maxSessionSubs, 50_000);
  assert.equal(c.bandwidthUnitCost, 5000);
  assert.equal(c.costSoftLimit, 1000);
  assert.equal(c.costHardLimit, 10000);
  assert.equal(c.initialConcurrent, 10);
  assert.equal(c.requestSleepMs, 2500);
  assert.equal(c.requestTimeoutS, 30);
  assert.equal(c.sessionTimeoutS, 600);
  assert.equal(c.bannerFile, undefined);
  assert.equal(c.donationAddress, "");
  assert.equal(c.peerDiscovery, "on");
  assert.equal(c.peerAnnounce, true);
  assert.equal(c.metrics, undefined);
  assert.equal(c.allowRoot, false);
  assert.deepEqual(c.ignoredVariables, []);
});

Deno.test("the config and its lists are frozen", () => {
  const c = load(BASE);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.services));
  assert.ok(Object.isFrozen(c.services[0]));
  assert.ok(Object.isFrozen(c.daemonUrls));
  assert.throws(() => {
    (c as { cacheMb: number }).cacheMb = 1;
  }, TypeError);
});

Deno.test("flags override variables, in kebab case and with aliases", () => {
  const c = load({ ...BASE, CACHE_MB: "100", NET: "mainnet" }, [
    "--cache-mb",
    "300",
    "--db-dir=/tmp/x",
    "--net",
    "regtest",
    "--daemon-url",
    "u:p@localhost",
    "--daemon-timeout",
    "0.5",
    "--no-peer-announce",
    "--allow-root",
  ]);
  assert.equal(c.cacheMb, 300);
  assert.equal(c.dbDirectory, "/tmp/x");
  assert.equal(c.net, "regtest");
  assert.equal(c.coreChain, "regtest");
  assert.deepEqual(c.daemonUrls, ["http://u:p@localhost:18443/"]);
  assert.equal(c.daemonTimeoutMs, 500);
  assert.equal(c.peerAnnounce, false);
  assert.equal(c.allowRoot, true);
  assert.equal(load(BASE, ["--db-directory", "/d"]).dbDirectory, "/d");
});

Deno.test("ElectrumX booleans: any non-empty value is on, empty is off", () => {
  assert.equal(load({ ...BASE, ALLOW_ROOT: "1" }).allowRoot, true);
  assert.equal(load({ ...BASE, ALLOW_ROOT: "no" }).allowRoot, true);
  assert.equal(load({ ...BASE, ALLOW_ROOT: "  " }).allowRoot, false);
  assert.equal(load({ ...BASE, PEER_ANNOUNCE: "" }).peerAnnounce, false);
  assert.equal(load({ ...BASE, PEER_ANNOUNCE: "yes" }).peerAnnounce, true);
});

Deno.test("numbers are validated with messages naming the variable and the bad value", () => {
  rejects({ ...BASE, CACHE_MB: "abc" }, "CACHE_MB", /^CACHE_MB must be a positive integer, got 'abc'$/);
  rejects({ ...BASE, CACHE_MB: "0" }, "CACHE_MB", /positive integer, got '0'/);
  rejects({ ...BASE, CACHE_MB: "-5" }, "CACHE_MB", /got '-5'/);
  rejects({ ...BASE, CACHE_MB: "1.5" }, "CACHE_MB", /got '1.5'/);
  rejects({ ...BASE, CACHE_MB: "" }, "CACHE_MB", /got ''/);
  rejects({ ...BASE, MAX_SESSIONS: "99999999999999999999" }, "MAX_SESSIONS", /positive integer/);
  rejects(BASE, "CACHE_MB", /^CACHE_MB \(from --cache-mb\) must be a positive integer, got 'lots'$/, [
    "--cache-mb",
    "lots",
  ]);
  rejects(
    { ...BASE, DAEMON_TIMEOUT: "0" },
    "DAEMON_TIMEOUT",
    /a number of seconds from 0.001 to 2147483, got '0'/,
  );
  rejects({ ...BASE, DAEMON_TIMEOUT: "soon" }, "DAEMON_TIMEOUT", /got 'soon'/);
  assert.equal(load({ ...BASE, REQUEST_SLEEP: "0" }).requestSleepMs, 0);
  assert.equal(load({ ...BASE, FLUSH_SIZE: "1_000_000" }).flushSize, 1_000_000);
});

Deno.test("cost limits, MAX_SEND floor and REORG_LIMIT per network follow ElectrumX", () => {
  rejects(
    { ...BASE, COST_SOFT_LIMIT: "500", COST_HARD_LIMIT: "100" },
    "COST_HARD_LIMIT",
    /at least COST_SOFT/,
  );
  assert.equal(load({ ...BASE, COST_SOFT_LIMIT: "500", COST_HARD_LIMIT: "500" }).costHardLimit, 501);
  assert.equal(load({ ...BASE, COST_SOFT_LIMIT: "0", COST_HARD_LIMIT: "0" }).costHardLimit, 0);
  assert.equal(load({ ...BASE, MAX_SEND: "1000" }).maxSend, 350_000);
  assert.equal(load({ ...BASE, MAX_SEND: "2000000" }).maxSend, 2_000_000);
  assert.equal(load({ ...BASE, NET: "regtest" }).reorgLimit, 8000);
  assert.equal(load({ ...BASE, NET: "testnet4" }).reorgLimit, 8000);
  assert.equal(load({ ...BASE, NET: "regtest", REORG_LIMIT: "50" }).reorgLimit, 50);
});

Deno.test("required variables and choices are checked", () => {
  rejects({ DAEMON_URL: BASE.DAEMON_URL }, "DB_DIRECTORY", /DB_DIRECTORY \(or --db-dir\) is required/);
  rejects({ ...BASE, DB_DIRECTORY: "  " }, "DB_DIRECTORY", /required/);
  rejects({ DB_DIRECTORY: "/d" }, "DAEMON_URL", /DAEMON_URL \(or --daemon-url\) is required/);
  rejects({ ...BASE, COIN: "Litecoin" }, "COIN", /must be Bitcoin.*got 'Litecoin'/);
  assert.equal(load({ ...BASE, COIN: "bitcoin" }).coin, "Bitcoin");
  rejects(
    { ...BASE, NET: "testnet3" },
    "NET",
    /one of mainnet, testnet, testnet4, signet, regtest, got 'testnet3'/,
  );
  rejects({ ...BASE, LOG_LEVEL: "verbose" }, "LOG_LEVEL", /debug, info, warning, error, got 'verbose'/);
  assert.equal(load({ ...BASE, LOG_LEVEL: "DEBUG" }).logLevel, "debug");
  assert.equal(load({ ...BASE, LOG_LEVEL: "warn" }).logLevel, "warning");
  rejects({ ...BASE, DB_ENGINE: "rocksdb" }, "DB_ENGINE", /must be leveldb/);
  assert.equal(load({ ...BASE, DB_ENGINE: "LevelDB" }).net, "mainnet");
  rejects({ ...BASE, PEER_DISCOVERY: "maybe" }, "PEER_DISCOVERY", /on, off or self, got 'maybe'/);
  assert.equal(load({ ...BASE, PEER_DISCOVERY: "SELF" }).peerDiscovery, "self");
  assert.equal(load({ ...BASE, PEER_DISCOVERY: "" }).peerDiscovery, "off");
  rejects({ ...BASE, SOCKET_THREAD: "yes" }, "SOCKET_THREAD", /on, off, auto or overflow, got 'yes'/);
  // auto, the default: a thread only where there is a second CPU for it.
  assert.equal(load(BASE, [], 2).socketThread, "thread");
  assert.equal(load(BASE, [], 1).socketThread, "main");
  assert.equal(load({ ...BASE, SOCKET_THREAD: "AUTO" }, [], 8).socketThread, "thread");
  assert.equal(load({ ...BASE, SOCKET_THREAD: "ON" }, [], 1).socketThread, "thread");
  assert.equal(load({ ...BASE, SOCKET_THREAD: "off" }, [], 2).socketThread, "main");
  assert.equal(load({ ...BASE, SOCKET_THREAD: "" }, [], 2).socketThread, "main");
  // overflow: the main thread first, then the thread beside it, where there is a second CPU.
  assert.equal(load({ ...BASE, SOCKET_THREAD: "overflow" }, [], 2).socketThread, "both");
  assert.equal(load({ ...BASE, SOCKET_THREAD: "overflow" }, [], 1).socketThread, "main");
  // Sharing ports between the two places relies on Linux's SO_REUSEPORT balancing; elsewhere it is the thread.
  assert.equal(
    (loadConfig({ ...BASE, SOCKET_THREAD: "overflow" }, [], 2, "darwin") as Config).socketThread,
    "thread",
  );
  assert.equal((loadConfig(BASE, [], 1, "darwin") as Config).socketThread, "main");
});

Deno.test("obsolete ElectrumX variables are refused, unsupported ones reported", () => {
  rejects({ ...BASE, TCP_PORT: "50001" }, "TCP_PORT", /TCP_PORT is obsolete.*SERVICES/);
  const c = load({ ...BASE, ANON_LOGS: "1", LOG_FORMAT: "%(message)s" });
  assert.deepEqual([...c.ignoredVariables].sort(), ["ANON_LOGS", "LOG_FORMAT"]);
});

Deno.test("ElectrumX's DAEMON_POLL_INTERVAL_BLOCKS is an alias that DAEMON_POLL_MS overrides", () => {
  assert.equal(load({ ...BASE, DAEMON_POLL_INTERVAL_BLOCKS: "1000" }).daemonPollMs, 1000);
  assert.equal(
    load({ ...BASE, DAEMON_POLL_INTERVAL_BLOCKS: "1000", DAEMON_POLL_MS: "250" }).daemonPollMs,
    250,
  );
});

Deno.test("daemon URLs are normalized like ElectrumX's", () => {
  assert.deepEqual(parseDaemonUrls("u:p@localhost", "mainnet"), ["http://u:p@localhost:8332/"]);
  assert.deepEqual(parseDaemonUrls("localhost:1234", "mainnet"), ["http://localhost:1234/"]);
  assert.deepEqual(parseDaemonUrls("http://u:p@host", "testnet"), ["http://u:p@host:18332/"]);
  assert.deepEqual(parseDaemonUrls("http://u:p@host", "testnet4"), ["http://u:p@host:48332/"]);
  assert.deepEqual(parseDaemonUrls("http://u:p@host", "signet"), ["http://u:p@host:38332/"]);
  assert.deepEqual(parseDaemonUrls("http://host:80", "mainnet"), ["http://host:80/"]);
  assert.deepEqual(parseDaemonUrls("http://[::1]:8332///", "mainnet"), ["http://[::1]:8332/"]);
  assert.deepEqual(parseDaemonUrls("https://u:p%40x@node.example/btc", "mainnet"), [
    "https://u:p%40x@node.example:8332/btc/",
  ]);
  assert.deepEqual(parseDaemonUrls(" a:b@h1:1 , , a:b@h2:2/ ", "regtest"), [
    "http://a:b@h1:1/",
    "http://a:b@h2:2/",
  ]);
});

Deno.test("bad daemon URLs are refused without revealing the password", () => {
  const cases = [
    "http://alice:hunter2@host:99999/",
    "ftp://alice:hunter2@host/",
    "http://alice:hunter2@/",
    "http://alice:hunter2@host/?x=1",
    "http://alice:hun/ter2@host:8332/",
  ];
  for (const url of cases) {
    assert.throws(() => loadConfig({ ...BASE, DAEMON_URL: url }, []), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.variable, "DAEMON_URL");
      assert.ok(!e.message.includes("hunter2") && !e.message.includes("ter2"), e.message);
      assert.match(e.message, /alice:\*\*\*@/);
      return true;
    }, url);
  }
  rejects({ ...BASE, DAEMON_URL: "  " }, "DAEMON_URL", /required/);
  rejects({ ...BASE, DAEMON_URL: "," }, "DAEMON_URL", /has no URL/);
});

Deno.test("a URL without credentials needs DAEMON_COOKIE", () => {
  rejects(
    { ...BASE, DAEMON_URL: "127.0.0.1" },
    "DAEMON_URL",
    /no user:password and DAEMON_COOKIE is not set/,
  );
  const c = load({ ...BASE, DAEMON_URL: "127.0.0.1", DAEMON_COOKIE: "/home/b/.bitcoin/.cookie" });
  assert.equal(c.daemonCookie, "/home/b/.bitcoin/.cookie");
  assert.deepEqual(c.daemonUrls, ["http://127.0.0.1:8332/"]);
});

Deno.test("redactUrl hides passwords and nothing else", () => {
  assert.equal(redactUrl("http://user:pass@host:8332/"), "http://user:***@host:8332/");
  assert.equal(redactUrl("http://user:p@ss@host:8332/"), "http://user:***@host:8332/");
  assert.equal(redactUrl("user:pass@host"), "user:***@host");
  assert.equal(redactUrl("http://host:8332/"), "http://host:8332/");
  assert.equal(redactUrl("http://user@host:8332/"), "http://user@host:8332/");
  assert.equal(redactUrl("not a url"), "not a url");
});

Deno.test("services parse ElectrumX's forms", () => {
  assert.deepEqual(
    parseServices("tcp://:50001,SSL://1.2.3.4:50002,rpC://,ws://[::1]:8000,wss://h.tld:50004", "S", true),
    [
      { protocol: "tcp", host: "::", port: 50001 },
      { protocol: "ssl", host: "1.2.3.4", port: 50002 },
      { protocol: "rpc", host: "127.0.0.1", port: 8000 },
      { protocol: "ws", host: "::1", port: 8000 },
      { protocol: "wss", host: "h.tld", port: 50004 },
    ],
  );
  assert.deepEqual(load({ ...BASE, SERVICES: "" }).services, []);
  const bad: [string, RegExp][] = [
    ["tcp://host", /port is required/],
    ["http://host:1", /unknown protocol 'http'/],
    ["host:50001", /expected protocol:\/\/host:port/],
    ["tcp://host:0", /out of range/],
    ["tcp://host:65536", /out of range/],
    ["tcp://host:abc", /not a number/],
    ["tcp://::1:5", /brackets/],
    ["tcp://[::1:5", /unclosed/],
    ["tcp://abc.onion:50001", /onion/],
    ["tcp://:50001,ssl://:50001", /\[::\]:50001 more than once/],
    ["tcp://ho st:1", /not a host name/],
  ];
  for (const [value, re] of bad) rejects({ ...BASE, SERVICES: value }, "SERVICES", re);
});

Deno.test("ssl and wss services need a certificate and key", () => {
  rejects({ ...BASE, SERVICES: "ssl://:50002" }, "SSL_CERTFILE", /required because SERVICES has ssl/);
  rejects({ ...BASE, SERVICES: "wss://:50004", SSL_CERTFILE: "c.pem" }, "SSL_KEYFILE", /required.*wss/);
  const c = load({ ...BASE, SERVICES: "ssl://:50002", SSL_CERTFILE: "c.pem", SSL_KEYFILE: "k.pem" });
  assert.equal(c.sslCertfile, "c.pem");
  assert.equal(c.sslKeyfile, "k.pem");
});

Deno.test("report services must be reachable by others", () => {
  const c = load({ ...BASE, REPORT_SERVICES: "tcp://example.com:50001,ssl://8.8.8.8:50002" });
  assert.deepEqual(c.reportServices, [
    { protocol: "tcp", host: "example.com", port: 50001 },
    { protocol: "ssl", host: "8.8.8.8", port: 50002 },
  ]);
  rejects(
    { ...BASE, REPORT_SERVICES: "rpc://example.com:8000" },
    "REPORT_SERVICES",
    /rpc is never advertised/,
  );
  rejects({ ...BASE, REPORT_SERVICES: "tcp://localhost:1" }, "REPORT_SERVICES", /localhost/);
  rejects({ ...BASE, REPORT_SERVICES: "tcp://127.0.0.1:1" }, "REPORT_SERVICES", /loopback/);
  rejects({ ...BASE, REPORT_SERVICES: "tcp://0.0.0.0:1" }, "REPORT_SERVICES", /unspecified/);
  rejects({ ...BASE, REPORT_SERVICES: "tcp://:50001" }, "REPORT_SERVICES", /host is required/);
  rejects({ ...BASE, REPORT_SERVICES: "tcp://192.168.1.5:1" }, "REPORT_SERVICES", /private/);
  assert.equal(
    load({ ...BASE, REPORT_SERVICES: "tcp://192.168.1.5:1", PEER_ANNOUNCE: "" }).reportServices.length,
    1,
  );
});

Deno.test("REPORT_SERVICES on regtest may be loopback or private (a local network), never rpc", () => {
  const regtest = { ...BASE, NET: "regtest" };
  assert.deepEqual(
    load({ ...regtest, REPORT_SERVICES: "tcp://127.0.0.1:50001,ssl://10.0.0.2:50002" }).reportServices,
    [
      { protocol: "tcp", host: "127.0.0.1", port: 50001 },
      { protocol: "ssl", host: "10.0.0.2", port: 50002 },
    ],
  );
  rejects(
    { ...regtest, REPORT_SERVICES: "rpc://127.0.0.1:8000" },
    "REPORT_SERVICES",
    /rpc is never advertised/,
  );
});

Deno.test("PEERS: host with t/s tokens, defaults per network, public hosts only off regtest", () => {
  assert.deepEqual(load(BASE).peers, []);
  assert.deepEqual(
    load({ ...BASE, PEERS: " A.Example.org s50012 t, b.example.net,[2001:db8::1] t50001 ,c.example.com S" })
      .peers,
    [
      { host: "a.example.org", tcpPort: 50001, sslPort: 50012 },
      { host: "b.example.net", tcpPort: 50001, sslPort: 50002 },
      { host: "2001:db8::1", tcpPort: 50001, sslPort: null },
      { host: "c.example.com", tcpPort: null, sslPort: 50002 },
    ],
  );
  assert.deepEqual(load({ ...BASE, NET: "testnet", PEERS: "t.example.org" }).peers, [
    { host: "t.example.org", tcpPort: 51001, sslPort: 51002 },
  ]);
  assert.deepEqual(load({ ...BASE, NET: "regtest", PEERS: "127.0.0.1 t50001" }).peers, [
    { host: "127.0.0.1", tcpPort: 50001, sslPort: null },
  ]);
  assert.deepEqual(load({ ...BASE, PEERS: "x.example.org t1" }, ["--peers", "y.example.org s2"]).peers, [
    { host: "y.example.org", tcpPort: null, sslPort: 2 },
  ]);
  rejects({ ...BASE, PEERS: "127.0.0.1 t50001" }, "PEERS", /not a public address .*NET=regtest/);
  rejects({ ...BASE, PEERS: "localhost" }, "PEERS", /not a public address/);
  rejects({ ...BASE, PEERS: "192.168.0.9 s" }, "PEERS", /not a public address/);
  rejects({ ...BASE, DAEMON_TIMEOUT: "3000000" }, "DAEMON_TIMEOUT", /from 0.001 to 2147483, got '3000000'/);
  rejects({ ...BASE, DAEMON_TIMEOUT: "0.0001" }, "DAEMON_TIMEOUT", /from 0.001/);
  assert.equal(load({ ...BASE, DAEMON_TIMEOUT: "2147483" }).daemonTimeoutMs, 2_147_483_000);
  rejects({ ...BASE, SESSION_TIMEOUT: "2147484" }, "SESSION_TIMEOUT", /at most 2147483 \(a timer's limit\)/);
  rejects({ ...BASE, DAEMON_POLL_MS: "2147483648" }, "DAEMON_POLL_MS", /at most 2147483647/);
  rejects(
    { ...BASE, PEERS: "1.2.3.4:50002" },
    "PEERS",
    /not a host name or address \(ports are written after it/,
  );
  rejects({ ...BASE, PEERS: "[2001:db8::zz]" }, "PEERS", /not a host name or address/);
  rejects({ ...BASE, PEERS: "a.example.org x50001" }, "PEERS", /'x50001'; expected t, tPORT, s or sPORT/);
  rejects({ ...BASE, PEERS: "a.example.org t70000" }, "PEERS", /out of range/);
  rejects({ ...BASE, PEERS: "bad_host! t" }, "PEERS", /not a host name or address/);
  rejects({ ...BASE, PEERS: "abc.onion s" }, "PEERS", /no Tor proxy/);
});

Deno.test("METRICS, BANNER_FILE and DONATION_ADDRESS", () => {
  assert.deepEqual(load({ ...BASE, METRICS: "http://127.0.0.1:9100" }).metrics, {
    host: "127.0.0.1",
    port: 9100,
  });
  assert.deepEqual(load({ ...BASE, METRICS: "[::1]:9100" }).metrics, { host: "::1", port: 9100 });
  rejects({ ...BASE, METRICS: "http://127.0.0.1" }, "METRICS", /empty or http:\/\/host:port/);
  rejects({ ...BASE, METRICS: "https://h:1" }, "METRICS", /empty or http/);
  assert.equal(load({ ...BASE, BANNER_FILE: "banner.txt" }).bannerFile, "/var/coulomb/banner.txt");
  assert.equal(load({ ...BASE, BANNER_FILE: "/etc/banner" }).bannerFile, "/etc/banner");
  assert.equal(load({ ...BASE, DONATION_ADDRESS: " bc1qxyz " }).donationAddress, "bc1qxyz");
});

Deno.test("--help lists every flag with its variable and default; --version prints the version", () => {
  const h = loadConfig({}, ["--help"]);
  assert.ok("help" in h);
  for (
    const v of [
      "DB_DIRECTORY",
      "DAEMON_URL",
      "DAEMON_COOKIE",
      "CACHE_MB",
      "SERVICES",
      "MAX_SEND",
      "ALLOW_ROOT",
    ]
  ) {
    assert.ok(h.help.includes(v), v);
  }
  assert.match(h.help, /--db-directory, --db-dir \(DB_DIRECTORY\)/);
  assert.match(h.help, /--cache-mb \(CACHE_MB\) +.*\[default: 1200\]/);
  assert.match(h.help, /--daemon-poll-ms \(DAEMON_POLL_MS, DAEMON_POLL_INTERVAL_BLOCKS\)/);
  assert.deepEqual(loadConfig({}, ["-h"]), h);
  assert.deepEqual(loadConfig({}, ["--version"]), { version: serverVersionString() });
  assert.deepEqual(loadConfig({}, ["-V"]), { version: "Coulomb 0.1.0" });
});

Deno.test("unknown flags and stray arguments are refused", () => {
  rejects(BASE, "argv", /Unknown option '--bogus'.*--help/, ["--bogus"]);
  rejects(BASE, "argv", /--help/, ["positional"]);
  rejects(BASE, "argv", /argument missing/, ["--cache-mb"]);
});

Deno.test("ENV_VARIABLES names every variable loadConfig looks at, obsolete and ignored ones included", () => {
  for (
    const name of [
      "DB_DIRECTORY",
      "DAEMON_URL",
      "DAEMON_POLL_INTERVAL_BLOCKS",
      "ALLOW_ROOT",
      "TCP_PORT",
      "ANON_LOGS",
    ]
  ) {
    assert.ok(ENV_VARIABLES.includes(name), name);
  }
  // A value under a name outside the list would be invisible with a narrow --allow-env.
  const seen = new Set<string>();
  const spy = new Proxy({ ...BASE }, {
    get(target, key) {
      if (typeof key === "string") seen.add(key);
      return Reflect.get(target, key);
    },
  });
  loadConfig(spy, []);
  for (const name of seen) assert.ok(ENV_VARIABLES.includes(name), `${name} is read but not listed`);
});
