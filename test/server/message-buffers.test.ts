import { describe, expect, test } from "bun:test";
import { MessageBufferPool } from "../../src/server/message-buffers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("MessageBufferPool size classes", () => {
  test("every request gets a Buffer of the smallest power of two ≥ size, never below 1 KiB", () => {
    const pool = new MessageBufferPool();
    const cases: [number, number][] = [
      [0, KiB], [1, KiB], [2, KiB], [1000, KiB], [KiB, KiB],
      [KiB + 1, 2 * KiB], [2 * KiB, 2 * KiB], [3000, 4 * KiB],
      [64 * KiB - 1, 64 * KiB], [64 * KiB, 64 * KiB], [64 * KiB + 1, 128 * KiB],
      [MiB, MiB], [MiB + 1, 2 * MiB], [16 * MiB, 16 * MiB],
    ];
    for (const [size, expected] of cases) {
      const buffer = pool.acquire(size);
      expect(buffer).toBeInstanceOf(Buffer);
      expect({ size, length: buffer!.length }).toEqual({ size, length: expected });
      expect(buffer!.length).toBeGreaterThanOrEqual(size);
      if (expected >= 16 * KiB && expected <= MiB) {
        // Carved from the class's arena: a window of its own, aligned to its size.
        expect(buffer!.byteOffset % expected).toBe(0);
      } else {
        // A whole ArrayBuffer of its own (allocUnsafeSlow: not a slice of Node's shared 8 KiB
        // pool; or a mapping), so handing it out and back is safe.
        expect(buffer!.byteOffset).toBe(0);
        expect(buffer!.buffer.byteLength).toBe(expected);
      }
    }
    expect(pool.cached).toBe(0);
  });

  test("fresh buffers are distinct objects", () => {
    const pool = new MessageBufferPool();
    const a = pool.acquire(5000)!;
    const b = pool.acquire(5000)!;
    expect(a).not.toBe(b);
    expect(a.buffer).not.toBe(b.buffer);
    b.fill(0); // allocUnsafeSlow: contents start undefined
    a.fill(1);
    expect(b.includes(1)).toBe(false); // not sharing memory
  });
});

describe("MessageBufferPool reuse", () => {
  test("a released buffer comes back for any request of its class, and cached counts it", () => {
    const pool = new MessageBufferPool();
    const first = pool.acquire(3000)!; // 4 KiB class
    expect(first.length).toBe(4 * KiB);
    pool.release(first);
    expect(pool.cached).toBe(4 * KiB);

    const again = pool.acquire(2049)!; // also the 4 KiB class
    expect(again).toBe(first);
    expect(pool.cached).toBe(0);

    // The free list is now empty: the next one is new.
    const other = pool.acquire(4 * KiB)!;
    expect(other).not.toBe(first);
  });

  test("classes do not mix: a released 2 KiB buffer is not handed out for 4 KiB or 1 KiB", () => {
    const pool = new MessageBufferPool();
    const two = pool.acquire(2 * KiB)!;
    pool.release(two);
    const four = pool.acquire(4 * KiB)!;
    const one = pool.acquire(KiB)!;
    expect(four).not.toBe(two);
    expect(four.length).toBe(4 * KiB);
    expect(one).not.toBe(two);
    expect(one.length).toBe(KiB);
    expect(pool.cached).toBe(2 * KiB); // the 2 KiB buffer is still waiting in its class
    expect(pool.acquire(1500)).toBe(two);
    expect(pool.cached).toBe(0);
  });

  test("steady traffic cycles through the same few buffers", () => {
    const pool = new MessageBufferPool();
    const seen = new Set<Uint8Array>();
    for (let i = 0; i < 1000; i++) {
      const a = pool.acquire(40_000)!; // 64 KiB class
      const b = pool.acquire(40_000)!; // two in use at once
      seen.add(a);
      seen.add(b);
      pool.release(a);
      pool.release(b);
    }
    expect(seen.size).toBe(2);
    expect(pool.cached).toBe(0); // arena buffers go back to their arena, not the free lists
  });

  test("released buffers come back last in, first out, and keep their contents (no clearing)", () => {
    const pool = new MessageBufferPool();
    const a = pool.acquire(KiB)!;
    const b = pool.acquire(KiB)!;
    a.fill(0xaa);
    b.fill(0xbb);
    pool.release(a);
    pool.release(b);
    const first = pool.acquire(KiB)!;
    const second = pool.acquire(KiB)!;
    expect(first).toBe(b);
    expect(second).toBe(a);
    expect(first[0]).toBe(0xbb);
    expect(second[KiB - 1]).toBe(0xaa);
  });
});

