/**
 * Hardening issue, item 7: send-memory starvation by hogs. --hogs clients each send
 * --hog-mib MiB of echo requests (binary, --hog-size bytes each) and never read, so the
 * server's send queues for them fill; meanwhile --clients well-behaved clients each send
 * --rate echo requests a second (64 B, numbered) and check every echo. Then the server is
 * sent SIGTERM, and the well-behaved clients should each get a 1001 close frame.
 *
 *   bun bench/hogs.ts [--seconds 10] [--repeats 1] [--hogs 4 --hog-mib 20 | --scenarios 4x20,8x15]
 *     [--clients 10] [--rate 500] [--hog-size 4096] [--grace 1]
 *
 * Per server (hioload-ws, Bun.serve, each in a fresh process per run, repeats alternated):
 * echoes/s before the hogs started and after they were done writing (all of the
 * well-behaved clients together), echoes lost (sent, never answered by --grace s after the
 * last send), how the hogs ended (the kernel's TCP state at the end of the run, then the
 * first close frame in what they had not read), the close frames at stop, the server's
 * peak RSS. The default scenarios are the issue's: 4 hogs × 20 MiB, 8 hogs × 15 MiB.
 *
 * Clients (hogs and well-behaved) run in a child process on CPU 1 (plain Bun sockets,
 * bench/support/ws-client.ts); the server on CPU 0.
 */
import { parseArgs } from "node:util";
import { OPCODE_BINARY } from "../src/protocol/constants.ts";
import { alternate, describeMachine, fmt, machine, median, mib, mostCommon, printTable } from "./support/report.ts";
import { deadline, echoServers, LineReader, ServerProcess, spawnChild, type ServerSpec } from "./support/server-process.ts";
import { frameBlock, maskedFrame, RawClient } from "./support/ws-client.ts";
import { pinned } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    repeats: { type: "string", default: "1" },
    servers: { type: "string" }, // a subset: "hioload-ws" or "Bun.serve"
    hogs: { type: "string" },
    "hog-mib": { type: "string" },
    scenarios: { type: "string", default: "4x20,8x15" },
    // Under 16 KiB, so hioload-ws copies the echoes into its send pool (larger ones it lends).
    "hog-size": { type: "string", default: "4096" },
    clients: { type: "string", default: "10" },
    rate: { type: "string", default: "500" },
    grace: { type: "string", default: "1" },
    client: { type: "string" }, // internal: run the client side against this port
  },
});
const seconds = Number(values.seconds);
const hogSize = Number(values["hog-size"]);
const clientCount = Number(values.clients);
const rate = Number(values.rate);
const graceS = Number(values.grace);
const MESSAGE_BYTES = 64;
const BIN_MS = 100;
/** After SIGTERM: how long the clients wait for close frames (hioload-ws's closeTimeout is 5 s). */
const CLOSE_WAIT_MS = 8000;
const HOG_READ_WAIT_MS = 8000;

interface Scenario { hogs: number; hogMiB: number }

/** What the client side reports for one run. */
interface ClientResult {
  sent: number;
  received: number;
  lost: number;
  maxLostPerClient: number;
  /** Echoes that failed the check (wrong length, content, order). */
  bad: number;
  echoesPerSecBefore: number;
  echoesPerSecAfter: number;
  /** Seconds from the hogs' start until the last of them was done writing (or stalled). */
  hogFillS: number;
  hogMiBWritten: number[];
  hogKernelStates: string[];
  hogCloseCodes: string[];
  goodAtStop: string[];
  goodP99MsAfter: number;
  problems: string[];
}

// ------------------------------------------------------------------ orchestrator

const repeats = Number(values.repeats);
const scenarios: Scenario[] = values.hogs !== undefined || values["hog-mib"] !== undefined
  ? [{ hogs: Number(values.hogs ?? 4), hogMiB: Number(values["hog-mib"] ?? 20) }]
  : values.scenarios!.split(",").map((s) => {
    const [hogs, hogMiB] = s.split("x").map(Number);
    return { hogs, hogMiB };
  });
const servers = echoServers(16 * 1024 * 1024, values.servers);

