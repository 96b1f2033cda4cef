import { describe, expect, test } from "bun:test";
import { UsageError } from "../../src/api/errors.ts";
import {
  INVALID_HEADER,
  INVALID_STATUS,
  RESPONSE_BODY_USED,
  RESPONSE_TOO_LARGE,
  STATUS_TEXT,
  build101Response,
  buildErrorResponse,
  httpDate,
  serializeResponse,
} from "../../src/protocol/http-response.ts";
import { RFC_ACCEPT } from "./http-support.ts";

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

/** Splits a response into its head lines and body, checking the CRLF framing. */
function splitResponse(bytes: Uint8Array): { lines: string[]; body: string } {
  const text = latin1(bytes);
  const end = text.indexOf("\r\n\r\n");
  expect(end).toBeGreaterThan(0);
  const headText = text.slice(0, end);
  for (const line of headText.split("\r\n")) expect(line).not.toMatch(/[\r\n]/);
  return { lines: headText.split("\r\n"), body: text.slice(end + 4) };
}

function withoutDate(lines: string[]): string[] {
  return lines.filter((line) => !line.startsWith("Date: "));
}

function usageErrorCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).code;
  }
  return undefined;
}

describe("build101Response", () => {
  test("the exact bytes, without and with a subprotocol", () => {
    expect(latin1(build101Response(RFC_ACCEPT))).toBe(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n\r\n`,
    );
    expect(latin1(build101Response(RFC_ACCEPT, null))).toBe(latin1(build101Response(RFC_ACCEPT)));
    const lines = splitResponse(build101Response(RFC_ACCEPT, "chat")).lines;
    expect(lines.at(-1)).toBe("Sec-WebSocket-Protocol: chat");
  });

  test("extra headers in all three shapes", () => {
    const record = build101Response(RFC_ACCEPT, undefined, {
      "Sec-WebSocket-Extensions": "permessage-deflate",
      "X-Id": "7",
    });
    expect(splitResponse(record).lines.slice(4)).toEqual([
      "Sec-WebSocket-Extensions: permessage-deflate",
      "X-Id: 7",
    ]);
    const pairs = build101Response(RFC_ACCEPT, "chat", [
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ]);
    expect(splitResponse(pairs).lines.slice(4)).toEqual([
      "Sec-WebSocket-Protocol: chat",
      "Set-Cookie: a=1",
      "Set-Cookie: b=2",
    ]);
    const headers = new Headers([
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
      ["X-A", "1"],
    ]);
    expect(splitResponse(build101Response(RFC_ACCEPT, undefined, headers)).lines.slice(4)).toEqual(
      ["x-a: 1", "set-cookie: a=1", "set-cookie: b=2"],
    );
  });

  test("header injection is refused", () => {
    const attempts: [string, string][] = [
      ["X-A", "1\r\nSet-Cookie: evil=1"],
      ["X-A", "1\nInjected: yes"],
      ["X-A", "1\rInjected: yes"],
      ["X-A", "nul\u0000"],
      ["X-A", "\u0100 above Latin-1"],
      ["X-A\r\nInjected", "1"],
      ["X A", "1"],
      ["X-A:", "1"],
      ["", "1"],
    ];
    for (const pair of attempts) {
      expect(usageErrorCode(() => build101Response(RFC_ACCEPT, undefined, [pair]))).toBe(
        INVALID_HEADER,
      );
      expect(
        usageErrorCode(() => build101Response(RFC_ACCEPT, undefined, { [pair[0]]: pair[1] })),
      ).toBe(INVALID_HEADER);
    }
    expect(usageErrorCode(() => build101Response(RFC_ACCEPT, "chat\r\nX: y"))).toBe(INVALID_HEADER);
    expect(usageErrorCode(() => build101Response(RFC_ACCEPT, "a b"))).toBe(INVALID_HEADER);
    expect(usageErrorCode(() => build101Response("x\r\nY: z"))).toBe(INVALID_HEADER);
  });

  test("headers the 101 writes itself (or must not carry) are refused as extras", () => {
    for (const name of [
      "Upgrade",
      "connection",
      "Sec-WebSocket-Accept",
      "Sec-WebSocket-Protocol",
      "Content-Length",
      "Transfer-Encoding",
    ]) {
      expect(usageErrorCode(() => build101Response(RFC_ACCEPT, null, { [name]: "x" }))).toBe(
        INVALID_HEADER,
      );
    }
  });
});

describe("buildErrorResponse", () => {
  test("status line, Connection: close, text body with its byte length, Date", () => {
    const { lines, body } = splitResponse(buildErrorResponse(400, "bad key \u2014 see RFC"));
    expect(withoutDate(lines)).toEqual([
      "HTTP/1.1 400 Bad Request",
      "Connection: close",
      "Content-Type: text/plain; charset=utf-8",
      `Content-Length: ${new TextEncoder().encode("bad key \u2014 see RFC").length}`,
    ]);
    expect(Buffer.from(body, "latin1").toString("utf8")).toBe("bad key \u2014 see RFC");
    const date = lines.find((line) => line.startsWith("Date: "));
    expect(date).toMatch(/^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  });

  test("426 with Upgrade lists Upgrade in Connection (RFC 9110 §7.8)", () => {
    const bytes = buildErrorResponse(426, "use WebSocket", {
      "Sec-WebSocket-Version": "13",
      Upgrade: "websocket",
    });
    const lines = splitResponse(bytes).lines;
    expect(lines[0]).toBe("HTTP/1.1 426 Upgrade Required");
    expect(lines).toContain("Connection: Upgrade, close");
    expect(lines).toContain("Sec-WebSocket-Version: 13");
    expect(lines).toContain("Upgrade: websocket");
  });

  test("405 with Allow; a given Date replaces ours", () => {
    const date = "Sun, 06 Nov 1994 08:49:37 GMT";
    const lines = splitResponse(buildErrorResponse(405, "GET only", { Allow: "GET", Date: date }))
      .lines;
    expect(lines.filter((line) => line.startsWith("Date: "))).toEqual([`Date: ${date}`]);
    expect(lines).toContain("Allow: GET");
  });

  test("refuses non-error statuses, reserved names and injection", () => {
    expect(usageErrorCode(() => buildErrorResponse(200, "ok"))).toBe(INVALID_STATUS);
    expect(usageErrorCode(() => buildErrorResponse(600, "x"))).toBe(INVALID_STATUS);
    expect(usageErrorCode(() => buildErrorResponse(400.5, "x"))).toBe(INVALID_STATUS);
    expect(usageErrorCode(() => buildErrorResponse(400, "x", { "Content-Length": "1" }))).toBe(
      INVALID_HEADER,
    );
    expect(usageErrorCode(() => buildErrorResponse(400, "x", { X: "a\r\nb: c" }))).toBe(
      INVALID_HEADER,
    );
  });

  test("every status it may answer has its standard phrase", () => {
    for (const status of [400, 405, 413, 414, 426, 431, 500, 501, 503, 505]) {
      const line = splitResponse(buildErrorResponse(status, "x")).lines[0];
      expect(line).toBe(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}`);
    }
  });
});

