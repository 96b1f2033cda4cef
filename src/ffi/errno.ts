/**
 * errno → actionable hints. The symbolic names live in src/api/errno.ts (pure data, shared
 * with the fake backend); this file adds what a user should do about a failure.
 */
import {
  EACCES, EADDRINUSE, EBADF, EINVAL, EMFILE, ENFILE, ENOMEM, ENOSYS, EPERM,
} from "../api/errno.ts";
import { SystemError } from "../api/errors.ts";

const IO_URING_DISABLED =
  "io_uring is disabled by kernel.io_uring_disabled or a seccomp profile " +
  "(Docker and Kubernetes forbid it by default); use the epoll backend or allow io_uring";

/** The usual cause of `errno` from `call`, phrased as what to do; "" when we have none. */
export function hintFor(call: string, errno: number): string {
  if (call === "io_uring_setup") {
    if (errno === EPERM || errno === EACCES) return IO_URING_DISABLED;
    if (errno === ENOSYS) return "this kernel has no io_uring (needs Linux 6.0+)";
    if (errno === ENOMEM) return "locked-memory limit too low for the ring: raise `ulimit -l`";
    if (errno === EINVAL) return "the kernel does not support the requested ring flags";
  }
  if (call.startsWith("io_uring_register") && errno === EINVAL) {
    return "the kernel lacks this io_uring feature (provided buffer rings need Linux 5.19+)";
  }
  if (call === "mmap" && errno === ENOMEM) {
    return "not enough memory (for MAP_HUGETLB: reserve pages in /proc/sys/vm/nr_hugepages)";
  }
  if (call === "bind" && errno === EADDRINUSE) return "the port is taken by another process";
  if (call === "bind" && errno === EACCES) return "ports below 1024 need CAP_NET_BIND_SERVICE";
  if (errno === EMFILE) return "out of file descriptors: raise `ulimit -n`";
  if (errno === ENFILE) return "the system file table is full (fs.file-max)";
  if (errno === EBADF) return "the file descriptor is not open (closed twice, or never opened)";
  return "";
}

/** A SystemError for `call` failing with `errno` (positive or negative), with its hint. */
export function systemError(call: string, errno: number): SystemError {
  const positive = errno < 0 ? -errno : errno;
  const hint = hintFor(call, positive);
  return new SystemError(call, positive, hint === "" ? undefined : hint);
}
