import { describe, expect, test } from "bun:test";
import { UsageError } from "../../src/api/errors.ts";
import {
  PROTOCOL_NOT_OFFERED,
  WEBSOCKET_GUID,
  acceptKey,
  isUpgradeRequest,
  isWebSocketKey,
  parseProtocolList,
  selectProtocol,
  validateUpgrade,
  type UpgradeAccepted,
  type UpgradeRejected,
} from "../../src/protocol/handshake.ts";
import { HttpErrorCode } from "../../src/protocol/http-errors.ts";
import type { HttpRequest } from "../../src/protocol/http-request-parser.ts";
import { build101Response } from "../../src/protocol/http-response.ts";
import {
  CHROME_REQUEST,
  FIREFOX_REQUEST,
  RFC_ACCEPT,
  RFC_KEY,
  WS_CLIENT_REQUEST,
  head,
  parseRequest,
} from "./http-support.ts";

const E = HttpErrorCode;

/** A valid upgrade request with `changes` applied (null removes a field). */
function upgradeRequest(
  changes: Record<string, string | null> = {},
  requestLine = "GET /ws HTTP/1.1",
): HttpRequest {
  const fields: Record<string, string | null> = {
    Host: "example.com",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": RFC_KEY,
    ...changes,
  };
  const lines = Object.entries(fields)
    .filter((entry): entry is [string, string] => entry[1] !== null)
    .map(([name, value]) => `${name}: ${value}`);
  return parseRequest(head(requestLine, ...lines));
}

