import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { HttpErrorCode } from "../../src/protocol/http-errors.ts";
import { parseContentLength } from "../../src/protocol/http-head-checks.ts";
import { HttpRequestParser, ParserState } from "../../src/protocol/http-request-parser.ts";
import {
  CHROME_REQUEST,
  FIREFOX_REQUEST,
  PIPELINED_FRAME,
  WS_CLIENT_REQUEST,
  bytesOf,
  head,
  parseBytewise,
  parseInChunks,
  parseRequest,
  parseWhole,
  type ParseOutcome,
} from "./http-support.ts";

const { NEED_MORE, COMPLETE, ERROR } = ParserState;
const E = HttpErrorCode;

/** Whole, bytewise and in 3-byte chunks must agree; returns the whole-buffer outcome. */
function parseAllWays(text: string | Uint8Array): ParseOutcome {
  const bytes = typeof text === "string" ? bytesOf(text) : text;
  const whole = parseWhole(bytes);
  expect(parseBytewise(bytes)).toEqual(whole);
  const cuts: number[] = [];
  for (let i = 3; i < bytes.length; i += 3) cuts.push(i);
  expect(parseInChunks(bytes, cuts)).toEqual(whole);
  return whole;
}

function expectError(text: string, status: number, code: string): void {
  const outcome = parseAllWays(text);
  expect({ state: outcome.state, status: outcome.status, code: outcome.code }).toEqual({
    state: ERROR,
    status,
    code,
  });
}

const SIMPLE = head("GET /chat?x=1 HTTP/1.1", "Host: example.com", "Upgrade: websocket");

