/** serve({ backend }): a name, or a Transport the caller made (and the server then owns). */
import { describe, expect, test } from "bun:test";
import { FakeNetwork } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import { withTimeout } from "../support/wait-for.ts";

const websocket = { message() {} };

describe("serve({ backend })", () => {
  test("an injected transport serves, and stop() disposes it", async () => {
    const transport = new FakeTransport(new FakeNetwork());
    const server = serve({ port: 0, backend: transport, websocket });
    expect(server.stats().backend).toBe("fake");
    await withTimeout(server.stop(true), 2000, "stop");
    expect(() => transport.listen({ port: 0 }, {
      onOpen() {}, onData() {}, onDrain() {}, onEnd() {}, onClose() {},
    })).toThrow(expect.objectContaining({ code: "WS_ERR_DISPOSED" }));
  });

  test('"fake" by name says how to inject it; unknown names are refused with the list', () => {
    expect(() => serve({ port: 0, backend: "fake" as never, websocket }))
      .toThrow(/new FakeTransport\(network\)/);
    expect(() => serve({ port: 0, backend: "uring" as never, websocket }))
      .toThrow(/unknown backend "uring" \(one of auto, io_uring, epoll, bun, iocp, or a Transport\)/);
  });

  test("Bun's routes option is refused with what to do instead (not silently ignored)", () => {
    expect(() => serve({ port: 0, backend: new FakeTransport(new FakeNetwork()), websocket,
      routes: { "/": new Response("x") } } as never)).toThrow(/routes are not supported yet: route inside fetch/);
  });

  test("threads need a backend by name", () => {
    expect(() => serve({ port: 0, threads: 2, backend: new FakeTransport(new FakeNetwork()), websocket }))
      .toThrow(expect.objectContaining({ code: "WS_ERR_BAD_OPTION" }));
  });
});

describe("WebSocket options under websocket, as in Bun.serve", () => {
  test("websocket.maxPayloadLength and backpressureLimit apply (1009 past the limit)", async () => {
    const { startFakeServer, stopFakeServers } = await import("../support/fake-server.ts");
    const seen: number[] = [];
    const { client, sockets } = startFakeServer({
      websocket: {
        maxPayloadLength: 100, backpressureLimit: 1000,
        message: (ws, message) => void seen.push(ws.send(message)),
      },
    });
    const ws = client();
    await ws.opened101();
    ws.sendText("x".repeat(100));
    await ws.waitMessages(1);
    ws.sendText("y".repeat(101));
    await ws.waitClosed();
    expect(ws.closeFrame()?.code).toBe(1009);
    expect(seen).toEqual([100]);
    expect(sockets.length).toBe(1);
    await stopFakeServers();
  });

  test("the same option at both levels with different values is refused; equal is fine", () => {
    expect(() => serve({ port: 0, backend: new FakeTransport(new FakeNetwork()), idleTimeout: 10,
      websocket: { idleTimeout: 20, message() {} } }))
      .toThrow(/idleTimeout is given twice, as websocket.idleTimeout \(20\) and at the top level \(10\)/);
    const server = serve({ port: 0, backend: new FakeTransport(new FakeNetwork()), idleTimeout: 10,
      websocket: { idleTimeout: 10, message() {} } });
    return server.stop("abort");
  });
});
