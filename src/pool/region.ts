/**
 * Native memory regions: one anonymous mapping each, backed by explicit hugepages when the
 * system has them reserved, else by transparent hugepages (advised), else by 4 KiB pages,
 * and bound to a NUMA node when libnuma works. Memory the kernel reads or writes after a
 * call returns (io_uring buffers, iovecs, sockaddrs) must live here, never in a small JS
 * typed array: those live in the GC heap and can move (Bun issue 32054).
 */
import { readFileSync } from "node:fs";
import { EINVAL, ENOMEM, errnoName } from "../api/errno.ts";
import { assert, UsageError } from "../api/errors.ts";
import type { MemoryRegionInfo, RegionKind, RegionOptions } from "../api/pool.ts";
import { systemError } from "../ffi/errno.ts";
import {
  lastErrno, libc, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_HUGETLB,
  MAP_PRIVATE, PROT_READ, PROT_WRITE,
} from "../ffi/libc.ts";
import { viewOf } from "../ffi/memory.ts";
import { numaNodeOfCpu, numaStatus, numaToNodeMemory } from "../ffi/numa.ts";
import { PoolErrorCode } from "./pool-errors.ts";

/** Options for MemoryRegion.allocate: the contract's RegionOptions plus prefaulting. */
export interface RegionAllocateOptions extends RegionOptions {
  /**
   * Fault every page in during allocate() (after NUMA binding, so pages land on the node)
   * instead of on first touch. Default false: untouched pages cost no physical memory.
   */
  prefault?: boolean;
}

const PAGE_SIZE = 4096;
/** x86_64 defaults, used when /proc and /sys do not say otherwise. */
const HUGEPAGE_SIZE_DEFAULT = 2 * 1024 * 1024;
const EMPTY_VIEW = new Uint8Array(0);
/**
 * Largest region: one ArrayBuffer must cover it, and Bun 1.4.5 (JSC) refuses a
 * toArrayBuffer over 4 GiB with "RangeError: Out of memory" (measured: 4 GiB works).
 */
export const REGION_BYTES_MAX = 4 * 1024 * 1024 * 1024;

interface Mapping {
  pointer: number;
  size: number;
  kind: RegionKind;
  /** Why the mapping is not hugetlb ("" when it is). */
  kindNote: string;
}

interface Placement {
  node: number;
  note: string;
}

/**
 * One native mapping. `view` is made once; after free() every accessor throws UsageError
 * (code WS_ERR_USE_AFTER_FREE) instead of touching unmapped memory. A view or subarray
 * captured before free() cannot be revoked: using it afterwards is a segfault, so owners
 * must drop such references before freeing.
 */
export class MemoryRegion implements MemoryRegionInfo {
  readonly kind: RegionKind;
  readonly node: number;
  readonly placementNote: string;
  /** Mapped bytes: the request rounded up to the page size of `kind` (2 MiB for hugetlb). */
  readonly size: number;
  /** Bytes asked for in allocate(). */
  readonly requestedSize: number;
  /** Why the region is not hugetlb ("" when it is): e.g. no hugepages reserved. */
  readonly kindNote: string;
  #pointer: number;
  /** The whole-region view, made on first use (see `view`). */
  #view: Uint8Array | null = null;
  #freed = false;

  private constructor(mapping: Mapping, placement: Placement, requestedSize: number) {
    assert(mapping.pointer > 0 && mapping.pointer % PAGE_SIZE === 0, "region pointer aligned");
    assert(mapping.size >= requestedSize, "region covers the request");
    this.kind = mapping.kind;
    this.kindNote = mapping.kindNote;
    this.size = mapping.size;
    this.requestedSize = requestedSize;
    this.node = placement.node;
    this.placementNote = placement.note;
    this.#pointer = mapping.pointer;
  }

