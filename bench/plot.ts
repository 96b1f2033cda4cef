/**
 * The comparison as a picture: bench/compare.svg, drawn from the results bench/compare.ts
 * writes (bench/results/compare.json), so the plot and the tables never disagree. compare.ts
 * calls this at the end of a saved run; to redraw by hand:
 *
 *   bun bench/plot.ts [--in bench/results/compare.json] [--out bench/compare.svg]
 *
 * Grouped bars, one group per scenario, one colour per server. Every bar is the server's
 * throughput as a share of the faster raw C echo of that scenario (bench/raw/: epoll or
 * io_uring, whichever did more), so all bars share one scale and 100% is the loopback limit
 * of a WebSocket echo on that box. Hatched bars: the load generator was the bottleneck (its
 * CPU ≥ 90%), so the bar says less about the server. Bars above the axis (150%) are cut, their
 * value written inside. Plain SVG, no dependencies.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

export type ServerKind = "io_uring" | "epoll" | "other";

export interface CellResult {
  msgsPerSec: number;
  mbPerSec: number;
  p50us: number;
  p99us: number;
  /** The load generator's CPU, % of one CPU (median of the repeats). */
  clientCpuPct: number;
  /** The server's CPU, % of one CPU (median of the repeats). */
  serverCpuPct: number;
  /** clientCpuPct ≥ 90: the load generator was the bottleneck. */
  loadBound: boolean;
  /** The raw echo this cell is measured against (raw servers: none). */
  reference?: string;
  /** Throughput / the reference's (same scenario). */
  ofRaw?: number;
  /** Every repeat, in the scenario's unit. */
  runs: number[];
}

export interface CompareResults {
  date: string;
  cpuModel: string;
  cpus: number;
  kernel: string;
  bun: string;
  node?: string;
  seconds: number;
  repeats: number;
  loadGenerator: string;
  placement: string;
  noise: { loadavgBefore: string; loadavgAfter: string; quietWaitS: number; spreadMedian: number; spreadMax: number };
  servers: { name: string; kind: ServerKind; raw: boolean }[];
  scenarios: {
    label: string; conns: number; size: number; inflight: number; binary: boolean;
    unit: "msg/s" | "MB/s"; results: Record<string, CellResult>;
  }[];
  /** Server name → RSS growth per idle connection, KiB. */
  idleKibPerConn?: Record<string, number>;
  idleConns?: number;
}

const COLOURS: Record<string, string> = {
  "raw echo (epoll)": "#bdbdbd",
  "raw echo (io_uring)": "#757575",
  "hioload-ws": "#08519c",
  "hioload-ws (epoll)": "#3182bd",
  "hioload-ws (bun)": "#9ecae1",
  "Bun.serve": "#e6a100",
  "ws (Bun)": "#d62728",
  "ws (Node)": "#2ca02c",
};
const SPARE = ["#9467bd", "#8c564b", "#e377c2", "#17becf"];

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const short = (n: number) => n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : `${Math.round(n)}`;

