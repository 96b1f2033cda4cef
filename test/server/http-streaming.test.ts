/**
 * Response bodies written as they are produced, on the fake backend: a ReadableStream goes out
 * chunked (HTTP/1.1) or close-delimited (HTTP/1.0), a body that is complete at once keeps its
 * Content-Length, backpressure holds the stream back while a slow client reads (queued bytes
 * stay under the writer's high-water mark), a stream that fails midway resets the connection
 * and is logged once, a client that goes away cancels the stream, and HEAD gets headers only.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ECONNRESET } from "../../src/api/errno.ts";
import type { Server, ServeOptions } from "../../src/api/websocket.ts";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import { FakeNetwork, type FakeNetworkOptions } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import {
  READ_AHEAD_BYTES, RESPONSE_HIGH_WATER,
} from "../../src/server/http-response-writer.ts";
import { firstDifference, patternBytes } from "../support/bytes.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";
import { capturingErrors, RawHttpClient, request } from "./http-support.ts";

const seed = Number(process.env.HIOLOAD_FAKE_SEED ?? 3);
const running: Server[] = [];
afterEach(async () => {
  for (const server of running.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

const encoder = new TextEncoder();
const RESET = -ECONNRESET;

function start(options: Partial<ServeOptions<undefined>>, networkOptions: FakeNetworkOptions = {}) {
  const network = new FakeNetwork({ seed, ...networkOptions });
  const serverTransport = new FakeTransport(network);
  const server = serve<undefined>({
    port: 0, backend: serverTransport, clock: new FakeClock(), closeTimeout: 1,
    websocket: { message() {} },
    ...options,
  } as ServeOptions<undefined>);
  running.push(server);
  const clientTransport = new FakeTransport(network, { poisonAfterCallback: false });
  const connect = () => new RawHttpClient(clientTransport, server.port);
  // The server's connections are the first slots of its transport.
  const queuedOnServer = () => Math.max(...[0, 1, 2, 3].map((id) => serverTransport.bufferedAmount(id)));
  return { server, network, connect, queuedOnServer };
}

/** Resolves when `resolve()` is called: a step the test releases. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

describe(`streamed responses (fake backend, seed ${seed})`, () => {
  test("many chunks to a client that reads slowly: chunked, queued bytes bounded, all arrive", async () => {
    const CHUNK = 16 * 1024;
    const COUNT = 128; // 2 MiB
    let produced = 0;
    let maxQueued = 0;
    let queued = () => 0;
    const body = patternBytes(CHUNK * COUNT, 9);
    const { connect, network, queuedOnServer } = start({
      fetch: () => new Response(new ReadableStream<Uint8Array>({
        pull(controller) {
          maxQueued = Math.max(maxQueued, queued());
          controller.enqueue(body.subarray(produced, produced + CHUNK));
          produced += CHUNK;
          if (produced === body.length) controller.close();
        },
      })),
    }, { pipeCapacity: 32 * 1024 });
    queued = queuedOnServer;
    const client = connect();
    client.pause(); // reads nothing for now
    client.send(request("/big"));
    // Wait until nothing moves: the pipe and the server's queue are full, the stream waits.
    let last = -1;
    await waitFor(() => {
      maxQueued = Math.max(maxQueued, queuedOnServer());
      const settled = !network.hasPendingWork() && produced === last;
      last = produced;
      return settled && produced > 0;
    }, 5000, "the stream held back");
    await Bun.sleep(5);
    expect(produced).toBe(last); // nothing more was read while the client did not read
    // Pipe (32 KiB) + queue (high-water mark) + what the read-ahead and the stream hold.
    expect(produced).toBeLessThanOrEqual(32 * 1024 + RESPONSE_HIGH_WATER + READ_AHEAD_BYTES + 3 * CHUNK);
    expect(maxQueued).toBeLessThanOrEqual(RESPONSE_HIGH_WATER);
    client.resume();
    await waitFor(() => {
      maxQueued = Math.max(maxQueued, queuedOnServer());
      return client.tail(7) === "\r\n0\r\n\r\n";
    }, 10_000, () => `the whole body (${client.bytesReceived} bytes so far)`);
    expect(maxQueued).toBeLessThanOrEqual(RESPONSE_HIGH_WATER);
    const [response] = client.responses();
    expect(response.framing).toBe("chunked");
    expect(response.headers.has("content-length")).toBe(false);
    expect(response.headers.get("connection")).toBe("keep-alive");
    expect(response.chunks).toBeGreaterThan(COUNT / 2);
    expect(firstDifference(Buffer.from(response.body, "latin1"), body)).toBeNull();
    expect(client.closedReason).toBeUndefined();
  });

  test("pipelined requests with streamed answers over a faulty network: every body whole, in order", async () => {
    const { connect } = start({
      fetch(req) {
        const n = Number(new URL(req.url).searchParams.get("n"));
        let sent = 0;
        return new Response(new ReadableStream<Uint8Array>({
          async pull(controller) {
            await Bun.sleep(0);
            controller.enqueue(patternBytes(5000 + n * 777, n * 100 + sent));
            if (++sent === 4) controller.close();
          },
        }));
      },
    }, { maxChunk: 1500, partialSendRatio: 0.3, delayTurnsMax: 2, pipeCapacity: 8 * 1024 });
    const client = connect();
    client.send(Array.from({ length: 5 }, (_, n) => request(`/?n=${n}`)).join(""));
    const responses = await client.waitResponses(5, [], 10_000);
    for (let n = 0; n < 5; n++) {
      const expected = Buffer.concat([0, 1, 2, 3].map((i) => patternBytes(5000 + n * 777, n * 100 + i)));
      expect(responses[n].framing).toBe("chunked");
      expect(firstDifference(Buffer.from(responses[n].body, "latin1"), expected)).toBeNull();
    }
  });

  test("each chunk is sent when the stream yields it, in the order yielded", async () => {
    const steps = [gate(), gate(), gate()];
    let pulls = 0;
    const { connect } = start({
      fetch: () => new Response(new ReadableStream<Uint8Array>({
        async pull(controller) {
          const step = pulls++;
          if (step === steps.length) {
            controller.close();
            return;
          }
          await steps[step].promise;
          controller.enqueue(encoder.encode(`event ${step}\n`));
        },
      }), { headers: { "Content-Type": "text/event-stream" } }),
    });
    const client = connect();
    client.send(request("/events"));
    await waitFor(() => client.text().includes("\r\n\r\n"), 2000, "the head before any chunk");
    expect(client.text()).toContain("Transfer-Encoding: chunked\r\n");
    for (let step = 0; step < steps.length; step++) {
      steps[step].open();
      await waitFor(() => client.text().includes(`event ${step}\n\r\n`), 2000, `chunk ${step}`);
      // Sent as soon as it was yielded: the next one is not there before its gate opens.
      if (step + 1 < steps.length) expect(client.text()).not.toContain(`event ${step + 1}`);
    }
    const [response] = await client.waitResponses(1);
    expect(response.body).toBe("event 0\nevent 1\nevent 2\n");
    expect(response.chunks).toBe(3);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
  });

  test("a stream that errors midway: reset, no terminating chunk, logged once", async () => {
    const failNow = gate();
    let pulls = 0;
    const { connect } = start({
      fetch: () => new Response(new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (pulls++ < 2) {
            await Bun.sleep(1);
            controller.enqueue(encoder.encode(`part ${pulls}`));
            return;
          }
          await failNow.promise;
          controller.error(new Error("disk on fire"));
        },
      })),
    });
    const client = connect();
    const logged = await capturingErrors(async () => {
      client.send(request("/"));
      await waitFor(() => client.text().includes("part 2\r\n"), 2000, "two chunks");
      failNow.open();
      await client.waitClosed();
    });
    expect(client.closedReason).toBe(RESET);
    expect(client.text()).not.toContain("\r\n0\r\n\r\n");
    expect(client.responses()).toEqual([]); // never complete
    expect(logged.length).toBe(1);
    expect(String(logged[0][1])).toContain("disk on fire");
  });

  test("a stream that fails before anything was sent: 500, closed, logged once", async () => {
    const { connect } = start({
      fetch: () => new Response(new ReadableStream({ pull() { throw new Error("no data"); } })),
    });
    const client = connect();
    const logged = await capturingErrors(async () => {
      client.send(request("/"));
      await client.waitClosed();
    });
    expect(client.responses().map((r) => [r.status, r.headers.get("connection")]))
      .toEqual([[500, "close"]]);
    expect(logged.length).toBe(1);
  });

  test("a chunk that is not bytes: reset and logged once", async () => {
    const { connect } = start({
      fetch: () => new Response(new ReadableStream({
        async pull(controller) {
          await Bun.sleep(1);
          controller.enqueue(42 as unknown as Uint8Array);
        },
      })),
    });
    const client = connect();
    const logged = await capturingErrors(async () => {
      client.send(request("/"));
      await client.waitClosed();
    });
    expect(client.closedReason).toBe(RESET);
    expect(logged.length).toBe(1);
  });

  for (const waitingOn of ["the stream", "a slow client"]) {
    test(`a client that goes away mid-stream cancels the stream (waiting on ${waitingOn})`, async () => {
      let cancelled: unknown = "not cancelled";
      let pulls = 0;
      const never = new Promise<void>(() => {});
      const { connect, server } = start({
        fetch: () => new Response(new ReadableStream<Uint8Array>({
          async pull(controller) {
            pulls++;
            if (waitingOn === "the stream" && pulls > 2) await never;
            controller.enqueue(new Uint8Array(16 * 1024).fill(pulls));
          },
          cancel(reason) {
            cancelled = reason;
          },
        })),
      }, { pipeCapacity: 16 * 1024 });
      const client = connect();
      if (waitingOn === "a slow client") client.pause();
      client.send(request("/"));
      await waitFor(() => pulls > 2, 2000, "the stream started");
      await Bun.sleep(5);
      client.terminate();
      await waitFor(() => cancelled !== "not cancelled", 2000, "cancel() called");
      const pullsAtCancel = pulls;
      await Bun.sleep(5);
      expect(pulls).toBe(pullsAtCancel);
      await waitFor(() => server.stats().pendingHandshakes === 0, 2000, "connection gone");
    });
  }

  test("HEAD of a streamed response: headers only, the stream cancelled, the connection kept", async () => {
    let cancelled = false;
    const { connect } = start({
      fetch: (req) => req.method === "HEAD"
        ? new Response(new ReadableStream({
          async pull(controller) {
            await Bun.sleep(1);
            controller.enqueue(encoder.encode("never sent"));
          },
          cancel() {
            cancelled = true;
          },
        }))
        : new Response("after"),
    });
    const client = connect();
    client.send(request("/", {}, "HEAD"));
    const [head] = await client.waitResponses(1, ["HEAD"]);
    expect(head.status).toBe(200);
    expect(head.headers.get("transfer-encoding")).toBe("chunked"); // what a GET would get
    expect(head.headers.get("connection")).toBe("keep-alive");
    await waitFor(() => cancelled, 2000, "the stream cancelled");
    client.send(request("/"));
    const responses = await client.waitResponses(2, ["HEAD", "GET"]);
    expect(responses[1].body).toBe("after");
    expect(client.text()).not.toContain("never sent");
  });

  test("HEAD of a body with a known length keeps its Content-Length, sends no body", async () => {
    const { connect } = start({ fetch: () => new Response("0123456789") });
    const client = connect();
    client.send(request("/", {}, "HEAD") + request("/"));
    const responses = await client.waitResponses(2, ["HEAD", "GET"]);
    expect(responses.map((r) => [r.headers.get("content-length"), r.body]))
      .toEqual([["10", ""], ["10", "0123456789"]]);
  });

  test("HTTP/1.0: a stream is delimited by closing the connection", async () => {
    const { connect } = start({
      fetch: () => new Response(new ReadableStream<Uint8Array>({
        async start(controller) {
          await Bun.sleep(1);
          controller.enqueue(encoder.encode("one,"));
          await Bun.sleep(1);
          controller.enqueue(encoder.encode("two"));
          controller.close();
        },
      })),
    });
    for (const ask of ["", "Connection: keep-alive\r\n"]) {
      const client = connect();
      client.send(`GET / HTTP/1.0\r\n${ask}\r\n`);
      await client.waitClosed();
      const [response] = client.responses();
      expect(response.framing).toBe("close");
      expect(response.headers.get("connection")).toBe("close");
      expect(response.body).toBe("one,two");
      expect(client.closedReason).toBe(0);
    }
  });

  test("a stream with its own Content-Length is streamed with it, and kept alive", async () => {
    const { connect } = start({
      fetch: (req) => new Response(new ReadableStream<Uint8Array>({
        async start(controller) {
          await Bun.sleep(1);
          controller.enqueue(encoder.encode("abc"));
          await Bun.sleep(1);
          controller.enqueue(encoder.encode(new URL(req.url).pathname === "/short" ? "d" : "def"));
          controller.close();
        },
      }), { headers: { "Content-Length": "6" } }),
    });
    const client = connect();
    client.send(request("/"));
    const [response] = await client.waitResponses(1);
    expect(response.framing).toBe("length");
    expect(response.body).toBe("abcdef");
    expect(response.headers.get("connection")).toBe("keep-alive");
    const logged = await capturingErrors(async () => {
      client.send(request("/short"));
      await client.waitClosed();
    });
    expect(client.closedReason).toBe(RESET);
    expect(logged.length).toBe(1);
  });

  test("bodies complete at once keep Content-Length (string, bytes, Blob, JSON, a closed stream)", async () => {
    const big = "x".repeat(1 << 20);
    const bytes = patternBytes(100_000, 4);
    const bodies: [string, () => Response, string][] = [
      ["string", () => new Response("hello"), "hello"],
      ["empty string", () => new Response(""), ""],
      ["null", () => new Response(null), ""],
      ["1 MiB string", () => new Response(big), big],
      ["Uint8Array", () => new Response(bytes), latin1(bytes)],
      ["ArrayBuffer", () => new Response(bytes.slice().buffer), latin1(bytes)],
      ["Blob", () => new Response(new Blob(["blob ", "parts"])), "blob parts"],
      ["JSON", () => Response.json({ a: 1 }), "{\"a\":1}"],
      ["stream enqueued and closed", () => new Response(new ReadableStream({
        start(controller) {
          controller.enqueue(encoder.encode("ready "));
          controller.enqueue("at once");
          controller.close();
        },
      })), "ready at once"],
    ];
    const { connect } = start({
      fetch: (req) => bodies[Number(new URL(req.url).searchParams.get("i"))][1](),
    });
    const client = connect();
    for (const [i, [name, , expected]] of bodies.entries()) {
      client.send(request(`/?i=${i}`));
      await waitFor(() => client.bytesReceived > 0 && client.responses().length === i + 1, 5000,
        `response ${name}`);
      const response = client.responses()[i];
      expect({ name, framing: response.framing }).toEqual({ name, framing: "length" });
      expect(response.headers.get("content-length")).toBe(String(Buffer.byteLength(expected, "latin1")));
      expect(response.body === expected).toBe(true);
    }
  });

  test("204 and 304 go without a body on a kept-alive connection", async () => {
    const { connect } = start({
      fetch: (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/204") return new Response(null, { status: 204 });
        if (path === "/304") return new Response(null, { status: 304 });
        return new Response("last");
      },
    });
    const client = connect();
    client.send(request("/204") + request("/304") + request("/"));
    const responses = await client.waitResponses(3);
    expect(responses.map((r) => [r.status, r.framing, r.body])).toEqual([
      [204, "none", ""], [304, "none", ""], [200, "length", "last"],
    ]);
    expect(responses[0].headers.has("content-length")).toBe(false);
  });

  test("a Response whose body was already read: 500", async () => {
    const { connect } = start({
      async fetch() {
        const response = new Response("used");
        await response.text();
        return response;
      },
    });
    const client = connect();
    const logged = await capturingErrors(async () => {
      client.send(request("/"));
      await client.waitClosed();
    });
    expect(client.responses().map((r) => r.status)).toEqual([500]);
    expect(logged.length).toBe(1);
  });
});
