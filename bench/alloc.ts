/**
 * Steady-state echo allocates nothing that survives: the hioload-ws echo server runs in
 * this process, an external load generator drives it, and the JS heap is sampled with
 * `heapStats()` (bun:jsc) after a full `Bun.gc(true)`, once after connections are open and
 * warmed up and once after --messages more messages. Binary and text are run separately.
 *
 *   bun bench/alloc.ts [--messages 1000000] [--warmup 300000] [--window 20000]
 *                      [--conns 100] [--inflight 16] [--size 16]
 *
 * Exit 0 when, for both runs, the after-GC object count grew by less than 0.001 objects per
 * message; else 1 (also on a timeout: the whole script is bounded to 55 s).
 *
 * What is measured, and how the benchmark keeps itself out of it:
 * - The samples are taken synchronously inside the `message` handler when the message
 *   counter reaches a mark, so every sample sees the server in the same kind of state
 *   (connections open, messages in flight, one message being handled). The handler's own
 *   work between marks is `ws.send(m)`, a number increment and a comparison: no allocation.
 * - A sample keeps only numbers and the type table as one JSON string (heapStats' own result
 *   is a few hundred cells), so the `before` sample retained until the report adds about two
 *   cells to the later counts; it is left in, not corrected for.
 * - Garbage rate: `objectTypeCounts` counts every cell not yet swept, garbage included
 *   (`objectCount` counts only cells marked by the last GC), so its total over a short
 *   window without GC, minus what one heapStats() call itself allocates (calibrated), gives
 *   the objects allocated per message before collection. If a GC runs inside the window it
 *   is reported (the figure would be a lower bound).
 *
 * Load generator: the C wsload (../shared/tools/wsload.c, or $WSLOAD_SRC, built with gcc as
 * bench/compare.ts does) when available, else bench/load.ts. It verifies every echoed byte;
 * it runs pinned to the last CPU when there are two or more (this process is not pinned).
 */
import { heapStats } from "bun:jsc";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildWsload } from "./support/wsload.ts";
import { serve } from "../src/index.ts";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "1000000" },
    warmup: { type: "string", default: "300000" },
    window: { type: "string", default: "20000" },
    conns: { type: "string", default: "100" },
    inflight: { type: "string", default: "16" },
    size: { type: "string", default: "16" },
  },
});
const MESSAGES = Number(values.messages);
const WARMUP = Number(values.warmup);
// The garbage window opens at the end of the warm-up and must close before the halfway sample.
const WINDOW = Math.max(1, Math.min(Number(values.window), Math.floor(MESSAGES / 4)));
const CONNS = Number(values.conns);
const INFLIGHT = Number(values.inflight);
const SIZE = Number(values.size);
const THRESHOLD = 0.001; // after-GC objects per message
const DEADLINE_MS = 55_000;
const RUN_LIMIT_S = 25; // the load generator's own bound per run

const started = performance.now();
const deadline = setTimeout(() => {
  console.error(`alloc: no result within ${DEADLINE_MS / 1000} s; FAIL`);
  process.exit(1);
}, DEADLINE_MS);

const root = join(import.meta.dir, "..");
const cpuCount = cpus().length;

const wsload = buildWsload();

function loadCommand(port: number, binary: boolean): string[] {
  const common = ["--conns", String(CONNS), "--size", String(SIZE), "--inflight", String(INFLIGHT),
    "--seconds", String(RUN_LIMIT_S), "--warmup", "0", ...(binary ? ["--binary"] : [])];
  const cmd = wsload
    ? [wsload, "--port", String(port), ...common]
    : [process.execPath, join(root, "bench/load.ts"), "--url", `ws://127.0.0.1:${port}/`, ...common];
  return cpuCount >= 2 && Bun.which("taskset") ? ["taskset", "-c", String(cpuCount - 1), ...cmd] : cmd;
}

// ---- heap sampling ----

