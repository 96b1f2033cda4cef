/**
 * Server CPU per message at fixed offered loads (issue 17, "CPU at partial load"): hioload-ws
 * (io_uring and epoll) and Bun.serve echo the C wsload's paced traffic (`--rate`: each
 * connection sends one message every 1/R s once its previous echo is back), and the bench
 * prints the server's CPU time per echoed message, side by side, in one run.
 *
 *   bun bench/fixed-load.ts [--seconds 2] [--warmup 0.5] [--repeats 3] [--only "5,000,500 ×"]
 *     [--servers uring,epoll,bun] [--extra "NAME=BACKEND:{transport options}[@ROOT];…"] [--no-quiet]
 *
 * Loads (conns × msg/s per conn, payload): 5,000 × 1 16 B; 500 × 40 16 B; 1,000 × 10 4 KiB
 * text; 100 × 500 16 B (50,000 msg/s: bursts overlap, so a spin after the last completion
 * sometimes finds work and sometimes does not).
 *
 * Every server runs for the whole bench, pinned to CPU 0; wsload runs pinned to CPU 1, one
 * process per run (it connects, paces for --warmup s, then measures for --seconds s); the
 * repeats alternate between servers. Server CPU is the sum of the time on CPU of all the
 * server's threads (/proc/PID/task/TID/schedstat, nanoseconds: /proc/PID/stat's 100 Hz
 * ticks are too coarse for 5 % of a CPU over 2 s), sampled every 25 ms and interpolated at
 * the edges of wsload's measurement window (its start: spawn + connect_s + warmup). Before
 * each run the bench waits (20 s at most) until other processes use < 10 % of a CPU, as
 * bench/deflate-echo.ts does; a run that others disturbed by > 10 % of a CPU is run again
 * (twice at most, the least disturbed kept). Shown: the median of the repeats with their
 * range, the achieved rate (a server that cannot keep up shows it here), wsload's p99.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuModel, fmt, median } from "./support/report.ts";
import { deadline, LineReader, spawnChild } from "./support/server-process.ts";
import type { Subprocess } from "bun";
import { machineBusyMs, QuietWaiter } from "./support/quiet.ts";
import { buildWsload, pinned, repositoryRoot, twoCpus } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    warmup: { type: "string", default: "0.5" },
    repeats: { type: "string", default: "3" },
    only: { type: "string" },
    servers: { type: "string" },
    "no-quiet": { type: "boolean", default: false },
    extra: { type: "string" },
  },
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const repeats = Number(values.repeats);
const wsload = buildWsload();
if (wsload === undefined) {
  console.error("fixed-load: needs gcc and ../shared/tools/wsload.c (or $WSLOAD_SRC)");
  process.exit(2);
}
deadline(15 * 60_000);

interface Load { label: string; conns: number; rate: number; size: number }
const loads: Load[] = ([
  { label: "5,000 × 1/s, 16 B", conns: 5000, rate: 1, size: 16 },
  { label: "500 × 40/s, 16 B", conns: 500, rate: 40, size: 16 },
  { label: "1,000 × 10/s, 4 KiB text", conns: 1000, rate: 10, size: 4096 },
  { label: "100 × 500/s, 16 B", conns: 100, rate: 500, size: 16 },
] as Load[]).filter((l) => !values.only || values.only.split(";").some((key) => l.label.includes(key)));

interface Spec { key: string; name: string; cmd: string[] }
const bun = process.execPath;
const hioload = (backend: string, transport = "{}", root = repositoryRoot): string[] => ["/usr/bin/env",
  `HIOLOAD_BACKEND=${backend}`, bun, join(root, "bench/servers/hioload-transport-echo.ts"), "0", transport];
const specs: Spec[] = ([
  { key: "uring", name: "hioload-ws io_uring", cmd: hioload("io_uring") },
  { key: "epoll", name: "hioload-ws epoll", cmd: hioload("epoll") },
  { key: "bun", name: "Bun.serve", cmd: [bun, join(repositoryRoot, "bench/servers/bun-serve-echo.ts"), "0"] },
] as Spec[]).filter((s) => !values.servers || values.servers.split(",").includes(s.key));
// --extra "NAME=BACKEND:{transport options}[@ROOT];…": more hioload-ws servers, to compare
// settings, or (ROOT: a copy of this repository, say at an older commit) code, in one run.
for (const item of values.extra?.split(";") ?? []) {
  const match = /^([^=]+)=([a-z_]+):(\{.*\})(?:@(.+))?$/.exec(item.trim());
  if (match === null) throw new Error(`--extra: expected NAME=BACKEND:{json}[@ROOT], got ${item}`);
  specs.splice(specs.length - (specs.at(-1)?.key === "bun" ? 1 : 0), 0,
    { key: match[1], name: `hioload-ws ${match[1]}`, cmd: hioload(match[2], match[3], match[4]) });
}

// ------------------------------------------------------------------ /proc

/**
 * Time on CPU of every thread of `pid` seen so far, ns (schedstat's first field): `seen`
 * keeps a thread's last reading after it exits, so the sum never goes down (a thread that
 * exits loses at most its last sampling interval).
 */
