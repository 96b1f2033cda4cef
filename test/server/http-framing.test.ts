/**
 * The pieces keep-alive and streaming are built from, on their own: chunk size lines, which
 * requests let a connection persist, and the head written for each framing.
 */
import { describe, expect, test } from "bun:test";
import { writeChunkHeader, CHUNK_HEADER_MAX } from "../../src/protocol/http-chunked-encoder.ts";
import { HttpRequestParser, ParserState } from "../../src/protocol/http-request-parser.ts";
import { requestAllowsPersistence } from "../../src/protocol/http-persistence.ts";
import {
  BodyFraming, buildResponseHead, declaredContentLength, serializeResponse,
} from "../../src/protocol/http-response.ts";

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

function parsed(text: string) {
  const parser = new HttpRequestParser();
  const bytes = new TextEncoder().encode(text);
  parser.feed(bytes, 0, bytes.length);
  expect(parser.state).toBe(ParserState.COMPLETE);
  return parser.request!;
}

describe("chunk size lines", () => {
  test("lower-case hex without leading zeros, then CRLF", () => {
    const target = new Uint8Array(CHUNK_HEADER_MAX);
    for (const [size, line] of [[1, "1"], [15, "f"], [16, "10"], [32768, "8000"], [65535, "ffff"],
      [0xffffffff, "ffffffff"]] as const) {
      const length = writeChunkHeader(target, size);
      expect(latin1(target.subarray(0, length))).toBe(`${line}\r\n`);
    }
  });

  test("a zero or fractional size is refused: it would end or corrupt the body", () => {
    const target = new Uint8Array(CHUNK_HEADER_MAX);
    expect(() => writeChunkHeader(target, 0)).toThrow(RangeError);
    expect(() => writeChunkHeader(target, 1.5)).toThrow(RangeError);
  });
});

describe("requestAllowsPersistence", () => {
  const cases: [string, boolean][] = [
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", true],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false],
    ["GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true],
    ["GET / HTTP/1.0\r\n\r\n", false],
    ["GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true],
    ["GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false],
  ];
  for (const [text, persists] of cases) {
    test(`${JSON.stringify(text)} → ${persists}`, () => {
      expect(requestAllowsPersistence(parsed(text))).toBe(persists);
    });
  }
});

describe("buildResponseHead", () => {
  const lines = (bytes: Uint8Array) => latin1(bytes).split("\r\n")
    .filter((line) => !line.startsWith("Date: "));

  test("keep-alive with a timeout, and each framing header", () => {
    const response = new Response("x", {
      status: 201, headers: { "X-A": "1", "Content-Length": "99", Connection: "close" },
    });
    expect(lines(buildResponseHead(response, {
      keepAlive: true, keepAliveTimeoutSeconds: 5, framing: BodyFraming.LENGTH, contentLength: 1,
    }))).toEqual(["HTTP/1.1 201 Created", "x-a: 1", "Connection: keep-alive", "Keep-Alive: timeout=5",
      "Content-Length: 1", "", ""]);
    expect(lines(buildResponseHead(response, { keepAlive: false, framing: BodyFraming.CHUNKED })))
      .toEqual(["HTTP/1.1 201 Created", "x-a: 1", "Connection: close", "Transfer-Encoding: chunked",
        "", ""]);
    expect(lines(buildResponseHead(response, { keepAlive: false, framing: BodyFraming.CLOSE })))
      .toEqual(["HTTP/1.1 201 Created", "x-a: 1", "Connection: close", "", ""]);
  });

  test("an Upgrade header is listed in Connection either way", () => {
    const response = new Response(null, { status: 426, headers: { Upgrade: "websocket" } });
    expect(lines(buildResponseHead(response, { keepAlive: true, framing: BodyFraming.NONE })))
      .toContain("Connection: Upgrade, keep-alive");
  });

  test("serializeResponse still closes and computes the length", async () => {
    const bytes = await serializeResponse(new Response("abc"));
    expect(lines(bytes)).toEqual(["HTTP/1.1 200 OK", "Connection: close", "Content-Length: 3", "", "abc"]);
  });

  test("declaredContentLength takes one plain number only", () => {
    const declared = (value: string) =>
      declaredContentLength(new Response(null, { headers: { "Content-Length": value } }));
    expect(declared("12")).toBe(12);
    expect(declared("0")).toBe(0);
    expect(declared("1, 1")).toBeUndefined();
    expect(declared("-1")).toBeUndefined();
    expect(declared("1e3")).toBeUndefined();
    expect(declaredContentLength(new Response(null))).toBeUndefined();
  });
});