interface Run extends ClientResult {
  baselineRssKb: number;
  peakRssKb: number;
  serverExitMs: number;
  serverKilled: boolean;
  /** hioload-ws: `dropped` and send-pool chunks (in use, high water, of) from its stats at SIGTERM. */
  dropped: number;
  sendPoolInUse: number;
  sendPoolHighWater: number;
  sendPoolCapacity: number;
  /** hioload-ws's whole last stats line, for counters this bench does not know of. */
  serverStats: Record<string, unknown> | null;
}

async function once(spec: ServerSpec, scenario: Scenario): Promise<Run> {
  const server = await ServerProcess.start(spec);
  const baselineRssKb = server.baseline();
  server.startSampling(BIN_MS);
  const client = spawnChild(pinned(1, [process.execPath, import.meta.path, "--client", String(server.port),
    "--hogs", String(scenario.hogs), "--hog-mib", String(scenario.hogMiB), "--hog-size", String(hogSize),
    "--clients", String(clientCount), "--rate", String(rate), "--seconds", String(seconds), "--grace", String(graceS)]));
  const output = new LineReader(client.stdout);
  const stopNow = await output.wait(/^stop-now$/, (seconds + graceS + 30) * 1000);
  const peakRssKb = server.peakKb();
  const stop = await server.stop();
  const line = await output.wait(/^result /, CLOSE_WAIT_MS + HOG_READ_WAIT_MS + 10_000);
  client.kill("SIGKILL");
  const stats = server.lastStats() as { dropped?: number; transport?: { sendBuffers?: Record<string, number> } } | null;
  const pool = stats?.transport?.sendBuffers;
  const result: ClientResult = line === null ? emptyResult(stopNow === null ? "client never finished the run" : "client gave no result")
    : JSON.parse(line.slice(7));
  const run: Run = {
    ...result, baselineRssKb, peakRssKb, serverExitMs: stop.exitMs, serverKilled: stop.killed,
    dropped: stats?.dropped ?? NaN, sendPoolInUse: pool?.inUse ?? NaN, sendPoolHighWater: pool?.highWater ?? NaN,
    sendPoolCapacity: pool?.capacity ?? NaN, serverStats: stats,
  };
  console.error(`${spec.name}, ${scenario.hogs} hogs × ${scenario.hogMiB} MiB: echoes/s ${fmt(run.echoesPerSecBefore)} → ` +
    `${fmt(run.echoesPerSecAfter)}, lost ${run.lost}/${run.sent}, at stop: ${summarize(run.goodAtStop)}`);
  return run;
}

function emptyResult(problem: string): ClientResult {
  return { sent: NaN, received: NaN, lost: NaN, maxLostPerClient: NaN, bad: NaN, echoesPerSecBefore: NaN,
    echoesPerSecAfter: NaN, hogFillS: NaN, hogMiBWritten: [], hogKernelStates: [], hogCloseCodes: [],
    goodAtStop: [], goodP99MsAfter: NaN, problems: [problem] };
}

/** "10 × 1001" or "8 × 1001, 2 × reset": outcomes counted. */
function summarize(outcomes: string[]): string {
  const counts = new Map<string, number>();
  for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
  return [...counts].map(([outcome, count]) => `${count} × ${outcome}`).join(", ") || "—";
}

