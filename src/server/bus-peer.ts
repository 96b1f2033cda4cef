/**
 * Another thread of the bus, as this one sees it: the ring to it with the records that wait
 * for room there (the overflow queue), the ring from it with the message being put back
 * together from its parts, and its subscriber counts per topic.
 *
 * The overflow queue keeps order: once one record waits, every later one queues behind it.
 * It is retried when the peer, reading, frees room (it wakes this thread: see
 * SpscRing.markProducerWaiting) and on every turn of this thread's bus.
 */
import {
  INTEREST_TOPIC_AT, MESSAGE_TOPIC_AT, PART_BODY_AT, RECORD_INTEREST, RECORD_MESSAGE, RECORD_PART,
  RECORD_START, START_TOPIC_AT, readU32, writeInterest, type MessageRecords,
} from "./bus-records.ts";
import { SpscRing } from "./spsc-ring.ts";

/** Local delivery of a message that came from another thread. */
export type DeliverRemote = (topic: string, opcode: number, payload: Uint8Array, start: number,
  end: number) => void;

/** What the bus counts, shared by its peers. */
export interface BusCounters {
  /** Messages written whole into another thread's ring. */
  sent: number;
  /** Messages read whole from another thread's ring. */
  received: number;
  /** Messages for another thread given up on (see WorkerBus). */
  dropped: number;
}

interface Assembly {
  topic: string;
  opcode: number;
  bytes: Uint8Array;
  filled: number;
}

export class BusPeer {
  /** Its subscribers per topic (what its INTEREST records said last). */
  readonly interest = new Map<string, number>();
  readonly outbound: SpscRing;
  readonly inbound: SpscRing;
  private queue: Uint8Array[] = [];
  /** Whether queue[i] is the last record of a message (it counts as sent once written). */
  private ends: boolean[] = [];
  private queueHead = 0;
  /** Bytes and messages in the overflow queue. */
  queuedBytes = 0;
  queuedMessages = 0;
  private assembly: Assembly | null = null;
  private lastTopicBytes = new Uint8Array(0);
  private lastTopic = "";

  constructor(readonly index: number, outbound: SharedArrayBuffer, inbound: SharedArrayBuffer,
    private readonly counters: BusCounters) {
    this.outbound = new SpscRing(outbound);
    this.inbound = new SpscRing(inbound);
  }

  /** The longest record sent to it: a quarter of its ring, so several are in flight. */
  get maxRecord(): number {
    return Math.min(this.outbound.maxRecord, this.outbound.capacity / 4);
  }

  get hasQueue(): boolean {
    return this.queueHead < this.queue.length;
  }

  // ------------------------------------------------------------ sending

  /** Send a message: into the ring while nothing waits and it has room, the rest queued. */
  sendMessage(records: MessageRecords): void {
    const last = records.count - 1;
    let index = 0;
    let spilled: Uint8Array | null = null;
    if (!this.hasQueue) {
      while (index <= last && (spilled = records.write(index, this.outbound)) === null) index++;
      if (index > last) {
        this.counters.sent++;
        return;
      }
    }
    // From `index` on it waits (its parts stay back to back: nothing is written between).
    this.enqueue(spilled ?? records.write(index, null)!, index === last);
    for (index++; index <= last; index++) this.enqueue(records.write(index, null)!, index === last);
    this.queuedMessages++;
    this.flush();
  }

  sendInterest(topic: Uint8Array, count: number): void {
    const array = writeInterest(this.hasQueue ? null : this.outbound, topic, count);
    if (array === null) return;
    this.enqueue(array, false);
    this.flush();
  }

  private enqueue(record: Uint8Array, endsMessage: boolean): void {
    this.queue.push(record);
    this.ends.push(endsMessage);
    this.queuedBytes += record.length;
  }

  /** Write what waits while the ring has room; true when nothing is left waiting. */
  flush(): boolean {
    const ring = this.outbound;
    while (this.queueHead < this.queue.length) {
      const record = this.queue[this.queueHead];
      if (!ring.tryWrite(record)) {
        ring.markProducerWaiting();
        if (!ring.tryWrite(record)) return false; // room came in between: else it wakes us
      }
      this.queuedBytes -= record.length;
      if (this.ends[this.queueHead]) {
        this.queuedMessages--;
        this.counters.sent++;
      }
      this.queueHead++;
      if (this.queueHead >= 1024 && this.queueHead * 2 >= this.queue.length) this.compact();
    }
    this.queue = [];
    this.ends = [];
    this.queueHead = 0;
    return true;
  }

