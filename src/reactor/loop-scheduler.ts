/**
 * When a poll-mode reactor runs its turns inside Bun's event loop. While completions keep
 * coming it runs up to BUSY_TURNS_BEFORE_YIELD turns, then yields with `setImmediate` so
 * timers and other I/O keep running; when a turn finds nothing it keeps polling (a spin,
 * one turn per trip round Bun's loop) for the spin budget, then, with nothing left to
 * submit, parks, and the backend's wake-up (an eventfd read through Bun's poller for
 * io_uring) calls `wake`. Work queued outside a turn (a send from a timer) runs a turn in a
 * microtask. The backend supplies the turn; this class only decides when it runs, so every
 * poll-mode backend (io_uring, epoll) schedules the same way.
 *
 * The spin budget adapts (as KVM's halt polling does): a spin pays when the next completion
 * comes before it ends (no park, no wake-up, ~20 µs of latency saved), and is CPU thrown
 * away when traffic is sparse. Each quiet spell (from the last turn that found work to the
 * next one) is one observation: one no longer than `spinMicros` (a full spin would have
 * caught it; 2 × `spinMicros` for one that ended in a park, seen a wake-up late) grows the
 * budget (from SPIN_START_SHARE of `spinMicros`, doubling, capped at `spinMicros`) when the
 * budget was too short for it; two longer ones in a row halve it (one outlier does not),
 * and below the start value it is 0: the loop parks as soon as a turn finds nothing, but
 * for a full probe spin every PROBE_EVERY spells (one that finds work restores the budget).
 * So ping-pong and busy loads keep the full budget, and sparse ones (5,000 sockets × 1
 * msg/s) stop spinning within eight quiet spells, bar the probes (1/16 of the spells).
 */

const BUSY_TURNS_BEFORE_YIELD = 64;
/** The first non-zero budget, as a share of `spinMicros` (then doubled up to it). */
const SPIN_START_SHARE = 1 / 4;
/**
 * While the budget is 0, every PROBE_EVERY-th quiet spell gets a full spin all the same: a
 * wake-up can be so late (io_uring with DEFER_TASKRUN on some kernels: milliseconds) that
 * parked spells never look short, and only a spin that finds work shows that spinning pays.
 */
const PROBE_EVERY = 16;
/** What a wake-up adds to a quiet spell that ended in one, as a share of `spinMicros`. */
const WAKE_ALLOWANCE_SHARE = 1;

export interface LoopBackend {
  /** One turn: submit, reap, dispatch. Returns the completions seen (0: nothing happened). */
  turn(): number;
  /** Submissions queued that no turn has handed to the kernel yet. */
  hasPendingSubmissions(): boolean;
  /** Sleep until the kernel has something for us; `wake` is called then. */
  park(): void;
}

/** Milliseconds, monotonic (performance.now by default; tests inject one). */
export type SchedulerClock = () => number;

export class LoopScheduler {
  /** Times the loop went quiet and parked. */
  parks = 0;
  /** Quiet spells that ended while spinning (the spin paid: no park). */
  spinHits = 0;
  /** Quiet spells that outlasted `spinMicros` (shrank the budget). */
  longQuiets = 0;
  private readonly backend: LoopBackend;
  private readonly clock: SchedulerClock;
  private readonly adaptive: boolean;
  /** The most the budget grows to, ms. */
  private readonly spinMaxMs: number;
  private readonly spinStartMs: number;
  /** How long the loop spins once a turn finds nothing, ms (starts full, as a fresh loop spun). */
  private budgetMs: number;
  /** The spin for the spell under way: the budget, or a probe's full spin. */
  private activeMs: number;
  /** Long quiet spells in a row. */
  private longInARow = 0;
  /** Quiet spells since the last probe, while the budget is 0. */
  private spellsSinceProbe = 0;
  /** When a turn last found work. */
  private lastActivity: number;
  /** A turn found nothing since `lastActivity`: a quiet spell is under way. */
  private quiet = true;
  /** The loop parked during this quiet spell: its end was seen a wake-up late. */
  private parkedInSpell = true;
  private loopScheduled = false;
  private flushScheduled = false;
  private stopped = false;
  /** True while `turn` runs: work queued then is picked up by the same turn. */
  private inTurn = false;

  /** `adaptive` false: always spin the full `spinMicros` after the last completion (the old rule). */
  constructor(backend: LoopBackend, spinMicros: number, clock: SchedulerClock = () => performance.now(),
    adaptive = true) {
    this.backend = backend;
    this.clock = clock;
    this.adaptive = adaptive;
    this.spinMaxMs = Math.max(0, spinMicros) / 1000;
    this.spinStartMs = this.spinMaxMs * SPIN_START_SHARE;
    this.budgetMs = this.activeMs = this.spinMaxMs;
    this.lastActivity = clock();
  }

  /** The spin budget now, µs (0: park as soon as a turn finds nothing). */
  get spinBudgetMicros(): number {
    return this.budgetMs * 1000;
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
    if (seen > 0) {
      const now = this.clock();
      if (this.quiet) {
        this.quiet = false;
        this.observeQuiet(now - this.lastActivity);
      }
      this.lastActivity = now;
    } else {
      this.quiet = true;
    }
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

  /** A quiet spell of `ms` ended: adapt the budget to what a spin would have bought. */
  private observeQuiet(ms: number): void {
    if (!this.adaptive) return;
    // A spell that ended in a wake-up is seen that much late (~20 µs through an eventfd,
    // more through epoll's parking thread): allow for it, or parked loops never learn that
    // a spin would pay.
    const longest = this.spinMaxMs * (this.parkedInSpell ? 1 + WAKE_ALLOWANCE_SHARE : 1);
    this.parkedInSpell = false;
    if (ms <= this.activeMs) {
      this.spinHits++;
      this.budgetMs = Math.max(this.budgetMs, this.activeMs); // a probe that paid: spin again
    } else if (ms <= longest) {
      // Parked (or spun too briefly) where a longer spin would have caught it.
      this.budgetMs = Math.min(this.spinMaxMs, Math.max(this.spinStartMs, this.budgetMs * 2));
    } else {
      // Two long spells in a row halve it: one outlier (a preempted peer) does not.
      this.longQuiets++;
      if (++this.longInARow >= 2) {
        const half = this.budgetMs / 2;
        this.budgetMs = half < this.spinStartMs ? 0 : half;
      }
    }
    if (ms <= longest) this.longInARow = 0;
    this.activeMs = this.budgetMs;
    if (this.budgetMs === 0 && this.spinMaxMs > 0 && ++this.spellsSinceProbe >= PROBE_EVERY) {
      this.spellsSinceProbe = 0;
      this.activeMs = this.spinMaxMs;
    }
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
    // The last turn found work (a busy burst hit its limit, or a flush's turn): more may be
    // waiting, so yield and look again rather than park.
    if (!this.quiet || this.backend.hasPendingSubmissions() ||
      (this.activeMs > 0 && this.clock() - this.lastActivity < this.activeMs)) {
      this.loopScheduled = true;
      setImmediate(this.loopTask);
      return;
    }
    this.parks++;
    this.parkedInSpell = true;
    this.backend.park();
  }
}
