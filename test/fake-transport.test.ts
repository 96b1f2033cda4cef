/**
 * FakeTransport: the shared transport contract (autoRun, on a plain and on a hostile network),
 * then fake-specific tests driven turn by turn (autoRun: false) for determinism and faults.
 * Set HIOLOAD_FAKE_SEED to replay a failing seed; every failure message carries its seed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { CloseMode, TRANSPORT_DEFAULTS } from "../src/api/transport.ts";
import {
  ECANCELED, ECONNREFUSED, ECONNRESET, EMFILE, ENOBUFS, EPIPE,
} from "../src/api/errno.ts";
import { FakeNetwork, POISON_BYTE, type FakeNetworkOptions } from "../src/fake/fake-network.ts";
import { FakeTransport, type FakeTransportOptions } from "../src/fake/fake-transport.ts";
import { Prng } from "../src/fake/prng.ts";
import { firstDifference, patternBytes } from "./support/bytes.ts";
import { RecordingHandler, type ConnectionRecord } from "./support/recording-handler.ts";
import { runTransportContract } from "./support/transport-contract.ts";

const BASE_SEED = Number(process.env.HIOLOAD_FAKE_SEED ?? 20240601);

// ---- the contract ----------------------------------------------------------------------------

const plainNetwork = new FakeNetwork({ seed: BASE_SEED });
runTransportContract({
  name: `fake, plain network (HIOLOAD_FAKE_SEED=${BASE_SEED})`,
  create: () => new FakeTransport(plainNetwork),
  createWith: (options) => new FakeTransport(plainNetwork, options),
});

// Split reads down to 1 byte, partial writes and delays, all at once: the contract still holds.
const hostileNetwork = new FakeNetwork({
  seed: BASE_SEED + 1,
  minChunk: 1,
  maxChunk: 3000,
  partialSendRatio: 0.3,
  delayTurnsMax: 3,
});
runTransportContract({
  name: `fake, hostile network (HIOLOAD_FAKE_SEED=${BASE_SEED})`,
  create: () => new FakeTransport(hostileNetwork),
  createWith: (options) => new FakeTransport(hostileNetwork, options),
});

afterAll(() => {
  // The hostile run must really have been hostile, or it proved nothing more than the plain one.
  const faults = hostileNetwork.faults;
  expect(faults.splitReads).toBeGreaterThan(0);
  expect(faults.partialSends).toBeGreaterThan(0);
  expect(faults.delayedWrites).toBeGreaterThan(0);
});

// ---- helpers for turn-by-turn tests ----------------------------------------------------------

/** Runs `body` and prefixes any failure with the seed, so the run can be replayed. */
function seeded(name: string, seed: number, body: (seed: number) => void | Promise<void>): void {
  test(`${name} (seed ${seed})`, async () => {
    try {
      await body(seed);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`[replay with HIOLOAD_FAKE_SEED=${seed}] ${message}`, { cause: error });
    }
  });
}

interface Rig {
  network: FakeNetwork;
  server: FakeTransport;
  client: FakeTransport;
  serverHandler: RecordingHandler;
  port: number;
}

/** A manual network, a server transport listening with `serverHandler`, a client transport. */
function rig(
  network: FakeNetworkOptions,
  makeServerHandler: (server: FakeTransport) => RecordingHandler,
  serverOptions: FakeTransportOptions = {},
): Rig {
  const net = new FakeNetwork({ autoRun: false, ...network });
  const server = new FakeTransport(net, serverOptions);
  const client = new FakeTransport(net);
  const serverHandler = makeServerHandler(server);
  const port = server.listenerPort(server.listen({ port: 0 }, serverHandler));
  return { network: net, server, client, serverHandler, port };
}

function connectOpen(setup: Rig, handler: RecordingHandler): ConnectionRecord {
  const record = handler.track(setup.client.connect("127.0.0.1", setup.port, handler));
  setup.network.runUntilIdle();
  expect(record.opened).toBe(true);
  return record;
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(firstDifference(actual, expected)).toBeNull();
}

// ---- fake-specific tests ---------------------------------------------------------------------

