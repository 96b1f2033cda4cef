/**
 * The worker bus (src/server/worker-bus.ts) between two nodes on this thread, over the
 * rings a supervisor's BusTable makes: interest, order and sizes, a reader that does not
 * read (queue, then drops, counted and logged), a node that dies.
 */
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { BusTable } from "../src/server/bus-table.ts";
import { QUEUE_BYTES_MAX, WorkerBus } from "../src/server/worker-bus.ts";

interface Got { topic: string; opcode: number; bytes: Uint8Array }

const open: WorkerBus[] = [];
afterEach(() => {
  for (const bus of open.splice(0)) bus.close();
});

/**
 * Workers 0 and 1 joined as a supervisor joins them, 0 started; `got` collects what 1
 * receives once a test starts it with deliverTo(got) (or, `collectOn0`, what 0 receives).
 */
function twoNodes(collectOn0 = false): { a: WorkerBus; b: WorkerBus; got: Got[]; table: BusTable } {
  const table = new BusTable(2);
  const a = new WorkerBus(table.join(0, []));
  const b = new WorkerBus(table.join(1, [0]));
  a.addPeer(table.links(0, 1));
  open.push(a, b);
  const got: Got[] = [];
  a.start(collectOn0 ? deliverTo(got) : () => {});
  return { a, b, got, table };
}

const deliverTo = (got: Got[]) => (topic: string, opcode: number, payload: Uint8Array, start: number, end: number) =>
  void got.push({ topic, opcode, bytes: payload.slice(start, end) });

async function until(ready: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > deadline) throw new Error("timed out");
    await Bun.sleep(2);
  }
}

function message(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seq * 31 + i) & 0xff;
  if (length >= 4) new DataView(bytes.buffer).setUint32(0, seq);
  return bytes;
}

