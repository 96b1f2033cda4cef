/**
 * Outgoing bytes of every connection, kept in fixed-size chunks of native pool memory (the
 * kernel reads them after the SEND is submitted). A connection's queue is a chain of chunk
 * ids linked through one shared Int32Array, so queuing allocates nothing; an idle
 * connection holds no chunk. At most one send per connection is in flight: the bytes
 * [headOffset, headOffset + inFlight) of the chain. New bytes may be appended meanwhile.
 *
 * A chain may also hold loans: ranges of someone else's native memory queued without a copy
 * (a received message echoed or broadcast, see `appendLoan`). Entry ids below chunkCount are
 * pool chunks, the rest loans; a loan is handed back to its lender when sent or dropped. A
 * loan carries its frame header in a small native slot of its own and goes out as two
 * iovecs: headers do not take a pool chunk each (a 16 KiB chunk per 14-byte header was most
 * of what a slow reader's queue of loans held beyond the loans themselves).
 *
 * The first entry of an empty queue, when the bytes fit, is a small slot (SMALL_SLOT_SIZE)
 * from a pool of its own instead of a chunk: a chat line published to a room of 10,000
 * sockets takes 10,000 small slots, not 10,000 chunks (160 MiB, past the whole pool). Bytes
 * that follow go to chunks as before. Entry ids: chunks, then small slots, then loans (the
 * loan entries grow on demand, doubling up to the cap the caller gives).
 */
import { ENOBUFS } from "../api/errno.ts";
import { assert } from "../api/errors.ts";
import type { Lender } from "../api/transport.ts";
import { IOVEC_SIZE, MSGHDR_IOV, MSGHDR_IOVLEN } from "../ffi/io-uring-abi.ts";
import { grown } from "../pool/grown-array.ts";

/** Native memory for loans' headers: LOAN_HEADER_SIZE bytes per loan, loan i at i × 16. */
export interface LoanHeaderArea {
  readonly address: number;
  readonly view: Uint8Array;
}

/** Where chunk memory comes from (a BytePool). */
export interface ChunkSource {
  acquire(): number;
  release(id: number): void;
  slotView(id: number): Uint8Array;
  slotAddress(id: number): number;
  readonly available: number;
}

/** iovecs per SENDMSG: bounds the native message area per connection. */
export const IOVECS_PER_SEND = 16;
/** msghdr (56 B, padded to 64) followed by the iovec array. */
export const MESSAGE_AREA_SIZE = 64 + IOVECS_PER_SEND * IOVEC_SIZE;
const MESSAGE_SEGMENT_SHIFT = 10;
/** Message areas are viewed this many connections at a time (320 KiB). */
export const MESSAGE_SEGMENT_CONNECTIONS = 1 << MESSAGE_SEGMENT_SHIFT;

/**
 * Native memory for SENDMSG: one MESSAGE_AREA_SIZE area per connection, the kernel reads it
 * after submission. Viewed a segment at a time, so only the segments of connections that
 * ever sent from several chunks are viewed (see pool/segmented-views.ts).
 */
export interface MessageAreas {
  /** Native address of connection 0's area; connection c's is at c * MESSAGE_AREA_SIZE. */
  readonly address: number;
  /** The areas of connections [index * MESSAGE_SEGMENT_CONNECTIONS, ...), as one view. */
  segment(index: number): Uint8Array;
}

const TWO_32 = 0x1_0000_0000;
/** Loans queued at once at most, over all connections (a publish to 10,000 sockets with 4
 * in flight takes 40,000); entries start at LOANS_INITIAL and double as needed. */
export const LOANS_MAX = 1 << 18;
const LOANS_INITIAL = 1024;
/** Room for a loan's header (a WebSocket frame header is at most 14 bytes). */
export const LOAN_HEADER_SIZE = 16;
/** Size of a small slot (see the module comment): a short frame or a 101 response. */
export const SMALL_SLOT_SIZE = 512;

/** Below this, copy byte by byte (cheaper than any native call). */
const SMALL_COPY = 64;
const copyBytes = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array,
  targetStart: number, sourceStart: number, sourceEnd: number) => number;

