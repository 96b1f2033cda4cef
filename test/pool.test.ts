import { describe, expect, test } from "bun:test";
import { residentKiB } from "./support/resident.ts";
import { fullGC, heapStats } from "bun:jsc";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../src/api/errors.ts";
import { libc, MPOL_BIND, MPOL_DEFAULT } from "../src/ffi/libc.ts";
import { addressOf } from "../src/ffi/memory.ts";
import { numaNodeOfCpu, numaStatus, policyOfAddress } from "../src/ffi/numa.ts";
import { BytePool } from "../src/pool/byte-pool.ts";
import { NumaPoolManager } from "../src/pool/numa-pool-manager.ts";
import { ObjectPool } from "../src/pool/object-pool.ts";
import { PoolErrorCode } from "../src/pool/pool-errors.ts";
import { hugepageSize, MemoryRegion, REGION_BYTES_MAX } from "../src/pool/region.ts";

const MiB = 1024 * 1024;

/** Hugepage state of the box, read per test run: tests assert what this state implies. */
function hugepageState() {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(meminfo)?.[1] ?? 0);
  const overcommit = Number(readText("/proc/sys/vm/nr_overcommit_hugepages").trim() || 0);
  return {
    reserved: Number(readText("/proc/sys/vm/nr_hugepages").trim() || 0),
    // Pages another mapping has reserved but not yet faulted are not available to us.
    usable: field("HugePages_Free") - field("HugePages_Rsvd"),
    overcommit,
  };
}

function thpEnabled(): boolean {
  const mode = /\[(\w+)\]/.exec(readText("/sys/kernel/mm/transparent_hugepage/enabled"));
  return mode !== null && mode[1] !== "never";
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** The /proc/self/smaps block of the mapping that starts at `pointer`. */
function smapsOf(pointer: number): string {
  const smaps = readFileSync("/proc/self/smaps", "utf8");
  const start = smaps.indexOf(`${pointer.toString(16)}-`);
  expect(start).toBeGreaterThanOrEqual(0);
  const next = smaps.indexOf("\nVmFlags:", start);
  return smaps.slice(start, smaps.indexOf("\n", next + 1));
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).code;
  }
  return undefined;
}

/** Live JS objects (objectTypeCounts counts everything allocated, not only GC survivors). */
function liveObjects(): number {
  const counts = heapStats().objectTypeCounts;
  let total = 0;
  for (const type in counts) total += counts[type]!;
  return total;
}

/** Objects `run` leaves allocated, beyond what an empty loop of the same shape leaves. */
function objectsAllocatedBy(run: () => void, baseline: () => void): number {
  const measure = (fn: () => void) => {
    fn(); // warm up: JIT tiers and inline caches settle before measuring
    fullGC();
    const before = liveObjects();
    fn();
    return liveObjects() - before;
  };
  return measure(run) - measure(baseline);
}

let sink = 0;
const emptyLoop = () => {
  for (let i = 0; i < 1_000_000; i++) sink += i;
};

/** A test name that carries the reason when the test is skipped on this box. */
function whenSkipped(skipped: boolean, name: string, reason: string): string {
  return skipped ? `${name} (skipped: ${reason})` : name;
}

const hugepages = hugepageState();
const pagesFor4MiB = Math.ceil((4 * MiB) / hugepageSize());
const hugetlbCertain = hugepages.usable >= pagesFor4MiB;

