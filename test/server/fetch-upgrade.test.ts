/**
 * Bun.serve's way of accepting a WebSocket: `fetch(request, server)` calls
 * `server.upgrade(request, { data, headers })`, at once or after an `await`, and returns
 * nothing. The semantics below are Bun 1.4.5's, checked against it: `open` runs inside
 * upgrade(), a second upgrade of the same request is false, a Response returned after an
 * upgrade is ignored, the subprotocol comes from a `Sec-WebSocket-Protocol` header.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { startFakeServer as start, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";
import { RawHttpClient, request } from "./http-support.ts";

afterEach(stopFakeServers);

describe("server.upgrade from fetch", () => {
  test("sync: data and headers reach the socket and the 101; open runs inside upgrade()", async () => {
    const log: string[] = [];
    const { client } = start<{ room: string }>({
      fetch(request, server) {
        log.push("fetch");
        const upgraded = server.upgrade(request, {
          data: { room: new URL(request.url).pathname },
          headers: { "Set-Cookie": "seen=1", "Sec-WebSocket-Protocol": "chat" },
        });
        log.push(`upgrade ${upgraded}`);
        log.push(`again ${server.upgrade(request)}`);
      },
      websocket: {
        open: (ws) => void log.push(`open ${ws.data.room} ${ws.protocol}`),
        message: (ws, message) => void ws.send(`${ws.data.room}: ${message}`),
      },
    });
    const ws = client({ path: "/lobby", headers: { "Sec-WebSocket-Protocol": "chat, other" } });
    await ws.opened101();
    expect(ws.responseHead).toContain("Set-Cookie: seen=1");
    expect(ws.responseHead).toContain("Sec-WebSocket-Protocol: chat");
    ws.sendText("hi");
    await ws.waitMessages(1);
    expect(ws.messages()[0].text).toBe("/lobby: hi");
    expect(log).toEqual(["fetch", "open /lobby chat", "upgrade true", "again false"]);
  });

  test("after an await: the socket reads and answers before fetch settles", async () => {
    let finishFetch = () => {};
    const received: string[] = [];
    const { client } = start({
      async fetch(request, server) {
        await Bun.sleep(20); // an auth lookup, say
        server.upgrade(request);
        await new Promise<void>((resolve) => (finishFetch = resolve)); // fetch goes on
      },
      websocket: { message: (ws, message) => void (received.push(String(message)), ws.send(message)) },
    });
    const ws = client();
    await ws.opened101();
    ws.sendText("one");
    ws.sendText("two");
    await ws.waitMessages(2); // fetch has not returned yet
    expect(received).toEqual(["one", "two"]);
    finishFetch();
  });

  test("an async fetch that upgrades before its first await: the socket reads on", async () => {
    const { client } = start({
      async fetch(request, server) {
        if (server.upgrade(request)) return;
        return new Response("not a WebSocket", { status: 400 });
      },
    });
    const ws = client();
    await ws.opened101();
    ws.sendText("hello");
    await ws.waitMessages(1, 2000); // before the fix: paused for good
    expect(ws.messages()[0].text).toBe("hello");
  });

  test("an async fetch that upgraded still runs when the next connection arrives: each keeps its own answer", async () => {
    let releaseFirst = () => {};
    let releaseSecond = () => {};
    let secondCalled = false;
    const { client, clientTransport, server } = start({
      async fetch(request, srv) {
        if (srv.upgrade(request)) {
          await new Promise<void>((resolve) => (releaseFirst = resolve)); // still running
          return;
        }
        secondCalled = true;
        await new Promise<void>((resolve) => (releaseSecond = resolve));
        return new Response("plain");
      },
    });
    const ws = client();
    await ws.opened101();
    const http = new RawHttpClient(clientTransport, server.port);
    http.send(request("/"));
    await waitFor(() => secondCalled, 2000, "the second fetch running");
    releaseFirst(); // the upgraded fetch settles while the plain one is pending
    await Bun.sleep(5);
    releaseSecond();
    const [answer] = await http.waitResponses(1);
    expect([answer.status, answer.body]).toEqual([200, "plain"]);
    ws.sendText("still here");
    await ws.waitMessages(1);
    expect(ws.messages()[0].text).toBe("still here");
  });

  test("a Response returned after upgrading is ignored", async () => {
    const { client } = start({
      fetch(request, server) {
        server.upgrade(request);
        return new Response("not sent");
      },
    });
    const ws = client();
    await ws.opened101();
    ws.sendText("x");
    await ws.waitMessages(1);
    expect(ws.responseHead).not.toContain("not sent");
  });

  test("not upgraded: fetch's Response is sent; an invalid upgrade request makes upgrade() false", async () => {
    const results: boolean[] = [];
    const { client } = start({
      fetch(request, server) {
        const upgraded = server.upgrade(request);
        results.push(upgraded);
        return upgraded ? undefined : new Response("no socket for you", { status: 400 });
      },
    });
    const badVersion = client({ headers: { "Sec-WebSocket-Version": "8" } });
    await badVersion.waitClosed();
    expect(badVersion.responseStatus).toBe(400);
    expect(badVersion.responseBody).toBe("no socket for you");
    // Connection: close: fetch's own 400 keeps the connection alive otherwise.
    const plain = client({ rawRequest: "GET /page HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" });
    await plain.waitClosed();
    expect(plain.responseStatus).toBe(400);
    expect(results).toEqual([false, false]);
  });

  test("fetch returning nothing without upgrading: the upgrade request's own error, or 500", async () => {
    const { client } = start({ fetch: () => undefined });
    const badVersion = client({ headers: { "Sec-WebSocket-Version": "8" } });
    await badVersion.waitClosed();
    expect(badVersion.responseStatus).toBe(426);
    expect(badVersion.responseHead).toContain("Sec-WebSocket-Version: 13");
    const plain = client({ rawRequest: "GET / HTTP/1.1\r\nHost: a\r\n\r\n" });
    await plain.waitClosed();
    expect(plain.responseStatus).toBe(500);
    const valid = client();
    await valid.waitClosed();
    expect(valid.responseStatus).toBe(500);
  });

  test("a Request kept past fetch upgrades nothing; requestIP names the peer", async () => {
    let kept: Request | undefined;
    let ip: ReturnType<typeof start>["server"]["requestIP"] extends (r: Request) => infer R ? R : never = null;
    const { client, server } = start({
      fetch(request, server) {
        kept = request;
        ip = server.requestIP(request);
        return new Response("plain");
      },
    });
    const ws = client();
    await ws.waitClosed();
    expect(ws.responseStatus).toBe(200);
    expect(server.upgrade(kept!)).toBe(false);
    expect(ip).not.toBeNull();
    expect(ip!.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(ip!.port).toBeGreaterThan(0);
    expect(server.requestIP(new Request("http://x/"))).toBeNull();
  });

  test("the upgrade hook, when given, still takes upgrade requests (fetch gets plain ones)", async () => {
    let fetchCalls = 0;
    const { client, sockets } = start({
      upgrade: () => ({ data: undefined }),
      fetch: () => (fetchCalls++, new Response("plain")),
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(fetchCalls).toBe(0);
  });

  test("server.url, pendingWebSockets, pendingRequests, id, development, as Bun.serve has them", async () => {
    const { client, server, sockets } = start({ hostname: "127.0.0.1", id: "chat-1", development: true });
    expect(server.url.href).toBe(`http://127.0.0.1:${server.port}/`);
    expect(server.id).toBe("chat-1");
    expect(server.development).toBe(true);
    expect(server.pendingWebSockets).toBe(0);
    const http = client({ rawRequest: "GET / HTTP/1.1\r\nHost: a\r\n" }); // not complete yet
    await waitFor(() => server.pendingRequests === 1, 2000, "one HTTP connection pending");
    http.terminate();
    await waitFor(() => server.pendingRequests === 0, 2000, "it went");
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(server.pendingWebSockets).toBe(1);
    ws.sendClose(1000);
    await ws.waitClosed();
    await waitFor(() => server.pendingWebSockets === 0, 2000, "the socket counted out");
  });
});

describe("Bun.serve's error and development options", () => {
  const plainGet = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

  test("a throwing fetch is answered with error()'s Response", async () => {
    const seen: unknown[] = [];
    const { client } = start({
      fetch() {
        throw new Error("db down");
      },
      error(error) {
        seen.push(error);
        return new Response("sorry", { status: 503 });
      },
    });
    const http = client({ rawRequest: plainGet });
    await http.waitClosed();
    expect(http.responseStatus).toBe(503);
    expect(http.responseBody).toBe("sorry");
    expect((seen[0] as Error).message).toBe("db down");
  });

  test("an async fetch that rejects, and an error handler that fails: 500", async () => {
    const { client } = start({
      fetch: async () => {
        throw new Error("late");
      },
      error: () => {
        throw new Error("the handler too");
      },
    });
    const http = client({ rawRequest: plainGet });
    await http.waitClosed();
    expect(http.responseStatus).toBe(500);
    expect(http.responseBody).not.toContain("the handler too"); // no stack by default
  });

  test("development: the 500 carries the error's stack; without it, it does not", async () => {
    const failing = () => {
      throw new Error("visible in development");
    };
    const dev = start({ fetch: failing, development: true }).client({ rawRequest: plainGet });
    await dev.waitClosed();
    expect(dev.responseStatus).toBe(500);
    expect(dev.responseBody).toContain("visible in development");
    const prod = start({ fetch: failing }).client({ rawRequest: plainGet });
    await prod.waitClosed();
    expect(prod.responseBody).not.toContain("visible in development");
  });
});
