/**
 * What worker threads say to each other through their rings (spsc-ring.ts). Every record
 * starts with a u32: kind in the low byte, opcode in the next. Little-endian, 4-aligned.
 *
 *   MESSAGE   kind, opcode | u32 topic length | topic | payload
 *   START     kind, opcode | u32 topic length | u32 payload length | topic | first part
 *   PART      kind         | next part                (START's message, until it is whole)
 *   INTEREST  kind         | u32 topic length | u32 subscribers on the sender | topic
 *
 * A message that does not fit one record (bigger than a quarter of the ring, so several are
 * in flight) goes as START + PARTs, back to back: nothing else is written between them.
 */
import type { SpscRing } from "./spsc-ring.ts";

export const RECORD_MESSAGE = 1;
export const RECORD_START = 2;
export const RECORD_PART = 3;
export const RECORD_INTEREST = 4;

const MESSAGE_HEAD = 8;
const START_HEAD = 12;
const PART_HEAD = 4;
const INTEREST_HEAD = 12;

/** Where records are written: a ring (after tryBegin) or an array for the overflow queue. */
interface RecordSink {
  putU32(value: number): void;
  putBytes(source: Uint8Array, start: number, end: number): void;
}

/** An array being filled with one record (an overflow-queue entry). */
class ArraySink implements RecordSink {
  readonly bytes: Uint8Array;
  private at = 0;
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
  }
  putU32(value: number): void {
    writeU32(this.bytes, this.at, value);
    this.at += 4;
  }
  putBytes(source: Uint8Array, start: number, end: number): void {
    this.bytes.set(source.subarray(start, end), this.at);
    this.at += end - start;
  }
}

export function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}

/** Write into `ring` if it has room now, else into a new array; null when it was the ring. */
function emit(ring: SpscRing | null, length: number, fill: (sink: RecordSink) => void): Uint8Array | null {
  if (ring !== null && ring.tryBegin(length)) {
    fill(ring);
    ring.commit();
    return null;
  }
  const sink = new ArraySink(length);
  fill(sink);
  return sink.bytes;
}

/**
 * One publish as records, reused from publish to publish: record i is written to a ring
 * (when it has room) or into an array to queue. Payload bytes are read, never kept.
 */
export class MessageRecords {
  private topic: Uint8Array = new Uint8Array(0);
  private opcode = 0;
  private payload: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;
  private firstPart = 0;
  private partBytes = 0;
  /** Records this message takes (0: the topic alone is too long for a record). */
  count = 0;

  /** Plan `payload[start, end)` to `topic` in records of at most `maxRecord` bytes. */
  set(topic: Uint8Array, opcode: number, payload: Uint8Array, start: number, end: number,
    maxRecord: number): void {
    this.topic = topic;
    this.opcode = opcode;
    this.payload = payload;
    this.start = start;
    this.end = end;
    const length = end - start;
    if (MESSAGE_HEAD + topic.length + length <= maxRecord) {
      this.count = 1;
      return;
    }
    this.firstPart = maxRecord - START_HEAD - topic.length;
    this.partBytes = maxRecord - PART_HEAD;
    this.count = this.firstPart <= 0 ? 0 : 1 + Math.ceil((length - this.firstPart) / this.partBytes);
  }

  /** Bytes this message takes in queued arrays (an upper bound is enough). */
  get queuedBytes(): number {
    return this.end - this.start + this.topic.length + START_HEAD + PART_HEAD * this.count;
  }

  /** Record `index` into `ring` (null: it had no room; then into the returned array). */
  write(index: number, ring: SpscRing | null): Uint8Array | null {
    const topic = this.topic;
    const payload = this.payload;
    if (this.count === 1) {
      return emit(ring, MESSAGE_HEAD + topic.length + this.end - this.start, (sink) => {
        sink.putU32(RECORD_MESSAGE | (this.opcode << 8));
        sink.putU32(topic.length);
        sink.putBytes(topic, 0, topic.length);
        sink.putBytes(payload, this.start, this.end);
      });
    }
    if (index === 0) {
      return emit(ring, START_HEAD + topic.length + this.firstPart, (sink) => {
        sink.putU32(RECORD_START | (this.opcode << 8));
        sink.putU32(topic.length);
        sink.putU32(this.end - this.start);
        sink.putBytes(topic, 0, topic.length);
        sink.putBytes(payload, this.start, this.start + this.firstPart);
      });
    }
    const from = this.start + this.firstPart + (index - 1) * this.partBytes;
    const to = Math.min(this.end, from + this.partBytes);
    return emit(ring, PART_HEAD + to - from, (sink) => {
      sink.putU32(RECORD_PART);
      sink.putBytes(payload, from, to);
    });
  }
}

/** An INTEREST record into `ring`, or (no room) the array to queue. */
export function writeInterest(ring: SpscRing | null, topic: Uint8Array, count: number): Uint8Array | null {
  return emit(ring, INTEREST_HEAD + topic.length, (sink) => {
    sink.putU32(RECORD_INTEREST);
    sink.putU32(topic.length);
    sink.putU32(count);
    sink.putBytes(topic, 0, topic.length);
  });
}

/** Field offsets, for the reader (bus-peer.ts). */
export const MESSAGE_TOPIC_AT = MESSAGE_HEAD;
export const START_TOPIC_AT = START_HEAD;
export const PART_BODY_AT = PART_HEAD;
export const INTEREST_TOPIC_AT = INTEREST_HEAD;
