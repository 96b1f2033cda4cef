/**
 * Incremental HTTP/1.1 request parser (RFC 9112) for the WebSocket opening handshake and for
 * plain requests handed to a `fetch` hook. Input is pushed in chunks of any size, down to one
 * byte; `feed` returns how many bytes belong to the request, so whatever follows it (a frame
 * the client pipelined after the handshake) stays with the caller.
 *
 * How it reads the head: one pass over the bytes with a small state machine (table lookups,
 * tight loops inside the request-target and field values), recording where each field
 * line's name and value lie. A head split over several calls is kept in a per-parser buffer
 * that grows up to `maxHeaderBytes`. When the head is complete it is copied once into a
 * module-wide scratch Buffer and every name and value is decoded from there, once, as Latin-1
 * (what obs-text means, RFC 9110 §5.5); common names are interned instead of decoded. A
 * head that arrives in one call is thus copied once and the parser allocates no buffer.
 *
 * Allocation per request, because every byte of garbage made during a burst of handshakes
 * stays in RSS until the next collection (measured: ~3 KiB per handshake before this was cut):
 * the request object with its headers (a HeaderFields, not a Map: see there), unless the
 * parser was made with `reuseRequest`, and strings only for values not seen just before.
 * The method, the request-target and the values of common fields (Host, Upgrade, Origin...)
 * are compared with the string decoded for the previous request and reused when equal, the
 * way names are interned; Sec-WebSocket-Key (a nonce, different every time), Cookie and
 * Authorization are always decoded. A parser keeps its span table and head buffer across
 * `reset()`, so a pooled parser allocates neither again.
 *
 * Decisions where RFC 9110/9112 leave a choice:
 * - HTTP/1.1 and HTTP/1.0 are read (`version` says which). HTTP/1.0 is there for plain
 *   requests such as load balancers' health checks (HAProxy's `option httpchk` sends
 *   `OPTIONS / HTTP/1.0` without Host): Host is optional for it, and a Transfer-Encoding is
 *   faulty framing (400, RFC 9112 §6.1). A WebSocket upgrade over HTTP/1.0 is refused later
 *   (handshake.ts). Every other well-formed version (HTTP/1.2, HTTP/2.0) gets 505
 *   (RFC 9110 §15.6.6); a malformed one 400.
 * - Lines must end with CRLF. A bare LF is rejected with 400 (RFC 9112 §2.2 makes accepting
 *   it optional; refusing keeps us from parsing a request differently than a proxy in front
 *   of us). A CR without LF is a 400 too. Empty lines before the request line are skipped
 *   (RFC 9112 §2.2) and count toward maxHeaderBytes.
 * - obs-fold, whitespace before the colon or at the start of the first field line: 400
 *   (RFC 9112 §5.1, §5.2, §2.2).
 * - maxHeaderBytes bounds everything up to and including the empty line that ends the head.
 *   Crossing it inside the request-target gives 414 (RFC 9112 §3), inside the method or
 *   version 400, inside the header fields 431 (RFC 6585 §5).
 * - Repeated field lines are joined with ", " (RFC 9110 §5.3); Cookie with "; " (its own
 *   separator, RFC 6265 §5.4). Host must appear exactly once in HTTP/1.1 (at most once in
 *   HTTP/1.0) and be `host [":" port]` by RFC 3986, or empty (RFC 9112 §3.2).
 * - Body: Content-Length (a list of identical values is accepted, RFC 9110 §8.6) or
 *   Transfer-Encoding: chunked, decoded and bounded by maxBodyBytes (413). Both together: 400
 *   (RFC 9112 §6.1 smuggling defence). Chunked not last or twice: 400. Any other coding: 501.
 *   Those head checks live in http-head-checks.ts; chunked decoding in http-chunked-decoder.ts.
 */
