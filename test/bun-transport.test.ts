/**
 * The Bun.listen/Bun.connect transport (the portable fallback), forced here on Linux: the
 * shared contract suite, then what the contract does not pin: partial writes to a peer that
 * does not read, -ENOBUFS at the send-memory cap, pause stopping Bun's reads, resets seen by a
 * plain Bun peer, refusal over maxConnections, 1,000 connections echoing, no handler inside
 * another; and the send queues alone, against a kernel that takes random amounts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ECANCELED, ENOBUFS, EPIPE } from "../src/api/errno.ts";
import {
  CloseMode, TRANSPORT_DEFAULTS, type TransportHandler, type TransportOptions,
} from "../src/api/transport.ts";
import { Prng } from "../src/fake/prng.ts";
import { BunConnection, BunConnState } from "../src/reactor/bun-connection.ts";
import { BunOutbound, Flushed } from "../src/reactor/bun-outbound.ts";
import { BunTransport } from "../src/reactor/bun-transport.ts";
import { concatBytes, firstDifference, patternBytes } from "./support/bytes.ts";
import { echoOnce } from "./support/tcp-clients.ts";
import { runTransportContract } from "./support/transport-contract.ts";
import { waitFor, withTimeout } from "./support/wait-for.ts";

runTransportContract({
  name: "bun (Bun.listen)",
  create: () => new BunTransport({ maxConnections: 1024, sendChunkCount: 2048 }),
  createWith: (options) => new BunTransport(options),
});

const LOOPBACK = "127.0.0.1";
const live: BunTransport[] = [];
afterEach(async () => {
  for (const transport of live.splice(0)) await withTimeout(transport.dispose(), 5000, "dispose");
});

function create(options: TransportOptions = {}): BunTransport {
  const transport = new BunTransport({ maxConnections: 4096, ...options });
  live.push(transport);
  return transport;
}

/** A handler whose every callback is a no-op unless given. */
function handlerWith(events: Partial<TransportHandler>): TransportHandler {
  return { onOpen() {}, onData() {}, onDrain() {}, onEnd() {}, onClose() {}, ...events };
}

function echoServer(transport: BunTransport) {
  const closes: number[] = [];
  const listener = transport.listen({ hostname: LOOPBACK, port: 0 }, handlerWith({
    onData: (conn, data, start, end) => {
      expect(transport.send(conn, data, start, end)).toBe(end - start);
    },
    onClose: (_, reason) => void closes.push(reason),
  }));
  return { port: transport.listenerPort(listener), closes };
}

/** A raw Bun client that reads nothing until `reading()`; it collects what it reads. */
async function lazyPeer(port: number) {
  const chunks: Uint8Array[] = [];
  let received = 0;
  let closeError: string | null = null;
  let closed = false;
  const socket = await Bun.connect({ hostname: LOOPBACK, port, socket: {
    open: (s) => s.pause(),
    data: (_, chunk) => {
      chunks.push(Uint8Array.prototype.slice.call(chunk));
      received += chunk.length;
    },
    close: (_, error) => {
      closed = true;
      closeError = (error as { code?: string } | undefined)?.code ?? null;
    },
  } });
  return {
    socket,
    get received() { return received; },
    get closed() { return closed; },
    get closeError() { return closeError; },
    bytes: () => concatBytes(chunks),
    reading: () => socket.resume(),
  };
}

/** The server's id for the next connection it accepts, once accepted. */
function acceptOne(transport: BunTransport, events: Partial<TransportHandler> = {}) {
  const state = { conn: -1, drains: 0, closes: [] as number[] };
  const listener = transport.listen({ hostname: LOOPBACK, port: 0 }, handlerWith({
    onDrain: () => void state.drains++,
    onClose: (_, reason) => void state.closes.push(reason),
    ...events,
    onOpen: (conn, id) => {
      state.conn = conn;
      events.onOpen?.(conn, id);
    },
  }));
  return { state, port: transport.listenerPort(listener) };
}

