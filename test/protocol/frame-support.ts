/**
 * Helpers for the frame-layer tests: hex fixtures, a frame builder written independently of
 * frame-writer.ts (so the two check each other), a sink that records what it is told, and
 * chunked feeding.
 */
import type { ProtocolError } from "../../src/protocol/constants.ts";
import {
  FrameParser,
  type FrameParserOptions,
  type FrameSink,
  type MessageBuffers,
} from "../../src/protocol/frame-parser.ts";

/** Bytes from hex, spaces allowed: `hex("81 05 48 65")`. */
export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  if (digits.length % 2 !== 0) throw new Error("odd number of hex digits");
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  rsv?: number; // the 3 RSV bits as 0..7 (4 = RSV1)
  /** The 4 key bytes as a big-endian u32; omitted: unmasked. */
  mask?: number;
  /** Force a length form (non-minimal encodings are legal to decode). */
  lengthForm?: 7 | 16 | 64;
  /** Declared length when it differs from the payload's (for header-only fixtures). */
  declaredLength?: number;
}

const encoder = new TextEncoder();

/** One frame's bytes, byte by byte as RFC 6455 §5.2 draws it. */
export function frame(spec: FrameSpec): Uint8Array {
  const given = spec.payload ?? new Uint8Array(0);
  const payload = typeof given === "string" ? encoder.encode(given) : given;
  const length = spec.declaredLength ?? payload.length;
  const form = spec.lengthForm ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const bytes: number[] = [];
  bytes.push(((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode);
  const maskBit = spec.mask === undefined ? 0 : 0x80;
  if (form === 7) {
    bytes.push(maskBit | length);
  } else if (form === 16) {
    bytes.push(maskBit | 126, (length >> 8) & 0xff, length & 0xff);
  } else {
    bytes.push(maskBit | 127);
    const high = Math.floor(length / 2 ** 32);
    const low = length % 2 ** 32;
    for (const half of [high, low]) {
      bytes.push((half >>> 24) & 0xff, (half >>> 16) & 0xff, (half >>> 8) & 0xff, half & 0xff);
    }
  }
  const key = [0, 0, 0, 0];
  if (spec.mask !== undefined) {
    for (let i = 0; i < 4; i++) key[i] = (spec.mask >>> (24 - 8 * i)) & 0xff;
    bytes.push(...key);
  }
  const out = new Uint8Array(bytes.length + payload.length);
  out.set(bytes);
  for (let i = 0; i < payload.length; i++) out[bytes.length + i] = payload[i] ^ key[i & 3];
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export type FrameEvent =
  | { kind: "message"; opcode: number; data: Uint8Array; compressed: boolean }
  | { kind: "ping"; data: Uint8Array }
  | { kind: "pong"; data: Uint8Array }
  | { kind: "close"; code: number; reason: Uint8Array }
  | { kind: "error"; code: string; closeCode: number };

/** Records every callback, copying the views (they are valid only during the call). */
export class RecordingSink implements FrameSink {
  readonly events: FrameEvent[] = [];
  /** The last views handed out, uncopied, for zero-copy assertions. */
  lastView: { data: Uint8Array; start: number; end: number } | null = null;

  onMessage(opcode: number, data: Uint8Array, start: number, end: number, compressed: boolean) {
    this.lastView = { data, start, end };
    this.events.push({ kind: "message", opcode, data: data.slice(start, end), compressed });
  }
  onPing(data: Uint8Array, start: number, end: number) {
    this.events.push({ kind: "ping", data: data.slice(start, end) });
  }
  onPong(data: Uint8Array, start: number, end: number) {
    this.events.push({ kind: "pong", data: data.slice(start, end) });
  }
  onClose(code: number, data: Uint8Array, reasonStart: number, reasonEnd: number) {
    this.events.push({ kind: "close", code, reason: data.slice(reasonStart, reasonEnd) });
  }
  onError(error: ProtocolError) {
    this.events.push({ kind: "error", code: error.code, closeCode: error.closeCode });
  }

  get errors() {
    return this.events.filter((event) => event.kind === "error");
  }
}

/** Chunk boundaries: each piece is a fresh copy placed at `misalign` bytes into its buffer. */
export type Chunking =
  | "whole"
  | "bytes"
  | { readonly sizes: readonly number[] }
  | { readonly cuts: readonly number[] };

export function splitIntoChunks(bytes: Uint8Array, chunking: Chunking): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  if (chunking === "whole") return [bytes];
  if (chunking === "bytes") {
    for (let i = 0; i < bytes.length; i++) pieces.push(bytes.subarray(i, i + 1));
    return pieces;
  }
  if ("cuts" in chunking) {
    let previous = 0;
    for (const cut of [...chunking.cuts, bytes.length]) {
      pieces.push(bytes.subarray(previous, cut));
      previous = cut;
    }
    return pieces;
  }
  let offset = 0;
  let index = 0;
  while (offset < bytes.length) {
    const size = Math.max(1, chunking.sizes[index++ % chunking.sizes.length]);
    pieces.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

/**
 * Feeds `bytes` to `parser` in the given chunking. Each chunk is copied into a fresh buffer at
 * byte `misalign` (the parser unmasks in place, and unaligned offsets exercise the word paths),
 * with junk around it that the parser must not touch.
 */
export function feed(
  parser: FrameParser,
  sink: FrameSink,
  bytes: Uint8Array,
  chunking: Chunking = "whole",
  misalign = 0,
): void {
  for (const piece of splitIntoChunks(bytes, chunking)) {
    const buffer = new Uint8Array(piece.length + misalign + 3).fill(0xa5);
    buffer.set(piece, misalign);
    parser.consume(buffer, misalign, misalign + piece.length, sink);
    for (let i = 0; i < misalign; i++) if (buffer[i] !== 0xa5) throw new Error("wrote before");
    for (let i = misalign + piece.length; i < buffer.length; i++) {
      if (buffer[i] !== 0xa5) throw new Error("parser wrote past the chunk");
    }
  }
}

/** Parses `bytes` with a new parser and returns the events. */
export function parse(
  bytes: Uint8Array,
  options: FrameParserOptions,
  chunking: Chunking = "whole",
  misalign = 0,
): FrameEvent[] {
  const parser = new FrameParser(options);
  const sink = new RecordingSink();
  feed(parser, sink, bytes, chunking, misalign);
  return sink.events;
}

/** The chunkings every fixture goes through: whole, 1 byte at a time, every 2-way split. */
export function standardChunkings(length: number): Chunking[] {
  const chunkings: Chunking[] = ["whole", "bytes", { sizes: [3] }, { sizes: [7, 1, 2] }];
  if (length <= 300) for (let cut = 1; cut < length; cut++) chunkings.push({ cuts: [cut] });
  return chunkings;
}

/**
 * A MessageBuffers that counts acquire/release, rejects double and foreign releases, poisons
 * released buffers (so a use after release shows) and hands out unaligned views.
 */
export class CountingBuffers implements MessageBuffers {
  acquired = 0;
  released = 0;
  largestAcquired = 0;
  available = Number.POSITIVE_INFINITY;
  private readonly live = new Set<Uint8Array>();

  acquire(size: number): Uint8Array | null {
    if (this.available <= 0) return null;
    this.available--;
    this.acquired++;
    this.largestAcquired = Math.max(this.largestAcquired, size);
    const offset = 1 + (this.acquired % 3);
    const buffer = new Uint8Array(size + offset + 5).subarray(offset, offset + size + 5);
    this.live.add(buffer);
    return buffer;
  }

  release(buffer: Uint8Array): void {
    if (!this.live.delete(buffer)) throw new Error("release of a buffer not acquired (or twice)");
    this.released++;
    this.available++;
    buffer.fill(0xee);
  }

  get outstanding(): number {
    return this.live.size;
  }
}
