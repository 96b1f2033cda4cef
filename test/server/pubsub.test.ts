/**
 * Pub/sub inside one server, as Bun.serve has it (ws.subscribe/publish, server.publish,
 * subscriberCount, publishToSelf), on the fake backend: who receives what, in which order,
 * what a slow subscriber costs the others (nothing), and what closes and unsubscribes do.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { WebSocketHandler } from "../../src/api/websocket.ts";
import { OPCODE_BINARY, OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { patternBytes } from "../support/bytes.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";
import type { TestWsClient } from "../support/ws-client.ts";

afterEach(stopFakeServers);

/** A chat: "join:ROOM" subscribes, "say:ROOM:TEXT" publishes, anything else is echoed. */
function chat(extra: Partial<WebSocketHandler<undefined>> = {}): WebSocketHandler<undefined> {
  return {
    message(ws, message) {
      const text = String(message);
      const [verb, room, ...rest] = text.split(":");
      if (verb === "join") ws.subscribe(room);
      else if (verb === "leave") ws.unsubscribe(room);
      else if (verb === "say") ws.publish(room, rest.join(":"));
      else ws.send(text);
    },
    ...extra,
  };
}

type Harness = ReturnType<typeof startFakeServer<undefined>>;

/** `count` clients opened one after another, so that `sockets[i]` is the server side of `clients[i]`. */
async function openClients(harness: Harness, count: number): Promise<TestWsClient[]> {
  const clients: TestWsClient[] = [];
  for (let i = 0; i < count; i++) {
    const before = harness.sockets.length;
    const client = harness.client();
    await client.opened101();
    await waitFor(() => harness.sockets.length === before + 1, 2000, "the socket open");
    clients.push(client);
  }
  return clients;
}

/** Opened clients that each joined `room`. */
async function joined(harness: Harness, count: number, room: string): Promise<TestWsClient[]> {
  const clients = await openClients(harness, count);
  for (const client of clients) client.sendText(`join:${room}`);
  const sockets = harness.sockets.slice(-count);
  await waitFor(() => sockets.every((ws) => ws.isSubscribed(room)), 2000, "every socket joined");
  return clients;
}

const texts = (client: TestWsClient) => client.messages().map((m) => m.text);

