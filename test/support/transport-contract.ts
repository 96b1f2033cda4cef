/**
 * The transport contract suite: one set of tests that every backend (fake, io_uring, epoll...)
 * must pass, written against the Transport interface only. Each backend's test file calls
 * `runTransportContract({ name, create, createWith })`; a backend that cannot run a test names it
 * in `skip` with a reason, which is printed (never skipped silently).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ErrorCode, UsageError } from "../../src/api/errors.ts";
import {
  CloseMode, TRANSPORT_DEFAULTS, type Transport, type TransportOptions, type TransportStats,
} from "../../src/api/transport.ts";
import { ECANCELED, ECONNREFUSED, ECONNRESET, EPIPE, errnoName } from "../../src/api/errno.ts";
import { patternBytes, firstDifference } from "./bytes.ts";
import { RecordingHandler, type ConnectionRecord } from "./recording-handler.ts";
import { holdsFor, waitFor, withTimeout } from "./wait-for.ts";

export interface TransportContractOptions {
  name: string;
  /** A fresh transport; tests that need a server and a client call it twice. */
  create: () => Transport | Promise<Transport>;
  /**
   * A fresh transport built from exactly `options`, the backend adding nothing (the rows on
   * defaults, bad sizes and throwing handlers need it). Without it those rows fail, saying so.
   */
  createWith?: (options: TransportOptions) => Transport | Promise<Transport>;
  /**
   * The backend reads every connection into one shared buffer of recvBufferSize (epoll:
   * readiness, not completions), so its stats report one receive buffer.
   */
  sharedReceiveBuffer?: boolean;
  /** Tests this backend cannot run, by name (see `ContractTest`), with the reason. */
  skip?: { reason: string; tests: string[] }[];
  /** Bound of an ordinary wait; default 5000 ms (1 MiB and 100-connection tests get 3x). */
  waitMs?: number;
}

/** Names of the contract tests, for `skip` lists. */
export const ContractTest = {
  listenPortZero: "listen on port 0 and read the port back",
  listenTakenPort: "listen on a taken port throws EADDRINUSE",
  echoSmall: "connect and echo a small message",
  connectToSelf: "a transport connects to itself",
  echoOneMiB: "echo 1 MiB in and out, every byte checked",
  hundredConnections: "100 concurrent connections echo",
  smallSendsInOrder: "many small sends arrive in order",
  drainAfterSend: "onDrain follows a send, with nothing left buffered",
  bufferedAmountToZero: "bufferedAmount counts queued bytes and returns to 0",
  pauseResume: "pause stops onData until resume",
  pauseResumeAtOnce: "pause then resume at once (before the pause took effect) still delivers",
  pauseResumeRounds: "100 rounds of pause in onData, resume a moment later: every echo arrives",
  gracefulCloseFlushes: "graceful close flushes queued data before the peer sees EOF",
  abortResetsPeer: "abort resets the peer (ECONNRESET)",
  connectRefused: "connect to a closed port fails with ECONNREFUSED",
  sendAfterClose: "send after close returns -EPIPE",
  closeListener: "closeListener stops new accepts, open connections keep working",
  dispose: "dispose closes everything with ECANCELED, a second dispose is harmless",
  stats: "stats count connections and bytes",
  remoteAddressUntilClose: "remoteAddress is the peer's from onOpen through onClose, \"\" after",
  urgentAheadOfBacklog: "sendUrgent overtakes a backlog, landing between two sends, never inside one",
  defaults: "a transport created without options is sized by TRANSPORT_DEFAULTS",
  badSizes: "sizes out of range throw UsageError WS_ERR_BAD_OPTION",
  unknownListener: "listenerPort of an unknown id throws UsageError WS_ERR_NO_LISTENER",
  connectBadAddress:
    "connect to a non-IPv4 host or a bad port throws UsageError WS_ERR_BAD_ADDRESS, no slot taken",
  listenBadAddress: "listen on a non-IPv4 host or a bad port throws UsageError WS_ERR_BAD_ADDRESS",
  afterDispose: "listen and connect after dispose throw UsageError WS_ERR_DISPOSED",
  badSendRange: "a send range outside the data throws UsageError WS_ERR_BAD_RANGE, nothing queued",
  throwingHandler:
    "a throwing onData aborts only its connection and is reported after the turn (onHandlerError)",
} as const;

const LOOPBACK = "127.0.0.1";
const MiB = 1024 * 1024;

/** The code of the UsageError `action` throws, or a line saying what happened instead. */
function usageErrorCode(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof UsageError) return error.code;
    return `not a UsageError: ${String(error)}`;
  }
  return "nothing thrown";
}

