/**
 * Teardown on io_uring under pressure: an abortive close is an ASYNC_CANCEL hard-linked to a
 * CLOSE. When the SQ filled between the two SQEs, the cancel was submitted alone, the CLOSE
 * could run first, the cancel then failed (EBADF) and the connection never left teardown
 * (no onClose, and stop() never resolved). Every SQE of a link is now reserved first.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { CloseMode, type TransportHandler } from "../src/api/transport.ts";
import { UringTransport } from "../src/reactor/uring-transport.ts";
import { ioUringUnavailable } from "./support/platform.ts";
import { waitFor, withTimeout } from "./support/wait-for.ts";

const CONNECTIONS = 6000;
/** Both ends of every connection live in this process, plus some to spare. */
const DESCRIPTORS_NEEDED = 2 * CONNECTIONS + 200;

function descriptorLimit(): number {
  const result = Bun.spawnSync(["sh", "-c", "ulimit -n"]);
  return Number(result.stdout.toString().trim()) || 0;
}

const skipReason = ioUringUnavailable() ||
  (descriptorLimit() < DESCRIPTORS_NEEDED
    ? `needs ${DESCRIPTORS_NEEDED} descriptors, ulimit -n is ${descriptorLimit()}` : "");
if (skipReason) console.log(`[skip] io_uring mass teardown: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

const live: UringTransport[] = [];
afterEach(async () => {
  for (const transport of live.splice(0)) await withTimeout(transport.dispose(), 5000, "dispose");
});

function counting() {
  const opened: number[] = [];
  let closed = 0;
  const handler: TransportHandler = {
    onOpen: (conn) => void opened.push(conn),
    onData() {}, onDrain() {}, onEnd() {},
    onClose: () => void closed++,
  };
  return { handler, opened, closed: () => closed };
}

suite("io_uring teardown with a small ring", () => {
  {
    const ringEntries = 16;
    test(`abortive close of ${CONNECTIONS} connections and the listener, ${ringEntries}-entry SQ: every onClose fires`, async () => {
      const server = new UringTransport({ maxConnections: 8192, ringEntries });
      const client = new UringTransport({ maxConnections: 8192 });
      live.push(server, client);
      const serverSide = counting();
      const clientSide = counting();
      const listener = server.listen({ hostname: "127.0.0.1", port: 0 }, serverSide.handler);
      const port = server.listenerPort(listener);
      for (let i = 0; i < CONNECTIONS; i++) {
        expect(client.connect("127.0.0.1", port, clientSide.handler)).toBeGreaterThanOrEqual(0);
      }
      await waitFor(() => serverSide.opened.length === CONNECTIONS, 15_000,
        () => `${CONNECTIONS} accepted (${serverSide.opened.length})`);
      // An odd SQE first, so that two-SQE links straddle the end of the ring.
      server.pause(serverSide.opened[0]);
      for (const conn of serverSide.opened) {
        server.close(conn, CloseMode.Abort);
        if (conn === serverSide.opened[CONNECTIONS / 2]) server.closeListener(listener);
      }
      await waitFor(() => serverSide.closed() === CONNECTIONS, 10_000,
        () => `server onClose (${serverSide.closed()} of ${CONNECTIONS})`);
      await waitFor(() => clientSide.closed() === CONNECTIONS, 10_000,
        () => `client sees the resets (${clientSide.closed()} of ${CONNECTIONS})`);
      expect(server.stats().connections).toBe(0);
      const refused = counting();
      client.connect("127.0.0.1", port, refused.handler); // the listener is gone too
      await waitFor(() => refused.closed() === 1, 5000, "connect after closeListener refused");
      expect(refused.opened.length).toBe(0);
    }, 40_000);
  }
});