function accepted(request: HttpRequest): UpgradeAccepted {
  const result = validateUpgrade(request);
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.reason}`);
  return result;
}

function rejected(request: HttpRequest): UpgradeRejected {
  const result = validateUpgrade(request);
  if (result.ok) throw new Error("expected a rejection");
  return result;
}

describe("acceptKey", () => {
  test("RFC 6455 §1.3 example", () => {
    // The RFC's value (also Python hashlib's); "s3pPLMBiTxaGeoO9hSk3T7ZtQLI=" is not it.
    expect(acceptKey(RFC_KEY)).toBe(RFC_ACCEPT);
    expect(WEBSOCKET_GUID).toBe("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  });

  test("matches node:crypto for other keys", async () => {
    const { createHash } = await import("node:crypto");
    for (const key of ["x3JJHMbDL1EzLkh9GBhXDw==", "AQIDBAUGBwgJCgsMDQ4PEA=="]) {
      const expected = createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
      expect(acceptKey(key)).toBe(expected);
    }
  });
});

describe("isUpgradeRequest", () => {
  test("looks for the websocket token in Upgrade, in any case, in a list", () => {
    for (const value of ["websocket", "WebSocket", "h2c, websocket", " websocket ,foo"]) {
      expect(isUpgradeRequest(upgradeRequest({ Upgrade: value }))).toBe(true);
    }
    for (const value of ["websocketx", "web socket", "h2c", ""]) {
      expect(isUpgradeRequest(upgradeRequest({ Upgrade: value }))).toBe(false);
    }
    expect(isUpgradeRequest(upgradeRequest({ Upgrade: null }))).toBe(false);
  });

  test("a plain GET goes to fetch", () => {
    expect(isUpgradeRequest(parseRequest(head("GET / HTTP/1.1", "Host: h")))).toBe(false);
  });
});

describe("validateUpgrade accepts", () => {
  test("a minimal valid request", () => {
    expect(accepted(upgradeRequest())).toEqual({
      ok: true,
      key: RFC_KEY,
      version: 13,
      protocols: [],
      extensions: "",
    });
  });

  test("Connection as a token list in any case", () => {
    for (const value of ["upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade,keep-alive"]) {
      expect(accepted(upgradeRequest({ Connection: value })).key).toBe(RFC_KEY);
    }
  });

  test("Chrome: extensions raw, protocols split", () => {
    const result = accepted(parseRequest(CHROME_REQUEST));
    expect(result.protocols).toEqual(["chat", "superchat"]);
    expect(result.extensions).toBe("permessage-deflate; client_max_window_bits");
    expect(acceptKey(result.key)).toBe(RFC_ACCEPT);
  });

  test("Firefox: Connection: keep-alive, Upgrade", () => {
    const result = accepted(parseRequest(FIREFOX_REQUEST));
    expect(result.key).toBe("x3JJHMbDL1EzLkh9GBhXDw==");
    expect(result.protocols).toEqual([]);
    expect(result.extensions).toBe("permessage-deflate");
  });

  test("the ws client: protocols joined without spaces", () => {
    const result = accepted(parseRequest(WS_CLIENT_REQUEST));
    expect(result.protocols).toEqual(["graphql-ws", "graphql-transport-ws"]);
  });

  test("several Sec-WebSocket-Protocol and -Extensions lines are combined", () => {
    const request = parseRequest(
      head(
        "GET / HTTP/1.1",
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + RFC_KEY,
        "Sec-WebSocket-Protocol: a, b",
        "Sec-WebSocket-Extensions: permessage-deflate",
        "Sec-WebSocket-Protocol: c",
        "Sec-WebSocket-Extensions: x-other",
      ),
    );
    const result = accepted(request);
    expect(result.protocols).toEqual(["a", "b", "c"]);
    expect(result.extensions).toBe("permessage-deflate, x-other");
  });

  test("Content-Length: 0 is not a body", () => {
    expect(accepted(upgradeRequest({ "Content-Length": "0" })).ok).toBe(true);
  });
});

describe("validateUpgrade rejects", () => {
  test("a method other than GET with 405 and Allow: GET", () => {
    const result = rejected(upgradeRequest({}, "POST /ws HTTP/1.1"));
    expect(result).toMatchObject({ status: 405, code: E.METHOD_NOT_ALLOWED });
    expect(result.headers).toEqual({ Allow: "GET" });
    expect(rejected(upgradeRequest({}, "get /ws HTTP/1.1")).status).toBe(405);
  });

  test("an HTTP/1.0 request with 400 (RFC 6455 §4.2.1 asks for HTTP/1.1 or higher)", () => {
    const result = rejected(upgradeRequest({}, "GET /ws HTTP/1.0"));
    expect(result).toMatchObject({ status: 400, code: E.UPGRADE_NEEDS_HTTP11 });
    expect(result.reason).toContain("HTTP/1.1");
    // Checked first: an HTTP/1.0 POST is told about the version, not about the method.
    expect(rejected(upgradeRequest({}, "POST /ws HTTP/1.0")).code).toBe(E.UPGRADE_NEEDS_HTTP11);
  });

  test("no websocket in Upgrade, no upgrade in Connection: 400", () => {
    expect(rejected(upgradeRequest({ Upgrade: "h2c" }))).toMatchObject({
      status: 400,
      code: E.BAD_UPGRADE_HEADER,
    });
    for (const value of [null, "keep-alive", "upgrades", "close"]) {
      expect(rejected(upgradeRequest({ Connection: value }))).toMatchObject({
        status: 400,
        code: E.BAD_CONNECTION_HEADER,
      });
    }
  });

  test("a missing or other version with 426 and Sec-WebSocket-Version: 13", () => {
    for (const value of [null, "8", "12", "14", "13, 8", "", "thirteen"]) {
      const result = rejected(upgradeRequest({ "Sec-WebSocket-Version": value }));
      expect(result).toMatchObject({ status: 426, code: E.BAD_WEBSOCKET_VERSION });
      expect(result.headers).toEqual({ "Sec-WebSocket-Version": "13", Upgrade: "websocket" });
    }
  });

  test("a key that is missing, repeated, or not base64 of 16 bytes: 400", () => {
    const bad = (changes: Record<string, string | null>) =>
      rejected(upgradeRequest(changes)).code;
    expect(bad({ "Sec-WebSocket-Key": null })).toBe(E.BAD_WEBSOCKET_KEY);
    const keys = [
      "",
      "dGhlIHNhbXBsZSBub25jZQ", // no padding
      "dGhlIHNhbXBsZSBub25jZQ=", // one "="
      "dGhlIHNhbXBsZSBub25jZQ==x",
      "dGhlIHNhbXBsZSBub25jZT0=", // 17 bytes
      "dGhlIHNhbXBsZSBub25j", // 15 bytes
      "dGhlIHNhbXBsZSBub25jZ!==",
      "dGhlIHNhbXBsZSBub25jZQ-_", // base64url is not base64
    ];
    for (const key of keys) expect(bad({ "Sec-WebSocket-Key": key })).toBe(E.BAD_WEBSOCKET_KEY);
    const repeated = parseRequest(
      head(
        "GET / HTTP/1.1",
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + RFC_KEY,
        "Sec-WebSocket-Key: " + RFC_KEY,
      ),
    );
    expect(rejected(repeated)).toMatchObject({ status: 400, code: E.BAD_WEBSOCKET_KEY });
  });

  test("a request without Host (built by hand: the parser already refuses it)", () => {
    const request: HttpRequest = { ...upgradeRequest(), headers: new Map() };
    expect(rejected(request)).toMatchObject({ status: 400, code: E.BAD_HOST });
  });

  test("a body or a Transfer-Encoding: 400", () => {
    const withBody = parseRequest(
      head(
        "GET / HTTP/1.1",
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + RFC_KEY,
        "Content-Length: 2",
      ) + "hi",
    );
    expect(rejected(withBody)).toMatchObject({ status: 400, code: E.UPGRADE_WITH_BODY });
    const chunked = parseRequest(
      head(
        "GET / HTTP/1.1",
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + RFC_KEY,
        "Transfer-Encoding: chunked",
      ) + "0\r\n\r\n",
    );
    expect(rejected(chunked).code).toBe(E.UPGRADE_WITH_BODY);
  });

  test("a malformed Sec-WebSocket-Protocol: 400", () => {
    for (const value of ["a b", "a, a", "chat, [x]", "\"quoted\""]) {
      expect(rejected(upgradeRequest({ "Sec-WebSocket-Protocol": value }))).toMatchObject({
        status: 400,
        code: E.BAD_WEBSOCKET_PROTOCOL,
      });
    }
  });

  test("rejections are shared constants (no allocation on the failure path)", () => {
    const first = rejected(upgradeRequest({ Connection: null }));
    expect(rejected(upgradeRequest({ Connection: null }))).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });
});

describe("helpers", () => {
  test("isWebSocketKey", () => {
    expect(isWebSocketKey(RFC_KEY)).toBe(true);
    expect(isWebSocketKey(Buffer.from(new Uint8Array(16).fill(255)).toString("base64"))).toBe(true);
    expect(isWebSocketKey(Buffer.from(new Uint8Array(17)).toString("base64"))).toBe(false);
  });

  test("parseProtocolList skips empty elements, keeps order and case", () => {
    expect(parseProtocolList("a,,b , C")).toEqual(["a", "b", "C"]);
    expect(parseProtocolList("chat, Chat")).toEqual(["chat", "Chat"]);
    expect(parseProtocolList("")).toEqual([]);
    expect(parseProtocolList("a;b")).toBeNull();
  });

  test("selectProtocol returns an offered choice or null", () => {
    expect(selectProtocol(["chat", "superchat"], "superchat")).toBe("superchat");
    expect(selectProtocol(["chat"], undefined)).toBeNull();
    expect(selectProtocol([], null)).toBeNull();
  });

  test("selectProtocol throws a UsageError for a choice not offered", () => {
    const attempts: [readonly string[], string][] = [
      [["chat"], "superchat"],
      [["chat"], "Chat"], // case-sensitive
      [[], "chat"],
    ];
    for (const [offered, chosen] of attempts) {
      let caught: unknown;
      try {
        selectProtocol(offered, chosen);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(UsageError);
      expect((caught as UsageError).code).toBe(PROTOCOL_NOT_OFFERED);
      expect((caught as UsageError).message).toContain(JSON.stringify(chosen));
    }
  });
});

describe("the whole server side of a handshake", () => {
  test("Chrome request → 101 with the accept key and the chosen protocol", () => {
    const result = accepted(parseRequest(CHROME_REQUEST));
    const protocol = selectProtocol(result.protocols, "chat");
    const response = new TextDecoder().decode(build101Response(acceptKey(result.key), protocol));
    expect(response).toBe(
      "HTTP/1.1 101 Switching Protocols\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        "Sec-WebSocket-Protocol: chat\r\n" +
        "\r\n",
    );
  });
});
