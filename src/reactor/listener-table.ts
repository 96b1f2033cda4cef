/**
 * Listening sockets of a transport: descriptor, bound port, handler and whether it still
 * accepts, by listener id (ids are never reused within a transport).
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { TransportHandler } from "../api/transport.ts";

export class ListenerTable {
  private readonly fds: number[] = [];
  private readonly ports: number[] = [];
  private readonly handlers: (TransportHandler | undefined)[] = [];
  private readonly accepting: boolean[] = [];

  get count(): number {
    return this.fds.length;
  }

  add(fd: number, port: number, handler: TransportHandler): number {
    this.fds.push(fd);
    this.ports.push(port);
    this.handlers.push(handler);
    this.accepting.push(true);
    return this.fds.length - 1;
  }

  /** The bound port; UsageError WS_ERR_NO_LISTENER for an id never handed out. */
  port(listener: number): number {
    const port = this.ports[listener];
    if (port === undefined) throw new UsageError(ErrorCode.NO_LISTENER, "no such listener");
    return port;
  }

  fd(listener: number): number {
    return this.fds[listener] ?? -1;
  }

  /** The handler of an accepting listener, else undefined. */
  handler(listener: number): TransportHandler | undefined {
    return this.accepting[listener] === true ? this.handlers[listener] : undefined;
  }

  isAccepting(listener: number): boolean {
    return this.accepting[listener] === true;
  }

  /** Stop accepting; true when it was accepting (so the backend closes its socket once). */
  stopAccepting(listener: number): boolean {
    if (this.accepting[listener] !== true) return false;
    this.accepting[listener] = false;
    return true;
  }

  /** The socket is closed (by the backend): its number may belong to another file now. */
  closed(listener: number): void {
    this.fds[listener] = -1;
    this.handlers[listener] = undefined;
  }

  /** Descriptors still open, for a synchronous teardown. */
  openFds(): number[] {
    return this.fds.filter((fd) => fd >= 0);
  }
}
