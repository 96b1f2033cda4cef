/**
 * CPU affinity and topology for reactor threads. sched_setaffinity(0, ...) acts on the
 * calling thread only (sched_setaffinity(2): pid 0 = the caller), so each Bun worker pins
 * itself. These run at thread setup, never per message.
 */
import { readdirSync } from "node:fs";
import { EINVAL } from "../api/errno.ts";
import { UsageError } from "../api/errors.ts";
import { systemError } from "../ffi/errno.ts";
import { CPU_SET_BYTES, check, lastErrno, libc } from "../ffi/libc.ts";
import { numaNodeOfCpu, numaStatus } from "../ffi/numa.ts";
import { PoolErrorCode } from "../pool/pool-errors.ts";

/** Largest mask we try: 2^19 CPUs, far above any kernel's NR_CPUS. */
const MASK_BYTES_MAX = 64 * 1024;

/** Pins the calling thread to `cpu` (it will then run only there). */
export function pinThreadToCpu(cpu: number): void {
  setThreadAffinity([cpu]);
}

/**
 * Lets the calling thread run on exactly `cpus` (e.g. to restore what allowedCpus()
 * returned). Throws SystemError EINVAL when none of them is online or allowed by the cpuset.
 */
export function setThreadAffinity(cpus: readonly number[]): void {
  if (cpus.length === 0) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT,
      "setThreadAffinity needs at least one CPU");
  }
  let highest = 0;
  for (const cpu of cpus) {
    requireCpuNumber(cpu);
    if (cpu > highest) highest = cpu;
  }
  // A cpu_set_t is an array of unsigned longs: whole 8-byte words, at least glibc's 128 bytes.
  // The mask only has to live for this synchronous call, so a JS typed array is fine.
  const bytes = Math.max(CPU_SET_BYTES, Math.ceil((highest + 1) / 64) * 8);
  const mask = new Uint8Array(bytes);
  for (const cpu of cpus) mask[cpu >> 3]! |= 1 << (cpu & 7);
  check("sched_setaffinity", libc().sched_setaffinity(0, bytes, mask));
}

/** The CPU the calling thread is running on right now (sched_getcpu(3)). */
export function currentCpu(): number {
  return check("sched_getcpu", libc().sched_getcpu());
}

/** CPUs the calling thread may run on (sched_getaffinity), ascending. */
export function allowedCpus(): number[] {
  // EINVAL means the mask is smaller than the kernel's CPU count: retry with a larger one.
  for (let bytes = CPU_SET_BYTES; bytes <= MASK_BYTES_MAX; bytes *= 2) {
    const mask = new Uint8Array(bytes);
    if (libc().sched_getaffinity(0, bytes, mask) === 0) return cpusInMask(mask);
    const errno = lastErrno();
    if (errno !== EINVAL) throw systemError("sched_getaffinity", errno);
  }
  throw systemError("sched_getaffinity", EINVAL);
}

/**
 * The NUMA node of `cpu`: from libnuma when it works; otherwise from the
 * /sys/devices/system/cpu/cpuN/nodeK link. Returns 0 when that CPU exists but sysfs shows
 * no node (a kernel without CONFIG_NUMA has one implicit node 0), and -1 for a CPU that
 * does not exist.
 */
export function nodeOfCpu(cpu: number): number {
  requireCpuNumber(cpu);
  if (numaStatus().available) return numaNodeOfCpu(cpu);
  let entries: string[];
  try {
    entries = readdirSync(`/sys/devices/system/cpu/cpu${cpu}`);
  } catch {
    return -1;
  }
  for (const entry of entries) {
    const match = /^node(\d+)$/.exec(entry);
    if (match) return Number(match[1]);
  }
  return 0;
}

function cpusInMask(mask: Uint8Array): number[] {
  const cpus: number[] = [];
  for (let byte = 0; byte < mask.length; byte++) {
    const bits = mask[byte]!;
    if (bits === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (bits & (1 << bit)) cpus.push(byte * 8 + bit);
  }
  return cpus;
}

function requireCpuNumber(cpu: number): void {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= MASK_BYTES_MAX * 8) {
    throw new UsageError(PoolErrorCode.INVALID_ARGUMENT, `not a CPU number: ${cpu}`);
  }
}
