/**
 * The Bun backend's send memory: the cap TransportOptions set (sendChunkCount chunks of
 * sendChunkSize bytes, shared by every connection), kept as a count of chunks. A connection
 * with `n` bytes queued holds ceil(n / chunkSize) of them, as a chunk chain would; the bytes
 * themselves live in its BunByteQueues. This only decides when `send` answers -ENOBUFS, and
 * what stats().sendBuffers reports.
 */
import { assert } from "../api/errors.ts";
import type { PoolStats } from "../api/pool.ts";

export class BunSendMemory {
  private used = 0;
  private highWater = 0;

  constructor(readonly chunkSize: number, readonly capacity: number) {}

  chunksFor(bytes: number): number {
    return Math.ceil(bytes / this.chunkSize);
  }

  /** Whether a holder of `oldChunks` may grow to `newChunks` within the cap. */
  fits(oldChunks: number, newChunks: number): boolean {
    return this.used - oldChunks + newChunks <= this.capacity;
  }

  /** Moves a holder from `oldChunks` to `newChunks` (checked with `fits` when it grows). */
  resize(oldChunks: number, newChunks: number): void {
    const used = this.used - oldChunks + newChunks;
    assert(used >= 0, "send chunks released once");
    this.used = used;
    if (used > this.highWater) this.highWater = used;
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
