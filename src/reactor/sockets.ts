/**
 * Synchronous socket set-up through libc (rare calls: listen, connect's socket(), options).
 * The data path never comes here; it goes through io_uring.
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import {
  AF_INET, check, IPPROTO_TCP, libc, SO_LINGER, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC,
  SOCK_STREAM, SOL_SOCKET, TCP_NODELAY,
} from "../ffi/libc.ts";

export const SOCKADDR_IN_SIZE = 16;

// Arguments to synchronous calls: ≥ 1000 bytes so JSC never keeps them in the movable GC heap.
const scratch = new Uint8Array(new ArrayBuffer(1024));
const scratchView = new DataView(scratch.buffer);

/** Dotted IPv4 ("127.0.0.1"; "localhost" is accepted) as four bytes, or a UsageError. */
export function parseIpv4(host: string): [number, number, number, number] {
  const text = host === "localhost" ? "127.0.0.1" : host;
  const parts = text.split(".");
  if (parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return parts.map(Number) as [number, number, number, number];
  }
  throw new UsageError(ErrorCode.BAD_ADDRESS,
    `"${host}" is not an IPv4 address (resolve names before listening or connecting)`);
}

/** Write a sockaddr_in for host:port into `target` at `offset`. */
export function writeSockaddrIn(target: Uint8Array, offset: number, host: string, port: number) {
  const [a, b, c, d] = parseIpv4(host);
  target.fill(0, offset, offset + SOCKADDR_IN_SIZE);
  target[offset] = AF_INET; // sa_family, little-endian u16
  target[offset + 2] = port >>> 8; // sin_port, network order
  target[offset + 3] = port & 0xff;
  target[offset + 4] = a;
  target[offset + 5] = b;
  target[offset + 6] = c;
  target[offset + 7] = d;
}

function setIntOption(fd: number, level: number, option: number, value: number): void {
  scratchView.setInt32(0, value, true);
  check("setsockopt", libc().setsockopt(fd, level, option, scratch, 4));
}

export function tcpSocket(): number {
  return check("socket", libc().socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

/** socket + SO_REUSEADDR (+ SO_REUSEPORT) + TCP_NODELAY + bind + listen; returns fd and port. */
export function openListener(host: string, port: number, backlog: number, reusePort: boolean) {
  const fd = tcpSocket();
  try {
    setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (reusePort) setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: no call per accept.
    setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    writeSockaddrIn(scratch, 0, host, port);
    check("bind", libc().bind(fd, scratch, SOCKADDR_IN_SIZE));
    check("listen", libc().listen(fd, backlog));
    return { fd, port: localPort(fd) };
  } catch (error) {
    libc().close(fd);
    throw error;
  }
}

/**
 * Hold a port for a group of SO_REUSEPORT listeners (one per worker): bound, never
 * listening, so the kernel hands it no connections. Returns the fd (close it to release)
 * and the port (port 0 picks a free one that every worker then shares).
 */
export function reservePort(host: string, port: number): { fd: number; port: number } {
  const fd = tcpSocket();
  try {
    setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    setIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    writeSockaddrIn(scratch, 0, host, port);
    check("bind", libc().bind(fd, scratch, SOCKADDR_IN_SIZE));
    return { fd, port: localPort(fd) };
  } catch (error) {
    libc().close(fd);
    throw error;
  }
}

export function closeSocket(fd: number): void {
  libc().close(fd);
}

export function localPort(fd: number): number {
  scratchView.setUint32(64, SOCKADDR_IN_SIZE, true);
  check("getsockname", libc().getsockname(fd, scratch, scratch.subarray(64)));
  return (scratch[2] << 8) | scratch[3];
}

/**
 * An IPv4 endpoint as one number, `ip * 65536 + port` (48 bits: exact in a double), so a
 * transport keeps a connection's peer in a Float64Array slot instead of a string; -1: none.
 */
export function peerEndpoint(fd: number): number {
  scratchView.setUint32(64, SOCKADDR_IN_SIZE, true);
  if (libc().getpeername(fd, scratch, scratch.subarray(64)) !== 0) return -1;
  return scratchView.getUint32(4, false) * 65536 + ((scratch[2] << 8) | scratch[3]);
}

/** The endpoint number of host:port (a UsageError WS_ERR_BAD_ADDRESS when host is no IPv4). */
export function endpointOf(host: string, port: number): number {
  const [a, b, c, d] = parseIpv4(host);
  return (((a << 24) | (b << 16) | (c << 8) | d) >>> 0) * 65536 + port;
}

/** "a.b.c.d:port" of an endpoint number; "" for -1. */
export function formatEndpoint(endpoint: number): string {
  if (endpoint < 0) return "";
  const ip = Math.floor(endpoint / 65536);
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}:${endpoint % 65536}`;
}

export function setNoDelay(fd: number): void {
  setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

/** SO_LINGER {on, 0}: the next close sends RST and drops unsent data (an abort). */
export function setResetOnClose(fd: number): void {
  scratchView.setInt32(0, 1, true);
  scratchView.setInt32(4, 0, true);
  libc().setsockopt(fd, SOL_SOCKET, SO_LINGER, scratch, 8);
}

export function readIntOption(fd: number, level: number, option: number): number {
  scratchView.setUint32(64, 4, true);
  check("getsockopt", libc().getsockopt(fd, level, option, scratch, scratch.subarray(64)));
  return scratchView.getInt32(0, true);
}
