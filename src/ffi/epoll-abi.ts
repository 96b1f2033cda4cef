/**
 * epoll and socket-message ABI on x86_64 Linux: constants and struct layouts, checked against
 * /usr/include/x86_64-linux-gnu/sys/epoll.h, bits/epoll.h, bits/socket.h and
 * bits/types/struct_iovec.h (offsets printed with offsetof by gcc on Debian 12).
 * Pure data plus writers over Uint32Array views; no FFI here.
 */

// epoll_create1 flags (bits/epoll.h).
export const EPOLL_CLOEXEC = 0o2000000;

// epoll_ctl ops (sys/epoll.h).
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;

// Event bits (sys/epoll.h). EPOLLET is bit 31: `EPOLLIN | EPOLLET` is a negative int32 in JS;
// stores into a Uint32Array keep the right bits, and `(events & EPOLLIN) !== 0` still works.
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
/** ADD only, and only with EPOLLIN/EPOLLOUT/EPOLLET/EPOLLWAKEUP (else EINVAL; MOD: EINVAL). */
export const EPOLLEXCLUSIVE = 0x10000000;
export const EPOLLWAKEUP = 0x20000000;
export const EPOLLONESHOT = 0x40000000;
export const EPOLLET = 0x80000000;

/**
 * struct epoll_event is packed on x86_64: {u32 events @0, u64 data @4}, 12 bytes. Every field
 * sits on a 4-byte boundary, so an array of them reads as a Uint32Array: for event i, word
 * 3i = events, 3i+1 = data low half, 3i+2 = data high half.
 */
export const EPOLL_EVENT_SIZE = 12;
export const EPOLL_EVENT_EVENTS = 0;
export const EPOLL_EVENT_DATA = 4;
export const EPOLL_EVENT_WORDS = 3;

// Send/recv flags (bits/socket.h).
export const MSG_DONTWAIT = 0x40;
/** A write to a socket whose peer is gone returns EPIPE instead of raising SIGPIPE. */
export const MSG_NOSIGNAL = 0x4000;

// shutdown(2) how (sys/socket.h); SHUT_WR and SHUT_RDWR are also in libc.ts.
export const SHUT_RD = 0;

/** struct iovec: {void *iov_base @0, size_t iov_len @8}, 16 bytes. */
export const IOVEC_SIZE = 16;
export const IOVEC_BASE = 0;
export const IOVEC_LEN = 8;

/**
 * struct msghdr, 56 bytes: name @0 (ptr), namelen @8 (u32), iov @16 (ptr), iovlen @24
 * (size_t), control @32 (ptr), controllen @40 (size_t), flags @48 (int).
 */
export const MSGHDR_SIZE = 56;
export const MSGHDR_NAME = 0;
export const MSGHDR_NAMELEN = 8;
export const MSGHDR_IOV = 16;
export const MSGHDR_IOVLEN = 24;
export const MSGHDR_CONTROL = 32;
export const MSGHDR_CONTROLLEN = 40;
export const MSGHDR_FLAGS = 48;

/** The kernel caps one read/write/sendmsg at MAX_RW_COUNT (INT_MAX & PAGE_MASK) bytes. */
export const MAX_RW_COUNT = 0x7ffff000;

const TWO_32 = 4294967296;

/**
 * Writes a u64 (an integer 0 ≤ value < 2^53, e.g. a native address) as two u32 halves at
 * byte `offset` (a multiple of 4) of `words`: no BigInt, no DataView.
 */
export function writeU64(words: Uint32Array, offset: number, value: number): void {
  const index = offset >>> 2;
  words[index] = value % TWO_32;
  words[index + 1] = Math.floor(value / TWO_32);
}

/** The u64 at byte `offset` (a multiple of 4) as a number (exact below 2^53). */
export function readU64(words: Uint32Array, offset: number): number {
  const index = offset >>> 2;
  return words[index + 1] * TWO_32 + words[index];
}

/** iovec number `index` of an array starting at byte `offset` of `words`. */
export function writeIovec(words: Uint32Array, offset: number, index: number,
  address: number, length: number): void {
  const at = offset + index * IOVEC_SIZE;
  writeU64(words, at + IOVEC_BASE, address);
  writeU64(words, at + IOVEC_LEN, length);
}

/**
 * A msghdr at byte `offset` of `words` that sends `iovCount` iovecs from native address
 * `iovAddress`, with no destination address and no control data (a connected stream socket).
 */
export function writeMsghdr(words: Uint32Array, offset: number, iovAddress: number,
  iovCount: number): void {
  words.fill(0, offset >>> 2, (offset + MSGHDR_SIZE) >>> 2);
  writeU64(words, offset + MSGHDR_IOV, iovAddress);
  writeU64(words, offset + MSGHDR_IOVLEN, iovCount);
}
