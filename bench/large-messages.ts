/**
 * Hardening issue, item 9: receive-ring starvation with large messages. --conns connections
 * each keep --inflight messages of --size bytes in flight (binary unless --text) through an
 * echo server for --seconds, driven by the C wsload (every echo verified); hioload-ws and
 * Bun.serve each in a fresh process per run, repeats alternated, medians shown. Reports
 * latency p50 / p99 / max, msgs/s, and hioload-ws's receive-buffer stalls (ENOBUFS receives,
 * `stats().transport.recvBufferStalls`, start-up and warm-up included).
 *
 *   bun bench/large-messages.ts [--seconds 10] [--repeats 1] [--conns 200] [--size 65536]
 *     [--inflight 2] [--warmup 1] [--text]
 */
import { parseArgs } from "node:util";
import { alternate, describeMachine, fmt, machine, median, printTable } from "./support/report.ts";
import { deadline, echoServers, LineReader, ServerProcess, spawnChild, type ServerSpec } from "./support/server-process.ts";
import { buildWsload, pinned } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    repeats: { type: "string", default: "1" },
    servers: { type: "string" }, // a subset: "hioload-ws" or "Bun.serve"
    conns: { type: "string", default: "200" },
    size: { type: "string", default: "65536" },
    inflight: { type: "string", default: "2" },
    warmup: { type: "string", default: "1" },
    text: { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const repeats = Number(values.repeats);
const warmup = Number(values.warmup);
/** wsload's own connect timeout, and the slack on top of the run before it is killed. */
const CONNECT_TIMEOUT_S = 20;
const WSLOAD_SLACK_S = CONNECT_TIMEOUT_S + 15;

const wsload = buildWsload();
if (wsload === undefined) {
  console.error("large-messages: needs gcc and ../shared/tools/wsload.c (or $WSLOAD_SRC)");
  process.exit(2);
}
const servers = echoServers(16 * 1024 * 1024, values.servers);
deadline(repeats * servers.length * (seconds + warmup + WSLOAD_SLACK_S + 30) * 1000);

interface Run {
  ok: boolean;
  /** Why the run has no figures, or what went wrong (wsload's errors, a timeout). */
  problem: string;
  msgsPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  recvBufferStalls: number;
  serverExitMs: number;
  serverKilled: boolean;
  /** hioload-ws's whole last stats line, for counters this bench does not know of. */
  serverStats: Record<string, unknown> | null;
}

/** One wsload run against `port`; its JSON line, or null when it printed none in time. */
async function drive(port: number, pid: number): Promise<{ json: Record<string, any> | null; stderr: string }> {
  const cmd = [wsload!, "--port", String(port), "--conns", values.conns!, "--size", values.size!,
    "--inflight", values.inflight!, "--seconds", String(seconds), "--warmup", String(warmup),
    "--connect-timeout", String(CONNECT_TIMEOUT_S), "--json", "--pid", String(pid),
    ...(values.text ? [] : ["--binary"])];
  const child = spawnChild(pinned(1, cmd));
  const output = new LineReader(child.stdout);
  const finished = await Promise.race([child.exited.then(() => true),
    Bun.sleep((seconds + warmup + WSLOAD_SLACK_S) * 1000).then(() => false)]);
  if (!finished) child.kill("SIGKILL");
  await child.exited;
  const line = await output.wait(/^\{/, 500);
  return { json: line === null ? null : JSON.parse(line), stderr: finished ? "" : "wsload timed out (killed)" };
}

async function once(spec: ServerSpec): Promise<Run> {
  const server = await ServerProcess.start(spec);
  const { json, stderr } = await drive(server.port, server.pid);
  const stop = await server.stop();
  const serverStats = server.lastStats();
  const transport = serverStats?.transport as { recvBufferStalls?: number } | undefined;
  const lat = json?.lat_us ?? {};
  const run: Run = {
    ok: json?.ok === true,
    problem: json === null ? stderr || "no output from wsload" : json.ok ? "" : `wsload: ${json.errors} errors`,
    msgsPerSec: json?.msgs_per_s ?? NaN,
    mbPerSec: json?.MB_per_s ?? NaN,
    p50Ms: (lat.p50 ?? NaN) / 1000,
    p99Ms: (lat.p99 ?? NaN) / 1000,
    p999Ms: (lat.p999 ?? NaN) / 1000,
    maxMs: (lat.max ?? NaN) / 1000,
    recvBufferStalls: transport?.recvBufferStalls ?? NaN,
    serverExitMs: stop.exitMs,
    serverKilled: stop.killed,
    serverStats,
  };
  console.error(`${spec.name}: ${run.ok ? "ok" : run.problem}, p99 ${fmt(run.p99Ms, 1)} ms, max ${fmt(run.maxMs, 1)} ms`);
  return run;
}

const results = await alternate(servers, repeats, once);
const m = machine();
const label = `${values.conns} conns × ${values.size} B × ${values.inflight} in flight, ${values.text ? "text" : "binary"}`;
console.log(`Large messages (hardening item 9): ${label}, median of ${repeats} × ${seconds} s ` +
  `(after ${warmup} s warm-up); ${describeMachine(m)}`);
const runsOf = (spec: ServerSpec) => results.get(spec)!;
const cell = (pick: (r: Run) => number, digits = 0) =>
  servers.map((s) => fmt(median(runsOf(s).filter((r) => r.ok).map(pick)), digits));
printTable(servers.map((s) => s.name), [
  ["p50 latency, ms", ...cell((r) => r.p50Ms, 2)],
  ["p99 latency, ms", ...cell((r) => r.p99Ms, 1)],
  ["p99.9 latency, ms", ...cell((r) => r.p999Ms, 1)],
  ["max latency, ms", ...cell((r) => r.maxMs, 1)],
  ["msgs/s", ...cell((r) => r.msgsPerSec)],
  ["MB/s", ...cell((r) => r.mbPerSec)],
  ["receive-buffer stalls", ...servers.map((s) => s.name === "hioload-ws"
    ? fmt(median(runsOf(s).map((r) => r.recvBufferStalls))) : "n/a")],
  ["runs ok", ...servers.map((s) => `${runsOf(s).filter((r) => r.ok).length}/${repeats}`)],
  ["problems", ...servers.map((s) => [...new Set(runsOf(s).map((r) => r.problem).filter(Boolean))].join("; ") || "none")],
]);
console.log(JSON.stringify({
  bench: "large-messages", machine: m,
  params: { conns: Number(values.conns), size: Number(values.size), inflight: Number(values.inflight), seconds, warmup, repeats, binary: !values.text },
  runs: Object.fromEntries(servers.map((s) => [s.name, runsOf(s)])),
}));
process.exit(0);
