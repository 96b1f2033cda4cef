/**
 * Plain-HTTP test tools: a raw client over any Transport that sends exactly the bytes a test
 * gives and records every byte back (with FIN/reset), and a strict parser of the responses in
 * those bytes (Content-Length, chunked, close-delimited, HEAD), so tests check framing and
 * order byte for byte.
 */
import { CloseMode, type Transport, type TransportHandler } from "../../src/api/transport.ts";
import { waitFor } from "../support/wait-for.ts";

const encoder = new TextEncoder();

export class RawHttpClient implements TransportHandler {
  readonly conn: number;
  private chunks: Buffer[] = [];
  private receivedBytes = 0;
  /** onClose's reason: 0 after FIN, -ECONNRESET after a reset. */
  closedReason: number | undefined = undefined;
  /** The server sent FIN. */
  ended = false;

  constructor(private readonly transport: Transport, port: number) {
    this.conn = transport.connect("127.0.0.1", port, this);
  }

  get bytesReceived(): number {
    return this.receivedBytes;
  }

  /** Everything received so far, as Latin-1 (one char per byte). */
  text(): string {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks.length === 0 ? "" : this.chunks[0].toString("latin1");
  }

  /** The last `count` bytes received, as Latin-1 (without joining everything). */
  tail(count: number): string {
    const parts: Buffer[] = [];
    let have = 0;
    for (let i = this.chunks.length - 1; i >= 0 && have < count; i--) {
      parts.unshift(this.chunks[i]);
      have += this.chunks[i].length;
    }
    const joined = Buffer.concat(parts);
    return joined.subarray(Math.max(0, joined.length - count)).toString("latin1");
  }

  send(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    const result = this.transport.send(this.conn, bytes, 0, bytes.length);
    if (result < 0) throw new Error(`client send failed: ${result}`);
  }

  /** Stop reading: the server's bytes back up (a slow client). */
  pause(): void {
    this.transport.pause(this.conn);
  }

  resume(): void {
    this.transport.resume(this.conn);
  }

  terminate(): void {
    this.transport.close(this.conn, CloseMode.Abort);
  }

  onOpen(): void {}
  onData(_conn: number, data: Uint8Array, start: number, end: number): void {
    this.chunks.push(Buffer.from(Uint8Array.prototype.slice.call(data, start, end)));
    this.receivedBytes += end - start;
  }
  onDrain(): void {}
  onEnd(): void {
    this.ended = true;
  }
  onClose(_conn: number, reason: number): void {
    this.closedReason = reason;
  }

  /** The responses so far (see parseResponses); `methods` says which answered a HEAD. */
  responses(methods: readonly string[] = []): ParsedResponse[] {
    return parseResponses(this.text(), methods, this.closedReason !== undefined).responses;
  }

  async waitResponses(count: number, methods: readonly string[] = [], timeoutMs = 5000):
    Promise<ParsedResponse[]> {
    await waitFor(() => this.responses(methods).length >= count, timeoutMs,
      () => `${count} responses (have ${this.responses(methods).length}: ${JSON.stringify(this.text().slice(0, 400))})`);
    return this.responses(methods);
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    return waitFor(() => this.closedReason !== undefined, timeoutMs, "connection closed");
  }
}

export interface ParsedResponse {
  status: number;
  /** The head as sent, without the final empty line. */
  head: string;
  /** Lower-case names; repeated names joined with ", ". */
  headers: Map<string, string>;
  /** The body's bytes as Latin-1. */
  body: string;
  framing: "length" | "chunked" | "close" | "none";
  /** Chunked: how many data chunks the body came in. */
  chunks: number;
}

/**
 * The complete responses at the start of `text`. `methods[i]` is the method of the request
 * the i-th response answers (HEAD: no body). A close-delimited body is complete only once
 * `closed`. Malformed framing throws.
 */
export function parseResponses(text: string, methods: readonly string[], closed: boolean):
  { responses: ParsedResponse[]; rest: string } {
  const responses: ParsedResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf("\r\n\r\n", at);
    if (headEnd < 0) break;
    const head = text.slice(at, headEnd);
    const lines = head.split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    let bodyStart = headEnd + 4;
    const method = methods[responses.length] ?? "GET";
    const bodyless = method === "HEAD" || status === 204 || status === 304 ||
      (status >= 100 && status < 200);
    let body = "";
    let framing: ParsedResponse["framing"];
    let chunks = 0;
    if (status === 101) {
      responses.push({ status, head, headers, body, framing: "none", chunks });
      at = bodyStart;
      break; // WebSocket bytes follow
    }
    if (bodyless) {
      framing = "none";
    } else if (headers.get("transfer-encoding") === "chunked") {
      if (headers.has("content-length")) throw new Error("both Content-Length and chunked");
      framing = "chunked";
      let done = false;
      let cursor = bodyStart;
      const parts: string[] = [];
      for (;;) {
        const lineEnd = text.indexOf("\r\n", cursor);
        if (lineEnd < 0) break;
        const sizeText = text.slice(cursor, lineEnd);
        if (!/^[0-9a-f]+$/.test(sizeText)) throw new Error(`bad chunk size ${JSON.stringify(sizeText)}`);
        const size = parseInt(sizeText, 16);
        if (size === 0) {
          if (text.length < lineEnd + 4) break;
          if (text.slice(lineEnd + 2, lineEnd + 4) !== "\r\n") throw new Error("trailers or bad end");
          cursor = lineEnd + 4;
          done = true;
          break;
        }
        const dataEnd = lineEnd + 2 + size;
        if (text.length < dataEnd + 2) break;
        if (text.slice(dataEnd, dataEnd + 2) !== "\r\n") throw new Error("chunk without CRLF");
        parts.push(text.slice(lineEnd + 2, dataEnd));
        chunks++;
        cursor = dataEnd + 2;
      }
      if (!done) break;
      body = parts.join("");
      bodyStart = cursor;
    } else if (headers.has("content-length")) {
      framing = "length";
      const length = Number(headers.get("content-length"));
      if (text.length < bodyStart + length) break;
      body = text.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    } else {
      framing = "close";
      if (!closed) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    responses.push({ status, head, headers, body, framing, chunks });
    at = bodyStart;
  }
  return { responses, rest: text.slice(at) };
}

/** A GET (or `method`) request on HTTP/1.1 with Host, and `extra` header lines. */
export function request(path: string, extra: Record<string, string> = {}, method = "GET",
  version = "HTTP/1.1"): string {
  const lines = Object.entries({ Host: "a", ...extra }).map(([name, value]) => `${name}: ${value}\r\n`);
  return `${method} ${path} ${version}\r\n${lines.join("")}\r\n`;
}

/** Runs `body` with console.error recorded instead of printed; returns what was logged. */
export async function capturingErrors(body: () => Promise<void>): Promise<unknown[][]> {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    await body();
  } finally {
    console.error = original;
  }
  return logged;
}