/** The pool sizes a transport reports, named like the options that set them. */
function reportedSizes(stats: TransportStats) {
  return {
    recvBufferSize: stats.recvBuffers.slotSize,
    recvBufferCount: stats.recvBuffers.capacity,
    sendChunkSize: stats.sendBuffers.slotSize,
    sendChunkCount: stats.sendBuffers.capacity,
  };
}

export function runTransportContract(options: TransportContractOptions): void {
  const waitMs = options.waitMs ?? 5000;
  const longWaitMs = waitMs * 3;
  const skipReasons = new Map<string, string>();
  for (const group of options.skip ?? []) {
    for (const name of group.tests) skipReasons.set(name, group.reason);
  }
  const known = new Set<string>(Object.values(ContractTest));
  for (const name of skipReasons.keys()) {
    // A typo in a skip list would otherwise run nothing and say nothing.
    if (!known.has(name)) {
      throw new Error(`${options.name}: skip names no contract test: "${name}"`);
    }
  }

  describe(`transport contract: ${options.name}`, () => {
    const created: Transport[] = [];

    async function make(): Promise<Transport> {
      const transport = await options.create();
      created.push(transport);
      return transport;
    }

    /** A transport from exactly `options` (see `createWith`). */
    async function makeWith(transportOptions: TransportOptions): Promise<Transport> {
      if (options.createWith === undefined) {
        throw new Error(`${options.name}: this row needs createWith(options) in the contract run`);
      }
      const transport = await options.createWith(transportOptions);
      created.push(transport);
      return transport;
    }

    afterEach(async () => {
      const transports = created.splice(0);
      for (const transport of transports) {
        await withTimeout(transport.dispose(), waitMs, `dispose of a ${transport.backend} backend`);
      }
    });

    function contractTest(name: string, body: () => Promise<void>): void {
      const reason = skipReasons.get(name);
      if (reason !== undefined) {
        console.log(`[${options.name}] skipped contract test "${name}": ${reason}`);
        test.skip(name, body);
        return;
      }
      test(name, body);
    }

    /** A listening server on a fresh transport and a client on another one. */
    async function serverAndClient(makeServerHandler: (server: Transport) => RecordingHandler) {
      const server = await make();
      const client = await make();
      const serverHandler = makeServerHandler(server);
      const { listener, port } = listenLoopback(server, serverHandler);
      return { server, client, serverHandler, listener, port };
    }

    function listenLoopback(transport: Transport, handler: RecordingHandler) {
      const listener = transport.listen({ hostname: LOOPBACK, port: 0 }, handler);
      return { listener, port: transport.listenerPort(listener) };
    }

    /** Starts a connect and its record; does not wait. */
    function connectTracked(
      transport: Transport,
      port: number,
      handler: RecordingHandler,
    ): ConnectionRecord {
      return handler.track(transport.connect(LOOPBACK, port, handler));
    }

    async function dial(
      transport: Transport,
      port: number,
      handler: RecordingHandler,
    ): Promise<ConnectionRecord> {
      const record = connectTracked(transport, port, handler);
      const settled = () => record.opened || record.closeReason !== null;
      await waitFor(settled, waitMs, `connect to ${port}`);
      expect(record.closeReason).toBeNull();
      return record;
    }

    function expectNoViolations(...handlers: RecordingHandler[]): void {
      const lines = handlers.flatMap((handler) => handler.violations());
      expect(lines).toEqual([]);
    }

    /** The record's events without drains, runs of "data" collapsed. */
    function lifecycle(record: ConnectionRecord): string[] {
      const events: string[] = [];
      for (const event of record.events) {
        if (event === "drain") continue;
        if (event === "data" && events[events.length - 1] === "data") continue;
        events.push(event);
      }
      return events;
    }

    function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
      const difference = firstDifference(actual, expected);
      expect(difference).toBeNull();
    }

    contractTest(ContractTest.listenPortZero, async () => {
      const transport = await make();
      const handler = new RecordingHandler(transport);
      const listener = transport.listen({ hostname: LOOPBACK, port: 0 }, handler);
      const port = transport.listenerPort(listener);
      expect(Number.isInteger(port)).toBe(true);
      expect(port).toBeGreaterThan(0);
      expect(port).toBeLessThanOrEqual(65535);
      // The port is really bound: a second listener gets another one.
      const other = transport.listen({ hostname: LOOPBACK, port: 0 }, handler);
      expect(transport.listenerPort(other)).not.toBe(port);
    });

    contractTest(ContractTest.listenTakenPort, async () => {
      const transport = await make();
      const handler = new RecordingHandler(transport);
      const { port } = listenLoopback(transport, handler);
      let error: unknown = null;
      try {
        transport.listen({ hostname: LOOPBACK, port }, handler);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(Error);
      expect((error as { code?: string }).code).toBe("EADDRINUSE");
    });

    contractTest(ContractTest.echoSmall, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      expect(record.listener).toBe(-1);
      expect(setup.client.remoteAddress(record.conn)).toBe(`${LOOPBACK}:${setup.port}`);
      const message = new TextEncoder().encode("hello, transport");
      // Honour start/end: only "transport" is sent.
      expect(setup.client.send(record.conn, message, 7, message.length)).toBe(9);
      await waitFor(() => record.bytesReceived >= 9, waitMs, "echo of 9 bytes");
      expect(new TextDecoder().decode(RecordingHandler.received(record))).toBe("transport");

      const serverRecord = setup.serverHandler.all[0];
      expect(serverRecord.listener).toBe(setup.listener);
      expect(setup.server.remoteAddress(serverRecord.conn)).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(serverRecord.sendFailures).toEqual([]);

      setup.client.close(record.conn);
      await waitFor(() => record.closeReason !== null && serverRecord.closeReason !== null, waitMs,
        "both ends closed");
      expect(record.closeReason).toBe(0);
      expect(serverRecord.closeReason).toBe(0);
      expect(lifecycle(serverRecord)).toEqual(["open", "data", "end", "close"]);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.connectToSelf, async () => {
      const transport = await make();
      const serverHandler = new RecordingHandler(transport, { echo: true });
      const { port } = listenLoopback(transport, serverHandler);
      const clientHandler = new RecordingHandler(transport);
      const record = await dial(transport, port, clientHandler);
      const payload = patternBytes(50_000, 1);
      expect(transport.send(record.conn, payload, 0, payload.length)).toBe(payload.length);
      await waitFor(() => record.bytesReceived >= payload.length, waitMs, "self echo");
      expectBytes(RecordingHandler.received(record), payload);
      expect(transport.stats().accepted).toBe(1);
      expect(transport.stats().connected).toBe(1);
      expect(transport.stats().connections).toBe(2);
      transport.close(record.conn);
      await waitFor(() => transport.stats().connections === 0, waitMs, "both ends closed");
      expectNoViolations(clientHandler, serverHandler);
    });

    contractTest(ContractTest.echoOneMiB, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const payload = patternBytes(MiB, 2);
      const piece = 64 * 1024;
      for (let offset = 0; offset < payload.length; offset += piece) {
        expect(setup.client.send(record.conn, payload, offset, offset + piece)).toBe(piece);
      }
      await waitFor(() => record.bytesReceived >= payload.length, longWaitMs,
        () => `1 MiB echo, got ${record.bytesReceived} bytes`);
      expectBytes(RecordingHandler.received(record), payload);
      expect(setup.serverHandler.all[0].bytesReceived).toBe(MiB);
      expect(setup.serverHandler.all[0].sendFailures).toEqual([]);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.hundredConnections, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const payloadFor = (conn: number) => patternBytes(1000 + conn * 7, 1000 + conn);
      const clientHandler = new RecordingHandler(setup.client, {
        hooks: {
          // Each client sends its own payload as soon as it is open: all 100 run at once.
          open: (conn) => {
            const payload = payloadFor(conn);
            setup.client.send(conn, payload, 0, payload.length);
          },
        },
      });
      const records: ConnectionRecord[] = [];
      for (let i = 0; i < 100; i++) {
        records.push(connectTracked(setup.client, setup.port, clientHandler));
      }
      expect(new Set(records.map((record) => record.conn)).size).toBe(100);
      const echoed = (r: ConnectionRecord) => r.bytesReceived >= 1000 + r.conn * 7;
      await waitFor(() => records.every(echoed), longWaitMs,
        () => `100 echoes, ${records.filter(echoed).length} done`);
      for (const record of records) {
        expectBytes(RecordingHandler.received(record), payloadFor(record.conn));
      }
      expect(setup.serverHandler.all.length).toBe(100);
      for (const record of records) setup.client.close(record.conn);
      await waitFor(() => setup.serverHandler.closed().length === 100, longWaitMs, "100 closes");
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.smallSendsInOrder, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const stream = patternBytes(10_000, 3);
      let offset = 0;
      for (let i = 0; offset < stream.length; i++) {
        const end = Math.min(stream.length, offset + 1 + (i % 3));
        expect(setup.client.send(record.conn, stream, offset, end)).toBe(end - offset);
        offset = end;
      }
      await waitFor(() => setup.serverHandler.all[0]?.bytesReceived >= stream.length, waitMs,
        () => `ordered stream, got ${setup.serverHandler.all[0]?.bytesReceived ?? 0} bytes`);
      expectBytes(RecordingHandler.received(setup.serverHandler.all[0]), stream);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.drainAfterSend, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      const bufferedAtDrain: number[] = [];
      const clientHandler = new RecordingHandler(setup.client, {
        hooks: { drain: (conn) => bufferedAtDrain.push(setup.client.bufferedAmount(conn)) },
      });
      const record = await dial(setup.client, setup.port, clientHandler);
      const payload = patternBytes(256 * 1024, 4);
      expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(payload.length);
      await waitFor(() => record.drains > 0, waitMs, "onDrain after a 256 KiB send");
      expect(bufferedAtDrain[0]).toBe(0);
      await waitFor(() => setup.serverHandler.all[0]?.bytesReceived >= payload.length, waitMs,
        "the peer reads all of it");
      expectBytes(RecordingHandler.received(setup.serverHandler.all[0]), payload);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.bufferedAmountToZero, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      expect(setup.client.bufferedAmount(record.conn)).toBe(0);
      const payload = patternBytes(512 * 1024, 5);
      expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(payload.length);
      const buffered = setup.client.bufferedAmount(record.conn);
      expect(buffered).toBeGreaterThanOrEqual(0);
      expect(buffered).toBeLessThanOrEqual(payload.length);
      await waitFor(() => setup.client.bufferedAmount(record.conn) === 0, waitMs,
        () => `bufferedAmount still ${setup.client.bufferedAmount(record.conn)}`);
      await waitFor(() => setup.serverHandler.all[0]?.bytesReceived >= payload.length, waitMs,
        "the peer reads all of it");
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.pauseResume, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        hooks: { open: (conn) => t.pause(conn) },
      }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const payload = patternBytes(4096, 6);
      expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(payload.length);
      // Wait until the bytes left the client, then give a paused server time to misbehave.
      await waitFor(() => setup.client.bufferedAmount(record.conn) === 0, waitMs, "flush");
      await waitFor(() => setup.serverHandler.all.length === 1, waitMs, "server onOpen");
      const serverRecord = setup.serverHandler.all[0];
      await holdsFor(() => serverRecord.bytesReceived === 0, 50,
        () => `paused connection got ${serverRecord.bytesReceived} bytes`);
      setup.server.resume(serverRecord.conn);
      await waitFor(() => serverRecord.bytesReceived >= payload.length, waitMs, "data, resumed");
      expectBytes(RecordingHandler.received(serverRecord), payload);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.pauseResumeAtOnce, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        hooks: { open: (conn) => { t.pause(conn); t.resume(conn); } },
      }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      await waitFor(() => setup.serverHandler.all.length === 1, waitMs, "server onOpen");
      const payload = patternBytes(4096, 8);
      expect(setup.client.send(record.conn, payload, 0, payload.length)).toBe(payload.length);
      const serverRecord = setup.serverHandler.all[0];
      await waitFor(() => serverRecord.bytesReceived >= payload.length, waitMs,
        () => `data after pause+resume (${serverRecord.bytesReceived} bytes)`);
      expectBytes(RecordingHandler.received(serverRecord), payload);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.pauseResumeRounds, async () => {
      // Like an async hook that settles at once: every message pauses the connection, and
      // it resumes a microtask or a timer tick later, in rounds of echo.
      let round = 0;
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        echo: true,
        hooks: {
          data: (conn) => {
            t.pause(conn);
            if (round++ % 2 === 0) queueMicrotask(() => t.resume(conn));
            else setTimeout(() => t.resume(conn), 0);
          },
        },
      }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const piece = patternBytes(100, 9);
      for (let i = 1; i <= 100; i++) {
        expect(setup.client.send(record.conn, piece, 0, piece.length)).toBe(piece.length);
        await waitFor(() => record.bytesReceived >= i * piece.length, waitMs,
          () => `echo of round ${i} (${record.bytesReceived} bytes back)`);
      }
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.urgentAheadOfBacklog, async () => {
      const unit = 16 * 1024;
      const units = 1024; // 16 MiB: more than the kernel's socket buffers hold
      let serverConn = -1;
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        hooks: { open: (conn) => void (serverConn = conn) },
      }));
      const clientHandler = new RecordingHandler(setup.client, {
        hooks: { open: (conn) => setup.client.pause(conn) }, // nothing is read for now
      });
      const record = await dial(setup.client, setup.port, clientHandler);
      await waitFor(() => serverConn >= 0, waitMs, "server onOpen");
      const server = setup.server;
      const block = new Uint8Array(unit);
      for (let i = 0; i < units; i++) {
        block.fill(i & 0xff);
        expect(server.send(serverConn, block, 0, unit)).toBe(unit);
      }
      // Once part of the backlog has left, a send may be in flight: urgent bytes must wait
      // for its end, then go ahead of everything else still queued.
      await waitFor(() => server.bufferedAmount(serverConn) < units * unit, longWaitMs, "some sent");
      const marker = new TextEncoder().encode("URGENT!!");
      expect(server.sendUrgent(serverConn, marker, 0, marker.length)).toBe(marker.length);
      const left = server.bufferedAmount(serverConn);
      setup.client.resume(record.conn);
      const total = units * unit + marker.length;
      await waitFor(() => record.bytesReceived >= total, longWaitMs,
        () => `${record.bytesReceived} of ${total} bytes`);
      const stream = RecordingHandler.received(record);
      let at = -1;
      for (let i = 0; i + marker.length <= stream.length && at < 0; i += unit) {
        if (marker.every((byte, k) => stream[i + k] === byte)) at = i;
      }
      if (at < 0) {
        const anywhere = Buffer.from(stream.buffer, stream.byteOffset, stream.length).indexOf(Buffer.from(marker));
        throw new Error(`marker not at a unit boundary: at ${anywhere} (${anywhere % unit} into a unit), left ${left}`);
      }
      // Ahead of the backlog: behind at most what a backend had in flight (one send).
      expect(total - at).toBeGreaterThan(left / 2);
      const rest = new Uint8Array(units * unit);
      rest.set(stream.subarray(0, at));
      rest.set(stream.subarray(at + marker.length), at);
      for (let i = 0; i < units; i++) expect(rest[i * unit]).toBe(i & 0xff);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.remoteAddressUntilClose, async () => {
      const seen: { open: string; close: string }[] = [];
      let server!: Transport;
      const setup = await serverAndClient((t) => {
        server = t;
        return new RecordingHandler(t, {
          hooks: {
            open: (conn) => void seen.push({ open: t.remoteAddress(conn), close: "" }),
            close: (conn) => void (seen[seen.length - 1].close = t.remoteAddress(conn)),
          },
        });
      });
      const clientHandler = new RecordingHandler(setup.client);
      for (const mode of [CloseMode.Graceful, CloseMode.Abort]) {
        const record = await dial(setup.client, setup.port, clientHandler);
        await waitFor(() => seen.length === setup.serverHandler.all.length && seen.length > 0 &&
          setup.serverHandler.all.length === clientHandler.all.length, waitMs, "server onOpen");
        setup.client.close(record.conn, mode); // the peer ends it (a reset the second time)
        await waitFor(() => setup.serverHandler.closed().length === clientHandler.all.length,
          waitMs, "server onClose");
      }
      for (const { open, close } of seen) {
        expect(open).toMatch(/^127\.0\.0\.1:\d+$/);
        expect(close).toBe(open);
      }
      expect(server.remoteAddress(setup.serverHandler.all[0].conn)).toBe("");
    });

    contractTest(ContractTest.gracefulCloseFlushes, async () => {
      let bytesAtEnd = -1;
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        hooks: { end: (_conn, record) => (bytesAtEnd = record.bytesReceived) },
      }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const payload = patternBytes(512 * 1024, 7);
      const piece = 32 * 1024;
      for (let offset = 0; offset < payload.length; offset += piece) {
        setup.client.send(record.conn, payload, offset, offset + piece);
      }
      // Close at once: everything queued must still reach the server before its onEnd.
      setup.client.close(record.conn, CloseMode.Graceful);
      await waitFor(() => setup.serverHandler.closed().length === 1, waitMs, "server onClose");
      const serverRecord = setup.serverHandler.all[0];
      expect(bytesAtEnd).toBe(payload.length);
      expect(serverRecord.closeReason).toBe(0);
      expect(lifecycle(serverRecord)).toEqual(["open", "data", "end", "close"]);
      expectBytes(RecordingHandler.received(serverRecord), payload);
      await waitFor(() => record.closeReason !== null, waitMs, "client onClose");
      expect(record.closeReason).toBe(0);
      expect(record.ended).toBe(false);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.abortResetsPeer, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      await waitFor(() => setup.serverHandler.all[0]?.opened === true, waitMs, "server onOpen");
      const serverRecord = setup.serverHandler.all[0];
      setup.client.close(record.conn, CloseMode.Abort);
      await waitFor(() => serverRecord.closeReason !== null, waitMs, "server sees the reset");
      expect(errnoName(serverRecord.closeReason!)).toBe(errnoName(-ECONNRESET));
      expect(serverRecord.ended).toBe(false);
      await waitFor(() => record.closeReason !== null, waitMs, "client onClose after abort");
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.connectRefused, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      setup.server.closeListener(setup.listener);
      const clientHandler = new RecordingHandler(setup.client);
      const record = clientHandler.track(setup.client.connect(LOOPBACK, setup.port, clientHandler));
      await waitFor(() => record.closeReason !== null, waitMs, "refused connect reports onClose");
      expect(errnoName(record.closeReason!)).toBe(errnoName(-ECONNREFUSED));
      expect(record.opened).toBe(false);
      expect(setup.serverHandler.all.length).toBe(0);
      expectNoViolations(clientHandler);
    });

    contractTest(ContractTest.sendAfterClose, async () => {
      const sendInOnClose: number[] = [];
      const setup = await serverAndClient((t) => new RecordingHandler(t, {
        hooks: { close: (conn) => sendInOnClose.push(t.send(conn, new Uint8Array(4), 0, 4)) },
      }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const bytes = new Uint8Array([1, 2, 3]);
      setup.client.close(record.conn);
      expect(setup.client.send(record.conn, bytes, 0, 3)).toBe(-EPIPE);
      await waitFor(() => record.closeReason !== null, waitMs, "client onClose");
      expect(setup.client.send(record.conn, bytes, 0, 3)).toBe(-EPIPE);
      // The server's end closed after EOF: inside onClose the id is still its own.
      await waitFor(() => sendInOnClose.length === 1, waitMs, "server onClose");
      expect(sendInOnClose).toEqual([-EPIPE]);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.closeListener, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const first = await dial(setup.client, setup.port, clientHandler);
      // Only accepted connections survive: closing a listener resets its unaccepted backlog.
      await waitFor(() => setup.serverHandler.all[0]?.opened === true, waitMs, "server onOpen");
      setup.server.closeListener(setup.listener);
      setup.server.closeListener(setup.listener); // a second call is a no-op
      const refused = connectTracked(setup.client, setup.port, clientHandler);
      await waitFor(() => refused.closeReason !== null, waitMs, "connect after closeListener");
      expect(errnoName(refused.closeReason!)).toBe(errnoName(-ECONNREFUSED));
      const payload = patternBytes(2000, 8);
      expect(setup.client.send(first.conn, payload, 0, payload.length)).toBe(2000);
      await waitFor(() => first.bytesReceived >= 2000, waitMs, "echo on the older connection");
      expectBytes(RecordingHandler.received(first), payload);
      expect(setup.serverHandler.all.length).toBe(1);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.dispose, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t));
      const clientHandler = new RecordingHandler(setup.client);
      const records: ConnectionRecord[] = [];
      for (let i = 0; i < 3; i++) records.push(await dial(setup.client, setup.port, clientHandler));
      await waitFor(() => setup.serverHandler.all.filter((r) => r.opened).length === 3, waitMs,
        "three server connections");
      await withTimeout(setup.server.dispose(), waitMs, "first dispose");
      expect(setup.serverHandler.all.map((r) => r.closeReason)).toEqual([
        -ECANCELED, -ECANCELED, -ECANCELED,
      ]);
      expect(setup.server.stats().connections).toBe(0);
      await withTimeout(setup.server.dispose(), waitMs, "second dispose");
      expect(setup.serverHandler.all.length).toBe(3);
      // The peers learn that the connections are gone, by EOF or by reset.
      await waitFor(() => records.every((r) => r.closeReason !== null), waitMs, "client closes");
      for (const record of records) expect([0, -ECONNRESET]).toContain(record.closeReason!);
      // And the listener is gone with the transport.
      const refused = connectTracked(setup.client, setup.port, clientHandler);
      await waitFor(() => refused.closeReason !== null, waitMs, "connect after dispose");
      expect(errnoName(refused.closeReason!)).toBe(errnoName(-ECONNREFUSED));
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.stats, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const before = setup.server.stats();
      expect(before.backend).toBe(setup.server.backend);
      expect(before.connections).toBe(0);
      expect(before.accepted).toBe(0);
      const size = 10_000;
      const records: ConnectionRecord[] = [];
      for (let i = 0; i < 5; i++) {
        const record = await dial(setup.client, setup.port, clientHandler);
        const payload = patternBytes(size, 20 + i);
        expect(setup.client.send(record.conn, payload, 0, size)).toBe(size);
        records.push(record);
      }
      await waitFor(() => records.every((r) => r.bytesReceived >= size), waitMs, "5 echoes");
      const open = setup.server.stats();
      expect(open.connections).toBe(5);
      expect(setup.client.stats().connections).toBe(5);
      for (const record of records) setup.client.close(record.conn);
      await waitFor(() => setup.server.stats().connections === 0
        && setup.client.stats().connections === 0, waitMs, "all connections closed");
      const server = setup.server.stats();
      const clientStats = setup.client.stats();
      expect(server.accepted).toBe(5);
      expect(server.connected).toBe(0);
      expect(clientStats.connected).toBe(5);
      expect(clientStats.accepted).toBe(0);
      expect(server.closed).toBe(5);
      expect(clientStats.closed).toBe(5);
      expect(server.bytesIn).toBe(5 * size);
      expect(server.bytesOut).toBe(5 * size);
      expect(clientStats.bytesIn).toBe(5 * size);
      expect(clientStats.bytesOut).toBe(5 * size);
      expect(server.turns).toBeGreaterThan(0);
      expect(server.recvBuffers.capacity).toBeGreaterThan(0);
      expect(server.recvBuffers.slotSize).toBeGreaterThan(0);
      expect(server.recvBuffers.highWater).toBeGreaterThan(0);
      expect(server.recvBuffers.inUse).toBe(0);
      expect(server.sendBuffers.inUse).toBe(0);
      expect(server.node).toBeGreaterThanOrEqual(-1);
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.defaults, async () => {
      const transport = await makeWith({});
      expect(reportedSizes(transport.stats())).toEqual({
        recvBufferSize: TRANSPORT_DEFAULTS.recvBufferSize,
        // A readiness backend reads every connection into one shared buffer.
        recvBufferCount: options.sharedReceiveBuffer === true ? 1 : TRANSPORT_DEFAULTS.recvBufferCount,
        sendChunkSize: TRANSPORT_DEFAULTS.sendChunkSize,
        sendChunkCount: TRANSPORT_DEFAULTS.sendChunkCount,
      });
    });

    contractTest(ContractTest.badSizes, async () => {
      const bad: TransportOptions[] = [
        { recvBufferCount: 3 }, { recvBufferCount: 65536 }, { recvBufferSize: 0 },
        { sendChunkSize: 1.5 }, { sendChunkCount: -1 }, { maxConnections: 0 },
        { initialConnections: Number.NaN },
      ];
      const label = (sizes: TransportOptions) =>
        Object.entries(sizes).map(([name, value]) => `${name}=${value}`).join(" ");
      const outcomes: string[] = [];
      for (const sizes of bad) {
        let outcome = "nothing thrown";
        try {
          await makeWith(sizes);
        } catch (error) {
          outcome = error instanceof UsageError ? error.code : `not a UsageError: ${String(error)}`;
        }
        outcomes.push(`${label(sizes)}: ${outcome}`);
      }
      expect(outcomes).toEqual(bad.map((sizes) => `${label(sizes)}: ${ErrorCode.BAD_OPTION}`));
    });

    contractTest(ContractTest.unknownListener, async () => {
      const transport = await make();
      expect(usageErrorCode(() => transport.listenerPort(0))).toBe(ErrorCode.NO_LISTENER);
      const { listener } = listenLoopback(transport, new RecordingHandler(transport));
      for (const id of [listener + 1, -1, 0.5]) {
        expect(usageErrorCode(() => transport.listenerPort(id))).toBe(ErrorCode.NO_LISTENER);
      }
    });

    contractTest(ContractTest.connectBadAddress, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const targets: [string, number][] = [
        ["example.com", 80], ["::1", 80], ["1.2.3", 80], ["256.0.0.1", 80], ["", 80],
        [LOOPBACK, 0], [LOOPBACK, 65536], [LOOPBACK, -1], [LOOPBACK, 80.5], [LOOPBACK, Number.NaN],
      ];
      for (const [host, port] of targets) {
        const code = usageErrorCode(() => setup.client.connect(host, port, clientHandler));
        expect(`${host}:${port} ${code}`).toBe(`${host}:${port} ${ErrorCode.BAD_ADDRESS}`);
      }
      expect(setup.client.stats().connections).toBe(0);
      // No slot or descriptor was lost on the way: a good connect still works.
      await dial(setup.client, setup.port, clientHandler);
      expect(setup.client.stats().connections).toBe(1);
      expect(clientHandler.all.length).toBe(1);
      expectNoViolations(clientHandler);
    });

    contractTest(ContractTest.listenBadAddress, async () => {
      const transport = await make();
      const handler = new RecordingHandler(transport);
      const addresses: [string, number][] = [
        ["example.com", 0], ["::", 0], ["1.2.3.4.5", 0],
        [LOOPBACK, 65536], [LOOPBACK, -1], [LOOPBACK, 0.5],
      ];
      for (const [hostname, port] of addresses) {
        const code = usageErrorCode(() => transport.listen({ hostname, port }, handler));
        expect(`${hostname}:${port} ${code}`).toBe(`${hostname}:${port} ${ErrorCode.BAD_ADDRESS}`);
      }
    });

    contractTest(ContractTest.afterDispose, async () => {
      const transport = await make();
      const handler = new RecordingHandler(transport);
      await withTimeout(transport.dispose(), waitMs, "dispose");
      const listen = () => transport.listen({ hostname: LOOPBACK, port: 0 }, handler);
      const connect = () => transport.connect(LOOPBACK, 9, handler);
      expect(usageErrorCode(listen)).toBe(ErrorCode.DISPOSED);
      expect(usageErrorCode(connect)).toBe(ErrorCode.DISPOSED);
      expect(transport.send(0, new Uint8Array(1), 0, 1)).toBe(-EPIPE);
    });

    contractTest(ContractTest.badSendRange, async () => {
      const setup = await serverAndClient((t) => new RecordingHandler(t, { echo: true }));
      const clientHandler = new RecordingHandler(setup.client);
      const record = await dial(setup.client, setup.port, clientHandler);
      const data = patternBytes(10, 11);
      const ranges: [number, number][] = [
        [5, 4], [0, 11], [-1, 3], [0.5, 3], [Number.NaN, 3], [0, Number.POSITIVE_INFINITY],
      ];
      for (const [start, end] of ranges) {
        const code = usageErrorCode(() => setup.client.send(record.conn, data, start, end));
        expect(`${start}..${end} ${code}`).toBe(`${start}..${end} ${ErrorCode.BAD_RANGE}`);
      }
      const pair = (a: number, b: number, c: number, d: number) =>
        usageErrorCode(() => setup.client.sendPair(record.conn, data, a, b, data, c, d));
      expect(pair(0, 2, 3, 11)).toBe(ErrorCode.BAD_RANGE);
      expect(pair(2, 1, 0, 1)).toBe(ErrorCode.BAD_RANGE);
      expect(setup.client.bufferedAmount(record.conn)).toBe(0);
      // Nothing was queued by the bad calls: the next good send is all that comes back.
      expect(setup.client.send(record.conn, data, 2, 7)).toBe(5);
      await waitFor(() => record.bytesReceived >= 5, waitMs, "echo after the bad sends");
      await holdsFor(() => record.bytesReceived === 5, 50,
        () => `${record.bytesReceived} bytes came back, 5 were sent`);
      expectBytes(RecordingHandler.received(record), data.subarray(2, 7));
      expectNoViolations(clientHandler, setup.serverHandler);
    });

    contractTest(ContractTest.throwingHandler, async () => {
      const POISON = 0xff; // never in the ASCII messages below
      const bug = new Error("a handler bug, thrown on purpose by the contract suite");
      const reports: { error: unknown; conn: number; sendAtReport: number }[] = [];
      const probe = new Uint8Array(1);
      const server: Transport = await makeWith({
        // By the time of the report the connection is already aborted: send says -EPIPE.
        onHandlerError: (error, conn) =>
          void reports.push({ error, conn, sendAtReport: server.send(conn, probe, 0, 1) }),
      });
      const serverHandler = new RecordingHandler(server, {
        hooks: {
          data: (conn, data, start, end) => {
            if (data[start] === POISON) throw bug;
            server.send(conn, data, start, end);
          },
        },
      });
      const { port } = listenLoopback(server, serverHandler);
      const client = await make();
      const clientHandler = new RecordingHandler(client);
      const doomed = await dial(client, port, clientHandler);
      await waitFor(() => serverHandler.all.length === 1, waitMs, "first accept");
      const doomedOnServer = serverHandler.all[0];
      const survivor = await dial(client, port, clientHandler);
      const hello = new TextEncoder().encode("hello");
      for (const record of [doomed, survivor]) {
        expect(client.send(record.conn, hello, 0, hello.length)).toBe(hello.length);
      }
      await waitFor(() => doomed.bytesReceived >= 5 && survivor.bytesReceived >= 5, waitMs,
        "both echo before the throw");

      expect(client.send(doomed.conn, new Uint8Array([POISON]), 0, 1)).toBe(1);
      await waitFor(() => doomed.closeReason !== null && doomedOnServer.closeReason !== null
        && reports.length > 0, waitMs, "the throwing connection is aborted and reported");
      expect(errnoName(doomed.closeReason!)).toBe(errnoName(-ECONNRESET));
      expect(reports).toEqual([{ error: bug, conn: doomedOnServer.conn, sendAtReport: -EPIPE }]);

      const more = new TextEncoder().encode(", still here");
      expect(client.send(survivor.conn, more, 0, more.length)).toBe(more.length);
      await waitFor(() => survivor.bytesReceived >= 5 + more.length, waitMs,
        "the other connection keeps echoing");
      const echoed = new TextDecoder().decode(RecordingHandler.received(survivor));
      expect(echoed).toBe("hello, still here");
      expect(survivor.closeReason).toBeNull();
      expect(server.stats().connections).toBe(1);
      expect(reports.length).toBe(1);
      expectNoViolations(clientHandler, serverHandler);
    });
  });
}