describe("bun transport", () => {
  test("a peer that does not read: writes go partial, the rest waits for Bun's drain", async () => {
    const transport = create();
    const { state, port } = acceptOne(transport);
    const peer = await lazyPeer(port);
    await waitFor(() => state.conn >= 0, 2000, "accepted");
    const payload = patternBytes(32 << 20, 3); // far more than loopback socket buffers hold
    const piece = 256 * 1024;
    for (let offset = 0; offset < payload.length; offset += piece) {
      expect(transport.send(state.conn, payload, offset, offset + piece)).toBe(piece);
    }
    // The kernel took what it could; the rest stays queued, counted in send memory.
    await waitFor(() => transport.stats().bytesOut > 0, 2000, "a first write");
    await Bun.sleep(50);
    const stuck = transport.bufferedAmount(state.conn);
    expect(stuck).toBeGreaterThan(0);
    expect(stuck).toBeLessThan(payload.length);
    expect(transport.stats().bytesOut).toBe(payload.length - stuck);
    const chunks = Math.ceil(stuck / TRANSPORT_DEFAULTS.sendChunkSize);
    expect(transport.stats().sendBuffers.inUse).toBe(chunks);
    expect(state.drains).toBe(0);
    peer.reading();
    await waitFor(() => peer.received === payload.length, 10_000,
      () => `peer read ${peer.received} of ${payload.length}`);
    expect(firstDifference(peer.bytes(), payload)).toBeNull();
    await waitFor(() => state.drains === 1, 2000, "onDrain once the queue is empty");
    expect(transport.bufferedAmount(state.conn)).toBe(0);
    expect(transport.stats().sendBuffers.inUse).toBe(0);
    peer.socket.end();
    await waitFor(() => state.closes.length === 1, 2000, "server onClose");
    expect(state.closes).toEqual([0]);
  });

  test("send memory is the cap: -ENOBUFS on any connection until bytes leave", async () => {
    const chunk = 1024;
    const transport = create({ sendChunkSize: chunk, sendChunkCount: 64 }); // 64 KiB for all
    const conns: number[] = [];
    let drains = 0;
    const listener = transport.listen({ hostname: LOOPBACK, port: 0 }, handlerWith({
      onOpen: (conn) => void conns.push(conn),
      onDrain: () => void drains++,
    }));
    const port = transport.listenerPort(listener);
    const peers = [await lazyPeer(port), await lazyPeer(port)];
    await waitFor(() => conns.length === 2, 2000, "two accepted");
    const [first, second] = conns;
    const bytes = patternBytes(chunk, 4);
    // Within one turn nothing is written yet: exactly 64 chunks fit.
    for (let i = 0; i < 40; i++) expect(transport.send(first, bytes, 0, chunk)).toBe(chunk);
    for (let i = 0; i < 24; i++) expect(transport.send(second, bytes, 0, chunk)).toBe(chunk);
    expect(transport.send(first, bytes, 0, 1)).toBe(-ENOBUFS); // a byte needs a 65th chunk
    expect(transport.send(second, bytes, 0, chunk)).toBe(-ENOBUFS);
    expect(transport.sendUrgent(second, bytes, 0, 1)).toBe(-ENOBUFS);
    expect(transport.sendPair(second, bytes, 0, 1, bytes, 0, 1)).toBe(-ENOBUFS);
    expect(transport.stats().sendBuffers)
      .toMatchObject({ inUse: 64, capacity: 64, slotSize: chunk });
    // The kernel takes 64 KiB at once; sends work again and keep working until it is full.
    await waitFor(() => transport.stats().sendBuffers.inUse === 0, 2000, "flushed to the kernel");
    let accepted = 64 * chunk;
    let bufferedAtRefusal = -1;
    for (let round = 0; round < 2000 && bufferedAtRefusal < 0; round++) {
      for (let i = 0; i < 64 && bufferedAtRefusal < 0; i++) {
        const result = transport.send(first, bytes, 0, chunk);
        if (result === -ENOBUFS) bufferedAtRefusal = transport.bufferedAmount(first);
        else accepted += result;
      }
      await Bun.sleep(1);
    }
    expect(accepted).toBeGreaterThan(64 * chunk); // sends work again once bytes left
    // Refused exactly when one more chunk would pass the cap.
    expect(bufferedAtRefusal).toBeGreaterThan(63 * chunk);
    expect(bufferedAtRefusal).toBeLessThanOrEqual(64 * chunk);
    // A reading peer gets every accepted byte, in order; memory comes back.
    for (const peer of peers) peer.reading();
    const expected = accepted - 24 * chunk;
    await waitFor(() => peers[0].received === expected, 10_000,
      () => `first peer read ${peers[0].received} of ${expected}`);
    const got = peers[0].bytes();
    for (let offset = 0; offset < got.length; offset += chunk) {
      expect(firstDifference(got.subarray(offset, offset + chunk), bytes)).toBeNull();
    }
    await waitFor(() => transport.stats().sendBuffers.inUse === 0 && drains >= 2, 2000, "drained");
  });

  test("pause stops Bun reading: the peer's writes back up, nothing held in memory", async () => {
    const transport = create();
    let received = 0;
    const { state, port } = acceptOne(transport, {
      onOpen: (conn) => transport.pause(conn),
      onData: (_, __, start, end) => void (received += end - start),
    });
    const socket = await Bun.connect({ hostname: LOOPBACK, port, socket: { data() {} } });
    await waitFor(() => state.conn >= 0, 2000, "accepted");
    const block = new Uint8Array(1 << 20);
    let written = 0;
    for (let i = 0; i < 256; i++) {
      const n = socket.write(block);
      if (n <= 0) break;
      written += n;
      if (n < block.length) break;
      await Bun.sleep(0);
    }
    expect(written).toBeLessThan(256 << 20); // TCP pushed back: nobody read
    await Bun.sleep(50);
    expect(received).toBe(0);
    expect(transport.stats().bytesIn).toBe(0);
    expect(transport.stats().recvBuffers.inUse).toBe(0);
    transport.resume(state.conn);
    await waitFor(() => received === written, 5000, () => `${received} of ${written} bytes`);
    socket.end();
  });

  test("abort resets: a plain Bun peer sees ECONNRESET, after the bytes sent before", async () => {
    const transport = create();
    const { state, port } = acceptOne(transport);
    const peer = await lazyPeer(port);
    peer.reading();
    await waitFor(() => state.conn >= 0, 2000, "accepted");
    const hello = new TextEncoder().encode("hello");
    transport.send(state.conn, hello, 0, hello.length);
    await waitFor(() => peer.received === 5, 2000, "hello");
    transport.close(state.conn, CloseMode.Abort);
    expect(transport.send(state.conn, hello, 0, 1)).toBe(-EPIPE);
    await waitFor(() => peer.closed, 2000, "peer closed");
    expect(peer.closeError).toBe("ECONNRESET");
    await waitFor(() => state.closes.length === 1, 2000, "onClose");
    expect(state.closes).toEqual([0]);
  });

  test("accepts over maxConnections are closed at once, the others keep working", async () => {
    const transport = create({ maxConnections: 3 });
    const { port, closes } = echoServer(transport);
    const sockets = [];
    for (let i = 0; i < 3; i++) {
      sockets.push(await Bun.connect({ hostname: LOOPBACK, port, socket: { data() {} } }));
    }
    await waitFor(() => transport.stats().connections === 3, 2000, "three accepted");
    let refusedClosed = false;
    await Bun.connect({ hostname: LOOPBACK, port,
      socket: { data() {}, close() { refusedClosed = true; } } });
    await waitFor(() => refusedClosed, 2000, "the fourth is closed by the server");
    expect(transport.refused).toBe(1);
    expect(await echoOnce(port, patternBytes(1000, 9)).catch(String)).toMatch(/closed after 0/);
    for (const socket of sockets) socket.end();
    await waitFor(() => closes.length === 3, 2000, "closes");
    // The slots are free again.
    expect(await echoOnce(port, patternBytes(1000, 9))).toEqual(patternBytes(1000, 9));
  });

  test("reusePort: two transports share a port, each connection goes to one of them", async () => {
    const first = create();
    const second = create();
    const echo = (transport: BunTransport): TransportHandler => handlerWith({
      onData: (conn, data, start, end) => void transport.send(conn, data, start, end),
    });
    const listener = first.listen({ hostname: LOOPBACK, port: 0, reusePort: true }, echo(first));
    const port = first.listenerPort(listener);
    second.listen({ hostname: LOOPBACK, port, reusePort: true }, echo(second));
    for (let i = 0; i < 20; i++) {
      expect(await echoOnce(port, patternBytes(100, i))).toEqual(patternBytes(100, i));
    }
    expect(first.stats().accepted + second.stats().accepted).toBe(20);
  });

  test("echoes over 1,000 connections at once", async () => {
    const transport = create();
    const { port, closes } = echoServer(transport);
    const payloads = Array.from({ length: 1000 }, (_, i) => patternBytes(512, i + 1));
    const echoed = await Promise.all(payloads.map((p) => echoOnce(port, p, 20_000)));
    for (let i = 0; i < payloads.length; i++) expect(echoed[i]).toEqual(payloads[i]);
    await waitFor(() => closes.length === 1000, 10_000, () => `${closes.length} of 1000 closes`);
    const stats = transport.stats();
    expect(stats).toMatchObject({ backend: "bun", accepted: 1000, connections: 0, closed: 1000 });
    expect(stats.bytesOut).toBe(1000 * 512);
    expect(stats.sendBuffers.inUse).toBe(0);
  });

  test("close before the connect completed: onClose(0), no onOpen, bytes dropped", async () => {
    const server = create();
    const { state, port } = acceptOne(server);
    const client = create();
    const events: string[] = [];
    const conn = client.connect(LOOPBACK, port, handlerWith({
      onOpen: () => void events.push("open"),
      onClose: (_, reason) => void events.push(`close ${reason}`),
    }));
    expect(client.send(conn, new Uint8Array(3), 0, 3)).toBe(3);
    client.close(conn);
    expect(events).toEqual([]); // never inside close()
    await waitFor(() => events.length === 1, 2000, "onClose");
    expect(events).toEqual(["close 0"]);
    expect(client.stats().connections).toBe(0);
    // The server may have accepted it (the kernel completes handshakes): it is reset, empty.
    await Bun.sleep(20);
    await waitFor(() => state.closes.length === server.stats().accepted, 2000, "server closes");
    expect(server.stats().bytesIn).toBe(0);
  });

  test("no handler runs inside another: close and dispose from a handler wait", async () => {
    const server = create();
    let depth = 0;
    const nested: string[] = [];
    const conns: number[] = [];
    const closes: number[] = [];
    const guarded = <A extends unknown[]>(name: string, body: (...args: A) => void) =>
      (...args: A) => {
        if (depth > 0) nested.push(name);
        depth++;
        try {
          body(...args);
        } finally {
          depth--;
        }
      };
    const listener = server.listen({ hostname: LOOPBACK, port: 0 }, {
      onOpen: guarded("open", (conn: number) => void conns.push(conn)),
      onData: guarded("data", (conn: number) => {
        // The first byte aborts every other connection, then disposes the whole transport.
        for (const other of conns) if (other !== conn) server.close(other, CloseMode.Abort);
        void server.dispose();
        expect(server.send(conn, new Uint8Array(1), 0, 1)).toBe(-EPIPE);
      }),
      onDrain: guarded("drain", () => {}),
      onEnd: guarded("end", () => {}),
      onClose: guarded("close", (_: number, reason: number) => void closes.push(reason)),
    });
    const port = server.listenerPort(listener);
    const peers = [];
    for (let i = 0; i < 3; i++) peers.push(await lazyPeer(port));
    await waitFor(() => conns.length === 3, 2000, "three accepted");
    peers[1].reading();
    peers[1].socket.write("x");
    await withTimeout(server.dispose(), 2000, "dispose from a handler");
    expect(nested).toEqual([]);
    // The aborts were still due when dispose came: it promises ECANCELED to every connection.
    expect(closes).toEqual([-ECANCELED, -ECANCELED, -ECANCELED]);
    expect(server.stats().connections).toBe(0);
  });
});

