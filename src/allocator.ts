// The memory allocator Coulomb should be started with. Both choices below are read by the C library and the
// dynamic loader when the process starts, so the process cannot make them for itself: the launcher
// (`deno task start`/`sync`), the benchmarks and the service samples put them in its environment.
//
// glibc's settings. Why: freed large buffers (raw blocks, flush batches) raise glibc's dynamic mmap threshold
// to 32 MB, after which buffers of that size come from heaps that are never returned to the system, and every
// thread that allocates gets its own arena. Measured with `deno task bench sync` (2M txs, CACHE_MB=1000): peak
// RSS 2.07–2.28 GB without these settings, 1.23–1.36 GB with them (and REST bodies read into one buffer), for
// the same throughput within noise.
//
// jemalloc, where it is installed, replaces glibc's malloc altogether (LD_PRELOAD). Why: serving many busy
// sessions, the Deno runtime allocates and frees small blocks for every socket read, write and buffer, and
// glibc spent 13% of the main thread in _int_malloc, unlink_chunk and malloc_consolidate, the last in bursts
// that stretched one event-loop turn in three by ~15 ms. `deno task bench query` with the socket thread,
// jemalloc against glibc: 16 × 16 117–143k against 87–116k req/s, 1,000 × 1 p99 39.9–52.0 against
// 49.1–59.9 ms (README, "Serving wallets"). The glibc settings stay in the environment: they are harmless
// under jemalloc and still apply if the preload is refused (a library of another architecture, for instance).

/** Environment variables for glibc's malloc, applied unless the operator already set them. */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072",
};

/**
 * jemalloc's settings, given with the preload: purge freed pages after one second (not ten) from a background
 * thread rather than from whichever thread frees. Measured with `deno task bench sync` (2M txs,
 * CACHE_MB=1000): peak RSS 1,240–1,247 MB and 55.9–57.6k tx/s, where jemalloc's defaults peaked at
 * 1,365–1,484 MB (53.2–58.1k tx/s) and glibc's malloc with ALLOCATOR_ENV at 1,265–1,363 MB (51.7–55.4k tx/s).
 */
export const JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

/**
 * Where Linux distributions install jemalloc 5's shared library, in the order they are tried: Debian and
 * Ubuntu (amd64, arm64; package libjemalloc2), Fedora and RHEL (jemalloc), Arch and Alpine, a source build.
 * The launcher and the benchmarks need read permission for each (deno.json's tasks grant exactly these).
 */
export const JEMALLOC_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
  "/usr/lib64/libjemalloc.so.2",
  "/usr/lib/libjemalloc.so.2",
  "/usr/local/lib/libjemalloc.so.2",
];

/** Whether `path` is a regular file this process may see (no permission counts as no). */
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The first of JEMALLOC_PATHS that exists, or undefined (then glibc's malloc it is). */
export function findJemalloc(exists: (path: string) => boolean = isFile): string | undefined {
  return JEMALLOC_PATHS.find(exists);
}

/**
 * What to add to Coulomb's environment, given the environment `current` it would otherwise get: ALLOCATOR_ENV,
 * and LD_PRELOAD of `jemalloc` (null: not installed) with MALLOC_CONF=JEMALLOC_CONF, each unless `current`
 * already has it, so that an operator's choice wins. `LD_PRELOAD=` (empty) keeps glibc's malloc.
 */
export function allocatorEnv(
  current: Readonly<Record<string, string>>,
  jemalloc: string | null = findJemalloc() ?? null,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(ALLOCATOR_ENV)) if (!(name in current)) out[name] = value;
  if (jemalloc !== null && !("LD_PRELOAD" in current)) {
    out.LD_PRELOAD = jemalloc;
    if (!("MALLOC_CONF" in current)) out.MALLOC_CONF = JEMALLOC_CONF;
  }
  return out;
}

/** How the allocator in `env` reads in a report: "jemalloc (path)", "glibc malloc", or what is preloaded. */
export function describeAllocator(env: Readonly<Record<string, string>>): string {
  const preload = env.LD_PRELOAD ?? "";
  if (preload === "") return "glibc malloc";
  if (/libjemalloc\.so/.test(preload)) return `jemalloc (${preload})`;
  return `LD_PRELOAD=${preload}`;
}
