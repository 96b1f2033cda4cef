/**
 * The epoll backend: the transport contract suite (the same one io_uring, the fake and
 * Bun.listen run), and what only epoll does (edge-triggered reads under a read budget,
 * sends that wait for EPOLLOUT, parking through the helper thread).
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { TransportHandler } from "../src/api/transport.ts";
import { EpollTransport, type EpollTransportOptions } from "../src/reactor/epoll-transport.ts";
import { patternBytes } from "./support/bytes.ts";
import { echoOnce } from "./support/tcp-clients.ts";
import { runTransportContract } from "./support/transport-contract.ts";
import { waitFor, withTimeout } from "./support/wait-for.ts";

const skipReason = process.platform === "linux" ? "" : `not Linux (${process.platform})`;
if (skipReason) console.log(`[skip] epoll transport tests: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

if (!skipReason) {
  runTransportContract({
    name: "epoll",
    create: () => new EpollTransport({ maxConnections: 1024, sendChunkCount: 1024 }),
    createWith: (options) => new EpollTransport(options),
    sharedReceiveBuffer: true,
  });
  runTransportContract({
    name: "epoll, state growing from 2 connections",
    create: () => new EpollTransport({ maxConnections: 1024, initialConnections: 2, sendChunkCount: 1024 }),
    createWith: (options) => new EpollTransport({ initialConnections: 2, ...options }),
    sharedReceiveBuffer: true,
  });
}

const live: EpollTransport[] = [];
afterEach(async () => {
  for (const transport of live.splice(0)) await withTimeout(transport.dispose(), 5000, "dispose");
});

function create(options: EpollTransportOptions = {}): EpollTransport {
  const transport = new EpollTransport({ maxConnections: 4096, sendChunkCount: 1024, ...options });
  live.push(transport);
  return transport;
}

function echoServer(transport: EpollTransport) {
  const closes: number[] = [];
  const handler: TransportHandler = {
    onOpen() {},
    onData: (conn, data, start, end) => void transport.send(conn, data, start, end),
    onDrain() {},
    onEnd() {},
    onClose: (_, reason) => void closes.push(reason),
  };
  const listener = transport.listen({ hostname: "127.0.0.1", port: 0 }, handler);
  return { port: transport.listenerPort(listener), closes };
}

suite("epoll transport", () => {
  test("100 connections echo 256 KiB each with Bun's TCP client", async () => {
    const transport = create();
    const { port, closes } = echoServer(transport);
    const payloads = Array.from({ length: 100 }, (_, i) => patternBytes(256 * 1024, i));
    const echoed = await Promise.all(payloads.map((payload) => echoOnce(port, payload, 15_000)));
    echoed.forEach((bytes, i) => expect(bytes).toEqual(payloads[i]));
    await waitFor(() => closes.length === 100, 5000, "100 closes");
    expect(transport.stats().connections).toBe(0);
    expect(transport.stats().sendBuffers.inUse).toBe(0);
  }, 30_000);

  test("an idle transport parks: timers run on time, the CPU rests, and a wake-up is prompt", async () => {
    const transport = create();
    const { port } = echoServer(transport);
    await Bun.sleep(50);
    const cpuBefore = process.cpuUsage();
    await Bun.sleep(200);
    const cpu = process.cpuUsage(cpuBefore);
    expect(transport.stats().parks).toBeGreaterThan(0);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(40); // a polling loop would burn ~200 ms
    const started = performance.now();
    expect(await echoOnce(port, patternBytes(100, 1))).toEqual(patternBytes(100, 1));
    expect(performance.now() - started).toBeLessThan(500);
  });
});
