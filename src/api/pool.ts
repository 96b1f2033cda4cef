/**
 * Memory contracts. Regions are native mappings (the kernel may read and write them after
 * a call returns); pools carve them into fixed-size slots whose views are made once.
 */

/** How a region was backed: explicit hugepages, transparent hugepages (advised), or 4 KiB pages. */
export type RegionKind = "hugetlb" | "thp" | "plain";

/** Where a region wants to live and how hard to try for hugepages. */
export interface RegionOptions {
  /** NUMA node to place the memory on; undefined = the node of the CPU we run on; -1 = no placement. */
  node?: number;
  /**
   * "auto": MAP_HUGETLB, else THP, else plain. "transparent": THP (advised), else plain,
   * leaving the reserved hugepages to others: for large regions touched only in part.
   * "off": plain pages only. "hugetlb": MAP_HUGETLB, else plain pages (never THP): for
   * regions touched sparsely (a receive ring), where one touched byte under THP costs 2 MiB.
   */
  hugepages?: "auto" | "transparent" | "hugetlb" | "off";
}

export interface MemoryRegionInfo {
  readonly kind: RegionKind;
  /** NUMA node the memory was bound to, or -1 when placement was skipped. */
  readonly node: number;
  /** Why placement was skipped (e.g. "libnuma not installed"), or "" when it was done. */
  readonly placementNote: string;
  readonly size: number;
  /** Native address (a JS number; x86_64 user addresses fit in 47 bits). */
  readonly pointer: number;
}

export interface PoolStats {
  readonly slotSize: number;
  readonly capacity: number;
  readonly inUse: number;
  readonly highWater: number;
  readonly regionKind: RegionKind;
  readonly node: number;
  readonly bytes: number;
}

/** Pool statistics per NUMA node, keyed by node number (-1 = unplaced). */
export type NodePoolStats = ReadonlyArray<{ readonly node: number; readonly stats: PoolStats }>;
