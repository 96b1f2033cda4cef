/**
 * The io_uring transport over real loopback sockets with Bun's own TCP client as the peer:
 * echo at 1, 100 and 1,000 connections, buffer-ring exhaustion, CQ overflow, eventfd
 * parking, resets, pause/resume, refusal over maxConnections, the client side (CONNECT).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { ECONNREFUSED } from "../src/api/errno.ts";
import { CloseMode, type TransportHandler } from "../src/api/transport.ts";
import { UringTransport, type UringTransportOptions } from "../src/reactor/uring-transport.ts";
import { ioUringUnavailable } from "./support/platform.ts";
import { patternBytes as pattern } from "./support/bytes.ts";
import { echoOnce } from "./support/tcp-clients.ts";
import { runTransportContract } from "./support/transport-contract.ts";
import { waitFor as waitUntil, withTimeout } from "./support/wait-for.ts";

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] io_uring transport tests: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

if (!skipReason) {
  runTransportContract({
    name: "io_uring",
    create: () => new UringTransport({ maxConnections: 1024, recvBufferCount: 256,
      sendChunkCount: 1024 }),
    createWith: (options) => new UringTransport(options),
  });
  // The same contract while per-connection state grows from 2 slots (2, 4, ... 128).
  runTransportContract({
    name: "io_uring, state growing from 2 connections",
    create: () => new UringTransport({ maxConnections: 1024, initialConnections: 2,
      recvBufferCount: 256, sendChunkCount: 1024 }),
    createWith: (options) => new UringTransport({ initialConnections: 2, ...options }),
  });
  // deferTaskrun stays an option (off by default: slow wake-ups on 6.18): it must work.
  runTransportContract({
    name: "io_uring, deferTaskrun",
    create: () => new UringTransport({ maxConnections: 1024, recvBufferCount: 256,
      sendChunkCount: 1024, deferTaskrun: true }),
    createWith: (options) => new UringTransport({ deferTaskrun: true, ...options }),
  });
}

const live: UringTransport[] = [];
afterEach(async () => {
  for (const transport of live.splice(0)) await transport.dispose();
});

/** This process's resident memory outside hugetlb pages, in KiB. */
function vmRssKib(): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]);
}

function create(options: UringTransportOptions = {}): UringTransport {
  const transport = new UringTransport({ maxConnections: 4096, recvBufferCount: 256,
    sendChunkCount: 1024, ...options });
  live.push(transport);
  return transport;
}

interface EchoLog { opened: number; closed: number[]; ended: number; drains: number }

function echoServer(transport: UringTransport) {
  const log: EchoLog = { opened: 0, closed: [], ended: 0, drains: 0 };
  const handler: TransportHandler = {
    onOpen: () => void log.opened++,
    onData: (conn, data, start, end) => {
      expect(transport.send(conn, data, start, end)).toBe(end - start);
    },
    onDrain: () => void log.drains++,
    onEnd: () => void log.ended++,
    onClose: (_, reason) => void log.closed.push(reason),
  };
  const listener = transport.listen({ hostname: "127.0.0.1", port: 0 }, handler);
  return { port: transport.listenerPort(listener), listener, log };
}

async function echoMany(port: number, connections: number, size: number) {
  const payloads = Array.from({ length: connections }, (_, i) => pattern(size, i + 1));
  const echoed = await Promise.all(payloads.map((p) => echoOnce(port, p, 20_000)));
  for (let i = 0; i < connections; i++) expect(echoed[i]).toEqual(payloads[i]);
}