import { assert } from "../api/errors.ts";
import { ChunkedBodyDecoder } from "./http-chunked-decoder.ts";
import {
  badRequest, ERR_TARGET, HttpErrorCode, httpError, type HttpError,
} from "./http-errors.ts";
import {
  CHUNKED_BODY,
  NO_BODY,
  checkHost,
  checkHttp10Framing,
  checkTargetForm,
  requestBodyLength,
} from "./http-head-checks.ts";
import {
  COLON,
  CR,
  FIELD_VALUE_CHAR,
  HTAB,
  LF,
  SP,
  TOKEN_CHAR,
  VISIBLE_CHAR,
} from "./http-grammar.ts";
import { HeaderFields } from "./http-header-fields.ts";
import {
  CONNECTION,
  COOKIE,
  HOST,
  SEC_WEBSOCKET_EXTENSIONS,
  SEC_WEBSOCKET_PROTOCOL,
  SEC_WEBSOCKET_VERSION,
  UPGRADE,
  internHeaderName,
} from "./http-header-names.ts";

export { HeaderFields } from "./http-header-fields.ts";

/** Where a parser stands after `feed`. */
export const ParserState = {
  NEED_MORE: 0,
  COMPLETE: 1,
  ERROR: 2,
} as const;
export type ParserState = (typeof ParserState)[keyof typeof ParserState];

export interface HttpRequestParserOptions {
  /** Request line + header fields + the empty line, in bytes (default 16384). */
  maxHeaderBytes?: number;
  /** Header field lines (default 100). */
  maxHeaderCount?: number;
  /** Decoded body bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /**
   * Fill one request object (and its headers) again for every request this parser reads,
   * instead of a new one each time: after `reset()` the previous `request` reads as empty,
   * then as the next request. For callers that are done with a request before they reset the
   * parser, like the server (its parsers are pooled). Default false.
   */
  reuseRequest?: boolean;
}

/** The HTTP versions the parser reads (see the module comment). */
export type HttpVersion = "1.0" | "1.1";

/** A parsed request. Strings are Latin-1 decoded; header names are lower case. */
export interface HttpRequest {
  /** Case-sensitive, as sent (RFC 9110 §9.1). */
  readonly method: string;
  /** From the request line: "1.1", or "1.0" (no Host needed; no WebSocket upgrade). */
  readonly version: HttpVersion;
  /** The request-target as sent: "/path?query", an absolute URI, "*" or an authority. */
  readonly target: string;
  /** Lower-case name → value, OWS trimmed; repeated lines joined with ", " ("; " for cookie). */
  readonly headers: ReadonlyMap<string, string>;
  /** Names that came on more than one field line (to enforce "exactly once" rules). */
  readonly repeatedHeaderNames: ReadonlySet<string>;
  /** null when the request had no Content-Length or Transfer-Encoding (no body). */
  readonly body: Uint8Array | null;
  /** Transfer-Encoding was chunked. */
  readonly chunked: boolean;
}

export const DEFAULT_MAX_HEADER_BYTES = 16384;
export const DEFAULT_MAX_HEADER_COUNT = 100;
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

// Phases of the head scanner, then of the body. Integers, in the order the bytes come.
const LEADING = 0;
const LEADING_LF = 1;
const METHOD = 2;
const TARGET = 3;
const VERSION = 4;
const REQUEST_LINE_LF = 5;
const LINE_START = 6;
const NAME = 7;
const VALUE = 8;
const VALUE_LF = 9;
const HEAD_END_LF = 10;
const HEAD_COMPLETE = 11;
const BODY_FIXED = 12;
const BODY_CHUNKED = 13;
const DONE = 14;
const FAILED = 15;

const HEAD_CAPACITY_MIN = 256;
const SPAN_FIELDS = 3; // per field line: name start, colon offset, value end (CR offset)
const SPAN_CAPACITY_MIN = 16;
const EMPTY_BODY = new Uint8Array(0);
/** Initial head and span storage: shared and empty, so a parser whose head arrives in one
 * call never allocates a head buffer, and the span table is allocated once per parser. */
