/**
 * WebSocket echo, side by side: hioload-ws (io_uring, epoll, bun backends), Bun.serve, and the `ws` package on Bun and on
 * Node, next to the raw loopback limit: a raw C WebSocket echo (bench/raw/, on epoll and on
 * io_uring: unmask and send back, nothing else). Every server runs for the whole benchmark,
 * pinned to CPU 0 (the load generator to CPU 1 when there are two); the repeats alternate
 * between servers so a disturbance on the machine hits them alike, and each waits until the
 * machine is quiet; the median of the repeats is shown, with ratios to Bun.serve and the
 * fraction of the raw echo of the same kind (io_uring rows of raw io_uring, epoll rows of
 * raw epoll, the others of the faster raw echo). The load generator's CPU is shown too: at
 * ≥ 90% ("load-bound") the row measures it as much as the server.
 *
 *   bun bench/compare.ts [--seconds 3] [--repeats 3] [--idle 10000] [--only "16 B,4 KiB"]
 *     [--servers "hioload-ws,Bun.serve"] [--no-save]
 *
 * A run of every scenario and server saves bench/results/compare.json (date, CPU, versions,
 * every figure) and redraws bench/compare.svg from it (bench/plot.ts); --only, --servers or
 * --no-save runs save nothing.
 *
 * Rows without "binary" send text (the load generator's default, and what browsers' JSON
 * traffic is): the server hands each message to JS as a string and encodes the reply.
 *
 * Load generator: the C wsload (../shared/tools/wsload.c, or $WSLOAD_SRC, built with gcc)
 * when available, else bench/load.ts (this project's io_uring client side).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type CellResult, type CompareResults, plot, type ServerKind } from "./plot.ts";
import { buildRawEchoes } from "./support/raw-echo.ts";
import { QuietWaiter } from "./support/quiet.ts";
import { buildWsload, pinned, repositoryRoot, twoCpus } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
    idle: { type: "string", default: "10000" },
    only: { type: "string" },
    servers: { type: "string" },
    "no-save": { type: "boolean", default: false },
  },
});
const save = !values["no-save"] && !values.only && !values.servers;
const root = repositoryRoot;
const pin = pinned;

const wsload = buildWsload();
const node = Bun.which("node");
const nodeVersion = node ? Bun.spawnSync([node, "-v"]).stdout.toString().trim() : undefined;
const cpuModel = cpus()[0]?.model?.trim() || "unknown CPU";
console.error(`CPU: ${cpuModel} × ${cpus().length}, kernel ${release()}, Bun ${Bun.version}`);

interface Scenario { label: string; conns: number; size: number; inflight: number; binary: boolean }
const scenarios: Scenario[] = [
  { label: "1 conn × 16 B", conns: 1, size: 16, inflight: 1, binary: false },
  { label: "100 × 16 B × 16", conns: 100, size: 16, inflight: 16, binary: false },
  { label: "100 × 4 KiB × 4, binary", conns: 100, size: 4096, inflight: 4, binary: true },
  { label: "100 × 4 KiB × 4, text", conns: 100, size: 4096, inflight: 4, binary: false },
  { label: "10 × 64 KiB × 4, binary", conns: 10, size: 65536, inflight: 4, binary: true },
  { label: "10 × 64 KiB × 4, text", conns: 10, size: 65536, inflight: 4, binary: false },
  { label: "10 × 1 MiB × 1, binary", conns: 10, size: 1 << 20, inflight: 1, binary: true },
].filter((s) => !values.only || values.only.split(",").some((key) => s.label.includes(key)));

/** kind: what a row is measured against (io_uring: raw io_uring, epoll: raw epoll, other: the faster raw). */
interface ServerSpec { name: string; kind: ServerKind; raw?: boolean; cmd: (port: number) => string[] }
// The raw C echoes always run (they are the reference); a variant that cannot be built is skipped.
const rawSpecs: ServerSpec[] = [];
for (const raw of buildRawEchoes()) {
  const name = `raw echo (${raw.kind})`;
  if (raw.binary === undefined) console.error(`skipped: ${name}: ${raw.skipped}`);
  else rawSpecs.push({ name, kind: raw.kind, raw: true, cmd: (port) => [raw.binary!, String(port)] });
}
const serverSpecs: ServerSpec[] = [...rawSpecs, ...([
  { name: "hioload-ws", kind: "io_uring", cmd: (port) => [process.execPath, join(root, "examples/echo.ts"), String(port)] },
  // The same server on the other backends (what containers that forbid io_uring get, and
  // the portable path): the backend is chosen through HIOLOAD_BACKEND.
  { name: "hioload-ws (epoll)", kind: "epoll", cmd: (port) => ["/usr/bin/env", "HIOLOAD_BACKEND=epoll", process.execPath,
    join(root, "examples/echo.ts"), String(port)] },
  { name: "hioload-ws (bun)", kind: "other", cmd: (port) => ["/usr/bin/env", "HIOLOAD_BACKEND=bun", process.execPath,
    join(root, "examples/echo.ts"), String(port)] },
  { name: "Bun.serve", kind: "other", cmd: (port) => [process.execPath, join(root, "bench/servers/bun-serve-echo.ts"), String(port)] },
  { name: "ws (Bun)", kind: "other", cmd: (port) => [process.execPath, join(root, "bench/servers/ws-echo.mjs"), String(port)] },
  ...(node ? [{ name: "ws (Node)", kind: "other", cmd: (port: number) => [node, join(root, "bench/servers/ws-echo.mjs"), String(port)] }] : []),
] as ServerSpec[]).filter((s) => !values.servers || values.servers.split(",").includes(s.name))];

