/**
 * IdleShrink: Bun.shrink() once the server is quiet after a burst of handshakes, and never
 * while handshakes or messages keep coming (the shrink discards compiled code). Driven by a
 * FakeClock with a counting shrink, then once through a whole server on the fake backend.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import {
  CHECK_MS, IdleShrink, MIN_HANDSHAKES, MIN_INTERVAL_MS, QUIET_MESSAGES_PER_S, QUIET_MS,
} from "../../src/server/idle-shrink.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";

afterEach(stopFakeServers);

function setup() {
  const clock = new FakeClock();
  let messages = 0;
  let shrinks = 0;
  const idle = new IdleShrink(clock, () => messages, () => void shrinks++);
  return {
    clock, idle,
    shrinks: () => shrinks,
    handshakes: (n: number) => { for (let i = 0; i < n; i++) idle.handshake(); },
    receive: (n: number) => void (messages += n),
  };
}

describe("IdleShrink", () => {
  test("fewer handshakes than the threshold never shrink, however quiet", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES - 1);
    s.clock.advance(60_000);
    expect(s.shrinks()).toBe(0);
  });

  test("a burst, then a quiet second: one shrink, and the check stops", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES);
    s.clock.advance(QUIET_MS - 1);
    expect(s.shrinks()).toBe(0);
    s.clock.advance(CHECK_MS + 1);
    expect(s.shrinks()).toBe(1);
    expect(s.idle.count).toBe(1);
    s.clock.advance(MIN_INTERVAL_MS * 2);
    expect(s.shrinks()).toBe(1);
  });

  test("handshakes that keep coming hold it off until they stop", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES);
    for (let i = 0; i < 40; i++) {
      s.clock.advance(QUIET_MS / 2);
      s.handshakes(1);
    }
    expect(s.shrinks()).toBe(0);
    s.clock.advance(QUIET_MS + CHECK_MS);
    expect(s.shrinks()).toBe(1);
  });

  test("busy message traffic holds it off; light traffic does not", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES);
    const perCheck = (QUIET_MESSAGES_PER_S * CHECK_MS) / 1000;
    for (let i = 0; i < 20; i++) {
      s.receive(perCheck + 1);
      s.clock.advance(CHECK_MS);
    }
    expect(s.shrinks()).toBe(0);
    s.receive(perCheck); // at the bound: quiet enough
    s.clock.advance(CHECK_MS);
    expect(s.shrinks()).toBe(1);
  });

  test("a second burst shrinks again only MIN_INTERVAL_MS after the first", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES);
    s.clock.advance(QUIET_MS + CHECK_MS);
    expect(s.shrinks()).toBe(1);
    s.handshakes(MIN_HANDSHAKES);
    s.clock.advance(MIN_INTERVAL_MS / 2);
    expect(s.shrinks()).toBe(1);
    s.clock.advance(MIN_INTERVAL_MS / 2 + CHECK_MS);
    expect(s.shrinks()).toBe(2);
  });

  test("dispose stops a pending check", () => {
    const s = setup();
    s.handshakes(MIN_HANDSHAKES);
    s.idle.dispose();
    s.clock.advance(60_000);
    expect(s.shrinks()).toBe(0);
  });
});

describe("shrinkWhenIdle in the server", () => {
  const burst = async (harness: ReturnType<typeof startFakeServer>) => {
    const clients = Array.from({ length: MIN_HANDSHAKES }, () => harness.client());
    await Promise.all(clients.map((client) => client.opened101()));
    await waitFor(() => harness.server.stats().connections === MIN_HANDSHAKES, 5000, "the burst");
    return clients;
  };

  test("a burst of handshakes, then quiet: stats count one shrink", async () => {
    const harness = startFakeServer({ shrinkWhenIdle: true });
    const clients = await burst(harness);
    expect(harness.server.stats().idleShrinks).toBe(0);
    harness.clock.advance(QUIET_MS + CHECK_MS);
    expect(harness.server.stats().idleShrinks).toBe(1);
    // Bun.shrink ran for real (compiled code discarded): the server still echoes.
    await Bun.sleep(10);
    clients[0].sendText("after the shrink");
    await clients[0].waitMessages(1);
    expect(clients[0].messages()[0].text).toBe("after the shrink");
  });

  test("off by default: never shrinks", async () => {
    const harness = startFakeServer();
    await burst(harness);
    harness.clock.advance(QUIET_MS + CHECK_MS);
    expect(harness.server.stats().idleShrinks).toBe(0);
  });
});
