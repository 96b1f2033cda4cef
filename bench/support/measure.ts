/** Micro-benchmark timing shared by bench/mask.ts and bench/utf8.ts. */

/**
 * MB/s (10^6 bytes per second) of `run` over `size` bytes within `budgetNs`, after a warm-up
 * long enough for JSC to reach its optimizing tier (FTL) for the call site.
 */
export function measure(size: number, budgetNs: number, run: () => unknown): number {
  const warmUntil = Bun.nanoseconds() + budgetNs / 3;
  while (Bun.nanoseconds() < warmUntil) for (let i = 0; i < 64; i++) run();
  let iterations = 0;
  const started = Bun.nanoseconds();
  let elapsed = 0;
  do {
    for (let i = 0; i < 64; i++) run();
    iterations += 64;
    elapsed = Bun.nanoseconds() - started;
  } while (elapsed < budgetNs);
  return (size * iterations * 1e3) / elapsed;
}