describe("MemoryRegion kinds", () => {
  test.skipIf(!hugetlbCertain)(
    whenSkipped(!hugetlbCertain, "hugepages reserved: \"auto\" maps MAP_HUGETLB",
      "no free hugepages; echo 64 > /proc/sys/vm/nr_hugepages to run it"), () => {
      const region = MemoryRegion.allocate(3 * MiB, {});
      try {
        expect(region.kind).toBe("hugetlb");
        expect(region.kindNote).toBe("");
        expect(region.size).toBe(Math.ceil((3 * MiB) / hugepageSize()) * hugepageSize());
        expect(region.pointer % hugepageSize()).toBe(0);
        expect(smapsOf(region.pointer)).toMatch(/VmFlags:.* ht/);
      } finally {
        region.free();
      }
    });

  // Runs in both states: with no hugepages any request falls back; with some reserved, a
  // request larger than the free pool does.
  test.skipIf(hugepages.overcommit !== 0)(
    whenSkipped(hugepages.overcommit !== 0, "\"auto\" falls back to THP when hugetlb cannot cover it",
      "nr_overcommit_hugepages > 0 lets any request succeed"), () => {
      const fallbackSize = Math.max(4 * MiB,
        (Math.max(0, hugepages.usable) + 1) * hugepageSize());
      const region = MemoryRegion.allocate(fallbackSize, {});
      try {
        expect(region.kind).toBe(thpEnabled() ? "thp" : "plain");
        expect(region.kindNote).toContain("MAP_HUGETLB failed: ENOMEM");
        expect(region.size).toBe(fallbackSize);
        if (region.kind === "thp") {
          // 2 MiB-aligned so each 2 MiB can be one PMD page; "hg" = VM_HUGEPAGE (madvised).
          expect(region.pointer % (2 * MiB)).toBe(0);
          expect(smapsOf(region.pointer)).toMatch(/VmFlags:.* hg/);
        }
      } finally {
        region.free();
      }
    });

  test('hugepages: "hugetlb" falls back to plain pages, never THP (a sparsely touched region)', () => {
    // Larger than the reserved pool, so MAP_HUGETLB fails here whatever is reserved.
    const size = (Math.max(0, hugepages.usable) + 1) * hugepageSize();
    const region = MemoryRegion.allocate(size, { hugepages: "hugetlb" });
    try {
      expect(region.kind).toBe("plain");
      expect(smapsOf(region.pointer)).not.toMatch(/VmFlags:.* hg/);
    } finally {
      region.free();
    }
  });

  test("small regions fall back to plain pages when hugetlb is unavailable", () => {
    const region = MemoryRegion.allocate(4096, {});
    try {
      if (region.kind === "hugetlb") {
        expect(hugepages.usable + hugepages.overcommit).toBeGreaterThan(0);
        expect(region.size).toBe(hugepageSize());
      } else {
        expect(region.kind).toBe("plain");
        expect(region.size).toBe(4096);
        expect(region.kindNote).toContain("smaller than one transparent huge page");
      }
    } finally {
      region.free();
    }
  });

  test("hugepages \"off\" gives plain pages advised MADV_NOHUGEPAGE", () => {
    const region = MemoryRegion.allocate(4 * MiB + 1, { hugepages: "off" });
    try {
      expect(region.kind).toBe("plain");
      expect(region.size).toBe(4 * MiB + 4096);
      expect(region.requestedSize).toBe(4 * MiB + 1);
      expect(region.kindNote).toContain("off");
      expect(smapsOf(region.pointer)).toMatch(/VmFlags:.* nh/);
    } finally {
      region.free();
    }
  });

  test("prefault faults every page in at allocation", () => {
    const region = MemoryRegion.allocate(MiB, { prefault: true, hugepages: "off" });
    try {
      const rss = Number(/^Rss:\s+(\d+) kB/m.exec(smapsOf(region.pointer))?.[1]);
      expect(rss * 1024).toBe(MiB);
    } finally {
      region.free();
    }
  });

  test("invalid sizes and options are UsageErrors", () => {
    const invalid = PoolErrorCode.INVALID_ARGUMENT;
    expect(codeOf(() => MemoryRegion.allocate(0))).toBe(invalid);
    expect(codeOf(() => MemoryRegion.allocate(1.5))).toBe(invalid);
    // Past what one ArrayBuffer can view in Bun; refused before anything is mapped.
    expect(codeOf(() => MemoryRegion.allocate(REGION_BYTES_MAX + 1))).toBe(invalid);
    expect(codeOf(() => MemoryRegion.allocate(4096, { node: -2 }))).toBe(invalid);
    const bad = { hugepages: "yes" } as unknown as { hugepages: "auto" };
    expect(codeOf(() => MemoryRegion.allocate(4096, bad))).toBe(invalid);
  });
});

