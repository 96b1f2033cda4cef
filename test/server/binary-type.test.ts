/**
 * ws.binaryType, as in Bun.serve: "nodebuffer" (default: a Buffer), "arraybuffer" (an
 * ArrayBuffer of the message's own, kept safely), "uint8array" (a Uint8Array: from 129
 * bytes a view valid during the handler, whose slice() copies; shorter ones are copies).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { patternBytes } from "../support/bytes.ts";
import { waitFor } from "../support/wait-for.ts";

afterEach(stopFakeServers);

describe("ws.binaryType", () => {
  test("the default is nodebuffer; each type hands its kind, with the right bytes", async () => {
    const got: { kind: string; bytes: Uint8Array; type: string }[] = [];
    const kinds = ["nodebuffer", "arraybuffer", "uint8array"] as const;
    const { client, sockets } = startFakeServer({
      websocket: {
        message(ws, message) {
          const value = message as unknown;
          const kind = Buffer.isBuffer(value) ? "Buffer" : value instanceof ArrayBuffer ? "ArrayBuffer"
            : value instanceof Uint8Array ? "Uint8Array" : typeof value;
          const bytes = value instanceof ArrayBuffer ? new Uint8Array(value)
            : Uint8Array.prototype.slice.call(value as Uint8Array);
          got.push({ kind, bytes, type: ws.binaryType });
        },
      },
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(sockets[0].binaryType).toBe("nodebuffer");
    for (const [i, kind] of kinds.entries()) {
      sockets[0].binaryType = kind;
      ws.sendBinary(patternBytes(16, i));
      ws.sendBinary(patternBytes(5000, i));
      await waitFor(() => got.length === 2 * (i + 1), 2000, `messages as ${kind}`);
    }
    expect(got.map((g) => `${g.type}:${g.kind}`)).toEqual([
      "nodebuffer:Buffer", "nodebuffer:Buffer", "arraybuffer:ArrayBuffer", "arraybuffer:ArrayBuffer",
      "uint8array:Uint8Array", "uint8array:Uint8Array",
    ]);
    for (const [i] of kinds.entries()) {
      expect(got[2 * i].bytes).toEqual(patternBytes(16, i));
      expect(got[2 * i + 1].bytes).toEqual(patternBytes(5000, i));
    }
  });

  test("an ArrayBuffer message is its own memory: kept past the handler, intact", async () => {
    const kept: ArrayBuffer[] = [];
    const { client, sockets } = startFakeServer({
      websocket: { message: (_, message) => void kept.push(message as unknown as ArrayBuffer) },
    });
    const ws = client();
    await ws.opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    sockets[0].binaryType = "arraybuffer";
    for (let i = 0; i < 20; i++) ws.sendBinary(patternBytes(3000, i));
    await waitFor(() => kept.length === 20, 5000, "20 messages");
    kept.forEach((buffer, i) => {
      expect(buffer.byteLength).toBe(3000);
      expect(Buffer.compare(new Uint8Array(buffer), patternBytes(3000, i))).toBe(0);
    });
  });

  test("anything else is refused with a clear error", async () => {
    const { client, sockets } = startFakeServer();
    await client().opened101();
    await waitFor(() => sockets.length === 1, 2000, "open");
    expect(() => { sockets[0].binaryType = "blob" as never; })
      .toThrow(expect.objectContaining({ code: "WS_ERR_BAD_BINARY_TYPE" }));
  });
});
