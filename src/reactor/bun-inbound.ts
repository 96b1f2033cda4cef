/**
 * Received bytes on the Bun backend. Bun hands every read as a fresh Buffer; we pass it to
 * onData as it is, or hold it (in order, per connection) while the connection is paused or
 * handlers must wait for the turn's end. What stats().recvBuffers reports here: the sizes
 * TransportOptions set (Bun sizes its reads itself), and as inUse the reads being delivered
 * or held.
 */
import type { PoolStats } from "../api/pool.ts";
import type { BunConnection } from "./bun-connection.ts";

export class BunInbound {
  /** Bytes received on open connections (stats().bytesIn). */
  bytesIn = 0;
  private inUse = 0;
  private highWater = 0;

  constructor(private readonly bufferSize: number, private readonly bufferCount: number) {}

  /** A read arrived; `release` follows once it was delivered (or dropped). */
  received(data: Uint8Array): void {
    this.bytesIn += data.length;
    if (++this.inUse > this.highWater) this.highWater = this.inUse;
  }

  release(): void {
    this.inUse--;
  }

  /** Keeps a read for later delivery, behind the ones held already. */
  hold(c: BunConnection, data: Uint8Array): void {
    (c.held ??= []).push(data);
  }

  /** The oldest held read of `c` (the caller checked there is one). */
  takeHeld(c: BunConnection): Uint8Array {
    const held = c.held!;
    const data = held.shift()!;
    if (held.length === 0) c.held = null;
    return data;
  }

  /** The connection is gone: what it held (and its pending FIN) is dropped. */
  dropHeld(c: BunConnection): void {
    if (c.held !== null) this.inUse -= c.held.length;
    c.held = null;
    c.endPending = false;
  }

  stats(): PoolStats {
    return {
      slotSize: this.bufferSize, capacity: this.bufferCount, inUse: this.inUse,
      highWater: this.highWater, regionKind: "plain", node: -1,
      bytes: this.bufferSize * this.bufferCount,
    };
  }
}
