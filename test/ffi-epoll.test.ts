import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  EAGAIN, EBADF, ECONNREFUSED, ECONNRESET, EEXIST, EINVAL, ENOENT, EPIPE,
} from "../src/api/errno.ts";
import { SystemError } from "../src/api/errors.ts";
import {
  ACCEPT_FLAGS, closeFd, CONNECT_PENDING, connectStart, createWakeFd, EpollEventArray,
  epollCreate, epollCtl, epollSyscalls, errno, nonBlockingTcpSocket, setNonBlocking,
  shutdownWrite, socketError,
} from "../src/ffi/epoll.ts";
import {
  EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP,
  EPOLLIN, EPOLLOUT, EPOLLRDHUP, IOVEC_SIZE, MSG_NOSIGNAL, MSGHDR_SIZE, readU64, writeIovec,
  writeMsghdr, writeU64,
} from "../src/ffi/epoll-abi.ts";
import { F_GETFL, libc, O_NONBLOCK } from "../src/ffi/libc.ts";
import { MemoryRegion } from "../src/pool/region.ts";
import { openListener, SOCKADDR_IN_SIZE } from "../src/reactor/sockets.ts";
import {
  loopbackAddress, loopbackPair, type LoopbackPair, waitFor,
} from "./tools/loopback-pair.ts";

const sys = epollSyscalls();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Native memory for everything the kernel reads or writes: [0, 32K) receive, [32K, 48K)
// send data, [48K, 52K) iovecs + msghdr.
let region: MemoryRegion;
let bytes: Uint8Array;
let words: Uint32Array;
const RECV = 0;
const SEND = 32768;
const CONTROL = 49152;

beforeAll(() => {
  region = MemoryRegion.allocate(65536, { hugepages: "off" });
  bytes = region.view;
  words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
});
afterAll(() => region.free());

/** Copies `text` into send memory at `offset`; returns its native address and length. */
function stage(offset: number, text: string): [number, number] {
  const data = encoder.encode(text);
  bytes.set(data, SEND + offset);
  return [region.pointer + SEND + offset, data.length];
}

function received(length: number): string {
  return decoder.decode(bytes.subarray(RECV, RECV + length));
}

/** One raw recv into the receive area: [result, errno or 0]. */
function recvOnce(fd: number, length = 32768): [number, number] {
  const n = sys.recv(fd, region.pointer + RECV, length, 0);
  return [n, n === -1 ? errno() : 0];
}

function sendText(fd: number, text: string): number {
  const [address, length] = stage(0, text);
  const n = sys.send(fd, address, length, MSG_NOSIGNAL);
  if (n === -1) throw new Error(`send failed: errno ${errno()}`);
  return n;
}

/** epoll_wait with a bounded timeout, returning [count, events[0], data[0]]. */
function waitOne(epfd: number, events: EpollEventArray,
  timeoutMs: number): [number, number, number] {
  const n = events.wait(epfd, timeoutMs);
  if (n === -1) throw new Error(`epoll_wait failed: errno ${errno()}`);
  return n === 0 ? [0, 0, 0] : [n, events.eventsAt(0), events.dataAt(0)];
}

function thrown(body: () => unknown): SystemError {
  try {
    body();
  } catch (error) {
    expect(error).toBeInstanceOf(SystemError);
    return error as SystemError;
  }
  throw new Error("expected a SystemError");
}

