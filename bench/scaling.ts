/**
 * Threads-per-core scaling: examples/echo.ts with THREADS=1..N (one pinned io_uring reactor
 * per CPU), driven by the C wsload (unpinned: on a small box it competes with the server,
 * which the table says). Prints msgs/s per thread count for 16 B and 4 KiB messages.
 *
 *   bun bench/scaling.ts [--max N] [--seconds 3] [--conns 200]
 */
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildWsload } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    max: { type: "string", default: String(cpus().length) },
    seconds: { type: "string", default: "3" },
    conns: { type: "string", default: "200" },
  },
});
const root = join(import.meta.dir, "..");
const wsload = buildWsload();
if (wsload === undefined) throw new Error("scaling needs gcc and wsload.c (see bench/support/wsload.ts)");

const scenarios = [
  { label: "16 B × 16 in flight", args: ["--size", "16", "--inflight", "16"] },
  { label: "4 KiB × 4 in flight", args: ["--size", "4096", "--inflight", "4", "--binary"] },
];
const rows: string[] = [];
for (let threads = 1; threads <= Number(values.max); threads++) {
  const port = 19_500 + threads;
  const server = Bun.spawn([process.execPath, join(root, "examples/echo.ts"), String(port)],
    { env: { ...process.env, THREADS: String(threads) }, stdout: "pipe", stderr: "inherit" });
  const reader = server.stdout.getReader();
  await reader.read(); // the banner: every worker listens
  reader.releaseLock();
  const cells = [];
  for (const scenario of scenarios) {
    const run = Bun.spawnSync([wsload, "--port", String(port), "--conns", values.conns!,
      "--seconds", values.seconds!, "--warmup", "1", "--json", ...scenario.args]);
    const json = JSON.parse(run.stdout.toString().trim().split("\n").pop()!);
    if (!json.ok) throw new Error(`wsload failed: ${run.stdout}`);
    cells.push(Math.round(json.msgs_per_s).toLocaleString("en"));
  }
  server.kill("SIGTERM");
  await server.exited;
  rows.push(`| ${threads} | ${cells.join(" | ")} |`);
}
console.log(`threads-per-core scaling, ${cpus().length} CPUs (${cpus()[0]?.model}), ` +
  `${values.conns} connections, wsload unpinned (shares the CPUs)`);
console.log(`| threads | ${scenarios.map((s) => s.label).join(" | ")} |`);
console.log(`|---:|${scenarios.map(() => "---:").join("|")}|`);
for (const row of rows) console.log(row);
