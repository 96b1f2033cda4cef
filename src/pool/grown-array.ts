/**
 * Per-connection state lives in typed arrays indexed by connection slot. They start at
 * INITIAL_SLOTS and grow (doubling, up to maxConnections) as slots are used: a server sized
 * for 65,536 connections does not carry 65,536 slots' worth (~7.5 MB) from the start, which
 * matters beyond memory: JSC sizes its young generation by the heap, and a bigger young
 * generation lets more short-lived message strings pile up in cold memory between
 * collections (see segmented-views.ts; measured 7% on 4 KiB text echo). A regrowth leaves
 * the old arrays to the collector, so the start is not made smaller than common servers need.
 */
type SlotArray = Int32Array | Uint32Array | Uint8Array | Float64Array;

/** First capacity of growable per-connection state (or maxConnections when smaller): ~1 MB. */
export const INITIAL_SLOTS = 8192;

/** The first capacity: `requested` (default INITIAL_SLOTS), at least 1, at most `max`. */
export function initialCapacity(max: number, requested: number = INITIAL_SLOTS): number {
  return Math.max(1, Math.min(max, requested));
}

/** The next capacity after `current`, bounded by `max`. */
export function nextCapacity(current: number, max: number): number {
  return Math.min(max, Math.max(1, current * 2));
}

/** A copy of `array` lengthened to `length`; new elements hold `fill`. */
export function grown<A extends SlotArray>(array: A, length: number, fill = 0): A {
  const Constructor = array.constructor as new (length: number) => A;
  const next = new Constructor(length);
  (next as SlotArray).set(array as ArrayLike<number>);
  if (fill !== 0) next.fill(fill, array.length);
  return next;
}
