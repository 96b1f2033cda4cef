/**
 * Hardening issue, item 10: the never-reading client. One client sends --size byte masked
 * binary messages to an echo server as fast as it can for --seconds and never reads, then
 * vanishes (its socket is dropped: RST, as a dead peer's). The server's resident memory
 * (VmRSS + HugetlbPages) is sampled every 100 ms before, during and after; the target is a
 * peak growth of at most 1.5 × backpressureLimit, given back once the client is gone.
 * hioload-ws and Bun.serve get the same backpressureLimit; each runs in a fresh process per
 * run, repeats alternated, medians shown.
 *
 *   bun bench/never-reader.ts [--seconds 10] [--repeats 1] [--size 65536]
 *     [--backpressure-limit 16777216] [--after 3]
 */
import { parseArgs } from "node:util";
import { OPCODE_BINARY } from "../src/protocol/constants.ts";
import { alternate, describeMachine, fmt, machine, median, mib, printTable } from "./support/report.ts";
import { deadline, echoServers, LineReader, ServerProcess, spawnChild, type ServerSpec } from "./support/server-process.ts";
import { frameBlock, maskedFrame, RawClient } from "./support/ws-client.ts";
import { pinned } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    repeats: { type: "string", default: "1" },
    servers: { type: "string" }, // a subset: "hioload-ws" or "Bun.serve"
    size: { type: "string", default: "65536" },
    "backpressure-limit": { type: "string", default: String(16 * 1024 * 1024) },
    after: { type: "string", default: "3" }, // seconds sampled after the client went
    client: { type: "string" }, // internal: run the client against this port
  },
});
const seconds = Number(values.seconds);
const size = Number(values.size);
const limit = Number(values["backpressure-limit"]);
const afterS = Number(values.after);
const SAMPLE_MS = 100;
const BASELINE_MS = 1000;
/** "Given back?" is read this long after the client went. */
const RETURN_CHECK_MS = 2000;

interface ClientResult { mibWritten: number; connected: boolean; problem: string }

/** The client: connect, stop reading, write as fast as the kernel takes it, then vanish. */
async function runClient(port: number): Promise<ClientResult> {
  let client: RawClient;
  try {
    client = await RawClient.open(port);
  } catch (error) {
    return { mibWritten: 0, connected: false, problem: String(error) };
  }
  client.pause();
  console.log("connected");
  const frame = maskedFrame(OPCODE_BINARY, new Uint8Array(size).fill(0x6e));
  void client.pump(frameBlock(frame, Math.max(1, Math.floor((1 << 20) / frame.length))), Infinity);
  await Bun.sleep(seconds * 1000);
  client.stopPump();
  const ended = client.ending;
  client.terminate();
  console.log("disconnected");
  return { mibWritten: client.bytesWritten / (1 << 20), connected: true,
    problem: ended === "open" ? "" : `the server ended the connection during the run (${ended})` };
}

interface Run {
  baselineKb: number;
  peakKb: number;
  /** Memory 2 s after the client went, and at the end of --after. */
  returnedKb: number;
  endKb: number;
  mibWritten: number;
  problem: string;
  serverExitMs: number;
  serverKilled: boolean;
  /** hioload-ws's stats at SIGTERM: sends dropped at the limit, loans still out. */
  dropped: number;
  loansOut: number;
  /** hioload-ws's whole last stats line, for counters this bench does not know of. */
  serverStats: Record<string, unknown> | null;
  /** [ms since the client connected, KiB] every 100 ms. */
  samples: [number, number][];
}

/** The sample nearest to `atMs` (ms since sampling began). */
function sampleAt(server: ServerProcess, atMs: number): number {
  let best = -1;
  let distance = Infinity;
  for (const s of server.samples) {
    if (Math.abs(s.atMs - atMs) < distance) {
      distance = Math.abs(s.atMs - atMs);
      best = s.kb;
    }
  }
  return best;
}