export class SendQueues {
  /** Filled by `prepare`: a single range to SEND, or a msghdr to SENDMSG. */
  sendAddress = 0;
  sendLength = 0;

  private readonly chunks: ChunkSource;
  private readonly chunkSize: number;
  /** Small slots, and the entry id of small slot 0 (after the chunks). */
  private readonly small: ChunkSource;
  private readonly smallBase: number;
  /** Entry id of loan 0 (after the small slots); loans in use now at most, and the cap. */
  private readonly loanBase: number;
  private loanCount: number;
  private readonly loanMax: number;
  private head: Int32Array;
  private tail: Int32Array;
  private headOffset: Int32Array;
  private inFlight: Int32Array;
  private queued: Float64Array;
  /** 1 when the next unsent byte begins a unit (the bytes of one append call). */
  private atUnitStart: Uint8Array;
  /** 1 when the send in flight ends where a unit ends. */
  private inFlightEndsUnit: Uint8Array;
  private readonly chunkCount: number;
  /** Per entry (chunk or loan): the next entry of its chain, and its bytes. */
  private chunkNext: Int32Array;
  private chunkLength: Int32Array;
  /** Per entry: 1 when its last byte is the last byte of a unit (an append ended there). */
  private unitEnds: Uint8Array;
  // Loans, indexed by entry id - loanBase.
  private loanAddress: Float64Array;
  /** Bytes of the loan's header (in its slot of loanHeaders), sent before the payload. */
  private loanHeaderLength: Uint8Array;
  private readonly loanHeaders: LoanHeaderArea;
  private loanToken: Int32Array;
  private readonly loanLender: (Lender | undefined)[];
  private freeLoans: Int32Array;
  private freeLoanCount: number;
  private readonly messageAreas: MessageAreas;
  /** Word views of the message area segments, made on first SENDMSG in each. */
  private readonly messageWords: (Uint32Array | undefined)[] = [];
  private readonly messageAddress: number;

  /**
   * @param loanHeaders native room for loanMax headers (LOAN_HEADER_SIZE each).
   * @param loanMax loans queued at once, over all connections (beyond, callers copy).
   */
  constructor(maxConnections: number, chunks: ChunkSource, chunkSize: number,
    chunkCount: number, messageAreas: MessageAreas, loanHeaders: LoanHeaderArea,
    loanMax: number, small: ChunkSource & { readonly capacity: number }) {
    assert(loanHeaders.view.byteLength >= loanMax * LOAN_HEADER_SIZE, "room for every loan's header");
    const loanCount = Math.min(loanMax, LOANS_INITIAL);
    this.loanMax = loanMax;
    this.loanCount = loanCount;
    this.loanHeaders = loanHeaders;
    this.loanHeaderLength = new Uint8Array(loanCount);
    this.chunks = chunks;
    this.chunkCount = chunkCount;
    this.chunkSize = chunkSize;
    this.head = new Int32Array(maxConnections).fill(-1);
    this.tail = new Int32Array(maxConnections).fill(-1);
    this.headOffset = new Int32Array(maxConnections);
    this.inFlight = new Int32Array(maxConnections);
    this.queued = new Float64Array(maxConnections);
    this.atUnitStart = new Uint8Array(maxConnections).fill(1);
    this.inFlightEndsUnit = new Uint8Array(maxConnections);
    this.small = small;
    this.smallBase = chunkCount;
    this.loanBase = chunkCount + small.capacity;
    const entries = this.loanBase + loanCount;
    this.chunkNext = new Int32Array(entries).fill(-1);
    this.chunkLength = new Int32Array(entries);
    this.unitEnds = new Uint8Array(entries);
    this.loanAddress = new Float64Array(loanCount);
    this.loanToken = new Int32Array(loanCount);
    this.loanLender = new Array<Lender | undefined>(loanCount).fill(undefined);
    this.freeLoans = new Int32Array(loanCount);
    for (let i = 0; i < loanCount; i++) this.freeLoans[i] = loanCount - 1 - i;
    this.freeLoanCount = loanCount;
    this.messageAreas = messageAreas;
    this.messageAddress = messageAreas.address;
  }