describe("pub/sub on one server", () => {
  test("ws.publish reaches the other subscribers, not itself; server.publish reaches all", async () => {
    const harness = startFakeServer({ websocket: chat() });
    const { sockets, server } = harness;
    const [a, b, c] = await joined(harness, 3, "lobby");
    const [outsider] = await openClients(harness, 1);
    expect(server.subscriberCount("lobby")).toBe(3);
    a.sendText("say:lobby:hello: all");
    await b.waitMessages(1);
    await c.waitMessages(1);
    expect(texts(b)).toEqual(["hello: all"]);
    expect(server.publish("lobby", "from the server")).toBe("from the server".length);
    await a.waitMessages(1);
    await b.waitMessages(2);
    expect(texts(a)).toEqual(["from the server"]);
    expect(texts(c)).toEqual(["hello: all", "from the server"]);
    outsider.sendText("ping");
    await outsider.waitMessages(1);
    expect(texts(outsider)).toEqual(["ping"]); // never a room's message
    expect(sockets[0].subscriptions).toEqual(["lobby"]);
  });

  test("publishToSelf: the publisher gets its own message", async () => {
    const harness = startFakeServer({ websocket: { ...chat(), publishToSelf: true } });
    const [a, b] = await joined(harness, 2, "r");
    a.sendText("say:r:mine too");
    await a.waitMessages(1);
    await b.waitMessages(1);
    expect(texts(a)).toEqual(["mine too"]);
  });

  test("order: sends and publishes on one socket arrive as called; publishes of a topic in order", async () => {
    const harness = startFakeServer({ websocket: chat() });
    const { sockets, server } = harness;
    const [, b] = await joined(harness, 2, "t");
    const target = sockets[1];
    const expected: string[] = [];
    for (let i = 0; i < 50; i++) {
      if (i % 3 === 0) {
        target.send(`send ${i}`);
      } else {
        server.publish("t", `publish ${i}`);
      }
      expected.push(i % 3 === 0 ? `send ${i}` : `publish ${i}`);
    }
    await b.waitMessages(50);
    expect(texts(b)).toEqual(expected);
  });

  test("binary publishes of every size arrive intact at every subscriber (large ones lent)", async () => {
    const harness = startFakeServer({ websocket: chat() });
    const { server } = harness;
    const clients = await joined(harness, 4, "bin");
    const sizes = [0, 1, 125, 126, 4095, 4096, 65_535, 65_536, 300_000];
    for (const [i, size] of sizes.entries()) {
      // The byte count, or -1 once the queues pass the 64 KiB mark (all still queued).
      const result = server.publish("bin", patternBytes(size, i));
      expect(result === -1 || result === (size === 0 ? 1 : size)).toBe(true);
    }
    for (const c of clients) {
      await c.waitMessages(sizes.length, 10_000);
      const got = c.messages();
      for (const [i, size] of sizes.entries()) {
        expect(got[i].opcode).toBe(OPCODE_BINARY);
        expect(got[i].data).toEqual(patternBytes(size, i));
      }
    }
    // Every loan came back: the published buffers are free again.
    await waitFor(() => server.stats().transport.loansOut === 0, 2000, "loans returned");
  });

  test("a slow subscriber drops what passes its limit (told to `dropped`); the others get everything", async () => {
    const dropped: { topic: string | undefined; size: number }[] = [];
    const harness = startFakeServer({
      backpressureLimit: 64 * 1024,
      websocket: chat({ dropped: (_, message, topic) => void dropped.push({ topic, size: message.length }) }),
    });
    const { sockets, server } = harness;
    const [fast, slow, other] = await joined(harness, 3, "feed");
    slow.pauseReading();
    const chunk = "x".repeat(8 * 1024);
    const results: number[] = [];
    for (let i = 0; i < 40; i++) {
      results.push(server.publish("feed", chunk));
      await fast.waitMessages(i + 1); // a feed at the pace its readers read
      await other.waitMessages(i + 1);
    }
    expect(results.every((r) => r !== 0)).toBe(true); // someone got each one
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.every((d) => d.topic === "feed" && d.size === chunk.length)).toBe(true);
    expect(sockets[1].getBufferedAmount()).toBeLessThanOrEqual(64 * 1024 + chunk.length + 16);
    slow.resumeReading();
    await slow.waitMessages(40 - dropped.length, 10_000);
    expect(slow.messages().length).toBe(40 - dropped.length);
    expect(server.stats().dropped).toBe(dropped.length);
    const pubsub = server.stats().pubsub;
    expect(pubsub.topics).toBe(1);
    expect(pubsub.published).toBe(40);
    expect(pubsub.dropped).toBe(dropped.length);
    expect(pubsub.delivered).toBe(40 * 3 - dropped.length);
  });

  test("closeOnBackpressureLimit: the slow subscriber is closed (1008), the others carry on", async () => {
    const harness = startFakeServer({
      backpressureLimit: 32 * 1024, closeOnBackpressureLimit: true, websocket: chat(),
    });
    const { server, closes } = harness;
    const [fast, slow] = await joined(harness, 2, "feed");
    slow.pauseReading();
    // Past what the network holds in flight plus the limit.
    for (let i = 0; i < 100; i++) {
      server.publish("feed", "y".repeat(4096));
      await fast.waitMessages(i + 1);
    }
    slow.resumeReading();
    await waitFor(() => slow.closeFrame() !== undefined, 5000, "the slow one's close frame");
    expect(slow.closeFrame()!.code).toBe(1008);
    harness.clock.advance(10_000); // it never answers the close: closeTimeout ends it
    await waitFor(() => closes.length === 1, 5000, "the slow one closed");
    expect(closes[0].code).toBe(1008);
    expect(server.subscriberCount("feed")).toBe(1);
  });

  test("unsubscribing right after a publish loses nothing published before it", async () => {
    const harness = startFakeServer({ websocket: chat() });
    const { sockets, server } = harness;
    const [a, b] = await joined(harness, 2, "t");
    server.publish("t", "before");
    sockets[1].unsubscribe("t");
    server.publish("t", "after");
    await a.waitMessages(2);
    await b.waitMessages(1);
    expect(texts(b)).toEqual(["before"]);
    expect(sockets[1].isSubscribed("t")).toBe(false);
    expect(server.subscriberCount("t")).toBe(1);
  });

  test("a closed socket leaves its topics after its close handler (which still sees them)", async () => {
    const seenInClose: string[][] = [];
    const harness = startFakeServer({
      websocket: chat({ close: (ws) => void seenInClose.push(ws.subscriptions) }),
    });
    const { sockets, server } = harness;
    const [a] = await joined(harness, 2, "room");
    sockets[0].subscribe("other");
    a.sendClose(1000);
    await waitFor(() => seenInClose.length === 1, 2000, "close");
    expect(seenInClose[0].sort()).toEqual(["other", "room"]);
    expect(server.subscriberCount("room")).toBe(1);
    expect(server.subscriberCount("other")).toBe(0);
    expect(server.publish("other", "nobody")).toBe(0);
  });

  test("return values and a wrong topic type", async () => {
    const { client, sockets, server } = startFakeServer({ websocket: chat() });
    const a = client();
    await a.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(server.publish("empty", "x")).toBe(0);
    expect(sockets[0].publish("empty", "x")).toBe(0);
    sockets[0].subscribe("solo");
    expect(sockets[0].publish("solo", "only me")).toBe(0); // nobody else is there
    expect(server.publish("solo", "to me")).toBe(5);
    expect(sockets[0].publishBinary("solo", new Uint8Array(3))).toBe(0);
    expect(() => sockets[0].subscribe(42 as never)).toThrow(expect.objectContaining({ code: "WS_ERR_BAD_TOPIC" }));
    await a.waitMessages(1);
    expect(a.messages()[0].opcode).toBe(OPCODE_TEXT);
  });
});
