/**
 * A WebSocket echo load generator on this project's own io_uring client side (CONNECT,
 * multishot RECV, the frame codec in the client role, masked frames). Each connection
 * keeps --inflight messages of --size bytes outstanding; every echoed byte is verified.
 * Reports messages/s, MB/s, round-trip latency percentiles and the server's RSS (--pid).
 *
 *   bun bench/load.ts --url ws://127.0.0.1:9001 --conns 100 --size 16 --seconds 5
 *     [--inflight 1] [--warmup 1] [--binary] [--json] [--pid SERVER_PID]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { OPCODE_BINARY, OPCODE_TEXT } from "../src/protocol/constants.ts";
import { writeFrame } from "../src/protocol/frame-writer.ts";
import { UringTransport } from "../src/reactor/uring-transport.ts";
import { ClientConnections } from "./support/client-connections.ts";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:9001/" },
    conns: { type: "string", default: "1" },
    size: { type: "string", default: "16" },
    inflight: { type: "string", default: "1" },
    seconds: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    binary: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    pid: { type: "string" },
  },
});
const url = new URL(values.url!);
const conns = Number(values.conns);
const size = Number(values.size);
const inflight = Number(values.inflight);
const opcode = values.binary ? OPCODE_BINARY : OPCODE_TEXT;

// One payload and one masked frame shared by every connection (ASCII, so valid text too).
const payload = new Uint8Array(size);
for (let i = 0; i < size; i++) payload[i] = 0x21 + ((i * 7) % 90);
const frame = new Uint8Array(size + 14);
const frameLength = writeFrame(frame, 0, opcode, true, false, payload, 0, size, 0x1a2b3c4d);
const slots = conns + 8;
const transport = new UringTransport({
  maxConnections: slots, recvBufferCount: 4096, recvBufferSize: Math.max(16384, Math.min(size + 14, 65536)),
  sendChunkSize: 65536, sendChunkCount: Math.max(256, Math.ceil((conns * inflight * (size + 14)) / 65536) * 2 + 64),
});
const sentAt = new Float64Array(slots * inflight);
const sentCount = new Float64Array(slots);
const receivedCount = new Float64Array(slots);
const latencies = new Float64Array(1 << 20);
let latencyCount = 0;
let measuring = false;
let completed = 0;
let errors = 0;

function sendOne(conn: number) {
  sentAt[conn * inflight + (sentCount[conn]++ % inflight)] = performance.now();
  if (transport.send(conn, frame, 0, frameLength) < 0) errors++;
}

function sameBytes(data: Uint8Array, start: number, end: number): boolean {
  if (end - start !== size) return false;
  if (size < 64) {
    for (let i = 0; i < size; i++) if (data[start + i] !== payload[i]) return false;
    return true;
  }
  return Buffer.compare(Buffer.from(data.buffer, data.byteOffset + start, size), payload) === 0;
}

const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname;
const clients = new ClientConnections(transport, host, Number(url.port || 80),
  `${url.pathname}${url.search}`, size + 1024, {
    opened(conn) {
      for (let i = 0; i < inflight; i++) sendOne(conn);
    },
    message(conn, messageOpcode, data, start, end) {
      if (messageOpcode !== opcode || !sameBytes(data, start, end)) errors++;
      const round = receivedCount[conn]++;
      if (measuring) {
        completed++;
        if (latencyCount < latencies.length) {
          latencies[latencyCount++] = performance.now() - sentAt[conn * inflight + (round % inflight)];
        }
      }
      if (!clients.stopping) sendOne(conn);
    },
    failed(reason) {
      console.error(reason);
      errors++;
    },
  });

function rssKb(pid: string | undefined): number {
  if (!pid) return -1;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? -1);
}

const rssBefore = rssKb(values.pid);
await clients.connect(conns);
await clients.allOpen(conns);
const rssOpen = rssKb(values.pid);

await Bun.sleep(Number(values.warmup) * 1000);
const cpuBefore = process.cpuUsage();
measuring = true;
const started = performance.now();
await Bun.sleep(Number(values.seconds) * 1000);
measuring = false;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
clients.stopping = true;
const rssEnd = rssKb(values.pid);

const sorted = latencies.subarray(0, latencyCount).sort();
const percentile = (q: number) =>
  latencyCount === 0 ? 0 : Math.round(sorted[Math.min(latencyCount - 1, Math.floor(q * latencyCount))] * 1000 * 10) / 10;
const result = {
  ok: errors === 0,
  errors,
  conns, size, inflight, binary: values.binary,
  seconds: Math.round(elapsed * 1000) / 1000,
  msgs: completed,
  msgs_per_s: Math.round(completed / elapsed),
  MB_per_s: Math.round((completed * size) / elapsed / 1e5) / 10,
  lat_us: { p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), p999: percentile(0.999) },
  client_cpu_pct: Math.round(((cpu.user + cpu.system) / 1e6 / elapsed) * 1000) / 10,
  server_rss_kb: { before: rssBefore, open: rssOpen, end: rssEnd },
};
console.log(values.json ? JSON.stringify(result) : result);
await transport.dispose();
process.exit(errors === 0 ? 0 : 1);
