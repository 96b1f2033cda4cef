/**
 * The system calls of the epoll backend, through bun:ffi (libc.so.6, opened on first use).
 *
 * Two kinds of entry point:
 * - `epollSyscalls()`: the raw hot-path calls (epoll_wait, recv, send, sendmsg, readv,
 *   writev, accept4, epoll_ctl). Numbers in (pointers are native addresses as numbers),
 *   the raw result out: bytes/fd/count, or -1 with the reason in `errno()`, read only on
 *   failure. No allocation, no BigInt, no throw.
 * - Checked set-up wrappers (epollCreate, epollCtl, nonBlockingTcpSocket, ...): rare calls
 *   that throw SystemError, or return -errno where a failure is an ordinary outcome
 *   (connect refused, shutdown of a reset socket).
 *
 * Memory the kernel writes (epoll_wait's events, recv buffers) is native: EpollEventArray
 * is its own mmap, so its address never moves and its view is made once; no ptr() per call.
 *
 * Measured on the dev box (Bun 1.4.5, kernel 6.18 VM, 2 vCPUs shared; best of 5 rounds of
 * 1M calls, test/tools/epoll-cost.ts): recv on an empty non-blocking TCP socket (EAGAIN,
 * errno read included) 400–520 ns/call; epoll_wait(timeout 0) with nothing ready 220–270
 * ns/call. The same loops in C: 330 and 150 ns. For scale: getpid 155–170 ns, a libc call
 * without a syscall 7–12 ns, errno() 3 ns. The kernel entry dominates, so the win is in
 * making fewer calls (e.g. skip the EAGAIN recv after a short read: see the tests).
 *
 * Module state (symbols, errno view, scratch page) is per thread: every Worker evaluates
 * this module again and gets its own errno location.
 */
import { dlopen, toArrayBuffer, type Pointer } from "bun:ffi";
import { EINPROGRESS } from "../api/errno.ts";
import * as abi from "./epoll-abi.ts";
import { systemError } from "./errno.ts";
import {
  AF_INET, check, EFD_CLOEXEC, EFD_NONBLOCK, F_GETFL, F_SETFL, lastErrno, libc, MAP_ANONYMOUS,
  MAP_PRIVATE, O_NONBLOCK, PROT_READ, PROT_WRITE, SHUT_WR, SO_ERROR, SOCK_CLOEXEC, SOCK_NONBLOCK,
  SOCK_STREAM, SOL_SOCKET,
} from "./libc.ts";