describe("bun send queues", () => {
  /** A kernel that takes a random number of bytes per write (sometimes none). */
  function randomSink(prng: Prng) {
    const out: number[] = [];
    return {
      out,
      write(data: Uint8Array, offset: number, length: number): number {
        const taken = Math.min(length, prng.int(200));
        for (let i = 0; i < taken; i++) out.push(data[offset + i]);
        return taken;
      },
    };
  }

  test("urgent units land between sends, whatever the kernel takes; nothing lost", () => {
    const prng = new Prng(20240607);
    const outbound = new BunOutbound(1024, 1 << 16);
    const c = new BunConnection(0, handlerWith({}), -1, BunConnState.OPEN, "", outbound.cache);
    const sink = randomSink(prng);
    const lengths: number[] = [];
    let urgentSent = 0;
    for (let step = 0; step < 5000; step++) {
      if (prng.chance(0.1)) {
        // Urgent units: 3 bytes of 250..254, cycling, so their own order shows.
        const marker = new Uint8Array(3).fill(250 + (urgentSent++ % 5));
        expect(outbound.enqueue(c, marker, 0, 3, marker, 0, 0, true)).toBe(3);
      } else {
        const unit = new Uint8Array(1 + prng.int(60)).fill(lengths.length % 250);
        const split = prng.int(unit.length + 1); // as a header and a payload
        expect(outbound.enqueue(c, unit, 0, split, unit, split, unit.length, false))
          .toBe(unit.length);
        lengths.push(unit.length);
      }
      if (prng.chance(0.5)) outbound.flush(c, sink);
    }
    while (outbound.flush(c, sink) !== Flushed.ALL_OUT) { /* the kernel takes it in pieces */ }
    expect(c.buffered).toBe(0);
    expect(outbound.stats().inUse).toBe(0);
    // Walk the stream: urgent runs only at unit boundaries, every unit whole and in order.
    const out = sink.out;
    let at = 0;
    let urgentSeen = 0;
    const skipUrgent = () => {
      while (at < out.length && out[at] >= 250) {
        expect(out.slice(at, at + 3)).toEqual(Array(3).fill(250 + (urgentSeen++ % 5)));
        at += 3;
      }
    };
    lengths.forEach((length, k) => {
      skipUrgent();
      expect(out.slice(at, at + length)).toEqual(Array(length).fill(k % 250));
      at += length;
    });
    skipUrgent();
    expect(at).toBe(out.length);
    expect(urgentSeen).toBe(urgentSent);
  });

  test("after a direct send the kernel took part of, urgent bytes wait for its end", () => {
    const outbound = new BunOutbound(1024, 64);
    const c = new BunConnection(0, handlerWith({}), -1, BunConnState.OPEN, "", outbound.cache);
    const out: number[] = [];
    let room = 100;
    const sink = { write: (data: Uint8Array, offset: number, length: number) => {
      const taken = Math.min(length, room);
      for (let i = 0; i < taken; i++) out.push(data[offset + i]);
      return taken;
    } };
    const big = new Uint8Array(5000).fill(1);
    expect(outbound.sendDirect(c, sink, big, 0, big.length)).toBe(5000);
    expect(c.buffered).toBe(4900);
    expect(c.awaitingDrain).toBe(true);
    expect(outbound.stats().inUse).toBe(5); // ceil(4900 / 1024)
    expect(outbound.enqueue(c, Uint8Array.of(2, 2), 0, 2, big, 0, 0, true)).toBe(2);
    expect(outbound.enqueue(c, Uint8Array.of(3), 0, 1, big, 0, 0, false)).toBe(1);
    room = 1 << 20;
    expect(outbound.flush(c, sink)).toBe(Flushed.ALL_OUT);
    expect(out).toEqual([...Array(5000).fill(1), 2, 2, 3]);
    // More than send memory holds: refused before anything is written.
    out.length = 0;
    expect(outbound.sendDirect(c, sink, new Uint8Array(65 * 1024), 0, 65 * 1024)).toBe(-ENOBUFS);
    expect(outbound.sendDirect(c, { write: () => -1 }, big, 0, 10)).toBe(-EPIPE);
    expect(out).toEqual([]);
    expect(outbound.stats().inUse).toBe(0);
  });

  test("a queue emptied by the kernel gives its buffer and its send memory back", () => {
    const outbound = new BunOutbound(1000, 10);
    const c = new BunConnection(0, handlerWith({}), -1, BunConnState.OPEN, "", outbound.cache);
    const bytes = patternBytes(2500, 1);
    expect(outbound.enqueue(c, bytes, 0, 2500, bytes, 0, 0, false)).toBe(2500);
    expect(outbound.stats().inUse).toBe(3); // ceil(2500 / 1000)
    const sink = { out: 0, write: (_: Uint8Array, __: number, length: number) => {
      const taken = Math.min(length, 1200);
      sink.out += taken;
      return taken;
    } };
    // A short write means the kernel is full: wait for Bun's drain, memory follows the queue.
    expect(outbound.flush(c, sink)).toBe(Flushed.WAITING);
    expect(outbound.stats().inUse).toBe(2); // 1300 bytes left
    expect(outbound.flush(c, sink)).toBe(Flushed.WAITING);
    expect(outbound.stats().inUse).toBe(1);
    expect(outbound.flush(c, sink)).toBe(Flushed.ALL_OUT);
    expect(sink.out).toBe(2500);
    expect(outbound.stats()).toMatchObject({ inUse: 0, highWater: 3 });
    // A closed socket: nothing consumed, the caller aborts.
    outbound.enqueue(c, bytes, 0, 10, bytes, 0, 0, false);
    expect(outbound.flush(c, { write: () => -1 })).toBe(Flushed.CLOSED);
    expect(c.buffered).toBe(10);
    outbound.drop(c);
    expect(outbound.stats().inUse).toBe(0);
  });
});