  /** Forget the records already written (a queue that never empties must not keep them). */
  private compact(): void {
    this.queue = this.queue.slice(this.queueHead);
    this.ends = this.ends.slice(this.queueHead);
    this.queueHead = 0;
  }

  /** Whether the next waiting record would fit now (before this thread parks). */
  canFlush(): boolean {
    if (!this.hasQueue) return false;
    this.outbound.markProducerWaiting();
    return this.outbound.hasRoom(this.queue[this.queueHead].length);
  }

  /** It is gone: what still waits for it is dropped. Returns how many messages that was. */
  discardQueue(): number {
    const lost = this.queuedMessages;
    this.queue = [];
    this.ends = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.queuedMessages = 0;
    return lost;
  }

  // ------------------------------------------------------------ receiving

  /**
   * Read up to `budget` (records, a big one counting per 16 KiB) from its ring. Returns what
   * was used; `woke` is told when it waits for room this freed.
   */
  receive(budget: number, deliver: DeliverRemote, interest: (peer: BusPeer, topic: string, count: number) => void,
    woke: (peer: BusPeer) => void): number {
    const ring = this.inbound;
    let used = 0;
    while (used < budget) {
      const length = ring.next();
      if (length < 0) break;
      used += 1 + (length >>> 14);
      try {
        this.take(ring.view, ring.viewStart, length, deliver, interest);
      } finally {
        ring.release();
      }
    }
    if (used > 0 && ring.takeProducerWaiting()) woke(this);
    return used;
  }

  private take(view: Uint8Array, at: number, length: number, deliver: DeliverRemote,
    interest: (peer: BusPeer, topic: string, count: number) => void): void {
    const kind = view[at];
    const opcode = view[at + 1];
    const end = at + length;
    if (kind === RECORD_MESSAGE) {
      const topicEnd = at + MESSAGE_TOPIC_AT + readU32(view, at + 4);
      const topic = this.topicAt(view, at + MESSAGE_TOPIC_AT, topicEnd);
      this.counters.received++;
      deliver(topic, opcode, view, topicEnd, end);
    } else if (kind === RECORD_START) {
      const topicEnd = at + START_TOPIC_AT + readU32(view, at + 4);
      const total = readU32(view, at + 8);
      const bytes = new Uint8Array(total);
      bytes.set(view.subarray(topicEnd, end), 0);
      this.assembly = { topic: this.topicAt(view, at + START_TOPIC_AT, topicEnd), opcode, bytes, filled: end - topicEnd };
    } else if (kind === RECORD_PART) {
      const assembly = this.assembly;
      if (assembly === null) throw new Error("hioload-ws: a message part without its start between workers");
      assembly.bytes.set(view.subarray(at + PART_BODY_AT, end), assembly.filled);
      assembly.filled += end - at - PART_BODY_AT;
      if (assembly.filled >= assembly.bytes.length) {
        this.assembly = null;
        this.counters.received++;
        deliver(assembly.topic, assembly.opcode, assembly.bytes, 0, assembly.bytes.length);
      }
    } else if (kind === RECORD_INTEREST) {
      const topicEnd = at + INTEREST_TOPIC_AT + readU32(view, at + 4);
      interest(this, this.topicAt(view, at + INTEREST_TOPIC_AT, topicEnd), readU32(view, at + 8));
    } else {
      throw new Error(`hioload-ws: unknown record kind ${kind} between workers`);
    }
  }

  /** The topic's string: most records name the topic the one before did, so keep that one. */
  private topicAt(view: Uint8Array, start: number, end: number): string {
    const last = this.lastTopicBytes;
    const length = end - start;
    if (length === last.length) {
      let same = true;
      for (let i = 0; i < length; i++) {
        if (view[start + i] !== last[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.lastTopic;
    }
    this.lastTopicBytes = view.slice(start, end);
    this.lastTopic = Buffer.from(view.buffer, view.byteOffset + start, length).toString("utf8");
    return this.lastTopic;
  }

  /** A message cut off by its sender's death is not delivered. */
  dropPartial(): void {
    this.assembly = null;
  }
}
