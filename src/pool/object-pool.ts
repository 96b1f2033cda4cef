/**
 * A bounded pool of reusable JS objects (completions, parser states, send requests). At
 * most `max` objects ever exist; once they do, acquire/release allocate nothing: idle
 * objects sit in an array sized `max` at construction.
 */
import { assert, UsageError } from "../api/errors.ts";
import { PoolErrorCode } from "./pool-errors.ts";

export interface ObjectPoolOptions<T> {
  /** Makes a new object; called while fewer than `max` exist and none is idle. */
  create: () => T;
  /** Called on release, so idle objects hold no stale state or references. */
  reset?: (item: T) => void;
  /** Upper bound on objects this pool ever creates. */
  max: number;
  /** Objects to create up front (0..max, default 0), so steady state starts warm. */
  preallocate?: number;
  /**
   * Track objects in Sets to catch every double or foreign release (default false). The
   * Sets cost memory and time; without them only an immediate double release (the object
   * already on top of the idle stack) and over-release are caught.
   */
  debug?: boolean;
}

export interface ObjectPoolStats {
  readonly max: number;
  /** Objects created so far (never more than max). */
  readonly created: number;
  /** Objects waiting in the pool. */
  readonly idle: number;
  /** Objects handed out and not yet released. */
  readonly inUse: number;
  /** Most objects in use at once. */
  readonly highWater: number;
}

/**
 * acquire() returns an idle object, or a new one while fewer than `max` exist, else
 * `undefined`: exhaustion is backpressure the caller must handle (like BytePool's -1), not
 * a bug, so it does not throw. release() resets the object and throws UsageError on
 * misuse (WS_ERR_OVER_RELEASE, WS_ERR_DOUBLE_RELEASE, and in debug mode WS_ERR_FOREIGN_SLOT).
 */
export class ObjectPool<T> {
  readonly max: number;
  readonly #create: () => T;
  readonly #reset: ((item: T) => void) | undefined;
  readonly #idle: Array<T | undefined>;
  readonly #idleSet: Set<T> | undefined;
  readonly #ownedSet: Set<T> | undefined;
  #idleCount = 0;
  #created = 0;
  #highWater = 0;

  constructor(options: ObjectPoolOptions<T>) {
    const { max, preallocate = 0 } = options;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
        `ObjectPool max must be a positive integer, got ${max}`);
    }
    if (!Number.isSafeInteger(preallocate) || preallocate < 0 || preallocate > max) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
        `ObjectPool preallocate must be 0..max, got ${preallocate}`);
    }
    this.max = max;
    this.#create = options.create;
    this.#reset = options.reset;
    // Filled with undefined so the engine keeps one contiguous backing store of size max.
    this.#idle = new Array<T | undefined>(max).fill(undefined);
    this.#idleSet = options.debug === true ? new Set<T>() : undefined;
    this.#ownedSet = options.debug === true ? new Set<T>() : undefined;
    for (let i = 0; i < preallocate; i++) {
      const item = this.#make();
      this.#idle[this.#idleCount++] = item;
      this.#idleSet?.add(item);
    }
  }

  /** An idle or new object, or undefined when `max` objects are all in use. */
  acquire(): T | undefined {
    if (this.#idleCount > 0) {
      const item = this.#idle[--this.#idleCount] as T;
      this.#idle[this.#idleCount] = undefined;
      if (this.#idleSet !== undefined) this.#idleSet.delete(item);
      this.#noteInUse();
      return item;
    }
    if (this.#created === this.max) return undefined;
    const item = this.#make();
    this.#noteInUse();
    return item;
  }

  /** Resets `item` and keeps it for the next acquire(). */
  release(item: T): void {
    if (this.#idleCount === this.#created) {
      throw new UsageError(PoolErrorCode.OVER_RELEASE,
        "ObjectPool.release(): more objects released than acquired");
    }
    if (this.#idleCount > 0 && this.#idle[this.#idleCount - 1] === item) throw doubleRelease();
    if (this.#ownedSet !== undefined && this.#idleSet !== undefined) {
      if (!this.#ownedSet.has(item)) {
        throw new UsageError(PoolErrorCode.FOREIGN_SLOT,
          "ObjectPool.release(): object was not created by this pool");
      }
      if (this.#idleSet.has(item)) throw doubleRelease();
    }
    if (this.#reset !== undefined) this.#reset(item);
    this.#idleSet?.add(item);
    this.#idle[this.#idleCount++] = item;
  }

  stats(): ObjectPoolStats {
    assert(this.#idleCount <= this.#created && this.#created <= this.max, "pool counts");
    return {
      max: this.max,
      created: this.#created,
      idle: this.#idleCount,
      inUse: this.#created - this.#idleCount,
      highWater: this.#highWater,
    };
  }

  #make(): T {
    const item = this.#create();
    this.#created++;
    this.#ownedSet?.add(item);
    return item;
  }

  #noteInUse(): void {
    const inUse = this.#created - this.#idleCount;
    if (inUse > this.#highWater) this.#highWater = inUse;
  }
}

function doubleRelease(): UsageError {
  return new UsageError(PoolErrorCode.DOUBLE_RELEASE,
    "ObjectPool.release(): object is already idle in the pool");
}