  /**
   * Maps `size` bytes. hugepages "auto" (default): MAP_HUGETLB rounded up to the hugepage
   * size; when that fails (ENOMEM: none reserved) a 2 MiB-aligned mapping advised with
   * MADV_HUGEPAGE ("thp"), or plain pages when it is smaller than one huge page or THP is
   * off. "off": plain pages, advised MADV_NOHUGEPAGE. NUMA: `node` (default: the node of
   * the calling thread's CPU; -1: no placement) is bound before first touch. Never fails
   * for lack of hugepages or NUMA; throws SystemError only when no memory can be mapped.
   */
  static allocate(size: number, options: RegionAllocateOptions = {}): MemoryRegion {
    validateOptions(size, options);
    const target = targetNode(options.node);
    let hugetlbNote = `hugepages: "${options.hugepages}"`;
    if (options.hugepages !== "off" && options.hugepages !== "transparent") {
      const huge = mapHugetlb(size);
      if (typeof huge !== "string") {
        const placed = placeHugetlb(huge, target, options.prefault === true);
        if (typeof placed !== "string") return new MemoryRegion(huge, placed, size);
        hugetlbNote = placed;
      } else {
        hugetlbNote = huge;
      }
    }
    const mapping = mapSmallPages(size,
      options.hugepages === "off" || options.hugepages === "hugetlb" ? "off" : "auto", hugetlbNote);
    const placement = bindToNode(mapping, target);
    if (options.prefault === true) {
      const errno = populate(mapping);
      if (errno !== 0) {
        unmap(mapping.pointer, mapping.size);
        throw systemError("madvise(MADV_POPULATE_WRITE)", errno);
      }
    }
    return new MemoryRegion(mapping, placement, size);
  }

  /** Native address of the first byte. Throws after free(). */
  get pointer(): number {
    if (this.#freed) throw useAfterFree();
    return this.#pointer;
  }

  /**
   * The whole region as one Uint8Array, made on first use. JSC counts every byte an
   * ArrayBuffer covers as heap memory and sizes its young generation by that, so a region
   * whose parts are used one at a time is better viewed with `viewRange`. Throws after free().
   */
  get view(): Uint8Array {
    if (this.#freed) throw useAfterFree();
    if (this.#view === null) this.#view = viewOf(this.#pointer, this.size);
    return this.#view;
  }

  /**
   * A new view of bytes [start, end) with its own ArrayBuffer, which JSC counts as `end -
   * start` bytes only (allocates: not for hot paths). Throws after free().
   */
  viewRange(start: number, end: number): Uint8Array {
    if (this.#freed) throw useAfterFree();
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start ||
      end > this.size) {
      throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
        `range [${start}, ${end}) is outside the region of ${this.size} bytes`);
    }
    return end === start ? EMPTY_VIEW : viewOf(this.#pointer + start, end - start);
  }

  get freed(): boolean {
    return this.#freed;
  }

  /** A view of [start, end) (allocates a view: not for hot paths). Throws after free(). */
  subarray(start: number, end: number): Uint8Array {
    return this.view.subarray(start, end);
  }

  /**
   * Give the physical pages of [start, end) back to the system (MADV_DONTNEED), keeping the
   * mapping: the bytes read as zero afterwards and cost memory again once written. Only
   * whole pages are released (2 MiB ones for hugetlb). Call it only for memory that nothing,
   * the kernel included, reads or writes now. Returns the bytes released.
   */
  release(start = 0, end = this.size): number {
    if (this.#freed) throw useAfterFree();
    const page = this.kind === "hugetlb" ? hugepageSize() : PAGE_SIZE;
    const from = Math.ceil(start / page) * page;
    const to = Math.min(this.size, Math.floor(end / page) * page);
    if (to <= from) return 0;
    return libc().madvise(this.#pointer + from, to - from, MADV_DONTNEED) === 0 ? to - from : 0;
  }

  /** munmap. A second free() throws UsageError (WS_ERR_DOUBLE_FREE). */
  free(): void {
    if (this.#freed) {
      throw new UsageError(PoolErrorCode.DOUBLE_FREE, "MemoryRegion.free() called twice");
    }
    unmap(this.#pointer, this.size);
    this.#freed = true;
    // Drop the region's own reference so the external ArrayBuffer can be collected.
    this.#view = null;
  }
}

function useAfterFree(): UsageError {
  return new UsageError(PoolErrorCode.USE_AFTER_FREE, "MemoryRegion used after free()");
}

function validateOptions(size: number, options: RegionAllocateOptions): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size > REGION_BYTES_MAX) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      `region size must be an integer in 1..${REGION_BYTES_MAX}, got ${size}`);
  }
  const { node, hugepages } = options;
  if (node !== undefined && (!Number.isInteger(node) || node < -1)) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      `region node must be an integer >= -1 (or undefined), got ${node}`);
  }
  if (hugepages !== undefined && hugepages !== "auto" && hugepages !== "transparent" &&
    hugepages !== "hugetlb" && hugepages !== "off") {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      `region hugepages must be "auto", "transparent", "hugetlb" or "off", got ${String(hugepages)}`);
  }
}

