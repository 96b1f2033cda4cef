/**
 * permessage-deflate through the whole server on the fake backend: negotiation on the wire,
 * compressed echo both ways (the client side is node:zlib, independent of ours), context
 * takeover, thresholds, bombs cut off while inflating, the RSV1 rules, BFINAL=1 and empty
 * messages, publishes compressed once, and what an idle compressed socket holds (nothing).
 */
import { afterEach, describe, expect, test } from "bun:test";
import zlib from "node:zlib";
import type { PerMessageDeflateOptions, WebSocketHandler } from "../../src/api/websocket.ts";
import { OPCODE_BINARY, OPCODE_CONTINUATION, OPCODE_PING, OPCODE_TEXT } from "../../src/protocol/constants.ts";
import { deflateStateBytes, inflateStateBytes, Z_STREAM_BYTES } from "../../src/ffi/zlib.ts";
import { Prng } from "../../src/fake/prng.ts";
import { firstDifference, patternBytes } from "../support/bytes.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";
import type { TestWsClient } from "../support/ws-client.ts";

afterEach(stopFakeServers);

const OFFER = "permessage-deflate; client_max_window_bits";

/** JSON-like text that compresses as chat and dashboard traffic does. */
function jsonText(bytes: number, seed = 1): string {
  let text = "[";
  for (let i = 0; text.length < bytes; i++) {
    text += JSON.stringify({ id: seed * 1000 + i, user: `user${(seed * i) % 13}`, text: `hello ${i % 7}`, ok: i % 2 === 0 }) + ",";
  }
  return text.slice(0, bytes);
}

type Harness = ReturnType<typeof startFakeServer<undefined>>;

function start(perMessageDeflate: boolean | PerMessageDeflateOptions | undefined,
  websocket: Partial<WebSocketHandler<undefined>> = {}, extra: Record<string, unknown> = {}): Harness {
  return startFakeServer({ ...extra, websocket: { perMessageDeflate, message: (ws, m) => void ws.send(m), ...websocket } });
}

async function open(harness: Harness, offer = OFFER): Promise<TestWsClient> {
  const client = harness.client({ headers: { "Sec-WebSocket-Extensions": offer }, deflate: true });
  await client.opened101();
  return client;
}

function extensionsOf(client: TestWsClient): string | undefined {
  return /\r\nSec-WebSocket-Extensions: ([^\r]*)/i.exec(`\r\n${client.responseHead}`)?.[1];
}

async function closeCodeOf(client: TestWsClient): Promise<number> {
  await waitFor(() => client.closeFrame() !== undefined, 5000, "the server's close frame");
  return client.closeFrame()!.code;
}