  /** Room for connections up to `maxConnections` (the transport has more slots in use). */
  grow(maxConnections: number): void {
    this.head = grown(this.head, maxConnections, -1);
    this.tail = grown(this.tail, maxConnections, -1);
    this.headOffset = grown(this.headOffset, maxConnections);
    this.inFlight = grown(this.inFlight, maxConnections);
    this.queued = grown(this.queued, maxConnections);
    this.atUnitStart = grown(this.atUnitStart, maxConnections, 1);
    this.inFlightEndsUnit = grown(this.inFlightEndsUnit, maxConnections);
  }

  private messageSegmentWords(segment: number): Uint32Array {
    const area = this.messageAreas.segment(segment);
    assert(area.byteLength % MESSAGE_AREA_SIZE === 0 && area.byteOffset % 4 === 0,
      "message area segment holds whole, aligned areas");
    const words = new Uint32Array(area.buffer, area.byteOffset, area.byteLength / 4);
    this.messageWords[segment] = words;
    return words;
  }

  /** Bytes queued and not yet confirmed sent by the kernel. */
  queuedBytes(conn: number): number {
    return this.queued[conn];
  }

  /** True when bytes are queued that no in-flight send covers. */
  hasUnsent(conn: number): boolean {
    return this.queued[conn] > this.inFlight[conn];
  }

  isSending(conn: number): boolean {
    return this.inFlight[conn] > 0;
  }

  /** Copy data[start, end) to the end of the queue: bytes queued, or -ENOBUFS (nothing queued). */
  append(conn: number, data: Uint8Array, start: number, end: number): number {
    const length = end - start;
    if (length <= 0) return 0;
    if (!this.hasRoom(conn, length)) return -ENOBUFS;
    this.copyIn(conn, data, start, end, true);
    return length;
  }

  /** Two ranges, all or nothing (a frame header and its payload). */
  appendPair(conn: number, first: Uint8Array, firstStart: number, firstEnd: number,
    second: Uint8Array, secondStart: number, secondEnd: number): number {
    const length = firstEnd - firstStart + (secondEnd - secondStart);
    if (length <= 0) return 0;
    if (!this.hasRoom(conn, length)) return -ENOBUFS;
    this.copyIn(conn, first, firstStart, firstEnd, secondEnd === secondStart, length);
    this.copyIn(conn, second, secondStart, secondEnd, true);
    return length;
  }

  /**
   * `header[headerStart, headerEnd)` copied, then `length` bytes at native `address` queued
   * without a copy; `lender.giveBack(token)` is called once they are sent or dropped. All or
   * nothing: bytes queued, or -ENOBUFS (no chunk for the header, or no loan entry left: the
   * caller copies instead) with nothing queued and nothing to give back.
   */
  appendLoan(conn: number, header: Uint8Array, headerStart: number, headerEnd: number,
    address: number, length: number, lender: Lender, token: number): number {
    assert(length > 0, "a loan of no bytes");
    const headerLength = headerEnd - headerStart;
    assert(headerLength <= LOAN_HEADER_SIZE, "a loan's header fits its slot");
    if (this.freeLoanCount === 0 && !this.growLoans()) return -ENOBUFS;
    const loan = this.freeLoans[--this.freeLoanCount];
    const slot = this.loanHeaders.view;
    const at = loan * LOAN_HEADER_SIZE;
    for (let i = 0; i < headerLength; i++) slot[at + i] = header[headerStart + i];
    this.loanHeaderLength[loan] = headerLength;
    this.loanAddress[loan] = address;
    this.loanToken[loan] = token;
    this.loanLender[loan] = lender;
    const id = this.loanBase + loan;
    this.chunkLength[id] = headerLength + length;
    this.unitEnds[id] = 1;
    this.link(conn, id);
    this.queued[conn] += headerLength + length;
    return headerLength + length;
  }

  /** Loans queued now, over all connections. */
  get loansOut(): number {
    return this.loanCount - this.freeLoanCount;
  }

