/**
 * Parking a quiet epoll loop inside Bun's event loop. Bun's poller cannot watch an epoll fd
 * (a read of it fails with ESPIPE), and epoll_wait must never block Bun's thread. So one
 * helper thread per thread that parks (started on first use, never keeping the process
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

  constructor() {
    this.worker = new Worker(new URL("./epoll-parker-worker.ts", import.meta.url),
      { workerData: { outerFd: this.outerFd, wakeFd: this.wakeFd } });
    this.worker.unref();
  }

  /** Call `wake` once `epfd` has events (at once if it has some already). */
  park(epfd: number, wake: () => void): void {
    this.parked.set(epfd, wake);
    const op = this.registered.has(epfd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    this.registered.add(epfd);
    epollCtl(this.outerFd, op, epfd, EPOLLIN | EPOLLONESHOT, epfd);
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
export function epollParker(): { park(epfd: number, wake: () => void): void; forget(epfd: number): void } {
  parker ??= new EpollParker();
  return parker;
}
