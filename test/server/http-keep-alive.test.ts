/**
 * Plain HTTP/1.1 through `fetch` on a persistent connection, on the fake backend (exact bytes,
 * deterministic order, a FakeClock for the keep-alive timeout): several requests on one
 * connection, pipelined requests answered in order one at a time, `Connection: close`,
 * HTTP/1.0, a WebSocket upgrade after plain requests on the same connection (the upgrade
 * hook and fetch + server.upgrade, sync and async), the keep-alive timeout, and the errors
 * that still close.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ECONNRESET } from "../../src/api/errno.ts";
import type { Server, ServeOptions } from "../../src/api/websocket.ts";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import { FakeNetwork, type FakeNetworkOptions } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { writeFrame } from "../../src/protocol/frame-writer.ts";
import { acceptKey } from "../../src/protocol/handshake.ts";
import { serve } from "../../src/server/serve.ts";
import { holdsFor, waitFor, withTimeout } from "../support/wait-for.ts";
import { capturingErrors, RawHttpClient, request } from "./http-support.ts";

const seed = Number(process.env.HIOLOAD_FAKE_SEED ?? 5);
const running: Server[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

const CLOSE_TIMEOUT_S = 1;
/** Past the deadline, and past the tick (every closeTimeout / 4) that checks it. */
const PAST_DEADLINE_MS = CLOSE_TIMEOUT_S * 1000 + 300;

function start(options: Partial<ServeOptions<{ n: number } | undefined>> = {},
  networkOptions: FakeNetworkOptions = {}) {
  const network = new FakeNetwork({ seed, ...networkOptions });
  const clock = new FakeClock();
  const server = serve<{ n: number } | undefined>({
    port: 0, backend: new FakeTransport(network), clock, closeTimeout: CLOSE_TIMEOUT_S,
    websocket: { message: (ws, message) => void ws.send(message) },
    ...options,
  } as ServeOptions<{ n: number } | undefined>);
  running.push(server);
  const clientTransport = new FakeTransport(network, { poisonAfterCallback: false });
  const connect = () => new RawHttpClient(clientTransport, server.port);
  return { server, clock, connect };
}

/** Head lines with the Date value blanked (it changes every second). */
const headLines = (head: string) =>
  head.split("\r\n").map((line) => (line.startsWith("Date: ") ? "Date: *" : line));

