import { describe, expect, test } from "bun:test";
import {
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  Role,
} from "../../src/protocol/constants.ts";
import {
  DEFAULT_MAX_PAYLOAD_LENGTH,
  FrameParser,
  type FrameParserOptions,
} from "../../src/protocol/frame-parser.ts";
import {
  concat,
  CountingBuffers,
  feed,
  frame,
  type FrameEvent,
  hex,
  parse,
  RecordingSink,
  standardChunkings,
} from "./frame-support.ts";

const SERVER: FrameParserOptions = { role: Role.Server };
const CLIENT: FrameParserOptions = { role: Role.Client };
const KEY = 0x37fa213d; // RFC 6455 §5.7's example key
const encoder = new TextEncoder();
const text = (value: string) => encoder.encode(value);

function message(opcode: number, data: Uint8Array | string, compressed = false): FrameEvent {
  const bytes = typeof data === "string" ? text(data) : data;
  return { kind: "message", opcode, data: bytes, compressed };
}
function error(code: string, closeCode: number): FrameEvent {
  return { kind: "error", code, closeCode };
}

/** The same events whatever the chunking and the chunks' alignment. */
function expectEvents(bytes: Uint8Array, options: FrameParserOptions, expected: FrameEvent[]) {
  for (const chunking of standardChunkings(bytes.length)) {
    const misalign = typeof chunking === "object" && "cuts" in chunking ? 0 : 1;
    expect({ chunking, events: parse(bytes, options, chunking, misalign) }).toEqual({
      chunking,
      events: expected,
    });
  }
}

function expectError(bytes: Uint8Array, options: FrameParserOptions, code: string, close = 1002) {
  expectEvents(bytes, options, [error(code, close)]);
}

const pattern = (length: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff);

describe("RFC 6455 §5.7 examples", () => {
  test("single-frame unmasked text 'Hello' (client role)", () => {
    expectEvents(hex("810548656c6c6f"), CLIENT, [message(OPCODE_TEXT, "Hello")]);
  });

  test("single-frame masked text 'Hello' (server role)", () => {
    expectEvents(hex("818537fa213d7f9f4d5158"), SERVER, [message(OPCODE_TEXT, "Hello")]);
  });

  test("fragmented unmasked text 'Hel' + 'lo'", () => {
    expectEvents(hex("010348656c 80026c6f"), CLIENT, [message(OPCODE_TEXT, "Hello")]);
  });

  test("fragmented masked text", () => {
    const bytes = concat(
      frame({ opcode: OPCODE_TEXT, fin: false, payload: "Hel", mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, payload: "lo", mask: 0x01020304 }),
    );
    expectEvents(bytes, SERVER, [message(OPCODE_TEXT, "Hello")]);
  });

  test("unmasked ping 'Hello' and masked pong 'Hello'", () => {
    expectEvents(hex("890548656c6c6f"), CLIENT, [{ kind: "ping", data: text("Hello") }]);
    expectEvents(hex("8a8537fa213d7f9f4d5158"), SERVER, [{ kind: "pong", data: text("Hello") }]);
  });

  test("256-byte binary message (16-bit length)", () => {
    const payload = pattern(256);
    const bytes = concat(hex("827e0100"), payload);
    expect(frame({ opcode: OPCODE_BINARY, payload })).toEqual(bytes);
    expectEvents(bytes, CLIENT, [message(OPCODE_BINARY, payload)]);
    const masked = frame({ opcode: OPCODE_BINARY, payload, mask: KEY });
    expectEvents(masked, SERVER, [message(OPCODE_BINARY, payload)]);
  });

  test("64 KiB binary message (64-bit length)", () => {
    const payload = pattern(65536);
    const bytes = concat(hex("827f0000000000010000"), payload);
    expect(frame({ opcode: OPCODE_BINARY, payload })).toEqual(bytes);
    expectEvents(bytes, CLIENT, [message(OPCODE_BINARY, payload)]);
    const masked = frame({ opcode: OPCODE_BINARY, payload, mask: KEY });
    expectEvents(masked, SERVER, [message(OPCODE_BINARY, payload)]);
  });
});

