/**
 * SendQueues over a JS-memory chunk source: chains, partial completions, SENDMSG iovecs,
 * exhaustion, and that fully sent chunks go back to the pool.
 */
import { describe, expect, test } from "bun:test";
import { ENOBUFS } from "../src/api/errno.ts";
import {
  MESSAGE_AREA_SIZE, MESSAGE_SEGMENT_CONNECTIONS, SendQueues, type ChunkSource,
} from "../src/reactor/send-queues.ts";

const CHUNK = 64;

class ArrayChunks implements ChunkSource {
  readonly memory: Uint8Array;
  private readonly free: number[] = [];
  constructor(readonly count: number, readonly base = 0x10_0000) {
    this.memory = new Uint8Array(count * CHUNK);
    for (let id = count - 1; id >= 0; id--) this.free.push(id);
  }
  acquire() { return this.free.pop() ?? -1; }
  release(id: number) {
    if (this.free.includes(id)) throw new Error(`double release ${id}`);
    this.free.push(id);
  }
  slotView(id: number) { return this.memory.subarray(id * CHUNK, (id + 1) * CHUNK); }
  slotAddress(id: number) { return this.base + id * CHUNK; }
  get available() { return this.free.length; }
  /** Bytes at a fake address (to read back what a SEND would transmit). */
  bytesAt(address: number, length: number) {
    const offset = address - this.base;
    return this.memory.slice(offset, offset + length);
  }
}

function setup(connections = 4, chunks = 8) {
  const source = new ArrayChunks(chunks);
  const area = new Uint8Array(connections * MESSAGE_AREA_SIZE);
  const segmentBytes = MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE;
  const areas = {
    address: 0x20_0000,
    segment: (index: number) => area.subarray(index * segmentBytes, (index + 1) * segmentBytes),
  };
  const queues = new SendQueues(connections, source, CHUNK, chunks, areas);
  return { source, area, queues };
}

const bytes = (length: number, from = 0) => Uint8Array.from({ length }, (_, i) => (from + i) & 0xff);

describe("SendQueues", () => {
  test("one chunk: plain SEND of exactly the queued bytes, then empty and chunk freed", () => {
    const { source, queues } = setup();
    expect(queues.append(0, bytes(10), 0, 10)).toBe(10);
    expect(queues.append(0, bytes(5, 10), 0, 5)).toBe(5);
    expect(queues.prepare(0)).toBe(1);
    expect(queues.sendLength).toBe(15);
    expect(source.bytesAt(queues.sendAddress, 15)).toEqual(bytes(15));
    expect(queues.prepare(0)).toBe(0); // one send in flight at a time
    expect(queues.complete(0, 15)).toBe(true);
    expect(queues.queuedBytes(0)).toBe(0);
    expect(source.available).toBe(8);
  });

  test("partial completion resumes where the kernel stopped", () => {
    const { queues, source } = setup();
    queues.append(1, bytes(40), 0, 40);
    queues.prepare(1);
    expect(queues.complete(1, 25)).toBe(false);
    expect(queues.hasUnsent(1)).toBe(true);
    expect(queues.prepare(1)).toBe(1);
    expect(queues.sendLength).toBe(15);
    expect(source.bytesAt(queues.sendAddress, 15)).toEqual(bytes(15, 25));
    expect(queues.complete(1, 15)).toBe(true);
  });

  test("several chunks go out as one SENDMSG with an iovec per chunk", () => {
    const { queues, area, source } = setup();
    const data = bytes(150);
    expect(queues.append(2, data, 0, 150)).toBe(150);
    expect(queues.prepare(2)).toBe(2);
    expect(queues.sendLength).toBe(150);
    const words = new Uint32Array(area.buffer, 2 * MESSAGE_AREA_SIZE, MESSAGE_AREA_SIZE / 4);
    expect(words[6]).toBe(3); // msg_iovlen
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const iov = 16 + i * 4;
      sent.push(...source.bytesAt(words[iov], words[iov + 2]));
    }
    expect(Uint8Array.from(sent)).toEqual(data);
    expect(source.available).toBe(5);
    // The kernel took 100 bytes: the first chunk is freed, the rest continues mid-chunk.
    expect(queues.complete(2, 100)).toBe(false);
    expect(source.available).toBe(6);
    expect(queues.prepare(2)).toBe(2); // 28 bytes left of chunk 2, 22 of chunk 3
    expect(queues.sendLength).toBe(50);
    expect(words[6]).toBe(2);
    const rest = [...source.bytesAt(words[16], words[18]), ...source.bytesAt(words[20], words[22])];
    expect(Uint8Array.from(rest)).toEqual(data.slice(100));
    expect(queues.complete(2, 50)).toBe(true);
    expect(source.available).toBe(8);
  });

  test("bytes appended while a send is in flight are sent next, in order", () => {
    const { queues, source } = setup();
    queues.append(0, bytes(30), 0, 30);
    queues.prepare(0);
    queues.append(0, bytes(70, 30), 0, 70); // fills the first chunk's tail, then a second
    expect(queues.queuedBytes(0)).toBe(100);
    expect(queues.complete(0, 30)).toBe(false);
    expect(queues.prepare(0)).toBe(2);
    expect(queues.sendLength).toBe(70);
    expect(queues.complete(0, 70)).toBe(true);
    expect(source.available).toBe(8);
  });

  test("exhaustion refuses the whole append (-ENOBUFS) and queues nothing", () => {
    const { queues } = setup(4, 2);
    expect(queues.append(0, bytes(100), 0, 100)).toBe(100);
    expect(queues.append(1, bytes(100), 0, 100)).toBe(-ENOBUFS);
    expect(queues.queuedBytes(1)).toBe(0);
    expect(queues.append(0, bytes(28), 0, 28)).toBe(28); // fits in the tail chunk's room
  });

  test("clear returns every chunk; a send beyond what was in flight is a bug", () => {
    const { queues, source } = setup();
    queues.append(3, bytes(200), 0, 200);
    queues.prepare(3);
    expect(() => queues.complete(3, 10_000)).toThrow("more than was in flight");
    queues.clear(3);
    expect(source.available).toBe(8);
    expect(queues.queuedBytes(3)).toBe(0);
  });

  test("grown for more connections: old queues intact, a later segment's msghdr in place", () => {
    const { source, area, queues } = setup(1100, 8);
    const small = new SendQueues(2, source, CHUNK, 8, {
      address: 0x20_0000,
      segment: (index: number) => area.subarray(index * MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE,
        (index + 1) * MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE),
    });
    expect(queues.queuedBytes(0)).toBe(0);
    expect(small.append(1, bytes(10), 0, 10)).toBe(10);
    small.grow(1100);
    expect(small.queuedBytes(1)).toBe(10);
    const conn = MESSAGE_SEGMENT_CONNECTIONS + 6;
    expect(small.append(conn, bytes(100), 0, 100)).toBe(100);
    expect(small.prepare(conn)).toBe(2);
    expect(small.sendAddress).toBe(0x20_0000 + conn * MESSAGE_AREA_SIZE);
    const words = new Uint32Array(area.buffer, conn * MESSAGE_AREA_SIZE, MESSAGE_AREA_SIZE / 4);
    expect(words[6]).toBe(2); // two chunks, two iovecs
    expect(Uint8Array.from([...source.bytesAt(words[16], words[18]),
      ...source.bytesAt(words[20], words[22])])).toEqual(bytes(100));
    expect(small.complete(conn, 100)).toBe(true);
    expect(small.prepare(1)).toBe(1);
    expect(small.complete(1, 10)).toBe(true);
  });
});
