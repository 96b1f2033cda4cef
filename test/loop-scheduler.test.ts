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
    const scheduler = new LoopScheduler(backend, 20_000); // spin 20 ms after the last completion
    backend.script = Array.from({ length: 100 }, () => 1); // 100 busy turns
    scheduler.wake();
    expect(backend.turns).toBe(64); // one burst, then setImmediate
    expect(backend.parks).toBe(0);
    await waitFor(() => backend.turns >= 101, 2000, "the rest of the work");
    expect(backend.parks).toBe(0); // still spinning: completions may come
    await waitFor(() => backend.parks === 1, 2000, "parked once quiet for 20 ms");
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
