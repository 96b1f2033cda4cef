/**
 * The SPSC ring between worker threads (src/server/spsc-ring.ts) and its wake words: one
 * thread (wraparound, every size, full ring, order) and two (a fast producer in a Worker, a
 * slow consumer here that parks when the ring is empty).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { SpscRing } from "../src/server/spsc-ring.ts";
import { WakeWords } from "../src/server/wake-words.ts";

const byteOf = (i: number, j: number) => (i * 13 + j) & 0xff;

function record(i: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let j = 0; j < length; j++) bytes[j] = byteOf(i, j);
  return bytes;
}

/** The next record's bytes (a copy), or null when empty. */
function take(ring: SpscRing): Uint8Array | null {
  const length = ring.next();
  if (length < 0) return null;
  const copy = ring.view.slice(ring.viewStart, ring.viewStart + length);
  ring.release();
  return copy;
}

/** A producer and a consumer side over one ring's memory, as two threads would have. */
function pair(capacity: number, position = 0): { producer: SpscRing; consumer: SpscRing } {
  const memory = SpscRing.create(capacity);
  const control = new Int32Array(memory, 0, 64);
  control[0] = position; // head
  control[16] = position; // tail
  return { producer: new SpscRing(memory), consumer: new SpscRing(memory) };
}

describe("SpscRing, one thread", () => {
  test("capacity is a power of two, 64 B up", () => {
    expect(() => SpscRing.create(100)).toThrow(RangeError);
    expect(() => SpscRing.create(32)).toThrow(RangeError);
    const ring = new SpscRing(SpscRing.create(1024));
    expect(ring.capacity).toBe(1024);
    expect(ring.maxRecord).toBe(1020);
    expect(() => new SpscRing(new SharedArrayBuffer(100))).toThrow(RangeError);
  });

  test("empty, then records in order, 0 B included", () => {
    const { producer, consumer } = pair(256);
    expect(consumer.next()).toBe(-1);
    expect(consumer.isEmpty()).toBe(true);
    for (const length of [0, 1, 5, 0, 17]) expect(producer.tryWrite(record(length, length))).toBe(true);
    for (const length of [0, 1, 5, 0, 17]) expect(take(consumer)).toEqual(record(length, length));
    expect(take(consumer)).toBeNull();
    expect(consumer.usedBytes).toBe(0);
  });

  test("wraparound, many times, records of every size up to the whole ring, each contiguous", () => {
    const { producer, consumer } = pair(128);
    const sizes = [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 60, 63, 64, 65, 100, 123, 124];
    let written = 0;
    let read = 0;
    for (let round = 0; round < 400; round++) {
      const length = sizes[round % sizes.length];
      while (!producer.tryWrite(record(written, length))) {
        const got = take(consumer)!;
        expect(got).toEqual(record(read, sizes[read % sizes.length]));
        read++;
      }
      written++;
    }
    for (let got = take(consumer); got !== null; got = take(consumer)) {
      expect(got).toEqual(record(read, sizes[read % sizes.length]));
      read++;
    }
    expect(read).toBe(400);
  });

  test("positions wrap past 2^31 and 2^32", () => {
    for (const start of [0x7fffffc0 | 0, 0xffffffc0 | 0]) {
      const { producer, consumer } = pair(64, start);
      for (let i = 0; i < 100; i++) {
        expect(producer.tryWrite(record(i, i % 40))).toBe(true);
        expect(producer.tryWrite(record(i + 1, 3))).toBe(true);
        expect(take(consumer)).toEqual(record(i, i % 40));
        expect(take(consumer)).toEqual(record(i + 1, 3));
      }
      expect(consumer.usedBytes).toBe(0);
    }
  });

  test("full: a write that does not fit is refused and loses nothing; room comes back as the reader releases", () => {
    const { producer, consumer } = pair(256);
    let written = 0;
    while (producer.tryWrite(record(written, 20))) written++;
    expect(written).toBe(10); // 24 bytes each (length word + 20), 256 / 24
    expect(producer.hasRoom(20)).toBe(false);
    expect(producer.hasRoom(12)).toBe(true); // 16 bytes are left
    expect(take(consumer)).toEqual(record(0, 20));
    expect(producer.tryWrite(record(written++, 20))).toBe(true);
    for (let i = 1; i < written; i++) expect(take(consumer)).toEqual(record(i, 20));
    expect(take(consumer)).toBeNull();
  });

  test("a record as long as the ring holds needs it empty; a longer one is a RangeError", () => {
    const { producer, consumer } = pair(256);
    expect(producer.tryWrite(record(1, 1))).toBe(true);
    expect(producer.tryWrite(record(2, 252))).toBe(false); // 8 bytes are taken
    expect(take(consumer)).toEqual(record(1, 1));
    expect(producer.tryWrite(record(2, 252))).toBe(true);
    expect(producer.tryWrite(new Uint8Array(0))).toBe(false);
    expect(take(consumer)).toEqual(record(2, 252));
    expect(() => producer.tryBegin(253)).toThrow(RangeError);
  });

  test("a record built from parts (u32 fields, bytes across the end); a wrong length is caught", () => {
    const { producer, consumer } = pair(64);
    producer.tryWrite(new Uint8Array(40));
    take(consumer); // the next record starts at 44 and wraps
    expect(producer.tryBegin(12 + 10)).toBe(true);
    producer.putU32(0x04030201);
    producer.putU32(0xfffffffe);
    producer.putBytes(record(5, 14), 0, 14);
    producer.commit();
    const got = take(consumer)!;
    expect([...got.subarray(0, 8)]).toEqual([1, 2, 3, 4, 0xfe, 0xff, 0xff, 0xff]);
    expect(got.subarray(8)).toEqual(record(5, 14));
    expect(producer.tryBegin(8)).toBe(true);
    producer.putU32(1);
    expect(() => producer.commit()).toThrow();
  });

  test("the producer's waiting word: the reader takes it once", () => {
    const { producer, consumer } = pair(64);
    expect(consumer.takeProducerWaiting()).toBe(false);
    producer.markProducerWaiting();
    expect(consumer.takeProducerWaiting()).toBe(true);
    expect(consumer.takeProducerWaiting()).toBe(false);
  });
});

