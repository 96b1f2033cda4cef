/**
 * libc through bun:ffi, opened lazily on first use. Checked wrappers throw SystemError (call,
 * errno, name, hint); `libc()` gives the raw symbols for code that handles -1 itself.
 * Pointer arguments accept a TypedArray (valid only for the duration of the call) or a
 * native address as a number.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { systemError } from "./errno.ts";

const symbols = {
  __errno_location: { args: [], returns: "ptr" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  getpeername: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: FFIType.i64_fast },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  memset: { args: ["u64", "i32", "u64"], returns: "u64" },
  // The allocator, for native memory that is not worth a mapping (zlib's streams, zlib.ts).
  malloc: { args: ["u64"], returns: "ptr" },
  calloc: { args: ["u64", "u64"], returns: "ptr" },
  realloc: { args: ["ptr", "u64"], returns: "ptr" },
  free: { args: ["ptr"], returns: "void" },
  sched_setaffinity: { args: ["i32", "u64", "ptr"], returns: "i32" },
  sched_getaffinity: { args: ["i32", "u64", "ptr"], returns: "i32" },
  sched_getcpu: { args: [], returns: "i32" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: FFIType.i64_fast },
  write: { args: ["i32", "ptr", "u64"], returns: FFIType.i64_fast },
  fcntl: { args: ["i32", "i32", "i64"], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  // Variadic in C; on x86_64 SysV a fixed 7-integer call is ABI-compatible with it.
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
} as const;

type LibcSymbols = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

let opened: LibcSymbols | undefined;
let errnoAddress = 0;

/** The raw libc symbols (dlopen on first use). */
export function libc(): LibcSymbols {
  if (opened === undefined) {
    opened = dlopen("libc.so.6", symbols).symbols;
    errnoAddress = Number(opened.__errno_location());
  }
  return opened;
}

/** errno of the calling thread, read right after a failed call. */
export function lastErrno(): number {
  if (opened === undefined) libc();
  return read.i32(errnoAddress as Pointer, 0);
}

/** Throws SystemError(call, errno) when `result` is -1 (libc convention); returns it otherwise. */
export function check(call: string, result: number): number {
  if (result === -1) throw systemError(call, lastErrno());
  return result;
}

// Constants from the x86_64 Linux headers (sys/socket.h, netinet/in.h, sys/mman.h...).
export const AF_INET = 2;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_TCP = 6;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_LINGER = 13;
export const SO_REUSEPORT = 15;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_HUGETLB = 0x40000;
export const MADV_HUGEPAGE = 14;
export const MADV_DONTNEED = 4;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const O_NONBLOCK = 0o4000;

// Appended for src/pool (regions) and src/reactor/affinity.ts.
/** madvise: prefault writable (Linux 5.14+); fails with an error instead of SIGBUS. */
export const MADV_POPULATE_WRITE = 23;
export const MADV_NOHUGEPAGE = 15;
/** sizeof(cpu_set_t) in glibc: CPU_SETSIZE 1024 bits. */
export const CPU_SET_BYTES = 128;
export const SYS_get_mempolicy = 239;
export const MPOL_DEFAULT = 0;
export const MPOL_BIND = 2;
export const MPOL_F_NODE = 1;
export const MPOL_F_ADDR = 2;

/**
 * Sets errno of the calling thread to 0, for calls that report failure only through errno
 * (libnuma's void functions such as numa_tonode_memory).
 */
export function clearErrno(): void {
  libc().memset(errnoAddress, 0, 4);
}
