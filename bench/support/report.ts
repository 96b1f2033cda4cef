/** What every hardening bench prints: the machine it ran on, medians, a Markdown table. */
import { readFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { twoCpus } from "./wsload.ts";

/** The CPU model from /proc/cpuinfo ("model name"), so figures say where they came from. */
export function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown";
  } catch {
    return cpus()[0]?.model ?? "unknown";
  }
}

export interface Machine {
  cpu: string;
  cpus: number;
  pinning: string;
  bun: string;
  kernel: string;
}

export function machine(): Machine {
  return {
    cpu: cpuModel(),
    cpus: cpus().length,
    pinning: twoCpus ? "server on CPU 0, load on CPU 1" : "one CPU, unpinned",
    bun: Bun.version,
    kernel: release(),
  };
}

export function describeMachine(m: Machine): string {
  return `${m.cpus} × ${m.cpu}, ${m.pinning}; Bun ${m.bun}, Linux ${m.kernel}`;
}

/** Median of numbers (NaN for none); the upper middle for an even count, as compare.ts. */
export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)];
}

/** The value seen most often (ties: the first seen), for descriptions such as close codes. */
export function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best = values[0] ?? "";
  for (const [value, count] of counts) if (count > (counts.get(best) ?? 0)) best = value;
  return counts.size > 1 ? `${best} (${counts.size - 1} other outcome(s) in other runs)` : best;
}

export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "—";

export const mib = (kb: number, digits = 1): string => fmt(kb / 1024, digits);

/** A Markdown table: one row per metric, one column per server. */
export function printTable(servers: string[], rows: [string, ...string[]][]): void {
  console.log(`| | ${servers.join(" | ")} |`);
  console.log(`|---|${servers.map(() => "---:").join("|")}|`);
  for (const [label, ...cells] of rows) console.log(`| ${label} | ${cells.join(" | ")} |`);
}

/** Runs `once` for every server in turn, `repeats` times (alternated), collecting results. */
export async function alternate<S, R>(servers: S[], repeats: number,
  once: (server: S, repeat: number) => Promise<R>): Promise<Map<S, R[]>> {
  const results = new Map<S, R[]>(servers.map((s) => [s, []]));
  for (let repeat = 0; repeat < repeats; repeat++) {
    for (const server of servers) results.get(server)!.push(await once(server, repeat));
  }
  return results;
}
