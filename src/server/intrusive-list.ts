/**
 * A doubly linked list of small integer ids (connection slots) threaded through typed
 * arrays: push, remove and move-to-tail are O(1) and allocate nothing. The server keeps its
 * connections in such lists ordered by last activity, so a timeout scan stops at the first
 * entry that is not yet due.
 */
import { grown } from "../pool/grown-array.ts";

export class IntrusiveList {
  private next: Int32Array;
  private prev: Int32Array;
  private member: Uint8Array;
  private first = -1;
  private last = -1;
  private count = 0;

  constructor(capacity: number) {
    this.next = new Int32Array(capacity).fill(-1);
    this.prev = new Int32Array(capacity).fill(-1);
    this.member = new Uint8Array(capacity);
  }

  /** Room for ids below `capacity` (more connection slots in use). */
  grow(capacity: number): void {
    this.next = grown(this.next, capacity, -1);
    this.prev = grown(this.prev, capacity, -1);
    this.member = grown(this.member, capacity);
  }

  get head(): number {
    return this.first;
  }

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.member[id] === 1;
  }

  after(id: number): number {
    return this.next[id];
  }

  pushTail(id: number): void {
    if (this.member[id] === 1) this.remove(id);
    this.member[id] = 1;
    this.prev[id] = this.last;
    this.next[id] = -1;
    if (this.last === -1) this.first = id;
    else this.next[this.last] = id;
    this.last = id;
    this.count++;
  }

  remove(id: number): void {
    if (this.member[id] === 0) return;
    const before = this.prev[id];
    const after = this.next[id];
    if (before === -1) this.first = after;
    else this.next[before] = after;
    if (after === -1) this.last = before;
    else this.prev[after] = before;
    this.member[id] = 0;
    this.prev[id] = -1;
    this.next[id] = -1;
    this.count--;
  }

  /** Mark `id` as the most recent (no-op when it already is). */
  touch(id: number): void {
    if (this.last !== id) this.pushTail(id);
  }
}