describe("request line", () => {
  test("parses method, target and headers", () => {
    const outcome = parseAllWays(SIMPLE);
    expect(outcome).toEqual({
      state: COMPLETE,
      consumed: SIMPLE.length,
      method: "GET",
      target: "/chat?x=1",
      headers: [
        ["host", "example.com"],
        ["upgrade", "websocket"],
      ],
      repeated: [],
      body: null,
    });
  });

  test("methods are case-sensitive tokens, passed through", () => {
    expect(parseAllWays(head("get / HTTP/1.1", "Host: h")).method).toBe("get");
    expect(parseAllWays(head("M-SEARCH * HTTP/1.1", "Host: h")).code).toBe(E.BAD_REQUEST_LINE);
    expect(parseAllWays(head("OPTIONS * HTTP/1.1", "Host: h")).target).toBe("*");
  });

  test("target forms (RFC 9112 §3.2)", () => {
    const absolute = parseAllWays(head("GET http://example.com/x?y HTTP/1.1", "Host: other"));
    expect(absolute.target).toBe("http://example.com/x?y");
    expect(parseAllWays(head("CONNECT example.com:443 HTTP/1.1", "Host: h")).target).toBe(
      "example.com:443",
    );
    expectError(head("GET chat HTTP/1.1", "Host: h"), 400, E.BAD_REQUEST_LINE);
    expectError(head("GET * HTTP/1.1", "Host: h"), 400, E.BAD_REQUEST_LINE);
  });

  test("skips empty lines before the request line (RFC 9112 §2.2)", () => {
    const outcome = parseAllWays("\r\n\r\n" + SIMPLE);
    expect(outcome.state).toBe(COMPLETE);
    expect(outcome.consumed).toBe(SIMPLE.length + 4);
  });

  test("HTTP/1.1 and HTTP/1.0 parse, and say which they are", () => {
    expect(parseRequest(head("GET / HTTP/1.1", "Host: h")).version).toBe("1.1");
    const old = head("GET /health HTTP/1.0", "Host: h");
    expect(parseAllWays(old)).toMatchObject({ state: COMPLETE, method: "GET", target: "/health" });
    expect(parseRequest(old).version).toBe("1.0");
  });

  test("HTTP/1.0 may leave Host out (RFC 9112 §3.2); once and well-formed if sent", () => {
    expect(parseAllWays(head("OPTIONS / HTTP/1.0")).state).toBe(COMPLETE);
    expect(parseAllWays(head("GET / HTTP/1.0", "User-Agent: HAProxy")).headers).toEqual([
      ["user-agent", "HAProxy"],
    ]);
    expectError(head("GET / HTTP/1.0", "Host: a", "Host: a"), 400, E.BAD_HOST);
    expectError(head("GET / HTTP/1.0", "Host: a:b:c"), 400, E.BAD_HOST);
    expectError(head("GET / HTTP/1.1"), 400, E.BAD_HOST);
  });

  test("HTTP/1.0 with Transfer-Encoding is faulty framing: 400 (RFC 9112 §6.1)", () => {
    const chunked = head("POST / HTTP/1.0", "Transfer-Encoding: chunked") + "0\r\n\r\n";
    expectError(chunked, 400, E.BAD_TRANSFER_ENCODING);
    const withLength = head("POST / HTTP/1.0", "Content-Length: 2") + "hi";
    expect(parseAllWays(withLength).body).toEqual([0x68, 0x69]);
  });

  test("HTTP/1.2 and HTTP/2.0 get 505; malformed versions 400", () => {
    expectError(head("GET / HTTP/1.2", "Host: h"), 505, E.VERSION_NOT_SUPPORTED);
    expectError(head("GET / HTTP/2.0", "Host: h"), 505, E.VERSION_NOT_SUPPORTED);
    expectError(head("PRI * HTTP/2.0") + "SM\r\n\r\n", 505, E.VERSION_NOT_SUPPORTED);
    for (const version of ["http/1.1", "HTTP/1.10", "HTTP/11", "HTTP/1.x", "HTTPS/1.1"]) {
      expectError(head(`GET / ${version}`, "Host: h"), 400, E.BAD_REQUEST_LINE);
    }
  });

  test("malformed request lines are 400", () => {
    const cases = [
      "GET  / HTTP/1.1", // two spaces: empty target
      "GET / HTTP/1.1 ", // trailing space
      "GET /a b HTTP/1.1", // space in target
      "GET\t/ HTTP/1.1", // tab separator
      " GET / HTTP/1.1", // leading space
      "GET /\u00e9 HTTP/1.1", // non-ASCII in the target
      "GET / ", // empty version
      "G(T / HTTP/1.1", // "(" is not a tchar
    ];
    for (const line of cases) expectError(head(line, "Host: h"), 400, E.BAD_REQUEST_LINE);
    expectError("GET /\r\n\r\n", 400, E.BAD_REQUEST_LINE); // HTTP/0.9
  });

  test("a TLS ClientHello or binary junk fails on the first byte", () => {
    const parser = new HttpRequestParser();
    const hello = Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00);
    expect(parser.feed(hello, 0, hello.length)).toBe(1);
    expect(parser.state).toBe(ERROR);
    expect(parser.error?.code).toBe(E.BAD_REQUEST_LINE);
  });
});