/** The node to bind to, or -1 with the reason placement will be skipped. */
function targetNode(requested: number | undefined): Placement {
  if (requested === -1) return { node: -1, note: "placement not requested (node -1)" };
  const status = numaStatus();
  if (!status.available) return { node: -1, note: status.note };
  if (requested === undefined) {
    const cpu = libc().sched_getcpu();
    if (cpu < 0) return { node: -1, note: `sched_getcpu failed: ${errnoName(lastErrno())}` };
    const node = numaNodeOfCpu(cpu);
    if (node < 0) return { node: -1, note: `libnuma knows no node for CPU ${cpu}` };
    return { node, note: "" };
  }
  if (requested >= status.nodes) {
    return {
      node: -1,
      note: `node ${requested} does not exist (highest node is ${status.nodes - 1})`,
    };
  }
  return { node: requested, note: "" };
}

/** numa_tonode_memory before first touch; the placement actually obtained. */
function bindToNode(mapping: Mapping, target: Placement): Placement {
  if (target.node < 0) return target;
  const errno = numaToNodeMemory(mapping.pointer, mapping.size, target.node);
  if (errno !== 0) {
    return { node: -1, note: `mbind to node ${target.node} failed: ${errnoName(errno)}` };
  }
  return target;
}

/**
 * Hugetlb pages are reserved globally at mmap time but taken from the bound node at fault
 * time, so a node with no free hugepages would SIGBUS on first touch
 * (Documentation/admin-guide/mm/hugetlbpage.rst). On a multi-node box, bound hugetlb
 * regions are therefore prefaulted with MADV_POPULATE_WRITE, which returns an error
 * instead of raising SIGBUS (madvise(2), Linux 5.14); on error we fall back to small pages.
 * Returns the placement, or the reason hugetlb was given up (the mapping is then unmapped).
 */
function placeHugetlb(huge: Mapping, target: Placement, prefault: boolean): Placement | string {
  const placement = bindToNode(huge, target);
  const mustPopulate = placement.node >= 0 && numaStatus().nodes > 1;
  if (mustPopulate || prefault) {
    const errno = populate(huge);
    if (errno !== 0) {
      unmap(huge.pointer, huge.size);
      return `hugepages on node ${placement.node} could not be faulted in: ${errnoName(errno)}`;
    }
  }
  return placement;
}

/** MAP_HUGETLB with the default hugepage size, or why it failed. */
function mapHugetlb(size: number): Mapping | string {
  const hugeSize = hugepageSize();
  const length = roundUp(size, hugeSize);
  const pointer = mmapAnonymous(length, MAP_HUGETLB);
  if (pointer === -1) {
    const errno = lastErrno();
    const hint = errno === ENOMEM
      ? " (not enough free hugepages: reserve them in /proc/sys/vm/nr_hugepages)" : "";
    return `MAP_HUGETLB failed: ${errnoName(errno)}${hint}`;
  }
  return { pointer, size: length, kind: "hugetlb", kindNote: "" };
}