interface Row {
  msgsPerSec: number; mbPerSec: number; p50us: number; p99us: number; rssOpenKb: number; rssBeforeKb: number;
  clientCpuPct: number; serverCpuPct: number;
}

async function load(port: number, pid: number, s: Scenario, seconds: string, rate?: number): Promise<Row> {
  const common = ["--conns", String(s.conns), "--size", String(s.size), "--inflight", String(s.inflight),
    "--seconds", seconds, "--json", "--pid", String(pid), ...(s.binary ? ["--binary"] : [])];
  const cmd = wsload
    ? [wsload, "--port", String(port), "--warmup", rate ? "0" : "1", ...(rate ? ["--rate", String(rate)] : []), ...common]
    : [process.execPath, join(root, "bench/load.ts"), "--url", `ws://127.0.0.1:${port}/`, ...common];
  const run = Bun.spawn(pin(1, cmd), { stdout: "pipe", stderr: "pipe" });
  const [text, errors] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text()]);
  await run.exited;
  const line = text.trim().split("\n").pop() ?? "";
  let json;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`load generator failed on :${port}: ${errors || text}`);
  }
  if (!json.ok || json.errors) throw new Error(`errors from the load generator on :${port}: ${line}`);
  return {
    msgsPerSec: json.msgs_per_s, mbPerSec: json.MB_per_s, p50us: json.lat_us.p50,
    p99us: json.lat_us.p99, rssOpenKb: json.server_rss_kb?.open ?? -1,
    rssBeforeKb: json.server_rss_kb?.before ?? -1,
    clientCpuPct: json.client_cpu_pct ?? -1, serverCpuPct: json.server_cpu_pct ?? -1,
  };
}

