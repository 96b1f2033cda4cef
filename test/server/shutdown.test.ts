/**
 * server.stop as Bun.serve has it, and as one shutdown: stop() lets open connections end by
 * themselves (new ones are refused) and resolves when the last is gone; stop(true) closes
 * them (1001); stop("abort") drops them; called twice it returns one promise every caller
 * sees resolve, and a stronger call escalates; stop from inside a handler (the last socket's
 * close) finishes. On the fake backend with a FakeClock; the io_uring side of "stop inside a
 * handler" is test/dispose-in-handler.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

afterEach(stopFakeServers);

describe("server.stop(true) (fake backend)", () => {
  test("stop(true) twice: one promise, and both callers see it resolve", async () => {
    const { client, server, clock } = startFakeServer({ closeTimeout: 1 });
    const ws = client();
    await ws.opened101();
    const first = server.stop(true);
    const second = server.stop(true);
    expect(second).toBe(first);
    await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
    clock.advance(1500); // the client never answers: dropped after closeTimeout
    await withTimeout(Promise.all([first, second]), 2000, "both stops resolve");
  });

  test('stop("abort") during stop(true) drops every connection now', async () => {
    const { client, server, closes } = startFakeServer({ closeTimeout: 60 });
    const clients = [client(), client()];
    for (const ws of clients) await ws.opened101();
    const graceful = server.stop(true);
    for (const ws of clients) await waitFor(() => ws.closeFrame() !== undefined, 2000, "1001 frame");
    // Nobody answers the close frames and the clock stands still: only an abort ends this.
    const abort = server.stop("abort");
    await withTimeout(Promise.all([graceful, abort]), 2000, "the escalated stop resolves");
    for (const ws of clients) await ws.waitClosed();
    expect(closes.map((c) => c.code)).toEqual([1001, 1001]);
  });

  test("stop(true) from the last socket's close handler resolves", async () => {
    let stopping: Promise<void> | undefined;
    const { client, server } = startFakeServer({
      websocket: {
        message: (ws, message) => void ws.send(message),
        close: () => {
          stopping = server.stop(true);
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

describe("server.stop() and stop(false): Bun's drain (fake backend)", () => {
  test("open sockets go on working, new connections are refused, it resolves after the last closes", async () => {
    const { client, server, closes } = startFakeServer({ closeTimeout: 1 });
    const [a, b] = [client(), client()];
    await a.opened101();
    await b.opened101();
    let resolved = false;
    const stopping = server.stop().then(() => void (resolved = true));
    expect(server.stop(false)).toBe(server.stop()); // one shutdown
    a.sendText("still here");
    await a.waitMessages(1);
    expect(a.messages()[0].text).toBe("still here");
    expect(a.closeFrame()).toBeUndefined(); // nothing was closed for us
    const late = client();
    await late.waitClosed();
    expect(late.responseStatus).not.toBe(101);
    a.sendClose(1000);
    await a.waitClosed();
    await Bun.sleep(20);
    expect(resolved).toBe(false); // b is still open
    b.sendClose(1000);
    await withTimeout(stopping, 2000, "the drain resolves once the last socket closed");
    expect(closes.map((c) => c.code)).toEqual([1000, 1000]);
  });

  test("stop(true) during a drain closes the rest with 1001", async () => {
    const { client, server, clock } = startFakeServer({ closeTimeout: 1 });
    const ws = client();
    await ws.opened101();
    const drain = server.stop();
    await Bun.sleep(10);
    expect(ws.closeFrame()).toBeUndefined();
    const close = server.stop(true);
    expect(close).toBe(drain);
    await waitFor(() => ws.closeFrame()?.code === 1001, 2000, "1001 after the escalation");
    clock.advance(1500);
    await withTimeout(drain, 2000, "the escalated stop resolves");
  });

  test("anything else is refused with a clear error", () => {
    const { server } = startFakeServer();
    expect(() => server.stop("now" as never)).toThrow(/server.stop takes true/);
  });
});

