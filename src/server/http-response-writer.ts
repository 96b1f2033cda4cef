/**
 * Writes one Web `Response` from `fetch` (or a refusing `upgrade` hook) to a connection as
 * it is produced, with bounded memory, and tells the connection's handshake state how it
 * ended. Memory per response is what the client has not taken yet: at most
 * RESPONSE_HIGH_WATER queued in the transport, and the chunk the body stream last yielded.
 *
 * Framing (RFC 9112 §6): the Fetch API does not say whether a body's length is known (a
 * string's body is a ReadableStream too), so the writer reads ahead what the body has ready
 * at once: chunks that arrive before the next macrotask, up to READ_AHEAD_BYTES and one
 * chunk more (Bun hands a string, ArrayBuffer or Blob over as two chunks: 16 KiB, then the
 * rest). A body that ends there is sent with Content-Length; any other is sent as it comes:
 * with the Content-Length its own headers declare, else chunked for HTTP/1.1 and delimited
 * by closing the connection for HTTP/1.0 (RFC 9112 §6.3 rule 8; an HTTP/1.0 client cannot
 * read chunked). So Bun.serve's choice is mostly followed: a body already complete (a string,
 * ArrayBuffer, typed array, Blob or JSON body of any size, a stream that enqueued everything
 * and closed) keeps a length, a stream still producing is chunked. Unlike Bun.serve, a
 * Bun.file larger than one disk read is chunked too (its size is not visible through the
 * Response): a `Content-Length: file.size` header keeps the length.
 *
 * Backpressure: the body is cut into pieces of at most RESPONSE_PIECE_BYTES; a piece is
 * queued only while the transport holds no more than RESPONSE_HIGH_WATER with it, and the
 * next chunk is read from the stream only when a whole piece would fit. Otherwise the
 * writer waits for onDrain (the core routes it here for connections still in HTTP), with
 * the handshake deadline running: a client that reads nothing for closeTimeout is reset.
 * Waiting for the stream itself has no deadline (a server-sent event stream may be quiet
 * for long): that is the application's to bound.
 *
 * Failures: before the head is sent the owner answers 500; after it, a stream that errors,
 * yields something that is not bytes, or breaks its declared Content-Length resets the
 * connection (no terminating chunk, so the client knows the body is cut short) and is
 * logged once. A connection that closes meanwhile cancels the stream (`reader.cancel()`).
 */
import { ENOBUFS, EPIPE } from "../api/errno.ts";
import { UsageError } from "../api/errors.ts";
import { CloseMode } from "../api/transport.ts";
import {
  CHUNK_END, CHUNK_HEADER_MAX, LAST_CHUNK, writeChunkHeader,
} from "../protocol/http-chunked-encoder.ts";
import { listHasToken } from "../protocol/http-grammar.ts";
import type { HttpVersion } from "../protocol/http-request-parser.ts";
import {
  BodyFraming, buildResponseHead, declaredContentLength, isBodylessStatus,
  RESPONSE_BODY_INVALID, RESPONSE_BODY_USED, toBodyBytes,
} from "../protocol/http-response.ts";
import type { HandshakeHost } from "./hosts.ts";

/** Most bytes queued in the transport for one response (the head may exceed it alone). */
export const RESPONSE_HIGH_WATER = 64 * 1024;
/** Largest piece written at once: two fit under the high-water mark. */
export const RESPONSE_PIECE_BYTES = 32 * 1024;
/** Bytes a body may have ready at once and still get a Content-Length (see the comment). */
export const READ_AHEAD_BYTES = 64 * 1024;
/** Bytes a chunk adds around its data: the size line and the CRLF after the data. */
const CHUNK_OVERHEAD = CHUNK_HEADER_MAX + 2;

/** The request a response answers, as far as its framing and persistence go. */
export interface AnsweredRequest {
  readonly method: string;
  readonly version: HttpVersion;
  /** The client lets the connection persist, and the request was no upgrade request. */
  readonly persistent: boolean;
}

/** What the writer tells the handshake state that owns the connection (once, one of them). */
export interface ResponseOwner {
  /** Every byte is queued; `keepAlive`: the head said the connection stays open. */
  responseQueued(keepAlive: boolean): void;
  /** Nothing was sent and this Response cannot be sent (answer 500 instead). */
  responseUnusable(error: unknown): void;
  /** The response broke after its head: the connection is reset or already closing. */
  responseBroken(): void;
}

