/**
 * Stable `code`s of the UsageErrors thrown by src/pool (tests assert on them). They belong
 * with the other WS_ERR_* codes in src/api/errors.ts once that file lists codes.
 */
export const PoolErrorCode = {
  /** A region, pool or slot was used after free()/destroy(). */
  USE_AFTER_FREE: "WS_ERR_USE_AFTER_FREE",
  /** free()/destroy() called twice. */
  DOUBLE_FREE: "WS_ERR_DOUBLE_FREE",
  /** A slot or object released while it was not in use. */
  DOUBLE_RELEASE: "WS_ERR_DOUBLE_RELEASE",
  /** A slot id that this pool never handed out (out of range or not an integer). */
  FOREIGN_SLOT: "WS_ERR_FOREIGN_SLOT",
  /** More objects released than the pool ever handed out. */
  OVER_RELEASE: "WS_ERR_OVER_RELEASE",
  /** A size, count or node outside what the call accepts. */
  INVALID_ARGUMENT: "WS_ERR_INVALID_ARGUMENT",
} as const;

export type PoolErrorCode = (typeof PoolErrorCode)[keyof typeof PoolErrorCode];