describe("SpscRing across two threads", () => {
  test("a fast producer Worker, a slow consumer that parks: every record, in order, intact", async () => {
    const capacity = 4096;
    const sizes = [0, 1, 3, 4, 7, 100, 1000, 2047, 2048, 2049, 3000, 4092, 9, 0, 500];
    const count = 3000;
    const memory = SpscRing.create(capacity);
    const wakeMemory = WakeWords.create(2);
    const ring = new SpscRing(memory);
    const wake = new WakeWords(wakeMemory);
    const worker = new Worker(join(import.meta.dir, "fixtures/spsc-ring-producer.ts"), {
      workerData: { ring: memory, wake: wakeMemory, count, sizes, producer: 1, consumer: 0 },
    });
    const done = new Promise<{ parks: number }>((resolve, reject) => {
      worker.on("message", resolve);
      worker.on("error", reject);
    });
    let read = 0;
    let sleeps = 0;
    let lostWakes = 0;
    let faults = 0;
    const deadline = performance.now() + 10_000;
    try {
      while (read < count && performance.now() < deadline) {
        const length = ring.next();
        if (length < 0) {
          sleeps++;
          // Bounded, and counted: a record that came without waking us is a fault.
          const woken = await Promise.race([wake.sleep(0, () => ring.isEmpty()).then(() => true), Bun.sleep(2000).then(() => false)]);
          if (!woken) lostWakes++;
          continue;
        }
        const expected = sizes[read % sizes.length];
        if (length !== expected) faults++;
        const view = ring.view;
        const at = ring.viewStart;
        for (let j = 0; j < length; j++) if (view[at + j] !== byteOf(read, j)) faults++;
        ring.release();
        if (ring.takeProducerWaiting()) wake.wake(1);
        read++;
        if (read % 100 === 0) await Bun.sleep(1); // slow: the ring fills, the producer parks
      }
      const { parks } = await Promise.race([done, Bun.sleep(5000).then(() => ({ parks: -1 }))]);
      expect(faults).toBe(0);
      expect(read).toBe(count);
      expect(ring.next()).toBe(-1); // nothing more than was sent
      expect(parks).toBeGreaterThan(0); // it did find the ring full
      expect(sleeps).toBeGreaterThan(0); // it did find the ring empty and parked
      expect(lostWakes).toBe(0);
    } finally {
      await worker.terminate();
    }
  }, 20_000);

  test("an idle consumer parks (no spinning) and wakes for the next record", async () => {
    const memory = SpscRing.create(1024);
    const wakeMemory = WakeWords.create(2);
    const ring = new SpscRing(memory);
    const wake = new WakeWords(wakeMemory);
    const worker = new Worker(join(import.meta.dir, "fixtures/spsc-ring-producer.ts"), {
      workerData: { ring: memory, wake: wakeMemory, count: 1, sizes: [10], producer: 1, consumer: 0 },
    });
    try {
      let woke = false;
      let looks = 0;
      const started = performance.now();
      // A Worker takes some time to start: the wait before its one record is one park.
      while (ring.isEmpty() && performance.now() - started < 5000) {
        looks++;
        woke = await Promise.race([wake.sleep(0, () => ring.isEmpty()).then(() => true), Bun.sleep(3000).then(() => false)]);
      }
      expect(woke).toBe(true);
      expect(looks).toBe(1); // parked once, woken once: no polling
      expect(ring.next()).toBe(10);
      ring.release();
    } finally {
      await worker.terminate();
    }
  }, 10_000);
});
