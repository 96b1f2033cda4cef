/**
 * One connection before it is a WebSocket: feed the HTTP parser, then either answer a plain
 * request (the user's `fetch`, else 426), refuse a bad upgrade (400/426/431...), or run the
 * user's `upgrade` hook (possibly async: the connection is paused meanwhile) and send 101.
 * A request the hooks' Web Request cannot stand for exactly (a method it would rewrite, a URL
 * it refuses) is answered 501/400 before any hook runs. When the handshake deadline passes
 * first, a started request gets 408 (see timedOut).
 *
 * Everything about the connection's request/response cycle (keep-alive, pipelined requests,
 * the deadline, writing a Response) lives in the HttpExchange this class extends.
 *
 * Memory: whatever a handshake allocates stays in RSS until the next collection, and a burst
 * of handshakes comes before any (measured: ~3 KiB per connection at 5,000 connections before
 * this was cut). So, once the pools are warm, a handshake without async hooks allocates only
 * the key string: this object is pooled by the core (reused once the 101 is out with no hook
 * pending), the HTTP parser too (it reuses its request object), the validated upgrade is
 * written into an object this state keeps, the accept key is hashed and the 101 written into
 * a scratch buffer (the transport copies on send), and no method that runs on every
 * handshake creates a closure.
 */
import type { DeflateAgreement } from "../protocol/permessage-deflate.ts";
import type { FetchUpgradeOptions, UpgradeAcceptance } from "../api/websocket.ts";
import { ENOBUFS } from "../api/errno.ts";
import { CloseMode } from "../api/transport.ts";
import {
  acceptKey, isUpgradeRequest, selectProtocol, validateUpgrade, type UpgradeAccepted,
  type UpgradeValidation,
} from "../protocol/handshake.ts";
import { ParserState, type HttpRequest } from "../protocol/http-request-parser.ts";
import { build101Response, buildErrorResponse, write101Response } from "../protocol/http-response.ts";
import type { HttpError } from "../protocol/http-errors.ts";
import { requestAllowsPersistence } from "../protocol/http-persistence.ts";
import { toWebRequest } from "../protocol/web-request.ts";
import { concatBytes } from "../protocol/bytes.ts";
import type { UpgradeTarget } from "./fetch-upgrades.ts";
import type { PooledHandshake } from "./hosts.ts";
import { ANSWERING, DONE, HttpExchange, READING, copyRange } from "./http-exchange.ts";
import type { AnsweredRequest } from "./http-response-writer.ts";
import { splitProtocolHeader } from "./http-upgrade-headers.ts";

type HookResult<T> = UpgradeAcceptance<T> | Response | void;

/** An upgrade request an `upgrade` hook refused with a Response: answered, then closed. */
const REFUSED_UPGRADE: AnsweredRequest = Object.freeze({
  method: "GET", version: "1.1", persistent: false,
});

/**
 * Where every 101 is written before it is sent (the transport copies on send); a larger one
 * (big extra headers from a hook) is built instead. A plain Uint8Array, not a Buffer: a
 * Buffer's slice() is a view, and the fake transport copies with slice().
 */
const RESPONSE_SCRATCH = new Uint8Array(4096);

export class HandshakeState<T> extends HttpExchange<T> implements PooledHandshake, UpgradeTarget {
  /** A valid upgrade request handed to `fetch`: what server.upgrade() accepts. */
  private fetchUpgrade: UpgradeAccepted | undefined = undefined;
  private fetchLeftover: Uint8Array | undefined = undefined;
  /**
   * A hook returned a Promise that has not settled: its callbacks still refer to this
   * object, so it is not handed to another connection even when already accepted (an async
   * fetch that upgrades before its first await).
   */
  private hookPending = false;
  /** validateUpgrade writes an accepted upgrade here (see start() for when it is reused). */
  private readonly upgrade: UpgradeAccepted = {
    ok: true, key: "", version: 13, protocols: [], extensions: "",
  };

  /**
   * Begins the handshake of `conn`. The core reuses a state only when it was accepted inside
   * feed() with no hook pending: then nothing else refers to it (no closure, no promise).
   */
  start(conn: number): void {
    this.begin(conn);
    this.fetchUpgrade = undefined;
    this.fetchLeftover = undefined;
  }

