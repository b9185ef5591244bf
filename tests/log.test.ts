import assert from "node:assert/strict";
import { reset } from "@logtape/logtape";
import { formatCount, formatDuration, formatTimestamp, getLog, setupLogging } from "../src/log.ts";

const LINE = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) ([A-Z]+) (\S+) (.*)$/;

async function capture(level: "debug" | "info" | "warning" | "error"): Promise<string[]> {
  const lines: string[] = [];
  await setupLogging(level, { sink: (l) => lines.push(l) });
  return lines;
}

Deno.test("lines carry timestamp, level, category and the message verbatim", async () => {
  const lines = await capture("info");
  try {
    const before = Date.now();
    getLog("daemon").info("connected to daemon http://host:8332/: version 28.1.0, chain regtest");
    getLog("sync.flush").warn('reply {"result":1} had {braces} and {{doubles}}');
    getLog("db").error("boom");
    assert.equal(lines.length, 3);
    const m = LINE.exec(lines[0]);
    assert.ok(m, lines[0]);
    assert.equal(m[2], "INFO");
    assert.equal(m[3], "daemon");
    assert.equal(m[4], "connected to daemon http://host:8332/: version 28.1.0, chain regtest");
    const ts = Date.parse(m[1].replace(" ", "T") + "Z");
    assert.ok(ts >= before - 1000 && ts <= Date.now() + 1000, "timestamp is now, in UTC");
    assert.match(lines[1], / WARNING sync\.flush reply \{"result":1\} had \{braces\} and \{\{doubles\}\}$/);
    assert.match(lines[2], / ERROR db boom$/);
  } finally {
    await reset();
  }
});

Deno.test("the level filters lower events and enabled() reports it", async () => {
  const lines = await capture("warning");
  try {
    const log = getLog("x");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    assert.deepEqual(lines.map((l) => LINE.exec(l)?.[2]), ["WARNING", "ERROR"]);
    assert.equal(log.enabled("info"), false);
    assert.equal(log.enabled("warning"), true);
    assert.equal(log.enabled("error"), true);
  } finally {
    await reset();
  }
  const debugLines = await capture("debug");
  try {
    getLog("x").debug("d");
    assert.equal(debugLines.length, 1);
    assert.match(debugLines[0], / DEBUG x d$/);
    assert.equal(getLog("x").enabled("debug"), true);
  } finally {
    await reset();
  }
});

Deno.test("an embedded newline cannot forge a second log line", async () => {
  const lines = await capture("info");
  try {
    getLog("server").info("client said hi\n2024-01-01 00:00:00.000 ERROR fake line");
    assert.equal(lines.length, 1);
    assert.ok(!lines[0].includes("\n"));
    assert.match(lines[0], /hi\\n2024/);
  } finally {
    await reset();
  }
});

Deno.test("loggers are silent before setup and logtape's banner never reaches the sink", async () => {
  getLog("early").info("dropped");
  const lines = await capture("debug");
  try {
    assert.deepEqual(lines, []);
  } finally {
    await reset();
  }
});

Deno.test("formatTimestamp is UTC with milliseconds", () => {
  assert.equal(formatTimestamp(Date.UTC(2024, 0, 2, 3, 4, 5, 6)), "2024-01-02 03:04:05.006");
});

Deno.test("formatDuration matches ElectrumX's d/h/m/s layout", () => {
  assert.equal(formatDuration(0), "0d 00h 00m 00s");
  assert.equal(formatDuration(59.9), "0d 00h 00m 59s");
  assert.equal(formatDuration(3661), "0d 01h 01m 01s");
  assert.equal(formatDuration(86400 * 12 + 23 * 3600 + 59 * 60 + 7), "12d 23h 59m 07s");
  assert.equal(formatDuration(-5), "0d 00h 00m 00s");
  assert.equal(formatDuration(Infinity), "0d 00h 00m 00s");
});

Deno.test("formatCount groups thousands", () => {
  assert.equal(formatCount(0), "0");
  assert.equal(formatCount(999), "999");
  assert.equal(formatCount(1000), "1,000");
  assert.equal(formatCount(1234567), "1,234,567");
  assert.equal(formatCount(-1234567), "-1,234,567");
  assert.equal(formatCount(100000), "100,000");
  assert.equal(formatCount(12.9), "12");
});
