/**
 * The Transport's send methods as the backends that queue in ConnectionSends (io_uring,
 * epoll) share them: check the range, refuse a connection that is not open or connecting
 * (-EPIPE), queue all or nothing, and tell the backend which connection has bytes to write.
 */
import { EPIPE } from "../api/errno.ts";
import { assert } from "../api/errors.ts";
import { checkSendRange, type Lender } from "../api/transport.ts";
import type { ConnectionSends } from "./connection-sends.ts";
import { ConnState, type ConnectionTable } from "./connection-table.ts";

const { OPEN, CONNECTING } = ConnState;

export class SendFront {
  constructor(
    private readonly table: ConnectionTable,
    private readonly sends: ConnectionSends,
    /** Called once bytes were queued for `conn`: write them this turn. */
    private readonly queuedFor: (conn: number) => void,
  ) {}

  send(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    if (!this.writable(conn)) return -EPIPE;
    const queued = this.sends.append(conn, data, start, end);
    if (queued > 0) this.queuedFor(conn);
    return queued;
  }

  sendUrgent(conn: number, data: Uint8Array, start: number, end: number): number {
    checkSendRange(data, start, end);
    if (!this.writable(conn)) return -EPIPE;
    const queued = this.sends.appendUrgent(conn, data, start, end);
    if (queued > 0) this.queuedFor(conn);
    return queued;
  }

  sendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    checkSendRange(first, firstStart, firstEnd);
    checkSendRange(second, secondStart, secondEnd);
    if (!this.writable(conn)) return -EPIPE;
    const queued = this.sends.appendPair(conn, first, firstStart, firstEnd,
      second, secondStart, secondEnd);
    if (queued > 0) this.queuedFor(conn);
    return queued;
  }

  sendLoaned(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    payload: Uint8Array, payloadStart: number, payloadEnd: number, payloadAddress: number,
    lender: Lender, token: number): number {
    checkSendRange(header, headerStart, headerEnd);
    checkSendRange(payload, payloadStart, payloadEnd);
    if (!this.writable(conn)) return -EPIPE;
    assert(payloadEnd > payloadStart, "a loan of at least one byte");
    const queued = this.sends.appendLoan(conn, header, headerStart, headerEnd, payloadAddress,
      payloadEnd - payloadStart, lender, token);
    if (queued > 0) this.queuedFor(conn);
    return queued;
  }

  /** Bytes queued and not yet taken by the kernel (0 for a free slot). */
  bufferedAmount(conn: number): number {
    return this.table.states[conn] === ConnState.FREE ? 0 : this.sends.queued(conn);
  }

  /** Open or still connecting: a send may be queued. */
  private writable(conn: number): boolean {
    const state = this.table.states[conn];
    return state === OPEN || state === CONNECTING;
  }
}
