/**
 * A single-producer/single-consumer ring of variable-length records in a SharedArrayBuffer:
 * one per ordered pair of threads (worker i → worker j). No locks: the producer alone moves
 * `tail`, the consumer alone moves `head`, each published with Atomics.store, so a record's
 * bytes (plain writes) are visible once the consumer has loaded a tail past them.
 *
 * Layout: a 256-byte control block (head, tail and the producer's "waiting for room" word,
 * each on its own cache line so the two threads do not share one), then `capacity` data
 * bytes (a power of two). Positions are byte counters mod 2^32. A record is a u32 length,
 * then that many bytes, padded to 4: a length word never straddles the end, a body may (the
 * consumer then copies it into a scratch array so the caller always sees contiguous bytes).
 *
 * Parking is not done here (see wake-words.ts): the ring only answers "empty?", "room?".
 */

/** Int32 indices in the control block. */
const HEAD = 0;
const TAIL = 16;
/** 1: the producer has records waiting for room; the consumer, freeing some, wakes it. */
const PRODUCER_WAITING = 32;
const CAPACITY = 48;
const CONTROL_BYTES = 256;
const LENGTH_BYTES = 4;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 1 << 30;

const padded = (length: number) => (length + 3) & ~3;

export class SpscRing {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  /** The longest record body that can ever fit (the whole ring but its length word). */
  readonly maxRecord: number;
  private readonly control: Int32Array;
  private readonly data: Uint8Array;
  private readonly words: Int32Array;
  private readonly mask: number;
  // Producer side (only the producing thread uses these).
  private tail: number;
  private headSeen: number;
  private cursor = 0;
  private writing = -1;
  // Consumer side.
  private head: number;
  private tailSeen: number;
  private taken = -1;
  private scratch = new Uint8Array(0);
  /** The record next() returned: `view[viewStart, viewStart + length)`, valid until release(). */
  view: Uint8Array;
  viewStart = 0;

  /** A fresh, empty ring's memory: `capacity` data bytes (a power of two, 64 B..1 GiB). */
  static create(capacity: number): SharedArrayBuffer {
    if (!Number.isInteger(capacity) || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY ||
      (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`a ring's capacity is a power of two, ${MIN_CAPACITY}..${MAX_CAPACITY}`);
    }
    const buffer = new SharedArrayBuffer(CONTROL_BYTES + capacity);
    new Int32Array(buffer, 0, CONTROL_BYTES / 4)[CAPACITY] = capacity;
    return buffer;
  }