async function orchestrate(): Promise<void> {
  deadline(scenarios.length * repeats * servers.length * (seconds + graceS + 60) * 1000);
  const table: { column: string; runs: Run[] }[] = [];
  for (const scenario of scenarios) {
    const results = await alternate(servers, repeats, (spec) => once(spec, scenario));
    for (const spec of servers) table.push({ column: `${spec.name}, ${scenario.hogs} × ${scenario.hogMiB} MiB`, runs: results.get(spec)! });
  }

  const m = machine();
  console.log(`Hogs (hardening item 7): ${clientCount} well-behaved clients × ${rate} echoes/s (${MESSAGE_BYTES} B), ` +
    `hogs sending ${hogSize} B messages without reading; backpressureLimit 16 MiB; median of ${repeats} × ${seconds} s; ` +
    describeMachine(m));
  const med = (pick: (r: Run) => number, digits = 0) => table.map(({ runs }) => fmt(median(runs.map(pick)), digits));
  const text = (pick: (r: Run) => string) => table.map(({ runs }) => mostCommon(runs.map(pick)));
  printTable(table.map((c) => c.column), [
    ["echoes/s before the hogs", ...med((r) => r.echoesPerSecBefore)],
    ["echoes/s after the hogs filled up", ...med((r) => r.echoesPerSecAfter)],
    ["echoes lost / sent", ...table.map(({ runs }) => `${fmt(median(runs.map((r) => r.lost)))} / ${fmt(median(runs.map((r) => r.sent)))}`)],
    ["most lost by one client", ...med((r) => r.maxLostPerClient)],
    ["bad echoes (content, order)", ...med((r) => r.bad)],
    ["well-behaved p99 after the hogs, ms", ...med((r) => r.goodP99MsAfter, 1)],
    ["hogs: MiB written (median)", ...med((r) => median(r.hogMiBWritten), 1)],
    ["hogs: s until done writing", ...med((r) => r.hogFillS, 2)],
    ["hogs at end of run (TCP)", ...text((r) => summarize(r.hogKernelStates))],
    ["hogs: first close frame", ...text((r) => summarize(r.hogCloseCodes))],
    ["well-behaved at stop", ...text((r) => summarize(r.goodAtStop))],
    ["server RSS peak, MiB (growth)", ...table.map(({ runs }) =>
      `${mib(median(runs.map((r) => r.peakRssKb)))} (+${mib(median(runs.map((r) => r.peakRssKb - r.baselineRssKb)))})`)],
    ["server exit after SIGTERM, ms", ...table.map(({ runs }) =>
      `${fmt(median(runs.map((r) => r.serverExitMs)))}${runs.some((r) => r.serverKilled) ? " (killed)" : ""}`)],
    ["sends dropped (hioload-ws stats)", ...med((r) => r.dropped)],
    ["send-pool chunks in use at stop / high water / of (hioload-ws)", ...table.map(({ runs }) =>
      [median(runs.map((r) => r.sendPoolInUse)), median(runs.map((r) => r.sendPoolHighWater)),
        median(runs.map((r) => r.sendPoolCapacity))].map((n) => fmt(n)).join(" / "))],
    ["problems", ...table.map(({ runs }) => [...new Set(runs.flatMap((r) => r.problems))].join("; ") || "none")],
  ]);
  console.log(JSON.stringify({
    bench: "hogs", machine: m,
    params: { seconds, repeats, hogSize, clients: clientCount, rate, messageBytes: MESSAGE_BYTES, grace: graceS, scenarios },
    runs: Object.fromEntries(table.map(({ column, runs }) => [column, runs])),
  }));
}

// ------------------------------------------------------------------ client side

/** A well-behaved client: numbered 64 B messages at `rate`/s, every echo checked. */
class EchoClient {
  sent = 0;
  received = 0;
  bad = 0;
  private lastSeq = -1;
  private readonly sentAt: number[] = [];
  raw!: RawClient;

  constructor(readonly id: number, private readonly onEcho: (latencyMs: number) => void) {}

  async open(port: number): Promise<void> {
    this.raw = await RawClient.open(port, { message: (opcode, data, start, end) => this.check(opcode, data, start, end) });
  }

