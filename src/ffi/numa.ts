/**
 * libnuma through bun:ffi, optional. Opened lazily on first use; when it is missing
 * (no libnuma1 package), disabled by HIOLOAD_NO_LIBNUMA=1, or the kernel refuses NUMA
 * calls (numa_available() = -1, e.g. Docker's seccomp profile blocks get_mempolicy and
 * mbind without CAP_SYS_NICE), placement is skipped and `numaStatus().note` says why.
 * Nothing here throws because NUMA is unavailable.
 */
import { dlopen, ptr as ptrOf } from "bun:ffi";
import {
  clearErrno, lastErrno, libc, MPOL_F_ADDR, MPOL_F_NODE, SYS_get_mempolicy,
} from "./libc.ts";

const symbols = {
  numa_available: { args: [], returns: "i32" },
  numa_max_node: { args: [], returns: "i32" },
  numa_node_of_cpu: { args: ["i32"], returns: "i32" },
  numa_alloc_onnode: { args: ["u64", "i32"], returns: "u64" },
  numa_free: { args: ["u64", "u64"], returns: "void" },
  numa_tonode_memory: { args: ["u64", "u64", "i32"], returns: "void" },
} as const;

type LibnumaSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

/** Whether NUMA placement can be done, how many node numbers exist, and why not if not. */
export interface NumaStatus {
  readonly available: boolean;
  /** numa_max_node() + 1 when available; 0 when the topology is unknown. */
  readonly nodes: number;
  /** "" when available; otherwise why placement will be skipped. */
  readonly note: string;
}

let opened: LibnumaSymbols | undefined;
let status: NumaStatus | undefined;

function open(): NumaStatus {
  if (process.env.HIOLOAD_NO_LIBNUMA === "1") {
    return { available: false, nodes: 0, note: "libnuma disabled by HIOLOAD_NO_LIBNUMA=1" };
  }
  let lib: LibnumaSymbols;
  try {
    lib = dlopen("libnuma.so.1", symbols).symbols;
  } catch {
    return {
      available: false, nodes: 0,
      note: "libnuma.so.1 not found (install libnuma1 / numactl-libs for NUMA placement)",
    };
  }
  // man 3 numa: numa_available() must come first; when it is -1 every other call is undefined.
  if (lib.numa_available() === -1) {
    return {
      available: false, nodes: 0,
      note: "numa_available() = -1: the kernel refuses NUMA calls (no CONFIG_NUMA, or a " +
        "seccomp profile blocks get_mempolicy/mbind)",
    };
  }
  opened = lib;
  return { available: true, nodes: lib.numa_max_node() + 1, note: "" };
}

/** NUMA availability, decided once per thread (the dlopen is cached). */
export function numaStatus(): NumaStatus {
  if (status === undefined) status = open();
  return status;
}

/** The raw libnuma symbols, or undefined when NUMA is unavailable (see numaStatus()). */
export function libnuma(): LibnumaSymbols | undefined {
  if (status === undefined) status = open();
  return opened;
}

/** numa_available() >= 0 and libnuma loaded. */
export function numaAvailable(): boolean {
  return numaStatus().available;
}

/** numa_max_node(): the highest node number, or -1 when NUMA is unavailable. */
export function numaMaxNode(): number {
  const lib = libnuma();
  return lib === undefined ? -1 : lib.numa_max_node();
}

/** numa_node_of_cpu(cpu): the node of `cpu`, or -1 (unknown CPU, or NUMA unavailable). */
export function numaNodeOfCpu(cpu: number): number {
  const lib = libnuma();
  return lib === undefined ? -1 : lib.numa_node_of_cpu(cpu);
}

/**
 * numa_alloc_onnode(size, node): a fresh mapping bound to `node`, or 0 on failure. Free it
 * with numaFree(pointer, size) (it is an mmap; size is rounded up to pages).
 */
export function numaAllocOnNode(size: number, node: number): number {
  const lib = libnuma();
  return lib === undefined ? 0 : Number(lib.numa_alloc_onnode(size, node));
}

/** numa_free(pointer, size): unmaps memory from numaAllocOnNode. */
export function numaFree(pointer: number, size: number): void {
  const lib = libnuma();
  if (lib !== undefined) lib.numa_free(pointer, size);
}

/**
 * numa_tonode_memory(pointer, size, node): binds the range to `node` (mbind MPOL_BIND);
 * pages already touched stay where they are, so call it before first touch. The C call
 * returns void; failure shows only in errno (and libnuma's numa_error prints "mbind: ..."
 * to stderr), so errno is cleared first and returned: 0 on success, else the errno.
 * Returns -1 when NUMA is unavailable.
 */
export function numaToNodeMemory(pointer: number, size: number, node: number): number {
  const lib = libnuma();
  if (lib === undefined) return -1;
  clearErrno();
  lib.numa_tonode_memory(pointer, size, node);
  return lastErrno();
}

/** get_mempolicy(2) on one address: the policy mode of its mapping and the node of its page. */
export interface AddressPolicy {
  /** MPOL_DEFAULT (0), MPOL_BIND (2)...; -1 when the call failed. */
  readonly mode: number;
  /** Node holding the page (the call faults it in if needed); -1 when the call failed. */
  readonly node: number;
}

/**
 * Where the kernel actually put `address`: a diagnostic for checking placement (not for hot
 * paths). Uses the raw syscall, so it works without libnuma where the kernel allows it.
 */
export function policyOfAddress(address: number): AddressPolicy {
  // Synchronous-call out-parameter: a JS typed array is fine (Bun issue 32054 is about
  // memory the kernel touches after the call returns).
  const out = new Int32Array(32);
  const c = libc();
  const modeResult = Number(c.syscall(SYS_get_mempolicy, Number(ptrOf(out)), 0, 0,
    address, MPOL_F_ADDR, 0));
  const mode = modeResult === -1 ? -1 : out[0]!;
  const nodeResult = Number(c.syscall(SYS_get_mempolicy, Number(ptrOf(out)), 0, 0,
    address, MPOL_F_NODE | MPOL_F_ADDR, 0));
  const node = nodeResult === -1 ? -1 : out[0]!;
  return { mode, node };
}
