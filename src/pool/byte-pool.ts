/**
 * Fixed-size byte slots carved from one MemoryRegion. acquire()/release() are O(1) and
 * allocate nothing: a preallocated Int32Array free stack plus a Uint8Array in-use map.
 * Slot views are made once each, a segment of slots at a time when the first slot of the
 * segment is viewed: the lowest ids go out first, so a pool sized for peaks views (and has
 * JSC account for) only the part its traffic uses (see segmented-views.ts).
 */
import { assert, UsageError } from "../api/errors.ts";
import type { PoolStats } from "../api/pool.ts";
import { PoolErrorCode } from "./pool-errors.ts";
import { MemoryRegion, type RegionAllocateOptions } from "./region.ts";
import { SegmentedViews } from "./segmented-views.ts";

/** Default slot rounding: one x86_64 cache line, so no two slots share a line. */
export const SLOT_ALIGNMENT = 64;
/** Slots are viewed in segments of about this many bytes (at least one slot). */
const SEGMENT_BYTES_TARGET = 1024 * 1024;

export interface BytePoolOptions extends RegionAllocateOptions {
  /**
   * Carve the slots from this region instead of allocating one. The pool then does not own
   * it: destroy() leaves it mapped and the caller frees it. Region options are ignored.
   */
  region?: MemoryRegion;
  /** Keep `slotSize` as given instead of rounding it up to SLOT_ALIGNMENT (64) bytes. */
  exactSlotSize?: boolean;
}

/**
 * A pool of `capacity` slots of `slotSize` bytes (rounded up to 64 unless `exactSlotSize`).
 * Slot ids are 0..capacity-1; slot i starts at byte i * slotSize of the region.
 */
export class BytePool {
  /** Bytes per slot after alignment. */
  readonly slotSize: number;
  readonly capacity: number;
  readonly #region: MemoryRegion;
  readonly #ownsRegion: boolean;
  readonly #baseAddress: number;
  /** Free slot ids; the top of the stack is freeStack[freeCount - 1]. */
  readonly #freeStack: Int32Array;
  /** 1 while a slot is acquired: detects double and foreign releases without allocating. */
  readonly #inUse: Uint8Array;
  #slotViews: (Uint8Array | undefined)[];
  readonly #segments: SegmentedViews;
  readonly #slotsPerSegment: number;
  #freeCount: number;
  #highWater = 0;
  #destroyed = false;
  /** A slot was acquired since the last trimIfIdle() (so pages may be resident). */
  #acquiredSinceCheck = false;
  /** Pages may be resident: something was acquired since the last release of the memory. */
  #touched = false;

