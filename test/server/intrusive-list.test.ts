import { describe, expect, test } from "bun:test";
import { fullGC, heapStats } from "bun:jsc";
import fc from "fast-check";
import { IntrusiveList } from "../../src/server/intrusive-list.ts";

/** Ids from head to tail, walking head/after; bounded so a broken link cannot loop forever. */
function walk(list: IntrusiveList, limit = 1000): number[] {
  const ids: number[] = [];
  for (let id = list.head; id !== -1; id = list.after(id)) {
    ids.push(id);
    if (ids.length > limit) throw new Error(`list does not end: ${ids.slice(0, 20).join(",")}...`);
  }
  return ids;
}

function members(list: IntrusiveList, capacity: number): number[] {
  const ids: number[] = [];
  for (let id = 0; id < capacity; id++) if (list.has(id)) ids.push(id);
  return ids;
}

describe("IntrusiveList basics", () => {
  test("a new list is empty", () => {
    const list = new IntrusiveList(8);
    expect(list.head).toBe(-1);
    expect(list.size).toBe(0);
    for (let id = 0; id < 8; id++) {
      expect(list.has(id)).toBe(false);
      expect(list.after(id)).toBe(-1);
    }
  });

  test("pushTail appends in order; head/after walk it; size and has follow", () => {
    const list = new IntrusiveList(10);
    list.pushTail(3);
    expect(list.head).toBe(3);
    expect(list.after(3)).toBe(-1);
    list.pushTail(7);
    list.pushTail(0);
    list.pushTail(9);
    expect(walk(list)).toEqual([3, 7, 0, 9]);
    expect(list.size).toBe(4);
    expect(list.head).toBe(3);
    expect(list.after(3)).toBe(7);
    expect(list.after(7)).toBe(0);
    expect(list.after(0)).toBe(9);
    expect(list.after(9)).toBe(-1);
    expect(members(list, 10)).toEqual([0, 3, 7, 9]);
  });

  test("pushTail of a member moves it to the tail without counting it twice", () => {
    const list = new IntrusiveList(5);
    for (const id of [0, 1, 2, 3]) list.pushTail(id);
    list.pushTail(1);
    expect(walk(list)).toEqual([0, 2, 3, 1]);
    expect(list.size).toBe(4);
    list.pushTail(0); // the head
    expect(walk(list)).toEqual([2, 3, 1, 0]);
    expect(list.head).toBe(2);
    list.pushTail(0); // already the tail
    expect(walk(list)).toEqual([2, 3, 1, 0]);
    expect(list.size).toBe(4);
  });

  test("a single element list: push, move onto itself, remove", () => {
    const list = new IntrusiveList(2);
    list.pushTail(1);
    list.pushTail(1);
    expect(walk(list)).toEqual([1]);
    expect(list.size).toBe(1);
    list.remove(1);
    expect(list.head).toBe(-1);
    expect(list.size).toBe(0);
    expect(list.has(1)).toBe(false);
    list.pushTail(0);
    expect(walk(list)).toEqual([0]);
  });
});

describe("IntrusiveList.remove", () => {
  const build = () => {
    const list = new IntrusiveList(6);
    for (const id of [4, 2, 5, 0, 1]) list.pushTail(id);
    return list;
  };

  test("removing the head advances head", () => {
    const list = build();
    list.remove(4);
    expect(list.head).toBe(2);
    expect(walk(list)).toEqual([2, 5, 0, 1]);
    expect(list.size).toBe(4);
    expect(list.has(4)).toBe(false);
    expect(list.after(4)).toBe(-1); // a removed id keeps no stale link
  });

  test("removing from the middle relinks its neighbours", () => {
    const list = build();
    list.remove(5);
    expect(walk(list)).toEqual([4, 2, 0, 1]);
    expect(list.after(2)).toBe(0);
    expect(list.size).toBe(4);
    expect(list.has(5)).toBe(false);
  });

  test("removing the tail: the next pushTail lands after the new tail", () => {
    const list = build();
    list.remove(1);
    expect(walk(list)).toEqual([4, 2, 5, 0]);
    expect(list.after(0)).toBe(-1);
    list.pushTail(3);
    expect(walk(list)).toEqual([4, 2, 5, 0, 3]);
  });

  test("removing a non-member changes nothing (twice, or never added)", () => {
    const list = build();
    list.remove(3); // never added
    list.remove(5);
    list.remove(5); // already removed
    expect(walk(list)).toEqual([4, 2, 0, 1]);
    expect(list.size).toBe(4);
  });

  test("removing everything empties the list; it is reusable afterwards", () => {
    const list = build();
    for (const id of [0, 4, 1, 2, 5]) list.remove(id);
    expect(list.head).toBe(-1);
    expect(list.size).toBe(0);
    expect(members(list, 6)).toEqual([]);
    list.pushTail(5);
    list.pushTail(4);
    expect(walk(list)).toEqual([5, 4]);
    expect(list.size).toBe(2);
  });

  test("removing while walking (the timeout scan pattern): take next before removing", () => {
    const list = new IntrusiveList(10);
    for (let id = 0; id < 10; id++) list.pushTail(id);
    for (let id = list.head; id !== -1;) {
      const next = list.after(id);
      if (id % 3 === 0) list.remove(id);
      id = next;
    }
    expect(walk(list)).toEqual([1, 2, 4, 5, 7, 8]);
    expect(list.size).toBe(6);
  });
});

