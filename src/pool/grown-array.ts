/**
 * Per-connection state lives in typed arrays indexed by connection slot. They start small
 * and grow (doubling, up to maxConnections) as slots are first used: a server sized for
 * 65,536 connections that serves 100 keeps ~100 slots' worth, which matters beyond memory:
 * JSC sizes its young generation by the heap, and a bigger young generation lets more
 * short-lived message strings pile up in cold memory between collections (see
 * segmented-views.ts; measured 7% on 4 KiB text echo).
 */
type SlotArray = Int32Array | Uint32Array | Uint8Array | Float64Array;

/** First capacity of growable per-connection state (or maxConnections when smaller). */
export const INITIAL_SLOTS = 1024;

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
