/**
 * The allocation-saving paths of the upgrade layer give the same results as the plain ones:
 * writeAcceptKey / write101Response against acceptKey / build101Response, a parser that
 * reuses its request against a fresh parser, validateUpgrade into a reused result, the
 * HeaderFields map, and frame headers cut by chunk ends in several parsers at once (they
 * share one spare spill array).
 */
import { describe, expect, test } from "bun:test";
import { OPCODE_BINARY, OPCODE_TEXT, Role } from "../../src/protocol/constants.ts";
import { FrameParser, type FrameSink } from "../../src/protocol/frame-parser.ts";
import { writeFrame } from "../../src/protocol/frame-writer.ts";
import {
  ACCEPT_KEY_LENGTH, acceptKey, validateUpgrade, writeAcceptKey, type UpgradeAccepted,
} from "../../src/protocol/handshake.ts";
import {
  HeaderFields, HttpRequestParser, ParserState, type HttpRequest,
} from "../../src/protocol/http-request-parser.ts";
import { build101Response, write101Response } from "../../src/protocol/http-response.ts";
import { CHROME_REQUEST, FIREFOX_REQUEST, bytesOf, head } from "./http-support.ts";

const latin1 = (bytes: Uint8Array, start = 0, end = bytes.length) =>
  Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString("latin1");

