/**
 * Connection churn (issue 18, "Churn"): --cycles connect → upgrade → one message echoed →
 * close cycles against hioload-ws in a child process, --parallel at a time, rotating
 * through four kinds: sync or async upgrade (`fetch` upgrading at once or after an await),
 * closed cleanly (close handshake, 1000) or abortively (the client drops the socket). After
 * a warm-up of --warmup cycles and again after the run (plus --settle s idle, a forced
 * collection in the server), it prints the server's RSS, descriptors, live connections,
 * receive/send pool slots in use, loans out and JS heap: churn must give everything back.
 *
 *   bun bench/churn.ts [--cycles 100000] [--parallel 64] [--warmup 2000] [--settle 2]
 *     [--backend io_uring]
 *
 * Exits non-zero when a cycle fails (no 101, no echo, wrong bytes) or when connections,
 * pool slots or loans are not back to the baseline at the end.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuModel } from "./support/report.ts";
import { deadline, LineReader, procStatusKb } from "./support/server-process.ts";
import { maskedFrame, RawClient } from "./support/ws-client.ts";
import { repositoryRoot } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    cycles: { type: "string", default: "100000" },
    parallel: { type: "string", default: "64" },
    warmup: { type: "string", default: "2000" },
    settle: { type: "string", default: "2" },
    backend: { type: "string", default: "io_uring" },
  },
});
const cycles = Number(values.cycles);
const parallel = Number(values.parallel);
deadline(20 * 60 * 1000);

const server = Bun.spawn(["/usr/bin/env", `HIOLOAD_BACKEND=${values.backend}`, process.execPath,
  join(repositoryRoot, "bench/servers/hioload-churn-echo.ts"), "0"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
process.on("exit", () => server.kill("SIGKILL"));
const output = new LineReader(server.stdout);
const ready = await output.wait(/listening on :\d+/, 15_000);
if (ready === null) throw new Error("the churn server did not start");
const port = Number(/:(\d+)/.exec(ready)![1]);

interface Snapshot { rssKib: number; fds: number; connections: number; recvInUse: number; sendInUse: number; loansOut: number; heapKib: number }

/** Asks the server for its stats line (after a forced collection) and reads the next one. */
async function snapshot(): Promise<Snapshot> {
  const seen = output.lines.length;
  server.stdin.write("stats\n");
  server.stdin.flush();
  const until = performance.now() + 10_000;
  while (performance.now() < until) {
    const line = output.lines.slice(seen).find((l) => l.startsWith("stats "));
    if (line !== undefined) {
      const stats = JSON.parse(line.slice(6));
      return {
        rssKib: procStatusKb(server.pid, "VmRSS"), fds: stats.fds, connections: stats.connections,
        recvInUse: stats.transport.recvBuffers.inUse, sendInUse: stats.transport.sendBuffers.inUse,
        loansOut: stats.transport.loansOut, heapKib: Math.round(stats.heapBytes / 1024),
      };
    }
    await Bun.sleep(20);
  }
  throw new Error("no stats line from the server");
}

const KINDS = ["sync, clean", "async, clean", "sync, abortive", "async, abortive"] as const;
const failures: string[] = [];
const done = new Array<number>(KINDS.length).fill(0);

/** One cycle; resolves when the client side is finished with it. */
async function cycle(index: number): Promise<void> {
  const kind = index % KINDS.length;
  const text = `churn ${index}`;
  let echoed: (ok: boolean) => void = () => {};
  const echo = new Promise<boolean>((resolve) => (echoed = resolve));
  const client = await RawClient.open(port, {
    message: (_opcode, data, start, end) => echoed(new TextDecoder().decode(data.subarray(start, end)) === text),
  }, 10_000, kind === 1 || kind === 3 ? "/async" : "/");
  client.write(maskedFrame(1, new TextEncoder().encode(text)));
  const ok = await Promise.race([echo, Bun.sleep(10_000).then(() => false)]);
  if (!ok) throw new Error(`cycle ${index} (${KINDS[kind]}): no echo, or the wrong bytes`);
  if (kind < 2) {
    client.sendClose(1000);
    const until = performance.now() + 10_000;
    while (client.ending === "open" && performance.now() < until) await Bun.sleep(1);
    if (client.closeCode !== 1000) throw new Error(`cycle ${index}: close answered with ${client.closeCode}`);
  } else {
    client.terminate();
  }
  done[kind]++;
}

async function run(count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count && failures.length < 10) {
      const index = next++;
      try {
        await cycle(index);
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return count / ((performance.now() - started) / 1000);
}

console.log(`churn: ${cycles} cycles, ${parallel} at a time, hioload-ws (${values.backend}); CPU: ${cpuModel()}, Bun ${Bun.version}`);
await run(Number(values.warmup));
await Bun.sleep(Number(values.settle) * 1000);
const before = await snapshot();
done.fill(0);
const rate = await run(cycles);
await Bun.sleep(Number(values.settle) * 1000);
const after = await snapshot();

const rows: [string, number, number][] = [
  ["RSS, KiB", before.rssKib, after.rssKib], ["JS heap after GC, KiB", before.heapKib, after.heapKib],
  ["descriptors", before.fds, after.fds], ["connections", before.connections, after.connections],
  ["receive buffers in use", before.recvInUse, after.recvInUse], ["send chunks in use", before.sendInUse, after.sendInUse],
  ["loans out", before.loansOut, after.loansOut],
];
console.log(`${Math.round(rate).toLocaleString("en-US")} cycles/s; ${KINDS.map((k, i) => `${k} ${done[i]}`).join(", ")}`);
console.log("| after the warm-up | before | after the run | change |\n|---|---:|---:|---:|");
for (const [name, a, b] of rows) console.log(`| ${name} | ${a.toLocaleString("en-US")} | ${b.toLocaleString("en-US")} | ${(b - a).toLocaleString("en-US")} |`);
for (const failure of failures) console.error(failure);
const leaked = after.connections !== 0 || after.recvInUse > before.recvInUse || after.sendInUse > before.sendInUse ||
  after.loansOut !== 0 || after.fds > before.fds;
if (leaked) console.error("churn: not back to the baseline");
server.kill("SIGTERM");
process.exit(failures.length > 0 || leaked ? 1 : 0);
