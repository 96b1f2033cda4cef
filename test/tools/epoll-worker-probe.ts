/**
 * Worker side of the "errno per thread" test in test/ffi-epoll.test.ts: makes the raw calls
 * fail in this thread and posts what errno() read here.
 */
import {
  closeFd, EpollEventArray, epollCreate, epollSyscalls, errno,
} from "../../src/ffi/epoll.ts";

declare const self: Worker;

const sys = epollSyscalls();
const events = EpollEventArray.allocate(8);
const epfd = epollCreate();
const badRecv = sys.recv(1 << 20, events.address, 12, 0);
const badErrno = errno();
const wait = events.wait(epfd, 0);
closeFd(epfd);
events.free();
self.postMessage({ badRecv, badErrno, wait });
