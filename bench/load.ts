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
import type { TransportHandler } from "../src/api/transport.ts";
import { OPCODE_BINARY, OPCODE_TEXT, Role, type ProtocolError } from "../src/protocol/constants.ts";
import { FrameParser, type FrameSink } from "../src/protocol/frame-parser.ts";
import { writeFrame } from "../src/protocol/frame-writer.ts";
import { UringTransport } from "../src/reactor/uring-transport.ts";

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
const request = new TextEncoder().encode(`GET ${url.pathname}${url.search} HTTP/1.1\r\n` +
  `Host: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");

const slots = conns + 8;
const transport = new UringTransport({
  maxConnections: slots, recvBufferCount: 4096, recvBufferSize: Math.max(16384, Math.min(size + 14, 65536)),
  sendChunkSize: 65536, sendChunkCount: Math.max(256, Math.ceil((conns * inflight * (size + 14)) / 65536) * 2 + 64),
});
const parsers: FrameParser[] = [];
const handshaken = new Uint8Array(slots);
const handshakeText: string[] = new Array(slots).fill("");
const sentAt = new Float64Array(slots * inflight);
const sentCount = new Float64Array(slots);
const receivedCount = new Float64Array(slots);
const latencies = new Float64Array(1 << 20);
let latencyCount = 0;
let measuring = false;
let completed = 0;
let errors = 0;
let opened = 0;
let stopping = false;
let current = -1;

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

const sink: FrameSink = {
  onMessage(messageOpcode, data, start, end) {
    const conn = current;
    if (messageOpcode !== opcode || !sameBytes(data, start, end)) errors++;
    const round = receivedCount[conn]++;
    if (measuring) {
      completed++;
      if (latencyCount < latencies.length) {
        latencies[latencyCount++] = performance.now() - sentAt[conn * inflight + (round % inflight)];
      }
    }
    if (!stopping) sendOne(conn);
  },
  onPing() {},
  onPong() {},
  onClose() {
    if (!stopping) errors++;
  },
  onError(error: ProtocolError) {
    console.error("protocol error from server:", error.code);
    errors++;
  },
};

const handler: TransportHandler = {
  onOpen(conn) {
    transport.send(conn, request, 0, request.length);
  },
  onData(conn, data, start, end) {
    if (handshaken[conn] === 0) {
      handshakeText[conn] += Buffer.from(data.buffer, data.byteOffset + start, end - start).toString("latin1");
      const split = handshakeText[conn].indexOf("\r\n\r\n");
      if (split < 0) return;
      if (!handshakeText[conn].startsWith("HTTP/1.1 101")) {
        console.error("handshake refused:", handshakeText[conn].split("\r\n")[0]);
        errors++;
        return;
      }
      handshaken[conn] = 1;
      opened++;
      parsers[conn] = new FrameParser({ role: Role.Client, maxPayloadLength: size + 1024 });
      for (let i = 0; i < inflight; i++) sendOne(conn);
      const rest = Buffer.from(handshakeText[conn].slice(split + 4), "latin1");
      handshakeText[conn] = "";
      if (rest.length === 0) return;
      current = conn;
      parsers[conn].consume(rest, 0, rest.length, sink);
      return;
    }
    current = conn;
    parsers[conn].consume(data, start, end, sink);
  },
  onDrain() {},
  onEnd() {},
  onClose(_conn, reason) {
    if (!stopping) {
      console.error("connection closed during the run:", reason);
      errors++;
    }
  },
};

function rssKb(pid: string | undefined): number {
  if (!pid) return -1;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? -1);
}

const rssBefore = rssKb(values.pid);
const host = url.hostname === "localhost" ? "127.0.0.1" : url.hostname;
// Open in waves so the listener's backlog is never the bottleneck.
for (let i = 0; i < conns; i++) {
  transport.connect(host, Number(url.port || 80), handler);
  if (i % 256 === 255) await Bun.sleep(5);
}
const openDeadline = performance.now() + 30_000;
while (opened < conns && errors === 0 && performance.now() < openDeadline) await Bun.sleep(5);
if (opened < conns) throw new Error(`only ${opened}/${conns} connections opened (errors ${errors})`);
const rssOpen = rssKb(values.pid);

await Bun.sleep(Number(values.warmup) * 1000);
const cpuBefore = process.cpuUsage();
measuring = true;
const started = performance.now();
await Bun.sleep(Number(values.seconds) * 1000);
measuring = false;
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
stopping = true;
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