  /** Every loan entry is taken: double them (up to loanMax). False at the cap. */
  private growLoans(): boolean {
    const old = this.loanCount;
    const count = Math.min(this.loanMax, old * 2);
    if (count <= old) return false;
    const entries = this.loanBase + count;
    this.chunkNext = grown(this.chunkNext, entries, -1);
    this.chunkLength = grown(this.chunkLength, entries);
    this.unitEnds = grown(this.unitEnds, entries);
    this.loanAddress = grown(this.loanAddress, count);
    this.loanHeaderLength = grown(this.loanHeaderLength, count);
    this.loanToken = grown(this.loanToken, count);
    for (let i = old; i < count; i++) this.loanLender.push(undefined);
    this.freeLoans = grown(this.freeLoans, count);
    for (let loan = count - 1; loan >= old; loan--) this.freeLoans[this.freeLoanCount++] = loan;
    this.loanCount = count;
    return true;
  }

  private hasRoom(conn: number, length: number): boolean {
    const tail = this.tail[conn];
    if (tail === -1 && length <= SMALL_SLOT_SIZE && this.small.available > 0) return true;
    // Nothing is appended into a loan: after one, bytes go to a new chunk.
    const room = tail === -1 ? 0 : Math.max(0, this.capacityOf(tail) - this.chunkLength[tail]);
    if (length <= room) return true;
    return Math.ceil((length - room) / this.chunkSize) <= this.chunks.available;
  }

  /** Bytes entry `id` can hold: a chunk's size, a small slot's, 0 for a loan (never appended to). */
  private capacityOf(id: number): number {
    if (id < this.chunkCount) return this.chunkSize;
    return id < this.loanBase ? SMALL_SLOT_SIZE : 0;
  }

  /** The memory of chunk or small-slot entry `id`. */
  private viewOf(id: number): Uint8Array {
    return id < this.chunkCount ? this.chunks.slotView(id) : this.small.slotView(id - this.smallBase);
  }

  private addressOf(id: number): number {
    return id < this.chunkCount ? this.chunks.slotAddress(id) : this.small.slotAddress(id - this.smallBase);
  }

  private isLoan(id: number): boolean {
    return id >= this.loanBase;
  }

  /**
   * Copy to the tail; `endsUnit`: the last byte copied ends a unit (see unitEnds);
   * `appendLength`: the bytes of the whole append this piece begins.
   */
  private copyIn(conn: number, data: Uint8Array, start: number, end: number, endsUnit: boolean,
    appendLength = end - start): void {
    let tail = this.tail[conn];
    let position = start;
    while (position < end) {
      if (tail === -1) {
        // A small slot only when the whole append fits it (a header with its payload).
        tail = appendLength <= SMALL_SLOT_SIZE && this.small.available > 0
          ? this.addSmall(conn) : this.addChunk(conn);
      } else if (this.chunkLength[tail] >= this.capacityOf(tail)) {
        tail = this.addChunk(conn); // full, or a loan
      }
      // Until the last piece lands, this entry's end is inside the unit.
      this.unitEnds[tail] = 0;
      const used = this.chunkLength[tail];
      const take = Math.min(end - position, this.capacityOf(tail) - used);
      const target = this.viewOf(tail);
      if (take < SMALL_COPY) {
        for (let i = 0; i < take; i++) target[used + i] = data[position + i];
      } else {
        // Buffer's copy takes ranges: no subarray() object per call.
        copyBytes.call(data, target, used, position, position + take);
      }
      this.chunkLength[tail] = used + take;
      position += take;
    }
    if (endsUnit && tail !== -1) this.unitEnds[tail] = 1;
    this.queued[conn] += end - start;
  }

  private addChunk(conn: number): number {
    const id = this.chunks.acquire();
    assert(id >= 0, "chunk pool empty after capacity check");
    this.chunkLength[id] = 0;
    this.link(conn, id);
    return id;
  }

  private addSmall(conn: number): number {
    const slot = this.small.acquire();
    assert(slot >= 0, "small slots empty after capacity check");
    const id = this.smallBase + slot;
    this.chunkLength[id] = 0;
    this.link(conn, id);
    return id;
  }

