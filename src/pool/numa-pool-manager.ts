/**
 * One BytePool per NUMA node, created on first request, so a worker pinned to a CPU takes
 * its buffers from memory on that CPU's node. Without libnuma (or when the kernel refuses
 * NUMA calls) every request gets one shared, unplaced pool (node -1) and `note` says why.
 * A manager belongs to one thread: Bun workers each build their own.
 */
import { assert, UsageError } from "../api/errors.ts";
import type { NodePoolStats, PoolStats } from "../api/pool.ts";
import { lastErrno, libc } from "../ffi/libc.ts";
import { systemError } from "../ffi/errno.ts";
import { numaNodeOfCpu, numaStatus } from "../ffi/numa.ts";
import { BytePool } from "./byte-pool.ts";
import { PoolErrorCode } from "./pool-errors.ts";

export interface NumaPoolManagerOptions {
  /** Passed to every node's region (default "auto"). */
  hugepages?: "auto" | "off";
  /** Prefault each node's region when it is created (default false). */
  prefault?: boolean;
  /** Keep slotSize exact instead of rounding to 64 bytes. */
  exactSlotSize?: boolean;
}

export class NumaPoolManager {
  /** Slot size as requested (each pool reports the aligned size in its stats). */
  readonly slotSize: number;
  readonly capacityPerNode: number;
  /** Whether pools are placed per node; false means one unplaced pool for everything. */
  readonly placed: boolean;
  /** Why pools are not placed ("" when they are). */
  readonly note: string;
  readonly #nodeCount: number;
  readonly #options: NumaPoolManagerOptions;
  /** Indexed by node; when `placed` is false only index 0 is used (the unplaced pool). */
  #pools: Array<BytePool | undefined>;
  #destroyed = false;

  constructor(slotSize: number, capacityPerNode: number, options: NumaPoolManagerOptions = {}) {
    requirePositive("slotSize", slotSize);
    requirePositive("capacityPerNode", capacityPerNode);
    const status = numaStatus();
    this.slotSize = slotSize;
    this.capacityPerNode = capacityPerNode;
    this.placed = status.available;
    this.note = status.note;
    this.#nodeCount = status.available ? status.nodes : 1;
    this.#options = { ...options };
    this.#pools = new Array<BytePool | undefined>(this.#nodeCount).fill(undefined);
  }

  /** The pool of `node` (0..nodes-1), created on first use; the unplaced pool without NUMA. */
  poolForNode(node: number): BytePool {
    if (this.#destroyed) throw destroyedError();
    if (!this.placed) return this.#pool(0, -1);
    if (!Number.isInteger(node) || node < 0 || node >= this.#nodeCount) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
        `NUMA node ${node} does not exist (nodes 0..${this.#nodeCount - 1})`);
    }
    return this.#pool(node, node);
  }

  /** The pool of the node that `cpu` belongs to (numa_node_of_cpu). */
  poolForCpu(cpu: number): BytePool {
    if (this.#destroyed) throw destroyedError();
    if (!this.placed) return this.#pool(0, -1);
    const node = numaNodeOfCpu(cpu);
    if (node < 0) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT, `CPU ${cpu} has no known NUMA node`);
    }
    return this.poolForNode(node);
  }

  /** The pool for the CPU the calling thread runs on now (pin the thread first). */
  poolForCurrentCpu(): BytePool {
    const cpu = libc().sched_getcpu();
    if (cpu < 0) throw systemError("sched_getcpu", lastErrno());
    return this.poolForCpu(cpu);
  }

  /** Stats of every pool created so far, by node ascending (-1 = the unplaced pool). */
  stats(): NodePoolStats {
    if (this.#destroyed) throw destroyedError();
    const result: Array<{ node: number; stats: PoolStats }> = [];
    for (let index = 0; index < this.#pools.length; index++) {
      const pool = this.#pools[index];
      if (pool !== undefined) result.push({ node: this.placed ? index : -1, stats: pool.stats() });
    }
    return result;
  }

  /** Destroys every pool (freeing their regions); later calls throw UsageError. */
  destroy(): void {
    if (this.#destroyed) {
      throw new UsageError(PoolErrorCode.DOUBLE_FREE, "NumaPoolManager.destroy() called twice");
    }
    this.#destroyed = true;
    for (const pool of this.#pools) pool?.destroy();
    this.#pools = [];
  }

  #pool(index: number, node: number): BytePool {
    let pool = this.#pools[index];
    if (pool === undefined) {
      pool = new BytePool(this.slotSize, this.capacityPerNode, { ...this.#options, node });
      this.#pools[index] = pool;
    }
    assert(pool.capacity === this.capacityPerNode, "node pool capacity");
    return pool;
  }
}

function requirePositive(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      `NumaPoolManager ${name} must be a positive integer, got ${value}`);
  }
}

function destroyedError(): UsageError {
  return new UsageError(PoolErrorCode.USE_AFTER_FREE, "NumaPoolManager used after destroy()");
}
