/**
 * permessage-deflate echo, side by side, in one run: 4 KiB JSON-like text messages sent
 * compressed and echoed compressed, by hioload-ws (io_uring and epoll; `perMessageDeflate:
 * true`, i.e. shared, and `{ compress: "dedicated", decompress: "dedicated" }`), Bun.serve
 * (`perMessageDeflate: true`, echoing with `ws.send(m, true)`: Bun 1.4.5 compresses only
 * sends whose second argument is true) and the `ws` package (`perMessageDeflate: true`: its
 * defaults, context takeover both ways, threshold 1024 B; on Node when installed, else Bun).
 *
 *   bun bench/deflate-echo.ts [--seconds 1.5] [--repeats 3] [--prime 0.5] [--conns 100] [--inflight 4]
 *     [--idle-conns 1000] [--exchange 4] [--settle 2] [--memory-repeats 3]
 *     [--perf-seconds 1] [--no-memory] [--servers uring-shared,uring-dedicated,epoll-shared,
 *     epoll-dedicated,bun,ws]
 *
 * Throughput: every server runs for the whole throughput part, pinned to CPU 0; the load
 * generator (bench/support/deflate-load.ts: frames compressed once and resent, replies'
 * headers parsed, not inflated) runs pinned to CPU 1, one process per run; repeats alternate
 * between servers; medians with the range of the repeats. Server CPU comes from
 * /proc/PID/stat (utime + stime, all threads) between the load's `measure: start/end` lines.
 * A reference row: the same load generator, uncompressed, against hioload-ws (io_uring)
 * without perMessageDeflate — what the generator can drive at all.
 *
 * Memory: a fresh server process per run; --idle-conns connections negotiate the extension,
 * each exchanges --exchange compressed messages (one at a time), then all sit idle; server
 * RSS growth per connection once all have exchanged ("open") and after --settle s idle.
 *
 * perf (when installed, --perf-seconds > 0): one extra run per server under `perf record`,
 * printed as the share of the server's samples in zlib (libz.so; node's static zlib by
 * symbol), the kernel, JIT code and the rest (bun.exe is stripped: its zlib/libdeflate are
 * in "runtime").
 */
import type { Subprocess } from "bun";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuModel, fmt, median } from "./support/report.ts";
import { LineReader, procStatusKb, spawnChild } from "./support/server-process.ts";
import { machineBusyMs, QuietWaiter } from "./support/quiet.ts";
import { pinned, repositoryRoot, twoCpus } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "1.5" },
    warmup: { type: "string", default: "0.5" },
    prime: { type: "string", default: "0.5" },
    repeats: { type: "string", default: "3" },
    conns: { type: "string", default: "100" },
    inflight: { type: "string", default: "4" },
    "idle-conns": { type: "string", default: "1000" },
    exchange: { type: "string", default: "4" },
    settle: { type: "string", default: "2" },
    "memory-repeats": { type: "string", default: "3" },
    "perf-seconds": { type: "string", default: "1" },
    servers: { type: "string" },
    "no-memory": { type: "boolean", default: false },
  },
});
const repeats = Number(values.repeats);
const memoryRepeats = Number(values["memory-repeats"]);
const idleConns = Number(values["idle-conns"]);
const perfSeconds = Bun.which("perf") ? Number(values["perf-seconds"]) : 0;
const node = Bun.which("node");
const bun = process.execPath;
const servers = join(repositoryRoot, "bench/servers");
const loadScript = join(repositoryRoot, "bench/support/deflate-load.ts");

interface Spec {
  /** What --servers matches. */
  key: string;
  name: string;
  cmd: string[];
  /** hioload-ws: answers "stats" on stdin with `stats {json}`. */
  hioload?: boolean;
  /** The uncompressed reference: throughput only, load without the extension. */
  plain?: boolean;
}
const hioload = (backend: string, mode: string): string[] =>
  ["/usr/bin/env", `HIOLOAD_BACKEND=${backend}`, bun, join(servers, "hioload-deflate-echo.ts"), "0", mode];
