/**
 * What the per-message deflater and inflater share: the output buffer (their own, or the
 * server's shared one: see deflate-sessions.ts) and their lifetime.
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import { NativeBuffer } from "../ffi/zlib.ts";

export abstract class MessageCodec {
  protected readonly scratch: NativeBuffer;
  /** False when the scratch is the caller's: then it is neither freed nor counted here. */
  protected readonly ownsScratch: boolean;
  protected outputLength = 0;
  private isDisposed = false;
  /** The zlib stream, ended by dispose(). */
  protected abstract readonly stream: { end(): void };

  constructor(scratch: NativeBuffer | undefined, private readonly kind: string) {
    this.scratch = scratch ?? new NativeBuffer();
    this.ownsScratch = scratch === undefined;
  }

  /** The last message's output (a view into native memory, valid until the next call). */
  get output(): Uint8Array<ArrayBuffer> {
    return this.scratch.view.subarray(0, this.outputLength);
  }

  /** Capacity of the output scratch buffer now. */
  get scratchCapacity(): number {
    return this.scratch.capacity;
  }

  /** Frees its own scratch buffer (the last `output` becomes invalid); zlib's window stays. */
  trimScratch(): void {
    if (this.ownsScratch) this.scratch.free();
    this.outputLength = 0;
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Frees zlib's state and the scratch; idempotent. `output` must not be used afterwards. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.stream.end();
    this.trimScratch();
  }

  protected checkLive(): void {
    if (this.isDisposed) throw new UsageError(ErrorCode.USE_AFTER_FREE, `${this.kind} used after dispose()`);
  }
}