describe("zero copy and buffers", () => {
  test("a whole single-frame message is a view into the chunk, unmasked in place", () => {
    const bytes = concat(hex("ffff"), hex("818537fa213d7f9f4d5158"), hex("ffff"));
    const buffers = new CountingBuffers();
    const parser = new FrameParser({ role: Role.Server, messageBuffers: buffers });
    const sink = new RecordingSink();
    parser.consume(bytes, 2, bytes.length - 2, sink);
    expect(sink.lastView).toEqual({ data: bytes, start: 8, end: 13 });
    expect(sink.lastView?.data).toBe(bytes);
    expect(bytes.subarray(8, 13)).toEqual(text("Hello"));
    expect(buffers.acquired).toBe(0);
  });

  test("a header spilled from the previous chunk still gives a view for the payload", () => {
    const bytes = frame({ opcode: OPCODE_BINARY, payload: pattern(300), mask: KEY });
    const buffers = new CountingBuffers();
    const parser = new FrameParser({ role: Role.Server, messageBuffers: buffers });
    const sink = new RecordingSink();
    parser.consume(bytes, 0, 3, sink);
    parser.consume(bytes, 3, bytes.length, sink);
    expect(sink.events).toEqual([message(OPCODE_BINARY, pattern(300))]);
    expect(sink.lastView?.data).toBe(bytes);
    expect(buffers.acquired).toBe(0);
  });

  test("messages spanning chunks or frames are assembled, buffers released after the call", () => {
    const buffers = new CountingBuffers();
    const options = { role: Role.Server, messageBuffers: buffers };
    const payload = pattern(40000);
    const bytes = concat(
      frame({ opcode: OPCODE_BINARY, fin: false, payload: payload.subarray(0, 1000), mask: 1 }),
      frame({ opcode: OPCODE_PING, payload: "p", mask: 2 }),
      frame({ opcode: OPCODE_CONTINUATION, payload: payload.subarray(1000), mask: 3 }),
    );
    for (const chunking of ["whole", "bytes", { sizes: [4096] }] as const) {
      expect(parse(bytes, options, chunking, 2)).toEqual([
        { kind: "ping", data: text("p") },
        message(OPCODE_BINARY, payload),
      ]);
      expect(buffers.outstanding).toBe(0);
    }
    expect(buffers.acquired).toBe(buffers.released);
  });

  test("buffer growth stays within the initial 64 KiB or twice the bytes received, not the declared length", () => {
    const buffers = new CountingBuffers();
    const parser = new FrameParser({
      role: Role.Client,
      maxPayloadLength: Number.MAX_SAFE_INTEGER,
      messageBuffers: buffers,
    });
    const sink = new RecordingSink();
    const header = frame({ opcode: OPCODE_BINARY, declaredLength: 2 ** 40 });
    feed(parser, sink, concat(header, pattern(100)));
    expect(sink.events).toEqual([]);
    expect(buffers.largestAcquired).toBeLessThanOrEqual(64 * 1024);
    feed(parser, sink, pattern(200_000));
    expect(buffers.largestAcquired).toBeLessThanOrEqual(2 * 200_100);
    parser.destroy();
    expect(buffers.outstanding).toBe(0);
  });

  test("no buffer available closes with 1013", () => {
    const buffers = new CountingBuffers();
    buffers.available = 0;
    const bytes = frame({ opcode: OPCODE_TEXT, fin: false, payload: "x", mask: KEY });
    const options = { role: Role.Server, messageBuffers: buffers };
    expect(parse(bytes, options)).toEqual([error("WS_ERR_BUFFER_UNAVAILABLE", 1013)]);
    const ping = frame({ opcode: OPCODE_PING, payload: "abc", mask: KEY });
    expect(parse(ping, options, "bytes")).toEqual([error("WS_ERR_BUFFER_UNAVAILABLE", 1013)]);
  });

  test("destroy() releases a message in progress and ignores later input", () => {
    const buffers = new CountingBuffers();
    const parser = new FrameParser({ role: Role.Server, messageBuffers: buffers });
    const sink = new RecordingSink();
    feed(parser, sink, frame({ opcode: OPCODE_TEXT, fin: false, payload: "abc", mask: KEY }));
    expect(buffers.outstanding).toBe(1);
    parser.destroy();
    expect(parser.done).toBe(true);
    expect(buffers.outstanding).toBe(0);
    feed(parser, sink, frame({ opcode: OPCODE_CONTINUATION, payload: "d", mask: KEY }));
    expect(sink.events).toEqual([]);
  });

  test("reset() gives a fresh parser", () => {
    const buffers = new CountingBuffers();
    const parser = new FrameParser({ role: Role.Server, messageBuffers: buffers });
    const sink = new RecordingSink();
    feed(parser, sink, frame({ opcode: OPCODE_TEXT, fin: false, payload: "abc", mask: KEY }));
    feed(parser, sink, hex("81"));
    parser.reset();
    expect(buffers.outstanding).toBe(0);
    feed(parser, sink, hex("818537fa213d7f9f4d5158"));
    expect(sink.events).toEqual([message(OPCODE_TEXT, "Hello")]);
  });

  test("a sink may destroy the parser mid-chunk: the rest is not parsed", () => {
    const parser = new FrameParser(SERVER);
    const events: string[] = [];
    const sink = new RecordingSink();
    sink.onMessage = () => {
      events.push("message");
      parser.destroy();
    };
    const hello = hex("818537fa213d7f9f4d5158");
    feed(parser, sink, concat(hello, hex("818537fa213d7f9f4d5158")));
    expect(events).toEqual(["message"]);
  });
});

