/**
 * Memory per idle WebSocket connection, each server in a fresh process per run: hioload-ws
 * on each backend (io_uring, epoll, bun; io_uring and epoll also with `shrinkWhenIdle`) and
 * Bun.serve, runs alternated between servers.
 * A run reads the server's RSS, opens --conns connections with the C wsload (upgrade, then
 * one 16 B message per connection every 100 s: idle), and reads the RSS again once all are
 * open ("open") and after --seconds of idleness ("settled": handshake garbage collected or
 * not, as a user's process would be). Prints the median and the range of the runs.
 *
 *   bun bench/idle-memory.ts [--conns 5000] [--repeats 3] [--seconds 3] [--servers "..."]
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { procStatusKb, spawnChild } from "./support/server-process.ts";
import { buildWsload, pinned, repositoryRoot } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    conns: { type: "string", default: "5000" },
    repeats: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    servers: { type: "string" },
  },
});
const conns = Number(values.conns);
const wsload = buildWsload();
if (wsload === undefined) {
  console.log("idle-memory: needs gcc and ../shared/tools/wsload.c (or $WSLOAD_SRC): nothing measured");
  process.exit(0);
}

interface Spec { name: string; cmd: string[] }
const echo = join(repositoryRoot, "examples/echo.ts");
const withBackend = (backend: string, shrink = false) => ["/usr/bin/env", `HIOLOAD_BACKEND=${backend}`,
  `SHRINK_WHEN_IDLE=${shrink ? 1 : 0}`, process.execPath, echo];
const specs: Spec[] = [
  { name: "hioload-ws (io_uring)", cmd: withBackend("io_uring") },
  { name: "hioload-ws (io_uring) shrinkWhenIdle", cmd: withBackend("io_uring", true) },
  { name: "hioload-ws (epoll)", cmd: withBackend("epoll") },
  { name: "hioload-ws (epoll) shrinkWhenIdle", cmd: withBackend("epoll", true) },
  { name: "hioload-ws (bun)", cmd: withBackend("bun") },
  { name: "Bun.serve", cmd: [process.execPath, join(repositoryRoot, "bench/servers/bun-serve-echo.ts")] },
].filter((s) => values.servers === undefined || values.servers.split(",").includes(s.name));

interface Sample { openKib: number; settledKib: number }

async function measure(spec: Spec, port: number): Promise<Sample> {
  const server = spawnChild(pinned(0, [...spec.cmd, String(port)]));
  try {
    const reader = server.stdout.getReader();
    const ready = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => null)]);
    if (ready === null || ready.value === undefined) throw new Error(`${spec.name} did not start`);
    reader.releaseLock();
    await Bun.sleep(500);
    // wsload reads VmRSS, which leaves out hugetlb pages (our pools when hugepages are
    // reserved): their growth over the run is added (pools do not shrink while idle).
    const hugeBefore = Math.max(0, procStatusKb(server.pid, "HugetlbPages"));
    const run = Bun.spawn(pinned(1, [wsload!, "--port", String(port), "--conns", String(conns),
      "--size", "16", "--inflight", "1", "--rate", "0.01", "--warmup", "0", "--seconds",
      values.seconds!, "--pid", String(server.pid), "--json"]), { stdout: "pipe", stderr: "pipe" });
    const text = await new Response(run.stdout).text();
    await run.exited;
    const json = JSON.parse(text.trim().split("\n").pop() ?? "{}");
    if (!json.ok || json.errors) throw new Error(`${spec.name}: load generator failed: ${text}`);
    const rss = json.server_rss_kb;
    const hugeGrowth = Math.max(0, procStatusKb(server.pid, "HugetlbPages")) - hugeBefore;
    return {
      openKib: (rss.open - rss.before + hugeGrowth) / conns, settledKib: (rss.end - rss.before + hugeGrowth) / conns,
    };
  } finally {
    server.kill("SIGKILL");
    await server.exited;
  }
}

const samples = new Map<string, Sample[]>(specs.map((s) => [s.name, []]));
let port = 19_700;
for (let repeat = 0; repeat < Number(values.repeats); repeat++) {
  for (const spec of specs) {
    samples.get(spec.name)!.push(await measure(spec, port++));
    console.error(`done: ${spec.name} run ${repeat + 1}`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cell = (xs: number[]) =>
  `${median(xs).toFixed(2)} KiB (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
console.log(`Idle connections: ${conns} per run, fresh server process per run, median (range) of ` +
  `${values.repeats} runs; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Bun ${Bun.version}`);
console.log("| server | RSS/conn, all open | RSS/conn, after " + values.seconds + " s idle |");
console.log("|---|---:|---:|");
for (const spec of specs) {
  const runs = samples.get(spec.name)!;
  console.log(`| ${spec.name} | ${cell(runs.map((r) => r.openKib))} | ${cell(runs.map((r) => r.settledKib))} |`);
}
