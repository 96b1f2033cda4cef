/**
 * The load generator of bench/deflate-echo.ts: WebSocket clients on plain `Bun.connect`
 * sockets that offer permessage-deflate and cost the server as much, and themselves as
 * little, as possible.
 *
 *   bun bench/support/deflate-load.ts --port P [--conns 100] [--inflight 4] [--seconds 2]
 *     [--warmup 0.5] [--plain] [--idle --exchange 4]
 *
 * - The upgrade offers `permessage-deflate; client_max_window_bits` (--plain: nothing).
 * - Every distinct message (64 JSON-like texts of 4 KiB) is compressed ONCE, on its own
 *   (deflateRawSync, zlib's default level as browsers use, Z_SYNC_FLUSH, the 00 00 ff ff tail
 *   stripped, RSV1 set): a message that needs no earlier one is valid whatever context
 *   takeover was agreed. Each is masked once too; the frames sit back to back in a ring
 *   written twice over, so k frames in a row are one subarray and one write, forever.
 * - Replies are parsed for their frame headers only: messages are counted, compressed ones
 *   (RSV1) and their payload bytes too, never inflated — except the very first reply of the
 *   first connection, which is inflated once and must give back the text sent.
 * - Throughput: `--inflight` messages per connection are kept outstanding (a reply sends the
 *   next). After --warmup s it prints `measure: start`, after --seconds more `measure: end`
 *   (the orchestrator reads the server's CPU time at those lines), then one JSON line.
 * - --idle: every connection sends --exchange messages one at a time, then nothing; once all
 *   have their replies it prints `exchanged {json}` and keeps the sockets open until killed.
 */
import type { Socket } from "bun";
import { parseArgs } from "node:util";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { jsonFeed } from "./json-feed.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    conns: { type: "string", default: "100" },
    inflight: { type: "string", default: "4" },
    seconds: { type: "string", default: "2" },
    warmup: { type: "string", default: "0.5" },
    size: { type: "string", default: "4096" },
    plain: { type: "boolean", default: false },
    idle: { type: "boolean", default: false },
    exchange: { type: "string", default: "4" },
  },
});
const port = Number(values.port);
const host = values.host!;
const connCount = Number(values.conns);
const inflight = values.idle ? 1 : Number(values.inflight);
const plain = values.plain!;
const exchange = Number(values.exchange);
const MESSAGE_BYTES = Number(values.size);
const DISTINCT = 64;
const MASK = [0x5a, 0x17, 0xc3, 0xe9];

const messages = jsonFeed(DISTINCT, MESSAGE_BYTES);

/** One masked text frame; RSV1 when `compressed`. */
function maskedFrame(payload: Uint8Array, compressed: boolean): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = new Uint8Array(head + 4 + n);
  frame[0] = 0x81 | (compressed ? 0x40 : 0);
  if (n < 126) frame[1] = 0x80 | n;
  else if (n < 65536) {
    frame[1] = 0x80 | 126;
    frame[2] = n >> 8;
    frame[3] = n & 255;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(n));
  }
  frame.set(MASK, head);
  for (let i = 0; i < n; i++) frame[head + 4 + i] = payload[i] ^ MASK[i & 3];
  return frame;
}

/** The frames of every message, twice over, and where each starts (2 × DISTINCT + 1 offsets). */
interface Ring { bytes: Uint8Array; offsets: number[]; wireBytesPerMessage: number }
const rings = new Map<number, Ring>();
function ring(windowBits: number): Ring {
  let made = rings.get(windowBits);
  if (made !== undefined) return made;
  const frames = messages.map((text) => {
    if (plain) return maskedFrame(text, false);
    const deflated = deflateRawSync(text, { finishFlush: constants.Z_SYNC_FLUSH, windowBits: Math.max(9, windowBits) });
    const tail = deflated.length - 4;
    if (deflated[tail] !== 0 || deflated[tail + 1] !== 0 || deflated[tail + 2] !== 0xff || deflated[tail + 3] !== 0xff) {
      throw new Error("deflateRawSync did not end with an empty stored block");
    }
    return maskedFrame(deflated.subarray(0, tail), true);
  });
  const total = frames.reduce((sum, f) => sum + f.length, 0);
  const bytes = new Uint8Array(2 * total);
  const offsets = [0];
  for (let copy = 0; copy < 2; copy++) {
    for (const frame of frames) {
      bytes.set(frame, offsets[offsets.length - 1]);
      offsets.push(offsets[offsets.length - 1] + frame.length);
    }
  }
  made = { bytes, offsets, wireBytesPerMessage: total / DISTINCT };
  rings.set(windowBits, made);
  return made;
}

const request = new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
  "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
  (plain ? "" : "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n") + "\r\n");