describe("frame rules (RFC 6455 §5)", () => {
  test("server role: unmasked frame -> 1002 WS_ERR_UNMASKED_FRAME", () => {
    expectError(hex("810548656c6c6f"), SERVER, "WS_ERR_UNMASKED_FRAME");
    expectError(hex("890548656c6c6f"), SERVER, "WS_ERR_UNMASKED_FRAME");
  });

  test("client role: masked frame -> 1002 WS_ERR_UNEXPECTED_MASK", () => {
    expectError(hex("818537fa213d7f9f4d5158"), CLIENT, "WS_ERR_UNEXPECTED_MASK");
  });

  test("RSV1/RSV2/RSV3 without an extension -> 1002 WS_ERR_RSV_BITS", () => {
    for (const rsv of [1, 2, 3, 4, 5, 6, 7]) {
      const bytes = frame({ opcode: OPCODE_TEXT, rsv, payload: "Hello", mask: KEY });
      expectError(bytes, SERVER, "WS_ERR_RSV_BITS");
    }
  });

  test("RSV1 with permessage-deflate: first data frame only, reported as compressed", () => {
    const options = { role: Role.Server, allowRsv1: true };
    const compressed = frame({ opcode: OPCODE_BINARY, rsv: 4, payload: "zz", mask: KEY });
    expectEvents(compressed, options, [message(OPCODE_BINARY, "zz", true)]);
    // Compressed text is not UTF-8 until inflated: no validation here.
    const deflated = frame({ opcode: OPCODE_TEXT, rsv: 4, payload: hex("f2c8"), mask: KEY });
    expectEvents(deflated, options, [message(OPCODE_TEXT, hex("f2c8"), true)]);
    const fragmented = concat(
      frame({ opcode: OPCODE_TEXT, fin: false, rsv: 4, payload: hex("ff"), mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, payload: hex("fe"), mask: KEY }),
    );
    expectEvents(fragmented, options, [message(OPCODE_TEXT, hex("fffe"), true)]);
    const plain = frame({ opcode: OPCODE_TEXT, payload: "ok", mask: KEY });
    expectEvents(plain, options, [message(OPCODE_TEXT, "ok", false)]);
    const onContinuation = concat(
      frame({ opcode: OPCODE_TEXT, fin: false, rsv: 4, payload: "a", mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, rsv: 4, payload: "b", mask: KEY }),
    );
    expectError(onContinuation, options, "WS_ERR_RSV_BITS");
    const onPing = frame({ opcode: OPCODE_PING, rsv: 4, mask: KEY });
    expectError(onPing, options, "WS_ERR_RSV_BITS");
    const rsv2 = frame({ opcode: OPCODE_TEXT, rsv: 2, payload: "a", mask: KEY });
    expectError(rsv2, options, "WS_ERR_RSV_BITS");
  });

  test("reserved opcodes 3-7 and 0xB-0xF -> 1002 WS_ERR_RESERVED_OPCODE", () => {
    for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      expectError(frame({ opcode, mask: KEY }), SERVER, "WS_ERR_RESERVED_OPCODE");
      expectError(frame({ opcode, payload: "x" }), CLIENT, "WS_ERR_RESERVED_OPCODE");
    }
  });

  test("control frame payload over 125 bytes -> 1002 WS_ERR_CONTROL_TOO_LONG", () => {
    for (const opcode of [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE]) {
      const bytes = frame({ opcode, payload: pattern(126), mask: KEY });
      expectError(bytes, SERVER, "WS_ERR_CONTROL_TOO_LONG");
      const withCode = concat(hex("03e8"), text("r".repeat(123))); // exactly 125: accepted
      const at125 = parse(frame({ opcode, payload: withCode, mask: KEY }), SERVER, "bytes");
      expect(at125.some((event) => event.kind === "error")).toBe(false);
    }
    // Also when a 16-bit length declares a small payload: the 7-bit field says 126.
    expectError(frame({ opcode: OPCODE_PING, payload: "x", lengthForm: 16 }), CLIENT,
      "WS_ERR_CONTROL_TOO_LONG");
  });

  test("fragmented control frame -> 1002 WS_ERR_FRAGMENTED_CONTROL", () => {
    for (const opcode of [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE]) {
      const bytes = frame({ opcode, fin: false, payload: "x", mask: KEY });
      expectError(bytes, SERVER, "WS_ERR_FRAGMENTED_CONTROL");
    }
  });

  test("continuation with no message in progress -> 1002 WS_ERR_UNEXPECTED_CONTINUATION", () => {
    const alone = frame({ opcode: OPCODE_CONTINUATION, payload: "x", mask: KEY });
    expectError(alone, SERVER, "WS_ERR_UNEXPECTED_CONTINUATION");
    const afterWhole = concat(hex("818537fa213d7f9f4d5158"), alone);
    expectEvents(afterWhole, SERVER, [
      message(OPCODE_TEXT, "Hello"),
      error("WS_ERR_UNEXPECTED_CONTINUATION", 1002),
    ]);
  });

  test("new data message during a fragmented one -> 1002 WS_ERR_EXPECTED_CONTINUATION", () => {
    for (const opcode of [OPCODE_TEXT, OPCODE_BINARY]) {
      const bytes = concat(
        frame({ opcode: OPCODE_BINARY, fin: false, payload: "a", mask: KEY }),
        frame({ opcode, payload: "b", mask: KEY }),
      );
      expectError(bytes, SERVER, "WS_ERR_EXPECTED_CONTINUATION");
    }
  });

  test("64-bit length with the top bit set -> 1002 WS_ERR_PAYLOAD_LENGTH_64BIT_MSB", () => {
    expectError(hex("827f8000000000000001"), CLIENT, "WS_ERR_PAYLOAD_LENGTH_64BIT_MSB");
    expectError(hex("82ff8000000000000000 37fa213d"), SERVER, "WS_ERR_PAYLOAD_LENGTH_64BIT_MSB");
  });

  test("non-minimal length encodings are accepted", () => {
    const sixteen = frame({ opcode: OPCODE_TEXT, payload: "Hello", mask: KEY, lengthForm: 16 });
    expectEvents(sixteen, SERVER, [message(OPCODE_TEXT, "Hello")]);
    const sixtyFour = frame({ opcode: OPCODE_BINARY, payload: "Hello", lengthForm: 64 });
    expectEvents(sixtyFour, CLIENT, [message(OPCODE_BINARY, "Hello")]);
    expectEvents(hex("827f0000000000000000"), CLIENT, [message(OPCODE_BINARY, "")]);
  });

  test("lengths up to 2^53 - 1 without BigInt; above the limit -> 1009", () => {
    const options = { role: Role.Client, maxPayloadLength: Number.MAX_SAFE_INTEGER };
    const largest = hex("827f001fffffffffffff 01020304");
    expect(parse(largest, options, "bytes")).toEqual([]);
    expectError(hex("827f0020000000000000"), options, "WS_ERR_MESSAGE_TOO_BIG", 1009);
    expectError(hex("827f7fffffffffffffff"), options, "WS_ERR_MESSAGE_TOO_BIG", 1009);
  });

  test("empty messages and empty fragments", () => {
    expectEvents(frame({ opcode: OPCODE_TEXT, mask: KEY }), SERVER, [message(OPCODE_TEXT, "")]);
    const pieces = concat(
      frame({ opcode: OPCODE_BINARY, fin: false, mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, fin: false, mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, mask: KEY }),
    );
    expectEvents(pieces, SERVER, [message(OPCODE_BINARY, "")]);
    expectEvents(frame({ opcode: OPCODE_PING, mask: KEY }), SERVER, [
      { kind: "ping", data: new Uint8Array(0) },
    ]);
  });

  test("control frames between fragments of a data message", () => {
    const bytes = concat(
      frame({ opcode: OPCODE_TEXT, fin: false, payload: "Hel", mask: 0x11223344 }),
      frame({ opcode: OPCODE_PING, payload: "ping 1", mask: 0x55667788 }),
      frame({ opcode: OPCODE_CONTINUATION, fin: false, payload: "", mask: 0x99aabbcc }),
      frame({ opcode: OPCODE_PONG, payload: "", mask: 0xddeeff00 }),
      frame({ opcode: OPCODE_PING, payload: pattern(125), mask: 0x01010101 }),
      frame({ opcode: OPCODE_CONTINUATION, payload: "lo", mask: 0xfedcba98 }),
      frame({ opcode: OPCODE_CLOSE, payload: concat(hex("03e8"), text("bye")), mask: 7 }),
    );
    expectEvents(bytes, SERVER, [
      { kind: "ping", data: text("ping 1") },
      { kind: "pong", data: new Uint8Array(0) },
      { kind: "ping", data: pattern(125) },
      message(OPCODE_TEXT, "Hello"),
      { kind: "close", code: 1000, reason: text("bye") },
    ]);
  });

  test("after an error further input is ignored", () => {
    const parser = new FrameParser(SERVER);
    const sink = new RecordingSink();
    feed(parser, sink, hex("810548656c6c6f"));
    feed(parser, sink, hex("818537fa213d7f9f4d5158"));
    expect(sink.events).toEqual([error("WS_ERR_UNMASKED_FRAME", 1002)]);
    expect(parser.done).toBe(true);
  });

  test("fails on the first two header bytes, before the rest of the header", () => {
    const parser = new FrameParser(SERVER);
    const sink = new RecordingSink();
    feed(parser, sink, hex("837f"));
    expect(sink.events).toEqual([error("WS_ERR_RESERVED_OPCODE", 1002)]);
  });
});

