/**
 * Views over a MemoryRegion made one fixed-size segment at a time, on first use.
 *
 * Why: JSC counts every byte an ArrayBuffer covers as heap memory, even when the bytes are
 * our own mapping, and sizes its young generation by the heap. One view over a 64 MiB pool
 * of which a few MiB are ever touched made the collector let ~80 MB of short-lived strings
 * pile up between young collections, so each new string landed in cold memory (measured:
 * 4 KiB text echo 6% slower). Pools that hand out their lowest ids first touch only their
 * first segments, and only those are viewed.
 */
import { assert } from "../api/errors.ts";
import type { MemoryRegion } from "./region.ts";

export class SegmentedViews {
  /** Bytes covered: the first `bytes` of the region. */
  readonly bytes: number;
  readonly segmentBytes: number;
  readonly segmentCount: number;
  readonly #region: MemoryRegion;
  readonly #segments: (Uint8Array | undefined)[];
  #viewed = 0;
  #viewedBytes = 0;

  /** Segments of `segmentBytes` over the first `bytes` bytes of `region`. */
  constructor(region: MemoryRegion, bytes: number, segmentBytes: number) {
    assert(segmentBytes > 0 && Number.isSafeInteger(segmentBytes), "segment size is a positive integer");
    assert(bytes <= region.size, "segments stay inside the region");
    this.#region = region;
    this.segmentBytes = segmentBytes;
    this.segmentCount = Math.ceil(bytes / segmentBytes);
    this.#segments = new Array<Uint8Array | undefined>(this.segmentCount).fill(undefined);
    this.bytes = bytes;
  }

  /** The view of segment `index` (the same object every time); the last one may be short. */
  segment(index: number): Uint8Array {
    const view = this.#segments[index];
    if (view !== undefined) return view;
    assert(index >= 0 && index < this.segmentCount && Number.isInteger(index), "segment index in range");
    const start = index * this.segmentBytes;
    const made = this.#region.viewRange(start, Math.min(start + this.segmentBytes, this.bytes));
    this.#segments[index] = made;
    this.#viewed++;
    this.#viewedBytes += made.byteLength;
    return made;
  }

  /** Native address of the first byte covered. */
  get address(): number {
    return this.#region.pointer;
  }

  /** Segments viewed so far. */
  get viewed(): number {
    return this.#viewed;
  }

  /** Bytes those segments cover: what the JS heap accounts for them. */
  get viewedBytes(): number {
    return this.#viewedBytes;
  }
}