const NO_HEAD_BYTES = new Uint8Array(0);
const NO_SPANS = new Int32Array(0);
/** Buffer's copy takes ranges: no subarray() view per copy (it works on any Uint8Array). */
const copyBytes = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array,
  targetStart: number, sourceStart: number, sourceEnd: number) => number;
/**
 * The value last decoded for each common field name whose values repeat from request to
 * request (same clients, same proxies): reused when the bytes match. Only names listed here
 * are cached; the Sec-WebSocket-Key nonce, Cookie and Authorization never are (they differ
 * per request, and credentials should not outlive their request). Values longer than
 * CACHED_VALUE_MAX are not kept.
 */
const recentValues = new Map<string, string>([
  HOST, UPGRADE, CONNECTION, SEC_WEBSOCKET_VERSION, SEC_WEBSOCKET_PROTOCOL,
  SEC_WEBSOCKET_EXTENSIONS, "origin", "user-agent", "pragma", "cache-control", "accept",
  "accept-encoding", "accept-language",
].map((name) => [name, ""]));
const CACHED_VALUE_MAX = 256;
/**
 * The method and request-target of a previous request, compared like cached values (targets
 * with a query are not kept).
 */
let recentMethod = "GET";
let recentTarget = "/";
/**
 * Where complete heads are decoded, shared by all parsers of this thread: finishHead runs
 * synchronously and keeps only strings, so no parser needs the bytes afterwards. A Buffer
 * because its latin1 decoding is ISO-8859-1 (TextDecoder("latin1") is windows-1252).
 */
let decodeScratch = Buffer.alloc(DEFAULT_MAX_HEADER_BYTES);
const NO_NAMES: ReadonlySet<string> = new Set<string>();

const NO_HEADERS: ReadonlyMap<string, string> = new HeaderFields([]);

type MutableRequest = { -readonly [K in keyof HttpRequest]: HttpRequest[K] };

const E = HttpErrorCode;
const ERR_METHOD = badRequest(E.BAD_REQUEST_LINE, "invalid method (not an HTTP request?)");
const ERR_REQUEST_LINE = badRequest(E.BAD_REQUEST_LINE, "malformed request line");
const ERR_VERSION_SYNTAX = badRequest(E.BAD_REQUEST_LINE, "invalid HTTP version");
const ERR_VERSION = httpError(505, E.VERSION_NOT_SUPPORTED,
  "only HTTP/1.1 and HTTP/1.0 are supported");
const ERR_REQUEST_LINE_TOO_LONG = badRequest(E.BAD_REQUEST_LINE, "request line too long");
const ERR_URI_TOO_LONG = httpError(414, E.URI_TOO_LONG, "request-target too long");
const ERR_HEADERS_TOO_LARGE = httpError(431, E.HEADERS_TOO_LARGE, "header fields too large");
const ERR_TOO_MANY_HEADERS = httpError(431, E.TOO_MANY_HEADERS, "too many header fields");
const ERR_HEADER_NAME = badRequest(E.BAD_HEADER, "invalid header field name");
const ERR_HEADER_SPACE = badRequest(E.BAD_HEADER, "whitespace between header name and colon");
const ERR_HEADER_COLON = badRequest(E.BAD_HEADER, "header field line without a colon");
const ERR_HEADER_VALUE = badRequest(E.BAD_HEADER, "invalid character in header field value");
const ERR_OBS_FOLD = badRequest(E.OBS_FOLD, "header line folding (obs-fold) is not accepted");
const ERR_BARE_CR = badRequest(E.BARE_CR, "CR not followed by LF");
const ERR_BARE_LF = badRequest(E.BARE_LF, "line ended by LF without CR");

/**
 * One request at a time; `reset()` readies it for the next (the object can be pooled).
 * The views passed to `feed` are read only during the call.
 */
export class HttpRequestParser {
  private readonly maxHeaderBytes: number;
  private readonly maxHeaderCount: number;
  private readonly maxBodyBytes: number;
  /** reuseRequest: the one request object, its headers, and the array behind them. */
  private readonly reused: MutableRequest | null = null;
  private readonly reusedHeaders: HeaderFields | null = null;
  private reusedPairs: string[] = [];
  private reusedPairCount = 0;