describe("maxPayloadLength (applied to the assembled message)", () => {
  const limit = 1000;
  const options = { role: Role.Server, maxPayloadLength: limit };

  test("default is 16 MiB", () => {
    expect(DEFAULT_MAX_PAYLOAD_LENGTH).toBe(16 * 1024 * 1024);
    const header = frame({ opcode: OPCODE_BINARY, declaredLength: 16 * 1024 * 1024 + 1, mask: 1 });
    expect(parse(header, SERVER)).toEqual([error("WS_ERR_MESSAGE_TOO_BIG", 1009)]);
  });

  test("single frame: exactly the limit passes, one above fails at the header", () => {
    const atLimit = frame({ opcode: OPCODE_BINARY, payload: pattern(limit), mask: KEY });
    expectEvents(atLimit, options, [message(OPCODE_BINARY, pattern(limit))]);
    const above = frame({ opcode: OPCODE_BINARY, payload: pattern(limit + 1), mask: KEY });
    expectError(above, options, "WS_ERR_MESSAGE_TOO_BIG", 1009);
    // The header alone is enough to refuse: nothing is buffered.
    const buffers = new CountingBuffers();
    const headerOnly = frame({ opcode: OPCODE_BINARY, declaredLength: limit + 1, mask: KEY });
    const events = parse(headerOnly, { ...options, messageBuffers: buffers }, "bytes");
    expect(events).toEqual([error("WS_ERR_MESSAGE_TOO_BIG", 1009)]);
    expect(buffers.acquired).toBe(0);
  });

  test("fragmented: the sum counts; exactly the limit passes, one above fails", () => {
    const fragments = (last: number) =>
      concat(
        frame({ opcode: OPCODE_TEXT, fin: false, payload: "a".repeat(400), mask: 1 }),
        frame({ opcode: OPCODE_CONTINUATION, fin: false, payload: "b".repeat(400), mask: 2 }),
        frame({ opcode: OPCODE_CONTINUATION, payload: "c".repeat(last), mask: 3 }),
      );
    const whole = "a".repeat(400) + "b".repeat(400) + "c".repeat(200);
    expectEvents(fragments(200), options, [message(OPCODE_TEXT, whole)]);
    expectError(fragments(201), options, "WS_ERR_MESSAGE_TOO_BIG", 1009);
  });

  test("control frames do not count toward the limit", () => {
    const tight = { role: Role.Server, maxPayloadLength: 0 };
    const bytes = concat(
      frame({ opcode: OPCODE_PING, payload: pattern(125), mask: KEY }),
      frame({ opcode: OPCODE_BINARY, mask: KEY }),
    );
    expectEvents(bytes, tight, [{ kind: "ping", data: pattern(125) }, message(OPCODE_BINARY, "")]);
  });
});

