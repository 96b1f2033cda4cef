/**
 * One connection of the Bun backend: where it is in its life, its Bun socket, its two send
 * queues (ordinary and urgent), and what was received but not yet delivered. The transport
 * owns the rules; this is the state they work on. Objects are never reused, so a Bun socket
 * whose connection is gone can always tell (its `data` is null or no longer live).
 */
import type { Socket } from "bun";
import type { TransportHandler } from "../api/transport.ts";
import { BunByteQueue, type BunBufferCache } from "./bun-byte-queue.ts";

export const BunConnState = {
  /** An outgoing connection before Bun's `open`. */
  CONNECTING: 1,
  OPEN: 2,
  /** close(Graceful) asked (or the peer's FIN handled): flushing, then FIN. */
  CLOSING: 3,
  /** The socket is gone; onClose is due in this turn. */
  GONE: 4,
  /** onClose returned: the id may belong to another connection now. */
  FREE: 5,
} as const;
export type BunConnState = (typeof BunConnState)[keyof typeof BunConnState];

/** A Bun socket of this backend: its `data` is the connection, null once detached. */
export type BunSocket = Socket<BunConnection | null>;

export class BunConnection {
  state: BunConnState;
  socket: BunSocket | null = null;
  /** "host:port" of the peer, kept from onOpen through onClose. */
  remote: string;
  paused = false;
  /** Something was sent since the queues were last empty: onDrain is due when they are. */
  drainWanted = false;
  /** A write came back short: nothing more is written until Bun's `drain` event. */
  awaitingDrain = false;
  /** In the transport's list of connections to flush. */
  dirty = false;
  /** In the transport's list of connections with undelivered events. */
  inboxed = false;
  /** onOpen is still due (Bun opened it while handlers had to wait). */
  openPending = false;
  /** Received chunks not delivered yet (paused, or arrived while handlers had to wait). */
  held: Uint8Array[] | null = null;
  /** The peer's FIN arrived behind `held` or while paused: onEnd follows them. */
  endPending = false;
  /** What onClose will report; the first cause to end the connection sets it. */
  closeReason: number | null = null;
  /** Send-memory chunks the queues account for. */
  sendChunks = 0;
  readonly queue: BunByteQueue;
  /** sendUrgent's bytes: written as soon as `queue` is between two units. */
  readonly urgent: BunByteQueue;

  constructor(
    readonly id: number,
    readonly handler: TransportHandler,
    /** The listener that accepted it, -1 for an outgoing connection. */
    readonly listener: number,
    state: BunConnState,
    remote: string,
    cache: BunBufferCache,
  ) {
    this.state = state;
    this.remote = remote;
    this.queue = new BunByteQueue(cache);
    this.urgent = new BunByteQueue(cache);
  }

  /** Bytes queued and not yet handed to the kernel. */
  get buffered(): number {
    return this.queue.length + this.urgent.length;
  }

  /** Still carrying traffic: onClose is neither due nor delivered. */
  get live(): boolean {
    return this.state < BunConnState.GONE;
  }

  /** Attaches the Bun socket that carries this connection. */
  attach(socket: BunSocket): void {
    this.socket = socket;
    socket.data = this;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
  }

  /** Detaches the Bun socket (its later events are ignored) and returns it. */
  detach(): BunSocket | null {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) socket.data = null;
    return socket;
  }
}
