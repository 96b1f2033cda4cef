/**
 * Pub/sub on each real backend with Bun's own WebSocket client: a room of clients, one of
 * them publishing messages of mixed sizes and kinds; every other subscriber gets every one,
 * intact and in order, and the publisher none (publishToSelf off).
 */
import { afterEach, expect, test } from "bun:test";
import type { Server } from "../../src/api/websocket.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend } from "../support/backends.ts";
import { patternBytes } from "../support/bytes.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

const CLIENTS = 20;
const SIZES = [0, 16, 125, 126, 4096, 20_000, 70_000];

describeEachBackend("pub/sub with Bun's WebSocket client", (backend) => {
  test(`${CLIENTS} subscribers, one publisher: every message to every other, in order`, async () => {
    const server = serve({
      port: 0, hostname: "127.0.0.1", backend,
      fetch: (request, srv) => (srv.upgrade(request) ? undefined : new Response("no", { status: 400 })),
      websocket: {
        open: (ws) => ws.subscribe("room"),
        message: (ws, message) => void ws.publish("room", message),
      },
    });
    servers.push(server);
    const received: (string | Uint8Array)[][] = [];
    const sockets: WebSocket[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      ws.binaryType = "arraybuffer";
      const mine: (string | Uint8Array)[] = [];
      received.push(mine);
      ws.onmessage = (event) => void mine.push(typeof event.data === "string" ? event.data
        : new Uint8Array(event.data));
      await withTimeout(new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      }), 5000, "open");
      sockets.push(ws);
    }
    await waitFor(() => server.subscriberCount("room") === CLIENTS, 5000, "every client subscribed");
    const expected: (string | Uint8Array)[] = [];
    for (const [i, size] of SIZES.entries()) {
      const text = "é".repeat(size >> 1);
      const bytes = patternBytes(size, i);
      sockets[0].send(text);
      sockets[0].send(bytes);
      expected.push(text, bytes);
    }
    for (let i = 1; i < CLIENTS; i++) {
      await waitFor(() => received[i].length === expected.length, 10_000,
        () => `client ${i}: ${received[i].length}/${expected.length} messages`);
      expect(received[i]).toEqual(expected);
    }
    expect(received[0]).toEqual([]);
    for (const ws of sockets) ws.close();
    await waitFor(() => server.subscriberCount("room") === 0, 5000, "every client left the room");
  });

  // The portable backend copies what is lent (Bun.listen takes bytes), so this is about the
  // two that queue loans in native send memory.
  const lends = backend !== "bun";
  if (!lends) console.log("[skip] 4 KiB publish from 8 send chunks on bun: it copies loans (Bun.listen takes bytes)");
  (lends ? test : test.skip)("a 4 KiB publish to 60 sockets from 8 send chunks: lent, not one chunk each", async () => {
    const server = serve({
      port: 0, hostname: "127.0.0.1", backend, transport: { sendChunkCount: 8 },
      websocket: { open: (ws) => ws.subscribe("feed"), message() {} },
    });
    servers.push(server);
    const counts: number[] = [];
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 60; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      counts.push(0);
      ws.onmessage = () => void counts[i]++;
      await withTimeout(new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      }), 5000, "open");
      sockets.push(ws);
    }
    await waitFor(() => server.subscriberCount("feed") === 60, 5000, "every socket subscribed");
    const message = patternBytes(4096, 1);
    for (let i = 0; i < 4; i++) expect(server.publish("feed", message)).not.toBe(0);
    await waitFor(() => counts.every((n) => n === 4), 10_000,
      () => `every socket got 4 (${counts.filter((n) => n === 4).length} did)`);
    expect(server.stats().evictions).toBe(0);
    for (const ws of sockets) ws.close();
  });
});

