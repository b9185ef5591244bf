import assert from "node:assert/strict";
import {
  ALLOCATOR_ENV,
  allocatorEnv,
  describeAllocator,
  findJemalloc,
  JEMALLOC_CONF,
  JEMALLOC_PATHS,
} from "../src/allocator.ts";

const JE = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

Deno.test("allocator: the launcher adds glibc's settings, leaving any the operator set", () => {
  assert.deepEqual(allocatorEnv({ PATH: "/bin" }, null), ALLOCATOR_ENV);
  assert.deepEqual(allocatorEnv({ MALLOC_ARENA_MAX: "8" }, null), {
    MALLOC_MMAP_THRESHOLD_: "131072",
    MALLOC_TRIM_THRESHOLD_: "131072",
  });
  // An operator can also switch one off by setting it empty: it is theirs, not replaced.
  assert.deepEqual(
    Object.keys(allocatorEnv({ ...ALLOCATOR_ENV, MALLOC_TRIM_THRESHOLD_: "" }, null)),
    [],
  );
});

Deno.test("allocator: jemalloc is preloaded where installed, unless the operator set LD_PRELOAD", () => {
  assert.deepEqual(allocatorEnv({}, JE), { ...ALLOCATOR_ENV, LD_PRELOAD: JE, MALLOC_CONF: JEMALLOC_CONF });
  assert.equal(allocatorEnv({ MALLOC_CONF: "narenas:1" }, JE).MALLOC_CONF, undefined);
  // Someone else's preload gets no jemalloc settings either.
  assert.deepEqual(allocatorEnv({ LD_PRELOAD: "/opt/libmimalloc.so" }, JE), ALLOCATOR_ENV);
  // Empty is how an operator keeps glibc's malloc on a machine that has jemalloc.
  assert.equal("LD_PRELOAD" in allocatorEnv({ LD_PRELOAD: "" }, JE), false);
  assert.equal("LD_PRELOAD" in allocatorEnv({}, null), false);
});

Deno.test("allocator: findJemalloc takes the first installed path, in JEMALLOC_PATHS's order", () => {
  const seen: string[] = [];
  assert.equal(findJemalloc((p) => (seen.push(p), false)), undefined);
  assert.deepEqual(seen, JEMALLOC_PATHS);
  assert.equal(
    findJemalloc((p) => p.startsWith("/usr/lib64/") || p.startsWith("/usr/local/")),
    "/usr/lib64/libjemalloc.so.2",
  );
  // With the real file system: whatever it finds is one of the paths and a file.
  const found = findJemalloc();
  if (found !== undefined) {
    assert.ok(JEMALLOC_PATHS.includes(found));
    assert.ok(Deno.statSync(found).isFile);
  }
});

Deno.test("allocator: the tasks that start Coulomb or find jemalloc may read every path it is looked for at", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
  for (const name of ["start", "sync", "bench", "test"]) {
    const read = /--allow-read=(\S+)/.exec(tasks[name])?.[1].split(",") ?? [];
    for (const path of JEMALLOC_PATHS) assert.ok(read.includes(path), `${name}: ${path}`);
  }
});

Deno.test("allocator: describeAllocator names what a report should say", () => {
  assert.equal(describeAllocator({}), "glibc malloc");
  assert.equal(describeAllocator({ LD_PRELOAD: "" }), "glibc malloc");
  assert.equal(describeAllocator({ LD_PRELOAD: JE }), `jemalloc (${JE})`);
  assert.equal(describeAllocator({ LD_PRELOAD: "/x/libmimalloc.so.2" }), "LD_PRELOAD=/x/libmimalloc.so.2");
});
