/**
 * The server reuses HTTP parsers (with their request objects) and handshake states across
 * connections. Many handshakes at once, mixing synchronous and asynchronous upgrade hooks,
 * refusals and malformed requests, must each get their own answer, data and subprotocol.
 *
 * Echoes go back as binary: the fake transport's send keeps a view, not a copy, of a Buffer
 * (Buffer.slice), so text the server encodes in its shared scratch Buffer can be overwritten
 * when several sockets send in one turn (a fake-transport issue, reported separately).
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "../../src/api/websocket.ts";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import { FakeNetwork } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { writeFrame } from "../../src/protocol/frame-writer.ts";
import { acceptKey } from "../../src/protocol/handshake.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";

const seed = Number(process.env.HIOLOAD_FAKE_SEED ?? 7);
const running: Server[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await server.stop("abort");
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keyOf = (i: number) =>
  Buffer.from(`key number ${String(i).padStart(5, "0")}`).toString("base64");

describe(`handshake objects reused across connections (seed ${seed})`, () => {
  test("200 clients: sync and async hooks, refusals and bad requests interleaved", async () => {
    const network = new FakeNetwork({ seed, maxChunk: 40 });
    const sockets: ServerWebSocket<{ id: number }>[] = [];
    const server = serve<{ id: number }>({
      port: 0, backend: new FakeTransport(network), clock: new FakeClock(),
      upgrade(request) {
        const url = new URL(request.url);
        const id = Number(url.searchParams.get("id"));
        if (id % 7 === 3) return new Response(`no ${id}`, { status: 403 });
        const answer = { data: { id }, protocol: `p${id}`, headers: { "X-Id": String(id) } };
        if (id % 2 === 0) return answer;
        return new Promise((resolve) => setTimeout(() => resolve(answer), id % 5));
      },
      websocket: {
        open: (ws) => void sockets.push(ws),
        message: (ws, message) => void ws.send(encoder.encode(`${ws.data.id}:${message}`)),
      },
    });
    running.push(server);
    const transport = new FakeTransport(network, { poisonAfterCallback: false });
    const clients = Array.from({ length: 200 }, (_, id) => TestWsClient.connect(transport,
      server.port, id % 11 === 5
        ? { rawRequest: `GET /?id=${id} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n` }
        : {
          path: `/?id=${id}`, requestChunk: 1 + (id % 17),
          headers: { "Sec-WebSocket-Key": keyOf(id), "Sec-WebSocket-Protocol": `p${id}, other` },
        }));
    for (const [id, ws] of clients.entries()) {
      if (id % 11 === 5) {
        await ws.waitClosed();
        expect(ws.responseStatus).toBe(400);
      } else if (id % 7 === 3) {
        await ws.waitClosed();
        expect(ws.responseStatus).toBe(403);
        expect(ws.responseBody).toBe(`no ${id}`);
      } else {
        await ws.opened101();
        expect(ws.responseHead).toContain(`Sec-WebSocket-Accept: ${acceptKey(keyOf(id))}`);
        expect(ws.responseHead).toContain(`Sec-WebSocket-Protocol: p${id}\r\n`);
        expect(ws.responseHead).toContain(`X-Id: ${id}`);
        ws.sendText("hi");
      }
    }
    const accepted = clients.filter((_, id) => id % 11 !== 5 && id % 7 !== 3);
    await waitFor(() => accepted.every((ws) => ws.messages().length === 1), 5000, "echoes");
    for (const [id, ws] of clients.entries()) {
      if (id % 11 === 5 || id % 7 === 3) continue;
      expect(decoder.decode(ws.messages()[0].data)).toBe(`${id}:hi`);
    }
    expect(sockets.length).toBe(accepted.length);
    for (const socket of sockets) expect(socket.protocol).toBe(`p${socket.data.id}`);
  }, 20_000);

  test("without hooks: every client gets its own accept key, then its echo", async () => {
    const network = new FakeNetwork({ seed, maxChunk: 7 });
    const server = serve({
      port: 0, backend: new FakeTransport(network), clock: new FakeClock(),
      websocket: { message: (ws, message) => void ws.send(encoder.encode(String(message))) },
    });
    running.push(server);
    const transport = new FakeTransport(network, { poisonAfterCallback: false });
    const clients = Array.from({ length: 100 }, (_, id) => TestWsClient.connect(transport,
      server.port, { headers: { "Sec-WebSocket-Key": keyOf(id) }, requestChunk: 1 + (id % 9) }));
    for (const [id, ws] of clients.entries()) {
      await ws.opened101();
      expect(ws.responseHead).toContain(`Sec-WebSocket-Accept: ${acceptKey(keyOf(id))}`);
      expect(ws.responseHead).not.toContain("Sec-WebSocket-Protocol");
      ws.sendText(`m${id}`);
    }
    await waitFor(() => clients.every((ws) => ws.messages().length === 1), 5000, "echoes");
    clients.forEach((ws, id) => expect(decoder.decode(ws.messages()[0].data)).toBe(`m${id}`));
  }, 20_000);
});

describeEachBackend("pipelined bytes and async hooks", (backend) => {
  test("frames behind the request survive an async hook while buffers are reused", async () => {
    // Receive buffers are Buffers from a small ring: what a handshake keeps across the hook
    // must be a copy, or other traffic overwrites it (it did: the first frame came out as a
    // protocol error).
    const server = serve({
      port: 0, hostname: "127.0.0.1", backend,
      transport: { recvBufferCount: 8, recvBufferSize: 4096 },
      upgrade: async (request) => {
        if (request.url.endsWith("/slow")) await Bun.sleep(80);
        return {};
      },
      websocket: { message: (ws, message) => void ws.send(message) },
    });
    running.push(server);
    const frameOf = (text: string, mask: number) => {
      const payload = encoder.encode(text);
      const frame = new Uint8Array(payload.length + 14);
      return frame.subarray(0, writeFrame(frame, 0, OPCODE_TEXT, true, false, payload, 0,
        payload.length, mask));
    };
    const noisy = new WebSocket(`ws://127.0.0.1:${server.port}/`);
    await withTimeout(new Promise((resolve) => (noisy.onopen = resolve)), 5000, "noisy open");
    const request = "GET /slow HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n";
    const received = ["", "", "", "", "", ""];
    const sockets = await Promise.all(received.map((_, i) => Bun.connect({
      hostname: "127.0.0.1", port: server.port,
      socket: {
        data: (_socket, data) => void (received[i] += Buffer.from(data).toString("latin1")),
      },
    })));
    sockets.forEach((socket, i) => {
      const first = frameOf(`first ${i}`, 0x1111 * (i + 1));
      socket.write(Buffer.concat([encoder.encode(request), first]));
    });
    await Bun.sleep(10);
    for (let k = 0; k < 64; k++) {
      noisy.send("n".repeat(3000)); // other traffic: every receive buffer is reused meanwhile
      await Bun.sleep(0);
    }
    sockets.forEach((socket, i) => socket.write(frameOf(`second ${i}`, 0x0101 * (i + 3))));
    await waitFor(() => received.every((text, i) => text.includes(`second ${i}`)), 5000,
      () => `echoes: ${JSON.stringify(received)}`);
    received.forEach((text, i) => {
      expect(text).toStartWith("HTTP/1.1 101 ");
      expect(text).toContain(`first ${i}`);
    });
    for (const socket of sockets) socket.end();
    noisy.close();
  }, 20_000);
});
