/**
 * The extra headers an `upgrade` hook or `server.upgrade(req, { headers })` gives for the
 * 101, split from the subprotocol: Bun-style code names the subprotocol as a
 * `Sec-WebSocket-Protocol` response header, which we take from there (it is validated
 * against the offer like `protocol`).
 */
import type { UpgradeAcceptance } from "../api/websocket.ts";

export interface SplitHeaders {
  headers: [string, string][] | undefined;
  headerProtocol: string | undefined;
}
const NO_EXTRA_HEADERS: SplitHeaders = { headers: undefined, headerProtocol: undefined };

/**
 * Bun-style code names the subprotocol as a `Sec-WebSocket-Protocol` response header; we
 * take it from there (it is validated against the offer like `protocol`).
 */
export function splitProtocolHeader(input: UpgradeAcceptance<unknown>["headers"]): SplitHeaders {
  // The closure (and so a scope object per call) only when there are headers to split.
  return input === undefined ? NO_EXTRA_HEADERS : splitGivenHeaders(input);
}

function splitGivenHeaders(
  input: NonNullable<UpgradeAcceptance<unknown>["headers"]>,
): SplitHeaders {
  // Entries keep the user's spelling of names (a Headers object would lower-case them).
  const entries: [string, string][] = input instanceof Headers ? [...input.entries()]
    : Array.isArray(input) ? input : Object.entries(input);
  let headerProtocol: string | undefined;
  const headers = entries.filter(([name, value]) => {
    if (name.toLowerCase() !== "sec-websocket-protocol") return true;
    headerProtocol = value;
    return false;
  });
  return { headers, headerProtocol };
}