  private parseState: ParserState = ParserState.NEED_MORE;
  private phase = LEADING;
  private failure: HttpError | null = null;
  private parsed: HttpRequest | null = null;
  private method = "";
  private version: HttpVersion = "1.1";
  private target = "";
  private headers: ReadonlyMap<string, string> = NO_HEADERS;
  private repeatedNames: ReadonlySet<string> = NO_NAMES;

  /** Head bytes of earlier calls (only when the head spans calls). */
  private head = NO_HEAD_BYTES;
  private headLength = 0;
  /** Offsets in the whole head: request line parts, then SPAN_FIELDS per field line. */
  private requestLineStart = 0;
  private methodEnd = 0;
  private targetEnd = 0;
  private versionEnd = 0;
  private spans = NO_SPANS;
  private fieldCount = 0;

  private body: Uint8Array | null = null;
  private bodyReceived = 0;
  private chunkedDecoder: ChunkedBodyDecoder | null = null;

  constructor(options: HttpRequestParserOptions = {}) {
    this.maxHeaderBytes = positiveInteger(options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES);
    this.maxHeaderCount = positiveInteger(options.maxHeaderCount, DEFAULT_MAX_HEADER_COUNT);
    this.maxBodyBytes = positiveInteger(options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES, 0);
    if (options.reuseRequest === true) {
      this.reusedHeaders = new HeaderFields(this.reusedPairs, 0);
      this.reused = {
        method: "", version: "1.1", target: "", headers: this.reusedHeaders,
        repeatedHeaderNames: NO_NAMES, body: null, chunked: false,
      };
    }
  }

  get state(): ParserState {
    return this.parseState;
  }

  /** The request once `state` is COMPLETE, else null. */
  get request(): HttpRequest | null {
    return this.parsed;
  }

  /** Why parsing stopped once `state` is ERROR, else null. Answer `status`, then close. */
  get error(): HttpError | null {
    return this.failure;
  }

  /** Head bytes seen so far (request line, fields and the final empty line once complete). */
  get headerBytes(): number {
    return this.headLength;
  }

  /** Bytes of the buffers this parser keeps across reset(): head, span table, header pairs. */
  get bufferBytes(): number {
    return this.head.byteLength + this.spans.byteLength + this.reusedPairs.length * 8;
  }

  /** Forget the current request; buffers are kept for the next one. */
  reset(): void {
    this.parseState = ParserState.NEED_MORE;
    this.phase = LEADING;
    this.failure = null;
    this.parsed = null;
    this.headLength = 0;
    this.fieldCount = 0;
    this.body = null;
    this.bodyReceived = 0;
    this.chunkedDecoder = null;
    this.method = "";
    this.version = "1.1";
    this.target = "";
    this.headers = NO_HEADERS;
    this.repeatedNames = NO_NAMES;
    if (this.reused !== null) this.blankReusedRequest();
  }

  /** reuseRequest: the request reads as empty, and keeps no string of the last one alive. */
  private blankReusedRequest(): void {
    const pairs = this.reusedPairs;
    for (let i = 0; i < this.reusedPairCount; i++) pairs[i] = "";
    this.reusedPairCount = 0;
    this.reusedHeaders!.reassign(pairs, 0);
    const request = this.reused!;
    request.method = "";
    request.version = "1.1";
    request.target = "";
    request.repeatedHeaderNames = NO_NAMES;
    request.body = null;
    request.chunked = false;
  }

  /**
   * Parses `data[start, end)` and returns how many of those bytes belong to this request.
   * Once `state` is COMPLETE the rest (if any) is the caller's: for an upgrade, the first
   * WebSocket bytes. After COMPLETE or ERROR it consumes nothing until `reset()`.
   */
  feed(data: Uint8Array, start: number, end: number): number {
    if (this.parseState !== ParserState.NEED_MORE) return 0;
    if (start < 0 || end > data.length || start > end) throw new RangeError("feed: bad range");
    let index = start;
    if (this.phase < BODY_FIXED) {
      index = this.scanHead(data, start, end);
      if (this.phase === HEAD_COMPLETE) this.finishHead();
    }
    if (this.phase === BODY_FIXED) index = this.readFixedBody(data, index, end);
    else if (this.phase === BODY_CHUNKED) index = this.readChunkedBody(data, index, end);
    if (this.phase === DONE) this.complete();
    return index - start;
  }