describe("MemoryRegion NUMA placement", () => {
  const status = numaStatus();

  test("default node is the current CPU's node when libnuma works, else -1 with a note", () => {
    const region = MemoryRegion.allocate(64 * 1024, { hugepages: "off" });
    try {
      if (status.available) {
        expect(region.placementNote).toBe("");
        if (status.nodes === 1) expect(region.node).toBe(0);
        expect(region.node).toBe(numaNodeOfCpu(libc().sched_getcpu()));
        region.view[0] = 1;
        expect(policyOfAddress(region.pointer)).toEqual({ mode: MPOL_BIND, node: region.node });
      } else {
        expect(region.node).toBe(-1);
        expect(region.placementNote).toBe(status.note);
      }
    } finally {
      region.free();
    }
  });

  test("node -1 skips placement; a node that does not exist is skipped with a note", () => {
    const unplaced = MemoryRegion.allocate(64 * 1024, { node: -1, hugepages: "off" });
    expect(unplaced.node).toBe(-1);
    expect(unplaced.placementNote).toContain("not requested");
    unplaced.view[0] = 1;
    expect(policyOfAddress(unplaced.pointer).mode).toBe(MPOL_DEFAULT);
    unplaced.free();
    const missing = MemoryRegion.allocate(4096, { node: 4095 });
    expect(missing.node).toBe(-1);
    expect(missing.placementNote.length).toBeGreaterThan(0);
    missing.free();
  });

  test("HIOLOAD_NO_LIBNUMA=1: regions and managers report node -1 with the reason", () => {
    const result = Bun.spawnSync(
      [process.execPath, join(import.meta.dir, "fixtures", "numa-probe.ts"), "absent"],
      { env: { ...process.env, HIOLOAD_NO_LIBNUMA: "1" }, stdout: "pipe", stderr: "pipe" });
    expect(result.stderr.toString()).toBe("");
    expect(result.exitCode).toBe(0);
    const json = JSON.parse(result.stdout.toString());
    const note = "libnuma disabled by HIOLOAD_NO_LIBNUMA=1";
    expect(json.region.node).toBe(-1);
    expect(json.region.placementNote).toBe(note);
    expect(json.manager).toEqual({ placed: false, note, samePool: true });
    expect(json.stats.length).toBe(1);
    expect(json.stats[0].node).toBe(-1);
    expect(json.stats[0].stats.node).toBe(-1);
    // Without libnuma, affinity reads /sys/devices/system/cpu/cpu0/node*: 0 on any box.
    expect(json.nodeOfCpu0).toBe(0);
  });
});

describe("MemoryRegion lifetime", () => {
  test("view round-trips bytes and is made once", () => {
    const region = MemoryRegion.allocate(8192, { hugepages: "off" });
    const view = region.view;
    expect(region.view).toBe(view);
    expect(view.byteLength).toBe(region.size);
    expect(addressOf(view)).toBe(region.pointer);
    for (let i = 0; i < 256; i++) view[i * 32] = i;
    const again = region.subarray(0, 8192);
    for (let i = 0; i < 256; i++) expect(again[i * 32]).toBe(i);
    region.free();
  });

  test("use after free throws UsageError instead of touching unmapped memory", () => {
    const region = MemoryRegion.allocate(4096, { hugepages: "off" });
    region.free();
    expect(region.freed).toBe(true);
    expect(codeOf(() => region.view)).toBe(PoolErrorCode.USE_AFTER_FREE);
    expect(codeOf(() => region.pointer)).toBe(PoolErrorCode.USE_AFTER_FREE);
    expect(codeOf(() => region.subarray(0, 1))).toBe(PoolErrorCode.USE_AFTER_FREE);
    expect(codeOf(() => region.free())).toBe(PoolErrorCode.DOUBLE_FREE);
    expect(region.size).toBe(4096); // descriptive fields stay readable
    expect(region.kind).toBe("plain");
  });
});

