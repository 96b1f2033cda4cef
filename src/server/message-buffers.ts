/**
 * Recycled buffers for messages the parser must assemble (they span receive buffers or
 * fragments). Power-of-two size classes: steady traffic of large messages reuses the same
 * few buffers, most recently released first, instead of allocating (and zeroing, and
 * collecting) one per message. Buffers are Buffers, so text decodes in place.
 *
 * Small classes (below LENDABLE_BYTES) are JS heap buffers with bounded free lists. From 16
 * KiB up buffers are native memory, and the pool can lend them to the transport (a Lender):
 * a handler that sends a received message back, or to many sockets, has it queued without a
 * copy; the buffer comes back only when the parser released it and every loan returned.
 * Classes up to 1 MiB are carved from one arena per class, a mapping advised for transparent
 * hugepages (measured: assembling and sending 64 KiB messages from 4 KiB pages was ~10%
 * slower); larger buffers, and any once an arena is full, get a mapping each.
 */
import type { Lender } from "../api/transport.ts";
import type { MessageBuffers } from "../protocol/frame-parser.ts";
import { BytePool } from "../pool/byte-pool.ts";
import { MemoryRegion } from "../pool/region.ts";

const SMALLEST_CLASS = 10; // 1 KiB
const LARGEST_CLASS = 30; // 1 GiB (maxPayloadLength bounds what is asked for)
/** Classes from this one (16 KiB) up are native, lendable memory. */
const NATIVE_CLASS = 14;
export const LENDABLE_BYTES = 1 << NATIVE_CLASS;
/** Classes up to this one (1 MiB) come from an arena; untouched arena pages cost nothing. */
const ARENA_CLASS_MAX = 20;
const ARENA_BYTES = 64 * 1024 * 1024;

/** A native buffer and who holds it: the parser (`issued`) and the transport (`loans`). */
interface NativeBuffer {
  readonly buffer: Buffer;
  readonly address: number;
  /** Its arena slot, or -1 when it has a mapping of its own (`region`). */
  readonly slot: number;
  readonly region: MemoryRegion | null;
  issued: boolean;
  loans: number;
}

/** Native buffers by the ArrayBuffer their views share: token of the one at each offset. */
interface Owner {
  readonly bufferSize: number;
  readonly tokens: number[];
}

export class MessageBufferPool implements MessageBuffers, Lender {
  private readonly free: Buffer[][] = [];
  /** Heap buffers this pool handed out and has not taken back: a release must be one of them. */
  private readonly issued = new WeakSet<Uint8Array>();
  /** Native buffers by token (tokens of arena slots are kept for the slot's next use). */
  private readonly natives: (NativeBuffer | undefined)[] = [];
  private readonly owners = new Map<ArrayBufferLike, Owner>();
  private readonly freeTokens: number[] = [];
  private readonly arenas: (BytePool | undefined)[] = [];
  /** Per arena, the token of each slot viewed so far (-1: not yet). */
  private readonly slotTokens: Int32Array[] = [];
  private cachedBytes = 0;
  private mappings = 0;
  private disposed = false;
  /** A native buffer was handed out since the last trimIdle(). */
  private acquiredSinceTrim = false;

  /** @param maxCachedBytes free heap and own-mapping buffers kept for reuse, in all. */
  constructor(private readonly maxCachedBytes = 64 * 1024 * 1024) {
    for (let i = 0; i <= LARGEST_CLASS; i++) this.free.push([]);
  }

  acquire(size: number): Uint8Array | null {
    const sizeClass = classOf(size);
    if (sizeClass >= NATIVE_CLASS) return this.acquireNative(sizeClass).buffer;
    let buffer = this.free[sizeClass].pop();
    if (buffer === undefined) buffer = Buffer.allocUnsafeSlow(1 << sizeClass);
    else this.cachedBytes -= buffer.length;
    this.issued.add(buffer);
    return buffer;
  }

