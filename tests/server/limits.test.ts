import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import type { Config } from "../../src/config.ts";
import {
  concurrencyTarget,
  CostGroups,
  CostMeter,
  costSettings,
  GROUP_SUM_TTL_MS,
  ipGroupKey,
  RETAINED_DECAY_PER_SEC,
  sessionDecay,
  throttleFraction,
} from "../../src/server/limits.ts";

Deno.test("CostMeter decays linearly and never goes below zero", () => {
  const m = new CostMeter(2, 1000);
  assert.equal(m.add(10, 1000), 10);
  assert.equal(m.value(2000), 8); // 1 s at 2/s
  assert.equal(m.value(3500), 5);
  assert.equal(m.value(100_000), 0);
  assert.equal(m.add(-5, 100_000), 0);
  assert.equal(m.add(3, 100_000), 3);
  // Time going backwards (a clock step) does not add cost.
  assert.equal(m.value(50_000), 3);
});

Deno.test("a session's decay is hard/(10000 + 5 per subscription); a new rate applies from then on", () => {
  assert.equal(sessionDecay(10_000, 0), 1);
  assert.equal(sessionDecay(10_000, 2_000), 0.5);
  assert.equal(sessionDecay(10_000, 50_000), 10_000 / 260_000);
  const m = new CostMeter(1, 0);
  m.add(100, 0);
  assert.equal(m.value(10_000), 90);
  m.setDecay(0.5, 20_000); // the 10 s before the change still decayed at 1/s
  assert.equal(m.decayPerSec, 0.5);
  assert.equal(m.value(20_000), 80);
  assert.equal(m.value(40_000), 70);
});

Deno.test("throttle fraction and concurrency follow aiorpcX between soft and hard limits", () => {
  assert.equal(throttleFraction(0, 1000, 10000), 0);
  assert.equal(throttleFraction(1000, 1000, 10000), 0);
  assert.equal(throttleFraction(5500, 1000, 10000), 0.5);
  assert.equal(throttleFraction(10000, 1000, 10000), 1);
  assert.equal(throttleFraction(19000, 1000, 10000), 2);
  // A hard limit not above the soft one switches throttling off.
  assert.equal(throttleFraction(1e9, 0, 0), 0);

  assert.equal(concurrencyTarget(0, 10), 10);
  assert.equal(concurrencyTarget(0.5, 10), 5);
  assert.equal(concurrencyTarget(0.55, 10), 5); // ceil(4.5)
  assert.equal(concurrencyTarget(0.99, 10), 1);
  assert.equal(concurrencyTarget(1, 10), 0);
  assert.equal(concurrencyTarget(3, 10), 0);
});

Deno.test("costSettings takes ElectrumX's knobs from the config; decay is hard/10000 per second", () => {
  const config = loadConfig({
    DB_DIRECTORY: "/tmp/x",
    DAEMON_URL: "http://u:p@127.0.0.1:8332/",
    COST_SOFT_LIMIT: "200",
    COST_HARD_LIMIT: "5000",
    REQUEST_SLEEP: "100",
    INITIAL_CONCURRENT: "4",
    BANDWIDTH_UNIT_COST: "1000",
  }, []) as Config;
  assert.deepEqual(costSettings(config), {
    softLimit: 200,
    hardLimit: 5000,
    decayPerSec: 0.5,
    requestSleepMs: 100,
    initialConcurrent: 4,
    bandwidthUnitCost: 1000,
  });
});

Deno.test("ipGroupKey groups public IPv4 by /24 and IPv6 by /48, exempting private and loopback", () => {
  assert.equal(ipGroupKey("203.0.113.77"), "203.0.113.0/24");
  assert.equal(ipGroupKey("8.8.4.4"), "8.8.4.0/24");
  for (
    const ip of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.1",
      "192.168.1.1",
      "169.254.3.3",
      "0.0.0.0",
    ]
  ) {
    assert.equal(ipGroupKey(ip), undefined, ip);
  }
  assert.equal(ipGroupKey("172.32.0.1"), "172.32.0.0/24");
  assert.equal(ipGroupKey("2001:db8:1234:5678::1"), "2001:db8:1234::/48");
  assert.equal(ipGroupKey("2001:0db8:1234:ffff:0:0:0:9"), "2001:db8:1234::/48");
  assert.equal(ipGroupKey("2a01:4f8::1"), "2a01:4f8:0::/48");
  for (const ip of ["::1", "::", "fe80::1%eth0", "fd12:3456::1", "fc00::5"]) {
    assert.equal(ipGroupKey(ip), undefined, ip);
  }
  // IPv4-mapped addresses are their IPv4 peer.
  assert.equal(ipGroupKey("::ffff:203.0.113.9"), "203.0.113.0/24");
  assert.equal(ipGroupKey("::ffff:127.0.0.1"), undefined);
  for (const bad of ["", "host.example", "1.2.3", "256.1.1.1", "1:2:3:4:5:6:7:8:9", "1::2::3", "gggg::1"]) {
    assert.equal(ipGroupKey(bad), undefined, bad);
  }
});

Deno.test("a group's cost is its members' plus what departed members left behind, which decays", () => {
  const groups = new CostGroups();
  const a = new CostMeter(1, 0);
  const b = new CostMeter(1, 0);
  const c = new CostMeter(1, 0);
  assert.equal(groups.join("127.0.0.1", c, 0), undefined, "loopback is not grouped");
  const ga = groups.join("203.0.113.1", a, 0)!;
  const gb = groups.join("203.0.113.200", b, 0)!;
  assert.equal(ga, gb);
  assert.equal(ga.key, "203.0.113.0/24");
  a.add(300, 0);
  b.add(100, 0);
  ga.invalidate();
  assert.equal(ga.total(0), 400);
  // A charge reported through charged() counts at once; one that is not shows up when the sum is retaken
  // after GROUP_SUM_TTL_MS (both members having decayed 1/s meanwhile).
  b.add(1000, 0);
  ga.charged(1000);
  assert.equal(ga.total(GROUP_SUM_TTL_MS - 1), 1400);
  a.add(50, GROUP_SUM_TTL_MS - 1);
  assert.equal(ga.total(GROUP_SUM_TTL_MS - 1), 1400);
  assert.equal(ga.total(GROUP_SUM_TTL_MS), 1450 - 2 * (GROUP_SUM_TTL_MS / 1000));

  groups.leave(ga, a, 10_000); // a owes 340 when it leaves
  assert.equal(ga.retained.value(10_000), 340);
  assert.equal(ga.total(10_000), 340 + 1090);
  const later = 10_000 + 50_000; // 50 s later
  assert.equal(ga.retained.value(later), 340 - 50 * RETAINED_DECAY_PER_SEC);

  groups.leave(gb, b, later);
  groups.sweep(later);
  assert.equal(groups.size, 1, "kept while it still retains cost");
  groups.sweep(later + 10_000_000);
  assert.equal(groups.size, 0);
  assert.equal(groups.get("203.0.113.0/24"), undefined);
});
