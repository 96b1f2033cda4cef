/**
 * permessage-deflate for one server: what each connection agreed to, and the zlib streams
 * that serve it. A stream is made when the first message needs it, never at the handshake,
 * so an idle socket holds no zlib state:
 * - without context takeover (server_no_context_takeover / client_no_context_takeover) the
 *   server's one stream per window size (deflate) or its one inflate stream serves every
 *   socket, reset after each message: no memory per socket at all;
 * - with it (a dedicated compressor or decompressor) the socket gets its own stream, kept
 *   until it closes, because its window is the history of that socket's messages.
 *
 * Every stream's output is valid until its next call: callers send or deliver it before
 * compressing or inflating again (`generation` tells a caller whether that happened).
 */
import type { CompressionStats } from "../api/websocket.ts";
import {
  negotiateDeflate, type DeflateAgreement,
} from "../protocol/permessage-deflate.ts";
import type { DeflateConfig } from "./deflate-options.ts";
import { NativeBuffer, zlibVersion } from "../ffi/zlib.ts";
import { MessageDeflater } from "./message-deflater.ts";
import { MessageInflater } from "./message-inflater.ts";

/** A connection's own streams, for the directions in which it keeps a window. */
class SocketStreams {
  deflater: MessageDeflater | undefined = undefined;
  inflater: MessageInflater | undefined = undefined;

  get memoryBytes(): number {
    return (this.deflater?.memoryBytes ?? 0) + (this.inflater?.memoryBytes ?? 0);
  }

  dispose(): void {
    this.deflater?.dispose();
    this.inflater?.dispose();
  }
}

/** stats().compression of a server without permessage-deflate. */
export const NO_COMPRESSION: CompressionStats = {
  sockets: 0, dedicatedCompressors: 0, dedicatedDecompressors: 0, socketBytes: 0, bytesPerSocket: 0,
  sharedBytes: 0, messagesCompressed: 0, bytesBeforeCompression: 0, bytesAfterCompression: 0,
  messagesInflated: 0, bytesBeforeInflation: 0, bytesAfterInflation: 0,
};

let zlibChecked: boolean | undefined;

/**
 * Whether the system zlib loads. Without it the extension is declined (connections run
 * uncompressed, which RFC 7692 allows) and stderr says why, once per process.
 */
export function zlibLoads(): boolean {
  if (zlibChecked === undefined) {
    try {
      zlibVersion();
      zlibChecked = true;
    } catch (error) {
      console.error(`hioload-ws: permessage-deflate is off (connections run uncompressed): ${(error as Error).message}`);
      zlibChecked = false;
    }
  }
  return zlibChecked;
}

/** Distinct Sec-WebSocket-Extensions values remembered (clients send very few different ones). */
const AGREEMENTS_CACHED = 64;

export class DeflateSessions {
  /** Each open connection's agreement (shared objects: one per distinct offer). */
  private readonly agreements: (DeflateAgreement | undefined)[] = [];
  /** Only connections that made a stream of their own (idle and shared ones have none). */
  private readonly streams = new Map<number, SocketStreams>();
  private readonly agreementsByOffer = new Map<string, DeflateAgreement | null>();
  /** Shared deflaters by window bits (8..15), made on first use. */
  private readonly sharedDeflaters: (MessageDeflater | undefined)[] = [];
  private sharedInflater: MessageInflater | undefined = undefined;
  /** Output memory for every stream, one per direction: a socket's own stream holds only zlib state. */
  private readonly deflateScratch = new NativeBuffer();
  private readonly inflateScratch = new NativeBuffer();
  private negotiated = 0;
  /** Bumped by every compress(): an output taken before is stale once it changed. */
  generation = 0;
  /** What the last compress() or inflate() produced (valid until the next call of either kind). */
  output: Uint8Array = new Uint8Array(0);
  private readonly counters = {
    messagesCompressed: 0, bytesBeforeCompression: 0, bytesAfterCompression: 0,
    messagesInflated: 0, bytesBeforeInflation: 0, bytesAfterInflation: 0,
  };

  constructor(readonly config: DeflateConfig) {}

  get threshold(): number {
    return this.config.threshold;
  }

  /** The agreement for a request's Sec-WebSocket-Extensions, or null (uncompressed). */
  negotiate(header: string): DeflateAgreement | null {
    let agreement = this.agreementsByOffer.get(header);
    if (agreement === undefined) {
      agreement = negotiateDeflate(header, this.config.settings);
      if (this.agreementsByOffer.size >= AGREEMENTS_CACHED) this.agreementsByOffer.clear();
      this.agreementsByOffer.set(header, agreement);
    }
    return agreement;
  }

  /** `conn` became a WebSocket with this agreement. */
  open(conn: number, agreement: DeflateAgreement): void {
    while (this.agreements.length <= conn) this.agreements.push(undefined);
    this.agreements[conn] = agreement;
    this.negotiated++;
  }

