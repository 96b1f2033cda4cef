/**
 * Turns of the Bun backend. Bun calls us once per socket event; each such callback (or a
 * microtask we queue for work that came from outside one) is a turn. Handlers run only
 * inside a turn and never inside each other: an event Bun raises while a turn runs (Bun calls
 * some callbacks synchronously, e.g. `close` from inside `end()`) only queues its work, and
 * the turn's end does it. At the end of a turn, in rounds until nothing is left: deliver what
 * waited, flush the send queues, run onClose for connections that ended; then `afterTurn`.
 */
import type { BunConnection } from "./bun-connection.ts";

/** Rounds of work in one turn before yielding to Bun's loop (a peer reading as fast as we send). */
const MAX_ROUNDS = 64;

/** What a turn does with each connection that has work; the transport implements it. */
export interface TurnSteps {
  /** Deliver what waited: onOpen, held chunks, onEnd. */
  deliver(c: BunConnection): void;
  /** Hand queued bytes to the kernel (onDrain, or FIN after a graceful close, once all are out). */
  flush(c: BunConnection): void;
  /** onClose, then free the id. */
  finish(c: BunConnection): void;
  /** Once the turn is over: report handler errors, settle a dispose. */
  afterTurn(): void;
}

export class BunTurns {
  /** A turn is running: handlers must not be called from an event Bun raises now. */
  inTurn = false;
  /** Turns run (stats().turns). */
  count = 0;
  private scheduled = false;
  // Two lists swapped per round: what a round adds (onDrain sends) waits for the next one.
  private dirty: BunConnection[] = [];
  private flushing: BunConnection[] = [];
  private inbox: BunConnection[] = [];
  private closing: BunConnection[] = [];

  constructor(private readonly steps: TurnSteps) {}

  /** `c` has bytes to write (or a graceful close to finish). */
  toFlush(c: BunConnection): void {
    if (!c.dirty) {
      c.dirty = true;
      this.dirty.push(c);
    }
    this.schedule();
  }

  /** `c` has events waiting for delivery. */
  toDeliver(c: BunConnection): void {
    if (!c.inboxed) {
      c.inboxed = true;
      this.inbox.push(c);
    }
    this.schedule();
  }

  /** `c` ended: its onClose is due. */
  toFinish(c: BunConnection): void {
    this.closing.push(c);
    this.schedule();
  }

  begin(): void {
    this.inTurn = true;
    this.count++;
  }

  end(): void {
    try {
      for (let round = 0; round < MAX_ROUNDS && this.hasWork(); round++) {
        this.deliverAll();
        this.flushAll();
        this.finishAll();
      }
    } finally {
      this.inTurn = false;
    }
    this.steps.afterTurn();
    if (this.hasWork() && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.scheduledTurn); // MAX_ROUNDS ran out: let Bun's loop run first
    }
  }

  /** Runs a turn now, unless one is running (its end picks the work up). */
  settle(): void {
    if (this.inTurn) return;
    this.begin();
    this.end();
  }

  /** Forgets all work (closeNow). */
  clear(): void {
    this.dirty = [];
    this.flushing = [];
    this.inbox = [];
    this.closing = [];
  }

  private schedule(): void {
    if (this.inTurn || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(this.scheduledTurn);
  }

  private readonly scheduledTurn = (): void => {
    this.scheduled = false;
    if (this.hasWork()) this.settle();
  };

  private hasWork(): boolean {
    return this.dirty.length > 0 || this.inbox.length > 0 || this.closing.length > 0;
  }

  private deliverAll(): void {
    if (this.inbox.length === 0) return; // most turns: no allocation
    const list = this.inbox;
    this.inbox = [];
    for (const c of list) {
      c.inboxed = false;
      this.steps.deliver(c);
    }
  }

  private flushAll(): void {
    const list = this.dirty;
    this.dirty = this.flushing;
    this.flushing = list;
    for (const c of list) {
      c.dirty = false;
      this.steps.flush(c);
    }
    list.length = 0;
  }

  private finishAll(): void {
    if (this.closing.length === 0) return;
    const list = this.closing;
    this.closing = [];
    for (const c of list) this.steps.finish(c);
  }
}
