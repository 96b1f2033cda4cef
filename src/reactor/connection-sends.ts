/**
 * Outgoing bytes of every connection of a transport, shared by the backends that send from
 * native memory (io_uring, epoll): the send pool (chunks of pool memory, the cap of a
 * transport's send memory), the native scratch the kernel reads (a msghdr + iovecs per
 * connection, the loans' frame headers), and two queues per connection: the ordinary one
 * and the urgent one of `sendUrgent`, which goes next whenever the ordinary queue is between
 * two of its units. At most one send per connection is in flight, from one of the two.
 * An idle pool gives its pages back to the system (once a second, BytePool.trimIfIdle).
 */
import type { Lender } from "../api/transport.ts";
import type { RegionAllocateOptions } from "../pool/region.ts";
import { BytePool } from "../pool/byte-pool.ts";
import { MemoryRegion } from "../pool/region.ts";
import { SegmentedViews } from "../pool/segmented-views.ts";
import {
  LOAN_HEADER_SIZE, LOANS_MAX, MESSAGE_AREA_SIZE, MESSAGE_SEGMENT_CONNECTIONS, SendQueues,
  SMALL_SLOT_SIZE,
} from "./send-queues.ts";

/** Small slots at most (64 Ki: 32 MiB of address space, touched as used). */
const SMALL_SLOTS_MAX = 65_536;
/** How often an idle send pool is offered to give its pages back. */
const TRIM_INTERVAL_MS = 1000;

export class ConnectionSends {
  readonly pool: BytePool;
  /** The first bytes of an empty queue, when they are few (see send-queues.ts). */
  private readonly smallSlots: BytePool;
  /** The ordinary queues: bytes of send, sendPair, sendLoaned, in order. */
  readonly queues: SendQueues;
  /** sendUrgent's bytes (pongs, pings): chains of their own in the same chunks, no loans. */
  readonly urgent: SendQueues;
  private readonly scratch: MemoryRegion;
  private readonly trimTimer: ReturnType<typeof setInterval>;

  constructor(initialSlots: number, maxConnections: number, chunkSize: number, chunkCount: number,
    memory: RegionAllocateOptions, node: number | undefined) {
    this.pool = new BytePool(chunkSize, chunkCount, memory);
    try {
      // One per connection that may have a short send queued (virtual until touched).
      this.smallSlots = new BytePool(SMALL_SLOT_SIZE, Math.min(maxConnections, SMALL_SLOTS_MAX),
        { ...memory, hugepages: "off" });
    } catch (error) {
      this.pool.destroy();
      throw error;
    }
    try {
      // Touched and viewed lazily: it costs (in RSS and JSC's heap accounting) what is used.
      const messageBytes = maxConnections * MESSAGE_AREA_SIZE;
      const loanHeaderBytes = LOANS_MAX * LOAN_HEADER_SIZE;
      this.scratch = MemoryRegion.allocate(messageBytes + loanHeaderBytes, { hugepages: "off", node });
    } catch (error) {
      this.pool.destroy();
      this.smallSlots.destroy();
      throw error;
    }
    const messageBytes = maxConnections * MESSAGE_AREA_SIZE;
    const messageAreas = new SegmentedViews(this.scratch, messageBytes,
      MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE);
    const loanHeaders = {
      address: this.scratch.pointer + messageBytes,
      view: this.scratch.viewRange(messageBytes, messageBytes + LOANS_MAX * LOAN_HEADER_SIZE),
    };
    this.queues = new SendQueues(initialSlots, this.pool, this.pool.slotSize, chunkCount,
      messageAreas, loanHeaders, LOANS_MAX, this.smallSlots);
    // One send per connection is in flight, so both queues may use its message area.
    this.urgent = new SendQueues(initialSlots, this.pool, this.pool.slotSize, chunkCount,
      messageAreas, loanHeaders, 0, this.smallSlots);
    this.trimTimer = setInterval(() => {
      this.pool.trimIfIdle();
      this.smallSlots.trimIfIdle();
    }, TRIM_INTERVAL_MS);
    this.trimTimer.unref();
  }

  /** Bytes queued on either queue and not yet confirmed sent. */
  queued(conn: number): number {
    return this.queues.queuedBytes(conn) + this.urgent.queuedBytes(conn);
  }

  append(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.queues.append(conn, data, start, end);
  }

  appendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    return this.queues.appendPair(conn, first, firstStart, firstEnd, second, secondStart, secondEnd);
  }

  appendLoan(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    address: number, length: number, lender: Lender, token: number): number {
    return this.queues.appendLoan(conn, header, headerStart, headerEnd, address, length, lender, token);
  }

  /** sendUrgent: with nothing queued ahead there is nothing to overtake (ordinary queue). */
  appendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    return this.queued(conn) > 0 ? this.urgent.append(conn, data, start, end)
      : this.queues.append(conn, data, start, end);
  }

  /**
   * The queue the next send of `conn` comes from: urgent bytes once the ordinary queue is
   * between two of its units, else the ordinary one; null while a send is in flight. Then
   * `prepare(conn, this.wantsUnitEnd(conn))` on it.
   */
  nextSource(conn: number): SendQueues | null {
    if (this.queues.isSending(conn) || this.urgent.isSending(conn)) return null;
    if (this.urgent.queuedBytes(conn) > 0 && this.queues.atUnitBoundary(conn)) return this.urgent;
    return this.queues;
  }

  /** Urgent bytes wait: the ordinary queue's next send should end where a unit ends. */
  wantsUnitEnd(conn: number): boolean {
    return this.urgent.queuedBytes(conn) > 0;
  }

  /** The send in flight wrote `bytes`. Returns true when nothing is queued any more. */
  complete(conn: number, bytes: number): boolean {
    const sent = this.urgent.isSending(conn) ? this.urgent : this.queues;
    sent.complete(conn, bytes);
    return this.queued(conn) === 0;
  }

  isSending(conn: number): boolean {
    return this.queues.isSending(conn) || this.urgent.isSending(conn);
  }

  abandonInFlight(conn: number): void {
    this.queues.abandonInFlight(conn);
    this.urgent.abandonInFlight(conn);
  }

  /** Teardown: drop what is not in flight (its memory is free at once). */
  dropUnsent(conn: number): void {
    this.queues.dropUnsent(conn);
    this.urgent.dropUnsent(conn);
  }

  clear(conn: number): void {
    this.queues.clear(conn);
    this.urgent.clear(conn);
  }

  grow(slots: number): void {
    this.queues.grow(slots);
    this.urgent.grow(slots);
  }

  get loansOut(): number {
    return this.queues.loansOut;
  }

  destroy(): void {
    clearInterval(this.trimTimer);
    this.pool.destroy();
    this.smallSlots.destroy();
    this.scratch.free();
  }
}
