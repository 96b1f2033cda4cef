/**
 * One connection before it is a WebSocket: feed the HTTP parser, then either answer a plain
 * request (the user's `fetch`, else 426), refuse a bad upgrade (400/426/431...), or run the
 * user's `upgrade` hook (possibly async: the connection is paused meanwhile) and send 101.
 */
import type { UpgradeAcceptance } from "../api/websocket.ts";
import { CloseMode } from "../api/transport.ts";
import {
  acceptKey, isUpgradeRequest, selectProtocol, validateUpgrade, type UpgradeAccepted,
} from "../protocol/handshake.ts";
import {
  HttpRequestParser, ParserState, type HttpRequest,
} from "../protocol/http-request-parser.ts";
import { build101Response, buildErrorResponse, serializeResponse } from "../protocol/http-response.ts";
import { toWebRequest } from "../protocol/web-request.ts";
import type { ServerCore } from "./server-core.ts";

export interface Acceptance<T> {
  data: T | undefined;
  protocol: string;
}

type HookResult<T> = UpgradeAcceptance<T> | Response | void;

export class HandshakeState<T> {
  private readonly parser: HttpRequestParser;
  /** An async hook is running: bytes that still arrive are kept here, in order. */
  private held: Uint8Array[] | undefined;
  private abandoned = false;

  constructor(private readonly core: ServerCore<T>, private readonly conn: number) {
    this.parser = new HttpRequestParser({ maxHeaderBytes: core.options.maxHeaderBytes });
  }

  /** The connection closed before the handshake finished. */
  abandon(): void {
    this.abandoned = true;
  }

  feed(data: Uint8Array, start: number, end: number): void {
    if (this.held !== undefined) {
      this.held.push(data.slice(start, end));
      return;
    }
    if (this.parser.state !== ParserState.NEED_MORE) return; // answered; waiting for close
    const consumed = this.parser.feed(data, start, end);
    const state = this.parser.state;
    if (state === ParserState.NEED_MORE) return;
    if (state === ParserState.ERROR) {
      const error = this.parser.error!;
      this.respond(buildErrorResponse(error.status, error.reason));
      return;
    }
    const leftover = start + consumed < end ? data.slice(start + consumed, end) : undefined;
    this.handle(this.parser.request!, leftover);
  }

  private handle(request: HttpRequest, leftover: Uint8Array | undefined): void {
    const options = this.core.options;
    if (this.core.isStopping) {
      this.respond(buildErrorResponse(503, "server shutting down"));
      return;
    }
    if (!isUpgradeRequest(request)) {
      if (options.fetch === undefined) {
        this.respond(buildErrorResponse(426, "this endpoint speaks WebSocket",
          { Upgrade: "websocket", "Sec-WebSocket-Version": "13" }));
      } else {
        this.runHook(() => options.fetch!(this.webRequest(request)),
          (result) => this.respondWith(result as Response));
      }
      return;
    }
    const upgrade = validateUpgrade(request);
    if (!upgrade.ok) {
      this.respond(buildErrorResponse(upgrade.status, upgrade.reason, upgrade.headers));
      return;
    }
    if (options.upgrade === undefined) {
      this.complete(upgrade, undefined, leftover);
      return;
    }
    this.runHook(() => options.upgrade!(this.webRequest(request)),
      (result) => this.decide(upgrade, result as HookResult<T>, leftover));
  }

  /** Run a user hook; when it returns a Promise, pause the connection until it settles. */
  private runHook(hook: () => unknown, then: (result: unknown) => void): void {
    let result: unknown;
    try {
      result = hook();
    } catch (error) {
      this.hookFailed(error);
      return;
    }
    if (!(result instanceof Promise)) {
      then(result);
      return;
    }
    this.held = [];
    this.core.transport.pause(this.conn);
    result.then(
      (value) => {
        if (this.abandoned) return;
        this.core.transport.resume(this.conn);
        then(value);
      },
      (error) => {
        if (!this.abandoned) this.hookFailed(error);
      },
    );
  }

  private decide(upgrade: UpgradeAccepted, result: HookResult<T>,
    leftover: Uint8Array | undefined): void {
    if (result instanceof Response) {
      this.respondWith(result);
      return;
    }
    this.complete(upgrade, result ?? undefined, leftover);
  }

  private complete(upgrade: UpgradeAccepted, acceptance: UpgradeAcceptance<T> | undefined,
    leftover: Uint8Array | undefined): void {
    let protocol: string;
    let response: Uint8Array;
    try {
      const { headers, headerProtocol } = splitProtocolHeader(acceptance?.headers);
      protocol = selectProtocol(upgrade.protocols, acceptance?.protocol ?? headerProtocol) ?? "";
      response = build101Response(acceptKey(upgrade.key), protocol || undefined, headers);
    } catch (error) {
      this.hookFailed(error);
      return;
    }
    if (this.core.transport.send(this.conn, response, 0, response.length) < 0) {
      this.core.transport.close(this.conn, CloseMode.Abort);
      return;
    }
    const early = this.takeHeld(leftover);
    this.core.accept(this.conn, { data: acceptance?.data, protocol }, early);
  }

  /** Bytes that came behind the request (pipelined frames), in arrival order. */
  private takeHeld(leftover: Uint8Array | undefined): Uint8Array | undefined {
    const parts = leftover === undefined ? [] : [leftover];
    if (this.held !== undefined) parts.push(...this.held);
    this.held = undefined;
    if (parts.length <= 1) return parts[0];
    const joined = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.length;
    }
    return joined;
  }

  private webRequest(request: HttpRequest): Request {
    return toWebRequest(request, {
      remoteAddress: this.core.transport.remoteAddress(this.conn),
      secure: false,
      hostFallback: this.core.options.hostname,
    });
  }

  private hookFailed(error: unknown): void {
    console.error("hioload-ws: the upgrade/fetch hook failed:", error);
    this.respond(buildErrorResponse(500, "internal server error"));
  }

  private respondWith(response: Response): void {
    serializeResponse(response).then(
      (bytes) => {
        if (!this.abandoned) this.respond(bytes);
      },
      (error) => {
        if (!this.abandoned) this.hookFailed(error);
      },
    );
  }

  /** Answer with an HTTP response and close after it is flushed. */
  private respond(bytes: Uint8Array): void {
    this.held = undefined;
    this.core.transport.send(this.conn, bytes, 0, bytes.length);
    this.core.handshakeDone(this.conn);
  }
}

/**
 * Bun-style code names the subprotocol as a `Sec-WebSocket-Protocol` response header; we
 * take it from there (it is validated against the offer like `protocol`).
 */
function splitProtocolHeader(input: UpgradeAcceptance<unknown>["headers"]) {
  if (input === undefined) return { headers: undefined, headerProtocol: undefined };
  // Entries keep the user's spelling of names (a Headers object would lower-case them).
  const entries: [string, string][] = input instanceof Headers ? [...input.entries()]
    : Array.isArray(input) ? input : Object.entries(input);
  let headerProtocol: string | undefined;
  const headers = entries.filter(([name, value]) => {
    if (name.toLowerCase() !== "sec-websocket-protocol") return true;
    headerProtocol = value;
    return false;
  });
  return { headers, headerProtocol };
}
