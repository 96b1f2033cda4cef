/**
 * server.reload (Bun.serve's): the handlers given replace the running ones, for open sockets
 * from their next event; the ones left out stay; a refused reload changes nothing. And
 * `using server = serve(...)` stops the server when the scope ends (Bun's Server is Disposable).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { UsageError } from "../../src/api/errors.ts";
import type { ServeOptions } from "../../src/api/websocket.ts";
import { FakeNetwork } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import { FAKE_SEED, startFakeServer as start, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";
import { RawHttpClient, request } from "./http-support.ts";

afterEach(stopFakeServers);

describe("server.reload", () => {
  test("fetch and error are replaced; a kept-alive connection gets the new fetch on its next request", async () => {
    const { server, clientTransport } = start({
      fetch: () => new Response("v1"),
      error: () => new Response("error v1", { status: 500 }),
    });
    const http = new RawHttpClient(clientTransport, server.port);
    http.send(request("/"));
    expect((await http.waitResponses(1))[0].body).toBe("v1");
    expect(server.reload({
      fetch(req) {
        if (new URL(req.url).pathname === "/throw") throw new Error("boom");
        return new Response("v2");
      },
      error: () => new Response("error v2", { status: 500 }),
    })).toBe(server);
    http.send(request("/"));
    const responses = await http.waitResponses(2);
    expect(responses[1].body).toBe("v2");
    const other = new RawHttpClient(clientTransport, server.port);
    other.send(request("/throw"));
    const failed = (await other.waitResponses(1))[0];
    expect([failed.status, failed.body]).toEqual([500, "error v2"]);
  });

  test("websocket handlers are replaced for open sockets (next message) and new ones (open)", async () => {
    const opened: string[] = [];
    const { server, client } = start({
      websocket: {
        open: () => void opened.push("v1"),
        message: (ws, message) => void ws.send(`v1 ${message}`),
      },
    });
    const first = client();
    await first.opened101();
    first.sendText("a");
    await first.waitMessages(1);
    server.reload({
      websocket: {
        open: () => void opened.push("v2"),
        message: (ws, message) => void ws.send(`v2 ${message}`),
      },
    });
    first.sendText("b");
    await first.waitMessages(2);
    const second = client();
    await second.opened101();
    second.sendText("c");
    await second.waitMessages(1);
    expect(first.messages().map((m) => m.text)).toEqual(["v1 a", "v2 b"]);
    expect(second.messages().map((m) => m.text)).toEqual(["v2 c"]);
    expect(opened).toEqual(["v1", "v2"]);
  });

  test("handlers left out stay; options other than handlers have no effect", async () => {
    const { server, client, clientTransport } = start({
      fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("kept")),
    });
    server.reload({ port: 1, maxPayloadLength: 1, websocket: { message: (ws) => void ws.send("new") } });
    expect(server.port).not.toBe(1);
    const http = new RawHttpClient(clientTransport, server.port);
    http.send(request("/"));
    expect((await http.waitResponses(1))[0].body).toBe("kept");
    const ws = client();
    await ws.opened101();
    ws.sendText("longer than one byte");
    await ws.waitMessages(1);
    expect(ws.messages()[0].text).toBe("new");
  });

  test("a refused reload (not a function, no message handler) throws UsageError and changes nothing", async () => {
    const { server, client } = start({ websocket: { message: (ws) => void ws.send("old") } });
    const refusals = [
      () => server.reload({ fetch: "nope" } as unknown as Parameters<typeof server.reload>[0]),
      () => server.reload({ websocket: {} } as unknown as Parameters<typeof server.reload>[0]),
      () => server.reload({ websocket: { message: () => {} }, error: 1 } as unknown as
        Parameters<typeof server.reload>[0]),
      () => server.reload(null as unknown as Parameters<typeof server.reload>[0]),
    ];
    for (const refuse of refusals) expect(refuse).toThrow(UsageError);
    const ws = client();
    await ws.opened101();
    ws.sendText("x");
    await ws.waitMessages(1);
    expect(ws.messages()[0].text).toBe("old");
  });
});

describe("Symbol.dispose", () => {
  test("`using` stops the server with stop(true) when the scope ends: 1001 to open sockets", async () => {
    const network = new FakeNetwork({ seed: FAKE_SEED });
    const clientTransport = new FakeTransport(network, { poisonAfterCallback: false });
    let client: TestWsClient;
    let stopped: Promise<void>;
    {
      using server = serve({
        port: 0,
        backend: new FakeTransport(network),
        websocket: { message: (ws, message) => void ws.send(message) },
      } as ServeOptions<undefined>);
      client = TestWsClient.connect(clientTransport, server.port, {});
      await client.opened101();
      stopped = server.stop(); // the same promise the dispose below strengthens
    }
    await waitFor(() => client.closeFrame() !== undefined, 5000, "the close frame");
    expect(client.closeFrame()?.code).toBe(1001);
    client.sendClose(1001);
    await stopped;
  });
});
