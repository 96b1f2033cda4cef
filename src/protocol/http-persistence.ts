/**
 * Whether a client lets its connection persist after the answer to a request (RFC 9112
 * §9.3): HTTP/1.1 persists unless the request's Connection header has the "close" option;
 * HTTP/1.0 persists only when it asks with "keep-alive" (the HTTP/1.0 extension RFC 9112
 * §C.2.2 describes) and does not also say "close". Whether the server then keeps it is the
 * server's call (it may be stopping, or the response may need a close to end).
 */
import { listHasToken } from "./http-grammar.ts";
import { CONNECTION } from "./http-header-names.ts";
import type { HttpRequest } from "./http-request-parser.ts";

export function requestAllowsPersistence(request: HttpRequest): boolean {
  const connection = request.headers.get(CONNECTION);
  if (listHasToken(connection, "close")) return false;
  return request.version === "1.1" || listHasToken(connection, "keep-alive");
}