class Conn {
  socket: Socket<Conn> | null = null;
  ring: Ring | null = null;
  /** Index (0..DISTINCT-1) of the next message to send. */
  next = 0;
  sent = 0;
  received = 0;
  pending: Uint8Array | null = null;
  head = "";
  /** Frame header bytes seen so far when one is split across reads. */
  readonly header = new Uint8Array(14);
  headerLength = 0;
  /** Payload bytes of the current frame still to come. */
  need = 0;
  fin = false;
  opcode = 0;
  /** RSV1 of the message being received (set on its first frame). */
  compressed = false;
  capture: number[] | null = null;
  constructor(readonly id: number) {}
}

const conns: Conn[] = [];
let opened = 0;
let totalReceived = 0;
let compressedReceived = 0;
let payloadReceived = 0;
let failures = 0;
let firstFailure = "";
let stopping = false;
let verified: boolean | null = null;
let verifyNote = "";
let extensionResponse = "";

function fail(reason: string): void {
  if (stopping) return;
  failures++;
  if (firstFailure === "") firstFailure = reason;
}

function write(conn: Conn, bytes: Uint8Array): void {
  if (conn.pending !== null) {
    const joined = new Uint8Array(conn.pending.length + bytes.length);
    joined.set(conn.pending);
    joined.set(bytes, conn.pending.length);
    conn.pending = joined;
    return;
  }
  const written = conn.socket!.write(bytes);
  if (written < bytes.length) conn.pending = bytes.slice(Math.max(0, written));
}

/** Sends the next `count` messages of `conn` (writes of up to DISTINCT frames each). */
function sendMessages(conn: Conn, count: number): void {
  const { bytes, offsets } = conn.ring!;
  while (count > 0) {
    const k = Math.min(count, DISTINCT);
    write(conn, bytes.subarray(offsets[conn.next], offsets[conn.next + k]));
    conn.next = (conn.next + k) % DISTINCT;
    conn.sent += k;
    count -= k;
  }
}

function verify(conn: Conn): void {
  const payload = Uint8Array.from(conn.capture!);
  conn.capture = null;
  let text: Uint8Array;
  try {
    text = conn.compressed
      ? inflateRawSync(Buffer.concat([payload, Uint8Array.of(0, 0, 0xff, 0xff)]), { finishFlush: constants.Z_SYNC_FLUSH })
      : payload;
  } catch (error) {
    verified = false;
    verifyNote = `the first reply does not inflate: ${(error as Error).message}`;
    return;
  }
  verified = Buffer.compare(Buffer.from(text), Buffer.from(messages[0])) === 0;
  verifyNote = `${conn.compressed ? "compressed" : "uncompressed"} first reply, ${payload.length} B on the wire`;
  if (!verified) verifyNote += ", NOT the text sent";
}

/** Frames in `data`: returns how many whole messages it completed. */
function consume(conn: Conn, data: Uint8Array): number {
  let completed = 0;
  let i = 0;
  const n = data.length;
  while (i < n) {
    if (conn.need > 0) {
      const take = Math.min(conn.need, n - i);
      if (conn.capture !== null) for (let j = 0; j < take; j++) conn.capture.push(data[i + j]);
      i += take;
      conn.need -= take;
      payloadReceived += take;
      if (conn.need === 0) completed += frameDone(conn);
      continue;
    }
    // A frame header: straight from `data` when it is all there, else gathered in conn.header.
    let src = data;
    let at = i;
    let available = n - i;
    if (conn.headerLength > 0 || available < 2 || available < headerSize(data[i + 1])) {
      while (i < n && (conn.headerLength < 2 || conn.headerLength < headerSize(conn.header[1]))) {
        conn.header[conn.headerLength++] = data[i++];
      }
      if (conn.headerLength < 2 || conn.headerLength < headerSize(conn.header[1])) return completed;
      src = conn.header;
      at = 0;
      available = conn.headerLength;
      conn.headerLength = 0;
    }
    const b0 = src[at];
    const b1 = src[at + 1];
    if (b1 & 0x80) {
      fail("the server masked a frame");
      return completed;
    }
    const len7 = b1 & 127;
    let length = len7;
    let size = 2;
    if (len7 === 126) {
      length = (src[at + 2] << 8) | src[at + 3];
      size = 4;
    } else if (len7 === 127) {
      length = (src[at + 6] * 2 ** 24) + ((src[at + 7] << 16) | (src[at + 8] << 8) | src[at + 9]);
      size = 10;
    }
    if (src === data) i += size;
    conn.fin = (b0 & 0x80) !== 0;
    conn.opcode = b0 & 0x0f;
    if (conn.opcode !== 0 && conn.opcode < 8) conn.compressed = (b0 & 0x40) !== 0;
    conn.need = length;
    if (length === 0) completed += frameDone(conn);
  }
  return completed;
}

function headerSize(b1: number): number {
  const len7 = b1 & 127;
  return len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
}