/** 4 KiB-page mapping, advised MADV_HUGEPAGE ("thp") when that can help. */
function mapSmallPages(size: number, hugepages: "auto" | "off", hugetlbNote: string): Mapping {
  const length = roundUp(size, PAGE_SIZE);
  if (hugepages === "off") {
    const pointer = mmapOrThrow(length);
    // With THP "always" the kernel would still use huge pages; "off" means plain pages.
    libc().madvise(pointer, length, MADV_NOHUGEPAGE);
    return { pointer, size: length, kind: "plain", kindNote: hugetlbNote };
  }
  const thpSize = thpPageSize();
  if (length < thpSize) {
    const note = `${hugetlbNote}; smaller than one transparent huge page (${thpSize} bytes)`;
    return { pointer: mmapOrThrow(length), size: length, kind: "plain", kindNote: note };
  }
  if (thpMode() === "never") {
    const note = `${hugetlbNote}; transparent hugepages disabled (enabled = never)`;
    return { pointer: mmapOrThrow(length), size: length, kind: "plain", kindNote: note };
  }
  const pointer = mapAligned(length, thpSize);
  if (libc().madvise(pointer, length, MADV_HUGEPAGE) === -1) {
    const note = `${hugetlbNote}; madvise(MADV_HUGEPAGE) failed: ${errnoName(lastErrno())}`;
    return { pointer, size: length, kind: "plain", kindNote: note };
  }
  return { pointer, size: length, kind: "thp", kindNote: hugetlbNote };
}

/**
 * A mapping whose start is a multiple of `alignment`, so every aligned 2 MiB of it can be
 * one PMD-mapped huge page (kernels before 6.7 do not align large anonymous mappings).
 * Maps `alignment` extra bytes and unmaps the slack on both sides.
 */
function mapAligned(length: number, alignment: number): number {
  const raw = mmapOrThrow(length + alignment);
  const aligned = roundUp(raw, alignment);
  const head = aligned - raw;
  if (head > 0) unmap(raw, head);
  unmap(aligned + length, alignment - head);
  assert(aligned % alignment === 0 && aligned >= raw, "aligned mapping inside the raw one");
  return aligned;
}

function mmapAnonymous(length: number, extraFlags: number): number {
  const result = libc().mmap(0, length, PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS | extraFlags, -1, 0);
  // mmap signals failure with MAP_FAILED ((void *) -1), never with 0.
  return Number(result);
}

function mmapOrThrow(length: number): number {
  const pointer = mmapAnonymous(length, 0);
  if (pointer === -1) throw systemError("mmap", lastErrno());
  return pointer;
}

function unmap(pointer: number, length: number): void {
  if (libc().munmap(pointer, length) === -1) throw systemError("munmap", lastErrno());
}

/** Faults every page in; 0 or the errno. Kernels before 5.14 lack the advice: touch pages. */
function populate(mapping: Mapping): number {
  if (libc().madvise(mapping.pointer, mapping.size, MADV_POPULATE_WRITE) === 0) return 0;
  const errno = lastErrno();
  if (errno !== EINVAL) return errno;
  libc().memset(mapping.pointer, 0, mapping.size);
  return 0;
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

let hugepageSizeCached = 0;
let thpSizeCached = 0;
let thpModeCached: string | undefined;

/** Default hugepage size (what MAP_HUGETLB uses): "Hugepagesize:" in /proc/meminfo. */
export function hugepageSize(): number {
  if (hugepageSizeCached === 0) {
    const match = /^Hugepagesize:\s+(\d+) kB$/m.exec(readText("/proc/meminfo"));
    hugepageSizeCached = match ? Number(match[1]) * 1024 : HUGEPAGE_SIZE_DEFAULT;
  }
  return hugepageSizeCached;
}

/** PMD size: the unit of transparent huge pages. */
function thpPageSize(): number {
  if (thpSizeCached === 0) {
    const text = readText("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").trim();
    thpSizeCached = /^\d+$/.test(text) ? Number(text) : HUGEPAGE_SIZE_DEFAULT;
  }
  return thpSizeCached;
}

/** "always", "madvise", "never", or "" when the kernel has no THP sysfs. */
function thpMode(): string {
  if (thpModeCached === undefined) {
    const match = /\[(\w+)\]/.exec(readText("/sys/kernel/mm/transparent_hugepage/enabled"));
    thpModeCached = match ? match[1]! : "";
  }
  return thpModeCached;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
