/**
 * What a binary message (and a ping/pong payload) is handed as. Bun.serve hands a `Buffer`,
 * and code written for it calls Buffer methods on messages, so ours are Buffers too, on
 * every backend. But a Buffer's own `slice()` is a view (Node's choice, since deprecated),
 * and "copy it with `.slice()`" is how one keeps a view into memory that is reused as soon
 * as the handler returns: so the Buffers we hand copy on `slice()`, as every other typed
 * array does. `subarray()` stays a view.
 *
 * Short messages are copied outright: for up to COPY_MAX bytes a fresh Buffer costs what a
 * view costs (measured: 16 B ~50 ns either way, 128 B 75 vs 130 ns for a view with its
 * prototype set), and then it may be kept as it is. Longer ones are views (zero copy).
 */

/** Messages up to this many bytes are handed as copies (kept safely as they are). */
export const COPY_MAX = 128;

function copyingSlice(this: Uint8Array, start?: number, end?: number): Buffer {
  // A plain TypedArray slice of a Buffer copies; its species makes the result a Buffer.
  return Uint8Array.prototype.slice.call(this, start, end) as Buffer;
}

/** Buffer.prototype with a slice() that copies: the prototype of every view we hand. */
const MESSAGE_VIEW_PROTOTYPE: Buffer = Object.create(Buffer.prototype, {
  slice: { value: copyingSlice, writable: true, configurable: true },
});

const bufferSubarray = Buffer.prototype.subarray as (this: Uint8Array, start: number, end: number) => Buffer;

/** `data[start, end)` as a Buffer valid only during the handler: a copy when short. */
export function messageBytes(data: Uint8Array, start: number, end: number): Buffer {
  const length = end - start;
  if (length <= COPY_MAX) return copyOf(data, start, length);
  const view = bufferSubarray.call(data, start, end);
  Object.setPrototypeOf(view, MESSAGE_VIEW_PROTOTYPE);
  return view;
}

/** True when `messageBytes` handed a view (memory that is reused after the handler). */
export function isMessageView(message: Uint8Array): boolean {
  return Object.getPrototypeOf(message) === MESSAGE_VIEW_PROTOTYPE;
}

function copyOf(data: Uint8Array, start: number, length: number): Buffer {
  const copy = Buffer.allocUnsafe(length);
  // A byte loop: cheaper than any native copy at these sizes.
  for (let i = 0; i < length; i++) copy[i] = data[start + i];
  return copy;
}
