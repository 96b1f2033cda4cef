/**
 * Linux errno values and names (x86_64, asm-generic/errno*.h). Transport results use the
 * kernel's convention: a number >= 0 is success, a negative number is -errno.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ENOSPC = 28;
export const EPIPE = 32;
export const ERANGE = 34;
export const ENOSYS = 38;
export const ETIME = 62;
export const EOVERFLOW = 75;
export const EBADFD = 77;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ENETUNREACH = 101;
export const ECONNABORTED = 103;
export const ECONNRESET = 104;
export const ENOBUFS = 105;
export const ENOTCONN = 107;
export const ESHUTDOWN = 108;
export const ETIMEDOUT = 110;
export const ECONNREFUSED = 111;
export const EHOSTUNREACH = 113;
export const EALREADY = 114;
export const EINPROGRESS = 115;
export const ECANCELED = 125;

const names: Record<number, string> = {
  [EPERM]: "EPERM", [ENOENT]: "ENOENT", [EINTR]: "EINTR", [EIO]: "EIO", [EBADF]: "EBADF",
  [EAGAIN]: "EAGAIN", [ENOMEM]: "ENOMEM", [EACCES]: "EACCES", [EFAULT]: "EFAULT",
  [EBUSY]: "EBUSY", [EEXIST]: "EEXIST", [EINVAL]: "EINVAL", [ENFILE]: "ENFILE",
  [EMFILE]: "EMFILE", [ENOSPC]: "ENOSPC", [EPIPE]: "EPIPE", [ERANGE]: "ERANGE",
  [ENOSYS]: "ENOSYS", [ETIME]: "ETIME", [EOVERFLOW]: "EOVERFLOW", [EBADFD]: "EBADFD",
  [EOPNOTSUPP]: "EOPNOTSUPP", [EADDRINUSE]: "EADDRINUSE", [EADDRNOTAVAIL]: "EADDRNOTAVAIL",
  [ENETUNREACH]: "ENETUNREACH", [ECONNABORTED]: "ECONNABORTED", [ECONNRESET]: "ECONNRESET",
  [ENOBUFS]: "ENOBUFS", [ENOTCONN]: "ENOTCONN", [ESHUTDOWN]: "ESHUTDOWN",
  [ETIMEDOUT]: "ETIMEDOUT", [ECONNREFUSED]: "ECONNREFUSED", [EHOSTUNREACH]: "EHOSTUNREACH",
  [EALREADY]: "EALREADY", [EINPROGRESS]: "EINPROGRESS", [ECANCELED]: "ECANCELED",
};

/** "EBADF" for 9 (or -9); "E123" for numbers this table does not name. */
export function errnoName(errno: number): string {
  const positive = errno < 0 ? -errno : errno;
  return names[positive] ?? `E${positive}`;
}
