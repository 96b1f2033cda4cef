/**
 * How a server stops, from what `server.stop(...)` was given (Bun's meaning first):
 * - "drain" (`stop()`, `stop(false)`): stop accepting; open connections go on until they
 *   close by themselves (HTTP ones after their current answer); resolves when none is left.
 * - "close" (`stop(true)`): close every connection: 1001 to each WebSocket, wait for the
 *   answers up to closeTimeout, flush, then drop what is left (Bun drops at once).
 * - "abort" (`stop("abort")`, ours): drop every connection now.
 * A later call may only make a running stop stronger (drain < close < abort).
 */
import { ErrorCode, UsageError } from "../api/errors.ts";

export type StopMode = "drain" | "close" | "abort";
/** What `server.stop` takes. */
export type StopArgument = boolean | "abort" | undefined;

const STRENGTH: Record<StopMode, number> = { drain: 0, close: 1, abort: 2 };

export function stopModeOf(argument: StopArgument): StopMode {
  if (argument === undefined || argument === false) return "drain";
  if (argument === true) return "close";
  if (argument === "abort") return "abort";
  throw new UsageError(ErrorCode.BAD_OPTION,
    `server.stop takes true (close every connection), false (let them end) or "abort", not ${String(argument)}`);
}

/** True when `next` asks for more than `current` does. */
export function isStronger(next: StopMode, current: StopMode): boolean {
  return STRENGTH[next] > STRENGTH[current];
}

/** The argument that asks for `mode` (for the workers of a supervisor). */
export function stopArgumentOf(mode: StopMode): StopArgument {
  return mode === "drain" ? false : mode === "close" ? true : "abort";
}