  /** `conn` closed: its own streams are freed. */
  close(conn: number): void {
    if (this.agreements[conn] === undefined) return;
    this.agreements[conn] = undefined;
    this.negotiated--;
    const streams = this.streams.get(conn);
    if (streams !== undefined) {
      streams.dispose();
      this.streams.delete(conn);
    }
  }

  /** What an open connection agreed to (undefined: it did not negotiate the extension). */
  agreementOf(conn: number): DeflateAgreement | undefined {
    return this.agreements[conn];
  }

  /**
   * Compresses data[start, end) for `conn`, whose agreement lets the server compress: the
   * length of `output`. With a dedicated compressor the socket's window now holds the
   * message: the caller must deliver it or close the socket (a message the peer never sees
   * desynchronises it).
   */
  compress(conn: number, data: Uint8Array, start: number, end: number): number {
    const agreement = this.agreements[conn]!;
    const deflater = agreement.serverNoContextTakeover
      ? this.sharedDeflater(agreement.serverWindowBits)
      : (this.streamsOf(conn).deflater ??= this.newDeflater(agreement.serverWindowBits, true));
    return this.run(deflater, data, start, end);
  }

  /** Compresses once for every socket sharing the stream of `windowBits` (a publish). */
  compressShared(windowBits: number, data: Uint8Array, start: number, end: number): number {
    return this.run(this.sharedDeflater(windowBits), data, start, end);
  }

  /**
   * Inflates one whole compressed message from `conn`, bounded by `limit` bytes while
   * inflating: the length of `output`, or INFLATE_TOO_BIG / INFLATE_CORRUPT.
   */
  inflate(conn: number, data: Uint8Array, start: number, end: number, limit: number): number {
    const agreement = this.agreements[conn]!;
    const inflater = agreement.clientNoContextTakeover
      ? (this.sharedInflater ??= this.newInflater(15, false))
      : (this.streamsOf(conn).inflater ??= this.newInflater(agreement.clientWindowBits, true));
    const length = inflater.inflate(data, start, end, limit);
    if (length < 0) return length;
    this.output = inflater.output;
    const counters = this.counters;
    counters.messagesInflated++;
    counters.bytesBeforeInflation += end - start;
    counters.bytesAfterInflation += length;
    return length;
  }

  stats(): CompressionStats {
    let dedicatedCompressors = 0;
    let dedicatedDecompressors = 0;
    let socketBytes = 0;
    for (const streams of this.streams.values()) {
      if (streams.deflater !== undefined) dedicatedCompressors++;
      if (streams.inflater !== undefined) dedicatedDecompressors++;
      socketBytes += streams.memoryBytes;
    }
    let sharedBytes = (this.sharedInflater?.memoryBytes ?? 0) + this.deflateScratch.capacity +
      this.inflateScratch.capacity;
    for (const deflater of this.sharedDeflaters) sharedBytes += deflater?.memoryBytes ?? 0;
    return {
      sockets: this.negotiated, dedicatedCompressors, dedicatedDecompressors,
      socketBytes, bytesPerSocket: this.negotiated === 0 ? 0 : Math.round(socketBytes / this.negotiated),
      sharedBytes, ...this.counters,
    };
  }

  /** The server stopped: every stream is freed. */
  dispose(): void {
    for (let conn = 0; conn < this.agreements.length; conn++) this.close(conn);
    for (const deflater of this.sharedDeflaters) deflater?.dispose();
    this.sharedDeflaters.length = 0;
    this.sharedInflater?.dispose();
    this.sharedInflater = undefined;
    this.deflateScratch.free();
    this.inflateScratch.free();
  }

  private streamsOf(conn: number): SocketStreams {
    let streams = this.streams.get(conn);
    if (streams === undefined) {
      streams = new SocketStreams();
      this.streams.set(conn, streams);
    }
    return streams;
  }

  private run(deflater: MessageDeflater, data: Uint8Array, start: number, end: number): number {
    const length = deflater.compress(data, start, end);
    this.generation++;
    this.output = deflater.output;
    const counters = this.counters;
    counters.messagesCompressed++;
    counters.bytesBeforeCompression += end - start;
    counters.bytesAfterCompression += length;
    return length;
  }

  private sharedDeflater(windowBits: number): MessageDeflater {
    return (this.sharedDeflaters[windowBits] ??= this.newDeflater(windowBits, false));
  }

  private newDeflater(windowBits: number, contextTakeover: boolean): MessageDeflater {
    // Shared streams serve every socket: the full memLevel. Dedicated ones: the setting's.
    const memLevel = contextTakeover ? this.config.memLevel : 8;
    return new MessageDeflater({
      windowBits, memLevel, level: this.config.level, contextTakeover, scratch: this.deflateScratch,
    });
  }

  private newInflater(windowBits: number, contextTakeover: boolean): MessageInflater {
    return new MessageInflater({ windowBits, contextTakeover, scratch: this.inflateScratch });
  }
}
