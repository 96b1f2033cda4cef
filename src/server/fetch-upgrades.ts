/**
 * `server.upgrade(request, options)` from inside `fetch`, as in Bun.serve: the Requests that
 * `fetch` was handed for WebSocket upgrade requests, each with the handshake that can still
 * accept it. An entry lives from the call of `fetch` until it upgraded or `fetch` settled;
 * a Request kept longer (or one that was not an upgrade request) upgrades nothing: false.
 */
import type { FetchUpgradeOptions } from "../api/websocket.ts";

/** The handshake side of one pending upgrade: accept it now, or say it cannot be. */
export interface UpgradeTarget {
  /** True when the 101 went out and the socket is open (`open` has run). */
  upgradeFromFetch(options: FetchUpgradeOptions<unknown> | undefined): boolean;
}

export class FetchUpgrades {
  private readonly pending = new WeakMap<Request, UpgradeTarget>();
  /** The peer's address of every Request handed to a hook (for server.requestIP). */
  private readonly addresses = new WeakMap<Request, string>();

  offer(request: Request, target: UpgradeTarget): void {
    this.pending.set(request, target);
  }

  withdraw(request: Request): void {
    this.pending.delete(request);
  }

  remember(request: Request, address: string): void {
    this.addresses.set(request, address);
  }

  upgrade(request: Request, options: FetchUpgradeOptions<unknown> | undefined): boolean {
    const target = this.pending.get(request);
    if (target === undefined) return false;
    this.pending.delete(request); // one upgrade per request
    return target.upgradeFromFetch(options);
  }

  requestIP(request: Request): { address: string; family: "IPv4"; port: number } | null {
    const address = this.addresses.get(request);
    if (address === undefined) return null;
    const colon = address.lastIndexOf(":");
    return colon < 0 ? { address, family: "IPv4", port: 0 }
      : { address: address.slice(0, colon), family: "IPv4", port: Number(address.slice(colon + 1)) };
  }
}