function threadsCpuNs(pid: number, seen: Map<string, number>): number {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    // the process went: the last readings stand
  }
  for (const tid of tids) {
    try {
      seen.set(tid, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
    } catch {
      // the thread went
    }
  }
  let sum = 0;
  for (const ns of seen.values()) sum += ns;
  return sum;
}

const quiet = new QuietWaiter();
/** Waits for a quiet machine (unless --no-quiet). */
async function waitQuiet(): Promise<void> {
  if (!values["no-quiet"]) await quiet.wait();
}

// ------------------------------------------------------------------ servers

interface Server { spec: Spec; child: Subprocess<"ignore", "pipe", "inherit">; port: number }

async function startServer(spec: Spec): Promise<Server> {
  const child = spawnChild(pinned(0, spec.cmd));
  const output = new LineReader(child.stdout);
  const ready = await output.wait(/listening on :\d+/, 15_000);
  if (ready === null) {
    child.kill("SIGKILL");
    throw new Error(`${spec.name} did not start`);
  }
  await Bun.sleep(300); // JIT, first GC
  return { spec, child, port: Number(/listening on :(\d+)/.exec(ready)![1]) };
}

// ------------------------------------------------------------------ one run

interface Run {
  /** Server CPU per echoed message, µs. */
  usPerMsg: number;
  /** Server CPU, share of one CPU. */
  serverCpu: number;
  msgsPerSec: number;
  p50us: number;
  p99us: number;
  /** CPU that neither the server nor wsload used during the window, share of one CPU. */
  otherCpu: number;
}

interface Sample { t: number; serverNs: number; busyMs: number }

/** Linear interpolation of a sampled counter at time `t`. */
function at(samples: Sample[], t: number, pick: (s: Sample) => number): number {
  let i = samples.findIndex((s) => s.t >= t);
  if (i <= 0) i = i === 0 ? 1 : samples.length - 1;
  const a = samples[i - 1];
  const b = samples[i];
  return pick(a) + (pick(b) - pick(a)) * Math.min(1, Math.max(0, (t - a.t) / (b.t - a.t)));
}

async function loadRun(server: Server, load: Load): Promise<Run> {
  await waitQuiet();
  const pid = server.child.pid;
  const samples: Sample[] = [];
  const seen = new Map<string, number>();
  const take = () => samples.push({ t: performance.now(), serverNs: threadsCpuNs(pid, seen), busyMs: machineBusyMs() });
  take();
  const spawnedAt = performance.now();
  const client = spawnChild(pinned(1, [wsload!, "--port", String(server.port), "--conns", String(load.conns),
    "--size", String(load.size), "--rate", String(load.rate), "--warmup", String(warmup),
    "--seconds", String(seconds), "--json"]));
  const sampler = setInterval(take, 25);
  const text = await new Response(client.stdout).text();
  await client.exited;
  take();
  clearInterval(sampler);
  const line = text.trim().split("\n").pop() ?? "";
  let json;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`${server.spec.name}, ${load.label}: wsload failed: ${text}`);
  }
  if (!json.ok || json.errors) throw new Error(`${server.spec.name}, ${load.label}: wsload: ${line}`);
  // wsload's clock starts a few ms after the spawn (taskset, exec): its window, on ours.
  const start = spawnedAt + (json.connect_s + warmup) * 1000;
  const end = start + json.seconds * 1000;
  const serverNs = at(samples, end, (s) => s.serverNs) - at(samples, start, (s) => s.serverNs);
  const busyMs = at(samples, end, (s) => s.busyMs) - at(samples, start, (s) => s.busyMs);
  const wallMs = end - start;
  return {
    usPerMsg: serverNs / 1000 / json.msgs, serverCpu: serverNs / 1e6 / wallMs, msgsPerSec: json.msgs_per_s,
    p50us: json.lat_us.p50, p99us: json.lat_us.p99,
    otherCpu: Math.max(0, busyMs / wallMs - serverNs / 1e6 / wallMs - json.client_cpu_pct / 100),
  };
}

