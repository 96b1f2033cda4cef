/**
 * One connection's HTTP/1.1 request/response cycle before it is a WebSocket (if it ever is):
 * which request is being read or answered, the bytes that arrive meanwhile, the handshake
 * deadline, our own short answers, and a hook's Response handed to a ResponseWriter. What a
 * parsed request leads to (fetch, the upgrade hooks, the 101) is HandshakeState's, in
 * handshake-flow.ts, which extends this class.
 *
 * Keep-alive (RFC 9112 §9.3): when the client lets the connection persist, the server is not
 * stopping and the body's framing needs no close, the response head says `Connection:
 * keep-alive` and, once the whole response is queued, a parser is re-armed for the next
 * request (one may be a WebSocket upgrade). Requests are answered one at a time, in order:
 * bytes that arrive while one is answered (pipelined requests, or frames behind an upgrade
 * that a hook is deciding) are held, and reading pauses, until it is. Errors we answer
 * ourselves (400, 408, 426, 500, 501...) and refused upgrade requests close the connection.
 *
 * The handshake deadline (closeTimeout) runs from the connection's start, or from the end of
 * its last response on a kept-alive connection, and starts over at the first byte of the next
 * request: a request must arrive and be decided within it (see timedOut). A kept-alive
 * connection that sends nothing more is closed with a FIN at that deadline, like a connection
 * that never sent anything: its keep-alive timeout is closeTimeout (5 s by default, Node's
 * keepAliveTimeout too). While a response is written, the deadline runs only when the writer
 * waits for the client to read (see http-response-writer.ts).
 */
import { buildErrorResponse } from "../protocol/http-response.ts";
import { concatBytes } from "../protocol/bytes.ts";
import type { HttpRequestParser } from "../protocol/http-request-parser.ts";
import type { HandshakeHost } from "./hosts.ts";
import {
  ResponseWriter, type AnsweredRequest, type ResponseOwner,
} from "./http-response-writer.ts";

/** The parser is armed: bytes are (part of) a request, the first or the next one. */
export const READING = 0;
/** A request is being answered (a hook runs, or its response is written): bytes are held. */
export const ANSWERING = 1;
/** Answered for the last time (closing), a WebSocket now, or closed: bytes are ignored. */
export const DONE = 2;
export type ExchangePhase = typeof READING | typeof ANSWERING | typeof DONE;

/**
 * A copy of `data[start, end)`. Receive buffers are Buffers, whose slice() is a view into
 * memory the transport reuses once onData returns: bytes kept across an async hook must be
 * copied (TypedArray's slice always copies).
 */
export const copyRange = (data: Uint8Array, start: number, end: number): Uint8Array =>
  Uint8Array.prototype.slice.call(data, start, end);

/** The `error` option's Response ends the connection (what it answered may have broken it). */
const AFTER_ERROR: AnsweredRequest = Object.freeze({ method: "GET", version: "1.1", persistent: false });

export abstract class HttpExchange<T> implements ResponseOwner {
  protected conn = -1;
  protected phase: ExchangePhase = READING;
  /** From the core's pool while a request is being read; null once it is parsed. */
  protected parser: HttpRequestParser | null = null;
  /** Bytes that arrived while a request was answered, in order (reading is paused then). */
  protected held: Uint8Array[] | undefined = undefined;
  /** This connection's reading is paused by us (an async hook, or bytes being held). */
  protected paused = false;
  protected abandoned = false;
  /** The core took the connection as a WebSocket (this state is then done with). */
  protected accepted = false;
  /** Responses after which this connection was kept alive. */
  protected served = 0;
  /** The response being written, if any. */
  protected writer: ResponseWriter | undefined = undefined;
  /** The `error` option was called for this request (its own failure gets a plain 500). */
  private inErrorHandler = false;

  constructor(protected readonly core: HandshakeHost<T>) {}

  /** Bytes from the transport (the subclass parses and dispatches). */
  abstract feed(data: Uint8Array, start: number, end: number): void;

  /** Readies this object for connection `conn` (it may have served another before). */
  protected begin(conn: number): void {
    this.conn = conn;
    this.phase = READING;
    this.inErrorHandler = false;
    this.parser = this.core.takeRequestParser();
    this.held = undefined;
    this.paused = false;
    this.abandoned = false;
    this.accepted = false;
    this.served = 0;
    this.writer = undefined;
  }

  /**
   * The handshake deadline (closeTimeout) passed. Returns true when this closes gracefully
   * (FIN after the flush), so the core gives it one more deadline before an abort; false to
   * have the core abort (RST) now.
   *
   * - Part of a request arrived (a slow or stalled client, slowloris): 408 with
   *   `Connection: close` (RFC 9110 §15.5.9), then close.
   * - Nothing arrived: close without a response, as nginx does (Apache sends a 408). Such a
   *   connection is most often a browser's speculative preconnect or a port probe: nothing
   *   was asked, and HTTP clients treat bytes that answer no request as an error (Go's
   *   net/http logs an "unsolicited response"). The FIN is answer enough. A kept-alive
   *   connection idle since its last response ends the same way (the keep-alive timeout).
   * - The request was parsed: a hook is still deciding, a response body waits for a client
   *   that does not read, or our last answer was sent and is still not flushed (its second
   *   deadline). Either way the peer has had its time: abort.
   */
  timedOut(): boolean {
    const parser = this.parser;
    if (this.phase !== READING || parser === null) return false;
    const sawBytes = parser.headerBytes > 0;
    this.releaseParser();
    if (sawBytes) {
      this.respond(buildErrorResponse(408, "request timeout"));
    } else {
      this.phase = DONE;
      this.core.handshakeDone(this.conn);
    }
    return true;
  }

