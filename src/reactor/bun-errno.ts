/**
 * Bun's socket errors as transport results. Bun reports a failed call with an Error whose
 * `code` is the symbolic name ("ECONNREFUSED") and whose `errno` is the platform's number,
 * which differs between Linux and macOS/BSD. The contract wants Linux values everywhere, so
 * the name is what we translate; the number is trusted only on Linux.
 */
import * as errno from "../api/errno.ts";
import { SystemError } from "../api/errors.ts";

/** "ECONNRESET" → 104, for every name src/api/errno.ts defines. */
const ERRNO_BY_NAME = new Map<string, number>();
for (const [name, value] of Object.entries(errno)) {
  if (typeof value === "number") ERRNO_BY_NAME.set(name, value);
}

/** The errno (positive, Linux numbering) of a Bun error, or `fallback` when it names none. */
export function errnoOfBunError(error: unknown, fallback: number): number {
  if (typeof error !== "object" || error === null) return fallback;
  const { code, errno: number } = error as { code?: unknown; errno?: unknown };
  if (typeof code === "string") {
    const known = ERRNO_BY_NAME.get(code);
    if (known !== undefined) return known;
  }
  if (process.platform === "linux" && typeof number === "number" && number !== 0) {
    return number < 0 ? -number : number;
  }
  return fallback;
}

/** A SystemError for a Bun call that threw (Bun.listen: EADDRINUSE...). */
export function systemErrorOfBunError(call: string, error: unknown): SystemError {
  const positive = errnoOfBunError(error, errno.EIO);
  const message = error instanceof Error ? error.message : String(error);
  return new SystemError(call, positive, `Bun: ${message}`);
}
