/**
 * Incremental decoder of the chunked transfer coding (RFC 9112 §7.1) for request bodies:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *
 * Chunk extensions are skipped (RFC 9112 §7.1.1: a recipient MUST ignore the ones it does
 * not understand) and trailer fields are discarded (RFC 9110 §6.5.1 lets a recipient drop
 * them). Everything is bounded: the decoded body by `maxBodyBytes` (413 as soon as a chunk
 * size would pass it), chunk-size digits by CHUNK_SIZE_DIGITS_MAX, and extensions plus
 * trailers together by `maxMetadataBytes`. Every non-final chunk carries at least one byte,
 * so the work per body is bounded too.
 */
import {
  CR,
  FIELD_VALUE_CHAR,
  HEX_VALUE_PLUS_1,
  HTAB,
  LF,
  SP,
  TOKEN_CHAR,
} from "./http-grammar.ts";
import { HttpErrorCode, httpError, type HttpError } from "./http-errors.ts";

/** A chunk size of more hex digits than this is refused (leading zeros would be unbounded). */
export const CHUNK_SIZE_DIGITS_MAX = 16;

const SIZE_START = 0;
const SIZE = 1;
const EXTENSION = 2;
const SIZE_LF = 3;
const DATA = 4;
const DATA_CR = 5;
const DATA_LF = 6;
const TRAILER_START = 7;
const TRAILER_LINE = 8;
const TRAILER_LF = 9;
const END_LF = 10;
const DONE = 11;
const FAILED = 12;

const BODY_CAPACITY_MIN = 1024;
const EMPTY_BODY = new Uint8Array(0);

const ERR_SIZE = httpError(400, HttpErrorCode.BAD_CHUNK, "chunk size must be hex digits");
const ERR_SIZE_DIGITS = httpError(400, HttpErrorCode.BAD_CHUNK, "chunk size has too many digits");
const ERR_SIZE_LINE = httpError(400, HttpErrorCode.BAD_CHUNK, "invalid character in chunk header");
const ERR_DATA_END = httpError(400, HttpErrorCode.BAD_CHUNK, "chunk data must end with CRLF");
const ERR_TRAILER = httpError(400, HttpErrorCode.BAD_CHUNK, "invalid trailer field line");
const ERR_BARE_CR = httpError(400, HttpErrorCode.BARE_CR, "CR not followed by LF");
const ERR_BARE_LF = httpError(400, HttpErrorCode.BARE_LF, "line ended by LF without CR");
const ERR_TOO_LARGE = httpError(413, HttpErrorCode.BODY_TOO_LARGE, "request body too large");
const ERR_EXTENSIONS_TOO_LARGE = httpError(
  400,
  HttpErrorCode.BAD_CHUNK,
  "chunk extensions too large",
);
const ERR_TRAILERS_TOO_LARGE = httpError(
  431,
  HttpErrorCode.HEADERS_TOO_LARGE,
  "trailer fields too large",
);

export class ChunkedBodyDecoder {
  private readonly maxBodyBytes: number;
  private readonly maxMetadataBytes: number;
  private phase = SIZE_START;
  private sizeDigits = 0;
  private chunkRemaining = 0;
  private metadataBytes = 0;
  private body: Uint8Array = EMPTY_BODY;
  private bodyLength = 0;
  private failure: HttpError | null = null;

  constructor(maxBodyBytes: number, maxMetadataBytes: number) {
    this.maxBodyBytes = maxBodyBytes;
    this.maxMetadataBytes = maxMetadataBytes;
  }

  get done(): boolean {
    return this.phase === DONE;
  }

  get error(): HttpError | null {
    return this.failure;
  }

  /** The decoded body once `done` (a view of the decoder's buffer, owned by the caller). */
  result(): Uint8Array {
    return this.body.subarray(0, this.bodyLength);
  }

  /**
   * Decodes `data[start, end)`; returns how many bytes belong to the chunked body (it stops
   * right after the final CRLF, so pipelined bytes stay with the caller).
   */
  feed(data: Uint8Array, start: number, end: number): number {
    let i = start;
    while (i < end && this.phase < DONE) {
      i = this.phase === DATA ? this.copyData(data, i, end) : this.step(data, i, end);
    }
    return i - start;
  }

  private copyData(data: Uint8Array, start: number, end: number): number {
    const count = Math.min(this.chunkRemaining, end - start);
    this.body.set(data.subarray(start, start + count), this.bodyLength);
    this.bodyLength += count;
    this.chunkRemaining -= count;
    if (this.chunkRemaining === 0) this.phase = DATA_CR;
    return start + count;
  }

