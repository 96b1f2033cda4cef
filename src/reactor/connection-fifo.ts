/**
 * A first-in first-out queue of connection ids in a growable ring of Int32s: the connections
 * waiting for receive buffers are served in the order they ran out, so none waits behind
 * later arrivals for ever (a stack served the newest first). A connection that closed while
 * queued leaves a stale entry; the owner skips those when it takes them (its flag is gone),
 * so an id may be in the queue twice and the ring grows when full instead of dropping one.
 */
export class ConnectionFifo {
  private ids: Int32Array;
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 64) {
    this.ids = new Int32Array(Math.max(1, initialCapacity));
  }

  get size(): number {
    return this.count;
  }

  push(conn: number): void {
    if (this.count === this.ids.length) this.grow();
    this.ids[(this.head + this.count) % this.ids.length] = conn;
    this.count++;
  }

  /** The oldest id; call only when size > 0. */
  shift(): number {
    const conn = this.ids[this.head];
    this.head = (this.head + 1) % this.ids.length;
    this.count--;
    return conn;
  }

  private grow(): void {
    const bigger = new Int32Array(this.ids.length * 2);
    for (let i = 0; i < this.count; i++) bigger[i] = this.ids[(this.head + i) % this.ids.length];
    this.ids = bigger;
    this.head = 0;
  }
}