  /** Appends entry `id` to the chain of `conn`. */
  private link(conn: number, id: number): void {
    this.chunkNext[id] = -1;
    const tail = this.tail[conn];
    if (tail === -1) {
      this.head[conn] = id;
      this.headOffset[conn] = 0;
    } else {
      this.chunkNext[tail] = id;
    }
    this.tail[conn] = id;
  }

  /**
   * Describe the next send for `conn`: returns 1 for a plain SEND of
   * (sendAddress, sendLength), 2 for a SENDMSG of the msghdr at sendAddress (sendLength
   * bytes in all), 0 when nothing is unsent or a send is already in flight. `endAtUnit`:
   * end the send where a unit ends when one is in reach (another queue waits to go next).
   */
  prepare(conn: number, endAtUnit = false): number {
    if (this.inFlight[conn] > 0 || this.queued[conn] === 0) return 0;
    const head = this.head[conn];
    const offset = this.headOffset[conn];
    if (this.chunkNext[head] === -1 && !this.isLoan(head)) {
      this.sendAddress = this.addressOf(head) + offset;
      this.sendLength = this.chunkLength[head] - offset;
      this.inFlight[conn] = this.sendLength;
      this.inFlightEndsUnit[conn] = 1; // up to the tail: where the last append ended
      return 1;
    }
    const segment = conn >>> MESSAGE_SEGMENT_SHIFT;
    const words = this.messageWords[segment] ?? this.messageSegmentWords(segment);
    const base = ((conn & (MESSAGE_SEGMENT_CONNECTIONS - 1)) * MESSAGE_AREA_SIZE) / 4;
    const message = this.messageAddress + conn * MESSAGE_AREA_SIZE;
    let total = 0;
    let count = 0;
    // The send ends where a unit ends when it can (so urgent bytes may follow it): the last
    // such entry seen, and the iovecs and bytes up to it.
    let unitCount = 0;
    let unitTotal = 0;
    let id = head;
    // A loan takes up to two iovecs (its header, its payload): stop while both fit.
    for (; id !== -1 && count < IOVECS_PER_SEND - 1; id = this.chunkNext[id]) {
      const skip = id === head ? offset : 0;
      const end = this.chunkLength[id];
      if (!this.isLoan(id)) {
        writeIovec(words, base, count++, this.addressOf(id) + skip, end - skip);
      } else {
        const loan = id - this.loanBase;
        const headerLength = this.loanHeaderLength[loan];
        if (skip < headerLength) {
          const headerEnd = Math.min(headerLength, end);
          writeIovec(words, base, count++,
            this.loanHeaders.address + loan * LOAN_HEADER_SIZE + skip, headerEnd - skip);
        }
        const from = Math.max(skip, headerLength);
        if (end > from) {
          writeIovec(words, base, count++, this.loanAddress[loan] + (from - headerLength), end - from);
        }
      }
      total += end - skip;
      if (this.unitEnds[id] === 1) {
        unitCount = count;
        unitTotal = total;
      }
    }
    // Cut back to the last unit end only when asked: it makes sends smaller.
    if (id !== -1 && unitCount > 0 && endAtUnit) {
      count = unitCount;
      total = unitTotal;
    }
    this.inFlightEndsUnit[conn] = id === -1 || total === unitTotal ? 1 : 0;
    const iovAddress = message + 64;
    for (let i = 0; i < 14; i++) words[base + i] = 0; // msghdr: no name, no control
    words[base + MSGHDR_IOV / 4] = iovAddress >>> 0;
    words[base + MSGHDR_IOV / 4 + 1] = Math.floor(iovAddress / TWO_32);
    words[base + MSGHDR_IOVLEN / 4] = count;
    this.sendAddress = message;
    this.sendLength = total;
    this.inFlight[conn] = total;
    return 2;
  }

