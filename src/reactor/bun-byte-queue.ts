/**
 * The outgoing bytes of one connection on the Bun backend: a FIFO in one contiguous buffer
 * (so a flush is one `socket.write`, however many sends it holds), which remembers where each
 * send call ended (so an urgent send can wait for a boundary between two of them). Buffers
 * come from a BunBufferCache and go back to it whenever the queue empties: an idle connection
 * holds no send memory.
 */
import { assert } from "../api/errors.ts";

/** Smallest buffer a queue takes: most sends of a turn fit, few turns regrow it. */
const MIN_BUFFER = 16 * 1024;
/** Consumed unit ends are dropped from the front in bulk once this many piled up. */
const COMPACT_ENDS_AT = 1024;

const EMPTY = new Uint8Array(0);

/** Buffers of power-of-two sizes, kept for reuse up to a byte budget. */
export class BunBufferCache {
  private readonly free = new Map<number, Uint8Array[]>();
  private cachedBytes = 0;

  constructor(private readonly budgetBytes: number) {}

  /** A buffer of at least `size` bytes (a power of two, from MIN_BUFFER up). */
  take(size: number): Uint8Array {
    let capacity = MIN_BUFFER;
    while (capacity < size) capacity *= 2;
    const kept = this.free.get(capacity)?.pop();
    if (kept === undefined) return new Uint8Array(capacity);
    this.cachedBytes -= capacity;
    return kept;
  }

  give(buffer: Uint8Array): void {
    if (buffer.length === 0 || this.cachedBytes + buffer.length > this.budgetBytes) return;
    let list = this.free.get(buffer.length);
    if (list === undefined) this.free.set(buffer.length, (list = []));
    list.push(buffer);
    this.cachedBytes += buffer.length;
  }

  clear(): void {
    this.free.clear();
    this.cachedBytes = 0;
  }
}

/** Where a flush hands bytes to the kernel: Bun's `socket.write(data, offset, length)`. */
export interface ByteSink {
  write(data: Uint8Array, byteOffset: number, byteLength: number): number;
}

export class BunByteQueue {
  private bytes: Uint8Array = EMPTY;
  private head = 0;
  private tail = 0;
  /** Stream positions (bytes ever consumed) of the head, and where the head's unit began. */
  private consumed = 0;
  private unitStart = 0;
  /** Stream positions where each queued send call (a unit) ends, oldest first. */
  private ends: number[] = [];
  private endsHead = 0;

  constructor(private readonly cache: BunBufferCache) {}

  /** Bytes queued. */
  get length(): number {
    return this.tail - this.head;
  }

  /** True when nothing of the first queued unit was written yet (or the queue is empty). */
  atUnitBoundary(): boolean {
    return this.consumed === this.unitStart;
  }

  /** Bytes from the head to the end of the unit it is in. */
  bytesToUnitEnd(): number {
    return this.endsHead < this.ends.length ? this.ends[this.endsHead] - this.consumed : 0;
  }

  /** Copies `data[start, end)` in as one unit. */
  push(data: Uint8Array, start: number, end: number): void {
    this.pushPair(data, start, end, EMPTY, 0, 0);
  }

  /** Copies two ranges in as one unit (a frame header and its payload). */
  pushPair(first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): void {
    const firstLength = firstEnd - firstStart;
    const total = firstLength + (secondEnd - secondStart);
    if (total === 0) return;
    this.reserve(total);
    this.bytes.set(first.subarray(firstStart, firstEnd), this.tail);
    if (secondEnd > secondStart) {
      this.bytes.set(second.subarray(secondStart, secondEnd), this.tail + firstLength);
    }
    this.tail += total;
    this.ends.push(this.consumed + this.length);
  }

  /**
   * Copies in the rest of a send the kernel took the start of: the queue (empty) then begins
   * inside a unit, so urgent bytes wait for its end.
   */
  pushRest(data: Uint8Array, start: number, end: number): void {
    assert(this.length === 0, "pushRest on an empty queue");
    this.push(data, start, end);
    this.unitStart = -1; // no boundary at the head until this unit is out
  }

  /**
   * Hands up to `limit` bytes from the head to `sink`; returns what it took (consumed here),
   * or a negative number when the sink is closed (nothing consumed).
   */
  writeTo(sink: ByteSink, limit: number): number {
    const count = limit < this.length ? limit : this.length;
    const written = sink.write(this.bytes, this.head, count);
    if (written > 0) this.consume(written);
    return written;
  }

  /** Drops everything and gives the buffer back. */
  clear(): void {
    this.cache.give(this.bytes);
    this.bytes = EMPTY;
    this.head = this.tail = 0;
    this.consumed = this.unitStart = 0;
    this.ends.length = 0;
    this.endsHead = 0;
  }

  private consume(count: number): void {
    this.head += count;
    this.consumed += count;
    if (this.head === this.tail) {
      this.clear();
      return;
    }
    const ends = this.ends;
    while (this.endsHead < ends.length && ends[this.endsHead] <= this.consumed) {
      this.unitStart = ends[this.endsHead++];
    }
    if (this.endsHead >= COMPACT_ENDS_AT && this.endsHead * 2 >= ends.length) {
      ends.splice(0, this.endsHead);
      this.endsHead = 0;
    }
  }

  /** Room for `count` more bytes at the tail: slide the live bytes down, or grow. */
  private reserve(count: number): void {
    if (this.tail + count <= this.bytes.length) return;
    const live = this.length;
    if (live + count <= this.bytes.length) {
      this.bytes.copyWithin(0, this.head, this.tail);
    } else {
      const bigger = this.cache.take(live + count);
      bigger.set(this.bytes.subarray(this.head, this.tail));
      this.cache.give(this.bytes);
      this.bytes = bigger;
    }
    this.head = 0;
    this.tail = live;
  }
}
