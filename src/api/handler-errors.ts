/**
 * The one rule for a throwing transport handler, shared by every backend: the backend catches
 * the throw, aborts that connection, and hands the error here; after the turn, `report()`
 * passes each held error to TransportOptions.onHandlerError. Reporting waits for the turn's
 * end so the hook (or an uncaught-exception handler) sees the transport in a settled state,
 * never halfway through dispatching completions.
 */

/** The default report: re-thrown from a microtask, an uncaught exception like any other. */
export function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

export class HandlerErrors {
  private readonly onHandlerError: (error: unknown, conn: number) => void;
  // Two parallel arrays, empty unless something threw: nothing is allocated per turn.
  private errors: unknown[] = [];
  private conns: number[] = [];

  constructor(onHandlerError?: (error: unknown, conn: number) => void) {
    this.onHandlerError = onHandlerError ?? rethrowLater;
  }

  /** True when a handler threw since the last `report`. */
  get pending(): boolean {
    return this.errors.length > 0;
  }

  /** Keeps `error`, thrown by a handler of `conn`, for the end of the turn. */
  add(error: unknown, conn: number): void {
    this.errors.push(error);
    this.conns.push(conn);
  }

  /** At the end of a turn: each held error to the hook, in order; a throwing hook is re-thrown. */
  report(): void {
    if (this.errors.length === 0) return;
    // Taken first: the hook may drive the transport, and new throws belong to a later report.
    const errors = this.errors;
    const conns = this.conns;
    this.errors = [];
    this.conns = [];
    for (let i = 0; i < errors.length; i++) {
      try {
        this.onHandlerError(errors[i], conns[i]);
      } catch (hookError) {
        rethrowLater(hookError);
      }
    }
  }
}
