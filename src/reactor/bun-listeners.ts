/**
 * The listening sockets of a Bun transport, by listener id (never reused): `Bun.listen` with
 * the contract's options. `backlog` has no say here (Bun picks its own). Bun's `exclusive` is
 * set unless `reusePort` is asked: without it Bun sets SO_REUSEPORT on macOS/BSD, and binding
 * a taken port would not fail with EADDRINUSE there.
 */
import type { SocketHandler, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { ListenOptions, TransportHandler } from "../api/transport.ts";
import type { BunConnection } from "./bun-connection.ts";
import { systemErrorOfBunError } from "./bun-errno.ts";

type BunListener = TCPSocketListener<BunConnection | null>;

/** Bun.listen takes `reusePort` (SO_REUSEPORT) although its type declares it for connect only. */
interface BunListenOptions extends TCPSocketListenOptions<BunConnection | null> {
  reusePort?: boolean;
}

interface ListenerRecord {
  readonly server: BunListener;
  readonly handler: TransportHandler;
  readonly port: number;
  accepting: boolean;
}

/** "localhost" would let Bun pick ::1; the contract speaks IPv4. */
export function ipv4Host(host: string): string {
  return host === "localhost" ? "127.0.0.1" : host;
}

export class BunListeners {
  private readonly records: ListenerRecord[] = [];

  /**
   * Binds and listens with `socket` (given the new id) as Bun's callbacks; throws SystemError
   * (EADDRINUSE...) when Bun cannot. The address was checked by the caller.
   */
  open(options: ListenOptions, handler: TransportHandler,
    socket: (listener: number) => SocketHandler<BunConnection | null>): number {
    const id = this.records.length;
    const reusePort = options.reusePort ?? false;
    const bunOptions: BunListenOptions = {
      hostname: ipv4Host(options.hostname ?? "0.0.0.0"), port: options.port, data: null,
      // The peer's FIN must not close the socket: onEnd may still send.
      allowHalfOpen: true,
      exclusive: !reusePort, reusePort, socket: socket(id),
    };
    let server: BunListener;
    try {
      server = Bun.listen(bunOptions);
    } catch (error) {
      throw systemErrorOfBunError("listen", error);
    }
    this.records.push({ server, handler, port: server.port, accepting: true });
    return id;
  }

  /** The bound port; UsageError WS_ERR_NO_LISTENER for an id never handed out. */
  port(listener: number): number {
    const record = this.records[listener];
    if (record === undefined) throw new UsageError(ErrorCode.NO_LISTENER, "no such listener");
    return record.port;
  }

  /** The handler of a listener that still accepts, else undefined. */
  handler(listener: number): TransportHandler | undefined {
    const record = this.records[listener];
    return record?.accepting === true ? record.handler : undefined;
  }

  /** Stops accepting (the listening socket closes); accepted connections stay. */
  close(listener: number): void {
    const record = this.records[listener];
    if (record === undefined || !record.accepting) return;
    record.accepting = false;
    record.server.stop(false);
  }

  closeAll(): void {
    for (let id = 0; id < this.records.length; id++) this.close(id);
  }
}