  /** Sends what is due by `elapsedMs` since the start, in one write. */
  tick(elapsedMs: number): void {
    const due = Math.floor((elapsedMs / 1000) * rate) - this.sent;
    if (due <= 0) return;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < due; i++) frames.push(this.frame(this.sent + i));
    this.sent += due;
    const now = performance.now();
    for (let i = 0; i < due; i++) this.sentAt.push(now);
    this.raw.write(Buffer.concat(frames));
  }

  private frame(seq: number): Uint8Array {
    const payload = new Uint8Array(MESSAGE_BYTES);
    const view = new DataView(payload.buffer);
    view.setUint32(0, this.id);
    view.setUint32(4, seq);
    for (let i = 8; i < MESSAGE_BYTES; i++) payload[i] = (seq + i) & 0xff;
    return maskedFrame(OPCODE_BINARY, payload);
  }

  private check(opcode: number, data: Uint8Array, start: number, end: number): void {
    const view = new DataView(data.buffer, data.byteOffset + start, end - start);
    const seq = end - start === MESSAGE_BYTES ? view.getUint32(4) : -1;
    let ok = opcode === OPCODE_BINARY && seq > this.lastSeq && seq < this.sent && view.getUint32(0) === this.id;
    for (let i = 8; ok && i < MESSAGE_BYTES; i++) ok = data[start + i] === ((seq + i) & 0xff);
    if (!ok) {
      this.bad++;
      return;
    }
    this.lastSeq = seq;
    this.received++;
    this.onEcho(performance.now() - this.sentAt[seq]);
  }
}

/** Echoes per BIN_MS bin since the start, and latencies per bin. */
class Timeline {
  readonly echoes: number[] = [];
  readonly latencies: number[][] = [];
  private start = performance.now();

  /** Time 0 of the bins: the start of the traffic. */
  begin(): void {
    this.start = performance.now();
  }

  record(latencyMs: number): void {
    const bin = Math.floor((performance.now() - this.start) / BIN_MS);
    while (this.echoes.length <= bin) {
      this.echoes.push(0);
      this.latencies.push([]);
    }
    this.echoes[bin]++;
    this.latencies[bin].push(latencyMs);
  }

  /** Echoes per second over [fromS, toS). */
  rate(fromS: number, toS: number): number {
    const from = Math.floor((fromS * 1000) / BIN_MS);
    const to = Math.floor((toS * 1000) / BIN_MS);
    let count = 0;
    for (let bin = from; bin < to; bin++) count += this.echoes[bin] ?? 0;
    return to > from ? count / (((to - from) * BIN_MS) / 1000) : NaN;
  }

  p99(fromS: number, toS: number): number {
    const all: number[] = [];
    for (let bin = Math.floor((fromS * 1000) / BIN_MS); bin < Math.floor((toS * 1000) / BIN_MS); bin++) {
      for (const latency of this.latencies[bin] ?? []) all.push(latency);
    }
    all.sort((a, b) => a - b);
    return all.length === 0 ? NaN : all[Math.min(all.length - 1, Math.floor(all.length * 0.99))];
  }
}

/** A hog: writes its quota of echo requests as fast as the server reads them, never reads. */
class Hog {
  doneAtS = NaN;
  private lastWritten = 0;
  private lastProgressS = 0;
  raw!: RawClient;

  async open(port: number): Promise<void> {
    this.raw = await RawClient.open(port);
    this.raw.pause(); // from now on nothing is read: echoes pile up in the server
  }

  start(block: Uint8Array, bytes: number, startedS: number, clockS: () => number): void {
    this.lastProgressS = startedS;
    void this.raw.pump(block, bytes).then(() => (this.doneAtS = clockS()));
  }

  /** Time of the last write progress, for a hog the server stopped reading from. */
  progress(nowS: number): number {
    if (this.raw.bytesWritten !== this.lastWritten) {
      this.lastWritten = this.raw.bytesWritten;
      this.lastProgressS = nowS;
    }
    return Number.isNaN(this.doneAtS) ? this.lastProgressS : this.doneAtS;
  }

  get done(): boolean {
    return !Number.isNaN(this.doneAtS);
  }
}

