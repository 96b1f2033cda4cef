/**
 * A FIFO byte stream made of segments, each tagged with the network turn from which it may be
 * read. The fake uses one per direction of a connection: the sender's queue (bytes `send` copied
 * and not yet "handed to the kernel") and the receiver's inbound pipe (bytes in flight or unread).
 * Segments are never copied while they move between queues; only `copyOut` copies bytes, into a
 * receive buffer.
 */
export class ByteQueue {
  private segments: Uint8Array[] = [];
  private readyTurns: number[] = [];
  /** Index of the first live segment: consumed segments are compacted away in bulk. */
  private head = 0;
  /** Bytes already consumed from the first live segment. */
  private headOffset = 0;
  private queued = 0;
  /** Index just past the last urgent segment still queued (pushUrgent keeps their order). */
  private urgentEnd = 0;

  /** Bytes in the queue, ready or not. */
  get length(): number {
    return this.queued;
  }

  /** The ready turn of the last segment, or -1 when empty: later segments never overtake it. */
  lastReadyTurn(): number {
    return this.head < this.segments.length ? this.readyTurns[this.segments.length - 1] : -1;
  }

  /** Whether the first byte may be read at `turn`. */
  headReady(turn: number): boolean {
    return this.head < this.segments.length && this.readyTurns[this.head] <= turn;
  }

  /** Appends `bytes` (the queue keeps the reference: pass a copy the caller will not touch). */
  push(bytes: Uint8Array, readyTurn: number): void {
    if (bytes.length === 0) return;
    this.segments.push(bytes);
    this.readyTurns.push(readyTurn);
    this.queued += bytes.length;
  }

  /**
   * Puts `bytes` ahead of every segment nothing was taken from yet, behind earlier
   * `pushUrgent`s: segments are whole sends, so it lands between two of them.
   */
  pushUrgent(bytes: Uint8Array, readyTurn: number): void {
    if (bytes.length === 0) return;
    let at = this.headOffset > 0 ? this.head + 1 : this.head;
    while (at < this.urgentEnd && at < this.segments.length) at++;
    this.segments.splice(at, 0, bytes);
    this.readyTurns.splice(at, 0, readyTurn);
    this.urgentEnd = at + 1;
    this.queued += bytes.length;
  }

  /** Bytes readable at `turn` without passing a segment that is not ready yet, at most `limit`. */
  readyLength(turn: number, limit: number): number {
    let total = 0;
    let offset = this.headOffset;
    for (let i = this.head; i < this.segments.length && total < limit; i++) {
      if (this.readyTurns[i] > turn) break;
      total += this.segments[i].length - offset;
      offset = 0;
    }
    return total < limit ? total : limit;
  }

  /** Copies `count` bytes into `target` at `targetOffset` and consumes them. */
  copyOut(target: Uint8Array, targetOffset: number, count: number): void {
    if (count > this.queued) throw new RangeError("ByteQueue.copyOut past the end");
    let written = 0;
    while (written < count) {
      const segment = this.segments[this.head];
      const take = Math.min(segment.length - this.headOffset, count - written);
      target.set(segment.subarray(this.headOffset, this.headOffset + take), targetOffset + written);
      written += take;
      this.consume(take);
    }
  }

  /** Moves `count` bytes to the end of `target` as views (no copy), readable from `readyTurn`. */
  moveTo(target: ByteQueue, count: number, readyTurn: number): void {
    if (count > this.queued) throw new RangeError("ByteQueue.moveTo past the end");
    let moved = 0;
    while (moved < count) {
      const segment = this.segments[this.head];
      const take = Math.min(segment.length - this.headOffset, count - moved);
      target.push(segment.subarray(this.headOffset, this.headOffset + take), readyTurn);
      moved += take;
      this.consume(take);
    }
  }

  /** Drops `count` bytes from the front. */
  discard(count: number): void {
    if (count > this.queued) throw new RangeError("ByteQueue.discard past the end");
    let dropped = 0;
    while (dropped < count) {
      const take = Math.min(this.segments[this.head].length - this.headOffset, count - dropped);
      dropped += take;
      this.consume(take);
    }
  }

  clear(): void {
    this.segments = [];
    this.readyTurns = [];
    this.head = 0;
    this.headOffset = 0;
    this.queued = 0;
    this.urgentEnd = 0;
  }

  private consume(count: number): void {
    this.queued -= count;
    this.headOffset += count;
    if (this.headOffset < this.segments[this.head].length) return;
    this.headOffset = 0;
    this.head++;
    if (this.head === this.segments.length) {
      this.segments.length = 0;
      this.readyTurns.length = 0;
      this.head = 0;
      this.urgentEnd = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.segments.length) {
      // Compact now and then so a long-lived queue does not keep consumed segments alive.
      this.segments.splice(0, this.head);
      this.readyTurns.splice(0, this.head);
      this.urgentEnd = Math.max(0, this.urgentEnd - this.head);
      this.head = 0;
    }
  }
}