type BodyRead = { done: true; value?: undefined } | { done: false; value: unknown };
/** The part of a body stream's reader the writer uses. */
interface BodyReader {
  read(): Promise<BodyRead>;
  cancel(reason?: unknown): Promise<void>;
}

/** What the read-ahead found: the chunks read, and whether the body ended among them. */
interface ReadAhead {
  readonly chunks: readonly Uint8Array[];
  readonly length: number;
  readonly complete: boolean;
  /** The read still pending when the next macrotask came (the stream is not at its end). */
  readonly pending: Promise<BodyRead> | undefined;
}

const NO_BODY: ReadAhead = Object.freeze({
  chunks: Object.freeze([]) as readonly Uint8Array[], length: 0, complete: true, pending: undefined,
});
const LATE = Symbol("late");
/** Where chunk size lines are written (the transport copies on send). */
const CHUNK_HEADER = new Uint8Array(CHUNK_HEADER_MAX);
const ignore = (): void => {};

export class ResponseWriter {
  private reader: BodyReader | undefined = undefined;
  /** Resolves the wait for onDrain. */
  private wake: (() => void) | undefined = undefined;
  /** The connection closed, or this writer gave up on it: touch it no more. */
  private gone = false;
  private framing: BodyFraming = BodyFraming.NONE;
  /** A streamed body with a declared Content-Length: bytes still owed (-1: none declared). */
  private owed = -1;

  constructor(
    private readonly core: HandshakeHost<unknown>,
    private readonly owner: ResponseOwner,
    private readonly conn: number,
  ) {}

  /** Writes `response` as the answer to `request`; the owner hears how it ended. */
  start(response: Response, request: AnsweredRequest): void {
    this.core.clearDeadline(this.conn); // the hook has answered: see the module comment
    this.write(response, request).catch((error: unknown) => {
      // A bug here, not the application's: end the connection rather than leave it hanging.
      this.broken("hioload-ws: writing a response failed:", error);
    });
  }

  /** The transport handed everything queued to the kernel. */
  drained(): void {
    const wake = this.wake;
    this.wake = undefined;
    if (wake !== undefined) wake();
  }

  /** The connection closed: stop, and cancel the body stream. */
  abort(): void {
    if (this.gone) return;
    this.gone = true;
    this.cancelBody();
    this.drained();
  }

  private async write(response: Response, request: AnsweredRequest): Promise<void> {
    const bodyless = isBodylessStatus(response.status);
    let ahead: ReadAhead;
    try {
      ahead = bodyless ? this.discard(response) : await this.readAhead(response);
    } catch (error) {
      this.cancelBody();
      if (!this.gone) this.owner.responseUnusable(error);
      return;
    }
    if (this.gone) return;
    const isHead = request.method === "HEAD";
    let framing: BodyFraming;
    let contentLength = ahead.length;
    const declared = ahead.complete ? undefined : declaredContentLength(response);
    if (bodyless) {
      framing = BodyFraming.NONE;
    } else if (ahead.complete) {
      framing = BodyFraming.LENGTH;
    } else if (declared !== undefined) {
      framing = BodyFraming.LENGTH;
      contentLength = declared;
    } else if (request.version === "1.1") {
      framing = BodyFraming.CHUNKED; // for HEAD too: the header GET would get (RFC 9110 §9.3.2)
    } else {
      framing = isHead ? BodyFraming.NONE : BodyFraming.CLOSE;
    }
    const core = this.core;
    const keepAlive = request.persistent && framing !== BodyFraming.CLOSE && !core.isStopping &&
      !listHasToken(response.headers.get("connection") ?? undefined, "close");
    let head: Uint8Array;
    try {
      head = buildResponseHead(response, {
        keepAlive,
        keepAliveTimeoutSeconds: Math.floor(core.options.closeTimeoutMs / 1000),
        framing,
        contentLength,
      });
    } catch (error) {
      this.cancelBody();
      this.owner.responseUnusable(error);
      return;
    }
    if (bodyless || isHead) {
      this.cancelBody();
      if (this.queue(head, 0, head.length)) this.owner.responseQueued(keepAlive);
      return;
    }
    this.framing = framing;
    if (!(await this.sendHead(head, ahead, declared))) return;
    if (!ahead.complete && !(await this.pump(ahead.pending))) return;
    if (framing === BodyFraming.CHUNKED && !this.queue(LAST_CHUNK, 0, LAST_CHUNK.length)) return;
    if (this.owed > 0) {
      this.broken("hioload-ws: a response body was shorter than its Content-Length; the " +
        "connection is reset:", new UsageError(RESPONSE_BODY_INVALID,
        `the body ended ${this.owed} bytes short of its Content-Length`));
      return;
    }
    this.owner.responseQueued(keepAlive);
  }

