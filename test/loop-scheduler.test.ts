/**
 * LoopScheduler with a scripted backend: when turns run, when the loop yields, when it parks.
 */
import { describe, expect, test } from "bun:test";
import { LoopScheduler, type LoopBackend } from "../src/reactor/loop-scheduler.ts";
import { waitFor } from "./support/wait-for.ts";

class ScriptedBackend implements LoopBackend {
  turns = 0;
  parks = 0;
  /** Completions each coming turn reports; 0 once the script runs out. */
  script: number[] = [];
  pending = false;
  onTurn: () => void = () => {};
  turn(): number {
    this.turns++;
    this.onTurn();
    return this.script.shift() ?? 0;
  }
  hasPendingSubmissions(): boolean {
    return this.pending;
  }
  park(): void {
    this.parks++;
  }
}

describe("LoopScheduler", () => {
  test("work queued outside a turn runs one turn in a microtask, then the idle loop parks", async () => {
    const backend = new ScriptedBackend();
    const scheduler = new LoopScheduler(backend, 0);
    scheduler.scheduleFlush();
    scheduler.scheduleFlush(); // already scheduled: still one turn
    expect(backend.turns).toBe(0);
    await Promise.resolve();
    expect(backend.turns).toBe(1);
    expect(backend.parks).toBe(1);
    expect(scheduler.parks).toBe(1);
  });

  test("a woken loop runs turns while completions come, yielding to Bun between bursts", async () => {
    const backend = new ScriptedBackend();
    const scheduler = new LoopScheduler(backend, 0);
    backend.script = Array.from({ length: 100 }, () => 1); // 100 busy turns
    scheduler.wake();
    expect(backend.turns).toBe(64); // one burst, then setImmediate (the last turn found work)
    expect(backend.parks).toBe(0);
    await waitFor(() => backend.parks === 1, 2000, "the rest of the work, then parked");
    expect(backend.turns).toBe(101); // 100 with work, one that found nothing
  });

  test("pending submissions keep the loop from parking", async () => {
    const backend = new ScriptedBackend();
    const scheduler = new LoopScheduler(backend, 0);
    backend.pending = true;
    scheduler.wake();
    await waitFor(() => backend.turns >= 3, 2000, "more turns");
    expect(backend.parks).toBe(0);
    backend.pending = false;
    await waitFor(() => backend.parks === 1, 2000, "parked");
  });

  test("work queued during a turn is left to that turn; stop ends everything", async () => {
    const backend = new ScriptedBackend();
    const scheduler = new LoopScheduler(backend, 0);
    backend.onTurn = () => {
      expect(scheduler.turning).toBe(true);
      scheduler.scheduleFlush();
    };
    expect(scheduler.runTurn()).toBe(0);
    expect(scheduler.turning).toBe(false);
    await Promise.resolve();
    expect(backend.turns).toBe(1); // no extra turn was queued
    scheduler.stop();
    scheduler.wake();
    scheduler.scheduleFlush();
    await Bun.sleep(5);
    expect(backend.turns).toBe(1);
  });
});

/**
 * A reactor on a fake clock: each turn takes STEP_US and completes the messages due by then.
 * `play` queues messages at given gaps and wakes the parked loop when the next one is due, as
 * the kernel's wake-up would, so a spin's outcome depends only on the gaps: no real timing,
 * nothing to flake. `budgets` records the spin budget after each message.
 */
const STEP_US = 1;

class FakeReactor implements LoopBackend {
  nowUs = 0;
  turns = 0;
  parks = 0;
  parked = true;
  readonly budgets: number[] = [];
  private arrivals: number[] = [];
  private lastArrivalUs = 0;
  readonly scheduler: LoopScheduler;

  constructor(spinMicros: number, adaptive = true) {
    this.scheduler = new LoopScheduler(this, spinMicros, () => this.nowUs / 1000, adaptive);
  }

  turn(): number {
    this.turns++;
    this.nowUs += STEP_US;
    let seen = 0;
    while (this.arrivals.length > 0 && this.arrivals[0] <= this.nowUs) {
      this.arrivals.shift();
      seen++;
    }
    if (seen > 0) queueMicrotask(() => this.budgets.push(this.scheduler.spinBudgetMicros));
    return seen;
  }

  hasPendingSubmissions(): boolean {
    return false;
  }

  park(): void {
    this.parks++;
    this.parked = true;
  }

  /** One message after each gap (µs after the one before); returns once all are handled and the loop parked. */
  async play(gapsUs: number[]): Promise<void> {
    for (const gap of gapsUs) this.arrivals.push((this.lastArrivalUs += gap));
    for (;;) {
      await waitFor(() => this.parked, 5000, "the loop parks");
      if (this.arrivals.length === 0) return;
      this.parked = false;
      this.nowUs = Math.max(this.nowUs, this.arrivals[0]);
      this.scheduler.wake();
    }
  }
}

