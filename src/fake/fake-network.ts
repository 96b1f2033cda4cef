/**
 * A loopback "internet" in memory shared by several FakeTransports, so a fake server and a fake
 * client talk through `listen`/`connect` as real ones do. Work completes only in turns, like a
 * completion queue: transport calls (send, close, connect...) only queue work, and handlers run
 * inside `step()`, never re-entrantly inside those calls.
 *
 * One turn, in order:
 *  1. connects queued before the turn are accepted (onOpen on both ends) or refused;
 *  2. writes: each connection hands queued bytes to its peer's inbound pipe (one write per
 *     connection per turn, PRNG order), onDrain when its queue empties, FIN after a graceful
 *     close has flushed;
 *  3. deliveries: chunks of inbound bytes go to onData through fixed receive buffers, picked
 *     at random among ready connections (bytes of one connection stay in order), then onEnd;
 *  4. closes: onClose for every connection whose end was decided before or during the turn.
 * A handler that throws aborts its own connection at once (the peer gets ECONNRESET, everyone
 * else carries on); its transport reports the error when the turn is over.
 *
 * Every random choice (interleaving, chunk sizes, delays, injected faults) comes from one seeded
 * PRNG, so with `autoRun: false` the same seed and the same calls give the same events.
 */
import { ECONNREFUSED, ECONNRESET } from "../api/errno.ts";
import { ErrorCode, UsageError } from "../api/errors.ts";
import { FakePortTable } from "./fake-ports.ts";
import { FakeSocket, SocketState, type FakeEndpoint } from "./fake-socket.ts";
import { Prng } from "./prng.ts";

/** Written over a receive buffer after onData returns, so a kept view reads as 0xDD garbage. */
export const POISON_BYTE = 0xdd;

export interface FakeNetworkOptions {
  /** PRNG seed; default 1. Print it when a test fails. */
  seed?: number;
  /** Schedule turns with setImmediate while work is pending; default true. */
  autoRun?: boolean;
  /** Smallest random delivery chunk when `maxChunk` is set; default 1. */
  minChunk?: number;
  /** Largest delivery chunk: set it to split streams at random; default: a whole recv buffer. */
  maxChunk?: number;
  /** Chance that one kernel write takes only part of what is queued; default 0. */
  partialSendRatio?: number;
  /** Chance per write that the connection is reset (both ends: onClose(-ECONNRESET)); 0. */
  resetRatio?: number;
  /** Written bytes become readable 0..delayTurnsMax turns later; default 0. */
  delayTurnsMax?: number;
  /** Bytes in flight or unread per direction before writes wait (the socket buffers); 256 KiB. */
  pipeCapacity?: number;
  /** Most onData calls in one turn (a completion batch); default 1024. */
  deliveriesPerTurnMax?: number;
}

/** How often each injected fault actually happened: tests assert the fault was exercised. */
export interface FaultCounts {
  partialSends: number;
  resets: number;
  delayedWrites: number;
  splitReads: number;
  refusedOverLimit: number;
}

/** Scheduled turns run in batches, then yield so timers and awaiting tests get a go. */
const TURNS_PER_SCHEDULED_RUN = 32;

export class FakeNetwork {
  readonly seed: number;
  readonly autoRun: boolean;
  readonly prng: Prng;
  readonly ports = new FakePortTable();
  readonly faults: FaultCounts = {
    partialSends: 0, resets: 0, delayedWrites: 0, splitReads: 0, refusedOverLimit: 0,
  };
  private readonly minChunk: number;
  private readonly maxChunk: number;
  private readonly partialSendRatio: number;
  private readonly resetRatio: number;
  private readonly delayTurnsMax: number;
  private readonly pipeCapacity: number;
  private readonly deliveriesPerTurnMax: number;
  private turnNumber = 0;
  private inTurn = false;
  private scheduled = false;
  /** Sockets whose onClose has not run, in creation order (Set keeps insertion order). */
  private readonly live = new Set<FakeSocket>();
  private connecting: FakeSocket[] = [];
  private readonly transports = new Set<FakeEndpoint>();
  private readonly runScheduledTurns: () => void;