describe("line endings", () => {
  test("bare LF is rejected anywhere (documented choice)", () => {
    expectError("GET / HTTP/1.1\nHost: h\r\n\r\n", 400, E.BARE_LF);
    expectError("GET / HTTP/1.1\r\nHost: h\n\r\n", 400, E.BARE_LF);
    expectError("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, E.BARE_LF);
    expectError("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, E.BARE_LF);
  });

  test("CR without LF is rejected", () => {
    expectError("GET / HTTP/1.1\rHost: h\r\n\r\n", 400, E.BARE_CR);
    expectError("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400, E.BARE_CR);
    expectError("GET / HTTP/1.1\r\nHost: h\r\n\rx", 400, E.BARE_CR);
  });
});

describe("header fields", () => {
  test("values are OWS-trimmed; inner whitespace kept; empty values allowed", () => {
    const outcome = parseAllWays(
      head("GET / HTTP/1.1", "Host:h", "X-A: \t a  b \t", "X-Empty:", "X-Spaces:    "),
    );
    expect(outcome.headers).toEqual([
      ["host", "h"],
      ["x-a", "a  b"],
      ["x-empty", ""],
      ["x-spaces", ""],
    ]);
  });

  test("names are lower-cased, common and uncommon alike", () => {
    const outcome = parseAllWays(
      head("GET / HTTP/1.1", "HOST: h", "SEC-WEBSOCKET-KEY: k", "X-My-Header: v"),
    );
    expect(outcome.headers?.map(([name]) => name)).toEqual([
      "host",
      "sec-websocket-key",
      "x-my-header",
    ]);
  });

  test("repeated fields are joined with ', ' (cookie with '; ') and reported", () => {
    const outcome = parseAllWays(
      head("GET / HTTP/1.1", "Host: h", "Accept: a", "Cookie: x=1", "accept: b", "Cookie: y=2"),
    );
    expect(outcome.headers).toEqual([
      ["host", "h"],
      ["accept", "a, b"],
      ["cookie", "x=1; y=2"],
    ]);
    expect(outcome.repeated).toEqual(["accept", "cookie"]);
  });

  test("obs-text (0x80-0xFF) is decoded as Latin-1, not windows-1252", () => {
    const value = "caf\u00e9 \u0080\u009f";
    const outcome = parseAllWays(head("GET / HTTP/1.1", "Host: h", "X-Name: " + value));
    expect(outcome.headers?.[1]).toEqual(["x-name", value]);
  });

  test("obs-fold and whitespace before the first field are 400", () => {
    expectError(head("GET / HTTP/1.1", "Host: h", "X-A: a", " folded"), 400, E.OBS_FOLD);
    expectError(head("GET / HTTP/1.1", "Host: h", "X-A: a", "\tfolded"), 400, E.OBS_FOLD);
    expectError(head("GET / HTTP/1.1", " Host: h"), 400, E.OBS_FOLD);
  });

  test("invalid names, missing colon, space before colon are 400", () => {
    for (const line of ["X A: b", "X-A : b", "X-A\t: b", ": b", "X(A): b", "X-A", "X\u00e9: b"]) {
      expectError(head("GET / HTTP/1.1", "Host: h", line), 400, E.BAD_HEADER);
    }
  });

  test("control characters in values are 400 (NUL, DEL, ESC)", () => {
    for (const value of ["a\u0000b", "a\u007fb", "a\u001bb", "a\u000bb"]) {
      expectError(head("GET / HTTP/1.1", "Host: h", "X-A: " + value), 400, E.BAD_HEADER);
    }
  });

  test("Host is required, once, and must be an authority (RFC 9112 §3.2)", () => {
    expectError(head("GET / HTTP/1.1", "X: y"), 400, E.BAD_HOST);
    expectError(head("GET / HTTP/1.1", "Host: a", "Host: a"), 400, E.BAD_HOST);
    for (const host of ["a/b", "a b", "a?b", "a#b", "user@a"]) {
      expectError(head("GET / HTTP/1.1", "Host: " + host), 400, E.BAD_HOST);
    }
    for (const host of ["", "[::1]:8080", "xn--bcher-kva.example", "a.b:80"]) {
      expect(parseAllWays(head("GET / HTTP/1.1", "Host: " + host)).state).toBe(COMPLETE);
    }
  });

  test("Host is host [\":\" port] by RFC 3986 §3.2.2: malformed ones are 400", () => {
    const malformed = [
      "[", "]", "a]", "[::1", "::1", "[::1]x", "[::1]:x", "[]", "[:]", "[1::2::3]", "[::g]",
      "[12345::]", "[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7]", "[::1.2.3]", "[::1.2.3.256]",
      "[1.2.3.4]", "[v1.x]", "[::%31]", "a:b:c", "a:b", "a:8o", "a:-1", "a: 80", "a:99999",
      "a:123456", ":80", ":", "%zz", "%", "%4", "a%g0", "a%2", "a[b]", "a|b", "a\"b", "a\\b",
      "a^b", "a`b", "a{b", "a<b",
    ];
    for (const host of malformed) {
      const outcome = parseWhole(bytesOf(head("GET / HTTP/1.1", "Host: " + host)));
      expect({ host, status: outcome.status, code: outcome.code }).toEqual({
        host, status: 400, code: E.BAD_HOST,
      });
    }
  });

  test("every RFC 3986 host form is accepted", () => {
    const wellFormed = [
      "a", "a:", "a:0", "a:65535", "A.B-C_D~E", "%41%62", "a!$&'()*+,;=b", "1.2.3.4",
      "1.2.3.4:80", "[::]", "[::1]", "[::1]:80", "[fe80::1]", "[2001:DB8:0:0:8:800:200C:417A]",
      "[1:2:3:4:5:6:7::]", "[::2:3:4:5:6:7:8]", "[1:2:3:4:5:6:1.2.3.4]", "[::ffff:1.2.3.4]:443",
      "[1::]", "[1:2::3:4]",
    ];
    for (const host of wellFormed) {
      const outcome = parseWhole(bytesOf(head("GET / HTTP/1.1", "Host: " + host)));
      expect({ host, state: outcome.state }).toEqual({ host, state: COMPLETE });
    }
  });
});

/** A head of exactly `length` bytes, padded with one X-Pad field. */
function headOfLength(length: number, target = "/"): string {
  const base = head(`GET ${target} HTTP/1.1`, "Host: h", "X-Pad: ");
  return head(`GET ${target} HTTP/1.1`, "Host: h", "X-Pad: " + "p".repeat(length - base.length));
}

describe("limits", () => {
  test("a head of exactly maxHeaderBytes parses; one byte more is 431", () => {
    const exact = headOfLength(16384);
    expect(exact.length).toBe(16384);
    expect(parseAllWays(exact).state).toBe(COMPLETE);
    const over = headOfLength(16385);
    expect(parseWhole(bytesOf(over))).toMatchObject({ state: ERROR, status: 431 });
    expect(parseBytewise(bytesOf(over))).toMatchObject({
      state: ERROR,
      code: E.HEADERS_TOO_LARGE,
    });
  });

  test("the limit is detected as soon as it is crossed, without waiting for the end", () => {
    const parser = new HttpRequestParser({ maxHeaderBytes: 64 });
    const bytes = bytesOf("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + "p".repeat(200));
    expect(parser.feed(bytes, 0, bytes.length)).toBe(64);
    expect(parser.error?.code).toBe(E.HEADERS_TOO_LARGE);
  });

  test("a custom limit applies exactly", () => {
    const options = { maxHeaderBytes: 100 };
    expect(parseWhole(bytesOf(headOfLength(100)), options).state).toBe(COMPLETE);
    expect(parseWhole(bytesOf(headOfLength(101)), options).code).toBe(E.HEADERS_TOO_LARGE);
  });

  test("a request-target past the limit is 414; a method past it 400", () => {
    const longTarget = "GET /" + "a".repeat(20000) + " HTTP/1.1\r\nHost: h\r\n\r\n";
    expect(parseWhole(bytesOf(longTarget))).toMatchObject({ status: 414, code: E.URI_TOO_LONG });
    const longMethod = "G".repeat(20000) + " / HTTP/1.1\r\n\r\n";
    expect(parseWhole(bytesOf(longMethod))).toMatchObject({
      status: 400,
      code: E.BAD_REQUEST_LINE,
    });
  });

  test("maxHeaderCount fields parse; one more is 431", () => {
    const fields = (count: number) =>
      Array.from({ length: count - 1 }, (_, i) => `X-F${i}: ${i}`);
    const ok = parseAllWays(head("GET / HTTP/1.1", "Host: h", ...fields(100)));
    expect(ok.state).toBe(COMPLETE);
    expect(ok.headers?.length).toBe(100);
    const over = parseWhole(bytesOf(head("GET / HTTP/1.1", "Host: h", ...fields(101))));
    expect(over).toMatchObject({ status: 431, code: E.TOO_MANY_HEADERS });
    const custom = head("GET / HTTP/1.1", "Host: h", "A: 1", "B: 2");
    expect(parseWhole(bytesOf(custom), { maxHeaderCount: 2 }).code).toBe(E.TOO_MANY_HEADERS);
  });

  test("limits must be integers", () => {
    expect(() => new HttpRequestParser({ maxHeaderBytes: 0 })).toThrow(RangeError);
    expect(() => new HttpRequestParser({ maxHeaderCount: 1.5 })).toThrow(RangeError);
    expect(() => new HttpRequestParser({ maxBodyBytes: -1 })).toThrow(RangeError);
  });
});

describe("consumed count and pipelined bytes", () => {
  test("a WebSocket frame right after the head is left to the caller", () => {
    const request = bytesOf(CHROME_REQUEST);
    const bytes = new Uint8Array(request.length + PIPELINED_FRAME.length);
    bytes.set(request);
    bytes.set(PIPELINED_FRAME, request.length);
    const parser = new HttpRequestParser();
    expect(parser.feed(bytes, 0, bytes.length)).toBe(request.length);
    expect(parser.state).toBe(COMPLETE);
    expect(bytes.subarray(request.length)).toEqual(PIPELINED_FRAME);
    // Finished: nothing more is taken.
    expect(parser.feed(bytes, request.length, bytes.length)).toBe(0);
  });

  test("the same holds bytewise and at every split point", () => {
    const request = bytesOf(FIREFOX_REQUEST);
    const bytes = new Uint8Array([...request, ...PIPELINED_FRAME]);
    expect(parseBytewise(bytes).consumed).toBe(request.length);
    for (let cut = 1; cut < bytes.length; cut++) {
      const outcome = parseInChunks(bytes, [cut]);
      expect(outcome.state).toBe(COMPLETE);
      expect(outcome.consumed).toBe(request.length);
    }
  });

  test("honours start/end within a larger buffer", () => {
    const request = bytesOf(SIMPLE);
    const buffer = new Uint8Array(request.length + 20).fill(0x41);
    buffer.set(request, 10);
    const parser = new HttpRequestParser();
    expect(parser.feed(buffer, 10, 10 + request.length)).toBe(request.length);
    expect(parser.request?.target).toBe("/chat?x=1");
    expect(() => parser.feed(buffer, 5, 2)).not.toThrow(); // finished: returns 0 first
    expect(() => new HttpRequestParser().feed(buffer, 5, 2)).toThrow(RangeError);
  });

  test("an empty feed is harmless", () => {
    const parser = new HttpRequestParser();
    expect(parser.feed(new Uint8Array(0), 0, 0)).toBe(0);
    expect(parser.state).toBe(NEED_MORE);
  });

  test("reset() readies the parser for the next request", () => {
    const parser = new HttpRequestParser();
    const first = bytesOf(SIMPLE);
    parser.feed(first, 0, first.length);
    parser.reset();
    expect(parser.state).toBe(NEED_MORE);
    expect(parser.request).toBeNull();
    const second = bytesOf(head("POST /b HTTP/1.1", "Host: x", "Content-Length: 2") + "hi");
    expect(parser.feed(second, 0, second.length)).toBe(second.length);
    expect(parser.request?.method).toBe("POST");
    expect(parser.request?.headers.has("upgrade")).toBe(false);
  });
});

describe("Content-Length bodies", () => {
  test("reads exactly Content-Length bytes, leaves the rest", () => {
    const text = head("POST /x HTTP/1.1", "Host: h", "Content-Length: 5") + "helloNEXT";
    const outcome = parseAllWays(text);
    expect(outcome.state).toBe(COMPLETE);
    expect(outcome.consumed).toBe(text.length - 4);
    expect(outcome.body).toEqual([...bytesOf("hello")]);
  });

  test("Content-Length: 0 gives an empty body; no framing gives null", () => {
    expect(parseAllWays(head("POST / HTTP/1.1", "Host: h", "Content-Length: 0")).body).toEqual(
      [],
    );
    expect(parseAllWays(head("POST / HTTP/1.1", "Host: h")).body).toBeNull();
  });

  test("a GET upgrade with a body is parsed correctly (validation refuses it later)", () => {
    const text = head("GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Content-Length: 3");
    const outcome = parseAllWays(text + "abc" + "\u0081");
    expect(outcome.body).toEqual([0x61, 0x62, 0x63]);
    expect(outcome.consumed).toBe(text.length + 3);
  });

  test("identical repeated values are one; conflicting ones are 400", () => {
    const same = parseAllWays(
      head("POST / HTTP/1.1", "Host: h", "Content-Length: 2", "Content-Length: 2") + "ok",
    );
    expect(same.body).toEqual([0x6f, 0x6b]);
    expect(parseAllWays(head("POST / HTTP/1.1", "Host: h", "Content-Length: 2, 2") + "ok").state)
      .toBe(COMPLETE);
    expectError(
      head("POST / HTTP/1.1", "Host: h", "Content-Length: 2", "Content-Length: 3"),
      400,
      E.BAD_CONTENT_LENGTH,
    );
  });

  test("only digits are valid", () => {
    for (const value of ["-1", "+1", "0x10", "1.0", "1 2", ""]) {
      expectError(
        head("POST / HTTP/1.1", "Host: h", "Content-Length: " + value),
        400,
        E.BAD_CONTENT_LENGTH,
      );
    }
    expect(parseContentLength("007")).toBe(7);
    expect(parseContentLength("1, 1 ,1")).toBe(1);
    expect(parseContentLength("1,,1")).toBe(-1);
    expect(parseContentLength("99999999999999999999999")).toBe(Number.MAX_SAFE_INTEGER);
  });

  test("a body over maxBodyBytes is 413 before any body byte arrives", () => {
    const text = head("POST / HTTP/1.1", "Host: h", "Content-Length: 1048577");
    expectError(text, 413, E.BODY_TOO_LARGE);
    const exact = head("POST / HTTP/1.1", "Host: h", "Content-Length: 1048576");
    const bytes = new Uint8Array(exact.length + 1048576);
    bytes.set(bytesOf(exact));
    expect(parseWhole(bytes).state).toBe(COMPLETE);
    expectError(head("POST / HTTP/1.1", "Host: h", "Content-Length: 99999999999999999999"),
      413, E.BODY_TOO_LARGE);
  });
});

describe("chunked bodies", () => {
  const chunkedHead = head("POST /up HTTP/1.1", "Host: h", "Transfer-Encoding: chunked");

  test("decodes chunks, skips extensions, discards trailers, stops after the end", () => {
    const body = "5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    const outcome = parseAllWays(chunkedHead + body + "NEXT");
    expect(outcome.state).toBe(COMPLETE);
    expect(outcome.consumed).toBe(chunkedHead.length + body.length);
    expect(String.fromCharCode(...(outcome.body ?? []))).toBe("hello world");
  });

  test("hex sizes of either case, leading zeros, an empty body", () => {
    const big = "x".repeat(0x1a);
    expect(parseAllWays(chunkedHead + `001A\r\n${big}\r\n0\r\n\r\n`).body?.length).toBe(0x1a);
    expect(parseAllWays(chunkedHead + `1a\r\n${big}\r\n000\r\n\r\n`).body?.length).toBe(0x1a);
    expect(parseAllWays(chunkedHead + "0\r\n\r\n").body).toEqual([]);
  });

  test("malformed framing is 400", () => {
    const cases = [
      "\r\n", // missing size
      "g\r\n", // not hex
      "5\r\nhelloX\r\n", // data not followed by CRLF
      "5\nhello\r\n0\r\n\r\n", // bare LF
      "5\r\nhello\r\n0\r\n:x\r\n\r\n", // trailer line without a name
    ];
    for (const body of cases) {
      const outcome = parseAllWays(chunkedHead + body);
      expect(outcome.state).toBe(ERROR);
      expect(outcome.status).toBe(400);
    }
    expectError(chunkedHead + "0".repeat(16) + "1\r\n", 400, E.BAD_CHUNK); // digits bound
  });

  test("bounded by maxBodyBytes as soon as the size is read (413)", () => {
    const options = { maxBodyBytes: 10 };
    const ok = chunkedHead + "5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n";
    expect(parseWhole(bytesOf(ok), options).body?.length).toBe(10);
    const over = chunkedHead + "5\r\n12345\r\n6\r\n";
    expect(parseWhole(bytesOf(over), options)).toMatchObject({ status: 413 });
    const huge = chunkedHead + "ffffffffffff\r\n";
    expect(parseWhole(bytesOf(huge))).toMatchObject({ status: 413, code: E.BODY_TOO_LARGE });
  });

  test("extensions and trailers are bounded too", () => {
    const options = { maxHeaderBytes: 200 };
    const longExtension = chunkedHead + "1;" + "e".repeat(300) + "\r\n";
    expect(parseWhole(bytesOf(longExtension), options)).toMatchObject({ code: E.BAD_CHUNK });
    const longTrailer = chunkedHead + "0\r\nX-T: " + "t".repeat(300) + "\r\n\r\n";
    expect(parseWhole(bytesOf(longTrailer), options)).toMatchObject({
      status: 431,
      code: E.HEADERS_TOO_LARGE,
    });
  });

  test("Transfer-Encoding rules (RFC 9112 §6.1, §6.3)", () => {
    const withLength = head(
      "POST / HTTP/1.1",
      "Host: h",
      "Transfer-Encoding: chunked",
      "Content-Length: 5",
    );
    expectError(withLength, 400, E.BAD_TRANSFER_ENCODING);
    const te = (value: string) => head("POST / HTTP/1.1", "Host: h", "Transfer-Encoding: " + value);
    expectError(te("gzip"), 400, E.BAD_TRANSFER_ENCODING);
    expectError(te("chunked, gzip"), 400, E.BAD_TRANSFER_ENCODING);
    expectError(te("chunked, chunked"), 400, E.BAD_TRANSFER_ENCODING);
    expectError(te("gzip, chunked"), 501, E.UNSUPPORTED_TRANSFER_ENCODING);
    expect(parseAllWays(te("Chunked") + "0\r\n\r\n").state).toBe(COMPLETE);
  });
});

describe("real-world handshakes", () => {
  test("Chrome", () => {
    const outcome = parseAllWays(CHROME_REQUEST);
    expect(outcome.state).toBe(COMPLETE);
    expect(outcome.consumed).toBe(CHROME_REQUEST.length);
    const headers = new Map(outcome.headers);
    expect(headers.get("connection")).toBe("Upgrade");
    expect(headers.get("sec-websocket-extensions")).toBe(
      "permessage-deflate; client_max_window_bits",
    );
    expect(headers.get("cookie")).toBe("session=abc123; theme=dark");
  });

  test("Firefox", () => {
    const headers = new Map(parseAllWays(FIREFOX_REQUEST).headers);
    expect(headers.get("connection")).toBe("keep-alive, Upgrade");
    expect(headers.get("sec-fetch-mode")).toBe("websocket");
  });

  test("the ws npm client", () => {
    const outcome = parseAllWays(WS_CLIENT_REQUEST);
    expect(outcome.target).toBe("/?token=t");
    expect(new Map(outcome.headers).get("host")).toBe("127.0.0.1:9001");
  });
});

// ---- property tests --------------------------------------------------------------------

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tokenArb = fc
  .array(fc.constantFrom(...TCHARS), { minLength: 1, maxLength: 12 })
  .map((chars) => chars.join(""));
const valueCharArb = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.constantFrom(0x20, 0x09),
  fc.integer({ min: 0x80, max: 0xff }),
);
/** A field value with no leading/trailing OWS, plus OWS padding the parser must trim. */
const fieldArb = fc.record({
  name: tokenArb.filter((name) => name.toLowerCase() !== "host"),
  value: fc.array(valueCharArb, { maxLength: 30 }).map((codes) => {
    const text = String.fromCharCode(...codes);
    return text.replace(/^[ \t]+|[ \t]+$/g, "");
  }),
  padBefore: fc.constantFrom("", " ", "\t", "  "),
  padAfter: fc.constantFrom("", " ", "\t "),
});
const pathArb = fc
  .array(fc.integer({ min: 0x21, max: 0x7e }), { maxLength: 40 })
  .map((codes) => "/" + String.fromCharCode(...codes));
const bodyArb = fc.oneof(
  fc.constant(null),
  fc.uint8Array({ maxLength: 64 }),
);
const requestArb = fc.record({
  method: tokenArb,
  path: pathArb,
  fields: fc.array(fieldArb, { maxLength: 12 }),
  body: bodyArb,
  chunkSizes: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 }),
  chunked: fc.boolean(),
  trailing: fc.uint8Array({ maxLength: 16 }),
});

type GeneratedRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

/** The request's wire bytes (with `trailing` pipelined after it) and its expected length. */
function render(request: GeneratedRequest): { bytes: Uint8Array; length: number } {
  const lines = [`${request.method} ${request.path} HTTP/1.1`, "Host: example.com"];
  for (const field of request.fields) {
    lines.push(`${field.name}:${field.padBefore}${field.value}${field.padAfter}`);
  }
  const framing: string[] = [];
  let bodyText = "";
  const body = request.body;
  if (body !== null) {
    const bodyString = String.fromCharCode(...body);
    if (request.chunked) {
      framing.push("Transfer-Encoding: chunked");
      let offset = 0;
      let sizeIndex = 0;
      while (offset < bodyString.length) {
        const size = Math.min(request.chunkSizes[sizeIndex++ % request.chunkSizes.length] as number,
          bodyString.length - offset);
        bodyText += size.toString(16) + "\r\n" + bodyString.slice(offset, offset + size) + "\r\n";
        offset += size;
      }
      bodyText += "0\r\n\r\n";
    } else {
      framing.push(`Content-Length: ${body.length}`);
      bodyText = bodyString;
    }
  }
  const text = head(...lines, ...framing) + bodyText;
  const bytes = new Uint8Array(text.length + request.trailing.length);
  bytes.set(bytesOf(text));
  bytes.set(request.trailing, text.length);
  return { bytes, length: text.length };
}

function isFramingName(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === "content-length" || lower === "transfer-encoding";
}

describe("properties", () => {
  test("any valid request, split anywhere, parses identically and as generated", () => {
    const arbitrary = fc
      .tuple(requestArb, fc.array(fc.nat(), { maxLength: 12 }))
      .filter(([request]) => !request.fields.some((field) => isFramingName(field.name)));
    fc.assert(
      fc.property(arbitrary, ([request, rawCuts]) => {
        const { bytes, length } = render(request);
        const cuts = rawCuts.map((cut) => cut % (bytes.length + 1)).sort((a, b) => a - b);
        const whole = parseWhole(bytes);
        expect(parseInChunks(bytes, cuts)).toEqual(whole);
        expect(whole.state).toBe(COMPLETE);
        expect(whole.consumed).toBe(length);
        expect(whole.method).toBe(request.method);
        expect(whole.target).toBe(request.path);
        const expected = new Map<string, string>([["host", "example.com"]]);
        for (const field of request.fields) {
          const name = field.name.toLowerCase();
          const previous = expected.get(name);
          const separator = name === "cookie" ? "; " : ", ";
          const joined = previous === undefined ? field.value : previous + separator + field.value;
          expected.set(name, joined);
        }
        const got = new Map(whole.headers);
        for (const [name, value] of expected) expect(got.get(name)).toBe(value);
        expect(whole.body).toEqual(request.body === null ? null : [...request.body]);
      }),
      { numRuns: 400 },
    );
  });

  test("bytewise feeding agrees with whole-buffer parsing", () => {
    fc.assert(
      fc.property(requestArb, (request) => {
        const { bytes } = render(request);
        expect(parseBytewise(bytes)).toEqual(parseWhole(bytes));
      }),
      { numRuns: 100 },
    );
  });

  test("arbitrary bytes and mutated requests never throw and never over-consume", () => {
    const mutated = fc
      .tuple(requestArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))))
      .map(([request, edits]) => {
        const { bytes } = render(request);
        for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
        return bytes;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), fc.nat(), (bytes, cut) => {
        const split = bytes.length === 0 ? 0 : cut % bytes.length;
        const outcome = parseInChunks(bytes, [split]);
        expect(outcome.consumed).toBeLessThanOrEqual(bytes.length);
        expect(parseWhole(bytes).state).toBe(outcome.state);
        if (outcome.state === ERROR) expect(outcome.code).toMatch(/^WS_ERR_HTTP_/);
      }),
      { numRuns: 500 },
    );
  });
});
