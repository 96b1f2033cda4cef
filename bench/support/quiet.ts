/**
 * Benches on a shared box: wait until the machine is quiet before a measured run. Busy time
 * is what processes used (user, nice, system) or lost to the hypervisor (steal), from
 * /proc/stat; interrupt time is left out (loopback traffic's softirqs land there, charged to
 * no process, and would read as a disturbance).
 */
import { readFileSync } from "node:fs";

/** CPU time the machine spent busy, ms. */
export function machineBusyMs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[7]) * 10;
}

/** Counts what waiting cost, for the bench's noise line. */
export class QuietWaiter {
  /** ms spent waiting beyond the one 300 ms look each wait takes. */
  waitedMs = 0;

  /** Waits (20 s at most) until everything together uses under 0.1 of a CPU over 300 ms. */
  async wait(): Promise<void> {
    const startedAt = performance.now();
    while (performance.now() - startedAt < 20_000) {
      const busy0 = machineBusyMs();
      const t0 = performance.now();
      await Bun.sleep(300);
      if ((machineBusyMs() - busy0) / (performance.now() - t0) < 0.1) break;
    }
    this.waitedMs += performance.now() - startedAt - 300;
  }
}