describe("IntrusiveList.touch", () => {
  test("touch moves a member to the tail (most recent)", () => {
    const list = new IntrusiveList(4);
    for (const id of [0, 1, 2, 3]) list.pushTail(id);
    list.touch(0);
    expect(walk(list)).toEqual([1, 2, 3, 0]);
    list.touch(2);
    expect(walk(list)).toEqual([1, 3, 0, 2]);
    expect(list.head).toBe(1);
    expect(list.size).toBe(4);
  });

  test("touch of the tail is a no-op", () => {
    const list = new IntrusiveList(3);
    for (const id of [2, 0, 1]) list.pushTail(id);
    list.touch(1);
    list.touch(1);
    expect(walk(list)).toEqual([2, 0, 1]);
    expect(list.size).toBe(3);
  });

  test("touch of a non-member adds it at the tail", () => {
    const list = new IntrusiveList(3);
    list.touch(2);
    expect(walk(list)).toEqual([2]);
    expect(list.has(2)).toBe(true);
    list.touch(0);
    expect(walk(list)).toEqual([2, 0]);
    expect(list.size).toBe(2);
  });

  test("ordered by last activity: the head is always the least recently touched", () => {
    const capacity = 50;
    const list = new IntrusiveList(capacity);
    const lastSeen = new Array<number>(capacity).fill(-1);
    let clock = 0;
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % capacity;
    for (let i = 0; i < 2000; i++) {
      const id = random();
      list.touch(id);
      lastSeen[id] = clock++;
      const order = walk(list);
      const times = order.map((x) => lastSeen[x]);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
    expect(list.size).toBe(lastSeen.filter((t) => t >= 0).length);
  });
});

describe("IntrusiveList against a model", () => {
  type Op = { kind: "pushTail" | "remove" | "touch"; id: number };
  const capacity = 12;
  const op = fc.record({
    kind: fc.constantFrom<Op["kind"]>("pushTail", "remove", "touch"),
    id: fc.integer({ min: 0, max: capacity - 1 }),
  });

  test("any sequence of pushTail/remove/touch matches an array model", () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const list = new IntrusiveList(capacity);
      let model: number[] = [];
      for (const { kind, id } of ops) {
        if (kind === "remove") {
          list.remove(id);
          model = model.filter((x) => x !== id);
        } else {
          if (kind === "pushTail") list.pushTail(id);
          else list.touch(id);
          model = [...model.filter((x) => x !== id), id];
        }
        expect(walk(list)).toEqual(model);
        expect(list.size).toBe(model.length);
        expect(list.head).toBe(model.length > 0 ? model[0] : -1);
        for (let x = 0; x < capacity; x++) {
          expect(list.has(x)).toBe(model.includes(x));
          const at = model.indexOf(x);
          expect(list.after(x)).toBe(at >= 0 && at + 1 < model.length ? model[at + 1] : -1);
        }
      }
    }), { numRuns: 300 });
  });
});

describe("IntrusiveList allocates nothing per operation", () => {
  /** Live JS objects (objectTypeCounts counts everything allocated, not only GC survivors). */
  function liveObjects(): number {
    const counts = heapStats().objectTypeCounts;
    let total = 0;
    for (const type in counts) total += counts[type]!;
    return total;
  }

  test("a million push/touch/remove operations leave no objects behind", () => {
    const capacity = 1024;
    const list = new IntrusiveList(capacity);
    let sink = 0;
    const churn = () => {
      for (let i = 0; i < 1_000_000; i++) {
        const id = (i * 7919) & (capacity - 1);
        if ((i & 3) === 0) list.remove(id);
        else if ((i & 3) === 1) list.pushTail(id);
        else list.touch(id);
        sink += list.head;
      }
    };
    const empty = () => {
      for (let i = 0; i < 1_000_000; i++) sink += (i * 7919) & (capacity - 1);
    };
    const measure = (fn: () => void) => {
      fn(); // warm up: JIT tiers settle first
      fullGC();
      const before = liveObjects();
      fn();
      return liveObjects() - before;
    };
    const allocated = measure(churn) - measure(empty);
    expect(sink).not.toBeNaN();
    // Well under one object per 10,000 operations (a JIT compile may add a few).
    expect(allocated).toBeLessThan(100);
  });
});

describe("IntrusiveList.grow", () => {
  test("keeps order and membership, and takes ids up to the new capacity", () => {
    const list = new IntrusiveList(4);
    for (const id of [2, 0, 3]) list.pushTail(id);
    list.grow(16);
    list.pushTail(12);
    list.touch(0);
    const order: number[] = [];
    for (let id = list.head; id !== -1; id = list.after(id)) order.push(id);
    expect(order).toEqual([2, 3, 12, 0]);
    expect(list.has(12)).toBe(true);
    expect(list.has(9)).toBe(false);
    expect(list.size).toBe(4);
  });
});
