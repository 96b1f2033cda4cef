import { describe, expect, test } from "bun:test";
import { HttpErrorCode } from "../../src/protocol/http-errors.ts";
import type { HttpRequest } from "../../src/protocol/http-request-parser.ts";
import {
  remoteAddressOf, requestUrl, toWebRequest, type WebRequestOptions,
} from "../../src/protocol/web-request.ts";
import { CHROME_REQUEST, head, parseRequest } from "./http-support.ts";

const options = { hostFallback: "127.0.0.1:8080" };

/** toWebRequest's Request; fails the test when it refused the request instead. */
function built(request: HttpRequest, given: WebRequestOptions = options): Request {
  const result = toWebRequest(request, given);
  if (!(result instanceof Request)) throw new Error(`refused: ${result.code}`);
  return result;
}

/** What toWebRequest refused the request with (fails the test when it built one). */
function refusal(request: HttpRequest) {
  const result = toWebRequest(request, options);
  if (result instanceof Request) throw new Error(`built a ${result.method} Request`);
  return { status: result.status, code: result.code };
}

describe("toWebRequest", () => {
  test("method, absolute URL from Host + target, headers", () => {
    const request = built(parseRequest(CHROME_REQUEST), options);
    expect(request.method).toBe("GET");
    expect(request.url).toBe("http://localhost:8080/chat");
    expect(request.headers.get("Sec-WebSocket-Key")).toBe("dGhlIHNhbXBsZSBub25jZQ==");
    expect(request.headers.get("cookie")).toBe("session=abc123; theme=dark");
    expect(request.body).toBeNull();
  });

  test("https when secure; the fallback authority when Host is empty", () => {
    const parsed = parseRequest(head("GET /a?b=1 HTTP/1.1", "Host: example.com"));
    expect(built(parsed, { ...options, secure: true }).url).toBe(
      "https://example.com/a?b=1",
    );
    const empty = parseRequest(head("GET /x HTTP/1.1", "Host:"));
    expect(built(empty, options).url).toBe("http://127.0.0.1:8080/x");
  });

  test("absolute-form ignores Host (RFC 9112 §3.2.2); asterisk and authority forms", () => {
    const absolute = parseRequest(head("GET http://other.test/p HTTP/1.1", "Host: example.com"));
    expect(requestUrl(absolute, options)).toBe("http://other.test/p");
    const asterisk = parseRequest(head("OPTIONS * HTTP/1.1", "Host: example.com"));
    expect(built(asterisk, options).url).toBe("http://example.com/*");
    const connect = parseRequest(head("CONNECT example.com:443 HTTP/1.1", "Host: example.com"));
    expect(requestUrl(connect, options)).toBe("http://example.com:443/");
  });

  test("a POST carries its body; a GET's body is dropped (the Fetch API allows none)", async () => {
    const post = parseRequest(
      head("POST /submit HTTP/1.1", "Host: h", "Content-Type: text/plain", "Content-Length: 5") +
        "hello",
    );
    const request = built(post, options);
    expect(request.method).toBe("POST");
    expect(await request.text()).toBe("hello");
    const get = parseRequest(head("GET / HTTP/1.1", "Host: h", "Content-Length: 3") + "abc");
    expect(built(get, options).body).toBeNull();
  });

  test("a chunked body arrives decoded", async () => {
    const parsed = parseRequest(
      head("PUT /f HTTP/1.1", "Host: h", "Transfer-Encoding: chunked") +
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    expect(await built(parsed, options).text()).toBe("abcde");
  });

  test("remoteAddressOf reads back the peer address", () => {
    const parsed = parseRequest(head("GET / HTTP/1.1", "Host: h"));
    const request = built(parsed, { ...options, remoteAddress: "10.0.0.7" });
    expect(remoteAddressOf(request)).toBe("10.0.0.7");
    expect(remoteAddressOf(built(parsed, options))).toBeUndefined();
  });

  test("a Host or target the URL parser refuses: 400, not a throw", () => {
    // Well-formed by RFC 3986, so the HTTP parser lets them through; WHATWG URL does not.
    for (const host of ["256.1.1.1", "a%20b", "1.2.3.4.5"]) {
      const parsed = parseRequest(head("GET / HTTP/1.1", "Host: " + host));
      expect(refusal(parsed)).toEqual({ status: 400, code: HttpErrorCode.BAD_URL });
    }
    const absolute = parseRequest(head("GET http://%zz/ HTTP/1.1", "Host: a"));
    expect(refusal(absolute)).toEqual({ status: 400, code: HttpErrorCode.BAD_URL });
  });

  test("methods are carried exactly, or refused with 501: never rewritten", () => {
    for (const method of ["GET", "POST", "PATCH", "DELETE", "PROPFIND", "M-SEARCH"]) {
      expect(built(parseRequest(head(`${method} / HTTP/1.1`, "Host: h"))).method).toBe(method);
    }
    // Bun's Request reads these as GET, or upper-cases them ("get", "patch").
    for (const method of ["BREW", "Patch", "get", "patch", "TRACK", "x~y"]) {
      const parsed = parseRequest(head(`${method} / HTTP/1.1`, "Host: h"));
      expect({ method, ...refusal(parsed) }).toEqual({
        method, status: 501, code: HttpErrorCode.METHOD_NOT_IMPLEMENTED,
      });
    }
  });

  test("an HTTP/1.0 request without Host gets the fallback authority", () => {
    expect(built(parseRequest(head("GET /health HTTP/1.0"))).url).toBe(
      "http://127.0.0.1:8080/health",
    );
  });
});
