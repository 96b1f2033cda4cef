/**
 * The three io_uring system calls. liburing.so.2 (2.3+) exports them as raw wrappers that
 * return -errno; when it is not installed we make the same calls through libc's syscall()
 * with the x86_64 numbers, so the io_uring path needs no system package.
 */
import { dlopen, ptr } from "bun:ffi";
import { lastErrno, libc } from "./libc.ts";

const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;
const SYS_io_uring_register = 427;
/** sizeof(sigset_t) as the kernel wants it (_NSIG / 8). */
const NSIG_BYTES = 8;

type Pointerish = number | NodeJS.TypedArray | null;

export interface UringCalls {
  /** Where the calls come from: the system liburing or raw syscalls through libc. */
  readonly source: "liburing" | "syscall";
  /** io_uring_setup(entries, params) → ring fd or -errno. */
  setup(entries: number, params: NodeJS.TypedArray): number;
  /** io_uring_enter2(fd, toSubmit, minComplete, flags, arg, argSize) → count or -errno. */
  enter(fd: number, toSubmit: number, minComplete: number, flags: number,
    arg: Pointerish, argSize: number): number;
  /** io_uring_register(fd, opcode, arg, nrArgs) → result or -errno. */
  register(fd: number, opcode: number, arg: Pointerish, nrArgs: number): number;
}

let calls: UringCalls | undefined;

/** The io_uring calls, resolved once per thread. */
export function uring(): UringCalls {
  if (calls === undefined) calls = openLiburing() ?? viaSyscall();
  return calls;
}

function openLiburing(): UringCalls | undefined {
  if (process.env.HIOLOAD_NO_LIBURING === "1") return undefined;
  let lib;
  try {
    lib = dlopen("liburing.so.2", {
      io_uring_setup: { args: ["u32", "ptr"], returns: "i32" },
      io_uring_enter2: { args: ["u32", "u32", "u32", "u32", "ptr", "u64"], returns: "i32" },
      io_uring_register: { args: ["u32", "u32", "ptr", "u32"], returns: "i32" },
    });
  } catch {
    return undefined; // not installed, or older than 2.3 (no raw wrappers): use syscall()
  }
  const s = lib.symbols;
  return {
    source: "liburing",
    setup: (entries, params) => s.io_uring_setup(entries, params),
    enter: (fd, toSubmit, minComplete, flags, arg, argSize) =>
      s.io_uring_enter2(fd, toSubmit, minComplete, flags, arg, arg === null ? NSIG_BYTES : argSize),
    register: (fd, opcode, arg, nrArgs) => s.io_uring_register(fd, opcode, arg, nrArgs),
  };
}

function viaSyscall(): UringCalls {
  const c = libc();
  const negErrno = (result: number | bigint): number =>
    Number(result) === -1 ? -lastErrno() : Number(result);
  const address = (value: Pointerish): number => {
    if (value === null) return 0;
    if (typeof value === "number") return value;
    // syscall() takes integers; a typed array's address is only good for this one call.
    return Number(ptr(value));
  };
  return {
    source: "syscall",
    setup: (entries, params) =>
      negErrno(c.syscall(SYS_io_uring_setup, entries, address(params), 0, 0, 0, 0)),
    enter: (fd, toSubmit, minComplete, flags, arg, argSize) =>
      negErrno(c.syscall(SYS_io_uring_enter, fd, toSubmit, minComplete, flags, address(arg),
        arg === null ? NSIG_BYTES : argSize)),
    register: (fd, opcode, arg, nrArgs) =>
      negErrno(c.syscall(SYS_io_uring_register, fd, opcode, address(arg), nrArgs, 0, 0)),
  };
}
