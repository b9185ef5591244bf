import assert from "node:assert/strict";
import { escapeLabel, formatValue, Registry } from "../../src/metrics/registry.ts";
import { ProgressHistory } from "../../src/metrics/history.ts";

Deno.test("counters, gauges and collectors render in the Prometheus text format", () => {
  const r = new Registry();
  const c = r.counter("app_requests_total", "Requests handled", ["method"]);
  c.inc(1, "a");
  c.child("a").inc(2);
  c.inc(5, 'we"ird\\name\n');
  c.inc(-3, "a"); // ignored: counters never go down
  const g = r.gauge("app_height", "Height\nof the tip");
  g.set(-1);
  let live = 7;
  r.gauge("app_live", "Read at scrape time", [], () => live);
  r.gauge("app_absent", "Collector with nothing to say", [], () => undefined);
  r.counter("app_blocks_total", "Collected counter", ["kind"], () => [{ labels: ["x"], value: 3 }]);
  const text = r.render();
  assert.equal(
    text,
    [
      "# HELP app_requests_total Requests handled",
      "# TYPE app_requests_total counter",
      'app_requests_total{method="a"} 3',
      'app_requests_total{method="we\\"ird\\\\name\\n"} 5',
      "# HELP app_height Height\\nof the tip",
      "# TYPE app_height gauge",
      "app_height -1",
      "# HELP app_live Read at scrape time",
      "# TYPE app_live gauge",
      "app_live 7",
      "# HELP app_blocks_total Collected counter",
      "# TYPE app_blocks_total counter",
      'app_blocks_total{kind="x"} 3',
      "",
    ].join("\n"),
  );
  live = 8;
  assert.match(r.render(), /^app_live 8$/m);
});

Deno.test("histograms count cumulatively per bucket with sum and count", () => {
  const r = new Registry();
  const h = r.histogram("app_seconds", "Latency", [0.5, 0.1, 1], ["m"]);
  for (const v of [0.05, 0.1, 0.2, 0.7, 3, NaN]) h.observe(v, "x");
  const text = r.render();
  assert.match(text, /^app_seconds_bucket\{m="x",le="0.1"\} 2$/m);
  assert.match(text, /^app_seconds_bucket\{m="x",le="0.5"\} 3$/m);
  assert.match(text, /^app_seconds_bucket\{m="x",le="1"\} 4$/m);
  assert.match(text, /^app_seconds_bucket\{m="x",le="\+Inf"\} 5$/m);
  assert.match(text, /^app_seconds_count\{m="x"\} 5$/m);
  assert.match(text, /^app_seconds_sum\{m="x"\} 4.05$/m);
});

Deno.test("bad names, duplicate metrics and wrong label counts are refused", () => {
  const r = new Registry();
  r.counter("ok_total", "x");
  assert.throws(() => r.counter("ok_total", "again"), /registered twice/);
  assert.throws(() => r.gauge("bad-name", "x"), /invalid metric name/);
  assert.throws(() => r.gauge("g", "x", ["bad label"]), /invalid label name/);
  assert.throws(() => r.histogram("h", "x", [1], ["le"]), /reserved/);
  const c = r.counter("c_total", "x", ["a", "b"]);
  assert.throws(() => c.inc(1, "only-one"), /takes 2 label values/);
});

Deno.test("a collector that throws drops its samples for that scrape only", () => {
  const r = new Registry();
  let fail = true;
  r.gauge("flaky", "x", [], () => {
    if (fail) throw new Error("shutting down");
    return 1;
  });
  assert.doesNotMatch(r.render(), /flaky/);
  fail = false;
  assert.match(r.render(), /^flaky 1$/m);
});

Deno.test("value and label formatting follow the exposition format", () => {
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(1.5), "1.5");
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("the progress history thins itself when full and keeps both ends exact", () => {
  const h = new ProgressHistory(10, 8);
  for (let i = 0; i <= 100; i++) h.add({ t: i * 10, height: i, daemonHeight: 100, txs: i * 3 });
  const s = h.samples();
  assert.ok(s.length <= 8, `kept ${s.length} samples`);
  assert.equal(s[0].height, 0);
  assert.equal(s[s.length - 1].height, 100);
  assert.ok(h.intervalMs > 10);
  for (let i = 1; i < s.length; i++) assert.ok(s[i].t > s[i - 1].t);
  // 1 block and 3 txs per 10 ms, whatever the spacing of the kept samples.
  const rate = h.rate(1_000_000);
  assert.equal(rate.blocksPerSec, 100);
  assert.equal(rate.txsPerSec, 300);
});

Deno.test("samples closer than the interval replace the newest point instead of piling up", () => {
  const h = new ProgressHistory(1000, 16);
  h.add({ t: 0, height: 0, daemonHeight: 5, txs: 0 });
  h.add({ t: 100, height: 1, daemonHeight: 5, txs: 1 });
  h.add({ t: 200, height: 2, daemonHeight: 5, txs: 2 });
  assert.deepEqual(h.samples().map((s) => s.height), [0, 2]);
  h.add({ t: 1200, height: 3, daemonHeight: 5, txs: 3 });
  assert.deepEqual(h.samples().map((s) => s.height), [0, 2, 3]);
  h.add({ t: 50, height: 9, daemonHeight: 5, txs: 9 }); // from the past: ignored
  assert.deepEqual(h.samples().map((s) => s.height), [0, 2, 3]);
  assert.deepEqual(new ProgressHistory(1000).rate(60_000), { blocksPerSec: 0, txsPerSec: 0 });
});

Deno.test("the rate covers the window asked for, however thinned the chart's samples are after a day", () => {
  const h = new ProgressHistory(5_000, 512);
  let t = 0, height = 0;
  // A day of one block per minute, sampled every 5 s: the chart's spacing doubles several times.
  for (; t < 86_400_000; t += 5_000) {
    if (t % 60_000 === 0) height++;
    h.add({ t, height, daemonHeight: height, txs: height });
  }
  assert.ok(h.intervalMs > 60_000, `chart spacing ${h.intervalMs} ms`);
  // Then a minute at 100 blocks per second.
  for (const end = t + 60_000; t <= end; t += 5_000) {
    height += 500;
    h.add({ t, height, daemonHeight: height, txs: height });
  }
  assert.equal(Math.round(h.rate(60_000).blocksPerSec), 100);
});