describe("MessageBufferPool bounds", () => {
  test("cached bytes never exceed maxCachedBytes: releases beyond the bound are dropped", () => {
    const pool = new MessageBufferPool(10 * KiB);
    const fours = [pool.acquire(4 * KiB)!, pool.acquire(4 * KiB)!, pool.acquire(4 * KiB)!];
    pool.release(fours[0]);
    pool.release(fours[1]);
    expect(pool.cached).toBe(8 * KiB);
    pool.release(fours[2]); // 12 KiB > 10 KiB: dropped
    expect(pool.cached).toBe(8 * KiB);

    // A smaller one still fits in what is left.
    const two = pool.acquire(2 * KiB)!;
    pool.release(two);
    expect(pool.cached).toBe(10 * KiB);
    const one = pool.acquire(KiB)!;
    pool.release(one); // 11 KiB > 10 KiB: dropped
    expect(pool.cached).toBe(10 * KiB);

    // Only the two kept 4 KiB buffers come back; the dropped third is gone for good.
    const back = [pool.acquire(4 * KiB)!, pool.acquire(4 * KiB)!, pool.acquire(4 * KiB)!];
    expect(back[0]).toBe(fours[1]);
    expect(back[1]).toBe(fours[0]);
    expect(back[2]).not.toBe(fours[2]);
    expect(pool.acquire(KiB)).not.toBe(one);
    expect(pool.acquire(2 * KiB)).toBe(two);
    expect(pool.cached).toBe(0);
  });

  test("a buffer larger than the whole bound is never cached", () => {
    const pool = new MessageBufferPool(2 * MiB);
    const big = pool.acquire(3 * MiB)!; // 4 MiB class: a mapping of its own
    expect(big.length).toBe(4 * MiB);
    pool.release(big);
    expect(pool.cached).toBe(0);
    expect(pool.nativeCount).toBe(0); // unmapped
    expect(pool.acquire(3 * MiB)).not.toBe(big);
    pool.dispose();
  });

  test("maxCachedBytes 0 caches nothing", () => {
    const pool = new MessageBufferPool(0);
    const a = pool.acquire(KiB)!;
    pool.release(a);
    expect(pool.cached).toBe(0);
    expect(pool.acquire(KiB)).not.toBe(a);
  });

  test("the default bound is 64 MiB", () => {
    const pool = new MessageBufferPool();
    const held = Array.from({ length: 5 }, () => pool.acquire(16 * MiB)!);
    for (const b of held) pool.release(b);
    expect(pool.cached).toBe(64 * MiB); // four kept, the fifth dropped
    const back = Array.from({ length: 5 }, () => pool.acquire(16 * MiB)!);
    expect(new Set(back.slice(0, 4))).toEqual(new Set(held.slice(0, 4)));
    expect(held).not.toContain(back[4]);
    expect(pool.cached).toBe(0);
  });
});

describe("MessageBufferPool refuses buffers it did not hand out", () => {
  test("a plain Uint8Array of a class size is not kept", () => {
    const pool = new MessageBufferPool();
    const foreign = new Uint8Array(4 * KiB);
    pool.release(foreign);
    expect(pool.cached).toBe(0);
    expect(pool.acquire(4 * KiB)).not.toBe(foreign);
  });

  test("a Buffer whose length is not a class size is not kept", () => {
    const pool = new MessageBufferPool();
    for (const length of [0, 1, 100, 1023, 1025, 3000, 4 * KiB - 1, 4 * KiB + 1]) {
      pool.release(Buffer.allocUnsafeSlow(length));
    }
    expect(pool.cached).toBe(0);
  });

  test("a buffer below the smallest class (512 B, a power of two) is not kept", () => {
    const pool = new MessageBufferPool();
    const small = Buffer.allocUnsafeSlow(512);
    pool.release(small);
    expect(pool.cached).toBe(0);
    const next = pool.acquire(512)!;
    expect(next).not.toBe(small);
    expect(next.length).toBe(KiB);
  });

  test("a shortened view of a pool buffer is not kept (its length is no longer the class size)", () => {
    const pool = new MessageBufferPool();
    const buffer = pool.acquire(4 * KiB)!;
    pool.release(buffer.subarray(0, 3000));
    expect(pool.cached).toBe(0);
    pool.release(buffer);
    expect(pool.cached).toBe(4 * KiB);
  });

  test("a Buffer of a class size that the pool never issued is not kept", () => {
    const pool = new MessageBufferPool();
    pool.release(Buffer.alloc(4 * KiB));
    expect(pool.cached).toBe(0);
    expect(pool.acquire(4 * KiB)).not.toBe(undefined);
  });

  test("a double release is ignored: two acquires never share one buffer", () => {
    const pool = new MessageBufferPool();
    const buffer = pool.acquire(4 * KiB)!;
    pool.release(buffer);
    pool.release(buffer);
    expect(pool.cached).toBe(4 * KiB);
    const first = pool.acquire(4 * KiB);
    const second = pool.acquire(4 * KiB);
    expect(first).toBe(buffer);
    expect(second).not.toBe(buffer);
  });
});

