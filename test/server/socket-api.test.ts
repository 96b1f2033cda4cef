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
import { ioUringUnavailable } from "../support/platform.ts";
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

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] remoteAddress on io_uring: ${skipReason}`);

test.skipIf(skipReason !== "")("io_uring: remoteAddress inside close, after a close frame and after a reset", async () => {
  const inClose: string[] = [];
  const server = serve({
    port: 0, hostname: "127.0.0.1", backend: "io_uring",
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
    await server.stop(false);
  }
});
