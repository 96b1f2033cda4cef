/**
 * An async `upgrade` hook pauses the connection while it runs and resumes it when it
 * settles. On io_uring a resume that came before the pause's cancel landed left the socket
 * deaf: 101 sent, nothing read ever again (not even FIN), and under connect/close load the
 * slots and descriptors leaked. Real loopback, io_uring.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import type { Server, ServerWebSocket } from "../../src/api/websocket.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend, type RealBackendName } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";

let backend: RealBackendName = "io_uring";

const servers: Server[] = [];
const stops: (() => void)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop();
  for (const server of servers.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

/**
 * Echo behind an async hook, and a timer that keeps sending to the first socket: sends from
 * outside a turn run the loop from a microtask one turn at a time, which is when a hook
 * settling a microtask later resumes before the pause's cancel has even been submitted.
 */
function startAsyncEcho() {
  let closes = 0;
  let ticker: ServerWebSocket | undefined;
  const server = serve({
    port: 0, hostname: "127.0.0.1", backend,
    async upgrade() {}, // awaits nothing: settles a microtask later
    websocket: {
      open: (ws) => void (ticker ??= ws),
      message: (ws, message) => void ws.send(message),
      close: (ws) => {
        closes++;
        if (ws === ticker) ticker = undefined;
      },
    },
  });
  const timer = setInterval(() => ticker?.send("tick"), 1);
  servers.push(server);
  stops.push(() => clearInterval(timer));
  return { server, closes: () => closes };
}

const openDescriptors = () => readdirSync("/proc/self/fd").length;

/** Handshake on a raw socket, then FIN as soon as the 101 is in: resolves once closed. */
function upgradeAndLeave(port: number): Promise<void> {
  const request = TestWsClient.request();
  return new Promise<void>((resolve, reject) => {
    let answered = false;
    Bun.connect({
      hostname: "127.0.0.1", port,
      socket: {
        open: (socket) => void socket.write(request),
        data: (socket, chunk) => {
          if (!answered && chunk.toString("latin1").startsWith("HTTP/1.1 101")) {
            answered = true;
            socket.end();
          }
        },
        close: () => (answered ? resolve() : reject(new Error("closed before the 101"))),
        error: (_, error) => reject(error),
      },
    }).catch(reject);
  });
}

/** The first client: it receives the timer's ticks (and ignores them). */
async function openTicker(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  await withTimeout(new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  }), 2000, "ticker open");
  return ws;
}

describeEachBackend("async upgrade", (name) => {
  beforeAll(() => {
    backend = name;
  });

  test("100 rounds: the first message, sent at once from a timer, is echoed", async () => {
    const { server } = startAsyncEcho();
    const ticks = await openTicker(server.port);
    for (let round = 0; round < 100; round++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
      const echoed = new Promise<string>((resolve, reject) => {
        ws.onmessage = (event) => resolve(String(event.data));
        ws.onerror = () => reject(new Error(`round ${round}: client error`));
      });
      ws.onopen = () => void setTimeout(() => ws.send(`round ${round}`), 0);
      expect(await withTimeout(echoed, 2000, `echo in round ${round}`)).toBe(`round ${round}`);
      ws.close();
    }
    ticks.close();
  }, 30_000);

  test("10,000 connect/upgrade/close cycles: every close reported, descriptors flat", async () => {
    const { server, closes } = startAsyncEcho();
    const ticks = await openTicker(server.port);
    await upgradeAndLeave(server.port); // warm up whatever opens descriptors once
    await waitFor(() => closes() === 1, 2000, "first close");
    const before = openDescriptors();
    const cycles = 10_000;
    const concurrency = 50;
    let started = 1;
    const worker = async () => {
      while (started < cycles + 1) {
        started++;
        await upgradeAndLeave(server.port);
      }
    };
    await withTimeout(Promise.all(Array.from({ length: concurrency }, worker)), 40_000, "cycles");
    await waitFor(() => closes() === cycles + 1, 5000, () => `server closes (${closes()})`);
    expect(server.stats().connections).toBe(1); // the ticker
    ticks.close();
    await waitFor(() => openDescriptors() <= before + 2, 2000,
      () => `descriptors back to ${before} (now ${openDescriptors()})`);
  }, 60_000);
});