describe("BytePool", () => {
  test("acquires every slot once, in order, then -1; release makes them reusable", () => {
    const pool = new BytePool(64, 32, { hugepages: "off" });
    for (let id = 0; id < 32; id++) expect(pool.acquire()).toBe(id);
    expect(pool.acquire()).toBe(-1);
    expect(pool.inUse).toBe(32);
    for (let id = 31; id >= 0; id--) pool.release(id);
    expect(pool.available).toBe(32);
    const again = new Set<number>();
    for (let i = 0; i < 32; i++) again.add(pool.acquire());
    expect(again.size).toBe(32);
    expect(pool.acquire()).toBe(-1);
    pool.destroy();
  });

  test("double and foreign releases are UsageErrors", () => {
    const pool = new BytePool(64, 4, { hugepages: "off" });
    const id = pool.acquire();
    pool.release(id);
    expect(codeOf(() => pool.release(id))).toBe(PoolErrorCode.DOUBLE_RELEASE);
    expect(codeOf(() => pool.release(3))).toBe(PoolErrorCode.DOUBLE_RELEASE); // never acquired
    for (const foreign of [-1, 4, 1.5, Number.NaN, 2 ** 32]) {
      expect(codeOf(() => pool.release(foreign))).toBe(PoolErrorCode.FOREIGN_SLOT);
    }
    expect(codeOf(() => pool.slotView(4))).toBe(PoolErrorCode.FOREIGN_SLOT);
    expect(codeOf(() => pool.slotAddress(-1))).toBe(PoolErrorCode.FOREIGN_SLOT);
    expect(pool.inUse).toBe(0);
    pool.destroy();
  });

  test("high-water mark and stats", () => {
    const pool = new BytePool(100, 10, { hugepages: "off" });
    const ids = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const id of ids) pool.release(id);
    pool.acquire();
    const stats = pool.stats();
    expect(stats).toEqual({
      slotSize: 128, capacity: 10, inUse: 1, highWater: 3, regionKind: "plain",
      node: pool.region.node, bytes: 4096,
    });
    pool.destroy();
  });

  test("slot views are made once; addresses are region.pointer + id * slotSize", () => {
    const pool = new BytePool(100, 16, { hugepages: "off", exactSlotSize: true });
    expect(pool.slotSize).toBe(100);
    const base = pool.region.pointer;
    for (let id = 0; id < 16; id++) {
      const view = pool.slotView(id);
      expect(pool.slotView(id)).toBe(view);
      expect(view.byteLength).toBe(100);
      expect(pool.slotOffset(id)).toBe(id * 100);
      expect(pool.slotAddress(id)).toBe(base + id * 100);
      expect(addressOf(view)).toBe(base + id * 100);
      view[0] = id + 1;
      view[99] = id + 101;
    }
    const whole = pool.region.view;
    for (let id = 0; id < 16; id++) {
      expect(whole[id * 100]).toBe(id + 1);
      expect(whole[id * 100 + 99]).toBe(id + 101);
    }
    pool.destroy();
  });

  test("slot sizes round up to 64 bytes unless exactSlotSize", () => {
    const slotSizeOf = (size: number, exactSlotSize: boolean) => {
      const pool = new BytePool(size, 1, { hugepages: "off", exactSlotSize });
      pool.destroy();
      return pool.slotSize;
    };
    expect(slotSizeOf(1, false)).toBe(64);
    expect(slotSizeOf(65, false)).toBe(128);
    expect(slotSizeOf(65, true)).toBe(65);
    expect(codeOf(() => new BytePool(0, 1))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => new BytePool(64, 0))).toBe(PoolErrorCode.INVALID_ARGUMENT);
  });

  test("a pool over a caller's region leaves the region mapped on destroy", () => {
    const region = MemoryRegion.allocate(8192, { hugepages: "off" });
    expect(codeOf(() => new BytePool(4096, 3, { region }))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    const pool = new BytePool(4096, 2, { region });
    expect(pool.region).toBe(region);
    expect(pool.slotAddress(1)).toBe(region.pointer + 4096);
    pool.destroy();
    expect(region.freed).toBe(false);
    region.free();
  });

  test("destroy frees the region; later use throws UsageError", () => {
    const pool = new BytePool(64, 4, { hugepages: "off" });
    const id = pool.acquire();
    const region = pool.region;
    pool.destroy();
    expect(region.freed).toBe(true);
    const afterFree = PoolErrorCode.USE_AFTER_FREE;
    expect(codeOf(() => pool.acquire())).toBe(afterFree);
    expect(codeOf(() => pool.release(id))).toBe(afterFree);
    expect(codeOf(() => pool.slotView(0))).toBe(afterFree);
    expect(codeOf(() => pool.slotAddress(0))).toBe(afterFree);
    expect(codeOf(() => pool.stats())).toBe(afterFree);
    expect(codeOf(() => pool.region)).toBe(afterFree);
    expect(codeOf(() => pool.destroy())).toBe(PoolErrorCode.DOUBLE_FREE);
  });

  test("trimIfIdle gives the pages back once the pool stayed idle between two calls", () => {
    const pool = new BytePool(16 * 1024, 256, { hugepages: "off" }); // 4 MiB
    const base = pool.region.pointer;
    const ids = Array.from({ length: 256 }, () => pool.acquire());
    for (const id of ids) pool.slotView(id).fill(7); // touch every page
    expect(residentKiB(base)).toBeGreaterThanOrEqual(4096);
    for (const id of ids.slice(1)) pool.release(id);
    expect(pool.trimIfIdle()).toBe(0); // acquired since the last call
    expect(pool.trimIfIdle()).toBe(0); // one slot still in use
    pool.release(ids[0]);
    const other = pool.acquire();
    pool.release(other);
    expect(pool.trimIfIdle()).toBe(0); // idle now, but used since the last call
    expect(pool.trimIfIdle()).toBe(4 * 1024 * 1024);
    expect(residentKiB(base)).toBe(0);
    expect(pool.trimIfIdle()).toBe(0); // nothing resident any more
    const again = pool.acquire();
    expect(pool.slotView(again)[0]).toBe(0); // released pages read back as zeros
    pool.release(again);
    pool.destroy();
  });

  test("acquire/release allocate nothing (1e6 pairs)", () => {
    const pool = new BytePool(64, 8, { hugepages: "off" });
    const pairs = () => {
      for (let i = 0; i < 1_000_000; i++) {
        const first = pool.acquire();
        const second = pool.acquire();
        pool.release(second);
        pool.release(first);
      }
    };
    // The probe must see allocation when there is some, or a pass would prove nothing.
    let keep: unknown;
    const allocating = () => {
      for (let i = 0; i < 1_000_000; i++) keep = i % 1000 === 0 ? { i } : keep;
    };
    expect(objectsAllocatedBy(allocating, emptyLoop)).toBeGreaterThanOrEqual(900);
    expect(objectsAllocatedBy(pairs, emptyLoop)).toBeLessThanOrEqual(16);
    expect(pool.stats().highWater).toBe(2);
    pool.destroy();
  });
});

