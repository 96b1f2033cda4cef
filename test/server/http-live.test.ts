/**
 * Plain HTTP on each real backend over loopback, with Bun's own fetch() as the client:
 * sequential requests reuse one kept-alive connection, a streamed response is read as it is
 * produced through `response.body` (and a large one arrives whole under backpressure), and a
 * raw client upgrades to WebSocket on a connection that first served a plain request.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import type { Server, ServeOptions } from "../../src/api/websocket.ts";
import { OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { writeFrame } from "../../src/protocol/frame-writer.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend, type RealBackendName } from "../support/backends.ts";
import { patternBytes } from "../support/bytes.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

let backend: RealBackendName = "io_uring";
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

const encoder = new TextEncoder();

function startHttp(options: Partial<ServeOptions<undefined>>): Server {
  const server = serve<undefined>({
    port: 0, hostname: "127.0.0.1", backend,
    transport: { recvBufferCount: 16, sendChunkCount: 256 },
    websocket: { message: (ws, message) => void ws.send(message) },
    ...options,
  } as ServeOptions<undefined>);
  servers.push(server);
  return server;
}

describeEachBackend("plain HTTP with Bun's fetch", (name) => {
  beforeAll(() => {
    backend = name;
  });

  test("sequential fetch() calls reuse one kept-alive connection", async () => {
    const server = startHttp({
      async fetch(req) {
        return new Response(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`);
      },
    });
    await server.ready;
    const base = `http://127.0.0.1:${server.port}`;
    for (let i = 0; i < 6; i++) {
      const init: RequestInit = i % 2 === 1 ? { method: "POST", body: "b".repeat(i) } : {};
      const response = await withTimeout(fetch(`${base}/n${i}`, init), 5000, `fetch ${i}`);
      expect(response.headers.get("connection")).toBe("keep-alive");
      expect(await response.text()).toBe(`${init.method ?? "GET"} /n${i} ${"b".repeat(i % 2 ? i : 0)}`);
    }
    const head = await withTimeout(fetch(`${base}/h`, { method: "HEAD" }), 5000, "HEAD");
    expect(head.headers.get("content-length")).toBe("8"); // "HEAD /h "
    expect(await head.text()).toBe("");
    expect(server.stats().transport.accepted).toBe(1);
  });

  test("a streamed response is read through response.body as it is produced", async () => {
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const chunk = patternBytes(64 * 1024, 5);
    const COUNT = 64; // 4 MiB after the first event
    const server = startHttp({
      fetch: () => new Response(new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("first"));
          await released; // only once the client has read "first"
          for (let i = 0; i < COUNT; i++) {
            controller.enqueue(chunk);
            await Bun.sleep(0);
          }
          controller.close();
        },
      })),
    });
    await server.ready;
    const response = await withTimeout(fetch(`http://127.0.0.1:${server.port}/stream`), 5000, "fetch");
    expect(response.headers.get("transfer-encoding")).toBe("chunked");
    const reader = response.body!.getReader();
    const first = await withTimeout(reader.read(), 5000, "first chunk");
    expect(new TextDecoder().decode(first.value)).toBe("first");
    release();
    let received = 0;
    let mismatches = 0;
    for (;;) {
      const { done, value } = await withTimeout(reader.read(), 5000, "next chunk");
      if (done) break;
      for (let i = 0; i < value.length; i += 997) {
        if (value[i] !== chunk[(received + i) % chunk.length]) mismatches++;
      }
      received += value.length;
    }
    expect(received).toBe(COUNT * chunk.length);
    expect(mismatches).toBe(0);
  }, 20_000);

  test("a raw client: a plain request, then a WebSocket upgrade on the same connection", async () => {
    const server = startHttp({
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("page")),
    });
    await server.ready;
    let received = Buffer.alloc(0);
    let closed = false;
    const socket = await Bun.connect({
      hostname: "127.0.0.1", port: server.port,
      socket: {
        data(_, data) {
          received = Buffer.concat([received, data]);
        },
        close() {
          closed = true;
        },
      },
    });
    try {
      socket.write("GET /page HTTP/1.1\r\nHost: a\r\n\r\n");
      await waitFor(() => received.toString("latin1").endsWith("\r\n\r\npage"), 5000, "the page");
      expect(received.toString("latin1")).toContain("Connection: keep-alive\r\n");
      const answered = received.length;
      socket.write("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
      await waitFor(() => received.subarray(answered).toString("latin1").includes("\r\n\r\n"), 5000, "101");
      expect(received.subarray(answered).toString("latin1")).toStartWith("HTTP/1.1 101 Switching Protocols");
      const frame = new Uint8Array(32);
      const payload = encoder.encode("hello");
      const size = writeFrame(frame, 0, OPCODE_TEXT, true, false, payload, 0, payload.length, 0x01020304);
      socket.write(frame.subarray(0, size));
      await waitFor(() => received.toString("latin1").endsWith("\x81\x05hello"), 5000, "echo");
      expect(closed).toBe(false);
    } finally {
      socket.end();
    }
  });
});