const allSpecs: Spec[] = [
  { key: "uring-shared", name: "hioload-ws io_uring, true (shared)", cmd: hioload("io_uring", "shared"), hioload: true },
  { key: "uring-dedicated", name: "hioload-ws io_uring, dedicated", cmd: hioload("io_uring", "dedicated"), hioload: true },
  { key: "epoll-shared", name: "hioload-ws epoll, true (shared)", cmd: hioload("epoll", "shared"), hioload: true },
  { key: "epoll-dedicated", name: "hioload-ws epoll, dedicated", cmd: hioload("epoll", "dedicated"), hioload: true },
  { key: "bun", name: "Bun.serve, true, send(m, true)", cmd: [bun, join(servers, "bun-serve-deflate-echo.ts"), "0"] },
  { key: "ws", name: `ws (${node ? "Node" : "Bun"}), perMessageDeflate: true`, cmd: [node ?? bun, join(servers, "ws-deflate-echo.mjs"), "0"] },
];
const specs = allSpecs.filter((s) => values.servers === undefined || values.servers.split(",").includes(s.key));
const reference: Spec = { key: "reference", name: "reference: uncompressed, hioload-ws io_uring without perMessageDeflate", cmd: hioload("io_uring", "off"), hioload: true, plain: true };
const BUN_NAME = allSpecs[4].name;
const WS_NAME = allSpecs[5].name;

// ------------------------------------------------------------------ processes

interface Server { spec: Spec; child: Subprocess<"pipe", "pipe", "inherit">; output: LineReader; port: number }
const started = new Set<Subprocess>();
process.on("exit", () => {
  for (const child of started) child.kill("SIGKILL");
});