describe("Prng", () => {
  test("same seed gives the same sequence, different seeds differ", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const c = new Prng(43);
    const runA = Array.from({ length: 100 }, () => a.next());
    const runB = Array.from({ length: 100 }, () => b.next());
    const runC = Array.from({ length: 100 }, () => c.next());
    expect(runA).toEqual(runB);
    expect(runA).not.toEqual(runC);
    for (const value of runA) expect(value >>> 0).toBe(value);
  });

  test("int stays in range and chance follows its ratio", () => {
    const prng = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const value = prng.int(10);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(10);
      seen.add(value);
    }
    expect(seen.size).toBe(10);
    let hits = 0;
    for (let i = 0; i < 10_000; i++) if (prng.chance(0.25)) hits++;
    expect(hits).toBeGreaterThan(2200);
    expect(hits).toBeLessThan(2800);
    expect(prng.chance(0)).toBe(false);
    expect(prng.chance(1)).toBe(true);
  });
});

describe("FakeTransport, turn by turn", () => {
  /** A busy scenario with every kind of randomness; returns the event log with turn numbers. */
  function scenarioLog(seed: number): string[] {
    const log: string[] = [];
    let network: FakeNetwork | null = null;
    const line = (text: string) => log.push(`${network?.turn ?? 0}:${text}`);
    const setup = rig(
      { seed, minChunk: 1, maxChunk: 700, partialSendRatio: 0.3, delayTurnsMax: 3 },
      (server) => new RecordingHandler(server, { echo: true, log: line, label: "server" }),
    );
    network = setup.network;
    const client = new RecordingHandler(setup.client, { log: line, label: "client" });
    const records: ConnectionRecord[] = [];
    for (let i = 0; i < 5; i++) {
      records.push(client.track(setup.client.connect("127.0.0.1", setup.port, client)));
    }
    setup.network.step();
    for (let round = 0; round < 3; round++) {
      for (const record of records) {
        const payload = patternBytes(500 + round * 900 + record.conn * 13, seed + round);
        setup.client.send(record.conn, payload, 0, payload.length);
      }
      setup.network.step();
      setup.network.step();
    }
    for (const record of records) setup.client.close(record.conn);
    setup.network.runUntilIdle();
    expect(client.violations()).toEqual([]);
    expect(setup.serverHandler.violations()).toEqual([]);
    return log;
  }

  seeded("the same seed gives the same sequence of events", BASE_SEED, (seed) => {
    const first = scenarioLog(seed);
    const second = scenarioLog(seed);
    expect(first.length).toBeGreaterThan(50);
    expect(second).toEqual(first);
    // And the seed matters: another one interleaves differently.
    expect(scenarioLog(seed + 1)).not.toEqual(first);
  });

  seeded("1-byte chunks still echo exactly", BASE_SEED, (seed) => {
    const setup = rig({ seed, minChunk: 1, maxChunk: 1 },
      (server) => new RecordingHandler(server, { echo: true }));
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const payload = patternBytes(3000, seed);
    expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(3000);
    setup.network.runUntilIdle();
    expectSameBytes(RecordingHandler.received(record), payload);
    expect(record.chunks.every((chunk) => chunk.length === 1)).toBe(true);
    expect(setup.serverHandler.all[0].chunks.length).toBe(3000);
    expect(setup.network.faults.splitReads).toBeGreaterThan(0);
  });

  seeded("partial sends leave bytes buffered and still deliver everything", BASE_SEED, (seed) => {
    const setup = rig({ seed, partialSendRatio: 1 }, (server) => new RecordingHandler(server));
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const payload = patternBytes(100_000, seed);
    expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(100_000);
    // Nothing moves before a turn: callbacks and writes happen only inside turns.
    expect(setup.client.bufferedAmount(record.conn)).toBe(100_000);
    const buffered: number[] = [];
    for (let turn = 0; turn < 5 && setup.client.bufferedAmount(record.conn) > 0; turn++) {
      setup.network.step();
      buffered.push(setup.client.bufferedAmount(record.conn));
    }
    expect(buffered[0]).toBeGreaterThan(0);
    expect(buffered[0]).toBeLessThan(100_000);
    for (let i = 1; i < buffered.length; i++) expect(buffered[i]).toBeLessThan(buffered[i - 1]);
    setup.network.runUntilIdle();
    expect(setup.network.faults.partialSends).toBeGreaterThan(1);
    expect(record.drains).toBe(1);
    expect(setup.client.stats().sendBuffers.inUse).toBe(0);
    expectSameBytes(RecordingHandler.received(setup.serverHandler.all[0]), payload);
  });

  seeded("injected resets close both ends with ECONNRESET", BASE_SEED, (seed) => {
    const setup = rig({ seed, resetRatio: 0.15, maxChunk: 8192 },
      (server) => new RecordingHandler(server, { echo: true }));
    const size = 64 * 1024;
    const client = new RecordingHandler(setup.client, {
      hooks: {
        data: (conn, _data, _start, _end, record) => {
          if (record.bytesReceived === size) setup.client.close(conn);
        },
      },
    });
    const records: ConnectionRecord[] = [];
    for (let i = 0; i < 20; i++) {
      records.push(client.track(setup.client.connect("127.0.0.1", setup.port, client)));
    }
    setup.network.step();
    for (const record of records) {
      const payload = patternBytes(size, record.conn);
      for (let offset = 0; offset < size; offset += 16 * 1024) {
        setup.client.send(record.conn, payload, offset, offset + 16 * 1024);
      }
    }
    setup.network.runUntilIdle();
    const resets = setup.network.faults.resets;
    const isReset = (record: ConnectionRecord) => record.closeReason === -ECONNRESET;
    const clientResets = records.filter(isReset).length;
    const serverResets = setup.serverHandler.all.filter(isReset).length;
    expect(resets).toBeGreaterThan(0);
    expect(resets).toBeLessThan(20);
    expect(clientResets).toBe(resets);
    expect(serverResets).toBe(resets);
    for (const record of records) {
      if (record.closeReason === -ECONNRESET) continue;
      expect(record.closeReason).toBe(0);
      expectSameBytes(RecordingHandler.received(record), patternBytes(size, record.conn));
    }
    expect(setup.server.stats().connections).toBe(0);
    expect(setup.client.stats().connections).toBe(0);
    expect(client.violations()).toEqual([]);
  });

  seeded("receive buffer exhaustion stalls delivery, then recovers", BASE_SEED, (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server),
      { recvBufferCount: 4, recvBufferSize: 1024 });
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    expect(setup.server.holdRecvBuffers(10)).toBe(4);
    const payload = patternBytes(10_000, seed);
    setup.client.send(record.conn, payload, 0, payload.length);
    // No buffer: nothing can progress, so the network goes idle instead of spinning.
    setup.network.runUntilIdle();
    const stalled = setup.server.stats();
    expect(stalled.recvBufferStalls).toBeGreaterThan(0);
    expect(stalled.recvBuffers.inUse).toBe(4);
    expect(stalled.bytesIn).toBe(0);
    expect(setup.serverHandler.all[0].bytesReceived).toBe(0);
    setup.server.releaseRecvBuffers();
    setup.network.runUntilIdle();
    const recovered = setup.server.stats();
    expect(recovered.recvBuffers.inUse).toBe(0);
    expect(recovered.recvBuffers.highWater).toBe(4);
    expect(recovered.bytesIn).toBe(10_000);
    expect(recovered.recvBufferStalls).toBe(stalled.recvBufferStalls);
    expectSameBytes(RecordingHandler.received(setup.serverHandler.all[0]), payload);
    // Deliveries respect the buffer size.
    expect(Math.max(...setup.serverHandler.all[0].chunks.map((c) => c.length))).toBe(1024);
  });

  seeded("poisoning catches a view kept past onData", BASE_SEED, (seed) => {
    const kept: Uint8Array[] = [];
    const starts: number[] = [];
    let slotLength = 0;
    const setup = rig({ seed, maxChunk: 500 }, (server) => new RecordingHandler(server, {
      hooks: {
        data: (_conn, data, start, end) => {
          kept.push(data.subarray(start, end)); // the bug under test: keeping the view
          starts.push(start);
          slotLength = data.length;
        },
      },
    }));
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const payload = patternBytes(5000, seed);
    setup.client.send(record.conn, payload, 0, payload.length);
    setup.network.runUntilIdle();
    expect(kept.length).toBeGreaterThan(1);
    for (const view of kept) expect(view.every((byte) => byte === POISON_BYTE)).toBe(true);
    expectSameBytes(RecordingHandler.received(setup.serverHandler.all[0]), payload);
    // The view is the whole slot at a random place: handlers must honour start/end.
    expect(slotLength).toBe(TRANSPORT_DEFAULTS.recvBufferSize);
    expect(starts.some((start) => start > 0)).toBe(true);
  });

  seeded("maxConnections refuses the accept over the limit", BASE_SEED, (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server), { maxConnections: 2 });
    const client = new RecordingHandler(setup.client);
    const records = [0, 1, 2].map(() =>
      client.track(setup.client.connect("127.0.0.1", setup.port, client)));
    setup.network.runUntilIdle();
    expect(records.map((r) => r.opened)).toEqual([true, true, false]);
    expect(records[2].closeReason).toBe(-ECONNREFUSED);
    expect(setup.network.faults.refusedOverLimit).toBe(1);
    expect(setup.server.stats().connections).toBe(2);
    expect(setup.server.stats().accepted).toBe(2);
    // A freed slot is reused for the next accept.
    const freed = setup.serverHandler.all[0].conn;
    setup.client.close(records[0].conn, CloseMode.Abort);
    setup.network.runUntilIdle();
    const again = connectOpen(setup, client);
    expect(again.opened).toBe(true);
    expect(setup.serverHandler.all[setup.serverHandler.all.length - 1].conn).toBe(freed);
  });

  seeded("delays hold deliveries back without reordering", BASE_SEED, (seed) => {
    const delayTurnsMax = 4;
    const deliveries: { turn: number; bytes: Uint8Array }[] = [];
    let network: FakeNetwork | null = null;
    const setup = rig({ seed, delayTurnsMax }, (server) => new RecordingHandler(server, {
      hooks: {
        data: (_conn, data, start, end) => {
          deliveries.push({ turn: network!.turn, bytes: data.slice(start, end) });
        },
      },
    }));
    network = setup.network;
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const sentAt: number[] = [];
    for (let i = 0; i < 40; i++) {
      setup.client.send(record.conn, new Uint8Array([i]), 0, 1);
      sentAt.push(setup.network.turn + 1); // written in the next turn
      setup.network.step();
    }
    setup.network.runUntilIdle();
    const stream: number[] = [];
    const latency: number[] = [];
    for (const delivery of deliveries) {
      for (const byte of delivery.bytes) {
        stream.push(byte);
        latency.push(delivery.turn - sentAt[byte]);
      }
    }
    expect(stream).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(setup.network.faults.delayedWrites).toBeGreaterThan(0);
    expect(Math.max(...latency)).toBeGreaterThan(0);
    expect(Math.max(...latency)).toBeLessThanOrEqual(delayTurnsMax);
    expect(Math.min(...latency)).toBeGreaterThanOrEqual(0);
  });

  seeded("send memory exhaustion answers -ENOBUFS, then frees", BASE_SEED, (seed) => {
    const net = new FakeNetwork({ seed, autoRun: false });
    const server = new FakeTransport(net);
    const client = new FakeTransport(net, { sendChunkSize: 1024, sendChunkCount: 4 });
    const serverHandler = new RecordingHandler(server);
    const port = server.listenerPort(server.listen({ port: 0 }, serverHandler));
    const clientHandler = new RecordingHandler(client);
    const record = clientHandler.track(client.connect("127.0.0.1", port, clientHandler));
    net.runUntilIdle();
    const bytes = patternBytes(4096, seed);
    expect(client.send(record.conn, bytes, 0, 4096)).toBe(4096);
    expect(client.send(record.conn, bytes, 0, 1)).toBe(-ENOBUFS);
    expect(client.stats().sendBuffers.inUse).toBe(4);
    expect(client.bufferedAmount(record.conn)).toBe(4096);
    net.runUntilIdle();
    expect(client.stats().sendBuffers.inUse).toBe(0);
    expect(client.stats().sendBuffers.highWater).toBe(4);
    expect(client.send(record.conn, bytes, 0, 1)).toBe(1);
    net.runUntilIdle();
    expect(serverHandler.all[0].bytesReceived).toBe(4097);
  });

  seeded("abort drops queued bytes; the peer gets ECONNRESET", BASE_SEED, (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server));
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const payload = patternBytes(100_000, seed);
    setup.client.send(record.conn, payload, 0, payload.length);
    setup.client.close(record.conn, CloseMode.Abort);
    expect(setup.client.send(record.conn, payload, 0, 1)).toBe(-EPIPE);
    expect(record.closeReason).toBeNull(); // onClose comes in a turn, never inside close()
    setup.network.runUntilIdle();
    expect(record.closeReason).toBe(0);
    expect(setup.serverHandler.all[0].closeReason).toBe(-ECONNRESET);
    expect(setup.serverHandler.all[0].bytesReceived).toBe(0);
    expect(setup.client.stats().bytesOut).toBe(0);
  });

  seeded("a paused connection keeps its data and its EOF until resume", BASE_SEED, (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server, {
      hooks: { open: (conn) => server.pause(conn) },
    }));
    const server = setup.server;
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    const payload = patternBytes(600_000, seed); // more than the pipe holds
    setup.client.send(record.conn, payload, 0, payload.length);
    setup.client.close(record.conn);
    setup.network.runUntilIdle();
    const serverRecord = setup.serverHandler.all[0];
    expect(serverRecord.bytesReceived).toBe(0);
    expect(serverRecord.ended).toBe(false);
    // Backpressure: the pipe is full, so the rest waits in the client's queue.
    expect(setup.client.bufferedAmount(record.conn)).toBeGreaterThan(0);
    expect(record.closeReason).toBeNull();
    server.resume(serverRecord.conn);
    setup.network.runUntilIdle();
    expectSameBytes(RecordingHandler.received(serverRecord), payload);
    expect(serverRecord.events.filter((e) => e !== "data")).toEqual(["open", "end", "close"]);
    expect(record.closeReason).toBe(0);
  });

  seeded("after onEnd the connection closes: send works inside onEnd, then -EPIPE", BASE_SEED,
    (seed) => {
      const sentInEnd: number[] = [];
      const setup = rig({ seed }, (server) => new RecordingHandler(server, {
        hooks: { end: (conn) => sentInEnd.push(server.send(conn, new Uint8Array(8), 0, 8)) },
      }));
      const client = new RecordingHandler(setup.client);
      const record = connectOpen(setup, client);
      setup.client.close(record.conn);
      const serverRecord = setup.serverHandler.all[0];
      for (let turn = 0; turn < 10 && !serverRecord.ended; turn++) setup.network.step();
      expect(sentInEnd).toEqual([8]);
      // onEnd returned: the transport is closing this end, onClose comes in a later turn.
      expect(serverRecord.closeReason).toBeNull();
      expect(setup.server.send(serverRecord.conn, new Uint8Array(1), 0, 1)).toBe(-EPIPE);
      setup.network.runUntilIdle();
      expect(serverRecord.closeReason).toBe(0);
      expect(setup.server.stats().bytesOut).toBe(8);
    });

  seeded("connect edge cases: nobody listening, closed early, out of slots", BASE_SEED, (seed) => {
    const net = new FakeNetwork({ seed, autoRun: false });
    const client = new FakeTransport(net, { maxConnections: 2 });
    const handler = new RecordingHandler(client);
    const refused = handler.track(client.connect("127.0.0.1", 9, handler));
    const abandoned = handler.track(client.connect("127.0.0.1", 9, handler));
    // Both slots are taken until their onClose ran.
    expect(client.connect("127.0.0.1", 9, handler)).toBe(-EMFILE);
    expect(client.remoteAddress(refused.conn)).toBe("127.0.0.1:9");
    client.close(abandoned.conn);
    net.runUntilIdle();
    expect(refused.closeReason).toBe(-ECONNREFUSED);
    expect(abandoned.closeReason).toBe(0);
    expect(refused.opened || abandoned.opened).toBe(false);
    expect(client.stats().connections).toBe(0);
    expect(client.stats().closed).toBe(2);
    expect(client.remoteAddress(refused.conn)).toBe("");
    expect(() => client.connect("not-an-address", 80, handler)).toThrow(/not an IPv4 address/);
  });

  seeded("runUntilIdle throws on endless traffic (livelock guard)", BASE_SEED, (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server, { echo: true }));
    const client = new RecordingHandler(setup.client, { echo: true });
    const record = connectOpen(setup, client);
    setup.client.send(record.conn, new Uint8Array([1, 2, 3]), 0, 3);
    expect(() => setup.network.runUntilIdle(200)).toThrow(/livelock/);
  });

  seeded("reusePort shares a port; without it the port is taken", BASE_SEED, (seed) => {
    const net = new FakeNetwork({ seed, autoRun: false });
    const first = new FakeTransport(net);
    const second = new FakeTransport(net);
    const firstHandler = new RecordingHandler(first);
    const secondHandler = new RecordingHandler(second);
    const port = first.listenerPort(first.listen({ port: 0, reusePort: true }, firstHandler));
    second.listen({ port, reusePort: true }, secondHandler);
    expect(() => second.listen({ port }, secondHandler)).toThrow(/EADDRINUSE/);
    const client = new FakeTransport(net);
    const clientHandler = new RecordingHandler(client);
    for (let i = 0; i < 20; i++) {
      clientHandler.track(client.connect("127.0.0.1", port, clientHandler));
    }
    net.runUntilIdle();
    expect(firstHandler.all.length + secondHandler.all.length).toBe(20);
    expect(firstHandler.all.length).toBeGreaterThan(0);
    expect(secondHandler.all.length).toBeGreaterThan(0);
  });

  seeded("dispose delivers ECANCELED in a turn and frees everything", BASE_SEED, async (seed) => {
    const setup = rig({ seed }, (server) => new RecordingHandler(server));
    const client = new RecordingHandler(setup.client);
    const record = connectOpen(setup, client);
    let disposed = false;
    const done = setup.server.dispose().then(() => (disposed = true));
    expect(setup.server.dispose()).toBe(setup.server.dispose());
    expect(setup.serverHandler.all[0].closeReason).toBeNull();
    setup.network.runUntilIdle();
    await done;
    expect(disposed).toBe(true);
    expect(setup.serverHandler.all[0].closeReason).toBe(-ECANCELED);
    expect(record.closeReason).toBe(-ECONNRESET);
    expect(() => setup.server.listen({ port: 0 }, setup.serverHandler)).toThrow(/dispose/);
  });
});