  release(buffer: Uint8Array): void {
    const native = this.nativeOf(buffer);
    if (native !== undefined) {
      if (native.buffer !== buffer || !native.issued) return; // a part of one, or twice released
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
    const token = this.tokenOf(view);
    if (token < 0) return -1;
    const native = this.natives[token]!;
    if (!native.issued) return -1;
    native.loans++;
    return token;
  }

  /** Native address of `view`, which lies in the buffer of loan `token`. */
  addressOf(token: number, view: Uint8Array): number {
    const native = this.natives[token]!;
    return native.address + (view.byteOffset - native.buffer.byteOffset);
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

  /** Native buffers with a mapping of their own, in use or cached. */
  get nativeCount(): number {
    return this.mappings;
  }

  /**
   * Unmaps what no parser holds, loans or not: call once no transport reads these buffers
   * (it was disposed or closed). What a parser still holds is unmapped when released.
   */
  dispose(): void {
    this.disposed = true;
    for (const native of this.natives) {
      if (native !== undefined && native.slot === -1 && !native.issued) this.drop(native);
    }
    for (let sizeClass = 0; sizeClass < this.arenas.length; sizeClass++) this.destroyArenaIfIdle(sizeClass);
    for (const list of this.free) list.length = 0;
    this.cachedBytes = 0;
  }

  /**
   * Give memory back after a burst: call it every second or so. An arena none of whose
   * buffers was used since the last call releases its pages; cached buffers with mappings
   * of their own are unmapped when nothing was acquired since the last call either.
   * Returns the bytes given back.
   */
  trimIdle(): number {
    const acquired = this.acquiredSinceTrim;
    this.acquiredSinceTrim = false;
    let released = 0;
    for (const arena of this.arenas) if (arena !== undefined) released += arena.trimIfIdle();
    if (acquired) return released;
    for (let sizeClass = ARENA_CLASS_MAX + 1; sizeClass < this.free.length; sizeClass++) {
      const list = this.free[sizeClass];
      while (list.length > 0) {
        const buffer = list.pop()!;
        this.cachedBytes -= buffer.length;
        released += buffer.length;
        this.drop(this.nativeOf(buffer)!);
      }
    }
    return released;
  }

  private acquireNative(sizeClass: number): NativeBuffer {
    this.acquiredSinceTrim = true;
    let native: NativeBuffer | undefined;
    if (sizeClass <= ARENA_CLASS_MAX && !this.disposed) native = this.fromArena(sizeClass);
    if (native === undefined) {
      const cached = this.free[sizeClass].pop();
      if (cached !== undefined) {
        this.cachedBytes -= cached.length;
        native = this.nativeOf(cached)!;
      } else {
        native = this.mapOwn(sizeClass);
      }
    }
    native.issued = true;
    return native;
  }

  private fromArena(sizeClass: number): NativeBuffer | undefined {
    let arena = this.arenas[sizeClass];
    if (arena === undefined) {
      const size = 1 << sizeClass;
      arena = new BytePool(size, ARENA_BYTES / size, { hugepages: "transparent", exactSlotSize: true });
      this.arenas[sizeClass] = arena;
      this.slotTokens[sizeClass] = new Int32Array(ARENA_BYTES / size).fill(-1);
    }
    const slot = arena.acquire();
    if (slot < 0) return undefined;
    const tokens = this.slotTokens[sizeClass];
    if (tokens[slot] >= 0) return this.natives[tokens[slot]];
    const view = arena.slotView(slot);
    const buffer = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    const native = { buffer, address: arena.slotAddress(slot), slot, region: null, issued: false, loans: 0 };
    tokens[slot] = this.register(native);
    return native;
  }

  private mapOwn(sizeClass: number): NativeBuffer {
    const size = 1 << sizeClass;
    const region = MemoryRegion.allocate(size, { hugepages: "transparent" });
    const buffer = Buffer.from(region.view.buffer, region.view.byteOffset, size);
    this.mappings++;
    const native = { buffer, address: region.pointer, slot: -1, region, issued: false, loans: 0 };
    this.register(native);
    return native;
  }

  private register(native: NativeBuffer): number {
    const token = this.freeTokens.pop() ?? this.natives.length;
    this.natives[token] = native;
    const key = native.buffer.buffer;
    let owner = this.owners.get(key);
    if (owner === undefined) {
      owner = { bufferSize: native.buffer.length, tokens: [] };
      this.owners.set(key, owner);
    }
    owner.tokens[Math.floor(native.buffer.byteOffset / owner.bufferSize)] = token;
    return token;
  }

  /** The token of the native buffer `view` lies in, or -1 when it is not one of ours. */
  private tokenOf(view: Uint8Array): number {
    const owner = this.owners.get(view.buffer);
    if (owner === undefined) return -1;
    return owner.tokens[Math.floor(view.byteOffset / owner.bufferSize)] ?? -1;
  }

  /** The native buffer `view` lies in, if it is one of ours. */
  private nativeOf(view: Uint8Array): NativeBuffer | undefined {
    const token = this.tokenOf(view);
    return token < 0 ? undefined : this.natives[token];
  }

  private recycle(native: NativeBuffer): void {
    if (native.slot >= 0) {
      // Arena slots go back to the arena (last in, first out: the warmest comes next).
      const sizeClass = classOf(native.buffer.length);
      this.arenas[sizeClass]!.release(native.slot);
      if (this.disposed) this.destroyArenaIfIdle(sizeClass);
      return;
    }
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

  /** Unmaps a buffer with a mapping of its own. */
  private drop(native: NativeBuffer): void {
    const token = this.tokenOf(native.buffer);
    this.owners.delete(native.buffer.buffer);
    this.natives[token] = undefined;
    this.freeTokens.push(token);
    this.mappings--;
    native.region!.free();
  }

  private destroyArenaIfIdle(sizeClass: number): void {
    const arena = this.arenas[sizeClass];
    if (arena === undefined || arena.inUse > 0) return;
    const tokens = this.slotTokens[sizeClass];
    for (let slot = 0; slot < tokens.length; slot++) {
      const token = tokens[slot];
      if (token < 0) continue;
      this.owners.delete(this.natives[token]!.buffer.buffer);
      this.natives[token] = undefined;
      this.freeTokens.push(token);
    }
    this.arenas[sizeClass] = undefined;
    arena.destroy();
  }
}

function classOf(size: number): number {
  const bits = size <= 1 ? 0 : 32 - Math.clz32(size - 1);
  return Math.min(LARGEST_CLASS, Math.max(SMALLEST_CLASS, bits));
}