/** Every cell the heap holds, garbage not yet swept included. */
function cells(s: ReturnType<typeof heapStats>): number {
  let total = 0;
  const counts = s.objectTypeCounts;
  for (const type in counts) total += counts[type]!;
  return total;
}

/**
 * A full GC, then the heap's figures in a compact form: heapStats() returns a few hundred
 * cells (its type table), which would stay live until the report if kept as they are; the
 * type table is kept as one JSON string instead, so a retained sample costs a couple of cells.
 */
interface Sample { objectCount: number; heapSize: number; types: string }
function sampleAfterGC(): Sample {
  Bun.gc(true);
  const s = heapStats();
  return { objectCount: s.objectCount, heapSize: s.heapSize, types: JSON.stringify(s.objectTypeCounts) };
}

interface RunResult {
  label: string;
  messages: number;
  seconds: number;
  before: Sample; // at the end of the warm-up
  middle: number; // objectCount halfway (retaining `before`)
  after: Sample; // `messages` after `before` (retaining `before`)
  garbagePerMessage: number;
  gcInWindow: boolean;
}

// State the message handler touches: numbers only, and one function called at each mark.
let count = 0;
let nextMark = Number.POSITIVE_INFINITY;
let onMark: () => void = () => {};

const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  websocket: {
    message(ws, message) {
      ws.send(message);
      if (++count === nextMark) onMark();
    },
  },
});
await server.ready;
const backend = server.stats().backend;

// Warm the sampling code (heapStats' result structures, JSON) before any measured sample.
sampleAfterGC();
cells(heapStats());

async function run(label: string, binary: boolean): Promise<RunResult> {
  count = 0;
  let resolveDone!: (r: RunResult) => void;
  const done = new Promise<RunResult>((resolve) => (resolveDone = resolve));

  let before!: Sample;
  let middle = 0;
  let markCount = 0; // objectCount (cells marked by the last GC) when the window opened
  let windowStart = 0;
  let sampleCost = 0;
  let garbagePerMessage = 0;
  let gcInWindow = false;
  let t0 = 0;

  const atWarm = () => {
    Bun.gc(true); // a second full collection below: what the first leaves for later goes too
    before = sampleAfterGC();
    // What one heapStats() call plus its count allocate, measured without GC: the second
    // count sees the cells the first call and count made, and nothing else.
    const first = heapStats();
    const firstCells = cells(first);
    const second = heapStats();
    windowStart = cells(second);
    sampleCost = windowStart - firstCells;
    markCount = second.objectCount;
    nextMark = WARMUP + WINDOW;
    onMark = atWindowEnd;
    t0 = performance.now();
  };
  const atWindowEnd = () => {
    const end = heapStats(); // no GC: the window's garbage is still counted
    // objectCount changes only when a collection marks: if it moved, a GC ran in the window.
    gcInWindow = end.objectCount !== markCount;
    garbagePerMessage = (cells(end) - windowStart - sampleCost) / WINDOW;
    nextMark = WARMUP + Math.floor(MESSAGES / 2);
    onMark = atMiddle;
  };
  const atMiddle = () => {
    middle = sampleAfterGC().objectCount;
    nextMark = WARMUP + MESSAGES;
    onMark = atEnd;
  };
  const atEnd = () => {
    const seconds = (performance.now() - t0) / 1000;
    const after = sampleAfterGC();
    nextMark = Number.POSITIVE_INFINITY;
    onMark = () => {};
    resolveDone({ label, messages: MESSAGES, seconds, before, middle, after, garbagePerMessage, gcInWindow });
  };
  nextMark = WARMUP;
  onMark = atWarm;

  const load = Bun.spawn(loadCommand(server.port, binary), { stdout: "pipe", stderr: "pipe" });
  const output = Promise.all([new Response(load.stdout).text(), new Response(load.stderr).text()]);
  const outcome = await Promise.race([done, load.exited.then(() => null)]);
  if (outcome === null) {
    const [out, err] = await output;
    throw new Error(`${label}: the load generator exited (${load.exitCode}) after ${count} messages, ` +
      `before ${WARMUP + MESSAGES}:\n${err}${out}`);
  }
  load.kill("SIGTERM");
  await load.exited;
  return outcome;
}