describe("UTF-8 in text messages (RFC 6455 §8.1)", () => {
  test("invalid single-frame text -> 1007 before onMessage", () => {
    for (const bad of ["c0af", "eda080", "f4908080", "ff", "e282"]) {
      const bytes = frame({ opcode: OPCODE_TEXT, payload: hex(bad), mask: KEY });
      expectError(bytes, SERVER, "WS_ERR_INVALID_UTF8", 1007);
    }
    // Binary messages are not checked.
    const binary = frame({ opcode: OPCODE_BINARY, payload: hex("ff"), mask: KEY });
    expectEvents(binary, SERVER, [message(OPCODE_BINARY, hex("ff"))]);
  });

  test("a code point split across fragments and across chunks is valid", () => {
    const euroPile = "€😀ä€😀";
    const bytes = text(euroPile);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const fragments = concat(
        frame({ opcode: OPCODE_TEXT, fin: false, payload: bytes.subarray(0, cut), mask: KEY }),
        frame({ opcode: OPCODE_CONTINUATION, payload: bytes.subarray(cut), mask: 0x0badf00d }),
      );
      expectEvents(fragments, SERVER, [message(OPCODE_TEXT, euroPile)]);
    }
  });

  test("fail fast: an invalid first fragment errors before the last fragment arrives", () => {
    const parser = new FrameParser(SERVER);
    const sink = new RecordingSink();
    feed(parser, sink, frame({ opcode: OPCODE_TEXT, fin: false, payload: hex("41c0"), mask: 9 }));
    expect(sink.events).toEqual([error("WS_ERR_INVALID_UTF8", 1007)]);
  });

  test("fail fast inside a frame: the error comes with the chunk holding the bad byte", () => {
    const payload = concat(text("x".repeat(100)), hex("eda080"), text("y".repeat(100)));
    const bytes = frame({ opcode: OPCODE_TEXT, payload, mask: KEY });
    const parser = new FrameParser(SERVER);
    const sink = new RecordingSink();
    const badByteAt = 8 + 101; // 8 header bytes (16-bit length), 'x' * 100, ED, then A0
    feed(parser, sink, bytes.subarray(0, badByteAt));
    expect(sink.events).toEqual([]);
    feed(parser, sink, bytes.subarray(badByteAt, badByteAt + 1));
    expect(sink.events).toEqual([error("WS_ERR_INVALID_UTF8", 1007)]);
  });

  test("a message ending inside a code point -> 1007", () => {
    const bytes = concat(
      frame({ opcode: OPCODE_TEXT, fin: false, payload: "ok", mask: KEY }),
      frame({ opcode: OPCODE_CONTINUATION, payload: hex("f09f98"), mask: KEY }),
    );
    expectError(bytes, SERVER, "WS_ERR_INVALID_UTF8", 1007);
  });
});

