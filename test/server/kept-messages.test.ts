/**
 * The documented way to keep a binary message is `message.slice()`, and it must copy: a
 * Buffer's own slice() is a view, so kept "copies" were overwritten when the receive ring
 * cycled, and read after stop() they segfaulted. Ping payloads are handed as copies. The
 * fake backend hands the very same types as io_uring, so app tests see what production sees.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { patternBytes } from "../support/bytes.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { realBackends } from "../support/backends.ts";
import { waitFor } from "../support/wait-for.ts";

afterEach(stopFakeServers);

/** What a message handler sees of a binary message: its class and whether it is a Buffer. */
const EXPECTED_TYPES = ["Buffer:true"];

describe("keeping messages", () => {
  for (const { name, skipReason } of realBackends()) {
    if (skipReason) console.log(`[skip] kept messages on ${name}: ${skipReason}`);
    test.skipIf(skipReason !== "")(`${name}: 1,000 messages kept with slice() are intact, also after stop()`, () => {
      const child = Bun.spawnSync([process.execPath, join(import.meta.dir, "../fixtures/kept-messages.ts"),
        name], { timeout: 25_000, stdout: "pipe", stderr: "pipe" });
      const out = child.stdout.toString().trim();
      if (child.exitCode !== 0) console.error(child.stderr.toString().slice(-1500));
      expect({ code: child.exitCode, signal: child.signalCode ?? "" }).toEqual({ code: 0, signal: "" });
      expect(JSON.parse(out.split("\n").pop() ?? "{}")).toEqual({
        kept: 1000, corrupt: 0, pings: 100, pingsCorrupt: 0, types: EXPECTED_TYPES,
      });
    }, 30_000);
  }

  test("fake: the same types, kept copies intact after stop()", async () => {
    const kept: Uint8Array[] = [];
    const pings: Uint8Array[] = [];
    const types = new Set<string>();
    const sizes = [1, 100, 200, 3000, 20_000, 70_000];
    const { client, server } = startFakeServer({
      websocket: {
        message(_, message) {
          if (typeof message === "string") return;
          types.add(`${message.constructor.name}:${Buffer.isBuffer(message)}`);
          kept.push(message.slice());
        },
        ping: (_, data) => void pings.push(data),
      },
    });
    const ws = client();
    await ws.opened101();
    sizes.forEach((size, i) => {
      ws.sendBinary(patternBytes(size, i));
      ws.sendFrame(0x9, patternBytes(20, i));
    });
    await waitFor(() => kept.length === sizes.length && pings.length === sizes.length, 5000, "messages");
    await server.stop("abort");
    expect([...types]).toEqual(EXPECTED_TYPES);
    sizes.forEach((size, i) => {
      expect(kept[i]).toEqual(new Uint8Array(patternBytes(size, i)));
      expect(pings[i]).toEqual(new Uint8Array(patternBytes(20, i)));
    });
  });
});
