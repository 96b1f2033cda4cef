/**
 * When a poll-mode reactor runs its turns inside Bun's event loop. While completions keep
 * coming it runs up to BUSY_TURNS_BEFORE_YIELD turns, then yields with `setImmediate` so
 * timers and other I/O keep running; after `spinMs` without activity (and with nothing left
 * to submit) it parks, and the backend's wake-up (an eventfd read through Bun's poller for
 * io_uring) calls `wake`. Work queued outside a turn (a send from a timer) runs a turn in a
 * microtask. The backend supplies the turn; this class only decides when it runs, so every
 * poll-mode backend (io_uring now, epoll next) schedules the same way.
 */

const BUSY_TURNS_BEFORE_YIELD = 64;

export interface LoopBackend {
  /** One turn: submit, reap, dispatch. Returns the completions seen (0: nothing happened). */
  turn(): number;
  /** Submissions queued that no turn has handed to the kernel yet. */
  hasPendingSubmissions(): boolean;
  /** Sleep until the kernel has something for us; `wake` is called then. */
  park(): void;
}

export class LoopScheduler {
  /** Times the loop went quiet and parked. */
  parks = 0;
  private readonly backend: LoopBackend;
  private readonly spinMs: number;
  private lastActivity = 0;
  private loopScheduled = false;
  private flushScheduled = false;
  private stopped = false;
  /** True while `turn` runs: work queued then is picked up by the same turn. */
  private inTurn = false;

  constructor(backend: LoopBackend, spinMicros: number) {
    this.backend = backend;
    this.spinMs = spinMicros / 1000;
  }

  /** Runs one turn now (also from outside the loop, e.g. while disposing). */
  runTurn(): number {
    this.inTurn = true;
    let seen: number;
    try {
      seen = this.backend.turn();
    } finally {
      this.inTurn = false;
    }
    if (seen > 0) this.lastActivity = performance.now();
    return seen;
  }

  get turning(): boolean {
    return this.inTurn;
  }

  /** Work was queued: make sure a turn runs soon (in this one, if it is running). */
  scheduleFlush(): void {
    if (this.inTurn || this.flushScheduled || this.stopped) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushTask);
  }

  /** The parked backend has completions: for its wake-up callback. */
  readonly wake = (): void => {
    if (!this.stopped) this.loop();
  };

  /** No more turns are scheduled (the backend is going away). */
  stop(): void {
    this.stopped = true;
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    if (this.stopped || this.inTurn) return;
    this.runTurn();
    this.continueLoop();
  };

  private readonly loopTask = (): void => {
    this.loopScheduled = false;
    if (!this.stopped) this.loop();
  };

  /** Run turns while completions keep coming, then yield to Bun's loop or park. */
  private loop(): void {
    for (let i = 0; i < BUSY_TURNS_BEFORE_YIELD; i++) {
      if (this.runTurn() === 0) break;
    }
    this.continueLoop();
  }

  private continueLoop(): void {
    if (this.stopped || this.loopScheduled) return;
    if (performance.now() - this.lastActivity < this.spinMs || this.backend.hasPendingSubmissions()) {
      this.loopScheduled = true;
      setImmediate(this.loopTask);
      return;
    }
    this.parks++;
    this.backend.park();
  }
}
