import assert from "node:assert/strict";
import { ALLOCATOR_ENV, allocatorEnv } from "../src/allocator.ts";

Deno.test("allocator: the launcher adds glibc's settings, leaving any the operator set", () => {
  assert.deepEqual(allocatorEnv({ PATH: "/bin" }), ALLOCATOR_ENV);
  assert.deepEqual(allocatorEnv({ MALLOC_ARENA_MAX: "8" }), {
    MALLOC_MMAP_THRESHOLD_: "131072",
    MALLOC_TRIM_THRESHOLD_: "131072",
  });
  // An operator can also switch one off by setting it empty: it is theirs, not replaced.
  assert.deepEqual(Object.keys(allocatorEnv({ ...ALLOCATOR_ENV, MALLOC_TRIM_THRESHOLD_: "" })), []);
});