const results: RunResult[] = [];
let failure: unknown;
try {
  results.push(await run(`binary ${SIZE} B`, true));
  results.push(await run(`text ${SIZE} B`, false));
} catch (error) {
  failure = error;
} finally {
  await server.stop("abort");
}
clearTimeout(deadline);
if (failure) {
  console.error(failure instanceof Error ? failure.message : failure);
  console.error("alloc: FAIL");
  process.exit(1);
}

// ---- report ----

const fmt = (n: number) => Math.round(n).toLocaleString("en");
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

console.log(`Steady-state echo, JS heap: hioload-ws server in this process (backend ` +
  `${backend}), ${CONNS} conns × ${INFLIGHT} in flight, ${fmt(WARMUP)} warm-up messages; ` +
  `load generator: ${wsload ? "C wsload" : "bench/load.ts"}` +
  `${cpuCount >= 2 ? ` on CPU ${cpuCount - 1}` : ""}; ${cpuCount} CPUs (${cpus()[0]?.model ?? "?"}), Bun ${Bun.version}`);
console.log("");
console.log("| run | messages | msg/s | objectCount after GC: before → halfway → after | " +
  "growth / message | heapSize before → after | allocated / message before GC |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
let pass = true;
const verdicts: string[] = [];
for (const r of results) {
  const growth = r.after.objectCount - r.before.objectCount;
  const perMessage = growth / r.messages;
  const ok = perMessage < THRESHOLD;
  pass &&= ok;
  console.log(`| ${r.label} | ${fmt(r.messages)} | ${fmt(r.messages / r.seconds)} | ` +
    `${fmt(r.before.objectCount)} → ${fmt(r.middle)} → ${fmt(r.after.objectCount)} | ` +
    `${perMessage.toFixed(6)} | ${kib(r.before.heapSize)} → ${kib(r.after.heapSize)} | ` +
    `${r.garbagePerMessage.toFixed(2)}${r.gcInWindow ? " (a GC ran in the window: lower bound)" : ""} |`);
  verdicts.push(`${r.label}: ${growth >= 0 ? "+" : ""}${growth} objects after ${fmt(r.messages)} messages ` +
    `(${perMessage.toFixed(6)}/message) ${ok ? "<" : "≥"} ${THRESHOLD}: ${ok ? "PASS" : "FAIL"}`);
}
console.log("(the halfway and after counts include the benchmark's own retained `before` sample: an object and a string)");

console.log("");
console.log("Object types whose after-GC count changed most (after − before):");
for (const r of results) {
  const b = JSON.parse(r.before.types) as Record<string, number>;
  const a = JSON.parse(r.after.types) as Record<string, number>;
  const deltas: [string, number][] = [];
  for (const t of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (a[t] ?? 0) - (b[t] ?? 0);
    if (d !== 0) deltas.push([t, d]);
  }
  deltas.sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  const grew = deltas.filter(([, d]) => d > 0).slice(0, 6);
  const shrank = deltas.filter(([, d]) => d < 0).slice(-3);
  const show = (list: [string, number][]) => list.map(([t, d]) => `${t} ${d > 0 ? "+" : ""}${d}`).join(", ");
  console.log(`  ${r.label}: grew: ${grew.length ? show(grew) : "none"}; shrank: ${shrank.length ? show(shrank) : "none"}`);
}
console.log("");
console.log("Allocated before GC: a binary message is handed to the handler as a Uint8Array view " +
  "(one per message) and a text message as a string; both are garbage once the handler returns. " +
  "The claim is that nothing survives: the after-GC count stays flat.");
for (const v of verdicts) console.log(v);
console.log(`${pass ? "PASS" : "FAIL"} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
process.exit(pass ? 0 : 1);