describe("ObjectPool", () => {
  interface Item { id: number; used: boolean }
  const makePool = (max: number, extra: { preallocate?: number; debug?: boolean } = {}) => {
    let created = 0;
    let resets = 0;
    const pool = new ObjectPool<Item>({
      create: () => ({ id: created++, used: false }),
      reset: (item) => {
        item.used = false;
        resets++;
      },
      max,
      ...extra,
    });
    return { pool, created: () => created, resets: () => resets };
  };

  test("is bounded, reuses released objects and resets them", () => {
    const { pool, created, resets } = makePool(3);
    const items = [pool.acquire()!, pool.acquire()!, pool.acquire()!];
    expect(new Set(items).size).toBe(3);
    expect(pool.acquire()).toBeUndefined();
    items[1]!.used = true;
    pool.release(items[1]!);
    expect(resets()).toBe(1);
    const reused = pool.acquire()!;
    expect(reused).toBe(items[1]!);
    expect(reused.used).toBe(false);
    expect(created()).toBe(3);
    expect(pool.stats()).toEqual({ max: 3, created: 3, idle: 0, inUse: 3, highWater: 3 });
  });

  test("preallocates up front", () => {
    const { pool, created } = makePool(8, { preallocate: 5 });
    expect(created()).toBe(5);
    expect(pool.stats()).toMatchObject({ created: 5, idle: 5, inUse: 0, highWater: 0 });
    expect(codeOf(() => makePool(2, { preallocate: 3 }))).toBe(PoolErrorCode.INVALID_ARGUMENT);
  });

  test("over-release and immediate double release are UsageErrors", () => {
    const { pool } = makePool(4);
    const a = pool.acquire()!;
    const b = pool.acquire()!;
    pool.release(a);
    expect(codeOf(() => pool.release(a))).toBe(PoolErrorCode.DOUBLE_RELEASE);
    pool.release(b);
    expect(codeOf(() => pool.release({ id: 99, used: false }))).toBe(PoolErrorCode.OVER_RELEASE);
  });

  test("debug mode catches every double release and foreign objects", () => {
    const { pool } = makePool(4, { debug: true });
    const a = pool.acquire()!;
    const b = pool.acquire()!;
    pool.acquire();
    pool.release(a);
    pool.release(b);
    expect(codeOf(() => pool.release(a))).toBe(PoolErrorCode.DOUBLE_RELEASE);
    expect(codeOf(() => pool.release({ id: 99, used: false }))).toBe(PoolErrorCode.FOREIGN_SLOT);
  });

  test("steady state allocates nothing (1e6 pairs)", () => {
    const { pool } = makePool(4, { preallocate: 4 });
    const pairs = () => {
      for (let i = 0; i < 1_000_000; i++) pool.release(pool.acquire()!);
    };
    expect(objectsAllocatedBy(pairs, emptyLoop)).toBeLessThanOrEqual(16);
  });
});

