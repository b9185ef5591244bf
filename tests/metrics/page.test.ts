// The status page in a real browser: headless Chromium loads it from a running Coulomb, runs its script, and
// the DOM it dumps must show the node's numbers and a drawn chart. Chromium is installed from Debian when
// missing; without it (and without apt-get) the test fails, it does not skip.
import assert from "node:assert/strict";
import { formatCount } from "../../src/log.ts";
import { type Stack, startStack } from "../admin/stack.ts";

const CANDIDATES = ["chromium", "chromium-browser", "google-chrome"];

/** True when `cmd` can be started (found on PATH); asks the OS, not the file system, so no read permission. */
async function runnable(cmd: string, probeArgs: string[]): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: probeArgs, stdout: "null", stderr: "null", stdin: "null" }).output();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped", stdin: "null" })
    .output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout), err: new TextDecoder().decode(r.stderr) };
}

/** The Chromium command, installing Debian's package first when none is found. */
async function chromium(): Promise<string> {
  for (const name of CANDIDATES) {
    if (await runnable(name, ["--version"])) return name;
  }
  if (!(await runnable("apt-get", ["--version"]))) {
    throw new Error(
      "the status page test needs headless Chromium and neither Chromium nor apt-get is available: " +
        "install Chromium (e.g. `apt-get install -y chromium`) and run the tests again",
    );
  }
  const asRoot = Deno.uid() === 0;
  if (!asRoot && !(await runnable("sudo", ["--version"]))) {
    throw new Error("installing chromium needs root or sudo; install it and run the tests again");
  }
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args: string[]) =>
    asRoot
      ? run("apt-get", args, env)
      : run("sudo", ["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", ...args]);
  let r = await apt(["install", "-y", "chromium"]);
  if (r.code !== 0) {
    await apt(["update"]);
    r = await apt(["install", "-y", "chromium"]);
  }
  if (r.code !== 0 || !(await runnable("chromium", ["--version"]))) {
    throw new Error(`could not install chromium with apt-get (exit ${r.code}): ${r.err.slice(-2000)}`);
  }
  return "chromium";
}

/** The DOM after the page's script ran, as Chromium dumps it. */
async function dumpDom(browser: string, url: string): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "coulomb-chromium-" });
  const r = await run(browser, [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    `--user-data-dir=${profile}`,
    "--virtual-time-budget=3000",
    "--dump-dom",
    url,
  ]).finally(() => Deno.remove(profile, { recursive: true }));
  assert.equal(r.code, 0, `chromium failed: ${r.err.slice(-2000)}`);
  return r.out;
}

/** The text and data-value of the element with this id. */
function field(dom: string, id: string): { text: string; value: string | undefined } {
  const m = new RegExp(`<dd id="${id}"(?: data-value="([^"]*)")?>([^<]*)</dd>`).exec(dom);
  assert.ok(m, `no #${id} in the dumped DOM`);
  return { value: m[1], text: m[2].replaceAll("&nbsp;", " ") };
}

async function check(stack: Stack, browser: string): Promise<string> {
  const dom = await dumpDom(browser, `${stack.metricsUrl}/`);
  const s = stack.indexer.store.state;
  assert.deepEqual(field(dom, "db_height"), { text: formatCount(s.height), value: String(s.height) });
  assert.deepEqual(field(dom, "indexed_height"), { text: formatCount(s.height), value: String(s.height) });
  assert.deepEqual(field(dom, "daemon_height"), {
    text: formatCount(stack.sim.node.height),
    value: String(stack.sim.node.height),
  });
  assert.deepEqual(field(dom, "tx_count"), { text: formatCount(s.txCount), value: String(s.txCount) });
  assert.equal(field(dom, "percent").text, "100%");
  assert.match(dom, /<b id="sync_state">serving<\/b>/);
  assert.match(field(dom, "uptime").text, /^0d 00h \d\dm \d\ds$/);
  // The chart was drawn from the history: a polyline with one point per sample.
  const chart = /<svg id="chart"[^>]*data-points="(\d+)"[^>]*>([\s\S]*?)<\/svg>/.exec(dom);
  assert.ok(chart, "the chart element was rendered");
  const points = /<polyline points="([^"]+)"[^>]*id="chart-height"/.exec(chart[2]);
  assert.ok(points, "the height line was drawn");
  assert.equal(points[1].trim().split(" ").length, Number(chart[1]));
  assert.match(chart[2], new RegExp(`id="chart-max">${formatCount(stack.sim.node.height)}<`));
  return dom;
}

Deno.test("the status page renders the node's numbers and its sync chart in headless Chromium", async () => {
  const browser = await chromium();
  const stack = await startStack({ seed: "status-page", blocks: 400, metrics: true, sampleMs: 10 });
  try {
    let dom = await check(stack, browser);
    assert.equal(field(dom, "sessions").text, "0");
    // A new block and a mempool: the next load shows them.
    stack.sim.node.addMempoolTraffic(20);
    await stack.mine(1);
    stack.sim.node.addMempoolTraffic(20);
    await stack.serving.mempool.refresh();
    stack.metrics!.sampleProgress();
    dom = await check(stack, browser);
    assert.equal(field(dom, "mempool").value, String(stack.serving.mempool.size));
    assert.match(
      field(dom, "mempool").text,
      new RegExp(`^${formatCount(stack.serving.mempool.size)} txs · `),
    );
  } finally {
    await stack.close();
  }
});
