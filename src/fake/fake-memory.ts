/**
 * The fake's stand-ins for pool memory: a fixed set of receive buffers (like the provided-buffer
 * ring of the io_uring backend) and an accounting of send chunks. Both are sized once and never
 * grow, so tests can exhaust them on purpose.
 */
import type { PoolStats } from "../api/pool.ts";
import { assert } from "../api/errors.ts";

/** Fixed-size receive buffers handed to `onData`; a buffer is in use only during the call. */
export class FakeRecvBuffers {
  readonly slotSize: number;
  readonly capacity: number;
  /** Views made on first use (a fake transport that never receives costs no memory). */
  private views: (Uint8Array | null)[];
  private freeStack: Int32Array;
  private freeTop: number;
  private held: number[] = [];
  private highWater = 0;

  constructor(slotSize: number, capacity: number) {
    if (!(Number.isInteger(slotSize) && slotSize > 0)) {
      throw new RangeError("recvBufferSize must be a positive integer");
    }
    // The contract asks for a power of two (a provided-buffer ring's size must be one).
    if (!(Number.isInteger(capacity) && capacity > 0 && (capacity & (capacity - 1)) === 0)) {
      throw new RangeError("recvBufferCount must be a power of two");
    }
    this.slotSize = slotSize;
    this.capacity = capacity;
    this.views = new Array<Uint8Array | null>(capacity).fill(null);
    this.freeStack = new Int32Array(capacity);
    // Lowest index on top, so buffer 0 is used first and runs are easy to read in a debugger.
    for (let i = 0; i < capacity; i++) this.freeStack[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  get free(): number {
    return this.freeTop;
  }

  get inUse(): number {
    return this.capacity - this.freeTop;
  }

  /** A free buffer index, or -1 when every buffer is in use (the caller counts a stall). */
  acquire(): number {
    if (this.freeTop === 0) return -1;
    const index = this.freeStack[--this.freeTop];
    const inUse = this.capacity - this.freeTop;
    if (inUse > this.highWater) this.highWater = inUse;
    return index;
  }

  view(index: number): Uint8Array {
    let view = this.views[index];
    if (view === null) {
      view = new Uint8Array(this.slotSize);
      this.views[index] = view;
    }
    return view;
  }

  release(index: number): void {
    assert(this.freeTop < this.capacity, "recv buffer released once");
    this.freeStack[this.freeTop++] = index;
  }

  /** Test hook: takes up to `count` free buffers away from delivery; returns how many it took. */
  hold(count: number): number {
    let taken = 0;
    while (taken < count) {
      const index = this.acquire();
      if (index < 0) break;
      this.held.push(index);
      taken++;
    }
    return taken;
  }

  /** Gives back every buffer taken with `hold`. */
  releaseHeld(): void {
    for (const index of this.held) this.release(index);
    this.held.length = 0;
  }

  /** Forgets the buffers' memory (dispose); the pool keeps its counters for `stats`. */
  freeMemory(): void {
    this.views.fill(null);
  }

  stats(): PoolStats {
    return {
      slotSize: this.slotSize,
      capacity: this.capacity,
      inUse: this.inUse,
      highWater: this.highWater,
      regionKind: "plain",
      node: -1,
      bytes: this.slotSize * this.capacity,
    };
  }
}

/**
 * Send memory as a count of fixed-size chunks: a connection with `n` bytes queued holds
 * ceil(n / chunkSize) chunks. Bytes are really kept in the connection's queue; this only decides
 * when `send` must answer -ENOBUFS.
 */
export class FakeSendMemory {
  readonly chunkSize: number;
  readonly capacity: number;
  private used = 0;
  private highWater = 0;

  constructor(chunkSize: number, capacity: number) {
    if (!(Number.isInteger(chunkSize) && chunkSize > 0)) {
      throw new RangeError("sendChunkSize must be a positive integer");
    }
    if (!(Number.isInteger(capacity) && capacity > 0)) {
      throw new RangeError("sendChunkCount must be a positive integer");
    }
    this.chunkSize = chunkSize;
    this.capacity = capacity;
  }

  chunksFor(bytes: number): number {
    return Math.ceil(bytes / this.chunkSize);
  }

  /** Moves a connection from `oldChunks` to `newChunks`; false (and no change) when full. */
  resize(oldChunks: number, newChunks: number): boolean {
    const used = this.used - oldChunks + newChunks;
    if (used > this.capacity) return false;
    assert(used >= 0, "send chunks released once");
    this.used = used;
    if (used > this.highWater) this.highWater = used;
    return true;
  }

  stats(): PoolStats {
    return {
      slotSize: this.chunkSize,
      capacity: this.capacity,
      inUse: this.used,
      highWater: this.highWater,
      regionKind: "plain",
      node: -1,
      bytes: this.chunkSize * this.capacity,
    };
  }
}