  /** The in-flight send wrote `bytes`; frees sent chunks. Returns true when the queue is empty. */
  complete(conn: number, bytes: number): boolean {
    assert(bytes <= this.inFlight[conn], "kernel sent more than was in flight");
    this.atUnitStart[conn] = bytes === this.inFlight[conn] ? this.inFlightEndsUnit[conn] : 0;
    this.inFlight[conn] = 0;
    this.queued[conn] -= bytes;
    let remaining = bytes;
    while (remaining > 0) {
      const head = this.head[conn];
      const available = this.chunkLength[head] - this.headOffset[conn];
      const take = Math.min(available, remaining);
      assert(take > 0, "completion beyond the queued bytes");
      this.headOffset[conn] += take;
      remaining -= take;
      // A fully sent chunk with a successor goes back to the pool; the last one stays as the
      // tail (more bytes may be appended to it) until the whole queue is empty.
      if (this.headOffset[conn] === this.chunkLength[head] && this.chunkNext[head] !== -1) {
        this.dropHead(conn, head);
      }
    }
    if (this.queued[conn] === 0) {
      this.clear(conn);
      return true;
    }
    return false;
  }

  /** The in-flight send failed: nothing of it counts as sent. */
  abandonInFlight(conn: number): void {
    this.inFlight[conn] = 0;
  }

  /**
   * True when nothing is in flight and the next unsent byte begins a unit: bytes of another
   * queue may be sent now without landing inside one of this queue's units.
   */
  atUnitBoundary(conn: number): boolean {
    return this.inFlight[conn] === 0 && this.atUnitStart[conn] === 1;
  }

  private dropHead(conn: number, head: number): void {
    this.head[conn] = this.chunkNext[head];
    this.headOffset[conn] = 0;
    if (this.head[conn] === -1) this.tail[conn] = -1;
    this.releaseEntry(head);
  }

  /** A chunk or small slot goes back to its pool, a loan to its lender. */
  private releaseEntry(id: number): void {
    if (id < this.chunkCount) {
      this.chunks.release(id);
      return;
    }
    if (id < this.loanBase) {
      this.small.release(id - this.smallBase);
      return;
    }
    const loan = id - this.loanBase;
    const lender = this.loanLender[loan]!;
    this.loanLender[loan] = undefined;
    this.freeLoans[this.freeLoanCount++] = loan;
    lender.giveBack(this.loanToken[loan]);
  }

  /**
   * Drop what is queued beyond the send in flight (the kernel still reads that part): the
   * connection is being torn down, so it would never be sent. Its memory is free at once,
   * not when the teardown completes. Returns the bytes dropped.
   */
  dropUnsent(conn: number): number {
    const keep = this.inFlight[conn];
    const dropped = this.queued[conn] - keep;
    if (keep === 0) {
      this.clear(conn);
      return dropped;
    }
    // Walk to the entry where the in-flight bytes end, cut it there, release what follows.
    let id = this.head[conn];
    let offset = this.headOffset[conn];
    let remaining = keep;
    while (remaining > this.chunkLength[id] - offset) {
      remaining -= this.chunkLength[id] - offset;
      offset = 0;
      id = this.chunkNext[id];
    }
    this.chunkLength[id] = offset + remaining;
    let next = this.chunkNext[id];
    this.chunkNext[id] = -1;
    this.tail[conn] = id;
    while (next !== -1) {
      const after = this.chunkNext[next];
      this.releaseEntry(next);
      next = after;
    }
    this.queued[conn] = keep;
    return dropped;
  }

  /** Release every chunk of `conn` (connection gone, or queue fully sent). */
  clear(conn: number): void {
    let id = this.head[conn];
    while (id !== -1) {
      const next = this.chunkNext[id];
      this.releaseEntry(id);
      id = next;
    }
    this.head[conn] = -1;
    this.tail[conn] = -1;
    this.headOffset[conn] = 0;
    this.inFlight[conn] = 0;
    this.queued[conn] = 0;
    this.atUnitStart[conn] = 1;
  }
}

/** iovec `index` of the message area at word `base`: {base address, length}. */
function writeIovec(words: Uint32Array, base: number, index: number, address: number,
  length: number): void {
  const iov = base + 16 + index * 4; // iovecs start at byte 64 of the area
  words[iov] = address >>> 0;
  words[iov + 1] = Math.floor(address / TWO_32);
  words[iov + 2] = length;
  words[iov + 3] = 0;
}