describe("worker bus", () => {
  test("counts reach the other node; a publish goes only where there are subscribers", async () => {
    const { a, b, got } = twoNodes();
    b.start(deliverTo(got));
    expect(a.forward("t", 2, message(0, 10), 0, 10)).toBe(0); // nobody there yet
    b.countChanged("t", 3);
    b.countChanged("u", 1);
    b.countChanged("u", 0);
    await until(() => a.remoteCount("t") === 3);
    expect(a.remoteCount("u")).toBe(0);
    expect(a.forward("t", 2, message(1, 10), 0, 10)).toBe(1);
    expect(a.forward("u", 2, message(2, 10), 0, 10)).toBe(0);
    await until(() => got.length === 1);
    expect(got[0].topic).toBe("t");
    expect(got[0].bytes).toEqual(message(1, 10));
    // A count given before the other node joined reaches it when it joins.
    expect(b.remoteCount("x")).toBe(0);
    a.countChanged("x", 2);
    await until(() => b.remoteCount("x") === 2);
    expect(a.stats()).toEqual({ sentToWorkers: 1, receivedFromWorkers: 0, droppedToWorkers: 0, queuedToWorkers: 0 });
    expect(b.stats().receivedFromWorkers).toBe(1);
  });

  test("at rest both nodes park: no CPU spent while nothing comes", async () => {
    const { a, b, got } = twoNodes();
    b.start(deliverTo(got));
    b.countChanged("t", 1);
    await until(() => a.remoteCount("t") === 1);
    a.forward("t", 2, message(0, 8), 0, 8);
    await until(() => got.length === 1);
    await Bun.sleep(20); // past the short look-again after the last record
    const turns = a.turns + b.turns;
    await Bun.sleep(300);
    expect(a.turns + b.turns - turns).toBe(0); // parked: a spin would have run thousands
    a.forward("t", 2, message(1, 8), 0, 8); // and a parked node still wakes
    await until(() => got.length === 2);
  });

  test("every size from 0 B to several rings, text and binary, in order, each once", async () => {
    const { a, b, got } = twoNodes();
    b.start(deliverTo(got));
    b.countChanged("ünïcode topic", 1);
    await until(() => a.remoteCount("ünïcode topic") === 1);
    const sizes = [0, 1, 3, 4, 100, 65_535, 262_000, 262_144, 600_000, 1_048_576, 3_500_000];
    for (let i = 0; i < 60; i++) {
      const size = sizes[i % sizes.length];
      expect(a.forward("ünïcode topic", i % 2 === 0 ? 1 : 2, message(i, size), 0, size)).toBe(1);
    }
    await until(() => got.length === 60, 10_000);
    got.forEach((each, i) => {
      expect(each.topic).toBe("ünïcode topic");
      expect(each.opcode).toBe(i % 2 === 0 ? 1 : 2);
      expect(each.bytes).toEqual(message(i, sizes[i % sizes.length]));
    });
    await Bun.sleep(20);
    expect(got.length).toBe(60);
    expect(a.stats().queuedToWorkers).toBe(0);
  });

  test("a node that does not read: messages wait in order, past the bound new ones are dropped (counted, logged)", async () => {
    const errors = spyOn(console, "error").mockImplementation(() => {});
    try {
      const { a, b, got } = twoNodes();
      b.countChanged("t", 1); // b says it has a subscriber, but reads nothing yet
      await until(() => a.remoteCount("t") === 1);
      const size = 1024 * 1024;
      const count = QUEUE_BYTES_MAX / size + 8;
      for (let i = 0; i < count; i++) a.forward("t", 2, message(i, size), 0, size);
      const stuck = a.stats();
      expect(stuck.droppedToWorkers).toBeGreaterThan(0);
      expect(stuck.queuedToWorkers).toBeGreaterThan(20);
      expect(stuck.sentToWorkers + stuck.queuedToWorkers + stuck.droppedToWorkers).toBe(count);
      expect(String(errors.mock.calls[0]?.[0])).toContain("dropped");
      expect(String(errors.mock.calls[0]?.[0])).toContain("droppedToWorkers");
      // It reads now: the queue drains (it wakes the writer as it frees room), nothing lost.
      b.start(deliverTo(got));
      const delivered = count - stuck.droppedToWorkers;
      await until(() => got.length === delivered, 10_000);
      const seqs = got.map((each) => new DataView(each.bytes.buffer).getUint32(0));
      expect(seqs).toEqual(Array.from({ length: delivered }, (_, i) => i)); // the first ones, in order
      expect(got.every((each, i) => each.bytes.length === size && each.bytes[size - 1] === ((i * 31 + size - 1) & 0xff))).toBe(true);
      expect(a.stats().queuedToWorkers).toBe(0);
      expect(a.stats().sentToWorkers).toBe(delivered);
    } finally {
      errors.mockRestore();
    }
  });

  test("a node that dies: what it wrote is read, its counts forgotten, what waited for it dropped", async () => {
    const errors = spyOn(console, "error").mockImplementation(() => {});
    try {
      const { a, b, got, table } = twoNodes(true);
      // b has subscribers, hears of a's, stops reading, publishes to a: then it "dies".
      b.start(() => {});
      b.countChanged("t", 2);
      a.countChanged("t", 1);
      await until(() => a.remoteCount("t") === 2 && b.remoteCount("t") === 1);
      b.close();
      expect(b.forward("t", 1, message(7, 5), 0, 5)).toBe(1); // a reads it only in removePeer below
      const size = 1024 * 1024;
      for (let i = 0; i < 4; i++) a.forward("t", 2, message(i, size), 0, size); // the ring fills
      expect(a.stats().queuedToWorkers).toBeGreaterThan(0);
      a.removePeer(1);
      expect(a.remoteCount("t")).toBe(0);
      expect(a.stats().queuedToWorkers).toBe(0);
      expect(a.stats().droppedToWorkers).toBeGreaterThan(0);
      expect(got.map((each) => each.bytes)).toEqual([message(7, 5)]);
      expect(a.forward("t", 2, message(9, 5), 0, 5)).toBe(0);
      // Its replacement: fresh rings, and it hears a's count.
      const c = new WorkerBus(table.join(1, [0]));
      open.push(c);
      a.addPeer(table.links(0, 1));
      c.start(() => {});
      await until(() => c.remoteCount("t") === 1);
    } finally {
      errors.mockRestore();
    }
  });
});
