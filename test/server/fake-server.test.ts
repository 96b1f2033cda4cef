/**
 * The whole server on the in-memory fake backend: handshake, echo, fragmentation, every
 * close path, limits, backpressure, idle timeout, shutdown. Time is a FakeClock, so the
 * timeouts are deterministic; the network delivers in seeded random chunks.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { OPCODE_BINARY, OPCODE_CONTINUATION, OPCODE_PING, OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { patternBytes } from "../support/bytes.ts";
import { waitFor } from "../support/wait-for.ts";
import { TestWsClient } from "../support/ws-client.ts";
import { FAKE_SEED, startFakeServer as start, stopFakeServers } from "../support/fake-server.ts";

const seed = FAKE_SEED;
afterEach(stopFakeServers);

describe(`server on the fake backend (seed ${seed})`, () => {
  test("handshake: 101 with the RFC accept key, then echo of text and binary", async () => {
    const { client } = start();
    const ws = client();
    await ws.opened101();
    expect(ws.responseHead).toContain("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const sizes = [0, 1, 125, 126, 65535, 65536, 1 << 20];
    ws.sendText("héllo ✓");
    for (const size of sizes) ws.sendBinary(patternBytes(size, size));
    await ws.waitMessages(1 + sizes.length);
    const [text, ...binaries] = ws.messages();
    expect(text).toMatchObject({ opcode: OPCODE_TEXT, text: "héllo ✓" });
    binaries.forEach((message, i) => {
      expect(message.opcode).toBe(OPCODE_BINARY);
      expect(message.data).toEqual(patternBytes(sizes[i], sizes[i]));
    });
  });

  test("everything arrives one byte at a time and still works", async () => {
    const { client } = start({}, { maxChunk: 1 });
    const ws = client({ requestChunk: 1 });
    await ws.opened101();
    ws.sendText("a".repeat(300));
    ws.sendBinary(patternBytes(70_000, 3));
    await ws.waitMessages(2, 10_000);
    expect(ws.messages()[0].text).toBe("a".repeat(300));
    expect(ws.messages()[1].data).toEqual(patternBytes(70_000, 3));
  });

  test("fragmented message with a ping between fragments: one message, one pong", async () => {
    const { client } = start();
    const ws = client();
    await ws.opened101();
    ws.sendFrame(OPCODE_TEXT, "Hel", false);
    ws.sendFrame(OPCODE_PING, "p1");
    ws.sendFrame(OPCODE_CONTINUATION, "lo", true);
    await ws.waitMessages(1);
    expect(ws.messages()[0].text).toBe("Hello");
    const pong = ws.events.find((e) => e.type === "pong") as { data: Uint8Array } | undefined;
    expect(pong && new TextDecoder().decode(pong.data)).toBe("p1");
  });

  test("client close: the code is echoed, close handler gets code and reason", async () => {
    const { client, closes, server } = start();
    const ws = client();
    await ws.opened101();
    ws.sendClose(4001, "bye");
    await ws.waitClosed();
    expect(ws.closeFrame()).toMatchObject({ code: 4001 });
    await waitFor(() => closes.length === 1, 2000, "server close handler");
    expect(closes[0]).toEqual({ code: 4001, reason: "bye" });
    expect(server.stats().connections).toBe(0);
  });

  test("server close: close frame, then TCP closed once the client answers", async () => {
    const { client, closes, sockets } = start();
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    sockets[0].close(4000, "done");
    expect(sockets[0].readyState).toBe(2);
    expect(sockets[0].send("late")).toBe(0); // nothing after our close frame
    await waitFor(() => ws.closeFrame() !== undefined, 2000, "close frame at client");
    expect(ws.closeFrame()).toMatchObject({ code: 4000, reason: "done" });
    ws.sendClose(4000);
    await ws.waitClosed();
    await waitFor(() => closes.length === 1, 2000, "server close handler");
    expect(closes[0].code).toBe(4000);
  });

  test("a peer that vanishes is reported as 1006", async () => {
    const { client, closes } = start();
    const ws = client();
    await ws.opened101();
    ws.terminate();
    await waitFor(() => closes.length === 1, 2000, "close handler");
    expect(closes[0].code).toBe(1006);
  });

  const protocolErrors: [string, (ws: TestWsClient) => void, number][] = [
    ["unmasked frame", (ws) => ws.sendRaw(Uint8Array.of(0x81, 0x02, 0x68, 0x69)), 1002],
    ["reserved opcode", (ws) => ws.sendFrame(3, "x"), 1002],
    ["RSV1 without extension", (ws) => ws.sendFrame(OPCODE_TEXT, "x", true, true), 1002],
    ["invalid UTF-8", (ws) => ws.sendFrame(OPCODE_TEXT, Uint8Array.of(0xc3, 0x28)), 1007],
    ["close code 1005 on the wire", (ws) => ws.sendFrame(8, Uint8Array.of(0x03, 0xed)), 1002],
    ["1-byte close payload", (ws) => ws.sendFrame(8, Uint8Array.of(0x03)), 1002],
    ["continuation without a start", (ws) => ws.sendFrame(OPCODE_CONTINUATION, "x"), 1002],
    ["message over maxPayloadLength", (ws) => ws.sendBinary(new Uint8Array(1025)), 1009],
  ];
  for (const [name, act, code] of protocolErrors) {
    test(`protocol error: ${name} → close ${code}`, async () => {
      const { client, closes, server } = start({ maxPayloadLength: 1024 });
      const ws = client();
      await ws.opened101();
      act(ws);
      await ws.waitClosed();
      expect(ws.closeFrame()?.code).toBe(code);
      await waitFor(() => closes.length === 1, 2000, "close handler");
      expect(closes[0].code).toBe(code);
      expect(server.stats().protocolErrors).toBe(1);
    });
  }

  const handshakeErrors: [string, Parameters<typeof TestWsClient.connect>[2], number, string?][] = [
    ["missing key", { headers: { "Sec-WebSocket-Key": "" } }, 400],
    ["short key", { headers: { "Sec-WebSocket-Key": "c2hvcnQ=" } }, 400],
    ["version 8", { headers: { "Sec-WebSocket-Version": "8" } }, 426, "Sec-WebSocket-Version: 13"],
    ["no Upgrade header, no fetch", { headers: { Upgrade: "", Connection: "" } }, 426],
    ["headers over 16 KiB", { headers: { "X-Big": "x".repeat(17_000) } }, 431],
    ["POST upgrade", { rawRequest: "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n" }, 405],
  ];
  for (const [name, options, status, header] of handshakeErrors) {
    test(`handshake refused: ${name} → ${status}`, async () => {
      const { client } = start();
      const ws = client(options);
      await ws.waitClosed();
      expect(ws.responseStatus).toBe(status);
      if (header) expect(ws.responseHead).toContain(header);
    });
  }

  test("upgrade hook: data and subprotocol; a Response refuses", async () => {
    const { client, sockets } = start<{ user: string }>({
      upgrade: async (request) => {
        if (request.headers.get("authorization") !== "secret") {
          return new Response("no", { status: 401 });
        }
        return { data: { user: new URL(request.url).searchParams.get("u")! }, protocol: "chat",
          headers: { "X-Hello": "1" } };
      },
    });
    const refused = client();
    await refused.waitClosed();
    expect(refused.responseStatus).toBe(401);
    const ws = client({ path: "/?u=ann", headers: { Authorization: "secret",
      "Sec-WebSocket-Protocol": "json, chat" } });
    await ws.opened101();
    expect(ws.responseHead).toContain("Sec-WebSocket-Protocol: chat");
    expect(ws.responseHead).toContain("X-Hello: 1");
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(sockets[0].data).toEqual({ user: "ann" });
    expect(sockets[0].protocol).toBe("chat");
  });

  test("a Bun-style Sec-WebSocket-Protocol response header selects the subprotocol", async () => {
    const { client, sockets } = start({
      upgrade: () => ({ headers: { "Sec-WebSocket-Protocol": "v2" } }),
    });
    const ws = client({ headers: { "Sec-WebSocket-Protocol": "v1, v2" } });
    await ws.opened101();
    expect(ws.responseHead).toContain("Sec-WebSocket-Protocol: v2");
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(sockets[0].protocol).toBe("v2");
  });

  test("plain HTTP goes to fetch", async () => {
    const { client } = start({ fetch: (request) => new Response(`hi ${new URL(request.url).pathname}`) });
    // Connection: close: the connection is kept alive otherwise.
    const http = client({ rawRequest: "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" });
    await http.waitClosed();
    expect(http.responseStatus).toBe(200);
    expect(http.responseBody).toBe("hi /x");
  });

  test("backpressure: -1 when backed up, 0 over the limit, drain after", async () => {
    let drains = 0;
    const { client, sockets, clientTransport, server } = start({
      backpressureLimit: 256 * 1024,
      websocket: { message() {}, drain: () => void drains++ },
    }, { });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    clientTransport.pause(0); // the client stops reading
    const chunk = patternBytes(32 * 1024, 1);
    const results: number[] = [];
    for (let i = 0; i < 40; i++) results.push(sockets[0].send(chunk));
    expect(results[0]).toBe(32 * 1024);
    expect(results).toContain(-1);
    expect(results).toContain(0);
    expect(server.stats().dropped).toBeGreaterThan(0);
    expect(sockets[0].getBufferedAmount()).toBeLessThanOrEqual(256 * 1024 + 32 * 1024);
    clientTransport.resume(0);
    await waitFor(() => drains === 1, 5000, "drain");
    expect(sockets[0].getBufferedAmount()).toBe(0);
  });

  test("closeOnBackpressureLimit closes with 1008", async () => {
    const { client, sockets, clientTransport, closes } = start({
      backpressureLimit: 64 * 1024, closeOnBackpressureLimit: true, websocket: { message() {} },
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    clientTransport.pause(0);
    for (let i = 0; i < 10; i++) sockets[0].send(patternBytes(32 * 1024, i));
    clientTransport.resume(0);
    await waitFor(() => closes.length === 1, 5000, "closed");
    expect(closes[0].code).toBe(1008);
  });

  test("idle timeout: ping first, then close 1001; traffic keeps a socket alive", async () => {
    const { client, clock, closes, server } = start({ idleTimeout: 4 });
    const quiet = client();
    const chatty = client();
    await quiet.opened101();
    await chatty.opened101();
    for (let second = 0; second < 3; second++) {
      clock.advance(1000);
      chatty.sendText("still here");
      await chatty.waitMessages(second + 1);
    }
    await waitFor(() => quiet.events.some((e) => e.type === "ping"), 2000, "ping to the quiet one");
    clock.advance(1100);
    await quiet.waitClosed();
    expect(quiet.closeFrame()).toMatchObject({ code: 1001, reason: "idle timeout" });
    await waitFor(() => closes.length === 1, 2000, "close handler");
    expect(server.stats().idleTimeouts).toBe(1);
    expect(chatty.closedReason).toBeUndefined();
  });

  test("a handshake that never completes is dropped after closeTimeout", async () => {
    const { client, clock, server } = start({ closeTimeout: 2 });
    const slow = client({ rawRequest: "GET / HTTP/1.1\r\nHost: a\r\n" }); // no blank line
    await waitFor(() => server.stats().pendingHandshakes === 1, 2000, "pending");
    clock.advance(2500);
    await slow.waitClosed();
    expect(server.stats().pendingHandshakes).toBe(0);
  });

  test("graceful stop: 1001 to everyone, waits for the handshake, resolves", async () => {
    const { client, server, closes } = start();
    const clients = [client(), client(), client()];
    for (const ws of clients) await ws.opened101();
    let stopped = false;
    const stopping = server.stop(true).then(() => void (stopped = true));
    for (const ws of clients) {
      await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
      expect(ws.closeFrame()).toMatchObject({ code: 1001 });
    }
    expect(stopped).toBe(false);
    for (const ws of clients) ws.sendClose(1001);
    await stopping;
    expect(closes.map((c) => c.code)).toEqual([1001, 1001, 1001]);
  });

  test("graceful stop with a peer that never answers: dropped after closeTimeout", async () => {
    const { client, server, clock } = start({ closeTimeout: 1 });
    const ws = client();
    await ws.opened101();
    const stopping = server.stop(true);
    await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
    clock.advance(1500);
    await stopping;
    await ws.waitClosed();
  });

  test("a handler that throws closes its socket with 1011, the server lives on", async () => {
    const { client, closes } = start({
      websocket: { message() { throw new Error("boom"); } },
    });
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void errors.push(args);
    try {
      const ws = client();
      await ws.opened101();
      ws.sendText("x");
      await ws.waitClosed();
      expect(ws.closeFrame()?.code).toBe(1011);
      expect(closes[0].code).toBe(1011);
      expect(errors.length).toBe(1);
    } finally {
      console.error = original;
    }
    const again = client();
    await again.opened101();
  });

  test("poisonMessageViews overwrites a binary view after the handler; short copies are kept", async () => {
    const kept: Uint8Array[] = [];
    const { client, sockets } = start({
      poisonMessageViews: true,
      websocket: { message: (_, message) => void kept.push(message as Uint8Array) },
    });
    const ws = client();
    await ws.opened101();
    ws.sendBinary(Uint8Array.of(1, 2, 3)); // up to 128 bytes: handed as a copy
    ws.sendBinary(new Uint8Array(200).fill(7)); // a view into receive memory
    await waitFor(() => kept.length === 2, 2000, "messages");
    expect([...kept[0]]).toEqual([1, 2, 3]);
    expect(kept[1].every((byte) => byte === 0xdd)).toBe(true);
    expect(sockets.length).toBe(1);
  });
});
