/**
 * The one place that looks at the platform: picks the transport backend for "auto".
 * Today: io_uring on Linux. epoll (where seccomp forbids io_uring) and IOCP slot in here.
 */
import { ErrorCode, SystemError, UsageError } from "../api/errors.ts";
import type { BackendChoice, Transport } from "../api/transport.ts";
import { UringTransport, type UringTransportOptions } from "./uring-transport.ts";


/** Create a transport for `backend`; "auto" picks the fastest one this machine allows. */
export function createTransport(backend: BackendChoice = "auto",
  options: UringTransportOptions = {}): Transport {
  if (backend !== "auto" && backend !== "io_uring") {
    throw new UsageError(ErrorCode.BAD_BACKEND, `unknown backend "${backend}"`);
  }
  if (process.platform !== "linux") {
    throw new UsageError(ErrorCode.NO_BACKEND,
      `no native backend for ${process.platform} yet (IOCP is planned)`);
  }
  try {
    return new UringTransport(options);
  } catch (error) {
    if (backend === "auto" && error instanceof SystemError) {
      throw new SystemError(error.call, error.errno,
        `${error.hint ?? "io_uring is unavailable"}; the epoll backend is not built yet`);
    }
    throw error;
  }
}
