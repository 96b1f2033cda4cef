/**
 * Parking a quiet epoll loop inside Bun's event loop. Bun's poller cannot watch an epoll fd
 * (a read of it fails with ESPIPE), and epoll_wait must never block Bun's thread. So one
 * helper thread per thread that parks (started with its first transport, never keeping the process
 * alive) blocks in epoll_wait on an outer epoll set holding the parked transports' epoll fds,
 * each armed with EPOLLONESHOT, and signals an eventfd that this thread reads through Bun's
 * poller (as the io_uring backend parks). A wake calls every transport parked at that
 * moment: each runs a turn, and the ones with nothing to do park again.
 */
import { Worker } from "node:worker_threads";
import { EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, EPOLLIN, EPOLLONESHOT } from "../ffi/epoll-abi.ts";
import { createWakeFd, epollCreate, epollCtl } from "../ffi/epoll.ts";

class EpollParker {
  private readonly outerFd = epollCreate();
  private readonly wakeFd = createWakeFd();
  /**
   * The pending read of the eventfd, while some transport is registered: it is also what
   * keeps the process alive for a running server, so it ends when the last one goes.
   */
  private reader: { read(): Promise<unknown>; cancel(): Promise<void> } | undefined;
  private readonly worker: Worker;
  /** Inner epoll fds added to the outer set (then re-armed with MOD). */
  private readonly registered = new Set<number>();
  private parked = new Map<number, () => void>();
  private reading = false;

  /** The helper thread could not start (out of descriptors as it loaded, say): poll instead. */
  private helperFailed = false;

  constructor() {
    this.worker = new Worker(new URL("./epoll-parker-worker.ts", import.meta.url),
      { workerData: { outerFd: this.outerFd, wakeFd: this.wakeFd } });
    this.worker.unref();
    this.worker.on("error", (error) => {
      if (this.helperFailed) return;
      this.helperFailed = true;
      console.error("hioload-ws: the epoll parking thread failed to start; quiet loops poll " +
        "every millisecond instead:", error);
      const woken = this.parked;
      this.parked = new Map();
      for (const wake of woken.values()) wake();
    });
  }

  /**
   * Take `epfd` into the outer set, not armed yet. Done when the transport is made, so that
   * parking later never needs a new descriptor or thread: a server out of descriptors
   * (EMFILE) keeps parking and serving.
   */
  register(epfd: number): void {
    if (this.registered.has(epfd)) return;
    epollCtl(this.outerFd, EPOLL_CTL_ADD, epfd, EPOLLONESHOT, epfd);
    this.registered.add(epfd);
    // Reading the eventfd through Bun duplicates it: also now, not at a park.
    this.reader ??= Bun.file(this.wakeFd).stream().getReader();
  }

  /** Call `wake` once `epfd` has events (at once if it has some already). */
  park(epfd: number, wake: () => void): void {
    if (this.helperFailed) {
      setTimeout(wake, 1);
      return;
    }
    this.register(epfd);
    this.parked.set(epfd, wake);
    epollCtl(this.outerFd, EPOLL_CTL_MOD, epfd, EPOLLIN | EPOLLONESHOT, epfd);
    this.listen();
  }

  private listen(): void {
    if (this.reading) return;
    this.reading = true;
    const reader = this.reader ?? Bun.file(this.wakeFd).stream().getReader();
    this.reader = reader;
    reader.read().then(this.onSignal, this.onSignal);
  }

  /** A transport closes its epoll fd: take it out of the outer set first. */
  forget(epfd: number): void {
    this.parked.delete(epfd);
    if (this.registered.delete(epfd)) epollCtl(this.outerFd, EPOLL_CTL_DEL, epfd, 0);
    if (this.registered.size === 0 && this.reader !== undefined) {
      const reader = this.reader;
      this.reader = undefined;
      this.reading = false;
      reader.cancel().catch(() => {});
    }
  }

  private readonly onSignal = (): void => {
    if (!this.reading) return; // cancelled: the last transport went
    this.reading = false;
    const woken = this.parked;
    this.parked = new Map();
    for (const wake of woken.values()) wake();
    // Still parked (a wake that found nothing parks again, above): keep listening.
    if (this.parked.size > 0) this.listen();
  };
}

let parker: EpollParker | undefined;

/** This thread's parker (its helper thread starts on first use). */
export function epollParker(): {
  register(epfd: number): void; park(epfd: number, wake: () => void): void; forget(epfd: number): void;
} {
  parker ??= new EpollParker();
  return parker;
}