/** The current frame ended: 1 when it ended a data message. */
function frameDone(conn: Conn): number {
  if (conn.opcode >= 8) {
    if (conn.opcode === 8) fail("the server sent a close frame");
    return 0;
  }
  if (!conn.fin) return 0;
  if (conn.capture !== null) verify(conn);
  conn.received++;
  totalReceived++;
  if (conn.compressed) compressedReceived++;
  return 1;
}

function onHandshake(conn: Conn, chunk: Uint8Array): void {
  const text = conn.head + Buffer.from(chunk).toString("latin1");
  const split = text.indexOf("\r\n\r\n");
  if (split < 0) {
    conn.head = text;
    return;
  }
  conn.head = "";
  if (!text.startsWith("HTTP/1.1 101")) {
    fail(`handshake refused: ${text.split("\r\n")[0]}`);
    return;
  }
  const extensions = /^sec-websocket-extensions:\s*(.*)$/im.exec(text.slice(0, split))?.[1]?.trim() ?? "";
  if (conn.id === 0) extensionResponse = extensions;
  if (!plain && !/permessage-deflate/i.test(extensions)) {
    fail("permessage-deflate was not negotiated");
    return;
  }
  const bits = /client_max_window_bits=(\d+)/i.exec(extensions);
  conn.ring = ring(bits ? Number(bits[1]) : 15);
  opened++;
  const rest = Buffer.from(text.slice(split + 4), "latin1");
  if (rest.length > 0) consume(conn, rest);
}

function onData(conn: Conn, chunk: Uint8Array): void {
  if (conn.ring === null) {
    onHandshake(conn, chunk);
    return;
  }
  const completed = consume(conn, chunk);
  if (completed === 0 || stopping) return;
  if (values.idle) {
    if (conn.sent < exchange && conn.received === conn.sent) sendMessages(conn, 1);
  } else {
    sendMessages(conn, completed);
  }
}

async function connect(conn: Conn): Promise<void> {
  try {
    await Bun.connect<Conn>({
      hostname: host,
      port,
      data: conn,
      socket: {
        open(socket) {
          socket.data.socket = socket;
          socket.write(request);
        },
        data(socket, chunk) {
          onData(socket.data, chunk);
        },
        drain(socket) {
          const c = socket.data;
          const bytes = c.pending;
          if (bytes === null) return;
          c.pending = null;
          write(c, bytes);
        },
        close() {
          fail("a connection closed during the run");
        },
        error(_socket, error) {
          fail(`socket error: ${error.message}`);
        },
      },
    });
  } catch (error) {
    fail(`connect failed: ${(error as Error).message}`);
  }
}

async function waitFor(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!test() && failures === 0) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

function report(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    ok: failures === 0 && verified === true, errors: failures, first_error: firstFailure || undefined,
    verified, verify: verifyNote, extensions: extensionResponse, conns: connCount, opened,
    sent_bytes_per_msg: conns[0]?.ring ? Math.round(conns[0].ring.wireBytesPerMessage) : 0, ...extra,
  };
}

try {
  for (let i = 0; i < connCount; i++) conns.push(new Conn(i));
  for (let i = 0; i < connCount; i += 200) {
    await Promise.all(conns.slice(i, i + 200).map(connect));
    if (failures > 0) break;
  }
  await waitFor(() => opened === connCount, 30_000, `${connCount} handshakes (${opened} done)`);
  if (failures === 0) {
    conns[0].capture = [];
    for (const conn of conns) sendMessages(conn, inflight);
  }
  if (values.idle) {
    await waitFor(() => conns.every((c) => c.received >= exchange), 60_000, "the exchanges");
    console.log(`exchanged ${JSON.stringify(report({ received: totalReceived, compressed: compressedReceived }))}`);
    await new Promise(() => {}); // idle until killed
  }
  await Bun.sleep(Number(values.warmup) * 1000);
  if (failures === 0 && verified === null) await waitFor(() => verified !== null, 10_000, "the first reply");
  const count0 = totalReceived;
  const compressed0 = compressedReceived;
  const payload0 = payloadReceived;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  console.log("measure: start");
  await Bun.sleep(Number(values.seconds) * 1000);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const count = totalReceived - count0;
  console.log("measure: end");
  stopping = true;
  console.log(JSON.stringify(report({
    seconds: elapsed, messages: count, msgs_per_s: count / elapsed,
    compressed_share: count === 0 ? 0 : (compressedReceived - compressed0) / count,
    reply_bytes_per_msg: count === 0 ? 0 : (payloadReceived - payload0) / count,
    client_cpu: (cpu.user + cpu.system) / 1e6 / elapsed,
  })));
  process.exit(0);
} catch (error) {
  stopping = true;
  console.log(JSON.stringify(report({ error: (error as Error).message })));
  process.exit(1);
}
