/**
 * A connected TCP pair on 127.0.0.1 made with the epoll bindings only: a listener from
 * src/reactor/sockets.ts (made non-blocking), a non-blocking connect, accept4 after epoll
 * says the listener is readable. Every wait is bounded. Shared by test/ffi-epoll.test.ts
 * and test/tools/epoll-cost.ts.
 */
import { EAGAIN } from "../../src/api/errno.ts";
import { systemError } from "../../src/ffi/errno.ts";
import {
  ACCEPT_FLAGS, closeFd, CONNECT_PENDING, connectStart, EpollEventArray, epollCreate, epollCtl,
  epollSyscalls, errno, nonBlockingTcpSocket, setNonBlocking, socketError,
} from "../../src/ffi/epoll.ts";
import { EPOLL_CTL_ADD, EPOLLIN, EPOLLOUT } from "../../src/ffi/epoll-abi.ts";
import { openListener, SOCKADDR_IN_SIZE, writeSockaddrIn } from "../../src/reactor/sockets.ts";

export interface LoopbackPair {
  listener: number;
  port: number;
  /** The accepted end (non-blocking, from accept4). */
  server: number;
  /** The connecting end (non-blocking socket). */
  client: number;
  /** How connect() answered: 0 (at once) or CONNECT_PENDING. */
  connectResult: number;
  /** Closes one of the pair's fds now (close() later skips it). */
  closeOne(fd: number): void;
  close(): void;
}

/** A sockaddr_in for 127.0.0.1:port in a ≥ 1 KiB JS buffer (synchronous calls only). */
export function loopbackAddress(port: number): Uint8Array {
  const address = new Uint8Array(new ArrayBuffer(1024));
  writeSockaddrIn(address, 0, "127.0.0.1", port);
  return address;
}

/** Waits (≤ timeoutMs) until `fd` reports one of `events`; returns the events or throws. */
export function waitFor(fd: number, events: number, timeoutMs: number): number {
  const epfd = epollCreate();
  const array = EpollEventArray.allocate(4);
  try {
    epollCtl(epfd, EPOLL_CTL_ADD, fd, events, fd);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left < 0) throw new Error(`fd ${fd}: no event ${events} within ${timeoutMs} ms`);
      const ready = array.wait(epfd, Math.min(left, 100));
      if (ready === -1) throw systemError("epoll_wait", errno());
      if (ready > 0) return array.eventsAt(0);
    }
  } finally {
    array.free();
    closeFd(epfd);
  }
}

export function loopbackPair(): LoopbackPair {
  const sys = epollSyscalls();
  const { fd: listener, port } = openListener("127.0.0.1", 0, 16, false);
  const fds: number[] = [listener];
  const close = () => {
    for (const fd of fds) closeFd(fd);
    fds.length = 0;
  };
  const closeOne = (fd: number) => {
    const at = fds.indexOf(fd);
    if (at >= 0) fds.splice(at, 1);
    closeFd(fd);
  };
  try {
    setNonBlocking(listener);
    const client = nonBlockingTcpSocket();
    fds.push(client);
    const connectResult = connectStart(client, loopbackAddress(port), SOCKADDR_IN_SIZE);
    if (connectResult !== 0 && connectResult !== CONNECT_PENDING) {
      throw systemError("connect", -connectResult);
    }
    waitFor(listener, EPOLLIN, 2000);
    const server = sys.accept4(listener, 0, 0, ACCEPT_FLAGS);
    if (server === -1) throw systemError("accept4", errno());
    fds.push(server);
    waitFor(client, EPOLLOUT, 2000);
    const error = socketError(client);
    if (error !== 0) throw systemError("connect", error);
    // Nothing else is queued on the listener: one connection was made.
    const extra = sys.accept4(listener, 0, 0, ACCEPT_FLAGS);
    if (extra !== -1 || errno() !== EAGAIN) {
      if (extra !== -1) closeFd(extra);
      throw new Error("listener had a second connection");
    }
    return { listener, port, server, client, connectResult, closeOne, close };
  } catch (error) {
    close();
    throw error;
  }
}
