/**
 * The upgrade layer against real clients over loopback: a Bun.listen server that uses only
 * src/protocol's HTTP modules answers Bun's own WebSocket client and fetch(). The clients
 * check our bytes (accept key, subprotocol, status line, Content-Length) independently.
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import {
  acceptKey,
  isUpgradeRequest,
  selectProtocol,
  validateUpgrade,
} from "../../src/protocol/handshake.ts";
import {
  HttpRequestParser,
  ParserState,
  type HttpRequest,
} from "../../src/protocol/http-request-parser.ts";
import {
  build101Response,
  buildErrorResponse,
  serializeResponse,
} from "../../src/protocol/http-response.ts";
import { toWebRequest } from "../../src/protocol/web-request.ts";
import { withTimeout } from "../support/wait-for.ts";

interface Connection {
  parser: HttpRequestParser;
  upgraded: boolean;
}

/** Raw requests the server saw, for checks on what real clients send. */
const seenRequests: HttpRequest[] = [];
const SERVER_FRAME = Uint8Array.of(0x81, 0x02, 0x68, 0x69); // unmasked text "hi"

async function fetchHook(request: Request): Promise<Response> {
  if (request.method === "POST") {
    return new Response(`echo:${await request.text()}`, { headers: { "X-Method": "POST" } });
  }
  return new Response("plain http", { status: 200, headers: { "Content-Type": "text/plain" } });
}

async function answer(socket: Socket<Connection>, request: HttpRequest): Promise<void> {
  seenRequests.push(request);
  if (!isUpgradeRequest(request)) {
    const webRequest = toWebRequest(request, { hostFallback: "127.0.0.1" });
    if (!(webRequest instanceof Request)) {
      socket.end(buildErrorResponse(webRequest.status, webRequest.reason));
      return;
    }
    const response = await fetchHook(webRequest);
    socket.end(await serializeResponse(response, { requestMethod: request.method }));
    return;
  }
  const result = validateUpgrade(request);
  if (!result.ok) {
    socket.end(buildErrorResponse(result.status, result.reason, result.headers));
    return;
  }
  const protocol = selectProtocol(result.protocols, result.protocols[0]);
  socket.write(build101Response(acceptKey(result.key), protocol));
  socket.data.upgraded = true;
  socket.write(SERVER_FRAME);
}

const server = Bun.listen<Connection>({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    open(socket) {
      socket.data = { parser: new HttpRequestParser(), upgraded: false };
    },
    data(socket, data) {
      const connection = socket.data;
      if (connection.upgraded) return; // client frames are not this layer's business
      const parser = connection.parser;
      parser.feed(data, 0, data.length);
      if (parser.state === ParserState.NEED_MORE) return;
      if (parser.state === ParserState.ERROR) {
        const error = parser.error!;
        socket.end(buildErrorResponse(error.status, error.reason));
        return;
      }
      void answer(socket, parser.request!);
    },
  },
});
const base = `127.0.0.1:${server.port}`;

afterAll(() => {
  server.stop(true);
});

function openWebSocket(protocols?: string[]): Promise<{ protocol: string; message: string }> {
  const socket = new WebSocket(`ws://${base}/live?x=1`, protocols);
  const settled = new Promise<{ protocol: string; message: string }>((resolve, reject) => {
    socket.onmessage = (event) => {
      resolve({ protocol: socket.protocol, message: String(event.data) });
      socket.close();
    };
    socket.onerror = () => reject(new Error("WebSocket client failed the handshake"));
  });
  return withTimeout(settled, 5000, "WebSocket open + first message");
}

/** Sends raw bytes, returns everything the server answered before closing. */
async function rawExchange(text: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let closed: () => void = () => {};
  const done = new Promise<void>((resolve) => (closed = resolve));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    socket: {
      data(_socket, data) {
        chunks.push(new Uint8Array(data));
      },
      close() {
        closed();
      },
    },
  });
  socket.write(text);
  await withTimeout(done, 5000, "server closes after answering");
  return Buffer.concat(chunks).toString("latin1");
}

describe("live handshakes", () => {
  test("Bun's WebSocket client accepts our 101 and the chosen subprotocol", async () => {
    const { protocol, message } = await openWebSocket(["chat", "superchat"]);
    expect(protocol).toBe("chat");
    expect(message).toBe("hi");
    const request = seenRequests.at(-1)!;
    expect(request.target).toBe("/live?x=1");
    expect(request.headers.get("sec-websocket-protocol")).toBe("chat, superchat");
  });

  test("without subprotocols", async () => {
    const { protocol, message } = await openWebSocket();
    expect(protocol).toBe("");
    expect(message).toBe("hi");
  });

  test("fetch() reads our serialized responses", async () => {
    const get = await withTimeout(fetch(`http://${base}/page`), 5000, "GET");
    expect(get.status).toBe(200);
    expect(get.headers.get("content-type")).toBe("text/plain");
    expect(await get.text()).toBe("plain http");
    const post = await withTimeout(
      fetch(`http://${base}/echo`, { method: "POST", body: "payload" }),
      5000,
      "POST",
    );
    expect(post.headers.get("x-method")).toBe("POST");
    expect(await post.text()).toBe("echo:payload");
  });

  test("a bad handshake gets a well-formed 426 that the client can read", async () => {
    const response = await rawExchange(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    expect(response.startsWith("HTTP/1.1 426 Upgrade Required\r\n")).toBe(true);
    expect(response).toContain("\r\nSec-WebSocket-Version: 13\r\n");
    const [headText, body] = response.split("\r\n\r\n") as [string, string];
    expect(headText).toContain(`Content-Length: ${body.length}`);
  });

  test("a malformed request gets the parser's status", async () => {
    const response = await rawExchange("GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    expect(response.startsWith("HTTP/1.1 505 HTTP Version Not Supported\r\n")).toBe(true);
  });
});
