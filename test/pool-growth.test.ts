/**
 * Memory that grows with use: views made a segment at a time (so JSC accounts only for what
 * is used), and per-connection arrays that double as connection slots are taken.
 */
import { describe, expect, test } from "bun:test";
import { fullGC, heapStats } from "bun:jsc";
import { existsSync, readFileSync } from "node:fs";
import { UsageError } from "../src/api/errors.ts";
import { BytePool } from "../src/pool/byte-pool.ts";
import { grown, nextCapacity } from "../src/pool/grown-array.ts";
import { PoolErrorCode } from "../src/pool/pool-errors.ts";
import { MemoryRegion } from "../src/pool/region.ts";
import { SegmentedViews } from "../src/pool/segmented-views.ts";

const MiB = 1024 * 1024;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof UsageError) return error.code;
    throw error;
  }
  return undefined;
}

describe("grown arrays", () => {
  test("keep their elements, fill the new ones, keep their type", () => {
    const ids = Int32Array.of(3, -1, 7);
    const longer = grown(ids, 6, -1);
    expect(longer).toBeInstanceOf(Int32Array);
    expect([...longer]).toEqual([3, -1, 7, -1, -1, -1]);
    const times = grown(Float64Array.of(1.5), 3);
    expect([...times]).toEqual([1.5, 0, 0]);
    expect(grown(new Uint8Array(2), 4)).toBeInstanceOf(Uint8Array);
  });

  test("capacities double up to the maximum", () => {
    expect(nextCapacity(1024, 65536)).toBe(2048);
    expect(nextCapacity(40_000, 65536)).toBe(65536);
    expect(nextCapacity(0, 10)).toBe(1);
  });
});

describe("MemoryRegion.viewRange", () => {
  test("a view of part of the region, on the same memory as the whole view", () => {
    const region = MemoryRegion.allocate(64 * 1024, { hugepages: "off" });
    try {
      const part = region.viewRange(4096, 8192);
      expect(part.byteLength).toBe(4096);
      part[0] = 42;
      expect(region.view[4096]).toBe(42);
      expect(region.viewRange(10, 10).byteLength).toBe(0);
    } finally {
      region.free();
    }
  });

  test("ranges outside the region are refused; after free() every call throws", () => {
    const region = MemoryRegion.allocate(4096, { hugepages: "off" });
    expect(codeOf(() => region.viewRange(0, region.size + 1))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => region.viewRange(8, 4))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => region.viewRange(-1, 4))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    region.free();
    expect(codeOf(() => region.viewRange(0, 1))).toBe(PoolErrorCode.USE_AFTER_FREE);
  });

  test("only the viewed bytes count in JSC's heap (the reason it exists)", () => {
    const region = MemoryRegion.allocate(64 * MiB, { hugepages: "off" });
    try {
      fullGC();
      const before = heapStats().extraMemorySize;
      const part = region.viewRange(0, MiB);
      fullGC();
      const grew = heapStats().extraMemorySize - before;
      expect(part.byteLength).toBe(MiB);
      expect(grew).toBeLessThan(8 * MiB); // a whole view would add 64 MiB
    } finally {
      region.free();
    }
  });
});

describe("MemoryRegion hugepages: \"transparent\"", () => {
  test("never takes reserved hugepages; advised THP when the kernel has it", () => {
    const region = MemoryRegion.allocate(4 * MiB, { hugepages: "transparent" });
    try {
      expect(region.kind).not.toBe("hugetlb");
      const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled";
      const mode = existsSync(modeFile) ? readFileSync(modeFile, "utf8") : "[never]";
      if (!mode.includes("[never]")) expect(region.kind).toBe("thp");
      region.view[region.size - 1] = 1;
    } finally {
      region.free();
    }
  });
});

describe("SegmentedViews", () => {
  test("views a segment once, on first use; the last one may be short", () => {
    const region = MemoryRegion.allocate(10_000, { hugepages: "off" });
    try {
      const views = new SegmentedViews(region, 10_000, 4096);
      expect(views.segmentCount).toBe(3);
      expect(views.viewed).toBe(0);
      const second = views.segment(1);
      expect(views.segment(1)).toBe(second);
      expect(views.viewed).toBe(1);
      expect(views.segment(2).byteLength).toBe(10_000 - 8192);
      expect(views.viewedBytes).toBe(4096 + 10_000 - 8192);
      second[0] = 7;
      expect(region.view[4096]).toBe(7);
    } finally {
      region.free();
    }
  });
});

describe("BytePool views only the segments its slots use", () => {
  test("64 MiB of 16 KiB slots: using a few views 1 MiB, ids in later segments view theirs", () => {
    const pool = new BytePool(16 * 1024, 4096, { hugepages: "off" });
    try {
      expect(pool.viewedBytes).toBe(0);
      const ids = [pool.acquire(), pool.acquire(), pool.acquire()];
      for (const id of ids) pool.slotView(id).fill(id + 1);
      expect(pool.viewedBytes).toBe(MiB);
      const far = 4000;
      const view = pool.slotView(far);
      expect(view.byteLength).toBe(pool.slotSize);
      expect(pool.viewedBytes).toBe(2 * MiB);
      view[0] = 99;
      expect(pool.region.view[far * pool.slotSize]).toBe(99);
      expect(pool.slotView(ids[1])[0]).toBe(ids[1] + 1);
      expect(codeOf(() => pool.slotView(4096))).toBe(PoolErrorCode.FOREIGN_SLOT);
    } finally {
      pool.destroy();
    }
  });
});