  /**
   * Runs the head state machine over the bytes the head budget allows and returns the index
   * after the last head byte. An unfinished head is kept in `head`; a finished one (phase
   * HEAD_COMPLETE) is staged for decoding. Fails with 414/431/400 when the budget runs out.
   */
  private scanHead(data: Uint8Array, start: number, end: number): number {
    const budget = this.maxHeaderBytes - this.headLength;
    const limit = end - start > budget ? start + budget : end;
    const index = this.scanHeadBytes(data, start, limit);
    if (this.phase === FAILED) return index;
    if (this.phase === HEAD_COMPLETE) {
      this.stageHead(data, start, index);
      return index;
    }
    this.copyHead(data, start, index);
    if (this.phase <= HEAD_END_LF && index === limit && limit < end) {
      this.fail(this.overflowError());
    }
    return index;
  }

  /** The state machine proper; returns where it stopped (end of the head, an error, limit). */
  private scanHeadBytes(data: Uint8Array, start: number, limit: number): number {
    const offset = this.headLength - start; // head offset of data[i] is i + offset
    let phase = this.phase;
    let i = start;
    while (i < limit) {
      switch (phase) {
        case VALUE: {
          // The hot loop: most head bytes are field values.
          while (i < limit && FIELD_VALUE_CHAR[data[i] as number] === 1) i++;
          if (i === limit) break;
          if (data[i] !== CR) {
            return this.failAt(i, data[i] === LF ? ERR_BARE_LF : ERR_HEADER_VALUE);
          }
          this.spans[this.fieldCount * SPAN_FIELDS - 1] = i + offset;
          phase = VALUE_LF;
          i++;
          break;
        }
        case NAME: {
          while (i < limit && TOKEN_CHAR[data[i] as number] === 1) i++;
          if (i === limit) break;
          const byte = data[i] as number;
          if (byte !== COLON) return this.failAt(i, nameEndError(byte));
          this.spans[this.fieldCount * SPAN_FIELDS - 2] = i + offset;
          phase = VALUE;
          i++;
          break;
        }
        case LINE_START: {
          const byte = data[i] as number;
          if (TOKEN_CHAR[byte] === 1) {
            if (this.fieldCount === this.maxHeaderCount) {
              return this.failAt(i, ERR_TOO_MANY_HEADERS);
            }
            this.addSpan(i + offset);
            phase = NAME;
          } else if (byte === CR) {
            phase = HEAD_END_LF;
          } else {
            return this.failAt(i, lineStartError(byte));
          }
          i++;
          break;
        }
        case VALUE_LF:
        case REQUEST_LINE_LF:
        case LEADING_LF:
        case HEAD_END_LF: {
          if (data[i] !== LF) return this.failAt(i, ERR_BARE_CR);
          i++;
          if (phase === HEAD_END_LF) {
            this.phase = HEAD_COMPLETE;
            return i;
          }
          phase = phase === LEADING_LF ? LEADING : LINE_START;
          break;
        }
        default: {
          i = this.scanRequestLine(data, i, limit, offset, phase);
          if (this.phase === FAILED) return i;
          phase = this.phase;
        }
      }
    }
    this.phase = phase;
    return i;
  }

