/**
 * server.stop() as one shutdown: called twice it returns one promise that every caller sees
 * resolve; stop(false) during a graceful stop escalates to an abort; stop() from inside a
 * handler (the last socket's close) finishes. On the fake backend with a FakeClock; the
 * io_uring side of "stop inside a handler" is test/dispose-in-handler.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

afterEach(stopFakeServers);

describe("server.stop() (fake backend)", () => {
  test("stop() twice: one promise, and both callers see it resolve", async () => {
    const { client, server, clock } = startFakeServer({ closeTimeout: 1 });
    const ws = client();
    await ws.opened101();
    const first = server.stop();
    const second = server.stop();
    expect(second).toBe(first);
    await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
    clock.advance(1500); // the client never answers: dropped after closeTimeout
    await withTimeout(Promise.all([first, second]), 2000, "both stops resolve");
  });

  test("stop(false) during a graceful stop drops every connection now", async () => {
    const { client, server, closes } = startFakeServer({ closeTimeout: 60 });
    const clients = [client(), client()];
    for (const ws of clients) await ws.opened101();
    const graceful = server.stop();
    for (const ws of clients) await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
    // Nobody answers the close frames and the clock stands still: only an abort ends this.
    const abort = server.stop(false);
    await withTimeout(Promise.all([graceful, abort]), 2000, "the escalated stop resolves");
    for (const ws of clients) await ws.waitClosed();
    expect(closes.map((c) => c.code)).toEqual([1001, 1001]);
  });

  test("stop() from the last socket's close handler resolves", async () => {
    let stopping: Promise<void> | undefined;
    const { client, server } = startFakeServer({
      websocket: {
        message: (ws, message) => void ws.send(message),
        close: () => {
          stopping = server.stop();
        },
      },
    });
    const ws = client();
    await ws.opened101();
    ws.sendClose(1000);
    await waitFor(() => stopping !== undefined, 2000, "close handler ran");
    await withTimeout(stopping!, 2000, "stop from the close handler");
  });
});