/** The SVG of `results`. */
export function plot(results: CompareResults): string {
  const servers = results.servers.filter((s) => results.scenarios.some((sc) => sc.results[s.name]));
  const colour = (name: string, i: number) => COLOURS[name] ?? SPARE[i % SPARE.length];
  const value = (sc: CompareResults["scenarios"][number], name: string) => {
    const cell = sc.results[name];
    return cell === undefined ? undefined : sc.unit === "MB/s" ? cell.mbPerSec : cell.msgsPerSec;
  };
  const best = (sc: CompareResults["scenarios"][number]) =>
    Math.max(0, ...servers.filter((s) => s.raw).map((s) => value(sc, s.name) ?? 0));

  const bar = 13, gap = 2, groupGap = 34, left = 64, right = 20, top = 96, plotHeight = 300, bottom = 70;
  const groupWidth = servers.length * (bar + gap) - gap;
  const width = Math.max(900, left + right + results.scenarios.length * (groupWidth + groupGap));
  const height = top + plotHeight + bottom;
  const axisMax = 150;
  const y = (pct: number) => top + plotHeight - (Math.min(pct, axisMax) / axisMax) * plotHeight;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  out.push(`<defs><pattern id="hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<line x1="0" y1="0" x2="0" y2="5" stroke="#fff" stroke-width="2"/></pattern></defs>`);
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  const day = results.date.slice(0, 10);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">WebSocket echo as % of the raw C echo (the faster of epoll, io_uring) — ` +
    `${escape(results.cpuModel)}, ${results.cpus} CPUs — ${day}</text>`);
  out.push(`<text x="${left}" y="40" fill="#555">Bun ${escape(results.bun)}${results.node ? `, Node ${escape(results.node)}` : ""}, ` +
    `kernel ${escape(results.kernel)}; ${escape(results.loadGenerator)}, ${escape(results.placement)}; median of ${results.repeats} × ${results.seconds} s. ` +
    `Hatched: load generator ≥ 90% CPU (load-bound).</text>`);

  // Legend.
  let lx = left;
  servers.forEach((s, i) => {
    out.push(`<rect x="${lx}" y="54" width="12" height="12" fill="${colour(s.name, i)}"/>`);
    out.push(`<text x="${lx + 16}" y="64">${escape(s.name)}</text>`);
    lx += 16 + s.name.length * 6.2 + 14;
  });

  // Axis and grid.
  for (let pct = 0; pct <= axisMax; pct += 25) {
    const gy = y(pct);
    out.push(`<line x1="${left}" y1="${gy}" x2="${width - right}" y2="${gy}" stroke="${pct === 100 ? "#333" : "#e4e4e4"}"` +
      `${pct === 100 ? ' stroke-dasharray="4 3"' : ""}/>`);
    out.push(`<text x="${left - 6}" y="${gy + 4}" text-anchor="end" fill="#555">${pct}%</text>`);
  }

  results.scenarios.forEach((sc, g) => {
    const x0 = left + groupGap / 2 + g * (groupWidth + groupGap);
    const reference = best(sc);
    servers.forEach((s, i) => {
      const v = value(sc, s.name);
      if (v === undefined || reference <= 0) return;
      const pct = (v / reference) * 100;
      const x = x0 + i * (bar + gap);
      const by = y(pct);
      const h = top + plotHeight - by;
      out.push(`<rect x="${x}" y="${by}" width="${bar}" height="${h}" fill="${colour(s.name, i)}">` +
        `<title>${escape(`${s.name}, ${sc.label}: ${short(v)} ${sc.unit}, ${pct.toFixed(0)}% of the faster raw echo` +
          `${sc.results[s.name].loadBound ? " (load-bound)" : ""}`)}</title></rect>`);
      if (sc.results[s.name].loadBound) out.push(`<rect x="${x}" y="${by}" width="${bar}" height="${h}" fill="url(#hatch)"/>`);
      // The value above the bar; inside its top, in white, for a bar cut at the axis.
      const cut = pct > axisMax;
      out.push(`<text transform="translate(${x + bar / 2 + 3.5},${cut ? by + 4 : by - 3}) rotate(-90)" font-size="9" ` +
        `${cut ? 'text-anchor="end" fill="#fff" font-weight="bold"' : 'fill="#333"'}>${pct.toFixed(0)}${cut ? "%" : ""}</text>`);
    });
    const cx = x0 + groupWidth / 2;
    out.push(`<text x="${cx}" y="${top + plotHeight + 16}" text-anchor="middle">${escape(sc.label)}</text>`);
    out.push(`<text x="${cx}" y="${top + plotHeight + 30}" text-anchor="middle" fill="#777" font-size="10">100% = ${short(reference)} ${sc.unit}</text>`);
  });
  out.push(`<line x1="${left}" y1="${top + plotHeight}" x2="${width - right}" y2="${top + plotHeight}" stroke="#333"/>`);
  out.push(`<text x="${left}" y="${height - 12}" fill="#777" font-size="10">Generated by bench/plot.ts from ` +
    `bench/results/compare.json (bun bench/compare.ts). Hover a bar for its figure.</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      in: { type: "string", default: join(import.meta.dir, "results", "compare.json") },
      out: { type: "string", default: join(import.meta.dir, "compare.svg") },
    },
  });
  writeFileSync(values.out!, plot(JSON.parse(readFileSync(values.in!, "utf8")) as CompareResults));
  console.log(`wrote ${values.out}`);
}