async function startServer(spec: Spec): Promise<Server> {
  const child = Bun.spawn(pinned(0, spec.cmd), { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  started.add(child);
  void child.exited.then(() => started.delete(child));
  const output = new LineReader(child.stdout);
  const ready = await output.wait(/listening on :\d+/, 15_000);
  if (ready === null) {
    child.kill("SIGKILL");
    throw new Error(`${spec.name} did not start`);
  }
  await Bun.sleep(300); // JIT, first GC
  return { spec, child, output, port: Number(/listening on :(\d+)/.exec(ready)![1]) };
}

async function stopServer(server: Server): Promise<void> {
  server.child.kill("SIGKILL");
  await server.child.exited;
}

/** utime + stime of a process (all its threads), ms; clock ticks are 100 Hz on Linux. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const quiet = new QuietWaiter();
const waitQuiet = () => quiet.wait();

/** RSS plus hugetlb pages (where hioload-ws pools live when hugepages are reserved), KiB. */
function rssKb(pid: number): number {
  const rss = procStatusKb(pid, "VmRSS");
  return rss < 0 ? rss : rss + Math.max(0, procStatusKb(pid, "HugetlbPages"));
}

async function hioloadStats(server: Server): Promise<Record<string, any> | null> {
  const before = server.output.lines.length;
  server.child.stdin.write("stats\n");
  server.child.stdin.flush();
  const deadline = performance.now() + 3000;
  while (performance.now() < deadline) {
    const line = server.output.lines.slice(before).find((l) => l.startsWith("stats {"));
    if (line !== undefined) return JSON.parse(line.slice(6));
    await Bun.sleep(10);
  }
  return null;
}

// ------------------------------------------------------------------ throughput

interface Run {
  msgsPerSec: number;
  serverCpu: number; // share of one CPU
  serverUsPerMsg: number;
  clientCpu: number;
  replyBytes: number;
  sentBytes: number;
  compressedShare: number;
  extensions: string;
  verify: string;
  /** CPU that neither the server nor the load generator used during the measurement, share of one CPU. */
  otherCpu: number;
}

async function loadRun(server: Server, seconds: number, onStart?: () => void): Promise<Run> {
  const args = [bun, loadScript, "--port", String(server.port), "--conns", values.conns!, "--inflight",
    values.inflight!, "--seconds", String(seconds), "--warmup", values.warmup!, ...(server.spec.plain ? ["--plain"] : [])];
  await waitQuiet();
  const client = spawnChild(pinned(1, args));
  let cpuStart = 0;
  let cpuEnd = 0;
  let busyStart = 0;
  let busyEnd = 0;
  let tStart = 0;
  let tEnd = 0;
  let json: any = null;
  const output = new LineReader(client.stdout, (line) => {
    if (line === "measure: start") {
      cpuStart = cpuMs(server.child.pid);
      busyStart = machineBusyMs();
      tStart = performance.now();
      onStart?.();
    } else if (line === "measure: end") {
      cpuEnd = cpuMs(server.child.pid);
      busyEnd = machineBusyMs();
      tEnd = performance.now();
    } else if (line.startsWith("{")) {
      json = JSON.parse(line);
    }
  });
  const exit = await Promise.race([client.exited, Bun.sleep((seconds + 40) * 1000).then(() => "timeout" as const)]);
  if (exit === "timeout") client.kill("SIGKILL");
  await Bun.sleep(20);
  if (json === null || !json.ok) {
    throw new Error(`${server.spec.name}: load generator failed: ${JSON.stringify(json) ?? output.lines.join("\n")}`);
  }
  const serverMs = cpuEnd - cpuStart;
  const wallMs = tEnd - tStart;
  return {
    msgsPerSec: json.msgs_per_s, serverCpu: serverMs / wallMs,
    serverUsPerMsg: (serverMs * 1000) / json.messages, clientCpu: json.client_cpu,
    replyBytes: json.reply_bytes_per_msg, sentBytes: json.sent_bytes_per_msg,
    compressedShare: json.compressed_share, extensions: json.extensions, verify: json.verify,
    otherCpu: Math.max(0, (busyEnd - busyStart - serverMs) / wallMs - json.client_cpu),
  };
}

/** perf record of the server during one load run: share of samples by where they fell. */
async function perfRun(server: Server): Promise<string> {
  const file = `/tmp/hioload-deflate-perf-${server.child.pid}.data`;
  let recorder: Subprocess | null = null;
  await loadRun(server, perfSeconds + 0.5, () => {
    recorder = Bun.spawn(["perf", "record", "-q", "-F", "999", "-p", String(server.child.pid), "-o", file,
      "--", "sleep", String(perfSeconds)], { stdout: "ignore", stderr: "ignore" });
  });
  if (recorder === null) return "—";
  await (recorder as Subprocess).exited;
  const report = Bun.spawnSync(["perf", "report", "-i", file, "--stdio", "--no-children", "--sort", "dso,sym", "-t", "|"],
    { stdout: "pipe", stderr: "ignore" }).stdout.toString();
  rmSync(file, { force: true });
  const share = { zlib: 0, kernel: 0, jit: 0, runtime: 0 };
  for (const line of report.split("\n")) {
    const match = /^\s*([\d.]+)%\s*\|([^|]*)\|(.*)$/.exec(line);
    if (match === null) continue;
    const [pct, dso, sym] = [Number(match[1]), match[2].trim(), match[3].trim()];
    if (/libz\.so/.test(dso) || (!sym.includes("::") && ZLIB_SYMBOL.test(sym))) share.zlib += pct;
    else if (dso.startsWith("[kernel")) share.kernel += pct;
    else if (dso.startsWith("[JIT]") || dso.startsWith("perf-")) share.jit += pct;
    else share.runtime += pct;
  }
  return `zlib ${share.zlib.toFixed(0)}% · kernel ${share.kernel.toFixed(0)}% · JIT ${share.jit.toFixed(0)}% · ` +
    `runtime ${share.runtime.toFixed(0)}%`;
}
const ZLIB_SYMBOL = /^\[\.\] (longest_match|deflate|inflate|fill_window|compress_block|build_tree|pqdownheap|send_tree|scan_tree|_tr_|crc32|adler32|slide_hash|gen_bitlen|gen_codes|updatewindow|Cr_z_|zcalloc|zcfree)/;

// ------------------------------------------------------------------ memory

interface Memory {
  openKib: number;
  settledKib: number;
  zlibPerSocket: number;
  zlibShared: number;
  extensions: string;
  /** hioload-ws: growth of its receive and send buffer pools (stats().transport), per connection. */
  poolGrowthKib: number;
}

/** Bytes of hioload-ws's transport buffer pools (receive + send), NaN without stats. */
function poolBytes(stats: Record<string, any> | null): number {
  const transport = stats?.transport;
  if (transport === undefined) return NaN;
  return (transport.recvBuffers?.bytes ?? 0) + (transport.sendBuffers?.bytes ?? 0);
}

async function memoryRun(spec: Spec): Promise<Memory> {
  await waitQuiet();
  const server = await startServer(spec);
  try {
    await Bun.sleep(200);
    const before = rssKb(server.child.pid);
    const statsBefore = spec.hioload ? await hioloadStats(server) : null;
    const client = spawnChild(pinned(1, [bun, loadScript, "--port", String(server.port), "--conns", String(idleConns),
      "--idle", "--exchange", values.exchange!]));
    const output = new LineReader(client.stdout);
    const line = await output.wait(/^exchanged |^\{/, 90_000);
    if (line === null || !line.startsWith("exchanged ")) {
      client.kill("SIGKILL");
      throw new Error(`${spec.name}: idle connections failed: ${line ?? output.lines.join("\n")}`);
    }
    const json = JSON.parse(line.slice("exchanged ".length));
    if (!json.ok) throw new Error(`${spec.name}: idle connections failed: ${line}`);
    await Bun.sleep(100);
    const open = rssKb(server.child.pid);
    const stats = spec.hioload ? await hioloadStats(server) : null;
    await Bun.sleep(Number(values.settle) * 1000);
    const settled = rssKb(server.child.pid);
    client.kill("SIGKILL");
    await client.exited;
    return {
      openKib: (open - before) / idleConns, settledKib: (settled - before) / idleConns,
      zlibPerSocket: stats?.compression?.bytesPerSocket ?? NaN, zlibShared: stats?.compression?.sharedBytes ?? NaN,
      extensions: json.extensions,
      poolGrowthKib: (poolBytes(stats) - poolBytes(statsBefore)) / 1024 / idleConns,
    };
  } finally {
    await stopServer(server);
  }
}

// ------------------------------------------------------------------ the run

const runStarted = performance.now();
const nodeVersion = node ? Bun.spawnSync([node, "-v"]).stdout.toString().trim() : "";
const throughput = new Map<string, Run[]>();
const perf = new Map<string, string>();
let disturbedRuns = 0;
const running: Server[] = [];
try {
  for (const spec of [...specs, reference]) running.push(await startServer(spec));
  // One uncounted run per server first: JIT tiers, zlib streams, pools reach their steady state.
  if (Number(values.prime) > 0) for (const server of running) await loadRun(server, Number(values.prime));
  for (let r = 0; r < repeats; r++) {
    for (const server of running) {
      // A run that another process disturbed (> 10% of a CPU) is run again, twice at most;
      // the least disturbed attempt is kept.
      let run = await loadRun(server, Number(values.seconds));
      for (let attempt = 0; attempt < 2 && run.otherCpu > 0.1; attempt++) {
        disturbedRuns++;
        const again = await loadRun(server, Number(values.seconds));
        if (again.otherCpu < run.otherCpu) run = again;
      }
      throughput.set(server.spec.name, [...(throughput.get(server.spec.name) ?? []), run]);
    }
    console.error(`throughput: repeat ${r + 1}/${repeats} done`);
  }
  if (perfSeconds > 0) {
    for (const server of running) perf.set(server.spec.name, await perfRun(server));
    console.error("perf: done");
  }
} finally {
  for (const server of running) await stopServer(server);
}

const memory = new Map<string, Memory[]>();
if (!values["no-memory"] && idleConns > 0) {
  for (let r = 0; r < memoryRepeats; r++) {
    for (const spec of specs) memory.set(spec.name, [...(memory.get(spec.name) ?? []), await memoryRun(spec)]);
    console.error(`memory: repeat ${r + 1}/${memoryRepeats} done`);
  }
}

// ------------------------------------------------------------------ report

const range = (xs: number[], digits = 0) => `${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)}`;
const spread = (xs: number[]) => `±${((Math.max(...xs) - Math.min(...xs)) / 2 / median(xs) * 100).toFixed(1)}%`;
const msgs = (name: string) => median((throughput.get(name) ?? []).map((r) => r.msgsPerSec));
const bunRate = msgs(BUN_NAME);

console.log(`permessage-deflate echo, ${values.conns} conns × 4 KiB JSON-like text × ${values.inflight} in flight, ` +
  `compressed both ways; median (range) of ${repeats} × ${values.seconds} s, repeats alternated; ` +
  `${twoCpus ? "server on CPU 0, load (bench/support/deflate-load.ts, one process) on CPU 1" : "one CPU"}; ` +
  `CPU: ${cpuModel()}; Bun ${Bun.version}${node ? `, Node ${nodeVersion}` : ""}; ${Math.round((performance.now() - runStarted) / 1000)} s`);
console.log("Bun.serve echoes with ws.send(m, true): Bun 1.4.5 compresses a send only when its second argument is true.");
console.log(`Before each run the bench waited for other processes to use < 10% of a CPU (${(quiet.waitedMs / 1000).toFixed(1)} s waited in all), ` +
  `and ran again (twice at most, keeping the least disturbed) a run that others disturbed by > 10% of a CPU (${disturbedRuns} reruns); ` +
  "\"other CPU\": what anything but the server and the load generator used during a measurement (share of one CPU, worst repeat). " +
  "Spread: half the range of the repeats over their median.");
console.log("");
console.log("| server, perMessageDeflate | msg/s (range) | spread | vs Bun.serve | server CPU µs/msg | server CPU | load CPU | other CPU, max | B/msg in → out | perf (server) |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
for (const spec of [...specs, reference]) {
  const runs = throughput.get(spec.name) ?? [];
  if (runs.length === 0) continue;
  const rates = runs.map((r) => r.msgsPerSec);
  const m = median(rates);
  const compressedNote = runs.some((r) => !spec.plain && r.compressedShare < 1) ? ` (${(median(runs.map((r) => r.compressedShare)) * 100).toFixed(0)}% compressed)` : "";
  console.log(`| ${spec.name} | ${fmt(m)} (${range(rates)}) | ${spread(rates)} | ${Number.isFinite(bunRate) && !spec.plain ? (m / bunRate).toFixed(2) + "×" : "—"} | ` +
    `${fmt(median(runs.map((r) => r.serverUsPerMsg)), 1)} | ${(median(runs.map((r) => r.serverCpu)) * 100).toFixed(0)}% | ` +
    `${(median(runs.map((r) => r.clientCpu)) * 100).toFixed(0)}% | ${(Math.max(...runs.map((r) => r.otherCpu)) * 100).toFixed(0)}% | ${fmt(runs[0].sentBytes)} → ${fmt(median(runs.map((r) => r.replyBytes)))}${compressedNote} | ${perf.get(spec.name) ?? "—"} |`);
}
console.log("");
console.log("msg/s of each repeat, in run order:");
for (const spec of [...specs, reference]) {
  const runs = throughput.get(spec.name) ?? [];
  if (runs.length > 0) console.log(`- ${spec.name}: ${runs.map((r) => fmt(r.msgsPerSec)).join(", ")}`);
}
console.log("");
console.log("Negotiated (101 response's Sec-WebSocket-Extensions):");
for (const spec of specs) {
  const run = throughput.get(spec.name)?.[0];
  if (run) console.log(`- ${spec.name}: \`${run.extensions}\`; check: ${run.verify}`);
}

if (memory.size > 0) {
  const perConn = (name: string) => median((memory.get(name) ?? []).map((m) => m.settledKib));
  const wsKib = perConn(WS_NAME);
  console.log("");
  console.log(`Memory: ${fmt(idleConns)} compressed connections, each exchanged ${values.exchange} messages then idle; ` +
    `fresh server per run; server RSS growth per connection, median (range) of ${memoryRepeats} runs.`);
  console.log("| server, perMessageDeflate | RSS/conn, all exchanged | RSS/conn, after " + values.settle + " s idle | vs ws | zlib bytes/socket (stats) | shared zlib bytes (stats) | of which buffer-pool growth/conn (stats) |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const spec of specs) {
    const runs = memory.get(spec.name) ?? [];
    if (runs.length === 0) continue;
    const open = runs.map((r) => r.openKib);
    const settled = runs.map((r) => r.settledKib);
    const zlib = runs.map((r) => r.zlibPerSocket);
    console.log(`| ${spec.name} | ${fmt(median(open), 1)} KiB (${range(open, 1)}) | ${fmt(median(settled), 1)} KiB (${range(settled, 1)}) | ` +
      `${Number.isFinite(wsKib) ? (median(settled) / wsKib).toFixed(2) + "×" : "—"} | ` +
      `${spec.hioload ? fmt(median(zlib)) : "—"} | ${spec.hioload ? fmt(median(runs.map((r) => r.zlibShared))) : "—"} | ` +
      `${spec.hioload ? `${fmt(median(runs.map((r) => r.poolGrowthKib)), 1)} KiB` : "—"} |`);
  }
}

// The project's target: hioload-ws ≥ Bun.serve on compressed throughput, ≤ ½ of ws's memory per connection.
console.log("");
console.log("Target (hioload-ws ≥ Bun.serve msg/s; ≤ 0.5 × ws RSS/conn after idle):");
for (const spec of specs.filter((s) => s.hioload)) {
  const t = msgs(spec.name) / bunRate;
  const mem = median((memory.get(spec.name) ?? []).map((m) => m.settledKib)) /
    median((memory.get(WS_NAME) ?? []).map((m) => m.settledKib));
  console.log(`- ${spec.name}: throughput ${Number.isFinite(t) ? `${t.toFixed(2)}× Bun.serve → ${t >= 1 ? "MET" : "NOT MET"}` : "—"}; ` +
    `memory ${Number.isFinite(mem) ? `${mem.toFixed(2)}× ws → ${mem <= 0.5 ? "MET" : "NOT MET"}` : "—"}`);
}
process.exit(0);
