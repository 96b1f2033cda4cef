/**
 * Stable `code`s of the UsageErrors thrown by src/pool (tests assert on them): the pool's
 * part of the one catalogue, ErrorCode in src/api/errors.ts.
 */
import { ErrorCode } from "../api/errors.ts";

export const PoolErrorCode = {
  /** A region, pool or slot was used after free()/destroy(). */
  USE_AFTER_FREE: ErrorCode.USE_AFTER_FREE,
  /** free()/destroy() called twice. */
  DOUBLE_FREE: ErrorCode.DOUBLE_FREE,
  /** A slot or object released while it was not in use. */
  DOUBLE_RELEASE: ErrorCode.DOUBLE_RELEASE,
  /** A slot id that this pool never handed out (out of range or not an integer). */
  FOREIGN_SLOT: ErrorCode.FOREIGN_SLOT,
  /** More objects released than the pool ever handed out. */
  OVER_RELEASE: ErrorCode.OVER_RELEASE,
  /** A size, count or node outside what the call accepts. */
  INVALID_ARGUMENT: ErrorCode.INVALID_ARGUMENT,
} as const;

export type PoolErrorCode = (typeof PoolErrorCode)[keyof typeof PoolErrorCode];