  constructor(options: FakeNetworkOptions = {}) {
    this.seed = options.seed ?? 1;
    this.autoRun = options.autoRun ?? true;
    this.prng = new Prng(this.seed);
    this.minChunk = options.minChunk ?? 1;
    this.maxChunk = options.maxChunk ?? 0;
    this.partialSendRatio = options.partialSendRatio ?? 0;
    this.resetRatio = options.resetRatio ?? 0;
    this.delayTurnsMax = options.delayTurnsMax ?? 0;
    this.pipeCapacity = options.pipeCapacity ?? 256 * 1024;
    this.deliveriesPerTurnMax = options.deliveriesPerTurnMax ?? 1024;
    if (!(this.minChunk >= 1 && (this.maxChunk === 0 || this.maxChunk >= this.minChunk))) {
      throw new RangeError("FakeNetwork needs 1 <= minChunk <= maxChunk");
    }
    if (!(this.pipeCapacity >= 1 && this.deliveriesPerTurnMax >= 1 && this.delayTurnsMax >= 0)) {
      throw new RangeError("FakeNetwork needs pipeCapacity >= 1, deliveriesPerTurnMax >= 1");
    }
    // Bound once: scheduling a turn allocates no closure.
    this.runScheduledTurns = () => {
      this.scheduled = false;
      for (let i = 0; i < TURNS_PER_SCHEDULED_RUN && this.hasPendingWork(); i++) this.step();
    };
  }

  /** Turns run so far. */
  get turn(): number {
    return this.turnNumber;
  }

  /** Runs one turn (see the file comment). Not callable from inside a handler. */
  step(): void {
    if (this.inTurn) {
      throw new UsageError(ErrorCode.REENTRANT_STEP,
        "FakeNetwork.step called from inside a handler");
    }
    this.inTurn = true;
    this.turnNumber++;
    try {
      this.connectPhase();
      // Sockets created by handlers during this turn start taking part next turn.
      const sockets = Array.from(this.live);
      this.writePhase(sockets);
      this.deliverPhase(sockets);
      this.closePhase(sockets);
    } finally {
      this.inTurn = false;
    }
    const quiet = !this.hasPendingWork();
    for (const transport of Array.from(this.transports)) transport.afterTurn(quiet);
    if (!quiet) this.wake();
  }

  /**
   * Runs turns until no work can make progress; returns the turns run. Throws when `maxTurns`
   * is reached: endless traffic there is a livelock bug (or a test that never stops talking).
   */
  runUntilIdle(maxTurns = 100_000): number {
    for (let turns = 0; turns < maxTurns; turns++) {
      if (!this.hasPendingWork()) return turns;
      this.step();
    }
    if (!this.hasPendingWork()) return maxTurns;
    throw new Error(
      `FakeNetwork.runUntilIdle: still busy after ${maxTurns} turns (livelock?) seed=${this.seed}`,
    );
  }

  /**
   * Whether a turn would make progress. Work that waits on something outside the network
   * (a paused connection, receive buffers held by a test, a full pipe) does not count.
   */
  hasPendingWork(): boolean {
    if (this.connecting.length > 0) return true;
    for (const socket of this.live) {
      if (socket.closeReason !== null) return true;
      if (socket.state !== SocketState.Open && socket.state !== SocketState.Closing) continue;
      const closing = socket.state === SocketState.Closing;
      if (socket.sendQueue.length > 0 ? this.canWrite(socket) : closing) return true;
      if (closing || socket.paused) continue;
      // Delayed bytes count as work (turns bring them closer); bytes without a buffer do not.
      const canReceive = socket.transport.recvBuffers.free > 0;
      if (socket.inbound.length > 0 ? canReceive : socket.eofReadyTurn >= 0) return true;
    }
    return false;
  }

  // ---- used by FakeTransport --------------------------------------------------------------

  attach(transport: FakeEndpoint): void {
    this.transports.add(transport);
  }

  detach(transport: FakeEndpoint): void {
    this.transports.delete(transport);
  }

  addSocket(socket: FakeSocket): void {
    this.live.add(socket);
  }

  queueConnect(socket: FakeSocket): void {
    this.connecting.push(socket);
    this.wake();
  }

