/**
 * The server's plain-HTTP edges, end to end: malformed Host values, methods a Web Request
 * cannot carry, HTTP/1.0 (health checks), and what a handshake that never finishes gets at
 * its deadline (408 and FIN, not a bare reset). On the fake backend with a FakeClock, so
 * every timeout is deterministic; the deadline tests run on io_uring over loopback too,
 * where FIN and RST are the kernel's.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Server, ServeOptions } from "../../src/api/websocket.ts";
import { ECONNRESET } from "../../src/api/errno.ts";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import { FakeNetwork, type FakeNetworkOptions } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";
import { capturingErrors } from "./http-support.ts";

const seed = Number(process.env.HIOLOAD_FAKE_SEED ?? 11);
const running: Server[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const CLOSE_TIMEOUT_S = 1;
/** Onto the deadline, past the tick that checks it (ticks every closeTimeout / 4). */
const PAST_DEADLINE_MS = CLOSE_TIMEOUT_S * 1000 + 300;
/** A peer's onClose reason when the server reset the connection. */
const RESET = -ECONNRESET;

function upgradeHead(host: string, version = "HTTP/1.1"): string {
  return `GET /ws ${version}\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

function start(options: Partial<ServeOptions<undefined>> = {},
  networkOptions: FakeNetworkOptions = {}) {
  const network = new FakeNetwork({ seed, ...networkOptions });
  const clock = new FakeClock();
  const server = serve<undefined>({
    port: 0, backend: new FakeTransport(network), clock, closeTimeout: CLOSE_TIMEOUT_S,
    websocket: { message: (ws, message) => void ws.send(message) },
    ...options,
  } as ServeOptions<undefined>);
  running.push(server);
  const clientTransport = new FakeTransport(network, { poisonAfterCallback: false });
  const raw = (rawRequest: string) =>
    TestWsClient.connect(clientTransport, server.port, { rawRequest });
  return { server, clock, clientTransport, raw };
}

/** Sends `request`, waits for the answer and the close; returns the client. */
async function exchange(raw: (request: string) => TestWsClient, request: string) {
  const client = raw(request);
  await client.waitClosed(3000);
  return client;
}

describe(`malformed Host: 400, nothing logged (fake backend, seed ${seed})`, () => {
  const malformed = ["[", "a:b:c", "%zz", "[::1", "::1", "[1::2::3]", "a:8o", ":80", "[v1.x]"];
  // Valid by RFC 3986 but refused by the URL parser the Web Request is built with.
  const notAUrlHost = ["256.1.1.1", "a%20b", "1.2.3.4.5"];

  for (const withHooks of [false, true]) {
    const hooks = withHooks ? "with upgrade and fetch hooks" : "without hooks";
    test(`upgrade requests ${hooks}`, async () => {
      let hookCalls = 0;
      const { raw } = start(withHooks ? {
        upgrade: () => void hookCalls++,
        fetch: () => new Response("hook"),
      } : {});
      const hosts = withHooks ? [...malformed, ...notAUrlHost] : malformed;
      const logged = await capturingErrors(async () => {
        for (const host of hosts) {
          const client = await exchange(raw, upgradeHead(host));
          expect({ host, status: client.responseStatus }).toEqual({ host, status: 400 });
        }
      });
      expect(logged).toEqual([]);
      expect(hookCalls).toBe(0);
    });
  }

  test("plain requests to fetch, and absolute-form targets with a bad authority", async () => {
    let fetchCalls = 0;
    const { raw } = start({ fetch: () => (fetchCalls++, new Response("hook")) });
    const requests = [...malformed, ...notAUrlHost].map(
      (host) => `GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    requests.push("GET http://%zz/x HTTP/1.1\r\nHost: a\r\n\r\n");
    requests.push("GET http://[/x HTTP/1.1\r\nHost: a\r\n\r\n");
    const logged = await capturingErrors(async () => {
      for (const request of requests) {
        const client = await exchange(raw, request);
        expect({ request, status: client.responseStatus }).toEqual({ request, status: 400 });
      }
    });
    expect(logged).toEqual([]);
    expect(fetchCalls).toBe(0);
  });

  test("well-formed hosts still reach the hooks", async () => {
    const urls: string[] = [];
    const { raw } = start({
      fetch: (request) => (urls.push(request.url), new Response("ok")),
    });
    for (const host of ["[::1]:8080", "127.0.0.1", "example.com:80", "xn--bcher-kva.example"]) {
      // Connection: close: a 200 now keeps the connection open otherwise (keep-alive).
      const client = await exchange(raw, `GET /p HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(client.responseStatus).toBe(200);
    }
    expect(urls).toEqual(["http://[::1]:8080/p", "http://127.0.0.1/p", "http://example.com/p",
      "http://xn--bcher-kva.example/p"]);
  });
});

describe("methods reach fetch exactly as sent, or are refused", () => {
  test("BREW, Patch, get, TRACK: 501 before fetch; the methods Request keeps pass", async () => {
    const methods: string[] = [];
    const { raw } = start({
      fetch: (request) => (methods.push(request.method), new Response("ok")),
    });
    for (const method of ["BREW", "Patch", "get", "patch", "TRACK", "post"]) {
      const client = await exchange(raw, `${method} / HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect({ method, status: client.responseStatus }).toEqual({ method, status: 501 });
    }
    expect(methods).toEqual([]);
    const passed = ["GET", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "M-SEARCH"];
    for (const method of passed) {
      // Connection: close: a 200 keeps the connection open otherwise (keep-alive).
      const client = await exchange(raw, `${method} / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      expect({ method, status: client.responseStatus }).toEqual({ method, status: 200 });
    }
    expect(methods).toEqual(passed);
  });

  test("a lower-case get asking for WebSocket: 405, the upgrade hook never sees it", async () => {
    let hookCalls = 0;
    const { raw } = start({ upgrade: () => void hookCalls++ });
    const client = await exchange(raw, upgradeHead("a").replace("GET", "get"));
    expect(client.responseStatus).toBe(405);
    expect(hookCalls).toBe(0);
  });
});

describe("HTTP/1.0", () => {
  test("a health check without Host is answered by fetch, then closed (FIN)", async () => {
    const seen: string[] = [];
    const { raw } = start({
      fetch: (request) => (seen.push(`${request.method} ${new URL(request.url).pathname}`),
        new Response("up")),
    });
    for (const request of ["GET /health HTTP/1.0\r\n\r\n",
      "OPTIONS / HTTP/1.0\r\nUser-Agent: HAProxy\r\n\r\n"]) {
      const client = await exchange(raw, request);
      expect(client.responseStatus).toBe(200);
      expect(client.responseHead).toContain("Connection: close");
      expect(client.responseBody).toBe("up");
      expect(client.closedReason).toBe(0);
    }
    // Asking for keep-alive (it used to be closed too): answered, and the connection stays.
    const kept = raw("GET /health HTTP/1.0\r\nHost: lb.internal\r\nConnection: keep-alive\r\n\r\n");
    await waitFor(() => kept.responseBody === "up", 3000, "keep-alive answer");
    expect(kept.responseHead).toContain("Connection: keep-alive");
    expect(kept.closedReason).toBeUndefined();
    expect(seen).toEqual(["GET /health", "OPTIONS /", "GET /health"]);
  });

  test("HEAD is answered without a body (HTTP/1.1 and HTTP/1.0)", async () => {
    const { raw } = start({ fetch: () => new Response("a body") });
    // Connection: close: the HTTP/1.1 one would be kept alive otherwise.
    const requests = ["HEAD /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
      "HEAD /health HTTP/1.0\r\n\r\n"];
    for (const request of requests) {
      const client = await exchange(raw, request);
      expect(client.responseStatus).toBe(200);
      expect(client.responseHead).toContain("Content-Length: 6");
      expect(client.responseBody).toBe("");
    }
  });

  test("a WebSocket upgrade over HTTP/1.0 is refused with 400, before the hooks", async () => {
    let hookCalls = 0;
    const { raw } = start({ upgrade: () => void hookCalls++, fetch: () => new Response("x") });
    const client = await exchange(raw, upgradeHead("a", "HTTP/1.0"));
    expect(client.responseStatus).toBe(400);
    expect(client.responseBody).toContain("HTTP/1.1");
    expect(hookCalls).toBe(0);
  });

  test("HTTP/2.0 stays 505 and malformed versions 400", async () => {
    const { raw } = start({ fetch: () => new Response("x") });
    expect((await exchange(raw, "GET / HTTP/2.0\r\nHost: a\r\n\r\n")).responseStatus).toBe(505);
    expect((await exchange(raw, "GET / HTTP/1.x\r\nHost: a\r\n\r\n")).responseStatus).toBe(400);
  });
});

describe("handshake deadline (fake backend)", () => {
  test("an incomplete request head gets 408 with Connection: close, then FIN", async () => {
    const { raw, clock, server } = start();
    const request = "GET / HTTP/1.1\r\nHost: a\r\n"; // no empty line: never complete
    const slow = raw(request);
    await waitFor(() => server.stats().bytesIn === request.length, 2000, "request bytes in");
    clock.advance(PAST_DEADLINE_MS);
    await slow.waitClosed(3000);
    expect(slow.responseStatus).toBe(408);
    expect(slow.responseHead).toContain("Connection: close");
    expect(slow.closedReason).toBe(0); // FIN, not ECONNRESET
    expect(server.stats().pendingHandshakes).toBe(0);
  });

  test("an incomplete body gets 408 too", async () => {
    const { raw, clock, server } = start({ fetch: () => new Response("x") });
    const request = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc";
    const slow = raw(request);
    await waitFor(() => server.stats().bytesIn === request.length, 2000, "request bytes in");
    clock.advance(PAST_DEADLINE_MS);
    await slow.waitClosed(3000);
    expect(slow.responseStatus).toBe(408);
    expect(slow.closedReason).toBe(0);
  });

  test("a connection that sent nothing is closed with FIN and no response", async () => {
    const { raw, clock, server } = start();
    const idle = raw("");
    await waitFor(() => server.stats().pendingHandshakes === 1, 2000, "pending");
    clock.advance(PAST_DEADLINE_MS);
    await idle.waitClosed(3000);
    expect(idle.responseStatus).toBe(0);
    expect(idle.responseBody).toBe("");
    expect(idle.closedReason).toBe(0);
  });

  test("a hook still running at the deadline: reset (the hook is still deciding)", async () => {
    const { raw, clock, server } = start({ upgrade: () => new Promise<void>(() => {}) });
    const waiting = raw(upgradeHead("a"));
    await waitFor(() => server.stats().bytesIn === upgradeHead("a").length, 2000, "bytes in");
    clock.advance(PAST_DEADLINE_MS);
    await waiting.waitClosed(3000);
    expect(waiting.responseStatus).toBe(0);
    expect(waiting.closedReason).toBe(RESET);
  });

  test("a 408 the client does not read is reset at the next deadline", async () => {
    const { raw, clock, server, clientTransport } = start({}, { pipeCapacity: 16 });
    const request = "GET / HTTP/1.1\r\n";
    const slow = raw(request);
    await waitFor(() => server.stats().bytesIn === request.length, 2000, "request bytes in");
    clientTransport.pause(0); // the 408 cannot be flushed: the graceful close never ends
    clock.advance(PAST_DEADLINE_MS);
    await waitFor(() => server.stats().bytesOut > 0, 2000, "408 being written");
    expect(slow.closedReason).toBeUndefined();
    clock.advance(PAST_DEADLINE_MS);
    await slow.waitClosed(3000);
    expect(slow.closedReason).toBe(RESET);
    expect(server.stats().pendingHandshakes).toBe(0);
  });
});


interface TcpOutcome {
  received: string;
  /** "fin": the server ended the stream; "reset": ECONNRESET; else the error's text. */
  ending: string;
  afterMs: number;
}

/** A plain TCP client: sends `payload` (maybe nothing), then records all until the end. */
function tcpExchange(port: number, payload: string, timeoutMs = 3000): Promise<TcpOutcome> {
  const started = performance.now();
  return withTimeout(new Promise<TcpOutcome>((resolve, reject) => {
    let received = "";
    let ending = "";
    Bun.connect({
      hostname: "127.0.0.1", port,
      socket: {
        open(socket) {
          if (payload.length > 0) socket.write(payload);
        },
        data(_, chunk) {
          received += chunk.toString("latin1");
        },
        end(socket) {
          ending ||= "fin";
          socket.end();
        },
        close(_, error) {
          const code = (error as { code?: string } | undefined)?.code;
          ending ||= code === "ECONNRESET" ? "reset" : String(error ?? "closed");
          resolve({ received, ending, afterMs: performance.now() - started });
        },
        connectError(_, error) {
          reject(error);
        },
      },
    }).catch(reject);
  }), timeoutMs, `TCP exchange on :${port}`);
}

describeEachBackend("handshake deadline over loopback", (backend) => {
  function startUring(options: Partial<ServeOptions<undefined>> = {}) {
    const server = serve<undefined>({
      port: 0, hostname: "127.0.0.1", backend, closeTimeout: 0.2,
      transport: { recvBufferCount: 16, sendChunkCount: 64 },
      websocket: { message() {} },
      ...options,
    } as ServeOptions<undefined>);
    running.push(server);
    return server;
  }

  test("slowloris: 408 with Connection: close, then FIN", async () => {
    const server = startUring();
    await server.ready;
    const outcome = await tcpExchange(server.port, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1");
    expect(outcome.received).toStartWith("HTTP/1.1 408 Request Timeout\r\n");
    expect(outcome.received).toContain("Connection: close\r\n");
    expect(outcome.ending).toBe("fin");
  });

  test("a connection that sends nothing: FIN, no bytes", async () => {
    const server = startUring();
    await server.ready;
    const outcome = await tcpExchange(server.port, "");
    expect(outcome).toMatchObject({ received: "", ending: "fin" });
  });

  test("an upgrade hook that never settles: reset at the deadline", async () => {
    const server = startUring({ upgrade: () => new Promise<void>(() => {}) });
    await server.ready;
    const outcome = await tcpExchange(server.port, upgradeHead("a"));
    expect(outcome).toMatchObject({ received: "", ending: "reset" });
  });
});