describe("close frames (§5.5.1, §7.4)", () => {
  const close = (payload: Uint8Array) => frame({ opcode: OPCODE_CLOSE, payload, mask: KEY });

  test("empty payload reports 1005", () => {
    expectEvents(close(new Uint8Array(0)), SERVER, [
      { kind: "close", code: 1005, reason: new Uint8Array(0) },
    ]);
  });

  test("code and reason", () => {
    for (const code of [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999]) {
      const payload = concat(Uint8Array.of(code >> 8, code & 0xff), text("ciao ✓"));
      expectEvents(close(payload), SERVER, [{ kind: "close", code, reason: text("ciao ✓") }]);
    }
  });

  test("1-byte payload -> 1002 WS_ERR_CLOSE_PAYLOAD_1_BYTE", () => {
    expectError(close(hex("03")), SERVER, "WS_ERR_CLOSE_PAYLOAD_1_BYTE");
  });

  test("invalid codes -> 1002 WS_ERR_INVALID_CLOSE_CODE", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
      const payload = Uint8Array.of(code >> 8, code & 0xff);
      expectError(close(payload), SERVER, "WS_ERR_INVALID_CLOSE_CODE");
    }
  });

  test("reason that is not UTF-8 -> 1007", () => {
    expectError(close(hex("03e8 cebae1bdb9cf83cebcceb5eda080")), SERVER,
      "WS_ERR_INVALID_UTF8", 1007);
  });

  test("input after a Close is ignored", () => {
    const bytes = concat(close(hex("03e8")), hex("818537fa213d7f9f4d5158"));
    expectEvents(bytes, SERVER, [{ kind: "close", code: 1000, reason: new Uint8Array(0) }]);
  });
});
