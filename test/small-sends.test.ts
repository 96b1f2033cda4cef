/**
 * Send memory for fan-out: a small send to each of many connections in one turn (a publish
 * of a chat line to a room) must not take a whole send chunk per connection, or a room of
 * a few thousand sockets exhausts the pool and its subscribers are evicted. Real backends
 * that queue in ConnectionSends (io_uring, epoll), with a pool of only 4 chunks.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { CloseMode, type Transport, type TransportHandler } from "../src/api/transport.ts";
import { createRealTransport, realBackends, type RealBackendName } from "./support/backends.ts";
import { waitFor } from "./support/wait-for.ts";

const CONNECTIONS = 200;
const MESSAGE = new Uint8Array(100).fill(0x61);

for (const { name, skipReason } of realBackends().filter((b) => b.name !== "bun")) {
  if (skipReason) console.log(`[skip] small sends on ${name}: ${skipReason}`);
  (skipReason ? describe.skip : describe)(`small sends to many connections (${name})`, () => {
    test(`${CONNECTIONS} connections × 100 B in one turn from a 4-chunk pool`, async () => {
      const open: number[] = [];
      const handler: TransportHandler = {
        onOpen: (conn) => void open.push(conn), onData() {}, onDrain() {},
        onEnd: (conn) => server.close(conn, CloseMode.Graceful), onClose() {},
      };
      const server: Transport = createRealTransport(name as RealBackendName, { sendChunkCount: 4 });
      const clients: Socket<undefined>[] = [];
      const received = new Int32Array(CONNECTIONS);
      try {
        const port = server.listenerPort(server.listen({ hostname: "127.0.0.1", port: 0 }, handler));
        for (let i = 0; i < CONNECTIONS; i++) {
          clients.push(await Bun.connect({
            hostname: "127.0.0.1", port,
            socket: { data: (_, chunk) => void (received[i] += chunk.length) },
          }));
        }
        await waitFor(() => open.length === CONNECTIONS, 5000, "every connection accepted");
        const results = open.map((conn) => server.send(conn, MESSAGE, 0, MESSAGE.length));
        expect(results.filter((r) => r !== MESSAGE.length)).toEqual([]);
        await waitFor(() => received.every((n) => n === MESSAGE.length), 5000,
          () => `every client got its 100 B (${received.filter((n) => n === 100).length} did)`);
      } finally {
        for (const client of clients) client.end();
        await server.dispose();
      }
    });
  });
}
