/**
 * ServerWebSocket details that the hardening review found wrong: a send that crosses the
 * backpressure mark reports it (-1) and a drain follows; `remoteAddress` belongs to the
 * socket object (right inside `close`, and after its connection id went to another client).
 * On the fake backend, with one fake transport per simulated client host.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ServerWebSocket } from "../../src/api/websocket.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { describeEachBackend } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";
import { serve } from "../../src/server/serve.ts";

afterEach(stopFakeServers);

describe("ServerWebSocket (fake backend)", () => {
  test("the send that crosses the backpressure mark returns -1, and drain follows", async () => {
    const results: number[] = [];
    let drains = 0;
    const { client } = startFakeServer({
      websocket: {
        open(ws) {
          results.push(ws.send(new Uint8Array(60 * 1024)), ws.send(new Uint8Array(10 * 1024)));
        },
        message() {},
        drain: () => void drains++,
      },
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => results.length === 2, 2000, "sends in open");
    expect(results).toEqual([60 * 1024, -1]);
    await ws.waitMessages(2);
    await waitFor(() => drains === 1, 2000, "drain after the queue emptied");
  });

  test("remoteAddress inside close, and after the connection id was reused", async () => {
    const sockets: ServerWebSocket[] = [];
    const inClose: string[] = [];
    const { server, network } = startFakeServer({
      websocket: {
        open: (ws) => void sockets.push(ws),
        message() {},
        // The first socket's address is read here; the second one's only after its id is reused.
        close: (ws) => void (ws === sockets[0] && inClose.push(ws.remoteAddress)),
      },
    });
    const hostA = new FakeTransport(network, { address: "127.0.0.7", poisonAfterCallback: false });
    const hostB = new FakeTransport(network, { address: "127.0.0.8", poisonAfterCallback: false });
    const hostC = new FakeTransport(network, { address: "127.0.0.9", poisonAfterCallback: false });
    for (const [host, ordinal] of [[hostA, 1], [hostB, 2]] as const) {
      const ws = TestWsClient.connect(host, server.port);
      await ws.opened101();
      await waitFor(() => sockets.length === ordinal, 2000, "open");
      ws.sendClose(1000);
      await ws.waitClosed();
    }
    expect(inClose).toEqual(["127.0.0.7"]);
    const third = TestWsClient.connect(hostC, server.port); // takes the freed connection id
    await third.opened101();
    await waitFor(() => sockets.length === 3, 2000, "third open");
    expect(sockets.map((ws) => ws.remoteAddress)).toEqual(["127.0.0.7", "127.0.0.8", "127.0.0.9"]);
  });
});

describe("control frames (fake backend)", () => {
  test("a pong overtakes a slow reader's backlog (between two frames)", async () => {
    const sockets: ServerWebSocket[] = [];
    const { client, clientTransport } = startFakeServer({
      websocket: { open: (ws) => void sockets.push(ws), message() {} },
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    clientTransport.pause(0); // a slow reader
    for (let i = 0; i < 64; i++) sockets[0].send(new Uint8Array(32 * 1024).fill(i));
    ws.sendFrame(0x9, "are you there?");
    await Bun.sleep(5); // the ping reaches the server, which answers
    clientTransport.resume(0);
    await ws.waitMessages(64, 5000);
    const kinds = ws.events.map((event) => event.type);
    const pongAt = kinds.indexOf("pong");
    expect(pongAt).toBeGreaterThanOrEqual(0);
    expect(pongAt).toBeLessThan(kinds.lastIndexOf("message") - 32); // well ahead of the backlog
    expect(ws.messages().map((m) => m.data[0])).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });
});

describe("shared send memory (fake backend)", () => {
  test("sockets that do not read and fill send memory are closed 1013; the others lose nothing", async () => {
    const sockets: ServerWebSocket[] = [];
    const { server, network, closes } = startFakeServer({
      backpressureLimit: 768 * 1024, closeTimeout: 1,
      transport: { sendChunkCount: 64 }, // 1 MiB shared: two hogs exhaust it
      websocket: { open: (ws) => void sockets.push(ws), message: (ws, m) => void ws.send(m) },
    });
    const hogHost = new FakeTransport(network, { poisonAfterCallback: false });
    const politeHost = new FakeTransport(network, { poisonAfterCallback: false });
    const hogs = [0, 1, 2].map(() => TestWsClient.connect(hogHost, server.port));
    for (const hog of hogs) await hog.opened101();
    hogs.forEach((_, conn) => hogHost.pause(conn)); // they stop reading
    const polite = TestWsClient.connect(politeHost, server.port);
    await polite.opened101();
    const block = new Uint8Array(4096).fill(0x68);
    for (let round = 0; round < 100; round++) {
      for (const hog of hogs) {
        for (let i = 0; i < 8; i++) if (hog.closedReason === undefined) hog.sendBinary(block);
      }
      polite.sendText(`round ${round}`);
      await polite.waitMessages(round + 1);
    }
    expect(polite.messages().map((m) => m.text)).toEqual(Array.from({ length: 100 }, (_, i) => `round ${i}`));
    expect(server.stats().evictions).toBeGreaterThanOrEqual(1);
    expect(closes.filter((c) => c.code === 1013).length).toBe(server.stats().evictions);
  });

  test("a ping flood that never reads its pongs is closed 1008", async () => {
    const { client, clientTransport, closes } = startFakeServer({ websocket: { message() {} } });
    const ws = client();
    await ws.opened101();
    clientTransport.pause(0);
    for (let i = 0; i < 8000 && closes.length === 0; i++) {
      ws.sendFrame(0x9, new Uint8Array(125));
      if (i % 100 === 0) await Bun.sleep(0);
    }
    await waitFor(() => closes.length === 1, 3000, "flood closed");
    expect(closes[0]).toEqual({ code: 1008, reason: "pongs not read" });
  });
});

describeEachBackend("remoteAddress on a real backend", (backend) => {
  test("remoteAddress inside close, after a close frame and after a reset", async () => {
    const inClose: string[] = [];
    const server = serve({
      port: 0, hostname: "127.0.0.1", backend,
      websocket: { message() {}, close: (ws) => void inClose.push(ws.remoteAddress) },
    });
    try {
      for (const abrupt of [false, true]) {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
        await withTimeout(new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        }), 2000, "open");
        if (abrupt) ws.terminate();
        else ws.close();
        await waitFor(() => inClose.length === (abrupt ? 2 : 1), 3000, "close handler");
      }
      expect(inClose).toEqual(["127.0.0.1", "127.0.0.1"]);
    } finally {
      await server.stop("abort");
    }
  });
});
