/**
 * Connection ids of the Bun backend: small integers, indexes of a table that grows one slot
 * at a time up to maxConnections. A freed id is reused (last freed first), and only after
 * the connection's onClose returned, so a handler never sees its id given to another.
 */
import type { TransportHandler } from "../api/transport.ts";
import type { BunBufferCache } from "./bun-byte-queue.ts";
import { BunConnection, BunConnState } from "./bun-connection.ts";

export class BunSlots {
  private readonly table: (BunConnection | null)[] = [];
  private readonly freeIds: number[] = [];
  /** Connections whose onClose has not returned yet. */
  count = 0;

  constructor(private readonly maxConnections: number, private readonly cache: BunBufferCache) {}

  /** The connection holding `conn`, or null (never handed out, or freed). */
  get(conn: number): BunConnection | null {
    return this.table[conn] ?? null;
  }

  /** A new connection in a free slot, or null when maxConnections are taken. */
  open(handler: TransportHandler, listener: number, state: BunConnState,
    remote: string): BunConnection | null {
    let id: number;
    if (this.freeIds.length > 0) id = this.freeIds.pop()!;
    else if (this.table.length < this.maxConnections) id = this.table.push(null) - 1;
    else return null;
    const c = new BunConnection(id, handler, listener, state, remote, this.cache);
    this.table[id] = c;
    this.count++;
    return c;
  }

  /** After onClose returned: the id may be handed out again. */
  free(c: BunConnection): void {
    c.state = BunConnState.FREE;
    this.table[c.id] = null;
    this.freeIds.push(c.id);
    this.count--;
  }

  /** Every connection whose onClose has not returned, in id order. */
  all(): BunConnection[] {
    return this.table.filter((c): c is BunConnection => c !== null);
  }

  /** Forgets every connection without callbacks (closeNow). */
  clear(): void {
    for (const c of this.table) if (c !== null) c.state = BunConnState.FREE;
    this.table.length = 0;
    this.freeIds.length = 0;
    this.count = 0;
  }
}
