/**
 * Cost per call of the epoll backend's commonest idle calls, on this machine:
 *   bun test/tools/epoll-cost.ts [calls]
 * recv on an empty non-blocking TCP socket (EAGAIN), epoll_wait(timeout 0) with nothing
 * ready, and for scale getpid (a bare syscall) and errno() (a load). Best of 5 rounds.
 */
import { dlopen } from "bun:ffi";
import { EAGAIN } from "../../src/api/errno.ts";
import {
  closeFd, EpollEventArray, epollCreate, epollCtl, epollSyscalls, errno,
} from "../../src/ffi/epoll.ts";
import { EPOLL_CTL_ADD, EPOLLET, EPOLLIN, EPOLLRDHUP } from "../../src/ffi/epoll-abi.ts";
import {
  libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE,
} from "../../src/ffi/libc.ts";
import { loopbackPair } from "./loopback-pair.ts";

const calls = Number(process.argv[2] ?? 1_000_000);
const sys = epollSyscalls();
const pair = loopbackPair();
const epfd = epollCreate();
epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET | EPOLLRDHUP, 1);
const events = EpollEventArray.allocate(256);
const buffer = Number(libc().mmap(0, 4096, PROT_READ | PROT_WRITE,
  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
if (buffer === -1) throw new Error("mmap failed");
const bare = dlopen("libc.so.6", { abs: { args: ["i32"], returns: "i32" } }).symbols;

function best(name: string, body: () => number): void {
  let least = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = Bun.nanoseconds();
    let sink = 0;
    for (let i = 0; i < calls; i++) sink += body();
    least = Math.min(least, (Bun.nanoseconds() - start) / calls);
    if (Number.isNaN(sink)) throw new Error("unreachable");
  }
  console.log(`${name.padEnd(44)} ${least.toFixed(1).padStart(7)} ns/call`);
}

// Drain whatever the handshake left (the edge from ADD) so the waits below see nothing.
events.wait(epfd, 0);
if (sys.recv(pair.server, buffer, 4096, 0) !== -1 || errno() !== EAGAIN) {
  throw new Error("expected an empty socket");
}
best("recv, empty socket (-1, then errno EAGAIN)", () => {
  const n = sys.recv(pair.server, buffer, 4096, 0);
  return n === -1 ? errno() : n;
});
best("epoll_wait(timeout 0), nothing ready", () => events.wait(epfd, 0));
best("getpid (bare syscall, for scale)", () => libc().getpid());
best("abs (FFI call, no syscall)", () => bare.abs(-1));
best("errno() (view load)", () => errno());

events.free();
libc().munmap(buffer, 4096);
closeFd(epfd);
pair.close();
