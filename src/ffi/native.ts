/**
 * Views over native memory. The only place outside the bindings that needs bun:ffi's
 * pointer helpers, so the rest of the code never imports bun:ffi.
 */
import { ptr, toArrayBuffer, type Pointer } from "bun:ffi";

/**
 * An ArrayBuffer over `size` bytes at native `address`, without a finalizer: the caller owns
 * the memory and must not touch the buffer after unmapping it.
 */
export function arrayBufferAt(address: number, size: number): ArrayBuffer {
  return toArrayBuffer(address as Pointer, 0, size);
}

/** Native address of a typed array's first byte (stable only for native-backed arrays). */
export function addressOf(view: NodeJS.TypedArray): number {
  return Number(ptr(view));
}