describe("epoll ABI helpers", () => {
  test("u64 halves round-trip addresses above 2^32 without BigInt", () => {
    const view = new Uint32Array(4);
    writeU64(view, 4, 0x7f12_3456_789a);
    expect(view[1]).toBe(0x3456_789a);
    expect(view[2]).toBe(0x7f12);
    expect(readU64(view, 4)).toBe(0x7f12_3456_789a);
  });

  test("iovec and msghdr land at the x86_64 offsets", () => {
    const view = new Uint32Array(32);
    view.fill(0xffffffff);
    writeIovec(view, 0, 1, 0x1_0000_0010, 77);
    expect([...view.subarray(4, 8)]).toEqual([0x10, 1, 77, 0]); // base @16, len @24
    writeMsghdr(view, 64, 0x2_0000_0040, 2);
    const msghdr = [...view.subarray(16, 16 + MSGHDR_SIZE / 4)];
    // name/namelen zero, iov @16, iovlen @24, control/controllen/flags zero.
    expect(msghdr).toEqual([0, 0, 0, 0, 0x40, 2, 2, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe("epoll on a loopback TCP pair", () => {
  let pair: LoopbackPair;
  let epfd: number;
  let events: EpollEventArray;

  beforeEach(() => {
    pair = loopbackPair();
    epfd = epollCreate();
    events = EpollEventArray.allocate(64);
  });
  afterEach(() => {
    events.free();
    closeFd(epfd);
    pair.close();
  });

  test("the pair is made with non-blocking sockets and a non-blocking connect", () => {
    expect([0, CONNECT_PENDING]).toContain(pair.connectResult);
    for (const fd of [pair.server, pair.client, pair.listener]) {
      expect(libc().fcntl(fd, F_GETFL, 0) & O_NONBLOCK).toBe(O_NONBLOCK);
    }
    expect(socketError(pair.client)).toBe(0);
  });

  test("edge-triggered EPOLLIN carries the data field; recv reads, then EAGAIN", () => {
    const data = 0x0abc_0000_1234; // generation in the high half, slot in the low half
    epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET | EPOLLRDHUP, data);
    expect(waitOne(epfd, events, 0)[0]).toBe(0);

    expect(sendText(pair.client, "hello epoll")).toBe(11);
    const [count, ready, got] = waitOne(epfd, events, 2000);
    expect(count).toBe(1);
    expect(ready & EPOLLIN).toBe(EPOLLIN);
    expect(ready & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)).toBe(0);
    expect(got).toBe(data);
    expect(events.dataLowAt(0)).toBe(0x1234);
    expect(events.dataHighAt(0)).toBe(0x0abc);

    expect(recvOnce(pair.server)).toEqual([11, 0]);
    expect(received(11)).toBe("hello epoll");
    expect(recvOnce(pair.server)).toEqual([-1, EAGAIN]);
    // Edge-triggered: nothing new arrived, so no new event.
    expect(waitOne(epfd, events, 0)[0]).toBe(0);
  });

  test("edge-triggered: data left unread gives no second event until more arrives", () => {
    epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET, 7);
    sendText(pair.client, "0123456789");
    expect(waitOne(epfd, events, 2000)[0]).toBe(1);
    expect(recvOnce(pair.server, 4)).toEqual([4, 0]);
    // The rest is still queued, but the edge was consumed: a backend must keep reading.
    expect(waitOne(epfd, events, 20)[0]).toBe(0);
    sendText(pair.client, "ab");
    expect(waitOne(epfd, events, 2000)[0]).toBe(1);
    expect(recvOnce(pair.server)).toEqual([8, 0]);
    expect(received(8)).toBe("456789ab");
    // A short read (8 < 32768) drained the queue: the next arrival raises a new edge, so a
    // backend may skip the EAGAIN recv after a short read.
    sendText(pair.client, "c");
    expect(waitOne(epfd, events, 2000)[0]).toBe(1);
    expect(recvOnce(pair.server)).toEqual([1, 0]);
  });

  test("the peer's shutdown(SHUT_WR) gives EPOLLRDHUP, then recv returns 0", () => {
    epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET | EPOLLRDHUP, 3);
    sendText(pair.client, "last words");
    expect(shutdownWrite(pair.client)).toBe(0);
    // Data and FIN may come as one event or two: collect until RDHUP shows (bounded).
    let seen = 0;
    const deadline = Date.now() + 2000;
    while ((seen & EPOLLRDHUP) === 0 && Date.now() < deadline) {
      seen |= waitOne(epfd, events, 100)[1];
    }
    expect(seen & EPOLLRDHUP).toBe(EPOLLRDHUP);
    expect(seen & EPOLLIN).toBe(EPOLLIN);
    expect(seen & EPOLLHUP).toBe(0); // only the read side is shut
    expect(recvOnce(pair.server)).toEqual([10, 0]);
    expect(recvOnce(pair.server)).toEqual([0, 0]); // FIN: end of stream, not EAGAIN
    // Our side can still write to a half-closed peer.
    expect(sendText(pair.server, "bye")).toBe(3);
    expect(waitFor(pair.client, EPOLLIN, 2000) & EPOLLIN).toBe(EPOLLIN);
    expect(recvOnce(pair.client)).toEqual([3, 0]);
  });

  test("sendmsg with two iovecs (MSG_NOSIGNAL) arrives in order", () => {
    const [first, firstLength] = stage(0, "GET / HTTP/1.1\r\n");
    const [second, secondLength] = stage(4000, "Host: 127.0.0.1\r\n\r\n");
    const iov = region.pointer + CONTROL;
    writeIovec(words, CONTROL, 0, first, firstLength);
    writeIovec(words, CONTROL, 1, second, secondLength);
    const msghdrOffset = CONTROL + 2 * IOVEC_SIZE;
    writeMsghdr(words, msghdrOffset, iov, 2);
    const sent = sys.sendmsg(pair.client, region.pointer + msghdrOffset, MSG_NOSIGNAL);
    expect(sent).toBe(firstLength + secondLength);
    expect(waitFor(pair.server, EPOLLIN, 2000) & EPOLLIN).toBe(EPOLLIN);
    expect(recvOnce(pair.server)).toEqual([sent, 0]);
    expect(received(sent)).toBe("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  });

  test("writev and readv scatter and gather through native iovecs", () => {
    const [a, aLength] = stage(0, "abc");
    const [b, bLength] = stage(100, "defgh");
    writeIovec(words, CONTROL, 0, a, aLength);
    writeIovec(words, CONTROL, 1, b, bLength);
    expect(sys.writev(pair.client, region.pointer + CONTROL, 2)).toBe(8);
    expect(waitFor(pair.server, EPOLLIN, 2000) & EPOLLIN).toBe(EPOLLIN);
    // Read 8 bytes into two separate 2- and 6-byte areas.
    writeIovec(words, CONTROL, 0, region.pointer + RECV, 2);
    writeIovec(words, CONTROL, 1, region.pointer + RECV + 1000, 6);
    expect(sys.readv(pair.server, region.pointer + CONTROL, 2)).toBe(8);
    expect(received(2)).toBe("ab");
    expect(decoder.decode(bytes.subarray(RECV + 1000, RECV + 1006))).toBe("cdefgh");
  });

  test("EPOLLOUT|EPOLLET reports writable once at ADD, then only after the buffer was full", () => {
    epollCtl(epfd, EPOLL_CTL_ADD, pair.client, EPOLLIN | EPOLLOUT | EPOLLET, 9);
    const [count, ready] = waitOne(epfd, events, 2000);
    expect(count).toBe(1);
    expect(ready & EPOLLOUT).toBe(EPOLLOUT);
    expect(waitOne(epfd, events, 0)[0]).toBe(0);
    // Fill the send path until EAGAIN (bounded), then drain from the other end.
    let queued = 0;
    for (let i = 0; i < 100_000; i++) {
      const n = sys.send(pair.client, region.pointer + SEND, 16384, MSG_NOSIGNAL);
      if (n === -1) {
        expect(errno()).toBe(EAGAIN);
        break;
      }
      queued += n;
    }
    expect(queued).toBeGreaterThan(0);
    let drained = 0;
    const deadline = Date.now() + 5000;
    let writable = false;
    while (!writable && Date.now() < deadline) {
      const [n] = recvOnce(pair.server);
      if (n > 0) drained += n;
      const [c, e] = waitOne(epfd, events, n > 0 ? 0 : 10);
      writable = c > 0 && (e & EPOLLOUT) !== 0;
    }
    expect(writable).toBe(true);
    expect(drained).toBeGreaterThan(0);
  });

  test("accept4 on a drained listener is -1 EAGAIN; accepted sockets are non-blocking", () => {
    expect(sys.accept4(pair.listener, 0, 0, ACCEPT_FLAGS)).toBe(-1);
    expect(errno()).toBe(EAGAIN);
    expect(libc().fcntl(pair.server, F_GETFL, 0) & O_NONBLOCK).toBe(O_NONBLOCK);
  });

  test("send to a peer that closed gives EPIPE/ECONNRESET, not SIGPIPE", () => {
    pair.closeOne(pair.server);
    expect(waitFor(pair.client, EPOLLIN | EPOLLRDHUP, 2000) & EPOLLRDHUP).toBe(EPOLLRDHUP);
    let error = 0;
    for (let i = 0; i < 100 && error === 0; i++) {
      const n = sys.send(pair.client, region.pointer + SEND, 1000, MSG_NOSIGNAL);
      if (n === -1) error = errno();
      else Bun.sleepSync(1); // the first send draws the RST; a later one fails
    }
    expect([EPIPE, ECONNRESET]).toContain(error);
  });

  test("an eventfd wakes epoll_wait", () => {
    const wake = createWakeFd();
    try {
      epollCtl(epfd, EPOLL_CTL_ADD, wake, EPOLLIN | EPOLLET, 0xffff_ffff_ffff);
      expect(waitOne(epfd, events, 0)[0]).toBe(0);
      const one = new BigUint64Array(new ArrayBuffer(1024));
      one[0] = 1n;
      expect(Number(libc().write(wake, one, 8))).toBe(8);
      const [count, ready, data] = waitOne(epfd, events, 2000);
      expect(count).toBe(1);
      expect(ready & EPOLLIN).toBe(EPOLLIN);
      expect(data).toBe(0xffff_ffff_ffff);
    } finally {
      closeFd(wake);
    }
  });

  test("an epoll fd nests in another epoll set: readable while it has ready events", () => {
    // How a parked loop can learn that its epoll set has work without epoll_wait on it.
    const outer = epollCreate();
    const outerEvents = EpollEventArray.allocate(4);
    try {
      epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET, 5);
      epollCtl(outer, EPOLL_CTL_ADD, epfd, EPOLLIN, 77);
      expect(waitOne(outer, outerEvents, 0)[0]).toBe(0);
      sendText(pair.client, "ping");
      const [count, ready, data] = waitOne(outer, outerEvents, 2000);
      expect([count, ready & EPOLLIN, data]).toEqual([1, EPOLLIN, 77]);
      expect(waitOne(epfd, events, 0).slice(0, 1)).toEqual([1]);
    } finally {
      outerEvents.free();
      closeFd(outer);
    }
  });

  test("MOD changes the interest set and DEL removes it", () => {
    epollCtl(epfd, EPOLL_CTL_ADD, pair.server, EPOLLIN | EPOLLET, 1);
    epollCtl(epfd, EPOLL_CTL_MOD, pair.server, EPOLLOUT | EPOLLET, 2);
    const [count, ready, data] = waitOne(epfd, events, 2000);
    expect(count).toBe(1);
    expect(ready & EPOLLOUT).toBe(EPOLLOUT);
    expect(data).toBe(2);
    epollCtl(epfd, EPOLL_CTL_DEL, pair.server, 0);
    sendText(pair.client, "x");
    expect(waitOne(epfd, events, 20)[0]).toBe(0);
  });
});

describe("errors are SystemErrors with errno names", () => {
  test("epoll_ctl on a closed fd is EBADF", () => {
    const epfd = epollCreate();
    try {
      const fd = createWakeFd();
      closeFd(fd);
      const error = thrown(() => epollCtl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN));
      expect(error.call).toBe("epoll_ctl");
      expect(error.errno).toBe(EBADF);
      expect(error.code).toBe("EBADF");
      expect(error.message).toContain("epoll_ctl failed: EBADF");
    } finally {
      closeFd(epfd);
    }
  });

  test("ADD twice is EEXIST, MOD/DEL of an fd never added is ENOENT", () => {
    const epfd = epollCreate();
    const fd = createWakeFd();
    try {
      epollCtl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN);
      expect(thrown(() => epollCtl(epfd, EPOLL_CTL_ADD, fd, EPOLLIN)).code).toBe("EEXIST");
      const other = createWakeFd();
      try {
        expect(thrown(() => epollCtl(epfd, EPOLL_CTL_MOD, other, EPOLLIN)).errno).toBe(ENOENT);
        expect(thrown(() => epollCtl(epfd, EPOLL_CTL_DEL, other, 0)).errno).toBe(ENOENT);
      } finally {
        closeFd(other);
      }
      expect(EEXIST).toBe(17);
    } finally {
      closeFd(fd);
      closeFd(epfd);
    }
  });

  test("EPOLLEXCLUSIVE: ADD with IN|ET works; with RDHUP or through MOD it is EINVAL", () => {
    const epfd = epollCreate();
    const { fd: listener } = openListener("127.0.0.1", 0, 4, false);
    const other = createWakeFd();
    try {
      epollCtl(epfd, EPOLL_CTL_ADD, listener, EPOLLIN | EPOLLET | EPOLLEXCLUSIVE, 1);
      expect(thrown(() => epollCtl(epfd, EPOLL_CTL_MOD, listener, EPOLLIN | EPOLLEXCLUSIVE, 1))
        .errno).toBe(EINVAL);
      const withRdhup = EPOLLIN | EPOLLRDHUP | EPOLLEXCLUSIVE;
      expect(thrown(() => epollCtl(epfd, EPOLL_CTL_ADD, other, withRdhup)).errno).toBe(EINVAL);
    } finally {
      closeFd(other);
      closeFd(listener);
      closeFd(epfd);
    }
  });

  test("raw calls return -1 and leave the reason in errno()", () => {
    expect(sys.recv(1 << 20, region.pointer, 16, 0)).toBe(-1);
    expect(errno()).toBe(EBADF);
    expect(sys.epoll_wait(1 << 20, events0(), 1, 0)).toBe(-1);
    expect(errno()).toBe(EBADF);
    expect(closeFd(1 << 20)).toBe(-EBADF);
  });

  test("errno() reads the calling thread's errno inside a Worker too", async () => {
    const worker = new Worker(join(import.meta.dir, "tools", "epoll-worker-probe.ts"));
    try {
      const reply = await new Promise<{ badRecv: number; badErrno: number; wait: number }>(
        (resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no answer from the worker in 10 s")),
            10_000);
          worker.onmessage = (event) => {
            clearTimeout(timer);
            resolve(event.data);
          };
          worker.onerror = (event) => {
            clearTimeout(timer);
            reject(new Error(event.message));
          };
        });
      expect(reply).toEqual({ badRecv: -1, badErrno: EBADF, wait: 0 });
    } finally {
      worker.terminate();
    }
  });

  test("connect to a closed 127.0.0.1 port: ECONNREFUSED (now or through SO_ERROR)", () => {
    // A port that was just ours and is closed again: nothing listens there.
    const { fd: probe, port } = openListener("127.0.0.1", 0, 1, false);
    closeFd(probe);
    const fd = nonBlockingTcpSocket();
    try {
      const result = connectStart(fd, loopbackAddress(port), SOCKADDR_IN_SIZE);
      if (result === CONNECT_PENDING) {
        const ready = waitFor(fd, EPOLLOUT, 2000);
        expect(ready & (EPOLLERR | EPOLLHUP)).not.toBe(0);
        expect(socketError(fd)).toBe(ECONNREFUSED);
        expect(socketError(fd)).toBe(0); // reading SO_ERROR clears it
      } else {
        expect(result).toBe(-ECONNREFUSED);
      }
    } finally {
      closeFd(fd);
    }
  });

  test("setNonBlocking sets O_NONBLOCK and rejects a bad fd with SystemError EBADF", () => {
    const { fd } = openListener("127.0.0.1", 0, 1, false);
    try {
      expect(libc().fcntl(fd, F_GETFL, 0) & O_NONBLOCK).toBe(0);
      setNonBlocking(fd);
      expect(libc().fcntl(fd, F_GETFL, 0) & O_NONBLOCK).toBe(O_NONBLOCK);
    } finally {
      closeFd(fd);
    }
    expect(thrown(() => setNonBlocking(1 << 20)).code).toBe("EBADF");
  });
});

let spareEvents: EpollEventArray | undefined;
/** A native address that can hold one event (for calls expected to fail before writing). */
function events0(): number {
  spareEvents ??= EpollEventArray.allocate(1);
  return spareEvents.address;
}
afterAll(() => spareEvents?.free());