  /** One side of the ring in `buffer` (each thread makes its own). */
  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
    this.capacity = Atomics.load(this.control, CAPACITY);
    if (buffer.byteLength !== CONTROL_BYTES + this.capacity) throw new RangeError("not a ring's memory");
    this.mask = this.capacity - 1;
    this.maxRecord = this.capacity - LENGTH_BYTES;
    this.data = new Uint8Array(buffer, CONTROL_BYTES, this.capacity);
    this.words = new Int32Array(buffer, CONTROL_BYTES, this.capacity / 4);
    this.view = this.data;
    this.head = this.headSeen = Atomics.load(this.control, HEAD);
    this.tail = this.tailSeen = Atomics.load(this.control, TAIL);
  }

  // ------------------------------------------------------------ producer

  /** Whether a record of `length` bytes fits now (refreshing the consumer's position). */
  hasRoom(length: number): boolean {
    const need = LENGTH_BYTES + padded(length);
    if (this.capacity - ((this.tail - this.headSeen) >>> 0) >= need) return true;
    this.headSeen = Atomics.load(this.control, HEAD);
    return this.capacity - ((this.tail - this.headSeen) >>> 0) >= need;
  }

  /**
   * Start a record of `length` bytes if it fits now: then put exactly `length` bytes and
   * commit(). False when the ring is too full; a RangeError when it could never fit.
   */
  tryBegin(length: number): boolean {
    if (length > this.maxRecord || length < 0) {
      throw new RangeError(`a record of ${length} bytes is longer than this ring holds (${this.maxRecord})`);
    }
    if (!this.hasRoom(length)) return false;
    this.words[(this.tail & this.mask) >> 2] = length;
    this.cursor = (this.tail + LENGTH_BYTES) | 0;
    this.writing = length;
    return true;
  }

  /** A u32 at a 4-aligned point of the record (so it never straddles the end). */
  putU32(value: number): void {
    this.words[(this.cursor & this.mask) >> 2] = value;
    this.cursor = (this.cursor + 4) | 0;
  }

  putBytes(source: Uint8Array, start: number, end: number): void {
    const length = end - start;
    const at = this.cursor & this.mask;
    const data = this.data;
    if (length <= 16 && at + length <= this.capacity) {
      for (let i = 0; i < length; i++) data[at + i] = source[start + i];
    } else {
      const first = Math.min(length, this.capacity - at);
      data.set(source.subarray(start, start + first), at);
      if (first < length) data.set(source.subarray(start + first, end), 0);
    }
    this.cursor = (this.cursor + length) | 0;
  }

  /** Publish the record begun with tryBegin() to the consumer. */
  commit(): void {
    if (((this.cursor - this.tail) | 0) !== LENGTH_BYTES + this.writing) {
      throw new Error("SpscRing: a record's bytes do not match its length");
    }
    this.tail = (this.tail + LENGTH_BYTES + padded(this.writing)) | 0;
    this.writing = -1;
    Atomics.store(this.control, TAIL, this.tail);
  }

  /** The whole record `source[start, end)` if it fits now. */
  tryWrite(source: Uint8Array, start = 0, end = source.length): boolean {
    if (!this.tryBegin(end - start)) return false;
    this.putBytes(source, start, end);
    this.commit();
    return true;
  }

  /**
   * The producer will wait for room: the consumer's next release sees this and says so
   * (takeProducerWaiting, once). Mark it each time after saying you sleep and before the
   * last hasRoom() check: a release that freed too little may have taken an earlier mark.
   */
  markProducerWaiting(): void {
    Atomics.store(this.control, PRODUCER_WAITING, 1);
  }

  // ------------------------------------------------------------ consumer

  /** Whether nothing is there to read (consumer side). */
  isEmpty(): boolean {
    if (this.head !== this.tailSeen) return false;
    this.tailSeen = Atomics.load(this.control, TAIL);
    return this.head === this.tailSeen;
  }

  /** The next record's length (see `view`, `viewStart`), or -1 when the ring is empty. */
  next(): number {
    if (this.isEmpty()) return -1;
    const at = this.head & this.mask;
    const length = this.words[at >> 2];
    const body = (at + LENGTH_BYTES) & this.mask;
    if (body + length <= this.capacity) {
      this.view = this.data;
      this.viewStart = body;
    } else {
      // It wraps: one contiguous copy, so readers never deal with two pieces.
      if (this.scratch.length < length) this.scratch = new Uint8Array(padded(Math.max(length, 256)));
      const first = this.capacity - body;
      this.scratch.set(this.data.subarray(body, this.capacity), 0);
      this.scratch.set(this.data.subarray(0, length - first), first);
      this.view = this.scratch;
      this.viewStart = 0;
    }
    this.taken = length;
    return length;
  }

  /** Done with the record next() returned: its room goes back to the producer. */
  release(): void {
    if (this.taken < 0) throw new Error("SpscRing: release() without next()");
    this.head = (this.head + LENGTH_BYTES + padded(this.taken)) | 0;
    this.taken = -1;
    Atomics.store(this.control, HEAD, this.head);
  }

  /** After release(): true (once) when the producer waits for room and should be woken. */
  takeProducerWaiting(): boolean {
    return Atomics.load(this.control, PRODUCER_WAITING) === 1 &&
      Atomics.compareExchange(this.control, PRODUCER_WAITING, 1, 0) === 1;
  }

  /** Bytes in the ring now, records' length words and padding included. */
  get usedBytes(): number {
    return (Atomics.load(this.control, TAIL) - Atomics.load(this.control, HEAD)) >>> 0;
  }
}