describe("accept key and 101 written in place", () => {
  test("writeAcceptKey matches acceptKey for random keys, at any offset", () => {
    const target = new Uint8Array(64).fill(0xee);
    for (let n = 0; n < 2000; n++) {
      const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
      const offset = n % 7;
      expect(writeAcceptKey(key, target, offset)).toBe(offset + ACCEPT_KEY_LENGTH);
      expect(latin1(target, offset, offset + ACCEPT_KEY_LENGTH)).toBe(acceptKey(key));
    }
    expect(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  test("keys that are not 24 ASCII chars go through acceptKey (same bytes)", () => {
    const target = new Uint8Array(64);
    for (const key of ["", "short", "é".repeat(24), "x".repeat(25), "€".repeat(24)]) {
      const end = writeAcceptKey(key, target, 3);
      expect(latin1(target, 3, end)).toBe(acceptKey(key));
    }
  });

  test("write101Response writes exactly build101Response's bytes", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const target = new Uint8Array(4096);
    const cases: [string | undefined, Parameters<typeof build101Response>[2]][] = [
      [undefined, undefined],
      ["chat", undefined],
      [undefined, { "X-Hello": "1", "Set-Cookie": "a=b" }],
      ["v2", [["X-A", "1"], ["X-B", "2"]]],
      [undefined, new Headers({ "x-from-headers": "yes" })],
    ];
    for (const [protocol, headers] of cases) {
      const length = write101Response(target, key, protocol, headers);
      const built = build101Response(acceptKey(key), protocol, headers);
      expect(latin1(target, 0, length)).toBe(latin1(built));
    }
  });

  test("write101Response: -1 when the target is too small; same errors as build101Response", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const full = build101Response(acceptKey(key)).length;
    expect(write101Response(new Uint8Array(full - 1), key)).toBe(-1);
    expect(write101Response(new Uint8Array(full), key)).toBe(full);
    expect(() => write101Response(new Uint8Array(4096), key, "not a token")).toThrow();
    const target = new Uint8Array(4096);
    expect(() => write101Response(target, key, undefined, { Upgrade: "x" })).toThrow();
    expect(() => write101Response(target, key, undefined, { "X-A": "a\r\nB: c" })).toThrow();
  });
});

function parse(parser: HttpRequestParser, text: string, chunk = Infinity): HttpRequest | null {
  const bytes = bytesOf(text);
  for (let i = 0; i < bytes.length && parser.state === ParserState.NEED_MORE; i += chunk) {
    // A fresh copy per piece, overwritten afterwards: nothing may keep a view of it.
    const piece = bytes.slice(i, Math.min(bytes.length, i + chunk));
    parser.feed(piece, 0, piece.length);
    piece.fill(0xee);
  }
  return parser.request;
}

const snapshot = (request: HttpRequest | null) => request && {
  method: request.method, version: request.version, target: request.target,
  headers: [...request.headers],
  repeated: [...request.repeatedHeaderNames], body: request.body && [...request.body],
  chunked: request.chunked,
};

describe("a parser that reuses its request", () => {
  const requests = [
    CHROME_REQUEST,
    FIREFOX_REQUEST,
    head("GET /a?token=1 HTTP/1.1", "Host: x", "Cookie: a=1", "cookie: b=2", "X-Rep: 1",
      "x-rep: 2"),
    head("POST /form HTTP/1.1", "Host: y", "Content-Length: 3") + "abc",
    head("GET / HTTP/1.1", "Host: 127.0.0.1:9001", "Upgrade: websocket"),
    head("GET / HTTP/1.1", "Host: 127.0.0.1:9002", "Upgrade: WebSocket"),
    head("OPTIONS /health HTTP/1.0", "User-Agent: HAProxy"),
    head("GET / HTTP/1.1", "Host: z"),
  ];

  test("gives what a fresh parser gives, request after request, whole or in pieces", () => {
    const reused = new HttpRequestParser({ reuseRequest: true });
    for (let round = 0; round < 3; round++) {
      for (const text of requests) {
        for (const chunk of [Infinity, 1, 5]) {
          const expected = snapshot(parse(new HttpRequestParser(), text, chunk));
          reused.reset();
          const got = parse(reused, text, chunk);
          expect(snapshot(got)).toEqual(expected);
        }
      }
    }
  });

  test("one request object; after reset() it reads as empty", () => {
    const parser = new HttpRequestParser({ reuseRequest: true });
    const first = parse(parser, requests[0])!;
    expect(first.headers.size).toBeGreaterThan(3);
    parser.reset();
    expect(parser.request).toBeNull();
    expect(first.method).toBe("");
    expect(first.headers.size).toBe(0);
    expect([...first.headers]).toEqual([]);
    const second = parse(parser, requests[4])!;
    expect(second).toBe(first);
    expect(second.headers.get("host")).toBe("127.0.0.1:9001");
  });

  test("errors after reuse are the same as with a fresh parser", () => {
    const parser = new HttpRequestParser({ reuseRequest: true, maxHeaderBytes: 256 });
    parse(parser, requests[0]);
    const bad = [
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      head("GET / HTTP/1.1", "Host: a", "X: " + "y".repeat(300)),
    ];
    for (const text of bad) {
      parser.reset();
      parse(parser, text);
      const fresh = new HttpRequestParser({ maxHeaderBytes: 256 });
      parse(fresh, text);
      expect(parser.state).toBe(ParserState.ERROR);
      expect(parser.error).toEqual(fresh.error);
    }
  });
});

describe("HeaderFields", () => {
  test("behaves as a ReadonlyMap in insertion order", () => {
    const fields = new HeaderFields(["host", "a", "upgrade", "websocket", "x", ""]);
    const map = new Map([["host", "a"], ["upgrade", "websocket"], ["x", ""]]);
    expect(fields.size).toBe(3);
    expect(fields.get("upgrade")).toBe("websocket");
    expect(fields.get("x")).toBe("");
    expect(fields.get("nope")).toBeUndefined();
    expect(fields.has("x")).toBe(true);
    expect(fields.has("nope")).toBe(false);
    expect([...fields]).toEqual([...map]);
    expect([...fields.entries()]).toEqual([...map.entries()]);
    expect([...fields.keys()]).toEqual([...map.keys()]);
    expect([...fields.values()]).toEqual([...map.values()]);
    const seen: string[] = [];
    fields.forEach(function (this: unknown, value, name, self) {
      expect(self).toBe(fields);
      expect(this).toBe(seen);
      seen.push(`${name}=${value}`);
    }, seen);
    expect(seen).toEqual(["host=a", "upgrade=websocket", "x="]);
    expect(new Headers(fields as unknown as [string, string][]).get("upgrade")).toBe("websocket");
    expect(new Map(fields)).toEqual(map);
  });

  test("only the first `length` entries count", () => {
    const fields = new HeaderFields(["a", "1", "b", "2"], 2);
    expect(fields.size).toBe(1);
    expect(fields.get("b")).toBeUndefined();
    expect([...fields.values()]).toEqual(["1"]);
  });
});

describe("validateUpgrade into a reused result", () => {
  test("returns `into`, filled like a new result; refusals are unchanged", () => {
    const into: UpgradeAccepted = { ok: true, key: "", version: 13, protocols: [], extensions: "" };
    for (const text of [CHROME_REQUEST, FIREFOX_REQUEST]) {
      const request = parse(new HttpRequestParser(), text)!;
      const fresh = validateUpgrade(request);
      const reused = validateUpgrade(request, into);
      expect(reused).toBe(into);
      expect({ ...reused }).toEqual({ ...fresh });
    }
    const post = parse(new HttpRequestParser(), head("POST / HTTP/1.1", "Host: a",
      "Upgrade: websocket", "Connection: Upgrade", "Content-Length: 0"))!;
    expect(validateUpgrade(post, into)).toEqual(validateUpgrade(post));
    expect(validateUpgrade(post, into).ok).toBe(false);
  });
});

describe("frame headers cut by chunk ends in several parsers at once", () => {
  class Sink implements FrameSink {
    readonly messages: string[] = [];
    onMessage(opcode: number, data: Uint8Array, start: number, end: number): void {
      this.messages.push(`${opcode}:${latin1(data, start, end)}`);
    }
    onPing(): void {}
    onPong(): void {}
    onClose(): void {}
    onError(error: unknown): void {
      throw new Error(`unexpected protocol error: ${JSON.stringify(error)}`);
    }
  }

  test("interleaved byte by byte, every parser gets its own messages", () => {
    const parsers = 5;
    const streams: Uint8Array[] = [];
    const expected: string[][] = [];
    for (let p = 0; p < parsers; p++) {
      const frames: Uint8Array[] = [];
      expected.push([]);
      for (const size of [0, 5, 125, 126, 300, 70_000]) {
        const payload = new Uint8Array(size).fill(0x61 + p);
        const opcode = size % 2 === 0 ? OPCODE_TEXT : OPCODE_BINARY;
        const frame = new Uint8Array(size + 14);
        const length = writeFrame(frame, 0, opcode, true, false, payload, 0, size, 0x01020304 + p);
        frames.push(frame.subarray(0, length));
        expected[p].push(`${opcode}:${latin1(payload)}`);
      }
      streams.push(Buffer.concat(frames));
    }
    const sinks = streams.map(() => new Sink());
    const state = streams.map(() => new FrameParser({ role: Role.Server }));
    const longest = Math.max(...streams.map((s) => s.length));
    // Cuts of 1 to 3 bytes, in turn across the parsers: each holds a partial header at once.
    for (let at = 0, step = 1; at < longest; at += step, step = (step % 3) + 1) {
      for (let p = 0; p < parsers; p++) {
        if (at >= streams[p].length) continue;
        const piece = streams[p].slice(at, Math.min(streams[p].length, at + step));
        state[p].consume(piece, 0, piece.length, sinks[p]);
      }
    }
    sinks.forEach((sink, p) => expect(sink.messages).toEqual(expected[p]));
  });

  test("reset() and destroy() in the middle of a cut header", () => {
    const frame = new Uint8Array(20);
    const length = writeFrame(frame, 0, OPCODE_TEXT, true, false, bytesOf("hi"), 0, 2, 7);
    const sink = new Sink();
    const parser = new FrameParser({ role: Role.Server });
    parser.consume(frame, 0, 3, sink); // part of the header
    parser.reset();
    parser.consume(frame, 0, length, sink);
    expect(sink.messages).toEqual([`${OPCODE_TEXT}:hi`]);
    parser.consume(frame, 0, 1, sink);
    parser.destroy();
    const other = new FrameParser({ role: Role.Server });
    other.consume(frame, 0, 1, sink);
    other.consume(frame, 1, length, sink);
    expect(sink.messages).toEqual([`${OPCODE_TEXT}:hi`, `${OPCODE_TEXT}:hi`]);
  });
});