  /** Called whenever work was queued: with autoRun, makes sure a turn is coming. */
  wake(): void {
    if (!this.autoRun || this.scheduled || this.inTurn) return;
    this.scheduled = true;
    setImmediate(this.runScheduledTurns);
  }

  /** Ends the peer of `socket` with ECONNRESET (abort, dispose, injected reset). */
  resetPeer(socket: FakeSocket): void {
    const peer = socket.peer;
    if (peer === null || !peer.alive) return;
    peer.closeReason = -ECONNRESET;
    peer.dropSendQueue();
    peer.inbound.clear();
  }

  // ---- phases --------------------------------------------------------------------------------

  private connectPhase(): void {
    if (this.connecting.length === 0) return;
    const batch = this.connecting;
    this.connecting = [];
    for (const client of batch) {
      if (client.state !== SocketState.Connecting || client.closeReason !== null) continue;
      const listeners = this.ports.lookup(client.remotePort);
      if (listeners === undefined) {
        client.closeReason = -ECONNREFUSED;
        continue;
      }
      // SO_REUSEPORT spreads connections over the listeners sharing a port.
      const pick = listeners.length === 1 ? 0 : this.prng.int(listeners.length);
      const entry = listeners[pick];
      const server = entry.transport.acceptSocket(entry, client.transport.address, client.localPort);
      if (server === null) {
        // maxConnections reached: the fake refuses instead of accepting and resetting.
        this.faults.refusedOverLimit++;
        client.closeReason = -ECONNREFUSED;
        continue;
      }
      client.peer = server;
      server.peer = client;
      client.state = SocketState.Open;
      client.transport.noteConnected();
      this.callOpen(server, entry.listenerId);
      this.callOpen(client, -1);
    }
  }