// ssize_t results are declared i32: the kernel caps one transfer at MAX_RW_COUNT (< 2^31),
// so the low half is the whole value, and an i32 return is cheaper than i64_fast's
// number-or-BigInt. Sizes are u64 (size_t): an i32 would leave the upper register half
// undefined.
const symbols = {
  __errno_location: { args: [], returns: "ptr" },
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i32" },
  readv: { args: ["i32", "ptr", "i32"], returns: "i32" },
  writev: { args: ["i32", "ptr", "i32"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: "i32" },
} as const;

/**
 * The raw calls. Every pointer is a native address as a number (0 for NULL); results are
 * the C results (-1 on failure: read `errno()` right away, before any other FFI call).
 */
export interface EpollSyscalls {
  epoll_create1(flags: number): number;
  /** `event`: address of one 12-byte epoll_event (ignored for DEL). */
  epoll_ctl(epfd: number, op: number, fd: number, event: number): number;
  /** Ready count (0 on timeout) or -1; EINTR is possible with a timeout and is harmless. */
  epoll_wait(epfd: number, events: number, maxEvents: number, timeoutMs: number): number;
  /** New fd or -1 (EAGAIN: backlog drained). Pass ACCEPT_FLAGS and NULL addresses. */
  accept4(fd: number, address: number, addressLength: number, flags: number): number;
  /** Bytes (0: the peer sent FIN) or -1 (EAGAIN: nothing queued now). `length` < 2^31. */
  recv(fd: number, buffer: number, length: number, flags: number): number;
  /** Bytes queued (may be short) or -1 (EAGAIN: send buffer full). Pass MSG_NOSIGNAL. */
  send(fd: number, buffer: number, length: number, flags: number): number;
  readv(fd: number, iov: number, iovCount: number): number;
  /**
   * No flags argument: a write to a dead peer raises SIGPIPE. Bun 1.4.5 ignores SIGPIPE
   * (checked: EPIPE comes back), but sendmsg with MSG_NOSIGNAL does not rely on that.
   */
  writev(fd: number, iov: number, iovCount: number): number;
  /** writev with flags: pass MSG_NOSIGNAL so a dead peer gives EPIPE, not SIGPIPE. */
  sendmsg(fd: number, msghdr: number, flags: number): number;
}

/** accept4's flags: the accepted socket is non-blocking and closed on exec. */
export const ACCEPT_FLAGS = SOCK_NONBLOCK | SOCK_CLOEXEC;

let calls: EpollSyscalls | undefined;
let errnoView: Int32Array | undefined;
/** One native page for the structs of synchronous set-up calls (epoll_event, optval). */
let scratch: Uint32Array | undefined;
let scratchAddress = 0;

/** The raw calls (dlopen on first use, once per thread). Keep the object; call its members. */
export function epollSyscalls(): EpollSyscalls {
  if (calls === undefined) {
    const opened = dlopen("libc.so.6", symbols).symbols;
    // errno is thread-local and its address fixed for the thread's life: a view over it
    // reads errno with a plain load (read.i32 through a pointer costs ~20 ns more).
    errnoView = new Int32Array(toArrayBuffer(opened.__errno_location() as Pointer, 0, 4));
    // bun:ffi's "ptr" accepts plain numbers at run time; the interface narrows the types.
    calls = opened as unknown as EpollSyscalls;
  }
  return calls;
}

/**
 * errno of this thread: call right after a raw call from epollSyscalls() returned -1 (the
 * wrappers over libc.ts's symbols use its lastErrno(): opening a library here first could
 * overwrite errno).
 */
export function errno(): number {
  if (errnoView === undefined) epollSyscalls();
  return errnoView![0];
}

function scratchWords(): Uint32Array {
  if (scratch === undefined) {
    const address = Number(libc().mmap(0, 4096, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (address === -1) throw systemError("mmap", lastErrno());
    scratchAddress = address;
    scratch = new Uint32Array(toArrayBuffer(address as Pointer, 0, 4096));
  }
  return scratch;
}

/** epoll_create1(EPOLL_CLOEXEC): a new epoll fd, or SystemError. */
export function epollCreate(): number {
  const fd = epollSyscalls().epoll_create1(abi.EPOLL_CLOEXEC);
  if (fd === -1) throw systemError("epoll_create1", errno());
  return fd;
}

/**
 * epoll_ctl(epfd, op, fd, {events, data}); SystemError on failure (EBADF: fd not open,
 * EEXIST: ADD twice, ENOENT: MOD/DEL of an fd not added, EINVAL: EPOLLEXCLUSIVE misuse).
 * `data` is an integer 0 ≤ data < 2^53 that epoll_wait hands back for this fd (e.g. slot
 * in the low half, generation in the high half, so a reused fd number is told apart).
 */
export function epollCtl(epfd: number, op: number, fd: number, events: number, data = 0): void {
  const words = scratchWords();
  words[0] = events;
  abi.writeU64(words, abi.EPOLL_EVENT_DATA, data);
  if (epollSyscalls().epoll_ctl(epfd, op, fd, scratchAddress) === -1) {
    throw systemError("epoll_ctl", errno());
  }
}

/**
 * An array of struct epoll_event in native memory, for epoll_wait. Event i is read from
 * `words` as [3i] = events, [3i+1] = data low, [3i+2] = data high (or with the accessors).
 */
export class EpollEventArray {
  readonly address: number;
  readonly capacity: number;
  readonly words: Uint32Array;
  private readonly mappedBytes: number;
  private readonly calls: EpollSyscalls;
  private freed = false;

  private constructor(address: number, capacity: number, mappedBytes: number) {
    this.address = address;
    this.capacity = capacity;
    this.mappedBytes = mappedBytes;
    this.words = new Uint32Array(toArrayBuffer(address as Pointer, 0,
      capacity * abi.EPOLL_EVENT_SIZE));
    this.calls = epollSyscalls();
  }

  /** Its own anonymous mapping (page-rounded) for `capacity` events. */
  static allocate(capacity: number): EpollEventArray {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 20) {
      throw new RangeError(`EpollEventArray capacity must be 1..${1 << 20}, got ${capacity}`);
    }
    const bytes = Math.ceil((capacity * abi.EPOLL_EVENT_SIZE) / 4096) * 4096;
    const address = Number(libc().mmap(0, bytes, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (address === -1) throw systemError("mmap", lastErrno());
    return new EpollEventArray(address, capacity, bytes);
  }

  /**
   * Over native memory the caller owns (e.g. part of a pool region); 4-byte aligned,
   * `capacity * 12` bytes. free() then does nothing: the owner unmaps it.
   */
  static over(address: number, capacity: number): EpollEventArray {
    if (address % 4 !== 0) throw new RangeError("EpollEventArray address must be 4-byte aligned");
    return new EpollEventArray(address, capacity, 0);
  }

  /** epoll_wait into this array: ready count, 0 on timeout, or -1 (see errno()). */
  wait(epfd: number, timeoutMs: number): number {
    return this.calls.epoll_wait(epfd, this.address, this.capacity, timeoutMs);
  }

  eventsAt(index: number): number {
    return this.words[index * 3];
  }

  /** The data field as a number (exact below 2^53). */
  dataAt(index: number): number {
    return this.words[index * 3 + 2] * 4294967296 + this.words[index * 3 + 1];
  }

  dataLowAt(index: number): number {
    return this.words[index * 3 + 1];
  }

  dataHighAt(index: number): number {
    return this.words[index * 3 + 2];
  }

  /** Unmaps an allocated array; `words` must not be touched afterwards (segfault). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.mappedBytes > 0) libc().munmap(this.address, this.mappedBytes);
  }
}

/** socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC): fd or SystemError. */
export function nonBlockingTcpSocket(): number {
  return check("socket", libc().socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

/** Sets O_NONBLOCK on an fd made elsewhere (accept4 and nonBlockingTcpSocket already do). */
export function setNonBlocking(fd: number): void {
  const flags = check("fcntl", libc().fcntl(fd, F_GETFL, 0));
  if ((flags & O_NONBLOCK) === 0) check("fcntl", libc().fcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

/**
 * connect() on a non-blocking socket. 0: connected already (loopback can be that fast);
 * -EINPROGRESS: the handshake runs, wait for EPOLLOUT then read socketError(fd); any other
 * -errno: failed now (ECONNREFUSED, ENETUNREACH...). `sockaddr`: a native address, or a
 * JS typed array of ≥ 1 KiB (the kernel copies it during the call).
 */
export function connectStart(fd: number, sockaddr: number | NodeJS.TypedArray,
  length: number): number {
  const target = typeof sockaddr === "number" ? (sockaddr as Pointer) : sockaddr;
  return libc().connect(fd, target, length) === -1 ? -lastErrno() : 0;
}

/** getsockopt(SO_ERROR): 0 when a pending connect succeeded, else its errno (and clears it). */
export function socketError(fd: number): number {
  const words = scratchWords();
  words[0] = 0;
  words[1] = 4; // socklen_t in/out
  const value = scratchAddress as Pointer;
  const length = (scratchAddress + 4) as Pointer;
  check("getsockopt", libc().getsockopt(fd, SOL_SOCKET, SO_ERROR, value, length));
  return words[0];
}

/** shutdown(fd, SHUT_WR): sends FIN after queued data. 0, or -errno (ENOTCONN after a reset). */
export function shutdownWrite(fd: number): number {
  return libc().shutdown(fd, SHUT_WR) === -1 ? -lastErrno() : 0;
}

/**
 * close(fd): 0 or -errno. Never retry on EINTR (Linux has released the fd already). Closing
 * removes the fd from every epoll set only when no dup of it stays open.
 */
export function closeFd(fd: number): number {
  return libc().close(fd) === -1 ? -lastErrno() : 0;
}

/** eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) for cross-thread wake-ups (libc.ts's binding). */
export function createWakeFd(): number {
  return check("eventfd", libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

/** EINPROGRESS as connectStart returns it, for readable comparisons. */
export const CONNECT_PENDING = -EINPROGRESS;