  /**
   * LEADING, METHOD, TARGET, VERSION: returns the index after the bytes it took, with
   * `this.phase` updated (FAILED on a bad byte).
   */
  private scanRequestLine(
    data: Uint8Array,
    start: number,
    limit: number,
    offset: number,
    phase: number,
  ): number {
    let i = start;
    if (phase === LEADING) {
      const byte = data[i] as number;
      if (byte === CR) {
        this.phase = LEADING_LF;
        return i + 1;
      }
      if (TOKEN_CHAR[byte] === 0) return this.failAt(i, byte === LF ? ERR_BARE_LF : ERR_METHOD);
      this.requestLineStart = i + offset;
      this.phase = METHOD;
      return i + 1;
    }
    const table = phase === METHOD ? TOKEN_CHAR : VISIBLE_CHAR;
    while (i < limit && table[data[i] as number] === 1) i++;
    this.phase = phase;
    if (i === limit) return i;
    const byte = data[i] as number;
    if (phase === METHOD && byte === SP) {
      this.methodEnd = i + offset;
      this.phase = TARGET;
    } else if (phase === TARGET && byte === SP && i + offset > this.methodEnd + 1) {
      this.targetEnd = i + offset;
      this.phase = VERSION;
    } else if (phase === VERSION && byte === CR && i + offset > this.targetEnd + 1) {
      this.versionEnd = i + offset;
      this.phase = REQUEST_LINE_LF;
    } else {
      return this.failAt(i, requestLineError(phase, byte));
    }
    return i + 1;
  }

  private overflowError(): HttpError {
    if (this.phase === TARGET) return ERR_URI_TOO_LONG;
    if (this.phase <= REQUEST_LINE_LF) return ERR_REQUEST_LINE_TOO_LONG;
    return ERR_HEADERS_TOO_LARGE;
  }

  private addSpan(nameStart: number): void {
    const needed = (this.fieldCount + 1) * SPAN_FIELDS;
    if (needed > this.spans.length) {
      const capacity = Math.max(this.spans.length * 2, SPAN_CAPACITY_MIN * SPAN_FIELDS);
      const grown = new Int32Array(Math.min(capacity, this.maxHeaderCount * SPAN_FIELDS));
      grown.set(this.spans);
      this.spans = grown;
    }
    this.spans[this.fieldCount * SPAN_FIELDS] = nameStart;
    this.fieldCount++;
  }

  private copyHead(data: Uint8Array, start: number, stop: number): void {
    const needed = this.headLength + (stop - start);
    assert(needed <= this.maxHeaderBytes, "head copy within maxHeaderBytes");
    if (needed > this.head.length) {
      const doubled = Math.max(this.head.length * 2, HEAD_CAPACITY_MIN);
      const grown = new Uint8Array(Math.min(Math.max(needed, doubled), this.maxHeaderBytes));
      copyBytes.call(this.head, grown, 0, 0, this.headLength);
      this.head = grown;
    }
    copyBytes.call(data, this.head, this.headLength, start, stop);
    this.headLength = needed;
  }

  /** Puts the whole head (earlier calls' part, then this call's) into the decode scratch. */
  private stageHead(data: Uint8Array, start: number, stop: number): void {
    const total = this.headLength + (stop - start);
    if (total > decodeScratch.length) {
      decodeScratch = Buffer.alloc(Math.max(total, decodeScratch.length * 2));
    }
    if (this.headLength > 0) copyBytes.call(this.head, decodeScratch, 0, 0, this.headLength);
    copyBytes.call(data, decodeScratch, this.headLength, start, stop);
    this.headLength = total;
  }