async function runClient(port: number, scenario: Scenario): Promise<ClientResult> {
  const problems: string[] = [];
  const timeline = new Timeline();
  const good = Array.from({ length: clientCount }, (_, id) => new EchoClient(id, (ms) => timeline.record(ms)));
  const hogs = Array.from({ length: scenario.hogs }, () => new Hog());
  await Promise.all([...good.map((c) => c.open(port)), ...hogs.map((h) => h.open(port))]);
  // Phases are timed from when everyone is connected.
  const origin = performance.now();
  timeline.begin();
  const elapsedS = () => (performance.now() - origin) / 1000;

  const hogStartS = Math.max(1, 0.3 * seconds);
  const frame = maskedFrame(OPCODE_BINARY, new Uint8Array(hogSize).fill(0x68));
  const block = frameBlock(frame, Math.max(1, Math.floor((1 << 20) / frame.length)));
  const hogBytes = Math.ceil((scenario.hogMiB * (1 << 20)) / frame.length) * frame.length;
  let hogsStarted = false;
  let fillS = NaN;
  while (elapsedS() < seconds) {
    const now = elapsedS();
    for (const client of good) client.tick(now * 1000);
    if (!hogsStarted && now >= hogStartS) {
      hogsStarted = true;
      for (const hog of hogs) hog.start(block, hogBytes, now, elapsedS);
    }
    if (hogsStarted && Number.isNaN(fillS)) {
      const last = Math.max(...hogs.map((h) => h.progress(now)));
      // Done writing, or no hog has made progress for a second: the server stopped reading.
      if (hogs.every((h) => h.done || h.raw.ending !== "open") || now - last >= 1) fillS = last;
    }
    await Bun.sleep(10);
  }
  if (Number.isNaN(fillS)) fillS = Math.max(...hogs.map((h) => h.progress(elapsedS())));
  await Bun.sleep(graceS * 1000); // late echoes still count

  const afterStartS = Math.min(Math.max(fillS, hogStartS + 0.5), seconds - 0.5);
  const sent = good.reduce((sum, c) => sum + c.sent, 0);
  const received = good.reduce((sum, c) => sum + c.received, 0);
  const result: ClientResult = {
    sent, received, lost: sent - received,
    maxLostPerClient: Math.max(...good.map((c) => c.sent - c.received)),
    bad: good.reduce((sum, c) => sum + c.bad, 0),
    echoesPerSecBefore: timeline.rate(0.5, hogStartS),
    echoesPerSecAfter: timeline.rate(afterStartS, seconds),
    hogFillS: fillS - hogStartS,
    hogMiBWritten: hogs.map((h) => h.raw.bytesWritten / (1 << 20)),
    hogKernelStates: hogs.map((h) => h.raw.ending === "open" ? h.raw.kernelState() : `${h.raw.ending} (${h.raw.kernelState()})`),
    hogCloseCodes: [],
    goodAtStop: [],
    goodP99MsAfter: timeline.p99(afterStartS, seconds),
    problems,
  };
  if (fillS > seconds - 0.5) problems.push("hogs still writing at the end: 'after' is the last 0.5 s");

  // The server is stopped now: every well-behaved client should get its 1001.
  console.log("stop-now");
  await waitUntil(() => good.every((c) => c.raw.closeCode >= 0 || c.raw.ending !== "open"), CLOSE_WAIT_MS);
  result.goodAtStop = good.map((c) => c.raw.closeCode >= 0 ? String(c.raw.closeCode)
    : c.raw.ending === "open" ? "nothing (still open)" : `no close frame (${c.raw.ending})`);
  // Only now read what the hogs were sent: the first close frame says how they were closed.
  for (const hog of hogs) hog.raw.resume();
  await waitUntil(() => hogs.every((h) => h.raw.closeCode >= 0 || h.raw.ending !== "open"), HOG_READ_WAIT_MS);
  result.hogCloseCodes = hogs.map((h) => h.raw.closeCode >= 0 ? String(h.raw.closeCode)
    : h.raw.ending === "open" ? "none (still open)" : `none (${h.raw.ending})`);
  return result;
}

async function waitUntil(test: () => boolean, timeoutMs: number): Promise<void> {
  const deadlineAt = performance.now() + timeoutMs;
  while (!test() && performance.now() < deadlineAt) await Bun.sleep(20);
}

if (values.client !== undefined) {
  deadline((seconds + graceS + 40) * 1000);
  const result = await runClient(Number(values.client), { hogs: Number(values.hogs), hogMiB: Number(values["hog-mib"]) });
  console.log(`result ${JSON.stringify(result)}`);
  process.exit(0);
}
await orchestrate();
process.exit(0);