describe("NumaPoolManager", () => {
  const status = numaStatus();

  test("poolForCpu(0) creates the node's pool once; stats list it", () => {
    const manager = new NumaPoolManager(2048, 16, { hugepages: "off" });
    const pool = manager.poolForCpu(0);
    expect(manager.poolForCpu(0)).toBe(pool);
    expect(pool.capacity).toBe(16);
    const stats = manager.stats();
    expect(stats.length).toBe(1);
    if (status.available) {
      const node = numaNodeOfCpu(0);
      expect(manager.placed).toBe(true);
      expect(manager.poolForNode(node)).toBe(pool);
      expect(stats[0]!.node).toBe(node);
      expect(stats[0]!.stats.node).toBe(node);
      expect(codeOf(() => manager.poolForNode(status.nodes))).toBe(PoolErrorCode.INVALID_ARGUMENT);
      expect(codeOf(() => manager.poolForCpu(1 << 20))).toBe(PoolErrorCode.INVALID_ARGUMENT);
    } else {
      expect(manager.placed).toBe(false);
      expect(stats[0]!.node).toBe(-1);
    }
    expect(stats[0]!.stats).toMatchObject({ slotSize: 2048, capacity: 16, inUse: 0 });
    expect(manager.poolForCurrentCpu()).toBeInstanceOf(BytePool);
    manager.destroy();
    expect(pool.destroyed).toBe(true);
    expect(codeOf(() => manager.poolForCpu(0))).toBe(PoolErrorCode.USE_AFTER_FREE);
    expect(codeOf(() => manager.stats())).toBe(PoolErrorCode.USE_AFTER_FREE);
  });
});

void sink;