  feed(data: Uint8Array, start: number, end: number): void {
    const phase = this.phase;
    if (phase !== READING) {
      if (phase === ANSWERING) this.hold(copyRange(data, start, end));
      return;
    }
    const parser = this.parser!;
    // A kept-alive connection's next request begins: it gets closeTimeout from now on.
    if (this.served > 0 && parser.headerBytes === 0) this.core.restartDeadline(this.conn);
    const consumed = parser.feed(data, start, end);
    const state = parser.state;
    if (state === ParserState.NEED_MORE) return;
    this.parser = null;
    this.phase = ANSWERING;
    // The parser (and the request it reuses) goes back to the pool once handle() is done:
    // hooks get a Web Request built from it synchronously, and nothing later reads it.
    try {
      if (state === ParserState.ERROR) {
        const error = parser.error!;
        this.respond(buildErrorResponse(error.status, error.reason));
        return;
      }
      const leftover = start + consumed < end ? copyRange(data, start + consumed, end) : undefined;
      this.handle(parser.request!, leftover);
    } finally {
      this.core.releaseRequestParser(parser);
    }
    // Accepted with no hook pending: nothing refers to this object, it may serve another handshake.
    if (this.accepted && !this.hookPending) this.core.releaseHandshake(this);
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
        // What came behind the request is the next request: it waits for this answer.
        if (leftover !== undefined) this.hold(leftover);
        this.runFetch(request, undefined, undefined);
      }
      return;
    }
    const upgrade = validateUpgrade(request, this.upgrade);
    if (options.upgrade === undefined && options.fetch !== undefined) {
      // Bun.serve's way: fetch decides, with server.upgrade (false for an invalid request).
      this.runFetch(request, upgrade, leftover);
      return;
    }
    if (!upgrade.ok) {
      this.respond(buildErrorResponse(upgrade.status, upgrade.reason, upgrade.headers));
      return;
    }
    if (options.upgrade === undefined) {
      this.complete(upgrade, undefined, leftover);
      return;
    }
    this.runUpgrade(request, upgrade, leftover);
  }

  // The closures live in these two methods, not in handle(): a function that creates
  // closures allocates its scope on every call, whichever branch it takes.
  private runFetch(request: HttpRequest, upgrade: UpgradeValidation | undefined,
    leftover: Uint8Array | undefined): void {
    const webRequest = this.webRequestOrRefuse(request);
    if (webRequest === null) return;
    const core = this.core;
    // The parser reuses `request` once handle() returns: what the answer needs, now.
    const answering: AnsweredRequest = {
      method: request.method,
      version: request.version,
      persistent: upgrade === undefined && requestAllowsPersistence(request),
    };
    if (upgrade?.ok === true) {
      this.fetchUpgrade = upgrade;
      this.fetchLeftover = leftover;
      core.fetchUpgrades.offer(webRequest, this);
    }
    this.runHook(() => core.options.fetch!(webRequest, core.server!), (result) => {
      core.fetchUpgrades.withdraw(webRequest);
      this.fetchUpgrade = undefined;
      if (!this.accepted) this.fetchAnswered(result, answering, upgrade);
    });
  }

  /** server.upgrade(request) for the request this state handed to `fetch`. */
  upgradeFromFetch(options: FetchUpgradeOptions<unknown> | undefined): boolean {
    const upgrade = this.fetchUpgrade;
    if (upgrade === undefined || this.phase !== ANSWERING || this.writer !== undefined ||
      this.accepted || this.abandoned) {
      return false;
    }
    this.fetchUpgrade = undefined;
    // After an await in fetch, complete() resumes reading: from now on, not when fetch settles.
    this.complete(upgrade, options as UpgradeAcceptance<T> | undefined, this.fetchLeftover);
    return this.accepted;
  }

  /** `fetch` settled without upgrading: its Response, or why there is none. */
  private fetchAnswered(result: unknown, request: AnsweredRequest,
    upgrade: UpgradeValidation | undefined): void {
    if (result instanceof Response) {
      this.respondWith(result, request);
    } else if (upgrade !== undefined && !upgrade.ok) {
      // An upgrade request we could not accept, and fetch said nothing: say why.
      this.respond(buildErrorResponse(upgrade.status, upgrade.reason, upgrade.headers));
    } else {
      this.hookFailed(new TypeError("fetch returned no Response and did not upgrade the request"));
    }
  }

  private runUpgrade(request: HttpRequest, upgrade: UpgradeAccepted,
    leftover: Uint8Array | undefined): void {
    const webRequest = this.webRequestOrRefuse(request);
    if (webRequest === null) return;
    const options = this.core.options;
    this.runHook(() => options.upgrade!(webRequest),
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
    // An async fetch may have upgraded before its first await: the connection is a
    // WebSocket now, reading, and must not be paused (nothing would resume it).
    if (!this.accepted) this.pauseReading();
    this.hookPending = true;
    result.then(
      (value) => {
        this.hookPending = false;
        if (this.abandoned) return;
        // Upgraded meanwhile (server.upgrade after an await): the socket was resumed then,
        // and this connection id is the WebSocket's now. Held bytes (a pipelined request)
        // keep it paused until this answer is out.
        if (!this.accepted && this.held === undefined) this.resumeReading();
        then(value);
      },
      (error) => {
        this.hookPending = false;
        if (!this.abandoned) this.hookFailed(error);
      },
    );
  }

  private decide(upgrade: UpgradeAccepted, result: HookResult<T>,
    leftover: Uint8Array | undefined): void {
    if (result instanceof Response) {
      this.respondWith(result, REFUSED_UPGRADE);
      return;
    }
    this.complete(upgrade, result ?? undefined, leftover);
  }

  private complete(upgrade: UpgradeAccepted, acceptance: UpgradeAcceptance<T> | undefined,
    leftover: Uint8Array | undefined): void {
    let protocol: string;
    let response: Uint8Array;
    let length: number;
    let deflate: DeflateAgreement | null;
    try {
      const { headers, headerProtocol } = splitProtocolHeader(acceptance?.headers);
      protocol = selectProtocol(upgrade.protocols, acceptance?.protocol ?? headerProtocol) ?? "";
      // A hook that answers Sec-WebSocket-Extensions itself owns the extension.
      deflate = this.core.deflate === null || namesExtensions(headers) ? null
        : this.core.deflate.negotiate(upgrade.extensions);
      const extensions = deflate?.response;
      // Into the scratch buffer (send copies it); built only when it does not fit there.
      response = RESPONSE_SCRATCH;
      length = write101Response(response, upgrade.key, protocol || undefined, headers, extensions);
      if (length < 0) {
        response = build101Response(acceptKey(upgrade.key), protocol || undefined, headers, extensions);
        length = response.length;
      }
    } catch (error) {
      this.hookFailed(error);
      return;
    }
    let queued = this.core.transport.send(this.conn, response, 0, length);
    // Shared send memory ran out: the socket holding the most pays, not this newcomer.
    if (queued === -ENOBUFS && this.core.reclaimSendMemory(undefined)) {
      queued = this.core.transport.send(this.conn, response, 0, length);
    }
    if (queued < 0) {
      this.phase = DONE;
      this.core.transport.close(this.conn, CloseMode.Abort);
      return;
    }
    const early = this.takeHeld(leftover);
    this.phase = DONE;
    this.accepted = true;
    this.resumeReading(); // paused by an async hook: the WebSocket reads from now on
    this.core.accept(this.conn, acceptance?.data, protocol, early, deflate);
  }

  /** Bytes that came behind the request (pipelined frames), in arrival order. */
  private takeHeld(leftover: Uint8Array | undefined): Uint8Array | undefined {
    const held = this.held;
    this.held = undefined;
    if (held === undefined || held.length === 0) return leftover;
    return concatBytes(leftover === undefined ? held : [leftover, ...held]);
  }

  /**
   * The Web Request for the hooks; null when the request was answered instead: 400/501 when
   * no Request can stand for it exactly (the client's fault: nothing is logged), 500 when
   * building it failed otherwise.
   */
  private webRequestOrRefuse(request: HttpRequest): Request | null {
    let result: Request | HttpError;
    const remoteAddress = this.core.transport.remoteAddress(this.conn);
    try {
      result = toWebRequest(request, {
        remoteAddress,
        secure: false,
        hostFallback: this.core.options.hostname,
      });
    } catch (error) {
      this.hookFailed(error);
      return null;
    }
    if (result instanceof Request) {
      this.core.fetchUpgrades.remember(result, remoteAddress);
      return result;
    }
    this.respond(buildErrorResponse(result.status, result.reason));
    return null;
  }
}

function namesExtensions(headers: [string, string][] | undefined): boolean {
  return headers !== undefined && headers.some(([name]) => name.toLowerCase() === "sec-websocket-extensions");
}
