/** Helpers and real-world fixtures for the HTTP upgrade layer tests. */
import {
  HttpRequestParser,
  ParserState,
  type HttpRequestParserOptions,
} from "../../src/protocol/http-request-parser.ts";

/** Latin-1 bytes of `text` (each char one byte), as on the wire. */
export function bytesOf(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new Error("bytesOf: char above U+00FF");
    bytes[i] = code;
  }
  return bytes;
}

/** Joins lines with CRLF and ends the head with the empty line. */
export function head(...lines: string[]): string {
  return lines.join("\r\n") + "\r\n\r\n";
}

/** Everything observable about a parse, in a shape `toEqual` compares well. */
export interface ParseOutcome {
  state: number;
  consumed: number;
  method?: string;
  target?: string;
  headers?: [string, string][];
  repeated?: string[];
  body?: number[] | null;
  status?: number;
  code?: string;
}

/**
 * Feeds `bytes` cut at `cuts` (sorted offsets). Each chunk is copied into one scratch buffer
 * that is then overwritten with 0xEE, so a parser that keeps a view past `feed` reads
 * garbage. Stops feeding once the parser is no longer NEED_MORE.
 */
export function parseInChunks(
  bytes: Uint8Array,
  cuts: readonly number[],
  options?: HttpRequestParserOptions,
): ParseOutcome {
  const parser = new HttpRequestParser(options);
  const scratch = new Uint8Array(bytes.length + 16);
  let consumed = 0;
  let previous = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut < previous) continue;
    // Place the chunk at a moving offset so start/end are honoured, not assumed to be 0.
    const offset = previous % 7;
    scratch.set(bytes.subarray(previous, cut), offset);
    const taken = parser.feed(scratch, offset, offset + (cut - previous));
    scratch.fill(0xee);
    if (parser.state !== ParserState.NEED_MORE) {
      consumed += taken;
      break;
    }
    if (taken !== cut - previous) throw new Error("NEED_MORE parser left bytes unconsumed");
    consumed += taken;
    previous = cut;
  }
  return outcomeOf(parser, consumed);
}

/** One byte per feed call. */
export function parseBytewise(bytes: Uint8Array, options?: HttpRequestParserOptions): ParseOutcome {
  const cuts: number[] = [];
  for (let i = 1; i < bytes.length; i++) cuts.push(i);
  return parseInChunks(bytes, cuts, options);
}

export function parseWhole(bytes: Uint8Array, options?: HttpRequestParserOptions): ParseOutcome {
  return parseInChunks(bytes, [], options);
}

export function outcomeOf(parser: HttpRequestParser, consumed: number): ParseOutcome {
  const request = parser.request;
  if (parser.state === ParserState.COMPLETE && request !== null) {
    return {
      state: parser.state,
      consumed,
      method: request.method,
      target: request.target,
      headers: [...request.headers],
      repeated: [...request.repeatedHeaderNames].sort(),
      body: request.body === null ? null : [...request.body],
    };
  }
  const error = parser.error;
  if (error === null) return { state: parser.state, consumed };
  return { state: parser.state, consumed, status: error.status, code: error.code };
}

/** Parses a complete request in one call and returns it (throws if it is not COMPLETE). */
export function parseRequest(text: string, options?: HttpRequestParserOptions) {
  const parser = new HttpRequestParser(options);
  const bytes = bytesOf(text);
  parser.feed(bytes, 0, bytes.length);
  if (parser.request === null) {
    throw new Error(`fixture did not parse: ${parser.error?.code ?? "incomplete"}`);
  }
  return parser.request;
}

/** A masked client text frame "Hello" (RFC 6455 §5.7), as a client may pipeline it. */
export const PIPELINED_FRAME = Uint8Array.of(
  0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
);

export const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
export const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/** Chrome 126 on Linux, page served from the same origin, with a subprotocol offer. */
export const CHROME_REQUEST = head(
  "GET /chat HTTP/1.1",
  "Host: localhost:8080",
  "Connection: Upgrade",
  "Pragma: no-cache",
  "Cache-Control: no-cache",
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
    "Chrome/126.0.0.0 Safari/537.36",
  "Upgrade: websocket",
  "Origin: http://localhost:8080",
  "Sec-WebSocket-Version: 13",
  "Accept-Encoding: gzip, deflate, br, zstd",
  "Accept-Language: en-US,en;q=0.9,de;q=0.8",
  "Cookie: session=abc123; theme=dark",
  "Sec-WebSocket-Key: " + RFC_KEY,
  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
  "Sec-WebSocket-Protocol: chat, superchat",
);

/** Firefox 127: note `Connection: keep-alive, Upgrade` and the Sec-Fetch-* fields. */
export const FIREFOX_REQUEST = head(
  "GET /socket?room=1 HTTP/1.1",
  "Host: example.com",
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
  "Accept: */*",
  "Accept-Language: en-US,en;q=0.5",
  "Accept-Encoding: gzip, deflate, br, zstd",
  "Sec-WebSocket-Version: 13",
  "Origin: https://example.com",
  "Sec-WebSocket-Extensions: permessage-deflate",
  "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
  "Connection: keep-alive, Upgrade",
  "Sec-Fetch-Dest: empty",
  "Sec-Fetch-Mode: websocket",
  "Sec-Fetch-Site: same-origin",
  "Pragma: no-cache",
  "Cache-Control: no-cache",
  "Upgrade: websocket",
);

/**
 * The `ws` npm client (8.x, lib/websocket.js initAsClient): its headers in insertion order,
 * protocols joined with "," and no space, then Node's http client appends Host.
 */
export const WS_CLIENT_REQUEST = head(
  "GET /?token=t HTTP/1.1",
  "Sec-WebSocket-Version: 13",
  "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
  "Connection: Upgrade",
  "Upgrade: websocket",
  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
  "Sec-WebSocket-Protocol: graphql-ws,graphql-transport-ws",
  "Host: 127.0.0.1:9001",
);
