/**
 * What `listen` and `connect` accept as an address, the same on every backend: a dotted IPv4
 * literal or "localhost" (names are resolved by the caller), and a port in range. Anything
 * else is a UsageError WS_ERR_BAD_ADDRESS, thrown before a slot or a descriptor is taken.
 */
import { ErrorCode, UsageError } from "./errors.ts";

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** True for "a.b.c.d" with each part 0..255, and for "localhost". */
export function isIpv4Host(host: string): boolean {
  if (host === "localhost") return true;
  const parts = DOTTED_QUAD.exec(host);
  if (parts === null) return false;
  for (let i = 1; i <= 4; i++) if (Number(parts[i]) > 255) return false;
  return true;
}

/** Checks a `connect` target: an IPv4 host and a port in 1..65535. */
export function checkConnectAddress(host: string, port: number): void {
  checkHost(host);
  if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    throw new UsageError(ErrorCode.BAD_ADDRESS, `port ${port} is not an integer in 1..65535`);
  }
}

/** Checks a `listen` address: an IPv4 host and a port in 0..65535 (0: pick a free one). */
export function checkListenAddress(host: string, port: number): void {
  checkHost(host);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new UsageError(ErrorCode.BAD_ADDRESS, `port ${port} is not an integer in 0..65535`);
  }
}

function checkHost(host: string): void {
  if (typeof host === "string" && isIpv4Host(host)) return;
  throw new UsageError(ErrorCode.BAD_ADDRESS,
    `"${String(host)}" is not an IPv4 address (resolve names before listening or connecting)`);
}