  /** The connection closed before the handshake finished: a response being written stops. */
  abandon(): void {
    this.abandoned = true;
    this.phase = DONE;
    this.held = undefined;
    this.releaseParser();
    const writer = this.writer;
    this.writer = undefined;
    if (writer !== undefined) writer.abort();
  }

  /** The transport flushed what was queued: a response waiting for room goes on. */
  drained(): void {
    if (this.writer !== undefined) this.writer.drained();
  }

  protected releaseParser(): void {
    if (this.parser === null) return;
    this.core.releaseRequestParser(this.parser);
    this.parser = null;
  }

  /** Keeps bytes that came while a request is answered, and stops reading more for now. */
  protected hold(bytes: Uint8Array): void {
    if (this.held === undefined) this.held = [bytes];
    else this.held.push(bytes);
    this.pauseReading();
  }

  protected pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.core.transport.pause(this.conn);
  }

  protected resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.core.transport.resume(this.conn);
  }

  /**
   * A hook threw or rejected, or its answer cannot be sent. As in Bun.serve: the `error`
   * option's Response when there is one (then the connection closes after it), else a
   * logged 500 (with the error's message and stack under `development`).
   */
  protected hookFailed(error: unknown): void {
    // After server.upgrade the connection is a WebSocket: nothing HTTP is sent on it.
    if (this.accepted) {
      console.error("hioload-ws: the upgrade/fetch hook failed after upgrading:", error);
      return;
    }
    const onError = this.core.options.error;
    if (onError !== undefined && !this.inErrorHandler) {
      this.inErrorHandler = true;
      let answer: unknown;
      try {
        answer = onError(error);
      } catch (failure) {
        this.serverError(failure);
        return;
      }
      Promise.resolve(answer).then((response) => {
        if (this.abandoned) return;
        if (response instanceof Response) this.respondWith(response, AFTER_ERROR);
        else this.serverError(new TypeError("the error handler returned no Response"));
      }, (failure) => {
        if (!this.abandoned) this.serverError(failure);
      });
      return;
    }
    this.serverError(error);
  }

  private serverError(error: unknown): void {
    console.error("hioload-ws: the upgrade/fetch hook failed:", error);
    const detail = this.core.options.development && error instanceof Error
      ? `internal server error\n\n${error.stack ?? error.message}` : "internal server error";
    this.respond(buildErrorResponse(500, detail));
  }

  /** Writes a hook's Response (see http-response-writer.ts); its end is reported below. */
  protected respondWith(response: Response, request: AnsweredRequest): void {
    const writer = new ResponseWriter(this.core, this, this.conn);
    this.writer = writer;
    writer.start(response, request);
  }

  /** Answers with a short HTTP response of our own and closes after it is flushed. */
  protected respond(bytes: Uint8Array): void {
    if (this.phase === DONE) return;
    this.phase = DONE;
    this.held = undefined;
    this.resumeReading();
    this.core.transport.send(this.conn, bytes, 0, bytes.length);
    this.core.handshakeDone(this.conn);
  }

  /** ResponseOwner: the whole response is queued. Next request, or close after the flush. */
  responseQueued(keepAlive: boolean): void {
    this.writer = undefined;
    if (this.abandoned) return;
    if (!keepAlive || this.core.isStopping) {
      this.phase = DONE;
      this.held = undefined;
      this.core.restartDeadline(this.conn); // closeTimeout to flush, then a reset
      this.core.handshakeDone(this.conn);
      return;
    }
    this.served++;
    this.phase = READING;
    this.parser = this.core.takeRequestParser();
    this.core.restartDeadline(this.conn); // the keep-alive timeout
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) {
      // Pipelined bytes: the next request (or upgrade) is read from them first, in order.
      const bytes = concatBytes(held);
      this.feed(bytes, 0, bytes.length);
    }
    // Still reading a request: let more of it in. Answering one: held bytes (or its async
    // hook) keep the connection paused until that answer is out.
    if (this.phase === READING) this.resumeReading();
  }

  /** ResponseOwner: nothing of this Response could be sent: 500 instead. */
  responseUnusable(error: unknown): void {
    this.writer = undefined;
    if (!this.abandoned) this.hookFailed(error);
  }

  /** ResponseOwner: the response broke midway; the writer ended the connection. */
  responseBroken(): void {
    this.writer = undefined;
    this.phase = DONE;
    this.held = undefined;
  }
}
