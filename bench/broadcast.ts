/**
 * Broadcast (fan-out) benchmark: hioload-ws vs Bun.serve relaying every message to every
 * socket. One of --receivers connections sends; the server sends each message to all of them
 * (the sender included). The sender keeps --window broadcasts in flight: it sends the next
 * one when some earlier one has reached every receiver, so no queue grows without bound.
 * Every delivered message is checked (length, per-receiver order, content). Server on CPU 0,
 * this client on CPU 1 when there are two. Reports delivered MB/s, broadcasts/s and the
 * server's CPU time per GB delivered (on 2 CPUs this client, which receives and checks every
 * copy, is usually the bottleneck, so the CPU column is the one that compares servers),
 * medians of alternated repeats:
 *
 *   bun bench/broadcast.ts [--receivers 50] [--size 65536] [--window 4] [--seconds 3] [--repeats 3]
 *                          [--servers "hioload-ws (publish),Bun.serve (publish)"] [--threads 0]
 *
 * --threads N runs the hioload-ws publish server with `threads: N` (pub/sub then crosses
 * workers: the receivers land on every worker; the send loop stays on one thread). That
 * server is then not pinned to CPU 0: its workers pin themselves to CPUs 0..N-1, so on 2
 * CPUs the client on CPU 1 shares it with worker 1.
 *
 * Both servers run twice: with a ws.send loop over every socket (hioload-ws queues a
 * received message of 16 KiB or more once as a loan for every socket) and with pub/sub
 * (every socket subscribed to one topic; the sender publishes and sends itself a copy).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { OPCODE_BINARY } from "../src/protocol/constants.ts";
import { writeFrame } from "../src/protocol/frame-writer.ts";
import { UringTransport } from "../src/reactor/uring-transport.ts";
import { ClientConnections } from "./support/client-connections.ts";
import { pinned, repositoryRoot } from "./support/wsload.ts";

const { values } = parseArgs({
  options: {
    receivers: { type: "string", default: "50" },
    size: { type: "string", default: "65536" },
    window: { type: "string", default: "4" },
    seconds: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
    servers: { type: "string" }, // a comma-separated subset of the server names below
    threads: { type: "string", default: "0" }, // hioload-ws servers: serve({ threads })
    client: { type: "string" }, // internal: run the client against this port
  },
});
const receivers = Number(values.receivers);
const size = Number(values.size);
const windowSize = Number(values.window);
const seconds = Number(values.seconds);
const threads = Number(values.threads);

if (values.client !== undefined) {
  console.log(JSON.stringify(await runClient(Number(values.client))));
  process.exit(0);
}

interface Row {
  mbPerSec: number;
  broadcastsPerSec: number;
  errors: number;
  /** Filled by the orchestrator: server CPU time during the measurement, per GB delivered. */
  serverCpuMsPerGB?: number;
  /** The same per million deliveries (messages), the figure for small messages. */
  serverCpuMsPerMillion?: number;
}