  constructor(slotSize: number, capacity: number, options: BytePoolOptions = {}) {
    requireCount("slotSize", slotSize);
    requireCount("capacity", capacity);
    const size = options.exactSlotSize === true ? slotSize : roundUp(slotSize, SLOT_ALIGNMENT);
    const bytes = size * capacity;
    if (!Number.isSafeInteger(bytes) || capacity > 0x7fffffff) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT, "BytePool is too large");
    }
    const region = options.region ?? MemoryRegion.allocate(bytes, options);
    if (region.size < bytes) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
        `region of ${region.size} bytes cannot hold ${capacity} slots of ${size} bytes`);
    }
    this.slotSize = size;
    this.capacity = capacity;
    this.#region = region;
    this.#ownsRegion = options.region === undefined;
    this.#baseAddress = region.pointer;
    this.#freeStack = new Int32Array(capacity);
    this.#inUse = new Uint8Array(capacity);
    this.#slotViews = new Array<Uint8Array | undefined>(capacity).fill(undefined);
    this.#slotsPerSegment = Math.max(1, Math.floor(SEGMENT_BYTES_TARGET / size));
    this.#segments = new SegmentedViews(region, bytes, this.#slotsPerSegment * size);
    for (let id = 0; id < capacity; id++) {
      // Lowest ids on top, so a fresh pool hands out 0, 1, 2... (adjacent memory first).
      this.#freeStack[id] = capacity - 1 - id;
    }
    this.#freeCount = capacity;
  }

  /** A free slot id, or -1 when every slot is in use. Allocates nothing. */
  acquire(): number {
    if (this.#destroyed) throw destroyedError();
    if (this.#freeCount === 0) return -1;
    const id = this.#freeStack[--this.#freeCount]!;
    this.#inUse[id] = 1;
    this.#acquiredSinceCheck = true;
    const inUse = this.capacity - this.#freeCount;
    if (inUse > this.#highWater) this.#highWater = inUse;
    return id;
  }

  /**
   * Returns slot `id` to the pool. Throws UsageError for an id this pool never handed out
   * (WS_ERR_FOREIGN_SLOT) or one already released (WS_ERR_DOUBLE_RELEASE).
   */
  release(id: number): void {
    if (this.#destroyed) throw destroyedError();
    // `>>> 0` also rejects fractions and NaN: only exact integers survive the round trip.
    if ((id >>> 0) !== id || id >= this.capacity) throw foreignSlot(id);
    if (this.#inUse[id] === 0) throw doubleRelease(id);
    this.#inUse[id] = 0;
    this.#freeStack[this.#freeCount++] = id;
  }

  /**
   * Call now and then (say every second): when no slot is in use and none was acquired
   * since the previous call, give the pool's pages back to the system (they come back on
   * the next use, zeroed). So a burst (a client that never read, a broadcast to slow
   * sockets) leaves no resident memory behind once it is over. Returns the bytes released.
   */
  trimIfIdle(): number {
    if (this.#destroyed) return 0;
    const acquired = this.#acquiredSinceCheck;
    this.#acquiredSinceCheck = false;
    if (acquired) {
      this.#touched = true;
      return 0;
    }
    if (!this.#touched || this.#freeCount !== this.capacity) return 0;
    this.#touched = false;
    return this.#region.release(0, this.capacity * this.slotSize);
  }

  /** Whether slot `id` is currently acquired. */
  isInUse(id: number): boolean {
    if (this.#destroyed) throw destroyedError();
    if ((id >>> 0) !== id || id >= this.capacity) throw foreignSlot(id);
    return this.#inUse[id] === 1;
  }

  /** The Uint8Array of slot `id` (the same object every time; slotSize bytes). */
  slotView(id: number): Uint8Array {
    if (this.#destroyed || this.#region.freed) throw destroyedError();
    const view = this.#slotViews[id];
    return view !== undefined ? view : this.#viewSlot(id);
  }

  /** First view of slot `id`: views its segment (once) and keeps the slot's window. */
  #viewSlot(id: number): Uint8Array {
    if ((id >>> 0) !== id || id >= this.capacity) throw foreignSlot(id);
    const segment = this.#segments.segment(Math.floor(id / this.#slotsPerSegment));
    const start = (id % this.#slotsPerSegment) * this.slotSize;
    const view = segment.subarray(start, start + this.slotSize);
    this.#slotViews[id] = view;
    return view;
  }

  /** Bytes of the region viewed so far (what the JS heap accounts for this pool). */
  get viewedBytes(): number {
    return this.#segments.viewedBytes;
  }

  /** Native address of slot `id`: region.pointer + id * slotSize. */
  slotAddress(id: number): number {
    return this.#baseAddress + this.slotOffset(id);
  }

  /** Byte offset of slot `id` within the region. */
  slotOffset(id: number): number {
    if (this.#destroyed || this.#region.freed) throw destroyedError();
    if ((id >>> 0) !== id || id >= this.capacity) throw foreignSlot(id);
    return id * this.slotSize;
  }

  /** Slots currently acquired. */
  get inUse(): number {
    return this.capacity - this.#freeCount;
  }

  /** Slots free to acquire. */
  get available(): number {
    return this.#freeCount;
  }

  get region(): MemoryRegion {
    if (this.#destroyed) throw destroyedError();
    return this.#region;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Counters for monitoring (allocates the returned object: not for hot paths). */
  stats(): PoolStats {
    if (this.#destroyed) throw destroyedError();
    assert(this.#freeCount >= 0 && this.#freeCount <= this.capacity, "free count in range");
    return {
      slotSize: this.slotSize,
      capacity: this.capacity,
      inUse: this.capacity - this.#freeCount,
      highWater: this.#highWater,
      regionKind: this.#region.kind,
      node: this.#region.node,
      bytes: this.#region.size,
    };
  }

  /**
   * Frees the region when the pool allocated it (not when it was passed in). Every later
   * call throws UsageError (WS_ERR_USE_AFTER_FREE); slot views obtained earlier must not be
   * used (they cannot be revoked). A second destroy() throws WS_ERR_DOUBLE_FREE.
   */
  destroy(): void {
    if (this.#destroyed) {
      throw new UsageError(PoolErrorCode.DOUBLE_FREE, "BytePool.destroy() called twice");
    }
    this.#destroyed = true;
    this.#slotViews = [];
    if (this.#ownsRegion) this.#region.free();
  }
}

function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      `BytePool ${name} must be a positive integer, got ${value}`);
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

function destroyedError(): UsageError {
  return new UsageError(PoolErrorCode.USE_AFTER_FREE,
    "BytePool used after destroy() (or after its region was freed)");
}

function foreignSlot(id: number): UsageError {
  return new UsageError(PoolErrorCode.FOREIGN_SLOT, `slot id ${id} does not belong to this pool`);
}

function doubleRelease(id: number): UsageError {
  return new UsageError(PoolErrorCode.DOUBLE_RELEASE, `slot ${id} released while not in use`);
}
