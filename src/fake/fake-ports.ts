/**
 * The fake network's port table: which listener answers on which port, free-port selection for
 * `port: 0` and local ports for outgoing connections. Every address is loopback: the hostname a
 * listener binds is recorded but not used to route.
 */
import { EADDRINUSE } from "../api/errno.ts";
import { SystemError } from "../api/errors.ts";
import type { FakeListenerEntry } from "./fake-socket.ts";

export type { FakeListenerEntry };

/** Linux's default net.ipv4.ip_local_port_range. */
const EPHEMERAL_PORT_FIRST = 32768;
const EPHEMERAL_PORT_LAST = 60999;


export class FakePortTable {
  private readonly byPort = new Map<number, FakeListenerEntry[]>();
  private nextEphemeralPort = EPHEMERAL_PORT_FIRST;

  /**
   * The port a new listener gets: `requested`, or a free ephemeral port for 0. Throws
   * SystemError EADDRINUSE when the port is taken (unless every holder and the newcomer set
   * reusePort, as SO_REUSEPORT allows). The caller checked the port (checkListenAddress).
   */
  choosePort(requested: number, reusePort: boolean): number {
    if (requested === 0) return this.freeEphemeralPort();
    const holders = this.byPort.get(requested);
    if (holders === undefined) return requested;
    const shareable = reusePort && holders.every((entry) => entry.reusePort);
    if (!shareable) {
      throw new SystemError("bind", EADDRINUSE, `fake port ${requested} already has a listener`);
    }
    return requested;
  }

  add(entry: FakeListenerEntry): void {
    const holders = this.byPort.get(entry.port);
    if (holders === undefined) this.byPort.set(entry.port, [entry]);
    else holders.push(entry);
  }

  remove(entry: FakeListenerEntry): void {
    const holders = this.byPort.get(entry.port);
    if (holders === undefined) return;
    const index = holders.indexOf(entry);
    if (index >= 0) holders.splice(index, 1);
    if (holders.length === 0) this.byPort.delete(entry.port);
  }

  /** The listeners on `port` (several with reusePort), or undefined when none. */
  lookup(port: number): readonly FakeListenerEntry[] | undefined {
    return this.byPort.get(port);
  }

  /** A local port for an outgoing connection (shown by the server's remoteAddress). */
  ephemeralPort(): number {
    const port = this.nextEphemeralPort;
    this.nextEphemeralPort = port === EPHEMERAL_PORT_LAST ? EPHEMERAL_PORT_FIRST : port + 1;
    return port;
  }

  private freeEphemeralPort(): number {
    const rangeSize = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    for (let tries = 0; tries < rangeSize; tries++) {
      const port = this.ephemeralPort();
      if (!this.byPort.has(port)) return port;
    }
    throw new SystemError("bind", EADDRINUSE, "every fake ephemeral port has a listener");
  }
}