/** utime + stime of a process, in ms (from /proc; clock ticks are 100 Hz on Linux). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
/** `threaded`: the server takes --threads (and then runs unpinned: its workers pin themselves). */
interface ServerSpec { name: string; cmd: (port: number) => string[]; threaded?: boolean }
const servers: ServerSpec[] = ([
  // A send loop reaches its own worker's sockets only: always one thread.
  { name: "hioload-ws (send loop)", cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/hioload-broadcast.ts"), String(port), "loop", "0"] },
  { name: "hioload-ws (publish)", threaded: true, cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/hioload-broadcast.ts"), String(port), "publish", String(threads)] },
  { name: "Bun.serve (send loop)", cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/bun-serve-broadcast.ts"), String(port), "loop"] },
  { name: "Bun.serve (publish)", cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/bun-serve-broadcast.ts"), String(port), "publish"] },
] as ServerSpec[]).filter((s) => values.servers === undefined || values.servers.split(",").includes(s.name));

const results = new Map<string, Row[]>();
let port = 19_500;
for (let repeat = 0; repeat < Number(values.repeats); repeat++) {
  for (const spec of servers) {
    const cmd = spec.cmd(port);
    const server = Bun.spawn(spec.threaded && threads > 0 ? cmd : pinned(0, cmd), { stdout: "pipe", stderr: "inherit" });
    const reader = server.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    await Bun.sleep(200);
    const client = Bun.spawn(pinned(1, [process.execPath, import.meta.path, "--client", String(port),
      "--receivers", String(receivers), "--size", String(size), "--window", String(windowSize),
      "--seconds", String(seconds)]), { stdout: "pipe", stderr: "inherit" });
    // The client says when its measurement starts and ends: the server's CPU is read then,
    // so its start-up (JIT compilation for a JS server) is not charged to the traffic.
    let text = "";
    let cpuAtStart = 0;
    let serverCpu = 0;
    const decoder = new TextDecoder();
    for await (const chunk of client.stdout) {
      const before = text.length;
      text += decoder.decode(chunk);
      if (text.indexOf("measure: start\n", Math.max(0, before - 20)) >= 0 && cpuAtStart === 0) {
        cpuAtStart = cpuMs(server.pid);
      }
      if (text.indexOf("measure: end\n", Math.max(0, before - 20)) >= 0 && serverCpu === 0) {
        serverCpu = cpuMs(server.pid) - cpuAtStart;
      }
    }
    await client.exited;
    server.kill("SIGTERM");
    await server.exited;
    const row = JSON.parse(text.trim().split("\n").pop() ?? "{}") as Row;
    if (row.errors !== 0) throw new Error(`${spec.name}: ${row.errors} errors`);
    row.serverCpuMsPerGB = serverCpu / ((row.mbPerSec * seconds) / 1000);
    row.serverCpuMsPerMillion = serverCpu / ((row.mbPerSec * 1e6 / size) * seconds / 1e6);
    results.set(spec.name, [...(results.get(spec.name) ?? []), row]);
    port++;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`Broadcast: ${receivers} receivers × ${size} B, ${windowSize} in flight, median of ` +
  `${values.repeats} × ${seconds} s${threads > 0 ? `, hioload-ws with threads: ${threads}` : ""}`);
console.log("| server | deliveries/s | delivered MB/s | broadcasts/s | server CPU ms per million deliveries | per GB |");
console.log("|---|---:|---:|---:|---:|---:|");
const fmt = (n: number) => Math.round(n).toLocaleString("en");
for (const spec of servers) {
  const rows = results.get(spec.name)!;
  const mb = median(rows.map((r) => r.mbPerSec));
  const count = median(rows.map((r) => r.broadcastsPerSec));
  console.log(`| ${spec.name} | ${fmt(mb * 1e6 / size)} | ${fmt(mb)} | ${fmt(count)} | ` +
    `${fmt(median(rows.map((r) => r.serverCpuMsPerMillion!)))} | ${fmt(median(rows.map((r) => r.serverCpuMsPerGB!)))} |`);
}

/** The client side: `receivers` connections, connection 0 sending. */
async function runClient(serverPort: number): Promise<Row> {
  const transport = new UringTransport({
    maxConnections: receivers + 8, recvBufferCount: 4096, recvBufferSize: 65536,
    sendChunkSize: 65536, sendChunkCount: 256,
  });
  const payload = new Uint8Array(size);
  for (let i = 4; i < size; i++) payload[i] = (i * 13) & 0xff;
  const frame = new Uint8Array(size + 14);
  const expected = new Float64Array(receivers + 8);
  const arrivals = new Int32Array(windowSize);
  let errors = 0;
  let nextSeq = 0;
  let completedBroadcasts = 0;
  let delivered = 0;
  let measuring = false;
  let sender = -1;

  const send = () => {
    const view = new DataView(payload.buffer);
    view.setUint32(0, nextSeq++);
    const length = writeFrame(frame, 0, OPCODE_BINARY, true, false, payload, 0, size, 0x5a5a1234);
    if (transport.send(sender, frame, 0, length) < 0) errors++;
  };
  const clients = new ClientConnections(transport, "127.0.0.1", serverPort, "/", size + 1024, {
    opened() {},
    message(conn, opcode, data, start, end) {
      const seq = new DataView(data.buffer, data.byteOffset + start, 4).getUint32(0);
      if (opcode !== OPCODE_BINARY || end - start !== size || seq !== expected[conn]++ ||
        Buffer.compare(Buffer.from(data.buffer, data.byteOffset + start + 4, size - 4),
          Buffer.from(payload.buffer, 4, size - 4)) !== 0) {
        errors++;
      }
      if (measuring) delivered++;
      const slot = seq % windowSize;
      if (++arrivals[slot] === receivers) {
        arrivals[slot] = 0;
        if (measuring) completedBroadcasts++;
        if (!clients.stopping) send();
      }
    },
    failed(reason) {
      console.error(reason);
      errors++;
    },
  });
  sender = (await clients.connect(receivers))[0];
  await clients.allOpen(receivers, 20_000);
  await Bun.sleep(200); // every server has registered every socket
  for (let i = 0; i < windowSize; i++) send();
  await Bun.sleep(1000); // warm-up
  console.log("measure: start");
  measuring = true;
  const started = performance.now();
  await Bun.sleep(seconds * 1000);
  measuring = false;
  console.log("measure: end");
  const elapsed = (performance.now() - started) / 1000;
  clients.stopping = true;
  await transport.dispose();
  return {
    mbPerSec: (delivered * size) / elapsed / 1e6,
    broadcastsPerSec: completedBroadcasts / elapsed,
    errors,
  };
}