  /** Consumes framing bytes (everything but chunk data) up to the next data or the end. */
  private step(data: Uint8Array, start: number, end: number): number {
    let i = start;
    while (i < end) {
      const byte = data[i] as number;
      i++;
      switch (this.phase) {
        case SIZE_START:
        case SIZE: {
          const digit = HEX_VALUE_PLUS_1[byte] as number;
          if (digit !== 0) {
            this.addSizeDigit(digit - 1);
          } else if (this.phase === SIZE_START) {
            this.fail(ERR_SIZE);
          } else if (byte === CR) {
            this.phase = SIZE_LF;
          } else if (byte === 0x3b || byte === SP || byte === HTAB) {
            // ";" or BWS starts the chunk-ext, which we skip (RFC 9112 §7.1.1).
            this.phase = EXTENSION;
          } else {
            this.fail(byte === LF ? ERR_BARE_LF : ERR_SIZE_LINE);
          }
          break;
        }
        case EXTENSION:
          if (byte === CR) this.phase = SIZE_LF;
          else if (FIELD_VALUE_CHAR[byte] === 1) this.countMetadata(ERR_EXTENSIONS_TOO_LARGE);
          else this.fail(byte === LF ? ERR_BARE_LF : ERR_SIZE_LINE);
          break;
        case SIZE_LF:
          if (byte !== LF) this.fail(ERR_BARE_CR);
          else if (this.chunkRemaining === 0) this.phase = TRAILER_START;
          else this.startData();
          break;
        case DATA_CR:
          if (byte === CR) this.phase = DATA_LF;
          else this.fail(ERR_DATA_END);
          break;
        case DATA_LF:
          if (byte === LF) this.phase = SIZE_START;
          else this.fail(ERR_BARE_CR);
          this.sizeDigits = 0;
          break;
        default:
          this.stepTrailer(byte);
      }
      if (this.phase === DATA || this.phase >= DONE) break;
    }
    return i;
  }

  private stepTrailer(byte: number): void {
    switch (this.phase) {
      case TRAILER_START:
        if (byte === CR) this.phase = END_LF;
        else if (byte === LF) this.fail(ERR_BARE_LF);
        else if (TOKEN_CHAR[byte] === 0) this.fail(ERR_TRAILER);
        else this.enterTrailerLine();
        break;
      case TRAILER_LINE:
        if (byte === CR) this.phase = TRAILER_LF;
        else if (FIELD_VALUE_CHAR[byte] === 0) this.fail(byte === LF ? ERR_BARE_LF : ERR_TRAILER);
        else this.countMetadata(ERR_TRAILERS_TOO_LARGE);
        break;
      case TRAILER_LF:
        if (byte === LF) this.phase = TRAILER_START;
        else this.fail(ERR_BARE_CR);
        break;
      case END_LF:
        if (byte === LF) this.finish();
        else this.fail(ERR_BARE_CR);
        break;
    }
  }

  private enterTrailerLine(): void {
    this.phase = TRAILER_LINE;
    this.countMetadata(ERR_TRAILERS_TOO_LARGE);
  }

  private addSizeDigit(value: number): void {
    this.phase = SIZE;
    this.sizeDigits++;
    if (this.sizeDigits > CHUNK_SIZE_DIGITS_MAX) return this.fail(ERR_SIZE_DIGITS);
    this.chunkRemaining = this.chunkRemaining * 16 + value;
    // Refuse as soon as the declared size passes the limit: no digit can bring it back.
    if (this.bodyLength + this.chunkRemaining > this.maxBodyBytes) this.fail(ERR_TOO_LARGE);
  }

  private startData(): void {
    const needed = this.bodyLength + this.chunkRemaining;
    if (needed > this.body.length) {
      const doubled = Math.max(this.body.length * 2, BODY_CAPACITY_MIN);
      const grown = new Uint8Array(Math.min(Math.max(needed, doubled), this.maxBodyBytes));
      grown.set(this.body.subarray(0, this.bodyLength));
      this.body = grown;
    }
    this.phase = DATA;
  }

  private countMetadata(error: HttpError): void {
    this.metadataBytes++;
    if (this.metadataBytes > this.maxMetadataBytes) this.fail(error);
  }

  private finish(): void {
    this.phase = DONE;
  }

  private fail(error: HttpError): void {
    this.failure = error;
    this.phase = FAILED;
  }
}
