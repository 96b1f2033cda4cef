/**
 * Outgoing bytes of the Bun backend: sends are copied into a connection's queues within the
 * transport's send memory, and a flush hands them to Bun's `socket.write`, which is
 * unbuffered and may take only part (the rest waits for Bun's `drain` event). Urgent bytes go
 * out whenever the ordinary queue is between two units; while they wait, the ordinary queue
 * is written only up to the end of the unit it is in, never past it.
 */
import { ENOBUFS, EPIPE } from "../api/errno.ts";
import type { PoolStats } from "../api/pool.ts";
import { BunBufferCache, type ByteSink } from "./bun-byte-queue.ts";
import type { BunConnection } from "./bun-connection.ts";
import { BunSendMemory } from "./bun-send-memory.ts";

/** Send buffers kept for reuse once their queue empties. */
const BUFFER_CACHE_BYTES = 4 * 1024 * 1024;

/** How a flush ended. */
export const Flushed = {
  /** Everything queued is with the kernel. */
  ALL_OUT: 0,
  /** The kernel took less than offered: wait for Bun's `drain`. */
  WAITING: 1,
  /** Bun says the socket is closed. */
  CLOSED: 2,
} as const;
export type Flushed = (typeof Flushed)[keyof typeof Flushed];

export class BunOutbound {
  /** Bytes handed to the kernel (stats().bytesOut). */
  bytesOut = 0;
  readonly cache = new BunBufferCache(BUFFER_CACHE_BYTES);
  private readonly memory: BunSendMemory;

  constructor(chunkSize: number, chunkCount: number) {
    this.memory = new BunSendMemory(chunkSize, chunkCount);
  }

  /**
   * Copies both ranges into `c`'s queue (or its urgent queue) as one unit: their length, or
   * -ENOBUFS with nothing queued when send memory cannot hold them.
   */
  enqueue(c: BunConnection, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number, urgent: boolean): number {
    const length = (firstEnd - firstStart) + (secondEnd - secondStart);
    if (length === 0) return 0;
    const chunks = this.memory.chunksFor(c.buffered + length);
    if (!this.memory.fits(c.sendChunks, chunks)) return -ENOBUFS;
    this.memory.resize(c.sendChunks, chunks);
    c.sendChunks = chunks;
    (urgent ? c.urgent : c.queue).pushPair(first, firstStart, firstEnd, second, secondStart,
      secondEnd);
    c.drainWanted = true;
    return length;
  }

  /**
   * A large send to a connection with nothing queued (the caller checked), inside a turn:
   * straight to the kernel,
   * what it does not take copied into the queue. All or nothing like `enqueue` (memory is
   * checked first): the length, -ENOBUFS with nothing written, or -EPIPE when Bun says the
   * socket is closed (the caller aborts the connection).
   */
  sendDirect(c: BunConnection, socket: ByteSink, data: Uint8Array, start: number,
    end: number): number {
    const length = end - start;
    const chunks = this.memory.chunksFor(length);
    if (!this.memory.fits(0, chunks)) return -ENOBUFS;
    const written = socket.write(data, start, length);
    c.drainWanted = true;
    if (written < 0) return -EPIPE;
    this.bytesOut += written;
    if (written < length) {
      c.queue.pushRest(data, start + written, end);
      this.syncMemory(c);
      c.awaitingDrain = true;
    }
    return length;
  }

  /** Writes as much of `c`'s queues to `socket` as the kernel takes now. */
  flush(c: BunConnection, socket: ByteSink): Flushed {
    for (;;) {
      const urgentNow = c.urgent.length > 0 && c.queue.atUnitBoundary();
      const source = urgentNow ? c.urgent : c.queue;
      const limit = urgentNow ? c.urgent.length
        : c.urgent.length > 0 ? c.queue.bytesToUnitEnd() : c.queue.length;
      if (limit === 0) return Flushed.ALL_OUT;
      const written = source.writeTo(socket, limit);
      if (written < 0) return Flushed.CLOSED;
      this.bytesOut += written;
      this.syncMemory(c);
      if (written < limit) return Flushed.WAITING;
    }
  }

  /** Drops everything `c` has queued. */
  drop(c: BunConnection): void {
    c.queue.clear();
    c.urgent.clear();
    this.syncMemory(c);
  }

  stats(): PoolStats {
    return this.memory.stats();
  }

  /** Send memory follows what `c` has queued. */
  private syncMemory(c: BunConnection): void {
    const chunks = this.memory.chunksFor(c.buffered);
    this.memory.resize(c.sendChunks, chunks);
    c.sendChunks = chunks;
  }
}