suite("io_uring transport", () => {
  test("echoes over 1 connection, every byte of 1 MiB", async () => {
    const transport = create();
    const { port, log } = echoServer(transport);
    await echoMany(port, 1, 1 << 20);
    await waitUntil(() => log.closed.length === 1, 2000, "server saw the close");
    expect(log.closed[0]).toBe(0);
    expect(log.ended).toBe(1);
    const stats = transport.stats();
    expect(stats.accepted).toBe(1);
    expect(stats.bytesIn).toBe(1 << 20);
    expect(stats.bytesOut).toBe(1 << 20);
    expect(stats.connections).toBe(0);
    expect(stats.sendBuffers.inUse).toBe(0);
  });

  test("echoes over 100 connections at once", async () => {
    const transport = create();
    const { port, log } = echoServer(transport);
    await echoMany(port, 100, 4096);
    await waitUntil(() => log.closed.length === 100, 3000, "100 closes");
    expect(transport.stats().accepted).toBe(100);
  });

  test("echoes over 1,000 connections at once", async () => {
    const transport = create();
    const { port, log } = echoServer(transport);
    await echoMany(port, 1000, 512);
    await waitUntil(() => log.closed.length === 1000, 5000, "1000 closes");
    const stats = transport.stats();
    expect(stats.accepted).toBe(1000);
    expect(stats.connections).toBe(0);
    expect(stats.bytesOut).toBe(1000 * 512);
  });

  test("zero-copy sends (SEND_ZC/SENDMSG_ZC) wait for the notification, lose nothing", async () => {
    const transport = create({ zeroCopyThreshold: 1024 });
    const { port, log } = echoServer(transport);
    await echoMany(port, 20, 256 * 1024);
    await waitUntil(() => log.closed.length === 20, 3000, "20 closes");
    expect(transport.stats().sendBuffers.inUse).toBe(0);
    expect(transport.stats().bytesOut).toBe(20 * 256 * 1024);
  });

  test("more data in flight than a fixed ring of receive buffers: stalls, then recovers", async () => {
    // 8 buffers of 1 KiB for 40 connections sending 32 KiB each.
    const transport = create({ recvBufferCount: 8, recvBufferCountMax: 8, recvBufferSize: 1024 });
    const { port } = echoServer(transport);
    await echoMany(port, 40, 32 * 1024);
    expect(transport.stats().recvBufferStalls).toBeGreaterThan(0);
    expect(transport.stats().recvBuffers.inUse).toBe(0);
    expect(transport.stats().recvBuffers.capacity).toBe(8);
  });

  test("a receive ring that runs dry grows, up to its cap", async () => {
    const transport = create({ recvBufferCount: 8, recvBufferCountMax: 64, recvBufferSize: 1024 });
    const { port } = echoServer(transport);
    await echoMany(port, 40, 32 * 1024);
    const { recvBufferStalls, recvBuffers } = transport.stats();
    expect(recvBufferStalls).toBeGreaterThan(0);
    expect(recvBuffers.capacity).toBeGreaterThan(8);
    expect(recvBuffers.capacity).toBeLessThanOrEqual(64);
    expect(recvBuffers.bytes).toBe(recvBuffers.capacity * 1024);
    expect(recvBuffers.inUse).toBe(0);
  });

  test("a CQ far smaller than the burst overflows and loses nothing", async () => {
    const transport = create({ ringEntries: 16, cqEntries: 32 });
    const { port } = echoServer(transport);
    await echoMany(port, 200, 2048);
    expect(transport.stats().cqOverflows).toBeGreaterThan(0);
  });

  test("an idle server parks: timers fire on time and the CPU rests", async () => {
    const transport = create();
    echoServer(transport);
    await Bun.sleep(20);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const late = performance.now() - started - 200;
    const cpu = process.cpuUsage(cpuBefore);
    expect(late).toBeLessThan(50);
    expect(transport.stats().parks).toBeGreaterThan(0);
    // An idle loop that polled would burn ~200 ms of CPU here.
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(40);
  });

  test("timers keep firing on time while the server is busy", async () => {
    const transport = create();
    const { port } = echoServer(transport);
    const traffic = echoMany(port, 20, 256 * 1024);
    const lateness: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 10));
      lateness.push(performance.now() - started - 10);
    }
    await traffic;
    expect(Math.max(...lateness)).toBeLessThan(100);
  });

  test("a peer that resets is reported and its slot reused", async () => {
    const transport = create({ maxConnections: 2 });
    const { port, log } = echoServer(transport);
    for (let round = 0; round < 5; round++) {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.write("hello");
      await waitUntil(() => log.opened === round + 1, 2000, "accepted");
      socket.terminate();
      await waitUntil(() => log.closed.length === round + 1, 2000, "reset seen");
    }
    expect(transport.stats().connections).toBe(0);
    expect(transport.stats().closed).toBe(5);
  });

  test("accepts over maxConnections are refused, the rest keep working", async () => {
    const transport = create({ maxConnections: 3 });
    const { port, log } = echoServer(transport);
    const sockets = [];
    for (let i = 0; i < 3; i++) {
      sockets.push(await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }));
    }
    await waitUntil(() => log.opened === 3, 2000, "three accepted");
    let refusedClosed = false;
    await Bun.connect({ hostname: "127.0.0.1", port,
      socket: { data() {}, close() { refusedClosed = true; } } });
    await waitUntil(() => refusedClosed, 2000, "the fourth is closed by the server");
    expect(transport.refused).toBe(1);
    for (const socket of sockets) socket.end();
    await waitUntil(() => log.closed.length === 3, 2000, "closes");
  });

  test("a parked loop answers promptly: an echo after 50 ms of quiet takes well under 5 ms", async () => {
    // With DEFER_TASKRUN (the old default) a parked ring woke ~14 ms late on kernel 6.18.
    const transport = create();
    const { port } = echoServer(transport);
    let echoed = () => {};
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => echoed() } });
    const times: number[] = [];
    for (let i = 0; i < 11; i++) {
      await Bun.sleep(50); // long past the spin: the loop parks
      const started = performance.now();
      await withTimeout(new Promise<void>((resolve) => {
        echoed = resolve;
        socket.write("x");
      }), 2000, "the echo");
      times.push(performance.now() - started);
    }
    socket.end();
    times.sort((a, b) => a - b);
    expect(times[5]).toBeLessThan(5); // the median, ms
  });

  test("a park is not woken by the completions its own turns reaped: one park per quiet echo", async () => {
    // Each batch of completions signals the eventfd, also the sends a turn submitted and
    // reaped itself; before the drain, every echo after a quiet spell parked twice.
    const transport = create({ spinMicros: 0 });
    const { port } = echoServer(transport);
    let echoed = () => {};
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => echoed() } });
    await Bun.sleep(20);
    const rounds = 20;
    const parksBefore = transport.stats().parks;
    for (let i = 0; i < rounds; i++) {
      await withTimeout(new Promise<void>((resolve) => {
        echoed = resolve;
        socket.write("x");
      }), 2000, "the echo");
      await Bun.sleep(10); // quiet: the loop parks
    }
    const parks = transport.stats().parks - parksBefore;
    socket.end();
    expect(parks).toBeGreaterThanOrEqual(rounds);
    expect(parks).toBeLessThanOrEqual(rounds * 1.25);
  });

  test("receive memory is given back after a quiet second, and traffic after it is intact", async () => {
    const transport = create({ hugepages: "off", recvBufferCount: 256, recvBufferSize: 32 * 1024 });
    const { port } = echoServer(transport);
    await echoMany(port, 100, 64 * 1024); // touches every one of the 8 MiB of buffers
    const touched = vmRssKib();
    await waitUntil(() => transport.receiveTrims === 1, 4000, "the trim after a quiet second");
    expect(touched - vmRssKib()).toBeGreaterThan(4 * 1024); // KiB: at least half came back
    await echoMany(port, 20, 64 * 1024); // fresh pages fault in under the kernel's writes
    await Bun.sleep(1300);
    expect(transport.receiveTrims).toBe(2); // quiet again after the new traffic: once more
    await Bun.sleep(1300);
    expect(transport.receiveTrims).toBe(2); // nothing received since: nothing to give back
  });

  test("a paused connection's data survives the quiet-second trim intact", async () => {
    const transport = create({ hugepages: "off" });
    const received: number[] = [];
    let serverConn = -1;
    const listener = transport.listen({ hostname: "127.0.0.1", port: 0 }, {
      onOpen: (conn) => void (serverConn = conn),
      onData: (conn, data, start, end) => {
        for (let i = start; i < end; i++) received.push(data[i]);
        transport.pause(conn); // whatever comes next waits, held in a buffer or in the kernel
      },
      onDrain() {}, onEnd() {}, onClose() {},
    });
    const socket = await Bun.connect({ hostname: "127.0.0.1",
      port: transport.listenerPort(listener), socket: { data() {} } });
    await waitUntil(() => serverConn >= 0, 2000, "accepted");
    socket.write(new Uint8Array([1, 2]));
    await waitUntil(() => received.length === 2, 2000, "the first bytes");
    socket.write(new Uint8Array([7, 8, 9]));
    await Bun.sleep(1500); // a trim may run now; a buffer still held stops it
    transport.resume(serverConn);
    await waitUntil(() => received.length === 5, 2000, "delivery after resume");
    expect(received).toEqual([1, 2, 7, 8, 9]);
    socket.end();
  });

  test("pause holds data, resume delivers it in order", async () => {
    const transport = create();
    const received: number[] = [];
    let serverConn = -1;
    const listener = transport.listen({ hostname: "127.0.0.1", port: 0 }, {
      onOpen: (conn) => { serverConn = conn; transport.pause(conn); },
      onData: (_, data, start, end) => { for (let i = start; i < end; i++) received.push(data[i]); },
      onDrain() {}, onEnd() {}, onClose() {},
    });
    const socket = await Bun.connect({ hostname: "127.0.0.1",
      port: transport.listenerPort(listener), socket: { data() {} } });
    await waitUntil(() => serverConn >= 0, 2000, "accepted");
    socket.write(new Uint8Array([1, 2, 3]));
    await Bun.sleep(50);
    expect(received).toEqual([]);
    transport.resume(serverConn);
    socket.write(new Uint8Array([4, 5]));
    await waitUntil(() => received.length === 5, 2000, "delivery after resume");
    expect(received).toEqual([1, 2, 3, 4, 5]);
    socket.end();
  });

  test("abort resets the peer; graceful close flushes first", async () => {
    const transport = create();
    const big = pattern(300_000, 7);
    let mode: CloseMode = CloseMode.Graceful;
    const listener = transport.listen({ hostname: "127.0.0.1", port: 0 }, {
      onOpen: (conn) => {
        transport.send(conn, big, 0, big.length);
        transport.close(conn, mode);
      },
      onData() {}, onDrain() {}, onEnd() {}, onClose() {},
    });
    const port = transport.listenerPort(listener);
    const fetchAll = () => withTimeout(new Promise<number>((resolve) => {
      let total = 0;
      Bun.connect({ hostname: "127.0.0.1", port, socket: {
        data(_, chunk) { total += chunk.length; },
        close() { resolve(total); },
        error() { resolve(total); },
      } });
    }), 5000, "peer closed");
    expect(await fetchAll()).toBe(big.length);
    mode = CloseMode.Abort;
    expect(await fetchAll()).toBeLessThan(big.length);
  });

  test("the client side: CONNECT to a Bun server, and ECONNREFUSED on a closed port", async () => {
    const transport = create();
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: {
      data(socket, chunk) { socket.write(chunk); },
    } });
    try {
      const chunks: number[] = [];
      let opened = false;
      let closeReason = 1;
      const handler: TransportHandler = {
        onOpen: () => { opened = true; },
        onData: (_, data, start, end) => { for (let i = start; i < end; i++) chunks.push(data[i]); },
        onDrain() {}, onEnd() {},
        onClose: (_, reason) => { closeReason = reason; },
      };
      const conn = transport.connect("127.0.0.1", server.port, handler);
      // Bytes sent before the connection is up are queued and flushed on open.
      transport.send(conn, new Uint8Array([9, 8, 7]), 0, 3);
      await waitUntil(() => chunks.length === 3, 2000, "echo from Bun server");
      expect(opened).toBe(true);
      expect(chunks).toEqual([9, 8, 7]);
      transport.close(conn);
      await waitUntil(() => closeReason === 0, 2000, "closed");
      expect(transport.stats().connected).toBe(1);

      const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      const deadPort = probe.port;
      probe.stop(true);
      transport.connect("127.0.0.1", deadPort, handler);
      await waitUntil(() => closeReason === -ECONNREFUSED, 2000, "refused");
    } finally {
      server.stop(true);
    }
  });

  test("connect to a name or a bad port throws before taking a slot or a descriptor", () => {
    const transport = create({ maxConnections: 4 });
    const handler: TransportHandler = { onOpen() {}, onData() {}, onDrain() {}, onEnd() {}, onClose() {} };
    // Sockets open in this process (other threads may open and close other kinds meanwhile).
    const sockets = () => new Set(readdirSync("/proc/self/fd").map((fd) => {
      try { return readlinkSync(`/proc/self/fd/${fd}`); } catch { return ""; }
    }).filter((target) => target.startsWith("socket:")));
    const before = sockets();
    for (let i = 0; i < 10; i++) {
      for (const [host, port] of [["example.com", 80], ["::1", 80], ["127.0.0.1", 0], ["127.0.0.1", 70000]] as const) {
        expect(() => transport.connect(host, port, handler)).toThrow(/WS_ERR_BAD_ADDRESS|not an IPv4|port/);
      }
    }
    expect(transport.stats().connections).toBe(0);
    expect([...sockets()].filter((socket) => !before.has(socket))).toEqual([]);
    // All four slots are still there to take.
    for (let i = 0; i < 4; i++) expect(transport.connect("127.0.0.1", 9, handler)).toBeGreaterThanOrEqual(0);
  });

  test("works without liburing, through raw syscalls", () => {
    const result = Bun.spawnSync({
      cmd: [process.execPath, "-e", `
        const { uring } = await import(${JSON.stringify(import.meta.dir + "/../src/ffi/uring.ts")});
        const { UringRing } = await import(${JSON.stringify(import.meta.dir + "/../src/reactor/uring-ring.ts")});
        const ring = new UringRing({ entries: 8 });
        console.log(uring().source, ring.fd > 0);
        ring.close();`],
      env: { ...process.env, HIOLOAD_NO_LIBURING: "1" },
      timeout: 10_000,
    });
    expect(result.stdout.toString().trim()).toBe("syscall true");
  });
});