  /** Decodes the staged head, checks Host and framing, and picks the body phase. */
  private finishHead(): void {
    const versionError = this.checkVersion();
    if (versionError !== null) return this.fail(versionError);
    const method = decodeReusing(recentMethod, this.requestLineStart, this.methodEnd);
    if (method.length <= CACHED_VALUE_MAX) recentMethod = method;
    const target = decodeReusing(recentTarget, this.methodEnd + 1, this.targetEnd);
    if (target !== recentTarget && target.length <= CACHED_VALUE_MAX && !target.includes("?")) {
      recentTarget = target; // a query may carry a token: those are not kept
    }
    const targetError = checkTargetForm(method, target);
    if (targetError !== null) return this.fail(targetError);
    // Sized for the usual case (no repeated names), trimmed below otherwise.
    let pairs: string[];
    if (this.reusedHeaders === null) {
      pairs = new Array(this.fieldCount * 2);
    } else {
      if (this.reusedPairs.length < this.fieldCount * 2) {
        this.reusedPairs = new Array(this.fieldCount * 2);
      }
      pairs = this.reusedPairs;
    }
    let length = 0;
    let repeated: Set<string> | null = null;
    for (let field = 0; field < this.fieldCount; field++) {
      const start = this.spans[field * SPAN_FIELDS] as number;
      const colon = this.spans[field * SPAN_FIELDS + 1] as number;
      const interned = internHeaderName(decodeScratch, start, colon);
      const name = interned ?? decodeScratch.toString("latin1", start, colon).toLowerCase();
      const value = this.fieldValue(field, interned);
      let at = 0;
      while (at < length && pairs[at] !== name) at += 2;
      if (at === length) {
        pairs[length++] = name;
        pairs[length++] = value;
      } else {
        pairs[at + 1] = pairs[at + 1] + (name === COOKIE ? "; " : ", ") + value;
        repeated ??= new Set<string>();
        repeated.add(name);
      }
    }
    let headers: HeaderFields;
    if (this.reusedHeaders === null) {
      if (length < pairs.length) pairs.length = length;
      headers = new HeaderFields(pairs);
    } else {
      this.reusedPairCount = length;
      headers = this.reusedHeaders;
      headers.reassign(pairs, length);
    }
    const repeatedNames = repeated ?? NO_NAMES;
    const isHttp10 = this.version === "1.0";
    const framingError = checkHost(headers, repeatedNames, !isHttp10) ??
      (isHttp10 ? checkHttp10Framing(headers) : null) ?? this.chooseBody(headers);
    if (framingError !== null) return this.fail(framingError);
    this.method = method;
    this.target = target;
    this.headers = headers;
    this.repeatedNames = repeatedNames;
  }

  /**
   * Sets `version` for HTTP/1.1 and HTTP/1.0 and returns null; 505 for another well-formed
   * HTTP-version (RFC 9112 §2.3); else 400.
   */
  private checkVersion(): HttpError | null {
    const head = decodeScratch;
    const at = this.targetEnd + 1;
    const isWellFormed =
      this.versionEnd - at === 8 &&
      head[at] === 0x48 && // H
      head[at + 1] === 0x54 && // T
      head[at + 2] === 0x54 && // T
      head[at + 3] === 0x50 && // P
      head[at + 4] === 0x2f && // /
      isDigit(head[at + 5] as number) &&
      head[at + 6] === 0x2e && // .
      isDigit(head[at + 7] as number);
    if (!isWellFormed) return ERR_VERSION_SYNTAX;
    if (head[at + 5] !== 0x31) return ERR_VERSION; // major version 1 only
    const minor = head[at + 7];
    if (minor === 0x31) this.version = "1.1";
    else if (minor === 0x30) this.version = "1.0";
    else return ERR_VERSION;
    return null;
  }

  /** The OWS-trimmed value of a field line; `name` is its interned name, if it has one. */
  private fieldValue(field: number, name: string | undefined): string {
    const head = decodeScratch;
    let first = (this.spans[field * SPAN_FIELDS + 1] as number) + 1;
    let last = this.spans[field * SPAN_FIELDS + 2] as number;
    while (first < last && isOwsByte(head[first] as number)) first++;
    while (last > first && isOwsByte(head[last - 1] as number)) last--;
    if (first === last) return "";
    if (name === undefined || last - first > CACHED_VALUE_MAX) {
      return decodeScratch.toString("latin1", first, last);
    }
    const recent = recentValues.get(name);
    if (recent === undefined) return decodeScratch.toString("latin1", first, last);
    const value = decodeReusing(recent, first, last);
    if (value !== recent) recentValues.set(name, value);
    return value;
  }

