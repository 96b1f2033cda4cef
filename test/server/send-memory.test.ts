/**
 * One client must never hurt the others. Every socket's sends share one send pool; clients
 * that never read used to fill it (each within its own backpressureLimit), and from then on
 * every other socket's echoes were silently dropped, 1001 frames at shutdown too. Now the
 * socket holding the most is closed (1013) and counted when memory runs out, and nobody
 * else loses a byte. Pongs count against their socket's own budget. io_uring, real loopback.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import type { Server, ServeOptions } from "../../src/api/websocket.ts";
import { OPCODE_PING } from "../../src/protocol/constants.ts";
import { serve } from "../../src/server/serve.ts";
import { dropHog, hogTransport, openHog, type Hog } from "../support/hog-clients.ts";
import { describeEachBackend, type RealBackendName } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

let backend: RealBackendName = "io_uring";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function startEcho(options: Partial<ServeOptions<undefined>>) {
  const closes: number[] = [];
  const server = serve({
    port: 0, hostname: "127.0.0.1", backend, ...options,
    websocket: {
      message: (ws, message) => void ws.send(message),
      close: (_, code) => void closes.push(code),
      ...options.websocket,
    },
  });
  cleanups.push(() => withTimeout(server.stop("abort"), 5000, "stop"));
  return { server, closes };
}

function startHogs(port: number, count: number, options: Parameters<typeof openHog>[2]) {
  const transport = hogTransport(backend);
  const hogs: Hog[] = [];
  cleanups.push(async () => {
    for (const hog of hogs) dropHog(transport, hog);
    await withTimeout(transport.dispose(), 5000, "hog transport dispose");
  });
  return { transport, hogs, opened: Promise.all(Array.from({ length: count }, async () => {
    hogs.push(await openHog(transport, port, options));
  })) };
}

/** A well-behaved client: `rounds` echoes one after another, each checked. */
async function politeClient(url: string, rounds: number) {
  const ws = new WebSocket(url);
  const inbox: string[] = [];
  let wake = () => {};
  ws.onmessage = (event) => { inbox.push(String(event.data)); wake(); };
  const closed = new Promise<number>((resolve) => (ws.onclose = (event) => resolve(event.code)));
  await withTimeout(new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; }), 3000, "open");
  for (let round = 0; round < rounds; round++) {
    ws.send(`round ${round}`);
    await withTimeout(new Promise<void>((resolve) => {
      wake = resolve;
      if (inbox.length > round) resolve();
    }), 3000, `echo of round ${round}`);
    expect(inbox[round]).toBe(`round ${round}`);
    if (round % 10 === 0) await Bun.sleep(1); // spread over the hogs' lifetime
  }
  return { ws, closed };
}

describeEachBackend("send memory is shared fairly", (name) => {
  beforeAll(() => {
    backend = name;
  });

  test("hogs that fill the send pool are closed 1013; every polite echo and 1001 arrives", async () => {
    // 1 MiB of send memory; each hog may queue 768 KiB, so two of them exhaust it.
    const { server, closes } = startEcho({ backpressureLimit: 768 * 1024, closeTimeout: 1,
      transport: { sendChunkCount: 64 } });
    const { hogs, opened } = startHogs(server.port, 3, { payloadBytes: 4096, totalBytes: 32 << 20 });
    await opened;
    const url = `ws://127.0.0.1:${server.port}/`;
    const polite = await Promise.all(Array.from({ length: 5 }, () => politeClient(url, 300)));
    expect(server.stats().evictions).toBeGreaterThanOrEqual(1);
    expect(closes.filter((code) => code === 1013).length).toBe(server.stats().evictions);
    const stopping = server.stop(true);
    const codes = await withTimeout(Promise.all(polite.map(async ({ ws, closed }) => {
      const code = await closed;
      void ws;
      return code;
    })), 5000, "polite clients closed");
    expect(codes).toEqual([1001, 1001, 1001, 1001, 1001]);
    await withTimeout(stopping, 8000, "stop");
    void hogs;
  }, 30_000);

  test("a ping flood that never reads its pongs is closed 1008; others keep working", async () => {
    const { server, closes } = startEcho({ transport: { sendChunkCount: 256 } }); // 4 MiB
    const { hogs, opened } = startHogs(server.port, 1,
      { opcode: OPCODE_PING, payloadBytes: 125, totalBytes: 64 << 20 });
    await opened;
    await waitFor(() => hogs[0].closed !== null, 10_000, () => `flood closed (wrote ${hogs[0].written} B)`);
    await waitFor(() => closes.includes(1008), 2000, () => `close codes ${closes}`);
    // New handshakes and echoes still work, and memory came back.
    const { ws } = await politeClient(`ws://127.0.0.1:${server.port}/`, 50);
    ws.close();
    await waitFor(() => server.stats().transport.sendBuffers.inUse === 0, 3000, "send memory returned");
  }, 30_000);
});