describe("MessageBufferPool lends its large buffers", () => {
  test("from 16 KiB up buffers are native and lendable while the parser holds them", () => {
    const pool = new MessageBufferPool();
    try {
      const small = pool.acquire(8 * KiB)!;
      expect(pool.lend(small)).toBe(-1); // heap memory: copied, never lent
      const big = pool.acquire(20 * KiB)!;
      expect(big.length).toBe(32 * KiB);
      const token = pool.lend(big.subarray(100, 5000));
      expect(token).toBeGreaterThanOrEqual(0);
      expect(pool.addressOf(token, big.subarray(100))).toBe(pool.addressOf(token, big) + 100);
      pool.release(big);
      expect(pool.lend(big)).toBe(-1); // released: nothing more may be lent from it
      pool.giveBack(token);
      expect(pool.acquire(20 * KiB)).toBe(big); // back in the cache only now
      expect(pool.lend(new Uint8Array(64 * KiB))).toBe(-1);
    } finally {
      pool.dispose();
    }
  });

  test("a buffer out on loan is not handed to the next message; every loan must come back", () => {
    const pool = new MessageBufferPool();
    try {
      const big = pool.acquire(64 * KiB)!;
      const loans = [pool.lend(big), pool.lend(big), pool.lend(big)];
      pool.release(big);
      pool.giveBack(loans[0]);
      pool.giveBack(loans[1]);
      const other = pool.acquire(64 * KiB)!;
      expect(other).not.toBe(big);
      pool.giveBack(loans[2]);
      pool.giveBack(loans[2]); // an extra give-back changes nothing
      expect(pool.acquire(64 * KiB)).toBe(big); // back, and the warmest: next out
      expect(pool.acquire(64 * KiB)).not.toBe(big);
    } finally {
      pool.dispose();
    }
  });

  test("dispose unmaps what no parser holds; a held buffer is unmapped when released", () => {
    const pool = new MessageBufferPool();
    const cachedOne = pool.acquire(2 * MiB)!; // above the arenas: a mapping each
    const held = pool.acquire(2 * MiB)!;
    const inArena = pool.acquire(64 * KiB)!;
    pool.release(cachedOne);
    expect(pool.nativeCount).toBe(2);
    pool.dispose();
    expect(pool.nativeCount).toBe(1);
    expect(pool.cached).toBe(0);
    held[0] = 1; // still mapped: the parser holds it
    inArena[0] = 1; // its arena too
    pool.release(held);
    pool.release(inArena);
    expect(pool.nativeCount).toBe(0);
    expect(pool.cached).toBe(0);
    expect(pool.lend(inArena)).toBe(-1);
  });
});

describe("MessageBufferPool gives memory back after a burst", () => {
  test("trimIdle: idle arenas release their pages, idle cached mappings are unmapped", () => {
    const pool = new MessageBufferPool();
    const inArena = pool.acquire(64 * KiB)!; // an arena class
    const ownMapping = pool.acquire(4 * MiB)!; // a mapping of its own
    inArena.fill(7);
    ownMapping.fill(7);
    pool.release(inArena);
    pool.release(ownMapping);
    expect(pool.nativeCount).toBe(1); // the 4 MiB one, cached
    expect(pool.trimIdle()).toBe(0); // used since the last call
    expect(pool.trimIdle()).toBeGreaterThanOrEqual(64 * KiB + 4 * MiB);
    expect(pool.nativeCount).toBe(0);
    expect(pool.acquire(64 * KiB)![0]).toBe(0); // the arena's pages came back zeroed
    expect(pool.trimIdle()).toBe(0); // in use again
    pool.dispose();
  });
});
