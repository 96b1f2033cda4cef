/**
 * The per-connection state every backend keeps, as a struct of arrays indexed by connection
 * id (a slot): descriptor, lifecycle state, backend flags, generation, operations in flight,
 * listener, close reason, peer address and handler. It hands out slots (lowest first), grows
 * them by doubling up to maxConnections, and owns the one rule of the end of a connection:
 * a connection in teardown is settled when no operation of it is in flight any more; then
 * onClose runs and only after it returns may the slot be handed out again.
 *
 * Backends keep their own per-slot arrays beside these and grow them in `onGrow`.
 */
import { assert } from "../api/errors.ts";
import type { TransportHandler } from "../api/transport.ts";
import { grown, nextCapacity } from "../pool/grown-array.ts";
import type { HandlerCalls } from "./handler-calls.ts";
import { formatEndpoint } from "./sockets.ts";

/** Where a connection is in its life. */
export const ConnState = {
  FREE: 0,
  /** An outgoing connection not yet established. */
  CONNECTING: 1,
  OPEN: 2,
  /** close(Graceful) asked: waiting for the send queue to drain. */
  CLOSING: 3,
  /** Being torn down: waiting for every operation in flight to report. */
  TEARDOWN: 4,
} as const;
export type ConnState = (typeof ConnState)[keyof typeof ConnState];

export class ConnectionTable {
  fds: Int32Array;
  states: Uint8Array;
  /** Bits of the backend's own (io_uring: receive armed, paused, dirty...). */
  flags: Uint8Array;
  /** Bumped when a slot is freed: completions of an earlier connection are told apart. */
  generations: Uint32Array;
  /** Operations in flight (a backend's count; teardown settles when it reaches 0). */
  pendingOps: Uint8Array;
  listenerOf: Int32Array;
  closeReasons: Int32Array;
  /** The peer as an endpoint number (sockets.ts), kept from open until onClose returns. */
  peers: Float64Array;
  handlers: (TransportHandler | undefined)[];
  /** Slots the arrays hold now (grows up to `max`). */
  capacity: number;
  /** Connections open (not FREE). */
  live = 0;
  private freeSlots: Int32Array;
  private freeCount: number;
  /** The connection whose onClose runs now: its slot is free, its address still readable. */
  private closingConn = -1;

  constructor(
    initialSlots: number,
    readonly max: number,
    private readonly generationMask: number,
    private readonly onGrow: (capacity: number) => void,
  ) {
    this.capacity = initialSlots;
    this.fds = new Int32Array(initialSlots).fill(-1);
    this.states = new Uint8Array(initialSlots);
    this.flags = new Uint8Array(initialSlots);
    this.generations = new Uint32Array(initialSlots);
    this.pendingOps = new Uint8Array(initialSlots);
    this.listenerOf = new Int32Array(initialSlots).fill(-1);
    this.closeReasons = new Int32Array(initialSlots);
    this.peers = new Float64Array(initialSlots).fill(-1);
    this.handlers = new Array<TransportHandler | undefined>(initialSlots).fill(undefined);
    this.freeSlots = new Int32Array(initialSlots);
    for (let i = 0; i < initialSlots; i++) this.freeSlots[i] = initialSlots - 1 - i;
    this.freeCount = initialSlots;
  }

  /** A free slot (lowest first), growing the arrays when all are taken; -1 at `max`. */
  allocate(): number {
    if (this.freeCount === 0) {
      if (this.capacity === this.max) return -1;
      this.grow();
    }
    return this.freeSlots[--this.freeCount];
  }

  /** A slot from allocate() that was never opened (its set-up failed). */
  unallocate(conn: number): void {
    assert(this.states[conn] === ConnState.FREE, "unallocate of an open slot");
    this.freeSlots[this.freeCount++] = conn;
  }

  open(conn: number, fd: number, listener: number, handler: TransportHandler, state: ConnState,
    peer: number): void {
    assert(this.states[conn] === ConnState.FREE, "slot reused while in use");
    assert(state === ConnState.OPEN || state === ConnState.CONNECTING, "opened as open or connecting");
    this.fds[conn] = fd;
    this.states[conn] = state;
    this.flags[conn] = 0;
    this.pendingOps[conn] = 0;
    this.listenerOf[conn] = listener;
    this.closeReasons[conn] = 0;
    this.peers[conn] = peer;
    this.handlers[conn] = handler;
    this.live++;
  }

  /** True when `generation` is the current one of a slot in use (else: a stale completion). */
  isCurrent(conn: number, generation: number): boolean {
    return this.states[conn] !== ConnState.FREE && generation === this.generations[conn];
  }

  /**
   * Enter teardown with `reason` (the first reason given wins). False when already there:
   * a teardown is started once.
   */
  startTeardown(conn: number, reason: number): boolean {
    const state = this.states[conn];
    assert(state !== ConnState.FREE, "teardown of a free slot");
    if (state === ConnState.TEARDOWN) return false;
    if (this.closeReasons[conn] === 0) this.closeReasons[conn] = reason;
    this.states[conn] = ConnState.TEARDOWN;
    return true;
  }

  /** In teardown with nothing in flight any more: the connection may be finished. */
  settled(conn: number): boolean {
    return this.states[conn] === ConnState.TEARDOWN && this.pendingOps[conn] === 0;
  }

  /**
   * The end of a connection: the slot is released, onClose runs (through `calls`, so a throw
   * is reported by the rule), and only then is the id free for another connection (a
   * connect() inside onClose takes another one).
   */
  finish(conn: number, calls: HandlerCalls): void {
    assert(this.settled(conn), "finish of a connection that is not settled");
    const handler = this.handlers[conn];
    const reason = this.closeReasons[conn];
    this.states[conn] = ConnState.FREE;
    this.flags[conn] = 0;
    this.fds[conn] = -1;
    this.handlers[conn] = undefined;
    this.generations[conn] = (this.generations[conn] + 1) & this.generationMask;
    this.live--;
    if (handler !== undefined) {
      this.closingConn = conn;
      calls.closed(handler, conn, reason);
      this.closingConn = -1;
    }
    this.peers[conn] = -1;
    this.freeSlots[this.freeCount++] = conn;
  }

  /** "a.b.c.d:port" of the peer from open through onClose; "" otherwise. */
  remoteAddress(conn: number): string {
    if (conn < 0 || conn >= this.capacity) return "";
    if (this.states[conn] === ConnState.FREE && conn !== this.closingConn) return "";
    return formatEndpoint(this.peers[conn]);
  }

  /** Every slot is taken: double the state (up to max); the backend grows its own arrays. */
  private grow(): void {
    const old = this.capacity;
    const slots = nextCapacity(old, this.max);
    this.fds = grown(this.fds, slots, -1);
    this.states = grown(this.states, slots);
    this.flags = grown(this.flags, slots);
    this.generations = grown(this.generations, slots);
    this.pendingOps = grown(this.pendingOps, slots);
    this.listenerOf = grown(this.listenerOf, slots, -1);
    this.closeReasons = grown(this.closeReasons, slots);
    this.peers = grown(this.peers, slots, -1);
    for (let conn = old; conn < slots; conn++) this.handlers.push(undefined);
    // Only called with no free slot: the new ids, lowest on top.
    this.freeSlots = new Int32Array(slots);
    for (let i = 0; i < slots - old; i++) this.freeSlots[i] = slots - 1 - i;
    this.freeCount = slots - old;
    this.capacity = slots;
    this.onGrow(slots);
  }
}
