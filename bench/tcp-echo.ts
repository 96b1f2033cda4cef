/**
 * Raw TCP echo: hioload-ws's io_uring transport against Bun.listen, measured in the same run.
 * Server pinned to CPU 0, load generator to CPU 1 (when there are two). The load generator
 * is the C wsload (../shared/tools/wsload.c or $WSLOAD_SRC, built with gcc) when available,
 * else this repository's TypeScript one (bench/tcp-load.ts).
 *
 *   bun bench/tcp-echo.ts [--seconds 3] [--repeats 3]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildWsload, pinned, repositoryRoot, twoCpus } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
  },
});
const root = repositoryRoot;
const pin = pinned;

const wsload = buildWsload();

interface Row { msgsPerSec: number; p50us: number; p99us: number }

async function load(port: number, conns: number, inflight: number, size: number): Promise<Row> {
  const seconds = values.seconds!;
  const cmd = wsload
    ? [wsload, "--port", String(port), "--conns", String(conns), "--size", String(size),
      "--inflight", String(inflight), "--seconds", seconds, "--warmup", "1", "--json", "--binary"]
    : [process.execPath, join(root, "bench/tcp-load.ts"), "--port", String(port), "--conns",
      String(conns), "--size", String(size), "--inflight", String(inflight), "--seconds", seconds,
      "--json"];
  const run = Bun.spawn(pin(1, cmd), { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(run.stdout).text();
  await run.exited;
  const json = JSON.parse(text.trim().split("\n").pop()!);
  if (wsload) {
    if (!json.ok || json.errors) throw new Error(`wsload reported errors: ${text}`);
    return { msgsPerSec: json.msgs_per_s, p50us: json.lat_us.p50, p99us: json.lat_us.p99 };
  }
  if (json.errors) throw new Error(`tcp-load reported errors: ${text}`);
  return json;
}

async function startServer(cmd: string[], port: number) {
  const server = Bun.spawn(pin(0, cmd), { stdout: "pipe", stderr: "inherit" });
  const reader = server.stdout.getReader();
  const { value } = await reader.read(); // the "listening" line
  if (!value) throw new Error(`server ${cmd.join(" ")} did not start`);
  reader.releaseLock();
  await Bun.sleep(100);
  return { server, port };
}

const servers = [
  { name: "hioload-ws io_uring", cmd: (port: number) => [process.execPath, join(root, "examples/tcp-echo.ts"), String(port)] },
  { name: "Bun.listen", cmd: (port: number) => [process.execPath, join(root, "bench/servers/bun-listen-echo.ts"), String(port)] },
];
const scenarios = [
  { label: "1 conn × 16 B", conns: 1, inflight: 1, size: 16 },
  { label: "100 conns × 16 B", conns: 100, inflight: 1, size: 16 },
  { label: "100 conns × 4 KiB × 4", conns: 100, inflight: 4, size: 4096 },
  { label: "10 conns × 64 KiB × 4", conns: 10, inflight: 4, size: 65536 },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = new Map<string, Row>();
// Both servers run for the whole benchmark (an idle one parks and costs nothing) and the
// repeats alternate between them, so a disturbance on the machine hits both alike.
const running = [];
let port = 19_100;
for (const server of servers) running.push(await startServer(server.cmd(++port), port));
try {
  for (const scenario of scenarios) {
    const rows: Row[][] = servers.map(() => []);
    for (let r = 0; r < Number(values.repeats); r++) {
      for (let i = 0; i < servers.length; i++) {
        rows[i].push(await load(running[i].port, scenario.conns, scenario.inflight, scenario.size));
      }
    }
    servers.forEach((server, i) => results.set(`${server.name}|${scenario.label}`, {
      msgsPerSec: median(rows[i].map((x) => x.msgsPerSec)),
      p50us: median(rows[i].map((x) => x.p50us)),
      p99us: median(rows[i].map((x) => x.p99us)),
    }));
  }
} finally {
  for (const { server } of running) {
    server.kill("SIGTERM");
    await server.exited;
  }
}

console.log(`TCP echo, echoed messages/s (median of ${values.repeats} × ${values.seconds} s), ` +
  `load generator: ${wsload ? "C wsload" : "bench/tcp-load.ts"}, ` +
  `${twoCpus ? "server on CPU 0, load on CPU 1" : "one CPU"}`);
console.log("| scenario | hioload-ws io_uring | Bun.listen | ratio | p99 µs (hioload / Bun) |");
console.log("|---|---:|---:|---:|---:|");
for (const scenario of scenarios) {
  const ours = results.get(`${servers[0].name}|${scenario.label}`)!;
  const peer = results.get(`${servers[1].name}|${scenario.label}`)!;
  console.log(`| ${scenario.label} | ${Math.round(ours.msgsPerSec).toLocaleString("en")} | ` +
    `${Math.round(peer.msgsPerSec).toLocaleString("en")} | ` +
    `${(ours.msgsPerSec / peer.msgsPerSec).toFixed(2)}× | ${ours.p99us} / ${peer.p99us} |`);
}