const times = (count: number, gapUs: number) => Array.from({ length: count }, () => gapUs);

describe("LoopScheduler: adaptive spin", () => {
  test("ping-pong (spells shorter than spinMicros): the budget grows back within three messages and the loop stops parking", async () => {
    const reactor = new FakeReactor(50);
    const { scheduler } = reactor;
    expect(scheduler.spinBudgetMicros).toBe(50); // a fresh loop spins, as before
    await reactor.play(times(5, 10_000)); // long idle spells: two in a row halve it, to 0
    expect(reactor.budgets).toEqual([50, 25, 12.5, 0, 0]);
    await reactor.play(times(100, 20));
    // Each 20 µs spell the budget could not cover (parked: no spin, or too short a one) grows it.
    expect(reactor.budgets.slice(5, 9)).toEqual([12.5, 25, 25, 25]);
    expect(reactor.budgets.slice(6).every((b) => b === 25)).toBe(true); // caught: no need to grow
    expect(scheduler.spinHits).toBe(98);
    expect(reactor.parks).toBe(5 + 2); // after the idle ones, the first short one, the last
    await reactor.play([40, 45, 45]);
    expect(reactor.budgets.slice(-3)).toEqual([50, 50, 50]); // a longer spell grows it, capped at spinMicros
  });

  test("sparse traffic (spells longer than spinMicros): two in a row halve the budget, to 0, then no spin but a probe every 16 spells", async () => {
    const reactor = new FakeReactor(50);
    const { scheduler } = reactor;
    await reactor.play(times(4, 1000));
    expect(reactor.budgets).toEqual([50, 25, 12.5, 0]); // below the start value: no spin
    expect(scheduler.longQuiets).toBe(4);
    const [turns, parks] = [reactor.turns, reactor.parks];
    await reactor.play(times(48, 1000));
    expect(scheduler.spinBudgetMicros).toBe(0);
    // Per message: the turn with it, one that finds nothing; 3 probes spin ~50 turns (1 µs) more.
    const extra = reactor.turns - turns - 48 * 2;
    expect(extra).toBeGreaterThanOrEqual(3 * 48);
    expect(extra).toBeLessThanOrEqual(3 * 50);
    expect(reactor.parks - parks).toBe(48);
  });

  test("a probe that finds work restores the full budget (wake-ups too late to learn from)", async () => {
    const reactor = new FakeReactor(50);
    await reactor.play(times(4, 1000)); // budget 0
    // Ping-pong whose parked spells look long (a wake-up 5 ms late): only a probe can tell.
    const gaps: number[] = [];
    for (let i = 0; i < 15; i++) gaps.push(5000);
    await reactor.play([...gaps, ...times(20, 30)]);
    expect(reactor.budgets.slice(-21, -19)).toEqual([0, 50]); // the 16th spell was a probe
    expect(reactor.budgets.slice(-20).every((b) => b === 50)).toBe(true);
    expect(reactor.scheduler.spinHits).toBe(20);
  });

  test("a stray short spell among sparse ones costs two short spins, then the budget is 0 again", async () => {
    const reactor = new FakeReactor(50);
    const { scheduler } = reactor;
    await reactor.play(times(4, 1000));
    const turns = reactor.turns;
    await reactor.play([10]); // parked at once (budget 0), where a spin would have caught it
    expect(scheduler.spinBudgetMicros).toBe(12.5);
    // The message's turn, then a spin of 12.5 µs: turns at +1 … +13 µs find nothing.
    expect(reactor.turns - turns).toBe(1 + 13);
    await reactor.play([1000]);
    expect(scheduler.spinBudgetMicros).toBe(12.5); // one long spell: an outlier, maybe
    await reactor.play([1000]);
    expect(scheduler.spinBudgetMicros).toBe(0);
  });

  test("a spell that ended in a wake-up is seen late: up to 2 × spinMicros still counts as short", async () => {
    const reactor = new FakeReactor(50);
    await reactor.play([...times(4, 1000), 80]);
    expect(reactor.budgets.slice(-1)).toEqual([12.5]);
    await reactor.play([101, 101]);
    expect(reactor.budgets.slice(-2)).toEqual([12.5, 0]);
  });

  test("spinMicros 0: never spins, whatever the spells", async () => {
    const reactor = new FakeReactor(0);
    await reactor.play(times(20, 5));
    expect(reactor.scheduler.spinBudgetMicros).toBe(0);
    expect(reactor.parks).toBe(20);
    expect(reactor.turns).toBe(40);
  });

  test("adaptive false: the full spin after every completion, however sparse the traffic", async () => {
    const reactor = new FakeReactor(50, false);
    await reactor.play(times(10, 1000));
    expect(reactor.budgets.every((b) => b === 50)).toBe(true);
    expect(reactor.turns).toBeGreaterThanOrEqual(10 * 50); // each message: its turn, ~50 of spin
  });
});
