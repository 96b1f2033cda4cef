import { errnoName } from "./errno.ts";

/**
 * A failed system call: carries the call's name, the errno, its symbolic name and, where we
 * know the usual cause, a hint that says what to do.
 */
export class SystemError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(call: string, errno: number, hint?: string) {
    const positive = errno < 0 ? -errno : errno;
    const code = errnoName(positive);
    super(`${call} failed: ${code} (errno ${positive})${hint ? ` — ${hint}` : ""}`);
    this.name = "SystemError";
    this.call = call;
    this.errno = positive;
    this.code = code;
    this.hint = hint;
  }
}

/** Misuse of an API (double release, use after free...): a bug in the caller, not the system. */
export class UsageError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.code = code;
  }
}

/** `asserts cond`; keep messages constant so the hot path builds no strings. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
