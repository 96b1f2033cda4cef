/**
 * Recycled buffers for messages the parser must assemble (they span receive buffers or
 * fragments). Power-of-two size classes with bounded free lists: steady traffic of large
 * messages reuses the same few buffers instead of allocating (and zeroing, and collecting)
 * one per message. Buffers are Buffers, so text decodes in place.
 */
import type { MessageBuffers } from "../protocol/frame-parser.ts";

const SMALLEST_CLASS = 10; // 1 KiB
const LARGEST_CLASS = 30; // 1 GiB (maxPayloadLength bounds what is asked for)

export class MessageBufferPool implements MessageBuffers {
  private readonly free: Buffer[][] = [];
  /** Buffers this pool handed out and has not taken back: a release must be one of them. */
  private readonly issued = new WeakSet<Uint8Array>();
  private cachedBytes = 0;

  /** @param maxCachedBytes free buffers kept for reuse, in all; beyond, released ones are dropped. */
  constructor(private readonly maxCachedBytes = 64 * 1024 * 1024) {
    for (let i = 0; i <= LARGEST_CLASS; i++) this.free.push([]);
  }

  acquire(size: number): Uint8Array | null {
    const sizeClass = classOf(size);
    const list = this.free[sizeClass];
    let buffer = list.pop();
    if (buffer === undefined) buffer = Buffer.allocUnsafeSlow(1 << sizeClass);
    else this.cachedBytes -= buffer.length;
    this.issued.add(buffer);
    return buffer;
  }

  release(buffer: Uint8Array): void {
    // Twice released, or never ours: keeping it would hand one buffer to two messages.
    if (!this.issued.delete(buffer)) return;
    const sizeClass = classOf(buffer.length);
    if (this.cachedBytes + buffer.length > this.maxCachedBytes) return;
    this.free[sizeClass].push(buffer as Buffer); // issued by acquire(): a Buffer
    this.cachedBytes += buffer.length;
  }

  get cached(): number {
    return this.cachedBytes;
  }
}

function classOf(size: number): number {
  const bits = size <= 1 ? 0 : 32 - Math.clz32(size - 1);
  return Math.min(LARGEST_CLASS, Math.max(SMALLEST_CLASS, bits));
}