/** Sec-WebSocket-Key: base64 of 16 bytes. */
const keyOf = (i: number) => Buffer.from(`keep-alive #${String(i).padStart(4, "0")}`).toString("base64");
function upgradeRequest(key = keyOf(0), path = "/ws"): string {
  return `GET ${path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** A masked client text frame. */
function textFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const frame = new Uint8Array(payload.length + 14);
  const size = writeFrame(frame, 0, OPCODE_TEXT, true, false, payload, 0, payload.length, 0x1234abcd);
  return frame.subarray(0, size);
}

/** The server's unmasked echo of a short text frame. */
const echoOf = (text: string) => `\x81${String.fromCharCode(text.length)}${text}`;

describe(`keep-alive (fake backend, seed ${seed})`, () => {
  test("three requests one after another on one connection, each with Connection: keep-alive", async () => {
    const ports: number[] = [];
    const { connect, server } = start({
      fetch: (req, srv) => {
        ports.push(srv.requestIP(req)!.port);
        return new Response(`you asked ${new URL(req.url).pathname}`);
      },
    });
    const client = connect();
    for (let i = 1; i <= 3; i++) {
      client.send(request(`/r${i}`));
      const responses = await client.waitResponses(i);
      expect(responses.length).toBe(i);
      const response = responses[i - 1];
      expect(headLines(response.head)).toEqual([
        "HTTP/1.1 200 OK",
        "Connection: keep-alive",
        "Keep-Alive: timeout=1",
        "Date: *",
        `Content-Length: ${`you asked /r${i}`.length}`,
      ]);
      expect(response.body).toBe(`you asked /r${i}`);
    }
    expect(client.closedReason).toBeUndefined();
    expect(new Set(ports).size).toBe(1);
    expect(server.stats().transport.accepted).toBe(1);
    expect(server.stats().pendingHandshakes).toBe(1);
  });

  test("pipelined requests are answered in order, one at a time", async () => {
    const calls: { path: string; answer: (text: string) => void }[] = [];
    const { connect } = start({
      fetch: (req) => new Promise<Response>((resolve) => {
        calls.push({
          path: new URL(req.url).pathname,
          answer: (text) => resolve(new Response(text)),
        });
      }),
    });
    const client = connect();
    client.send(request("/1") + request("/2") + request("/3"));
    for (let i = 1; i <= 3; i++) {
      await waitFor(() => calls.length === i, 2000, `fetch call ${i}`);
      // The next request waits for this answer: fetch is not called for it meanwhile.
      await holdsFor(() => calls.length === i, 30, `only ${i} fetch calls before answer ${i}`);
      calls[i - 1].answer(`answer ${i}`);
      await client.waitResponses(i);
    }
    expect(calls.map((call) => call.path)).toEqual(["/1", "/2", "/3"]);
    expect(client.responses().map((response) => response.body))
      .toEqual(["answer 1", "answer 2", "answer 3"]);
  });

  for (const maxChunk of [0, 7]) {
    test(`pipelined bodies and bytes held while answering keep their order (maxChunk ${maxChunk})`, async () => {
      const { connect } = start({
        async fetch(req) {
          const body = req.method === "POST" ? await req.text() : "";
          await Bun.sleep(1); // the next requests arrive while this one is answered
          return new Response(`${req.method} ${new URL(req.url).pathname} ${body}`);
        },
      }, { maxChunk });
      const client = connect();
      const first = request("/a", { "Content-Length": "5" }, "POST") + "hello";
      const chunked = request("/b", { "Transfer-Encoding": "chunked" }, "POST") +
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
      client.send(first + chunked + request("/c"));
      client.send(request("/d") + request("/e", { "Content-Length": "2" }, "PUT") + "xy");
      const responses = await client.waitResponses(5);
      expect(responses.map((response) => response.body)).toEqual([
        "POST /a hello", "POST /b abcde", "GET /c ", "GET /d ", "PUT /e ",
      ]);
      expect(responses.every((r) => r.headers.get("connection") === "keep-alive")).toBe(true);
    });
  }

  test("Connection: close is answered with Connection: close, then FIN; nothing behind it is read", async () => {
    let calls = 0;
    const { connect } = start({ fetch: () => (calls++, new Response("bye")) });
    const client = connect();
    client.send(request("/", { Connection: "close" }) + request("/after"));
    await client.waitClosed();
    const responses = client.responses();
    expect(responses.length).toBe(1);
    expect(responses[0].headers.get("connection")).toBe("close");
    expect(responses[0].headers.has("keep-alive")).toBe(false);
    expect(responses[0].body).toBe("bye");
    expect(client.closedReason).toBe(0);
    expect(calls).toBe(1);
  });

  test("a Response that says Connection: close closes the connection after it", async () => {
    const { connect } = start({ fetch: () => new Response("last", { headers: { Connection: "close" } }) });
    const client = connect();
    client.send(request("/"));
    await client.waitClosed();
    expect(client.responses().map((r) => [r.headers.get("connection"), r.body])).toEqual([["close", "last"]]);
    expect(client.closedReason).toBe(0);
  });

  test("HTTP/1.0: closed unless it asks for keep-alive; then a second request is served", async () => {
    const { connect } = start({ fetch: (req) => new Response(new URL(req.url).pathname) });
    const plain = connect();
    plain.send("GET /one HTTP/1.0\r\n\r\n");
    await plain.waitClosed();
    expect(plain.responses()[0].headers.get("connection")).toBe("close");
    expect(plain.responses()[0].body).toBe("/one");
    const kept = connect();
    kept.send("GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    await kept.waitResponses(1);
    kept.send("GET /three HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const responses = await kept.waitResponses(2);
    expect(responses.map((r) => [r.headers.get("connection"), r.body]))
      .toEqual([["keep-alive", "/two"], ["keep-alive", "/three"]]);
    expect(responses.every((r) => r.head.startsWith("HTTP/1.1 200 OK"))).toBe(true);
    expect(kept.closedReason).toBeUndefined();
  });

  test("the answer to a client that asked to close, or while the server stops, says close", async () => {
    const { connect, server } = start({ fetch: () => new Response("x") });
    const client = connect();
    client.send(request("/"));
    await client.waitResponses(1);
    void server.stop(true); // graceful: an idle kept-alive connection is closed with FIN
    await client.waitClosed();
    expect(client.closedReason).toBe(0);
    expect(client.responses().length).toBe(1);
  });
});

describe("a WebSocket upgrade on a kept-alive connection", () => {
  const paths: [string, Partial<ServeOptions<{ n: number } | undefined>>][] = [
    ["the upgrade hook", {
      upgrade: () => ({ data: { n: 1 } }),
      fetch: () => new Response("plain"),
    }],
    ["an async upgrade hook", {
      upgrade: async () => ({ data: { n: 1 } }),
      fetch: async () => new Response("plain"),
    }],
    ["fetch + server.upgrade", {
      fetch: (req, server) => (server.upgrade(req, { data: { n: 1 } }) ? undefined : new Response("plain")),
    }],
    ["fetch + server.upgrade after an await", {
      async fetch(req, server) {
        await Bun.sleep(1);
        return server.upgrade(req, { data: { n: 1 } }) ? undefined : new Response("plain");
      },
    }],
  ];
  for (const [name, options] of paths) {
    test(`after two plain requests: ${name}`, async () => {
      const { connect, server } = start(options);
      const client = connect();
      client.send(request("/page"));
      await client.waitResponses(1);
      client.send(request("/style.css"));
      await client.waitResponses(2);
      client.send(upgradeRequest());
      await waitFor(() => client.text().includes("101 Switching Protocols"), 3000, "101");
      client.send(textFrame("hi"));
      await waitFor(() => client.text().endsWith(echoOf("hi")), 3000, "echo");
      const responses = client.responses();
      expect(responses.map((r) => r.status)).toEqual([200, 200, 101]);
      expect(responses[2].headers.get("sec-websocket-accept")).toBe(acceptKey(keyOf(0)));
      expect(server.stats().connections).toBe(1);
      expect(server.stats().pendingHandshakes).toBe(0);
    });

    test(`pipelined behind a plain request, frames included: ${name}`, async () => {
      const { connect } = start(options, { maxChunk: 11 });
      const client = connect();
      const bytes = new TextEncoder().encode(request("/page") + upgradeRequest());
      const frame = textFrame("ok");
      const all = new Uint8Array(bytes.length + frame.length);
      all.set(bytes);
      all.set(frame, bytes.length);
      client.send(all);
      await waitFor(() => client.text().endsWith(echoOf("ok")), 3000, "echo");
      expect(client.responses().map((r) => r.status)).toEqual([200, 101]);
    });
  }

  test("handshake states reused after keep-alive serve later connections correctly", async () => {
    const { connect } = start({
      upgrade: (req) => ({ data: { n: Number(new URL(req.url).searchParams.get("n")) } }),
      fetch: () => new Response("plain"),
      websocket: { message: (ws, message) => void ws.send(`${ws.data!.n}:${message}`) },
    });
    for (let round = 0; round < 3; round++) {
      const clients = Array.from({ length: 20 }, () => connect());
      clients.forEach((client) => client.send(request("/")));
      await Promise.all(clients.map((client) => client.waitResponses(1)));
      clients.forEach((client, i) => client.send(upgradeRequest(keyOf(i), `/ws?n=${i}`)));
      await Promise.all(clients.map((client) =>
        waitFor(() => client.responses().length === 2, 3000, "101")));
      clients.forEach((client) => client.send(textFrame("x")));
      for (const [i, client] of clients.entries()) {
        const echo = `${i}:x`;
        await waitFor(() => client.text().endsWith(echoOf(echo)), 3000, `echo ${i}`);
        expect(client.responses()[1].headers.get("sec-websocket-accept")).toBe(acceptKey(keyOf(i)));
        client.terminate();
      }
    }
  });
});

describe("keep-alive timeout and errors", () => {
  test("an idle kept-alive connection gets a FIN at the deadline, nothing else", async () => {
    const { connect, clock, server } = start({ fetch: () => new Response("x") });
    const client = connect();
    client.send(request("/"));
    await client.waitResponses(1);
    const answered = client.bytesReceived;
    clock.advance(PAST_DEADLINE_MS - 400); // not yet
    await holdsFor(() => client.closedReason === undefined, 20, "still open before the deadline");
    clock.advance(400);
    await client.waitClosed();
    expect(client.closedReason).toBe(0);
    expect(client.bytesReceived).toBe(answered);
    expect(server.stats().pendingHandshakes).toBe(0);
  });

  test("a next request that stalls gets 408 at the deadline", async () => {
    const { connect, clock } = start({ fetch: () => new Response("x") });
    const client = connect();
    client.send(request("/"));
    await client.waitResponses(1);
    client.send("GET /slow HTTP/1.1\r\nHost: a\r\n");
    await Bun.sleep(5); // let the bytes arrive (the network runs on setImmediate)
    clock.advance(PAST_DEADLINE_MS);
    await client.waitClosed();
    const responses = client.responses();
    expect(responses.map((r) => r.status)).toEqual([200, 408]);
    expect(responses[1].headers.get("connection")).toBe("close");
    expect(client.closedReason).toBe(0);
  });

  test("the deadline starts over at the next request's first byte", async () => {
    const answers: (() => void)[] = [];
    const { connect, clock } = start({
      fetch: (req) => new URL(req.url).pathname === "/slow"
        ? new Promise<Response>((resolve) => answers.push(() => resolve(new Response("late"))))
        : new Response("x"),
    });
    const client = connect();
    client.send(request("/"));
    await client.waitResponses(1);
    clock.advance(800); // idle most of the keep-alive timeout
    client.send(request("/slow"));
    await waitFor(() => answers.length === 1, 2000, "fetch for /slow");
    clock.advance(600); // 1.4 s after the first response, 0.6 s into this request
    await holdsFor(() => client.closedReason === undefined, 20, "not reset");
    answers[0]();
    const responses = await client.waitResponses(2);
    expect(responses[1].body).toBe("late");
    clock.advance(PAST_DEADLINE_MS);
    await client.waitClosed();
    expect(client.closedReason).toBe(0);
  });

  test("a fetch still running at the deadline: reset, as on a first request", async () => {
    const { connect, clock } = start({
      fetch: (req) => new URL(req.url).pathname === "/hang"
        ? new Promise<Response>(() => {})
        : new Response("x"),
    });
    const client = connect();
    client.send(request("/"));
    await client.waitResponses(1);
    client.send(request("/hang"));
    await Bun.sleep(5);
    clock.advance(PAST_DEADLINE_MS);
    await client.waitClosed();
    expect(client.closedReason).toBe(-ECONNRESET);
  });

  test("errors we answer ourselves close a kept-alive connection", async () => {
    const { connect } = start({
      fetch: (req) => {
        if (new URL(req.url).pathname === "/throw") throw new Error("boom");
        return new Response("x");
      },
    });
    const bad = connect();
    bad.send(request("/"));
    await bad.waitResponses(1);
    bad.send("GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n" + request("/never"));
    await bad.waitClosed();
    expect(bad.responses().map((r) => [r.status, r.headers.get("connection")]))
      .toEqual([[200, "keep-alive"], [400, "close"]]);
    const failing = connect();
    const logged = await capturingErrors(async () => {
      failing.send(request("/") + request("/throw"));
      await failing.waitClosed();
    });
    expect(failing.responses().map((r) => r.status)).toEqual([200, 500]);
    expect(logged.length).toBe(1);
  });

  test("a refused upgrade request is answered and closed", async () => {
    const { connect } = start({
      upgrade: () => new Response("no", { status: 403 }),
      fetch: () => new Response("plain"),
    });
    const client = connect();
    client.send(request("/") + upgradeRequest());
    await client.waitClosed();
    expect(client.responses().map((r) => [r.status, r.headers.get("connection")]))
      .toEqual([[200, "keep-alive"], [403, "close"]]);
  });
});
