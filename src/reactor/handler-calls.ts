/**
 * Calls into a transport's handlers under the one rule every backend follows: a handler that
 * throws aborts its own connection at once (the peer sees a reset, the others carry on) and
 * the error is reported after the turn (HandlerErrors → TransportOptions.onHandlerError).
 * onClose has nothing left to abort: its throw is only reported.
 */
import type { HandlerErrors } from "../api/handler-errors.ts";
import type { TransportHandler } from "../api/transport.ts";

export class HandlerCalls {
  constructor(
    private readonly errors: HandlerErrors,
    /** Abort `conn` (CloseMode.Abort on the backend). */
    private readonly abort: (conn: number) => void,
  ) {}

  opened(handler: TransportHandler, conn: number, listener: number): void {
    try {
      handler.onOpen(conn, listener);
    } catch (error) {
      this.threw(conn, error);
    }
  }

  data(handler: TransportHandler, conn: number, data: Uint8Array, start: number, end: number): void {
    try {
      handler.onData(conn, data, start, end);
    } catch (error) {
      this.threw(conn, error);
    }
  }

  drained(handler: TransportHandler, conn: number): void {
    try {
      handler.onDrain(conn);
    } catch (error) {
      this.threw(conn, error);
    }
  }

  ended(handler: TransportHandler, conn: number): void {
    try {
      handler.onEnd(conn);
    } catch (error) {
      this.threw(conn, error);
    }
  }

  closed(handler: TransportHandler, conn: number, reason: number): void {
    try {
      handler.onClose(conn, reason);
    } catch (error) {
      this.errors.add(error, conn); // already gone: nothing to abort
    }
  }

  /** At the end of a turn: report what handlers threw during it. */
  report(): void {
    this.errors.report();
  }

  private threw(conn: number, error: unknown): void {
    this.errors.add(error, conn);
    this.abort(conn);
  }
}
