/**
 * Views over native memory, so that bun:ffi stays inside src/ffi. The pool layer owns the
 * mappings; these helpers only make typed-array windows onto them.
 */
import { ptr, toArrayBuffer, type Pointer } from "bun:ffi";

/**
 * A Uint8Array over `size` bytes at native `pointer`. No finalizer is attached: the caller
 * owns the memory and must stop using the view before unmapping it (a view cannot be
 * revoked; touching it after munmap is a segfault, not an exception).
 */
export function viewOf(pointer: number, size: number): Uint8Array {
  return new Uint8Array(arrayBufferAt(pointer, size));
}

/** An ArrayBuffer over native memory (same ownership rules as viewOf), for word views. */
export function arrayBufferAt(pointer: number, size: number): ArrayBuffer {
  return toArrayBuffer(pointer as Pointer, 0, size);
}

/**
 * The native address of a typed array's first byte. For a view made by viewOf it is stable;
 * for an ordinary JS typed array it is valid only during a synchronous FFI call (small
 * arrays live in the GC heap and can move: Bun issue 32054).
 */
export function addressOf(view: NodeJS.TypedArray): number {
  return ptr(view);
}
