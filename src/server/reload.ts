/**
 * server.reload (Bun.serve's): the handlers given replace the running ones. Everything reads
 * them at each call (core.handlers, core.options.fetch/error/upgrade), so open sockets and
 * handshakes in flight use the new ones from their next event. Listening options and limits
 * are fixed at serve() time and ignored here, as Bun ignores them.
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { ReloadOptions, WebSocketHandler } from "../api/websocket.ts";
import type { ResolvedOptions } from "./options.ts";

/** Where reload writes: the core's handlers and hooks. */
export interface ReloadTarget<T> {
  handlers: WebSocketHandler<T>;
  readonly options: ResolvedOptions<T>;
}

function checkHook(name: string, hook: unknown): void {
  if (hook !== undefined && typeof hook !== "function") {
    throw new UsageError(ErrorCode.BAD_OPTION, `reload: ${name} must be a function`);
  }
}

/** `D`: the sockets' data type the caller's handlers claim (Bun types reload the same way). */
export function reloadHandlers<T, D>(target: ReloadTarget<T>, given: ReloadOptions<D>): void {
  const options = given as unknown as ReloadOptions<T>;
  if (options === null || typeof options !== "object") {
    throw new UsageError(ErrorCode.BAD_OPTION, "reload() needs an options object");
  }
  const { websocket, fetch, error, upgrade } = options;
  if (websocket !== undefined && typeof websocket?.message !== "function") {
    throw new UsageError(ErrorCode.BAD_OPTION, "reload: websocket.message(ws, message) is required");
  }
  checkHook("fetch", fetch);
  checkHook("error", error);
  checkHook("upgrade", upgrade);
  // Checked first, then applied: a refused reload changes nothing.
  if (websocket !== undefined) target.handlers = websocket;
  if (fetch !== undefined) target.options.fetch = fetch;
  if (error !== undefined) target.options.error = error;
  if (upgrade !== undefined) target.options.upgrade = upgrade;
}