async function start(spec: ServerSpec, port: number) {
  const server = Bun.spawn(pin(0, spec.cmd(port)), { stdout: "pipe", stderr: "inherit" });
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  if (!value) throw new Error(`${spec.name} did not start (exit ${await server.exited})`);
  reader.releaseLock();
  await Bun.sleep(200);
  return { spec, server, port };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const quiet = new QuietWaiter();
const waitQuiet = () => quiet.wait();

const loadavgBefore = loadavg();
const running: Awaited<ReturnType<typeof start>>[] = [];
let nextPort = 19_300;
for (const spec of serverSpecs) {
  try {
    running.push(await start(spec, nextPort++));
  } catch (error) {
    if (!spec.raw) throw error;
    console.error(`skipped: ${spec.name}: ${(error as Error).message}`); // e.g. io_uring forbidden here
  }
}
const results = new Map<string, Row>();
const repeats = new Map<string, Row[]>();
try {
  for (const scenario of scenarios) {
    const rows = running.map(() => [] as Row[]);
    for (let r = 0; r < Number(values.repeats); r++) {
      for (let i = 0; i < running.length; i++) {
        await waitQuiet();
        rows[i].push(await load(running[i].port, running[i].server.pid, scenario, values.seconds!));
      }
    }
    running.forEach(({ spec }, i) => {
      const of = (pick: (row: Row) => number) => median(rows[i].map(pick));
      results.set(`${spec.name}|${scenario.label}`, {
        msgsPerSec: of((x) => x.msgsPerSec), mbPerSec: of((x) => x.mbPerSec),
        p50us: of((x) => x.p50us), p99us: of((x) => x.p99us), rssOpenKb: 0, rssBeforeKb: 0,
        clientCpuPct: of((x) => x.clientCpuPct), serverCpuPct: of((x) => x.serverCpuPct),
      });
      repeats.set(`${spec.name}|${scenario.label}`, rows[i]);
    });
    console.error(`done: ${scenario.label}`);
  }
  // Idle connections: RSS growth per open connection, each server measured on its own (not
  // the raw echoes: each connection has a fixed 256 KiB buffer there, nothing to compare).
  const idle = Number(values.idle);
  if (idle > 0 && wsload) {
    for (const { spec, server, port } of running) {
      if (spec.raw) continue;
      await waitQuiet();
      const before = rssKb(server.pid);
      const row = await load(port, server.pid, { label: "idle", conns: idle, size: 16, inflight: 1, binary: false }, "2", 0.01);
      results.set(`${spec.name}|idle`, { ...row, rssBeforeKb: before });
      console.error(`done: idle ${spec.name}`);
    }
  }
} finally {
  for (const { server } of running) {
    server.kill("SIGTERM");
    await server.exited;
  }
}
const loadavgAfter = loadavg();

// ------------------------------------------------------------------ what the runs say

const LOAD_BOUND_PCT = 90;
const big = (s: Scenario) => s.size >= 65536;
const unitOf = (s: Scenario) => big(s) ? "MB/s" : "msg/s";
const valueOf = (s: Scenario, row: Row) => big(s) ? row.mbPerSec : row.msgsPerSec;
const specs = running.map((r) => r.spec);
const raws = specs.filter((s) => s.raw);

/** The raw echo a server's row is measured against: same kind, else the faster one. */
function referenceFor(spec: ServerSpec, scenario: Scenario): string | undefined {
  if (spec.raw) return undefined;
  const same = raws.find((r) => r.kind === spec.kind);
  if (same) return same.name;
  let best: string | undefined;
  let bestValue = -1;
  for (const r of raws) {
    const row = results.get(`${r.name}|${scenario.label}`);
    if (row && valueOf(scenario, row) > bestValue) [best, bestValue] = [r.name, valueOf(scenario, row)];
  }
  return best;
}

const saved: CompareResults["scenarios"] = scenarios.map((scenario) => {
  const cells: Record<string, CellResult> = {};
  for (const spec of specs) {
    const row = results.get(`${spec.name}|${scenario.label}`)!;
    const reference = referenceFor(spec, scenario);
    const refRow = reference ? results.get(`${reference}|${scenario.label}`) : undefined;
    cells[spec.name] = {
      msgsPerSec: row.msgsPerSec, mbPerSec: row.mbPerSec, p50us: row.p50us, p99us: row.p99us,
      clientCpuPct: row.clientCpuPct, serverCpuPct: row.serverCpuPct, loadBound: row.clientCpuPct >= LOAD_BOUND_PCT,
      reference, ofRaw: refRow ? valueOf(scenario, row) / valueOf(scenario, refRow) : undefined,
      runs: repeats.get(`${spec.name}|${scenario.label}`)!.map((r) => valueOf(scenario, r)),
    };
  }
  return { ...scenario, unit: unitOf(scenario), results: cells };
});

// Noise: how far apart the repeats of one cell were, (max - min) / median.
const spreads = saved.flatMap((sc) => Object.values(sc.results).filter((c) => c.runs.length > 1)
  .map((c) => (Math.max(...c.runs) - Math.min(...c.runs)) / median(c.runs)));
const spreadMedian = spreads.length ? median(spreads) : 0;
const spreadMax = spreads.length ? Math.max(...spreads) : 0;

const fmt = (n: number) => Math.round(n).toLocaleString("en");
const pct = (x: number) => `${Math.round(x * 100)}%`;
const flag = (cell: CellResult) => cell.loadBound ? " ‡" : "";
const placement = twoCpus ? "server on CPU 0, load generator on CPU 1" : "one CPU";
console.log(`CPU: ${cpuModel} × ${cpus().length} (${placement}); kernel ${release()}; Bun ${Bun.version}` +
  `${nodeVersion ? `, Node ${nodeVersion}` : ""}`);
console.log(`WebSocket echo, median of ${values.repeats} × ${values.seconds} s; load generator: ` +
  `${wsload ? "C wsload" : "bench/load.ts"}; load average ${loadavgBefore} before, ${loadavgAfter} after; ` +
  `${(quiet.waitedMs / 1000).toFixed(1)} s waited for quiet; repeats spread (max − min) / median: ` +
  `${pct(spreadMedian)} median, ${pct(spreadMax)} worst`);
console.log("");
const names = specs.map((s) => s.name);
const GOAL = (s: Scenario) => s.binary ? 0.9 : 0.7;
const hioloads = specs.filter((s) => s.name === "hioload-ws" || s.name === "hioload-ws (epoll)");
console.log(`| scenario | ${names.join(" | ")} | hioload / Bun.serve | hioload-ws of raw (goal) |`);
console.log(`|---|${names.map(() => "---:").join("|")}|---:|---|`);
saved.forEach((sc, k) => {
  const scenario = scenarios[k];
  const show = (name: string) => {
    const cell = sc.results[name];
    const v = big(scenario) ? `${fmt(cell.mbPerSec)} MB/s` : `${fmt(cell.msgsPerSec)} msg/s`;
    return `${v}${cell.ofRaw !== undefined ? ` · ${pct(cell.ofRaw)}` : ""}${flag(cell)}`;
  };
  const ours = sc.results["hioload-ws"];
  const bun = sc.results["Bun.serve"];
  const ratio = ours && bun ? (big(scenario) ? ours.mbPerSec / bun.mbPerSec : ours.msgsPerSec / bun.msgsPerSec).toFixed(2) + "×" : "—";
  const goal = hioloads.map((h) => {
    const cell = sc.results[h.name];
    if (cell.ofRaw === undefined) return null;
    return `${h.kind} ${pct(cell.ofRaw)}${cell.ofRaw >= GOAL(scenario) ? "" : " ✗"}`;
  }).filter((x) => x !== null);
  const goalCell = goal.length ? `${goal.join(", ")} (≥ ${pct(GOAL(scenario))})` : "—";
  console.log(`| ${sc.label} | ${names.map(show).join(" | ")} | ${ratio} | ${goalCell} |`);
  if (scenario.conns === 1) {
    console.log(`| ↳ p50 / p99 µs | ${names.map((n) => `${sc.results[n].p50us} / ${sc.results[n].p99us}`).join(" | ")} | | |`);
  }
});
let idleKibPerConn: Record<string, number> | undefined;
if (results.has("hioload-ws|idle")) {
  const idle = Number(values.idle);
  idleKibPerConn = {};
  for (const name of names) {
    const row = results.get(`${name}|idle`);
    if (row) idleKibPerConn[name] = (row.rssOpenKb - row.rssBeforeKb) / idle;
  }
  const cell = (name: string) => idleKibPerConn![name] === undefined ? "—" : `${idleKibPerConn![name].toFixed(2)} KiB`;
  const ratio = idleKibPerConn["Bun.serve"] ? `${(idleKibPerConn["hioload-ws"] / idleKibPerConn["Bun.serve"]).toFixed(2)}×` : "—";
  console.log(`| ${fmt(idle)} idle conns, RSS/conn | ${names.map(cell).join(" | ")} | ${ratio} | |`);
}
console.log("");
console.log("% after a figure: of the raw C echo of the same kind (io_uring rows of raw io_uring, epoll rows of raw " +
  "epoll, the others of the faster raw echo); ✗: below the goal (binary ≥ 90%, text ≥ 70%). " +
  `‡ load-bound: the load generator used ≥ ${LOAD_BOUND_PCT}% of its CPU, so the figure is partly the load generator's limit.`);
console.log("");
console.log("CPU during the measurement, % of one CPU (median of the repeats): load generator / server");
console.log("");
console.log(`| scenario | ${names.join(" | ")} |`);
console.log(`|---|${names.map(() => "---:").join("|")}|`);
for (const sc of saved) {
  const cpu = (n: number) => n < 0 ? "?" : String(Math.round(n));
  console.log(`| ${sc.label} | ${names.map((n) => `${cpu(sc.results[n].clientCpuPct)} / ${cpu(sc.results[n].serverCpuPct)}` +
    flag(sc.results[n])).join(" | ")} |`);
}

if (save) {
  const report: CompareResults = {
    date: new Date().toISOString(), cpuModel, cpus: cpus().length, kernel: release(), bun: Bun.version, node: nodeVersion,
    seconds: Number(values.seconds), repeats: Number(values.repeats), loadGenerator: wsload ? "C wsload" : "bench/load.ts",
    placement, noise: { loadavgBefore, loadavgAfter, quietWaitS: quiet.waitedMs / 1000, spreadMedian, spreadMax },
    servers: specs.map((s) => ({ name: s.name, kind: s.kind, raw: s.raw === true })),
    scenarios: saved, idleKibPerConn, idleConns: idleKibPerConn ? Number(values.idle) : undefined,
  };
  const json = join(root, "bench", "results", "compare.json");
  mkdirSync(join(root, "bench", "results"), { recursive: true });
  writeFileSync(json, JSON.stringify(report, null, 2) + "\n");
  const svg = join(root, "bench", "compare.svg");
  writeFileSync(svg, plot(report));
  console.error(`wrote ${json} and ${svg}`);
}
