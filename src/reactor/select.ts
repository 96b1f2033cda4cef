/**
 * The one place that looks at the platform: picks the transport backend. "auto" takes
 * io_uring on Linux and falls back to epoll where io_uring is forbidden (Docker's and
 * Kubernetes' default seccomp profiles, kernel.io_uring_disabled: io_uring_setup fails with
 * EPERM, EACCES or ENOSYS), saying so once on stderr. Elsewhere (macOS, BSD, Windows until
 * IOCP lands) "auto" is the portable Bun.listen backend, the slow path, said once too.
 * HIOLOAD_BACKEND names a backend to use instead of "auto" (HIOLOAD_BACKEND=epoll).
 */
import { EACCES, ENOSYS, EPERM } from "../api/errno.ts";
import { ErrorCode, SystemError, UsageError } from "../api/errors.ts";
import type { BackendChoice, Transport } from "../api/transport.ts";
import { BunTransport } from "./bun-transport.ts";
import { EpollTransport } from "./epoll-transport.ts";
import { UringTransport, type UringTransportOptions } from "./uring-transport.ts";

const CHOICES: readonly string[] = ["auto", "io_uring", "epoll", "bun"];
const LINUX_ONLY: readonly string[] = ["io_uring", "epoll"];
let fallbackReported = false;

/** Create a transport for `backend`; "auto" picks the fastest one this machine allows. */
export function createTransport(backend: BackendChoice = "auto",
  options: UringTransportOptions = {}): Transport {
  const chosen = backend === "auto" ? fromEnvironment() : backend;
  if (!CHOICES.includes(chosen)) {
    throw new UsageError(ErrorCode.BAD_BACKEND,
      `backend "${chosen}" is not available here (one of ${CHOICES.join(", ")})`);
  }
  if (chosen === "bun") return new BunTransport(options);
  if (process.platform !== "linux") {
    if (LINUX_ONLY.includes(chosen)) {
      throw new UsageError(ErrorCode.NO_BACKEND, `backend "${chosen}" needs Linux (this is ${process.platform})`);
    }
    reportSlowPath(`no native backend for ${process.platform} yet (IOCP is planned)`);
    return new BunTransport(options);
  }
  if (chosen === "epoll") return new EpollTransport(options);
  if (chosen === "io_uring") return new UringTransport(options);
  try {
    return new UringTransport(options);
  } catch (error) {
    if (!(error instanceof SystemError) || !forbidsIoUring(error)) throw error;
    reportFallback(error);
    return new EpollTransport(options);
  }
}

/** HIOLOAD_BACKEND, when set, stands for "auto". */
function fromEnvironment(): BackendChoice {
  const named = process.env.HIOLOAD_BACKEND;
  return named === undefined || named === "" ? "auto" : named as BackendChoice;
}

/** io_uring is there in the kernel but this process may not use it (or the kernel lacks it). */
function forbidsIoUring(error: SystemError): boolean {
  return error.call.startsWith("io_uring") &&
    (error.errno === EPERM || error.errno === EACCES || error.errno === ENOSYS);
}

function reportFallback(error: SystemError): void {
  if (fallbackReported) return;
  fallbackReported = true;
  console.error(`hioload-ws: io_uring is not allowed here (${error.call}: ${error.code}; a ` +
    "seccomp profile such as Docker's default, or kernel.io_uring_disabled): using epoll");
}

function reportSlowPath(why: string): void {
  if (fallbackReported) return;
  fallbackReported = true;
  console.error(`hioload-ws: ${why}: using the portable Bun.listen backend (the slow path)`);
}