async function once(spec: ServerSpec): Promise<Run> {
  const server = await ServerProcess.start(spec);
  const origin = performance.now();
  server.startSampling(SAMPLE_MS, origin);
  await Bun.sleep(BASELINE_MS);
  const baselineKb = median(server.samples.map((s) => s.kb));
  server.baseline();
  const child = spawnChild(pinned(1, [process.execPath, import.meta.path, "--client", String(server.port),
    "--seconds", String(seconds), "--size", String(size)]));
  const output = new LineReader(child.stdout);
  const connected = await output.wait(/^connected$/, 15_000);
  const connectedMs = performance.now() - origin;
  const gone = connected === null ? null : await output.wait(/^disconnected$/, (seconds + 15) * 1000);
  const goneMs = performance.now() - origin;
  await Bun.sleep(afterS * 1000);
  const peakKb = server.peakKb();
  const line = await output.wait(/^\{/, 5000);
  child.kill("SIGKILL");
  const stop = await server.stop();
  const serverStats = server.lastStats();
  const stats = serverStats as { dropped?: number; transport?: { loansOut?: number } } | null;
  const result: ClientResult = line === null ? { mibWritten: NaN, connected: false, problem: "no result from the client" }
    : JSON.parse(line);
  const run: Run = {
    baselineKb, peakKb,
    returnedKb: gone === null ? NaN : sampleAt(server, goneMs + RETURN_CHECK_MS),
    endKb: server.samples.at(-1)?.kb ?? NaN,
    mibWritten: result.mibWritten,
    problem: result.problem || (gone === null ? "the client did not finish" : ""),
    serverExitMs: stop.exitMs, serverKilled: stop.killed,
    dropped: stats?.dropped ?? NaN, loansOut: stats?.transport?.loansOut ?? NaN, serverStats,
    samples: server.samples.map((s) => [Math.round(s.atMs - connectedMs), s.kb]),
  };
  console.error(`${spec.name}: baseline ${mib(baselineKb)} MiB, peak +${mib(peakKb - baselineKb)} MiB, ` +
    `2 s after +${mib(run.returnedKb - baselineKb)} MiB${run.problem ? `, ${run.problem}` : ""}`);
  return run;
}

async function orchestrate(): Promise<void> {
  const servers = echoServers(limit, values.servers);
  deadline(Number(values.repeats) * servers.length * (seconds + afterS + BASELINE_MS / 1000 + 75) * 1000);
  const results = await alternate(servers, Number(values.repeats), once);
  const m = machine();
  console.log(`Never-reading client (hardening item 10): ${size} B binary messages as fast as the server reads ` +
    `them, for ${seconds} s, then dropped; backpressureLimit ${mib(limit / 1024)} MiB; median of ${values.repeats} ` +
    `run(s); ${describeMachine(m)}`);
  const runsOf = (spec: ServerSpec) => results.get(spec)!;
  const med = (pick: (r: Run) => number, show: (n: number) => string) =>
    servers.map((s) => show(median(runsOf(s).map(pick))));
  const mibs = (n: number) => `${mib(n)} MiB`;
  printTable(servers.map((s) => s.name), [
    ["baseline", ...med((r) => r.baselineKb, mibs)],
    ["peak growth", ...med((r) => r.peakKb - r.baselineKb, (n) => `+${mibs(n)}`)],
    ["peak growth / backpressureLimit (target ≤ 1.5)", ...med((r) => ((r.peakKb - r.baselineKb) * 1024) / limit, (n) => `${fmt(n, 2)}×`)],
    ["2 s after the client went (growth)", ...med((r) => r.returnedKb - r.baselineKb, (n) => `+${mibs(n)}`)],
    [`${afterS} s after (growth)`, ...med((r) => r.endKb - r.baselineKb, (n) => `+${mibs(n)}`)],
    ["client wrote, MiB", ...med((r) => r.mibWritten, (n) => fmt(n))],
    ["sends dropped / loans out at stop (hioload-ws)", ...servers.map((s) => s.name === "hioload-ws"
      ? `${fmt(median(runsOf(s).map((r) => r.dropped)))} / ${fmt(median(runsOf(s).map((r) => r.loansOut)))}` : "n/a")],
    ["server exit after SIGTERM, ms", ...servers.map((s) =>
      `${fmt(median(runsOf(s).map((r) => r.serverExitMs)))}${runsOf(s).some((r) => r.serverKilled) ? " (killed)" : ""}`)],
    ["problems", ...servers.map((s) => [...new Set(runsOf(s).map((r) => r.problem).filter(Boolean))].join("; ") || "none")],
  ]);
  console.log(JSON.stringify({
    bench: "never-reader", machine: m,
    params: { seconds, repeats: Number(values.repeats), size, backpressureLimit: limit, after: afterS, sampleMs: SAMPLE_MS },
    runs: Object.fromEntries(servers.map((s) => [s.name, runsOf(s)])),
  }));
}

if (values.client !== undefined) {
  deadline((seconds + 30) * 1000);
  console.log(JSON.stringify(await runClient(Number(values.client))));
} else {
  await orchestrate();
}
process.exit(0);
