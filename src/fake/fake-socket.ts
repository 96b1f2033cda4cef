/**
 * One end of a fake connection: its queues, flags and peer. Sockets are plain records; the turn
 * engine in fake-network.ts moves bytes between them and calls the handlers.
 */
import type { TransportHandler } from "../api/transport.ts";
import { ENOBUFS } from "../api/errno.ts";
import { ByteQueue } from "./byte-queue.ts";
import type { FakeSendMemory } from "./fake-memory.ts";
import type { FakeRecvBuffers } from "./fake-memory.ts";

export const SocketState = {
  /** `connect` was called; the next turn accepts or refuses it. */
  Connecting: 0,
  Open: 1,
  /** Closed gracefully by the user (or after onEnd): flushing, then FIN, then onClose(0). */
  Closing: 2,
  /** onClose was delivered; the slot may belong to another socket now. */
  Closed: 3,
} as const;
export type SocketState = (typeof SocketState)[keyof typeof SocketState];

/** A listener on the fake network: who answers connects to `port`. */
export interface FakeListenerEntry {
  readonly transport: FakeEndpoint;
  readonly listenerId: number;
  readonly handler: TransportHandler;
  readonly port: number;
  readonly reusePort: boolean;
}

/**
 * What the network's turn engine needs of a transport (FakeTransport is the one): the host
 * interface that keeps the fake's files free of import circles.
 */
export interface FakeEndpoint {
  /** What peers see as this end's address (without the port). */
  readonly address: string;
  readonly recvBuffers: FakeRecvBuffers;
  /** Overwrite each receive buffer after onData returns (tests of kept views). */
  readonly poisonAfterCallback: boolean;
  /** A server-side socket for a connect to `entry`, or null when maxConnections is reached. */
  acceptSocket(entry: FakeListenerEntry, remoteHost: string, remotePort: number): FakeSocket | null;
  /** After onClose returned: the id is free again. */
  releaseSocket(socket: FakeSocket): void;
  /** A handler of `socket` threw: abort it, report after the turn (the one rule). */
  handlerThrew(socket: FakeSocket, error: unknown): void;
  noteConnected(): void;
  noteBytesIn(count: number): void;
  noteBytesOut(count: number): void;
  noteRecvStall(): void;
  noteActivity(): void;
  /** End of every network turn: count parks, finish a dispose, report handler errors. */
  afterTurn(quiet: boolean): void;
}

export class FakeSocket {
  readonly transport: FakeEndpoint;
  readonly id: number;
  readonly handler: TransportHandler;
  /** Listener that accepted it, or -1 for an outgoing connection. */
  readonly listener: number;
  readonly localPort: number;
  remotePort: number;
  /** The peer's IPv4 address, as remoteAddress reports it. */
  readonly remoteHost: string;
  state: SocketState = SocketState.Connecting;
  peer: FakeSocket | null = null;
  paused = false;
  /** Set by `send`, cleared when onDrain fires: drain is reported once per burst of sends. */
  drainWanted = false;
  /** Bytes queued by `send` and not yet handed to the (fake) kernel. */
  readonly sendQueue = new ByteQueue();
  /** Bytes the peer wrote that this end has not delivered yet (in flight or unread). */
  readonly inbound = new ByteQueue();
  /** Turn from which the peer's FIN is visible, once all inbound bytes are read; -1: none. */
  eofReadyTurn = -1;
  /** Non-null once the connection is over: onClose(id, closeReason) is due this or next turn. */
  closeReason: number | null = null;
  private readonly sendMemory: FakeSendMemory;
  private sendChunks = 0;

  constructor(
    transport: FakeEndpoint,
    sendMemory: FakeSendMemory,
    id: number,
    handler: TransportHandler,
    listener: number,
    localPort: number,
    remotePort: number,
    remoteHost: string,
  ) {
    this.transport = transport;
    this.sendMemory = sendMemory;
    this.id = id;
    this.handler = handler;
    this.listener = listener;
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.remoteHost = remoteHost;
  }

  /** Still able to take part in traffic: onClose is neither due nor delivered. */
  get alive(): boolean {
    return this.closeReason === null && this.state !== SocketState.Closed;
  }

  /**
   * Copies `data[start, end)` into the send queue: behind everything, or with `urgent` ahead
   * of every send nothing was written from yet (Transport.sendUrgent). Bytes queued, or
   * -ENOBUFS.
   */
  queueSend(data: Uint8Array, start: number, end: number, urgent = false): number {
    const length = end - start;
    const chunks = this.sendMemory.chunksFor(this.sendQueue.length + length);
    if (!this.sendMemory.resize(this.sendChunks, chunks)) return -ENOBUFS;
    this.sendChunks = chunks;
    // A copy (Buffer#slice would be a view): the contract says send copies the bytes.
    const copy = Uint8Array.prototype.slice.call(data, start, end);
    if (urgent) this.sendQueue.pushUrgent(copy, 0);
    else this.sendQueue.push(copy, 0);
    this.drainWanted = true;
    return length;
  }

  /** Call after bytes left the send queue, so send memory is given back. */
  sendQueueShrank(): void {
    const chunks = this.sendMemory.chunksFor(this.sendQueue.length);
    this.sendMemory.resize(this.sendChunks, chunks);
    this.sendChunks = chunks;
  }

  dropSendQueue(): void {
    this.sendQueue.clear();
    this.sendQueueShrank();
  }
}
