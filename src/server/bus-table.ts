/**
 * The supervisor's table of bus rings: one per ordered pair of nodes (workers 0..N-1, and the
 * main thread as node N, which publishes and counts but has no subscribers). A worker that
 * starts, the first time or as a replacement, gets fresh rings with every node alive then:
 * a dead worker's rings are dropped, never reset under a reader.
 */
import { SpscRing } from "./spsc-ring.ts";
import { WakeWords } from "./wake-words.ts";
import type { BusAssignment, PeerLinks } from "./worker-bus.ts";

/** Ring memory each worker reads from the other workers, in all. */
const INBOUND_BYTES_PER_WORKER = 4 * 1024 * 1024;
const WORKER_RING_MIN = 64 * 1024;
const WORKER_RING_MAX = 1024 * 1024;
/** Rings to and from the main thread: its publishes, and counts. */
const MAIN_RING_BYTES = 256 * 1024;

/** A ring between two of `workers` workers: 1 MiB up to 5 workers, less beyond (64 KiB at least). */
export function workerRingBytes(workers: number): number {
  const share = INBOUND_BYTES_PER_WORKER / Math.max(1, workers - 1);
  const power = 2 ** Math.floor(Math.log2(share));
  return Math.min(WORKER_RING_MAX, Math.max(WORKER_RING_MIN, power));
}

export class BusTable {
  readonly wakeWords: SharedArrayBuffer;
  /** The main thread's node number. */
  readonly main: number;
  private readonly rings: (SharedArrayBuffer | undefined)[][];
  private readonly workerRingBytes: number;

  constructor(readonly workers: number) {
    this.main = workers;
    this.wakeWords = WakeWords.create(workers + 1);
    this.rings = Array.from({ length: workers + 1 }, () => new Array(workers + 1).fill(undefined));
    this.workerRingBytes = workerRingBytes(workers);
  }

  /** The main thread's own start: no peers yet (they join as they start). */
  mainAssignment(): BusAssignment {
    return { index: this.main, wakeWords: this.wakeWords, peers: [] };
  }

  /** Fresh rings between `node` and each of `others`; what `node` is handed. */
  join(node: number, others: readonly number[]): BusAssignment {
    for (const other of others) {
      const bytes = other === this.main || node === this.main ? MAIN_RING_BYTES : this.workerRingBytes;
      this.rings[node][other] = SpscRing.create(bytes);
      this.rings[other][node] = SpscRing.create(bytes);
    }
    return { index: node, wakeWords: this.wakeWords, peers: others.map((other) => this.links(node, other)) };
  }

  /** The rings between `node` and `other`, as `node` uses them. */
  links(node: number, other: number): PeerLinks {
    const inbound = this.rings[other][node];
    const outbound = this.rings[node][other];
    if (inbound === undefined || outbound === undefined) throw new Error(`no rings between ${node} and ${other}`);
    return { index: other, inbound, outbound };
  }

  /** `node` is gone: its rings go with it (its replacement gets new ones). */
  leave(node: number): void {
    for (let other = 0; other <= this.workers; other++) {
      this.rings[node][other] = undefined;
      this.rings[other][node] = undefined;
    }
  }
}