  private writePhase(sockets: FakeSocket[]): void {
    const order = sockets.slice();
    // Fisher-Yates: which connection writes first follows the PRNG.
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.prng.int(i + 1);
      const swap = order[i];
      order[i] = order[j];
      order[j] = swap;
    }
    for (const socket of order) {
      if (socket.closeReason !== null) continue;
      if (socket.state !== SocketState.Open && socket.state !== SocketState.Closing) continue;
      if (socket.sendQueue.length > 0) this.writeSome(socket);
      // A graceful close sends FIN only after everything queued is out.
      const flushed = socket.sendQueue.length === 0 && socket.closeReason === null;
      if (flushed && socket.state === SocketState.Closing) {
        this.sendFin(socket);
        socket.closeReason = 0;
      }
    }
  }

  /** One kernel write for `socket`: as much as the peer's pipe takes, or less when injected. */
  private writeSome(socket: FakeSocket): void {
    const peer = socket.peer;
    const peerReading = peer !== null && peer.alive && peer.state === SocketState.Open;
    let count = socket.sendQueue.length;
    if (peerReading) {
      const room = this.pipeCapacity - peer.inbound.length;
      if (room <= 0) return;
      if (count > room) count = room;
      if (this.prng.chance(this.resetRatio)) {
        this.faults.resets++;
        this.resetPeer(socket);
        socket.closeReason = -ECONNRESET;
        socket.dropSendQueue();
        socket.inbound.clear();
        return;
      }
    }
    if (count > 1 && this.prng.chance(this.partialSendRatio)) {
      count = 1 + this.prng.int(count - 1);
      this.faults.partialSends++;
    }
    // A peer that closed drops what still arrives (a real kernel would answer with RST).
    if (peerReading) socket.sendQueue.moveTo(peer.inbound, count, this.readyTurnFor(peer));
    else socket.sendQueue.discard(count);
    socket.sendQueueShrank();
    socket.transport.noteBytesOut(count);
    if (socket.sendQueue.length === 0 && socket.drainWanted && socket.state === SocketState.Open) {
      socket.drainWanted = false;
      try {
        socket.handler.onDrain(socket.id);
      } catch (error) {
        socket.transport.handlerThrew(socket, error);
      }
    }
  }

  private sendFin(socket: FakeSocket): void {
    const peer = socket.peer;
    if (peer !== null && peer.alive && peer.state === SocketState.Open) {
      peer.eofReadyTurn = this.readyTurnFor(peer);
    }
  }

  /** When bytes written now become readable by `receiver`; never before earlier bytes. */
  private readyTurnFor(receiver: FakeSocket): number {
    let ready = this.turnNumber;
    if (this.delayTurnsMax > 0) {
      const delay = this.prng.int(this.delayTurnsMax + 1);
      if (delay > 0) this.faults.delayedWrites++;
      ready += delay;
    }
    const last = receiver.inbound.lastReadyTurn();
    return ready > last ? ready : last;
  }

  private deliverPhase(sockets: FakeSocket[]): void {
    const ready: FakeSocket[] = [];
    for (const socket of sockets) if (this.canDeliverNow(socket)) ready.push(socket);
    let budget = this.deliveriesPerTurnMax;
    while (ready.length > 0 && budget > 0) {
      const index = ready.length === 1 ? 0 : this.prng.int(ready.length);
      if (this.deliverOne(ready[index])) {
        budget--;
        continue;
      }
      ready[index] = ready[ready.length - 1];
      ready.pop();
    }
  }

  private canDeliverNow(socket: FakeSocket): boolean {
    if (socket.closeReason !== null || socket.state !== SocketState.Open || socket.paused) {
      return false;
    }
    if (socket.inbound.length > 0) return socket.inbound.headReady(this.turnNumber);
    return socket.eofReadyTurn >= 0 && socket.eofReadyTurn <= this.turnNumber;
  }

  /** Delivers one chunk (true: more may follow) or the EOF (false: nothing follows). */
  private deliverOne(socket: FakeSocket): boolean {
    if (!this.canDeliverNow(socket)) return false;
    const transport = socket.transport;
    if (socket.inbound.length === 0) {
      socket.eofReadyTurn = -1;
      transport.noteActivity();
      try {
        socket.handler.onEnd(socket.id);
      } catch (error) {
        transport.handlerThrew(socket, error);
      }
      // The contract: when onEnd returns, the transport closes gracefully (unless it threw).
      if (socket.state === SocketState.Open && socket.closeReason === null) {
        socket.state = SocketState.Closing;
      }
      return false;
    }
    const buffers = transport.recvBuffers;
    const bufferIndex = buffers.acquire();
    if (bufferIndex < 0) {
      transport.noteRecvStall();
      return false;
    }
    const buffer = buffers.view(bufferIndex);
    const available = socket.inbound.readyLength(this.turnNumber, buffer.length);
    let count = available;
    if (this.maxChunk > 0) {
      const largest = Math.min(this.maxChunk, buffer.length);
      const wanted = this.prng.range(Math.min(this.minChunk, largest), largest);
      if (wanted < count) {
        count = wanted;
        this.faults.splitReads++;
      }
    }
    // A random place in the slot: handlers that ignore start/end read the wrong bytes.
    const start = count < buffer.length ? this.prng.int(buffer.length - count + 1) : 0;
    const end = start + count;
    socket.inbound.copyOut(buffer, start, count);
    transport.noteBytesIn(count);
    try {
      socket.handler.onData(socket.id, buffer, start, end);
    } catch (error) {
      transport.handlerThrew(socket, error);
    } finally {
      if (transport.poisonAfterCallback) buffer.fill(POISON_BYTE, start, end);
      buffers.release(bufferIndex);
    }
    return true;
  }

  private closePhase(sockets: FakeSocket[]): void {
    for (const socket of sockets) {
      if (socket.closeReason === null || socket.state === SocketState.Closed) continue;
      const reason = socket.closeReason;
      socket.state = SocketState.Closed;
      socket.dropSendQueue();
      socket.inbound.clear();
      this.live.delete(socket);
      try {
        socket.handler.onClose(socket.id, reason);
      } catch (error) {
        socket.transport.handlerThrew(socket, error);
      } finally {
        // The id may be reused only after onClose returned.
        socket.transport.releaseSocket(socket);
      }
    }
  }

  private callOpen(socket: FakeSocket, listener: number): void {
    try {
      socket.handler.onOpen(socket.id, listener);
    } catch (error) {
      socket.transport.handlerThrew(socket, error);
    }
  }

  private canWrite(socket: FakeSocket): boolean {
    const peer = socket.peer;
    if (peer === null || !peer.alive || peer.state !== SocketState.Open) return true;
    return peer.inbound.length < this.pipeCapacity;
  }
}