  /** The head, and the chunks read ahead (in one send with the head when they are small). */
  private async sendHead(head: Uint8Array, ahead: ReadAhead, declared: number | undefined):
    Promise<boolean> {
    const chunks = ahead.chunks;
    let first = 0;
    if (declared !== undefined) this.owed = declared;
    if (this.framing === BodyFraming.LENGTH && this.owed < 0 && chunks.length === 1 &&
      chunks[0].length <= RESPONSE_PIECE_BYTES) {
      // The usual small answer: head and body in one send.
      if (!this.queuePair(head, 0, head.length, chunks[0], 0, chunks[0].length)) return false;
      first = 1;
    } else if (!this.queue(head, 0, head.length)) {
      return false;
    }
    for (let i = first; i < chunks.length; i++) {
      if (!(await this.writeBytes(chunks[i]))) return false;
    }
    return true;
  }

  /** The rest of a streamed body, a chunk at a time, as the client takes it. */
  private async pump(pending: Promise<BodyRead> | undefined): Promise<boolean> {
    for (;;) {
      if (this.gone) return false;
      // The next chunk is read only when a whole piece of it could be queued.
      if (!this.hasRoom(RESPONSE_PIECE_BYTES) && !(await this.waitForRoom(RESPONSE_PIECE_BYTES))) {
        return false;
      }
      let result: BodyRead;
      try {
        result = await (pending ?? this.reader!.read());
      } catch (error) {
        if (!this.gone) this.broken("hioload-ws: a response body stream failed; the connection is reset:", error);
        return false;
      }
      pending = undefined;
      if (this.gone) return false;
      if (result.done) {
        this.reader = undefined;
        return true;
      }
      let bytes: Uint8Array;
      try {
        bytes = toBodyBytes(result.value);
      } catch (error) {
        this.broken("hioload-ws: a response body stream failed; the connection is reset:", error);
        return false;
      }
      if (!(await this.writeBytes(bytes))) return false;
    }
  }

  /** `bytes` in pieces, each queued once it fits under the high-water mark. */
  private async writeBytes(bytes: Uint8Array): Promise<boolean> {
    if (this.owed >= 0) {
      if (bytes.length > this.owed) {
        this.broken("hioload-ws: a response body was longer than its Content-Length; the " +
          "connection is reset:", new UsageError(RESPONSE_BODY_INVALID,
          "the body went past its Content-Length"));
        return false;
      }
      this.owed -= bytes.length;
    }
    for (let at = 0; at < bytes.length; at += RESPONSE_PIECE_BYTES) {
      const end = Math.min(bytes.length, at + RESPONSE_PIECE_BYTES);
      if (!this.hasRoom(end - at) && !(await this.waitForRoom(end - at))) return false;
      if (!this.queuePiece(bytes, at, end)) return false;
    }
    return true;
  }

  private queuePiece(bytes: Uint8Array, start: number, end: number): boolean {
    if (this.framing !== BodyFraming.CHUNKED) return this.queue(bytes, start, end);
    const headerLength = writeChunkHeader(CHUNK_HEADER, end - start);
    return this.queuePair(CHUNK_HEADER, 0, headerLength, bytes, start, end) &&
      this.queue(CHUNK_END, 0, CHUNK_END.length);
  }

  /** True when `bytes` more (with chunk framing) keep the queue under the high-water mark. */
  private hasRoom(bytes: number): boolean {
    const queued = this.core.transport.bufferedAmount(this.conn);
    return queued === 0 || queued + bytes + CHUNK_OVERHEAD <= RESPONSE_HIGH_WATER;
  }