describe("negotiation on the wire", () => {
  test("perMessageDeflate: true answers shared/shared (as Bun); no offer, no header", async () => {
    const harness = start(true);
    expect(extensionsOf(await open(harness))).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    const plain = harness.client();
    await plain.opened101();
    expect(extensionsOf(plain)).toBeUndefined();
  });

  test("off by default: the offer is declined, and an RSV1 frame is then a protocol error (1002)", async () => {
    const harness = start(undefined);
    const client = await open(harness);
    expect(extensionsOf(client)).toBeUndefined();
    client.sendCompressed(OPCODE_TEXT, "x".repeat(100));
    expect(await closeCodeOf(client)).toBe(1002);
  });

  test("dedicated: a browser's offer gets plain permessage-deflate; server_max_window_bits=10 is honoured", async () => {
    const harness = start({ compress: "dedicated", decompress: "dedicated" });
    expect(extensionsOf(await open(harness))).toBe("permessage-deflate");
    const small = await open(harness, "permessage-deflate; server_max_window_bits=10");
    expect(extensionsOf(small)).toBe("permessage-deflate; server_max_window_bits=10");
    const text = jsonText(8000);
    small.sendText(text);
    small.sendText(text);
    await small.waitMessages(2);
    expect(small.messages().map((m) => [m.compressed, m.text === text])).toEqual([[true, true], [true, true]]);
  });

  test("client_max_window_bits=8 is accepted: what a zlib client then writes (9-bit) inflates", async () => {
    const harness = start({ compress: "dedicated", decompress: "dedicated" });
    const client = await open(harness, "permessage-deflate; client_max_window_bits=8");
    expect(extensionsOf(client)).toBe("permessage-deflate");
    // What a zlib client writes for 8: a 9-bit window, matches up to 250 bytes back.
    const text = jsonText(3000);
    const deflated = zlib.deflateRawSync(Buffer.from(text), { windowBits: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    client.sendFrame(OPCODE_TEXT, deflated.subarray(0, deflated.length - 4), true, true);
    await client.waitMessages(1);
    expect(client.messages()[0].text).toBe(text);
  });

  test("decompress disabled still inflates (a negotiated client may compress) with no window per socket", async () => {
    const harness = start({ compress: "dedicated", decompress: "disable" });
    const client = await open(harness);
    expect(extensionsOf(client)).toBe("permessage-deflate; client_no_context_takeover");
    client.sendCompressed(OPCODE_TEXT, jsonText(3000));
    await client.waitMessages(1);
    expect(client.messages()[0].text).toBe(jsonText(3000));
    expect(harness.server.stats().compression.dedicatedDecompressors).toBe(0);
  });

  test("compress disabled: negotiated, nothing sent compressed; both disabled: not negotiated", async () => {
    const harness = start({ compress: false });
    const client = await open(harness);
    expect(extensionsOf(client)).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    client.sendCompressed(OPCODE_TEXT, jsonText(5000));
    await client.waitMessages(1);
    expect(client.messages()[0]).toMatchObject({ compressed: false, text: jsonText(5000) });
    const neither = start({ compress: "disable", decompress: false });
    expect(extensionsOf(await open(neither))).toBeUndefined();
  });

  test("a bad compressor name or threshold is refused at serve()", () => {
    expect(() => start({ compress: "9KB" as never })).toThrow(/perMessageDeflate.compress is a boolean or one of/);
    expect(() => start({ threshold: -1 })).toThrow(/threshold must be an integer/);
    expect(() => start({ level: 0 })).toThrow(/level must be an integer from 1 to 9/);
  });
});

describe("messages", () => {
  test("compressed echo both ways; below the threshold and with send(x, false) messages go plain", async () => {
    const harness = start(true, {
      message(ws, message) {
        const text = String(message);
        ws.send(text, text.startsWith("[") ? undefined : false);
      },
    });
    const client = await open(harness);
    const big = jsonText(4096);
    client.sendCompressed(OPCODE_TEXT, big);
    client.sendCompressed(OPCODE_TEXT, "short but compressed by the client");
    client.sendText(`plain ${big}`);
    await client.waitMessages(3);
    expect(client.messages().map((m) => [m.compressed, m.text.length])).toEqual([
      [true, 4096], [false, 34], [false, 4102],
    ]);
    expect(client.messages()[0].text).toBe(big);
    const stats = harness.server.stats().compression;
    expect(stats).toMatchObject({ sockets: 1, messagesCompressed: 1, messagesInflated: 2 });
    expect(stats.bytesAfterCompression).toBeLessThan(stats.bytesBeforeCompression / 3);
  });

  test("threshold: 0 compresses every message; binary too", async () => {
    const harness = start({ threshold: 0 });
    const client = await open(harness);
    client.sendText("hi");
    client.sendBinary(new Uint8Array([1, 2, 3]));
    client.sendText("");
    await client.waitMessages(3);
    expect(client.messages().map((m) => [m.compressed, m.opcode, m.text])).toEqual([
      [true, OPCODE_TEXT, "hi"], [true, OPCODE_BINARY, "\x01\x02\x03"], [true, OPCODE_TEXT, ""],
    ]);
  });

  test("context takeover both ways: 30 similar messages, each smaller than the first, all intact", async () => {
    const harness = start({ compress: "dedicated", decompress: "dedicated" });
    const client = await open(harness);
    const texts = Array.from({ length: 30 }, (_, i) => jsonText(2000 + i * 50, 1 + (i % 3)));
    for (const text of texts) client.sendText(text);
    await client.waitMessages(30);
    expect(client.messages().map((m) => m.text)).toEqual(texts);
    const stats = harness.server.stats().compression;
    expect(stats.dedicatedCompressors).toBe(1);
    // The window pays: later messages repeat earlier ones.
    expect(stats.bytesAfterCompression / stats.bytesBeforeCompression).toBeLessThan(0.1);
  });

  test("a compressed message in three fragments (RSV1 on the first only) inflates whole", async () => {
    const harness = start(true);
    const client = await open(harness);
    const text = jsonText(6000);
    const deflated = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const body = deflated.subarray(0, deflated.length - 4);
    const third = Math.floor(body.length / 3);
    client.sendFrame(OPCODE_TEXT, body.subarray(0, third), false, true);
    client.sendFrame(OPCODE_CONTINUATION, body.subarray(third, 2 * third), false, false);
    client.sendFrame(OPCODE_CONTINUATION, body.subarray(2 * third), true, false);
    await client.waitMessages(1);
    expect(client.messages()[0].text).toBe(text);
  });

  test("BFINAL=1 input (a one-shot deflate, tail kept or not) is accepted, as RFC 7692 allows", async () => {
    const harness = start({ compress: "shared", decompress: "dedicated" });
    const client = await open(harness);
    client.sendCompressed(OPCODE_TEXT, jsonText(3000, 1), { final: true });
    client.sendCompressed(OPCODE_TEXT, jsonText(3000, 2), { keepTail: true });
    client.sendCompressed(OPCODE_TEXT, jsonText(3000, 3));
    await client.waitMessages(3);
    expect(client.messages().map((m) => m.text)).toEqual([jsonText(3000, 1), jsonText(3000, 2), jsonText(3000, 3)]);
  });

  test("empty compressed messages: the 0x00 block and no payload at all", async () => {
    const received: string[] = [];
    const harness = start(true, { message: (_, m) => void received.push(`[${String(m)}]`) });
    const client = await open(harness);
    client.sendFrame(OPCODE_TEXT, new Uint8Array([0x00]), true, true);
    client.sendFrame(OPCODE_TEXT, new Uint8Array(0), true, true);
    client.sendCompressed(OPCODE_TEXT, "after");
    await waitFor(() => received.length === 3, 2000, "three messages");
    expect(received).toEqual(["[]", "[]", "[after]"]);
  });
});

describe("random traffic", () => {
  for (const setting of ["shared", "dedicated"] as const) {
    test(`${setting}: 60 random messages (0 B to 64 KiB, text and binary, 1 to 4 fragments) echo intact`, async () => {
      const random = new Prng(1692 + (setting === "shared" ? 0 : 1));
      const harness = start({ compress: setting, decompress: setting, threshold: 64 });
      const client = await open(harness);
      const sent: { opcode: number; bytes: Uint8Array }[] = [];
      for (let i = 0; i < 60; i++) {
        const size = random.int(4) === 0 ? random.int(65_536) : random.int(3000);
        const text = random.int(2) === 0;
        const bytes = text ? new TextEncoder().encode(jsonText(size, i)) : patternBytes(size, i).map((b) => b & 0x3f);
        const opcode = text ? OPCODE_TEXT : OPCODE_BINARY;
        sent.push({ opcode, bytes });
        const deflated = zlib.deflateRawSync(bytes, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
        const body = deflated.subarray(0, deflated.length - 4);
        const pieces = 1 + random.int(4);
        const cut = Array.from({ length: pieces - 1 }, () => random.int(body.length + 1)).sort((a, b) => a - b);
        const bounds = [0, ...cut, body.length];
        for (let p = 0; p < pieces; p++) {
          client.sendFrame(p === 0 ? opcode : OPCODE_CONTINUATION, body.subarray(bounds[p], bounds[p + 1]),
            p === pieces - 1, p === 0);
        }
      }
      await client.waitMessages(60, 10_000);
      const received = client.messages();
      for (let i = 0; i < 60; i++) {
        expect(received[i].opcode).toBe(sent[i].opcode);
        expect(firstDifference(received[i].data, sent[i].bytes)).toBeNull();
        expect(received[i].compressed).toBe(sent[i].bytes.length >= 64);
      }
    });
  }
});

describe("what is refused", () => {
  test("a bomb is closed with 1009 as soon as it passes maxPayloadLength, never inflated further", async () => {
    const harness = start(true, {}, { maxPayloadLength: 1 << 20 });
    const client = await open(harness);
    // 16 KiB of compressed zeros: about 16 MiB inflated.
    const bomb = zlib.deflateRawSync(Buffer.alloc(16 << 20), { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    expect(bomb.length).toBeLessThan(20_000);
    const started = performance.now();
    client.sendFrame(OPCODE_BINARY, bomb.subarray(0, bomb.length - 4), true, true);
    expect(await closeCodeOf(client)).toBe(1009);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(harness.server.stats().protocolErrors).toBe(1);
  });

  test("a message inflating to exactly maxPayloadLength is accepted; one byte more is 1009", async () => {
    const limit = 100_000;
    const harness = start(true, { message: (ws, m) => void ws.send(String(m.length), false) }, { maxPayloadLength: limit });
    const client = await open(harness);
    client.sendCompressed(OPCODE_BINARY, new Uint8Array(limit).fill(7));
    await client.waitMessages(1);
    expect(client.messages()[0].text).toBe(String(limit));
    client.sendCompressed(OPCODE_BINARY, new Uint8Array(limit + 1).fill(7));
    expect(await closeCodeOf(client)).toBe(1009);
  });

  test("corrupt compressed data and invalid UTF-8 inside compressed text close with 1007", async () => {
    const harness = start(true);
    const corrupt = await open(harness);
    corrupt.sendFrame(OPCODE_TEXT, new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]), true, true);
    expect(await closeCodeOf(corrupt)).toBe(1007);
    const badText = await open(harness);
    badText.sendCompressed(OPCODE_TEXT, new Uint8Array([0x68, 0x69, 0xc3, 0x28]));
    expect(await closeCodeOf(badText)).toBe(1007);
  });

  test("RSV1 on a continuation frame or a control frame is a protocol error (1002)", async () => {
    const harness = start(true);
    const continuation = await open(harness);
    continuation.sendFrame(OPCODE_TEXT, "a", false, false);
    continuation.sendFrame(OPCODE_CONTINUATION, "b", true, true);
    expect(await closeCodeOf(continuation)).toBe(1002);
    const ping = await open(harness);
    ping.sendFrame(OPCODE_PING, "p", true, true);
    expect(await closeCodeOf(ping)).toBe(1002);
  });
});

describe("memory", () => {
  test("an idle socket that negotiated dedicated compression holds no zlib state", async () => {
    const harness = start({ compress: "dedicated", decompress: "dedicated" });
    const clients = [await open(harness), await open(harness), await open(harness)];
    await waitFor(() => harness.server.stats().compression.sockets === 3, 2000, "three sockets");
    expect(harness.server.stats().compression).toMatchObject({
      sockets: 3, dedicatedCompressors: 0, dedicatedDecompressors: 0, socketBytes: 0, sharedBytes: 0,
    });
    clients[0].sendCompressed(OPCODE_TEXT, jsonText(2000));
    await clients[0].waitMessages(1);
    const after = harness.server.stats().compression;
    expect(after).toMatchObject({ dedicatedCompressors: 1, dedicatedDecompressors: 1 });
    // zlib's 15/8 deflate (~262 KiB) and 15-bit inflate (~39 KiB): output memory is the server's.
    expect(after.socketBytes).toBe(2 * Z_STREAM_BYTES + deflateStateBytes(15, 8) + inflateStateBytes(15));
    expect(after.socketBytes).toBe(308_248);
    clients[0].sendClose(1000);
    await waitFor(() => harness.server.stats().compression.sockets === 2, 2000, "the socket gone");
    expect(harness.server.stats().compression.socketBytes).toBe(0);
  });

  test("shared (the default): no bytes per socket, one stream for the server", async () => {
    const harness = start(true);
    const clients = [await open(harness), await open(harness)];
    for (const client of clients) client.sendCompressed(OPCODE_TEXT, jsonText(3000));
    await Promise.all(clients.map((client) => client.waitMessages(1)));
    const stats = harness.server.stats().compression;
    expect(stats).toMatchObject({ sockets: 2, socketBytes: 0, bytesPerSocket: 0 });
    expect(stats.sharedBytes).toBeGreaterThan(200_000);
  });
});

describe("publish", () => {
  test("compressed once for every shared subscriber; plain ones get it plain", async () => {
    const harness = start(true, { open: (ws) => ws.subscribe("feed") });
    const compressed = [await open(harness), await open(harness), await open(harness)];
    const plain = harness.client();
    await plain.opened101();
    await waitFor(() => harness.server.subscriberCount("feed") === 4, 2000, "four subscribers");
    const text = jsonText(5000);
    expect(harness.server.publish("feed", text)).toBe(5000);
    harness.server.publish("feed", jsonText(5000, 2));
    for (const client of [...compressed, plain]) await client.waitMessages(2);
    for (const client of compressed) {
      expect(client.messages().map((m) => [m.compressed, m.text])).toEqual([[true, text], [true, jsonText(5000, 2)]]);
    }
    expect(plain.messages().map((m) => [m.compressed, m.text])).toEqual([[false, text], [false, jsonText(5000, 2)]]);
    expect(harness.server.stats().compression.messagesCompressed).toBe(2); // once per publish
  });

  test("dedicated subscribers compress through their own window; publish(..., false) goes plain", async () => {
    const harness = start({ compress: "dedicated" }, { open: (ws) => ws.subscribe("feed") });
    const dedicated = await open(harness);
    const shared = await open(harness, "permessage-deflate; server_no_context_takeover");
    await waitFor(() => harness.server.subscriberCount("feed") === 2, 2000, "two subscribers");
    harness.server.publish("feed", jsonText(5000));
    harness.server.publish("feed", jsonText(5000, 3), false);
    dedicated.sendText(jsonText(3000)); // its echo, a send through the same window
    await dedicated.waitMessages(3);
    harness.server.publish("feed", jsonText(5000, 4));
    await dedicated.waitMessages(4);
    await shared.waitMessages(3);
    expect(dedicated.messages().map((m) => [m.compressed, m.text])).toEqual([
      [true, jsonText(5000)], [false, jsonText(5000, 3)], [true, jsonText(3000)], [true, jsonText(5000, 4)],
    ]);
    expect(shared.messages().map((m) => m.compressed)).toEqual([true, false, true]);
    // Once for the shared stream and once through the dedicated window, per compressed publish.
    expect(harness.server.stats().compression.messagesCompressed).toBe(5);
  });

  test("`dropped` is told the message as published, not its compressed bytes", async () => {
    const dropped: string[] = [];
    const harness = start(true, {
      open: (ws) => ws.subscribe("feed"),
      dropped: (_, message) => void dropped.push(String(message)),
    }, { backpressureLimit: 2000 });
    const slow = await open(harness);
    slow.pauseReading();
    const text = jsonText(200_000);
    for (let i = 0; i < 20 && dropped.length === 0; i++) {
      harness.server.publish("feed", text);
      await Bun.sleep(5);
    }
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]).toBe(text);
  });
});
