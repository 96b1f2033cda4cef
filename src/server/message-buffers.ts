/**
 * Recycled buffers for messages the parser must assemble (they span receive buffers or
 * fragments). Power-of-two size classes with bounded free lists: steady traffic of large
 * messages reuses the same few buffers instead of allocating (and zeroing, and collecting)
 * one per message. Buffers are Buffers, so text decodes in place.
 *
 * From LENDABLE_BYTES up, buffers are native mappings that the pool can lend to the
 * transport (a Lender): a handler that sends a received message back, or to many sockets,
 * has it queued without a copy, and the buffer returns to the pool only after the parser
 * released it and every loan came back.
 */
import type { Lender } from "../api/transport.ts";
import type { MessageBuffers } from "../protocol/frame-parser.ts";
import { MemoryRegion } from "../pool/region.ts";

const SMALLEST_CLASS = 10; // 1 KiB
const LARGEST_CLASS = 30; // 1 GiB (maxPayloadLength bounds what is asked for)
/** Classes from this one (16 KiB) up are native, lendable memory. */
const NATIVE_CLASS = 14;
export const LENDABLE_BYTES = 1 << NATIVE_CLASS;
const HUGE_CLASS = 21; // 2 MiB: from here on hugepages are worth asking for

/** A native buffer and who holds it: the parser (`issued`) and the transport (`loans`). */
interface NativeBuffer {
  readonly buffer: Buffer;
  readonly region: MemoryRegion;
  issued: boolean;
  loans: number;
}

export class MessageBufferPool implements MessageBuffers, Lender {
  private readonly free: Buffer[][] = [];
  /** Heap buffers this pool handed out and has not taken back: a release must be one of them. */
  private readonly issued = new WeakSet<Uint8Array>();
  /** Native buffers by token; the token of a buffer is found through its ArrayBuffer. */
  private readonly natives: (NativeBuffer | undefined)[] = [];
  private readonly tokenOf = new Map<ArrayBufferLike, number>();
  private readonly freeTokens: number[] = [];
  private cachedBytes = 0;
  private disposed = false;

  /** @param maxCachedBytes free buffers kept for reuse, in all; beyond, released ones are dropped. */
  constructor(private readonly maxCachedBytes = 64 * 1024 * 1024) {
    for (let i = 0; i <= LARGEST_CLASS; i++) this.free.push([]);
  }

  acquire(size: number): Uint8Array | null {
    const sizeClass = classOf(size);
    const list = this.free[sizeClass];
    let buffer = list.pop();
    if (buffer === undefined) {
      buffer = sizeClass >= NATIVE_CLASS ? this.allocateNative(sizeClass)
        : Buffer.allocUnsafeSlow(1 << sizeClass);
    } else {
      this.cachedBytes -= buffer.length;
    }
    const native = this.nativeOf(buffer);
    if (native !== undefined) native.issued = true;
    else this.issued.add(buffer);
    return buffer;
  }

  release(buffer: Uint8Array): void {
    const native = this.nativeOf(buffer);
    if (native !== undefined) {
      if (!native.issued) return; // twice released
      native.issued = false;
      if (native.loans === 0) this.recycle(native);
      return;
    }
    // Twice released, or never ours: keeping it would hand one buffer to two messages.
    if (!this.issued.delete(buffer)) return;
    this.keep(buffer as Buffer); // issued by acquire(): a Buffer
  }

  /**
   * A loan of `view`'s memory (a window of a buffer the parser holds now): its token, or -1
   * when the view is not in a lendable buffer. Each token returned must be given back once.
   */
  lend(view: Uint8Array): number {
    const token = this.tokenOf.get(view.buffer);
    if (token === undefined) return -1;
    const native = this.natives[token]!;
    if (!native.issued) return -1;
    native.loans++;
    return token;
  }

  /** Native address of `view`, which lies in the buffer of loan `token`. */
  addressOf(token: number, view: Uint8Array): number {
    return this.natives[token]!.region.pointer + view.byteOffset;
  }

  giveBack(token: number): void {
    const native = this.natives[token];
    if (native === undefined || native.loans === 0) return;
    native.loans--;
    if (native.loans === 0 && !native.issued) this.recycle(native);
  }

  get cached(): number {
    return this.cachedBytes;
  }

  /** Native buffers in existence (in use or cached). */
  get nativeCount(): number {
    return this.tokenOf.size;
  }

  /**
   * Unmaps the native buffers no parser holds, loans or not: call once no transport reads
   * them any more (it was disposed or closed). The rest are unmapped when released.
   */
  dispose(): void {
    this.disposed = true;
    for (const native of this.natives) if (native !== undefined && !native.issued) this.drop(native);
    for (const list of this.free) list.length = 0;
    this.cachedBytes = 0;
  }

  private allocateNative(sizeClass: number): Buffer {
    const size = 1 << sizeClass;
    const region = MemoryRegion.allocate(size, { hugepages: sizeClass >= HUGE_CLASS ? "auto" : "off" });
    const buffer = Buffer.from(region.view.buffer, region.view.byteOffset, size);
    const token = this.freeTokens.pop() ?? this.natives.length;
    this.natives[token] = { buffer, region, issued: false, loans: 0 };
    this.tokenOf.set(buffer.buffer, token);
    return buffer;
  }

  /** The native record of `buffer` when it is one of ours whole (not a view of part of it). */
  private nativeOf(buffer: Uint8Array): NativeBuffer | undefined {
    const token = this.tokenOf.get(buffer.buffer);
    if (token === undefined) return undefined;
    const native = this.natives[token]!;
    return native.buffer === buffer ? native : undefined;
  }

  private recycle(native: NativeBuffer): void {
    if (this.disposed || this.cachedBytes + native.buffer.length > this.maxCachedBytes) {
      this.drop(native);
      return;
    }
    this.keep(native.buffer);
  }

  private keep(buffer: Buffer): void {
    if (this.cachedBytes + buffer.length > this.maxCachedBytes) return;
    this.free[classOf(buffer.length)].push(buffer);
    this.cachedBytes += buffer.length;
  }

  private drop(native: NativeBuffer): void {
    const token = this.tokenOf.get(native.buffer.buffer);
    if (token === undefined) return;
    this.tokenOf.delete(native.buffer.buffer);
    this.natives[token] = undefined;
    this.freeTokens.push(token);
    native.region.free();
  }
}

function classOf(size: number): number {
  const bits = size <= 1 ? 0 : 32 - Math.clz32(size - 1);
  return Math.min(LARGEST_CLASS, Math.max(SMALLEST_CLASS, bits));
}
