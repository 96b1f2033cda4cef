/**
 * The thread behind EpollParker: it blocks in epoll_wait on the "outer" epoll set, which
 * holds the epoll fds of this thread's parked transports (EPOLLONESHOT), and when one turns
 * readable it adds 1 to the eventfd the parking thread reads through Bun's poller. Nothing
 * else: the parked thread does all the work when it wakes.
 */
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { workerData } from "node:worker_threads";
import { EpollEventArray, errno } from "../ffi/epoll.ts";
import { libc } from "../ffi/libc.ts";

const EINTR = 4;
const { outerFd, wakeFd } = workerData as { outerFd: number; wakeFd: number };
const events = EpollEventArray.allocate(16);
const oneAddress = Number(libc().mmap(0, 4096, 3, 0x22, -1, 0)); // PROT_RW, MAP_PRIVATE|ANON
new BigUint64Array(toArrayBuffer(oneAddress as Pointer, 0, 8))[0] = 1n;

for (;;) {
  const ready = events.wait(outerFd, -1);
  if (ready < 0 && errno() !== EINTR) break; // the outer set was closed: nothing to watch
  if (ready > 0) libc().write(wakeFd, oneAddress as Pointer, 8);
}
