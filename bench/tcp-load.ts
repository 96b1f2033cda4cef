/**
 * A raw TCP echo load generator on the project's own io_uring client side (CONNECT +
 * multishot RECV). Each connection keeps --inflight messages of --size bytes outstanding,
 * verifies every echoed byte, and records round-trip latency.
 *
 *   bun bench/tcp-load.ts --port 9001 --conns 100 --size 16 --inflight 1 --seconds 5 [--json]
 */
import { parseArgs } from "node:util";
import { UringTransport } from "../src/reactor/uring-transport.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "9001" },
    conns: { type: "string", default: "1" },
    size: { type: "string", default: "16" },
    inflight: { type: "string", default: "1" },
    seconds: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const conns = Number(values.conns);
const size = Number(values.size);
const inflight = Number(values.inflight);
const transport = new UringTransport({ maxConnections: conns + 16, recvBufferCount: 1024,
  sendChunkCount: Math.max(1024, conns * 4) });

// Every connection sends the same message; byte i of the stream must equal message[i % size].
const message = new Uint8Array(size);
for (let i = 0; i < size; i++) message[i] = (i * 31 + 7) & 0xff;
const offsets = new Float64Array(conns + 16); // bytes received so far, per connection
const sentAt = new Float64Array((conns + 16) * inflight); // per-connection ring of send times
const sentHead = new Int32Array(conns + 16);
let measuring = false;
let completed = 0;
let errors = 0;
const latencies: number[] = [];
let opened = 0;

function sendOne(conn: number) {
  const slot = conn * inflight + (sentHead[conn]++ % inflight);
  sentAt[slot] = performance.now();
  transport.send(conn, message, 0, size);
}

const handler = {
  onOpen(conn: number) {
    opened++;
    for (let i = 0; i < inflight; i++) sendOne(conn);
  },
  onData(conn: number, data: Uint8Array, start: number, end: number) {
    let offset = offsets[conn];
    for (let i = start; i < end; i++, offset++) {
      const position = offset % size;
      if (data[i] !== message[position]) errors++;
      if (position === size - 1) {
        const round = Math.floor(offset / size);
        const slot = conn * inflight + (round % inflight);
        if (measuring) {
          completed++;
          if ((completed & 15) === 0) latencies.push(performance.now() - sentAt[slot]);
        }
        sendOne(conn);
      }
    }
    offsets[conn] = offset;
  },
  onDrain() {},
  onEnd() {},
  onClose(_: number, reason: number) {
    if (reason < 0 && !stopping) errors++;
  },
};

let stopping = false;
for (let i = 0; i < conns; i++) transport.connect(values.host!, Number(values.port), handler);
const deadline = performance.now() + 10_000;
while (opened < conns && performance.now() < deadline) await Bun.sleep(5);
if (opened < conns) throw new Error(`only ${opened}/${conns} connections opened`);

await Bun.sleep(Number(values.warmup) * 1000);
measuring = true;
const started = performance.now();
await Bun.sleep(Number(values.seconds) * 1000);
measuring = false;
const elapsed = (performance.now() - started) / 1000;
stopping = true;

latencies.sort((a, b) => a - b);
const pick = (q: number) => (latencies.length ? latencies[Math.floor(q * (latencies.length - 1))] : 0);
const result = {
  conns, size, inflight,
  msgsPerSec: Math.round(completed / elapsed),
  mbPerSec: Math.round((completed * size) / elapsed / 1e6 * 10) / 10,
  p50us: Math.round(pick(0.5) * 1000),
  p99us: Math.round(pick(0.99) * 1000),
  errors,
};
if (values.json) console.log(JSON.stringify(result));
else console.log(result);
await transport.dispose();
process.exit(errors > 0 ? 1 : 0);
