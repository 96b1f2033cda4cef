import { describe, expect, test } from "bun:test";
import { remoteAddressOf, requestUrl, toWebRequest } from "../../src/protocol/web-request.ts";
import { CHROME_REQUEST, head, parseRequest } from "./http-support.ts";

const options = { hostFallback: "127.0.0.1:8080" };

describe("toWebRequest", () => {
  test("method, absolute URL from Host + target, headers", () => {
    const request = toWebRequest(parseRequest(CHROME_REQUEST), options);
    expect(request.method).toBe("GET");
    expect(request.url).toBe("http://localhost:8080/chat");
    expect(request.headers.get("Sec-WebSocket-Key")).toBe("dGhlIHNhbXBsZSBub25jZQ==");
    expect(request.headers.get("cookie")).toBe("session=abc123; theme=dark");
    expect(request.body).toBeNull();
  });

  test("https when secure; the fallback authority when Host is empty", () => {
    const parsed = parseRequest(head("GET /a?b=1 HTTP/1.1", "Host: example.com"));
    expect(toWebRequest(parsed, { ...options, secure: true }).url).toBe(
      "https://example.com/a?b=1",
    );
    const empty = parseRequest(head("GET /x HTTP/1.1", "Host:"));
    expect(toWebRequest(empty, options).url).toBe("http://127.0.0.1:8080/x");
  });

  test("absolute-form ignores Host (RFC 9112 §3.2.2); asterisk and authority forms", () => {
    const absolute = parseRequest(head("GET http://other.test/p HTTP/1.1", "Host: example.com"));
    expect(requestUrl(absolute, options)).toBe("http://other.test/p");
    const asterisk = parseRequest(head("OPTIONS * HTTP/1.1", "Host: example.com"));
    expect(toWebRequest(asterisk, options).url).toBe("http://example.com/*");
    const connect = parseRequest(head("CONNECT example.com:443 HTTP/1.1", "Host: example.com"));
    expect(requestUrl(connect, options)).toBe("http://example.com:443/");
  });

  test("a POST carries its body; a GET's body is dropped (the Fetch API allows none)", async () => {
    const post = parseRequest(
      head("POST /submit HTTP/1.1", "Host: h", "Content-Type: text/plain", "Content-Length: 5") +
        "hello",
    );
    const request = toWebRequest(post, options);
    expect(request.method).toBe("POST");
    expect(await request.text()).toBe("hello");
    const get = parseRequest(head("GET / HTTP/1.1", "Host: h", "Content-Length: 3") + "abc");
    expect(toWebRequest(get, options).body).toBeNull();
  });

  test("a chunked body arrives decoded", async () => {
    const parsed = parseRequest(
      head("PUT /f HTTP/1.1", "Host: h", "Transfer-Encoding: chunked") +
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    expect(await toWebRequest(parsed, options).text()).toBe("abcde");
  });

  test("remoteAddressOf reads back the peer address", () => {
    const parsed = parseRequest(head("GET / HTTP/1.1", "Host: h"));
    const request = toWebRequest(parsed, { ...options, remoteAddress: "10.0.0.7" });
    expect(remoteAddressOf(request)).toBe("10.0.0.7");
    expect(remoteAddressOf(toWebRequest(parsed, options))).toBeUndefined();
  });

  test("a Host that cannot form a URL throws TypeError (the server answers 400)", () => {
    const parsed = parseRequest(head("GET / HTTP/1.1", "Host: a%zz"));
    expect(() => toWebRequest(parsed, options)).toThrow(TypeError);
  });
});
