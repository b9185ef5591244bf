// glibc's allocator settings Coulomb should be started with. They are read by the C library when the process
// starts, so the process cannot set them for itself: the launcher (`deno task start`/`sync`), the benchmark
// and the service samples put them in its environment.
//
// Why: freed large buffers (raw blocks, flush batches) raise glibc's dynamic mmap threshold to 32 MB, after
// which buffers of that size come from heaps that are never returned to the system, and every thread that
// allocates gets its own arena. Measured with `deno task bench sync` (2M txs, CACHE_MB=1000): peak RSS
// 2.07–2.28 GB without these settings, 1.23–1.36 GB with them (and REST bodies read into one buffer), for
// the same throughput within noise.

/** Environment variables for glibc's malloc, applied unless the operator already set them. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072",
};

/** ALLOCATOR_ENV without the variables `current` already defines (an operator's choice wins). */
export function allocatorEnv(current: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(ALLOCATOR_ENV)) if (!(name in current)) out[name] = value;
  return out;
}