  /** Picks BODY_FIXED, BODY_CHUNKED or DONE from the framing headers (RFC 9112 §6.3). */
  private chooseBody(headers: ReadonlyMap<string, string>): HttpError | null {
    const length = requestBodyLength(headers, this.maxBodyBytes);
    if (typeof length !== "number") return length;
    if (length === CHUNKED_BODY) {
      // Chunk extensions and trailers share the head's byte budget.
      this.chunkedDecoder = new ChunkedBodyDecoder(this.maxBodyBytes, this.maxHeaderBytes);
      this.phase = BODY_CHUNKED;
    } else if (length === NO_BODY || length === 0) {
      if (length === 0) this.body = EMPTY_BODY;
      this.phase = DONE;
    } else {
      this.body = new Uint8Array(length);
      this.phase = BODY_FIXED;
    }
    return null;
  }

  private readFixedBody(data: Uint8Array, start: number, end: number): number {
    const body = this.body as Uint8Array;
    const count = Math.min(body.length - this.bodyReceived, end - start);
    body.set(data.subarray(start, start + count), this.bodyReceived);
    this.bodyReceived += count;
    if (this.bodyReceived === body.length) this.phase = DONE;
    return start + count;
  }

  private readChunkedBody(data: Uint8Array, start: number, end: number): number {
    const decoder = this.chunkedDecoder as ChunkedBodyDecoder;
    const consumed = decoder.feed(data, start, end);
    if (decoder.error !== null) this.fail(decoder.error);
    else if (decoder.done) {
      this.body = decoder.result();
      this.phase = DONE;
    }
    return start + consumed;
  }

  private complete(): void {
    assert(this.failure === null && this.parsed === null, "complete once, after no error");
    const reused = this.reused;
    if (reused === null) {
      this.parsed = {
        method: this.method,
        version: this.version,
        target: this.target,
        headers: this.headers,
        repeatedHeaderNames: this.repeatedNames,
        body: this.body,
        chunked: this.chunkedDecoder !== null,
      };
    } else {
      reused.method = this.method;
      reused.version = this.version;
      reused.target = this.target;
      reused.headers = this.headers;
      reused.repeatedHeaderNames = this.repeatedNames;
      reused.body = this.body;
      reused.chunked = this.chunkedDecoder !== null;
      this.parsed = reused;
    }
    this.parseState = ParserState.COMPLETE;
  }

  private fail(error: HttpError): void {
    this.failure = error;
    this.phase = FAILED;
    this.parseState = ParserState.ERROR;
    this.parsed = null;
  }

  /** Fails and returns `index` + 1 (the offending byte counts as examined). */
  private failAt(index: number, error: HttpError): number {
    this.fail(error);
    return index + 1;
  }
}

function positiveInteger(value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`HttpRequestParser: limit must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** `decodeScratch[start, end)` as Latin-1: `recent` itself when it spells those bytes. */
function decodeReusing(recent: string, start: number, end: number): string {
  if (recent.length === end - start) {
    let i = 0;
    while (i < recent.length && recent.charCodeAt(i) === decodeScratch[start + i]) i++;
    if (i === recent.length) return recent;
  }
  return decodeScratch.toString("latin1", start, end);
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function isOwsByte(byte: number): boolean {
  return byte === SP || byte === HTAB;
}

function requestLineError(phase: number, byte: number): HttpError {
  if (byte === LF) return ERR_BARE_LF;
  if (phase === METHOD) return ERR_METHOD;
  if (phase === TARGET && byte !== CR) return ERR_TARGET;
  return ERR_REQUEST_LINE;
}

function nameEndError(byte: number): HttpError {
  if (byte === SP || byte === HTAB) return ERR_HEADER_SPACE;
  if (byte === CR) return ERR_HEADER_COLON;
  if (byte === LF) return ERR_BARE_LF;
  return ERR_HEADER_NAME;
}

function lineStartError(byte: number): HttpError {
  if (byte === SP || byte === HTAB) return ERR_OBS_FOLD;
  if (byte === LF) return ERR_BARE_LF;
  return ERR_HEADER_NAME;
}