  /** Waits for onDrain until `bytes` fit; false when the connection went away meanwhile. */
  private async waitForRoom(bytes: number): Promise<boolean> {
    while (!this.gone && !this.hasRoom(bytes)) {
      // The client now has closeTimeout to take what is queued (timedOut then resets it).
      this.core.restartDeadline(this.conn);
      await new Promise<void>((resolve) => (this.wake = resolve));
      if (!this.gone) this.core.clearDeadline(this.conn);
    }
    return !this.gone;
  }

  /**
   * Reads what the body has ready at once (see the module comment). Throws what reading
   * throws, before anything was sent: the owner answers 500.
   */
  private async readAhead(response: Response): Promise<ReadAhead> {
    if (response.bodyUsed) {
      throw new UsageError(RESPONSE_BODY_USED, "the Response body was already read");
    }
    const body = response.body;
    if (body === null) return NO_BODY;
    const reader: BodyReader = body.getReader();
    this.reader = reader;
    const chunks: Uint8Array[] = [];
    let length = 0;
    let overBudget = false;
    let timer: ReturnType<typeof setImmediate> | undefined;
    const late = new Promise<typeof LATE>((resolve) => {
      timer = setImmediate(() => resolve(LATE));
    });
    try {
      for (;;) {
        const read = reader.read();
        const result = await Promise.race([read, late]);
        if (result === LATE) return { chunks, length, complete: false, pending: read };
        if (result.done) {
          this.reader = undefined;
          return { chunks, length, complete: true, pending: undefined };
        }
        const bytes = toBodyBytes(result.value);
        if (bytes.length > 0) {
          chunks.push(bytes);
          length += bytes.length;
        }
        if (this.gone) return { chunks, length, complete: false, pending: undefined };
        if (length > READ_AHEAD_BYTES) {
          // One read more: Bun's second chunk of a Blob-like body is all the rest.
          if (overBudget) return { chunks, length, complete: false, pending: undefined };
          overBudget = true;
        }
      }
    } finally {
      clearImmediate(timer);
    }
  }

  /** A 1xx/204/304 has no body: cancel whatever the Response carries (not waited for). */
  private discard(response: Response): ReadAhead {
    const body = response.body;
    if (body !== null && !response.bodyUsed && !body.locked) body.cancel().catch(ignore);
    return NO_BODY;
  }

  private cancelBody(): void {
    const reader = this.reader;
    this.reader = undefined;
    // A pending read then resolves as done; an errored stream rejects the cancel: ignored.
    if (reader !== undefined) reader.cancel().catch(ignore);
  }

  private queue(data: Uint8Array, start: number, end: number): boolean {
    // Never after the connection closed: its id may be another connection's by now.
    if (this.gone) return false;
    const transport = this.core.transport;
    let queued = transport.send(this.conn, data, start, end);
    // Shared send memory ran out: the socket holding the most pays (as for a 101).
    if (queued === -ENOBUFS && this.core.reclaimSendMemory(undefined)) {
      queued = transport.send(this.conn, data, start, end);
    }
    return queued >= 0 || this.lost(queued);
  }

  private queuePair(first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): boolean {
    if (this.gone) return false;
    const transport = this.core.transport;
    let queued = transport.sendPair(this.conn, first, firstStart, firstEnd, second, secondStart,
      secondEnd);
    if (queued === -ENOBUFS && this.core.reclaimSendMemory(undefined)) {
      queued = transport.sendPair(this.conn, first, firstStart, firstEnd, second, secondStart,
        secondEnd);
    }
    return queued >= 0 || this.lost(queued);
  }

  /** A send failed: the connection is closing (EPIPE) or cannot take more (reset it). */
  private lost(errno: number): false {
    this.gone = true;
    this.cancelBody();
    if (errno === -EPIPE) {
      // Already closing (the peer ended, or the server stops): bound how long it may flush.
      this.core.restartDeadline(this.conn);
    } else {
      this.core.transport.close(this.conn, CloseMode.Abort);
    }
    this.owner.responseBroken();
    return false;
  }

  /** The body broke after the head went out: log once, reset the connection. */
  private broken(message: string, error: unknown): void {
    if (this.gone) return;
    console.error(message, error);
    this.gone = true;
    this.cancelBody();
    this.core.transport.close(this.conn, CloseMode.Abort);
    this.owner.responseBroken();
  }
}
