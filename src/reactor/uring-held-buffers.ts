/**
 * Receive buffers a paused connection has not been given yet, in arrival order: one chain
 * per connection, linked by buffer id through shared typed arrays (nothing allocated).
 */
import { grown } from "../pool/grown-array.ts";

export class HeldBuffers {
  private readonly next: Int32Array;
  private readonly lengths: Int32Array;
  private head: Int32Array;
  private tail: Int32Array;

  constructor(bufferCount: number, maxConnections: number) {
    this.next = new Int32Array(bufferCount).fill(-1);
    this.lengths = new Int32Array(bufferCount);
    this.head = new Int32Array(maxConnections).fill(-1);
    this.tail = new Int32Array(maxConnections).fill(-1);
  }

  /** Room for connections up to `maxConnections` (more slots in use). */
  grow(maxConnections: number): void {
    this.head = grown(this.head, maxConnections, -1);
    this.tail = grown(this.tail, maxConnections, -1);
  }

  has(conn: number): boolean {
    return this.head[conn] !== -1;
  }

  /** Keep buffer `bid` (holding `length` bytes) behind what `conn` already holds. */
  hold(conn: number, bid: number, length: number): void {
    this.lengths[bid] = length;
    this.next[bid] = -1;
    const tail = this.tail[conn];
    if (tail === -1) this.head[conn] = bid;
    else this.next[tail] = bid;
    this.tail[conn] = bid;
  }

  /** The oldest held buffer of `conn`, removed from the chain (its length: `lengthOf`). */
  take(conn: number): number {
    const bid = this.head[conn];
    this.head[conn] = this.next[bid];
    if (this.head[conn] === -1) this.tail[conn] = -1;
    return bid;
  }

  lengthOf(bid: number): number {
    return this.lengths[bid];
  }

  /** Hand every held buffer of `conn` to `giveBack` and forget them. */
  release(conn: number, giveBack: (bid: number) => void): void {
    for (let bid = this.head[conn]; bid !== -1; bid = this.next[bid]) giveBack(bid);
    this.head[conn] = -1;
    this.tail[conn] = -1;
  }
}
