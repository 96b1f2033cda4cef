/**
 * WebSocket echo, side by side: hioload-ws (io_uring, epoll, bun backends), Bun.serve, and the `ws` package on Bun and on
 * Node. Every server runs for the whole benchmark, pinned to CPU 0 (the load generator to
 * CPU 1 when there are two); the repeats alternate between servers so a disturbance on the
 * machine hits them alike; the median of the repeats is shown, with ratios to Bun.serve.
 *
 *   bun bench/compare.ts [--seconds 3] [--repeats 3] [--idle 10000] [--only "16 B,4 KiB"]
 *
 * Rows without "binary" send text (the load generator's default, and what browsers' JSON
 * traffic is): the server hands each message to JS as a string and encodes the reply.
 *
 * Load generator: the C wsload (../shared/tools/wsload.c, or $WSLOAD_SRC, built with gcc)
 * when available, else bench/load.ts (this project's io_uring client side).
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildWsload, pinned, repositoryRoot, twoCpus } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
    idle: { type: "string", default: "10000" },
    only: { type: "string" },
    servers: { type: "string" },
  },
});
const root = repositoryRoot;
const pin = pinned;

const wsload = buildWsload();
const node = Bun.which("node");

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

interface ServerSpec { name: string; cmd: (port: number) => string[] }
const serverSpecs: ServerSpec[] = ([
  { name: "hioload-ws", cmd: (port) => [process.execPath, join(root, "examples/echo.ts"), String(port)] },
  // The same server on the other backends (what containers that forbid io_uring get, and
  // the portable path): the backend is chosen through HIOLOAD_BACKEND.
  { name: "hioload-ws (epoll)", cmd: (port) => ["/usr/bin/env", "HIOLOAD_BACKEND=epoll", process.execPath,
    join(root, "examples/echo.ts"), String(port)] },
  { name: "hioload-ws (bun)", cmd: (port) => ["/usr/bin/env", "HIOLOAD_BACKEND=bun", process.execPath,
    join(root, "examples/echo.ts"), String(port)] },
  { name: "Bun.serve", cmd: (port) => [process.execPath, join(root, "bench/servers/bun-serve-echo.ts"), String(port)] },
  { name: "ws (Bun)", cmd: (port) => [process.execPath, join(root, "bench/servers/ws-echo.mjs"), String(port)] },
  ...(node ? [{ name: "ws (Node)", cmd: (port: number) => [node, join(root, "bench/servers/ws-echo.mjs"), String(port)] }] : []),
] as ServerSpec[]).filter((s) => !values.servers || values.servers.split(",").includes(s.name));

interface Row { msgsPerSec: number; mbPerSec: number; p50us: number; p99us: number; rssOpenKb: number; rssBeforeKb: number }

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
  };
}

async function start(spec: ServerSpec, port: number) {
  const server = Bun.spawn(pin(0, spec.cmd(port)), { stdout: "pipe", stderr: "inherit" });
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  if (!value) throw new Error(`${spec.name} did not start`);
  reader.releaseLock();
  await Bun.sleep(200);
  return { spec, server, port };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

const running = [];
let nextPort = 19_300;
for (const spec of serverSpecs) running.push(await start(spec, nextPort++));
const results = new Map<string, Row>();
try {
  for (const scenario of scenarios) {
    const rows = running.map(() => [] as Row[]);
    for (let r = 0; r < Number(values.repeats); r++) {
      for (let i = 0; i < running.length; i++) {
        rows[i].push(await load(running[i].port, running[i].server.pid, scenario, values.seconds!));
      }
    }
    running.forEach(({ spec }, i) => results.set(`${spec.name}|${scenario.label}`, {
      msgsPerSec: median(rows[i].map((x) => x.msgsPerSec)), mbPerSec: median(rows[i].map((x) => x.mbPerSec)),
      p50us: median(rows[i].map((x) => x.p50us)), p99us: median(rows[i].map((x) => x.p99us)),
      rssOpenKb: 0, rssBeforeKb: 0,
    }));
    console.error(`done: ${scenario.label}`);
  }
  // Idle connections: RSS growth per open connection, each server measured on its own.
  const idle = Number(values.idle);
  if (idle > 0 && wsload) {
    for (const { spec, server, port } of running) {
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

const fmt = (n: number) => Math.round(n).toLocaleString("en");
console.log(`WebSocket echo, median of ${values.repeats} × ${values.seconds} s; load generator: ` +
  `${wsload ? "C wsload" : "bench/load.ts"}; ${twoCpus ? "server on CPU 0, load on CPU 1" : "one CPU"}; ` +
  `${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Bun ${Bun.version}${node ? `, Node ${process.versions.node ? Bun.spawnSync([node, "-v"]).stdout.toString().trim() : ""}` : ""}`);
const names = running.map((r) => r.spec.name);
console.log(`| scenario | ${names.join(" | ")} | hioload / Bun.serve |`);
console.log(`|---|${names.map(() => "---:").join("|")}|---:|`);
for (const scenario of scenarios) {
  const cells = names.map((name) => results.get(`${name}|${scenario.label}`)!);
  const big = scenario.size >= 65536;
  const show = (row: Row) => big ? `${fmt(row.mbPerSec)} MB/s` : `${fmt(row.msgsPerSec)} msg/s`;
  const ours = results.get(`hioload-ws|${scenario.label}`);
  const bun = results.get(`Bun.serve|${scenario.label}`);
  const ratio = ours && bun ? (big ? ours.mbPerSec / bun.mbPerSec : ours.msgsPerSec / bun.msgsPerSec).toFixed(2) + "×" : "—";
  console.log(`| ${scenario.label} | ${cells.map(show).join(" | ")} | ${ratio} |`);
  if (scenario.conns === 1) {
    console.log(`| ↳ p50 / p99 µs | ${cells.map((c) => `${c.p50us} / ${c.p99us}`).join(" | ")} | |`);
  }
}
if (results.has("hioload-ws|idle")) {
  const idle = Number(values.idle);
  const perConn = (name: string) => {
    const row = results.get(`${name}|idle`)!;
    return (row.rssOpenKb - row.rssBeforeKb) * 1024 / idle;
  };
  console.log(`| ${fmt(idle)} idle conns, RSS/conn | ${names.map((n) => `${(perConn(n) / 1024).toFixed(2)} KiB`).join(" | ")} | ` +
    `${(perConn("hioload-ws") / perConn("Bun.serve")).toFixed(2)}× |`);
}