describe("serializeResponse", () => {
  test("status, headers, computed Content-Length, Connection: close", async () => {
    const response = new Response("hello", {
      status: 201,
      headers: {
        "Content-Type": "text/plain",
        Connection: "keep-alive",
        "Keep-Alive": "timeout=5",
        "Content-Length": "999",
        "X-Id": "1",
      },
    });
    const { lines, body } = splitResponse(await serializeResponse(response));
    expect(withoutDate(lines)).toEqual([
      "HTTP/1.1 201 Created",
      "content-type: text/plain",
      "x-id: 1",
      "Connection: close",
      "Content-Length: 5",
    ]);
    expect(body).toBe("hello");
  });

  test("each Set-Cookie on its own line", async () => {
    const headers = new Headers();
    headers.append("Set-Cookie", "a=1; Path=/");
    headers.append("Set-Cookie", "b=2, c");
    const { lines } = splitResponse(await serializeResponse(new Response(null, { headers })));
    expect(lines.filter((line) => line.startsWith("set-cookie"))).toEqual([
      "set-cookie: a=1; Path=/",
      "set-cookie: b=2, c",
    ]);
  });

  test("streamed bodies are read fully; binary is kept byte for byte", async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(Uint8Array.of(0, 1, 2));
        controller.enqueue(Uint8Array.of(253, 254, 255));
        controller.close();
      },
    });
    const bytes = await serializeResponse(new Response(stream));
    const { lines } = splitResponse(bytes);
    expect(lines).toContain("Content-Length: 6");
    expect([...bytes.subarray(bytes.length - 6)]).toEqual([0, 1, 2, 253, 254, 255]);
  });

  test("204/304 go without body and Content-Length; HEAD keeps the length only", async () => {
    for (const status of [204, 304]) {
      const bytes = await serializeResponse(new Response(null, { status }));
      const { lines, body } = splitResponse(bytes);
      expect(lines.some((line) => line.startsWith("Content-Length"))).toBe(false);
      expect(body).toBe("");
    }
    const head = await serializeResponse(new Response("12345"), { requestMethod: "HEAD" });
    const { lines, body } = splitResponse(head);
    expect(lines).toContain("Content-Length: 5");
    expect(body).toBe("");
  });

  test("unknown statuses use the Response's statusText", async () => {
    const bytes = await serializeResponse(new Response("", { status: 599, statusText: "Odd" }));
    expect(splitResponse(bytes).lines[0]).toBe("HTTP/1.1 599 Odd");
  });

  test("a body over the bound is refused and its stream cancelled", async () => {
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(1024));
      },
      cancel() {
        cancelled = true;
      },
    });
    const attempt = serializeResponse(new Response(endless), { maxBodyBytes: 10_000 });
    await expect(attempt).rejects.toMatchObject({ code: RESPONSE_TOO_LARGE });
    expect(cancelled).toBe(true);
    const exact = await serializeResponse(new Response(new Uint8Array(10_000)), {
      maxBodyBytes: 10_000,
    });
    expect(splitResponse(exact).lines).toContain("Content-Length: 10000");
  });

  test("a body already read is a UsageError", async () => {
    const response = new Response("x");
    await response.text();
    await expect(serializeResponse(response)).rejects.toMatchObject({ code: RESPONSE_BODY_USED });
  });

  test("keeps a Date the Response has", async () => {
    const date = "Sun, 06 Nov 1994 08:49:37 GMT";
    const bytes = await serializeResponse(new Response("", { headers: { Date: date } }));
    expect(splitResponse(bytes).lines.filter((line) => /^date/i.test(line))).toEqual([
      `date: ${date}`,
    ]);
  });
});

test("httpDate is an IMF-fixdate", () => {
  expect(httpDate(784111777000)).toBe("Sun, 06 Nov 1994 08:49:37 GMT");
});
