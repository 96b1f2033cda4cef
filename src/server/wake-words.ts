/**
 * One wake word per thread of the bus, in one SharedArrayBuffer (a cache line each), so a
 * consumer with nothing to read parks instead of spinning: it says it sleeps, looks once
 * more, then waits with Atomics.waitAsync (its event loop keeps serving meanwhile). A
 * producer that has written a record wakes it, paying for Atomics.notify only when the
 * word says it sleeps.
 *
 * No lost wake-up: the sleeper stores SLEEPING and then loads the rings; the producer
 * stores a ring's tail and then loads the word. Atomics are sequentially consistent, so at
 * least one of them sees the other's store.
 */
const STRIDE = 16;
const AWAKE = 0;
const SLEEPING = 1;

export class WakeWords {
  private readonly words: Int32Array;

  static create(count: number): SharedArrayBuffer {
    return new SharedArrayBuffer(Math.max(1, count) * STRIDE * 4);
  }

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }

  get count(): number {
    return this.words.length / STRIDE;
  }

  /** Producer: `thread` may be asleep waiting for what was just written: wake it. */
  wake(thread: number): void {
    const at = thread * STRIDE;
    if (Atomics.load(this.words, at) === SLEEPING &&
      Atomics.compareExchange(this.words, at, SLEEPING, AWAKE) === SLEEPING) {
      Atomics.notify(this.words, at);
    }
  }

  /**
   * Consumer: park `thread` until woken, unless `idle()` (checked after saying so) finds
   * work. Resolves at once when there is some.
   */
  async sleep(thread: number, idle: () => boolean): Promise<void> {
    const at = thread * STRIDE;
    Atomics.store(this.words, at, SLEEPING);
    if (idle()) {
      const waiting = Atomics.waitAsync(this.words, at, SLEEPING);
      if (waiting.async) await waiting.value;
    }
    Atomics.store(this.words, at, AWAKE);
  }

  /** Wake `thread` even if it did not say it sleeps (its own close, for one). */
  interrupt(thread: number): void {
    const at = thread * STRIDE;
    Atomics.store(this.words, at, AWAKE);
    Atomics.notify(this.words, at);
  }
}
