/**
 * Many concurrent WebSocket connections on one box (issue 18, "Scale"): --conns idle
 * connections spread over --servers hioload-ws processes and as many C wsload processes.
 * A process may hold 20,000 descriptors here (a hard limit threads cannot escape), and one
 * (source address, destination) pair has 28,232 ephemeral ports, so the servers listen on
 * --addresses loopback addresses (127.0.0.1, .2, ...), --servers / --addresses processes per
 * address sharing its port through SO_REUSEPORT, and load process i connects to the address
 * of server i. Each connection upgrades, then sends one 16 B message every 100 s (idle).
 *
 *   bun bench/scale.ts [--conns 100000] [--servers 8] [--addresses 8] [--backend io_uring]
 *     [--hold 25] [--settle 3]
 *
 * Prints, at 10%, 50% and 100% of --conns open (counted as the servers' descriptors beyond
 * their start), the elapsed time since the first connect, the handshake rate since the
 * previous mark and the servers' summed RSS growth per connection; then the same after
 * --settle s idle. Everything is killed at the end, however the bench ends.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuModel } from "./support/report.ts";
import { deadline, LineReader, procStatusKb, spawnChild } from "./support/server-process.ts";
import { buildWsload, repositoryRoot } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    conns: { type: "string", default: "100000" },
    servers: { type: "string", default: "8" },
    addresses: { type: "string", default: "8" },
    backend: { type: "string", default: "io_uring" },
    hold: { type: "string", default: "25" },
    settle: { type: "string", default: "3" },
    port: { type: "string", default: "19950" },
  },
});
const conns = Number(values.conns);
const serverCount = Number(values.servers);
const addresses = Number(values.addresses);
const holdSeconds = Number(values.hold);
const port = Number(values.port);
const wsload = buildWsload();
if (wsload === undefined) {
  console.log("scale: needs gcc and ../shared/tools/wsload.c (or $WSLOAD_SRC): nothing measured");
  process.exit(0);
}
if (conns / serverCount > 19_000) throw new Error("more than 19,000 connections per process: add --servers");
// connect(2) searches the ephemeral range for a free port: past about half of it full, each
// search gets slow (measured: 25,000 per address took 40 s to open, 12,500 took 6 s).
if (conns / addresses > 14_000) throw new Error("more than 14,000 connections per address: add --addresses");
deadline((holdSeconds + 120) * 1000);

const addressOf = (i: number) => `127.0.0.${1 + (i % addresses)}`;
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const servers: ReturnType<typeof spawnChild>[] = [];
for (let i = 0; i < serverCount; i++) {
  const child = spawnChild(["/usr/bin/env", `HIOLOAD_BACKEND=${values.backend}`, process.execPath,
    join(repositoryRoot, "bench/servers/hioload-transport-echo.ts"), String(port), "{}",
    JSON.stringify({ hostname: addressOf(i), reusePort: true, maxConnections: 20_000 })]);
  const ready = await new LineReader(child.stdout).wait(/listening on :\d+/, 20_000);
  if (ready === null) throw new Error(`server ${i} did not start`);
  servers.push(child);
}
await Bun.sleep(500);
const baseFds = servers.map((s) => fdCount(s.pid));
const baseRss = servers.map((s) => procStatusKb(s.pid, "VmRSS"));
const open = () => servers.reduce((sum, s, i) => sum + fdCount(s.pid) - baseFds[i], 0);
const rssGrowthKb = () => servers.reduce((sum, s, i) => sum + procStatusKb(s.pid, "VmRSS") - baseRss[i], 0);

console.log(`${conns} connections, ${serverCount} hioload-ws (${values.backend}) processes on ` +
  `${addresses} loopback addresses, ${serverCount} wsload processes; CPU: ${cpuModel()}, Bun ${Bun.version}`);
const started = performance.now();
const loads = Array.from({ length: serverCount }, (_, i) => spawnChild([wsload, "--host", addressOf(i),
  "--port", String(port), "--conns", String(Math.round(conns / serverCount)), "--size", "16",
  "--inflight", "1", "--rate", "0.01", "--warmup", "0", "--seconds", String(holdSeconds),
  "--max-connecting", "256", "--json"]));

const rows: string[] = ["| open | seconds | handshakes/s since the last row | server RSS growth | per connection |",
  "|---:|---:|---:|---:|---:|"];
let lastOpen = 0;
let lastAt = started;
const row = (label: string, count: number) => {
  const now = performance.now();
  const growth = rssGrowthKb();
  const rate = now > lastAt ? (count - lastOpen) / ((now - lastAt) / 1000) : 0;
  rows.push(`| ${label} | ${((now - started) / 1000).toFixed(1)} | ${Math.round(rate).toLocaleString("en-US")} | ` +
    `${(growth / 1024).toFixed(1)} MiB | ${(growth / Math.max(1, count)).toFixed(2)} KiB |`);
  lastOpen = count;
  lastAt = now;
};
const marks = [0.1, 0.5, 1].map((share) => Math.round(conns * share));
const holdUntil = started + holdSeconds * 1000;
let allOpen = false;
while (performance.now() < holdUntil - 1000) {
  const count = open();
  while (marks.length > 0 && count >= marks[0] * 0.999) row(marks.shift()!.toLocaleString("en-US"), count);
  if (marks.length === 0) {
    allOpen = true;
    break;
  }
  await Bun.sleep(100);
}
if (allOpen) {
  await Bun.sleep(Number(values.settle) * 1000);
  row(`${open().toLocaleString("en-US")}, ${values.settle} s idle`, open());
} else {
  rows.push(`| only ${open().toLocaleString("en-US")} open by the end of --hold (per process: ${servers.map((s, i) => fdCount(s.pid) - baseFds[i]).join(", ")}) | | | | |`);
}
const reports = await Promise.all(loads.map(async (load) => {
  const text = await new Response(load.stdout).text();
  await load.exited;
  try {
    return JSON.parse(text.trim().split("\n").pop() ?? "{}") as { ok?: boolean; errors?: number; connect_s?: number };
  } catch {
    return { ok: false };
  }
}));
console.log(rows.join("\n"));
const failed = reports.filter((r) => !r.ok || (r.errors ?? 0) > 0).length;
console.log(`load processes: ${reports.length - failed} ok, ${failed} with errors; ` +
  `connect time per process (s): ${reports.map((r) => r.connect_s?.toFixed(1) ?? "?").join(", ")}`);
for (const server of servers) server.kill("SIGTERM");
process.exit(failed > 0 || !allOpen ? 1 : 0);