describe("FakeTransport, a throwing handler (the rule every backend follows)", () => {
  type Hook = "open" | "data" | "drain" | "end" | "close";
  const handlerName = (hook: Hook) => `on${hook[0].toUpperCase()}${hook.slice(1)}`;

  interface Report {
    error: unknown;
    conn: number;
    /** Turn of the report and of the throw: the report ends the turn that threw. */
    turn: number;
    thrownInTurn: number;
    /** The throwing connection's events when the report came. */
    eventsAtReport: string[];
  }

  /** A server whose `hook` throws once; the client connects, talks, closes; turn by turn. */
  function throwIn(hook: Hook, seed: number) {
    const bug = new Error(`thrown in ${handlerName(hook)} on purpose`);
    const reports: Report[] = [];
    let thrownInTurn = -1;
    let network: FakeNetwork | null = null;
    let serverRecord: ConnectionRecord | null = null;
    const fail = (record: ConnectionRecord) => {
      serverRecord = record;
      thrownInTurn = network!.turn;
      throw bug;
    };
    const setup = rig({ seed }, (server) => new RecordingHandler(server, {
      hooks: {
        open: (conn, record) => {
          // Something to drain, and a throw in onOpen itself.
          if (hook === "drain") server.send(conn, new Uint8Array(8), 0, 8);
          if (hook === "open") fail(record);
        },
        data: (_conn, _data, _start, _end, record) => void (hook === "data" && fail(record)),
        drain: (_conn, record) => void (hook === "drain" && fail(record)),
        end: (conn, record) => {
          if (hook !== "end") return;
          server.send(conn, new Uint8Array(8), 0, 8); // dropped by the abort
          fail(record);
        },
        close: (_conn, _reason, record) => void (hook === "close" && fail(record)),
      },
    }), {
      onHandlerError: (error, conn) => void reports.push({
        error, conn, turn: network!.turn, thrownInTurn,
        eventsAtReport: serverRecord!.events.slice(),
      }),
    });
    network = setup.network;
    const client = new RecordingHandler(setup.client);
    const record = client.track(setup.client.connect("127.0.0.1", setup.port, client));
    setup.network.runUntilIdle();
    if (record.closeReason === null) {
      setup.client.send(record.conn, new Uint8Array([1, 2, 3]), 0, 3);
      setup.network.runUntilIdle();
    }
    if (record.closeReason === null) setup.client.close(record.conn);
    setup.network.runUntilIdle();
    expect(client.violations()).toEqual([]);
    expect(setup.serverHandler.violations()).toEqual([]);
    return { bug, reports, setup, record, serverRecord: serverRecord as ConnectionRecord | null };
  }

  for (const hook of ["open", "data", "drain", "end", "close"] as const) {
    seeded(`a throw in ${handlerName(hook)} is reported once, when its turn is over`, BASE_SEED,
      (seed) => {
        const { bug, reports, serverRecord } = throwIn(hook, seed);
        expect(serverRecord).not.toBeNull();
        expect(reports.length).toBe(1);
        const report = reports[0];
        expect(report.error).toBe(bug);
        expect(report.conn).toBe(serverRecord!.conn);
        // Reported in the same step(), after its last phase: the abort's onClose already ran.
        expect(report.turn).toBe(report.thrownInTurn);
        expect(report.eventsAtReport[report.eventsAtReport.length - 1]).toBe("close");
      });
  }

  seeded("a throw in onOpen, onData or onDrain resets the peer", BASE_SEED, (seed) => {
    for (const hook of ["open", "data", "drain"] as const) {
      const { record, serverRecord } = throwIn(hook, seed);
      expect(`${hook}: ${record.closeReason}`).toBe(`${hook}: ${-ECONNRESET}`);
      expect(`${hook}: ${serverRecord!.closeReason}`).toBe(`${hook}: 0`); // closed by us
    }
  });

  seeded("a throw in onEnd aborts: what onEnd queued is dropped, not flushed", BASE_SEED,
    (seed) => {
      const { setup, serverRecord } = throwIn("end", seed);
      expect(serverRecord!.closeReason).toBe(0);
      expect(setup.server.stats().bytesOut).toBe(0);
    });

  seeded("other connections of the transport carry on", BASE_SEED, (seed) => {
    const reports: unknown[] = [];
    const setup = rig({ seed }, (server) => new RecordingHandler(server, {
      hooks: {
        data: (conn, data, start, end) => {
          if (data[start] === 0xff) throw new Error("poison");
          server.send(conn, data, start, end);
        },
      },
    }), { onHandlerError: (error) => void reports.push(error) });
    const client = new RecordingHandler(setup.client);
    const records = [0, 1, 2].map(() => connectOpen(setup, client));
    setup.client.send(records[1].conn, new Uint8Array([0xff]), 0, 1);
    for (const record of [records[0], records[2]]) {
      setup.client.send(record.conn, new Uint8Array([1, 2, 3]), 0, 3);
    }
    setup.network.runUntilIdle();
    expect(reports.length).toBe(1);
    expect(records.map((record) => record.closeReason)).toEqual([null, -ECONNRESET, null]);
    expect(records.map((record) => record.bytesReceived)).toEqual([3, 0, 3]);
    expect(setup.server.stats().connections).toBe(2);
  });

  test("without onHandlerError the error is re-thrown from a microtask after the turn", () => {
    // In a child process: there an uncaught exception can be watched without failing this test.
    const fakeDir = JSON.stringify(`${import.meta.dir}/../src/fake`);
    const script = `
      const { FakeNetwork } = await import(${fakeDir} + "/fake-network.ts");
      const { FakeTransport } = await import(${fakeDir} + "/fake-transport.ts");
      const network = new FakeNetwork({ autoRun: false });
      const server = new FakeTransport(network);
      const client = new FakeTransport(network);
      let serverClosed = false;
      const quiet = { onOpen() {}, onData() {}, onDrain() {}, onEnd() {}, onClose() {} };
      server.listen({ port: 4000 }, { ...quiet,
        onData() { throw new Error("boom"); },
        onClose() { serverClosed = true; } });
      client.connect("127.0.0.1", 4000, { ...quiet,
        onOpen(conn) { client.send(conn, new Uint8Array([1]), 0, 1); },
        onClose(_conn, reason) { console.log("client closed", reason); } });
      process.on("uncaughtException", (error) => {
        console.log("uncaught", error.message, "server closed", serverClosed);
      });
      network.runUntilIdle();
      console.log("runUntilIdle returned");`;
    const result = Bun.spawnSync({ cmd: [process.execPath, "-e", script], timeout: 10_000 });
    expect(result.stderr.toString()).toBe("");
    expect(result.stdout.toString().trim().split("\n")).toEqual([
      `client closed ${-ECONNRESET}`,
      "runUntilIdle returned",
      "uncaught boom server closed true",
    ]);
  });
});
