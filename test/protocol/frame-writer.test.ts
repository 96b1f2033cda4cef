import { describe, expect, test } from "bun:test";
import {
  isValidCloseCode,
  parseClosePayload,
  writeClosePayload,
} from "../../src/protocol/close.ts";
import {
  isProtocolError,
  OPCODE_BINARY,
  OPCODE_CLOSE,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  Role,
  WS_ERR_CLOSE_PAYLOAD_1_BYTE,
  WS_ERR_INVALID_CLOSE_CODE,
  WS_ERR_INVALID_UTF8,
} from "../../src/protocol/constants.ts";
import {
  CONTROL_FRAME_BYTES_MAX,
  frameHeaderSize,
  PAYLOAD_LENGTH_MAX,
  writeCloseFrame,
  writeControlFrame,
  writeFrame,
  writeFrameHeader,
  writePing,
  writePong,
} from "../../src/protocol/frame-writer.ts";
import { frame, hex, parse, toHex } from "./frame-support.ts";

const KEY = 0x37fa213d;
const text = (value: string) => new TextEncoder().encode(value);

function written(write: (target: Uint8Array) => number): Uint8Array {
  const target = new Uint8Array(70000 + 64).fill(0xcc);
  const length = write(target);
  return target.slice(0, length);
}

describe("frameHeaderSize", () => {
  test("length form boundaries (§5.2)", () => {
    const cases: [number, number][] = [
      [0, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [2 ** 32, 10], [PAYLOAD_LENGTH_MAX, 10],
    ];
    for (const [length, size] of cases) {
      expect(frameHeaderSize(length, false)).toBe(size);
      expect(frameHeaderSize(length, true)).toBe(size + 4);
    }
  });
});

describe("writeFrameHeader / writeFrame", () => {
  test("RFC 6455 §5.7 examples, byte for byte", () => {
    const hello = text("Hello");
    expect(toHex(written((t) => writeFrame(t, 0, OPCODE_TEXT, true, false, hello, 0, 5))))
      .toBe("810548656c6c6f");
    expect(toHex(written((t) => writeFrame(t, 0, OPCODE_TEXT, true, false, hello, 0, 5, KEY))))
      .toBe("818537fa213d7f9f4d5158");
    expect(toHex(written((t) => writeFrame(t, 0, OPCODE_TEXT, false, false, hello, 0, 3))))
      .toBe("010348656c");
    expect(toHex(written((t) => writeFrame(t, 0, OPCODE_CONTINUATION, true, false, hello, 3, 5))))
      .toBe("80026c6f");
    expect(toHex(written((t) => writePing(t, 0, hello, 0, 5)))).toBe("890548656c6c6f");
    expect(toHex(written((t) => writePong(t, 0, hello, 0, 5, KEY))))
      .toBe("8a8537fa213d7f9f4d5158");
    expect(toHex(written((t) => writeFrameHeader(t, 0, OPCODE_BINARY, true, false, 256))))
      .toBe("827e0100");
    expect(toHex(written((t) => writeFrameHeader(t, 0, OPCODE_BINARY, true, false, 65536))))
      .toBe("827f0000000000010000");
  });

  test("64-bit lengths as two u32 halves, up to 2^53 - 1", () => {
    const lengths = [65536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 40 + 3, PAYLOAD_LENGTH_MAX];
    for (const length of lengths) {
      const header = written((t) =>
        writeFrameHeader(t, 0, OPCODE_BINARY, true, false, length, KEY),
      );
      expect(header.length).toBe(14);
      expect(header[1]).toBe(0x80 | 127);
      expect(new DataView(header.buffer).getBigUint64(2)).toBe(BigInt(length));
      expect(new DataView(header.buffer).getUint32(10)).toBe(KEY);
    }
  });

  test("FIN and RSV1 bits, mask key 0 is still a mask", () => {
    const header = written((t) => writeFrameHeader(t, 0, OPCODE_TEXT, false, true, 3, 0));
    expect(toHex(header)).toBe("418300000000");
    const fin = written((t) => writeFrameHeader(t, 0, OPCODE_BINARY, true, true, 0));
    expect(toHex(fin)).toBe("c200");
  });

  test("agrees with the test suite's independent frame builder", () => {
    for (const length of [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000]) {
      const payload = Uint8Array.from({ length }, (_, i) => (i * 7) & 0xff);
      for (const mask of [undefined, KEY, 0xffffffff]) {
        const key = mask ?? -1;
        const bytes = written(
          (t) => 3 + writeFrame(t, 3, OPCODE_BINARY, true, false, payload, 0, length, key),
        ).subarray(3);
        expect(bytes).toEqual(frame({ opcode: OPCODE_BINARY, payload, mask }));
      }
    }
  });

  test("writes at an offset and returns the bytes written", () => {
    const target = new Uint8Array(20).fill(0xcc);
    expect(writeFrame(target, 5, OPCODE_TEXT, true, false, text("Hi"), 0, 2)).toBe(4);
    expect(toHex(target.subarray(4, 10))).toBe("cc81024869cc");
  });

  test("misuse throws", () => {
    const target = new Uint8Array(200);
    expect(() => writeFrameHeader(target, 0, 16, true, false, 0)).toThrow();
    expect(() => writeFrameHeader(target, 0, OPCODE_TEXT, true, false, -1)).toThrow();
    expect(() => writeFrameHeader(target, 0, OPCODE_TEXT, true, false, 2 ** 53)).toThrow();
    expect(() => writeFrameHeader(target, 0, OPCODE_TEXT, true, false, 1.5)).toThrow();
    expect(() => writeFrameHeader(target, 0, OPCODE_TEXT, true, false, 1, 2 ** 32)).toThrow();
    expect(() => writeFrameHeader(new Uint8Array(3), 0, OPCODE_TEXT, true, false, 126)).toThrow();
    expect(() => writeFrame(new Uint8Array(4), 0, OPCODE_TEXT, true, false, text("abc"), 0, 3))
      .toThrow();
    expect(() => writeControlFrame(target, 0, OPCODE_TEXT, text("a"), 0, 1)).toThrow();
    expect(() => writePing(target, 0, new Uint8Array(126), 0, 126)).toThrow();
  });
});

describe("close payloads and frames", () => {
  test("isValidCloseCode (§7.4.1, IANA registry)", () => {
    const valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
      3000, 3999, 4000, 4999];
    const invalid = [-1, 0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
      1000.5, Number.NaN];
    for (const code of valid) {
      expect({ code, valid: isValidCloseCode(code) }).toEqual({ code, valid: true });
    }
    for (const code of invalid) {
      expect({ code, valid: isValidCloseCode(code) }).toEqual({ code, valid: false });
    }
  });

  test("parseClosePayload", () => {
    expect(parseClosePayload(hex("ff03e86f6bff"), 1, 5)).toEqual({
      code: 1000,
      reasonStart: 3,
      reasonEnd: 5,
    });
    const empty = parseClosePayload(hex("ff"), 1, 1);
    expect(empty).toEqual({ code: 1005, reasonStart: 1, reasonEnd: 1 });
    expect(parseClosePayload(hex("03"), 0, 1)).toBe(WS_ERR_CLOSE_PAYLOAD_1_BYTE);
    expect(parseClosePayload(hex("03ed"), 0, 2)).toBe(WS_ERR_INVALID_CLOSE_CODE);
    expect(parseClosePayload(hex("03e8c0af"), 0, 4)).toBe(WS_ERR_INVALID_UTF8);
    expect(isProtocolError(parseClosePayload(hex("03e8"), 0, 2))).toBe(false);
    expect(isProtocolError(WS_ERR_INVALID_UTF8)).toBe(true);
  });

  test("writeClosePayload: code + reason; 1005 writes nothing", () => {
    const target = new Uint8Array(125);
    expect(writeClosePayload(target, 0, 1000, "bye")).toBe(5);
    expect(toHex(target.subarray(0, 5))).toBe("03e8627965");
    expect(writeClosePayload(target, 0, 4000)).toBe(2);
    expect(writeClosePayload(target, 0, 1005)).toBe(0);
    expect(() => writeClosePayload(target, 0, 1005, "reason")).toThrow();
    for (const code of [1004, 1006, 1015, 999, 5000]) {
      expect(() => writeClosePayload(target, 0, code, "")).toThrow();
    }
  });

  test("long reasons are cut at a character boundary to 123 bytes", () => {
    for (const unit of ["a", "é", "€", "😀", "a€"]) {
      const target = new Uint8Array(125);
      const length = writeClosePayload(target, 0, 1001, unit.repeat(200));
      expect(length).toBeLessThanOrEqual(125);
      expect(length).toBeGreaterThan(125 - 4);
      const reason = new TextDecoder("utf-8", { fatal: true }).decode(target.subarray(2, length));
      expect(unit.repeat(200).startsWith(reason)).toBe(true);
    }
  });

  test("writeCloseFrame, masked and unmasked, round-trips through the parser", () => {
    const unmasked = written((t) => writeCloseFrame(t, 0, 1000, "bye"));
    expect(toHex(unmasked)).toBe("880503e8627965");
    const masked = written((t) => writeCloseFrame(t, 0, 1000, "bye", KEY));
    expect(masked).toEqual(frame({ opcode: OPCODE_CLOSE, payload: hex("03e8627965"), mask: KEY }));
    expect(parse(masked, { role: Role.Server })).toEqual([
      { kind: "close", code: 1000, reason: text("bye") },
    ]);
    const empty = written((t) => writeCloseFrame(t, 0, 1005, "", KEY));
    expect(parse(empty, { role: Role.Server })).toEqual([
      { kind: "close", code: 1005, reason: new Uint8Array(0) },
    ]);
    const longest = written((t) => writeCloseFrame(t, 0, 4999, "x".repeat(500), KEY));
    expect(longest.length).toBe(CONTROL_FRAME_BYTES_MAX);
    expect(parse(longest, { role: Role.Server })).toEqual([
      { kind: "close", code: 4999, reason: text("x".repeat(123)) },
    ]);
    expect(() => writeCloseFrame(new Uint8Array(130), 0, 1000, "")).toThrow();
  });

  test("control frames round-trip through the client role parser", () => {
    const payload = Uint8Array.from({ length: 125 }, (_, i) => i);
    const bytes = new Uint8Array(2 * CONTROL_FRAME_BYTES_MAX);
    let length = writePing(bytes, 0, payload, 0, 125);
    length += writeControlFrame(bytes, length, OPCODE_PONG, payload, 10, 20);
    expect(parse(bytes.subarray(0, length), { role: Role.Client }, "bytes")).toEqual([
      { kind: "ping", data: payload },
      { kind: "pong", data: payload.subarray(10, 20) },
    ]);
    expect(OPCODE_PING).toBe(9);
  });
});
