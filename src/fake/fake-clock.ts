/** A Clock that moves only when a test advances it: timeouts become deterministic. */
import type { Clock } from "../api/websocket.ts";

export class FakeClock implements Clock {
  private time = 0;
  private readonly timers: { intervalMs: number; due: number; callback: () => void }[] = [];

  now(): number {
    return this.time;
  }

  every(intervalMs: number, callback: () => void): () => void {
    const timer = { intervalMs, due: this.time + intervalMs, callback };
    this.timers.push(timer);
    return () => {
      const index = this.timers.indexOf(timer);
      if (index >= 0) this.timers.splice(index, 1);
    };
  }

  /** Move time forward by `ms`, firing every interval that falls due, in time order. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: (typeof this.timers)[number] | undefined;
      for (const timer of this.timers) if (!next || timer.due < next.due) next = timer;
      if (!next || next.due > target) break;
      this.time = next.due;
      next.due += next.intervalMs;
      next.callback();
    }
    this.time = target;
  }
}