// ------------------------------------------------------------------ the run

const runStarted = performance.now();
const results = new Map<string, Run[]>();
let reruns = 0;
const running: Server[] = [];
try {
  for (const spec of specs) running.push(await startServer(spec));
  for (const load of loads) {
    for (let r = 0; r < repeats; r++) {
      for (const server of running) {
        let run = await loadRun(server, load);
        for (let attempt = 0; attempt < 2 && run.otherCpu > 0.1; attempt++) {
          reruns++;
          const again = await loadRun(server, load);
          if (again.otherCpu < run.otherCpu) run = again;
        }
        const key = `${server.spec.name}|${load.label}`;
        results.set(key, [...(results.get(key) ?? []), run]);
      }
    }
    console.error(`done: ${load.label}`);
  }
} finally {
  for (const server of running) server.child.kill("SIGKILL");
}

const range = (xs: number[], digits: number) => `${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)}`;
console.log(`Fixed offered load, echo; server CPU µs per message, median (range) of ${repeats} × ${seconds} s ` +
  `after ${warmup} s of paced warm-up, repeats alternated; ${twoCpus ? "server on CPU 0, wsload on CPU 1" : "one CPU"}; ` +
  `CPU: ${cpuModel()}; Bun ${Bun.version}; ${Math.round((performance.now() - runStarted) / 1000)} s ` +
  `(${(quiet.waitedMs / 1000).toFixed(1)} s waiting for quiet, ${reruns} disturbed runs rerun)`);
console.log("");
const names = running.map((s) => s.spec.name);
const bunName = "Bun.serve";
console.log(`| load (conns × msg/s each, payload) | ${names.map((n) => `${n} µs/msg`).join(" | ")} | ` +
  `${names.filter((n) => n !== bunName).map((n) => `${n.replace("hioload-ws ", "")} / Bun`).join(" | ")} | ` +
  `achieved msg/s | server CPU | p99 µs | other CPU, max |`);
console.log(`|---|${names.map(() => "---:").join("|")}|${names.filter((n) => n !== bunName).map(() => "---:").join("|")}|---:|---:|---:|---:|`);
for (const load of loads) {
  const runs = names.map((n) => results.get(`${n}|${load.label}`) ?? []);
  const us = runs.map((rs) => median(rs.map((r) => r.usPerMsg)));
  const bunUs = us[names.indexOf(bunName)];
  const ratios = names.map((n, i) => n === bunName ? null : (us[i] / bunUs).toFixed(2) + "×").filter((x) => x !== null);
  const each = (pick: (r: Run) => number, digits = 0) => runs.map((rs) => fmt(median(rs.map(pick)), digits)).join(" / ");
  console.log(`| ${load.label} | ${runs.map((rs, i) => `${fmt(us[i], 2)} (${range(rs.map((r) => r.usPerMsg), 2)})`).join(" | ")} | ` +
    `${ratios.join(" | ")} | ${each((r) => r.msgsPerSec)} | ${runs.map((rs) => `${(median(rs.map((r) => r.serverCpu)) * 100).toFixed(1)}%`).join(" / ")} | ` +
    `${each((r) => r.p99us)} | ${(Math.max(...runs.flat().map((r) => r.otherCpu)) * 100).toFixed(0)}% |`);
}
console.log("");
console.log(`Columns with "/" list the servers in the order ${names.join(", ")}. Target (issue 17): hioload-ws µs/msg ≤ Bun.serve's at every load.`);
process.exit(0);
