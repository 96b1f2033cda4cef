/**
 * Hostile WebSocket clients for tests on real loopback: they do the upgrade, then write
 * masked frames and never read, so the server's send queue for them only grows. Built on a
 * client-side transport of a real backend (paused: its kernel buffers fill, then the
 * server's queue).
 */
import { CloseMode, type TransportHandler } from "../../src/api/transport.ts";
import { OPCODE_BINARY } from "../../src/protocol/constants.ts";
import { writeFrame } from "../../src/protocol/frame-writer.ts";
import type { Transport } from "../../src/api/transport.ts";
import { createRealTransport, type RealBackendName } from "./backends.ts";
import { waitFor } from "./wait-for.ts";
import { TestWsClient } from "./ws-client.ts";

export interface HogOptions {
  /** Frames of this opcode (binary echo requests, or pings). */
  opcode?: number;
  payloadBytes: number;
  /** Stop after writing this many payload bytes. */
  totalBytes: number;
}

export interface Hog {
  readonly conn: number;
  /** Payload bytes handed to the client transport so far. */
  written: number;
  /** onClose's reason once the server ended the connection, else null. */
  closed: number | null;
}

/** A transport for hogs; dispose it at the end of the test. */
export function hogTransport(backend: RealBackendName = "io_uring"): Transport {
  return createRealTransport(backend, { maxConnections: 64, sendChunkCount: 4096 });
}

/**
 * Connect a hog, upgrade, then keep `totalBytes` of frames flowing out (in the background,
 * throttled by the client's own queue) without ever reading. Resolves once it is connected.
 */
export async function openHog(transport: Transport, port: number, options: HogOptions): Promise<Hog> {
  const payload = new Uint8Array(options.payloadBytes).fill(0x61);
  const frame = new Uint8Array(payload.length + 14);
  const frameBytes = writeFrame(frame, 0, options.opcode ?? OPCODE_BINARY, true, false, payload, 0,
    payload.length, 0x1234abcd);
  let opened = false;
  const hog: Hog = { conn: -1, written: 0, closed: null };
  const handler: TransportHandler = {
    onOpen: (conn) => {
      opened = true;
      const request = new TextEncoder().encode(TestWsClient.request());
      transport.send(conn, request, 0, request.length);
      transport.pause(conn); // never read: not even the 101
    },
    onData() {},
    onDrain: () => pump(),
    onEnd() {},
    onClose: (_, reason) => void (hog.closed = reason),
  };
  const pump = () => {
    while (hog.closed === null && hog.written < options.totalBytes &&
      transport.bufferedAmount(hog.conn) < 1 << 20) {
      if (transport.send(hog.conn, frame, 0, frameBytes) < 0) return;
      hog.written += payload.length;
    }
  };
  (hog as { conn: number }).conn = transport.connect("127.0.0.1", port, handler);
  await waitFor(() => opened || hog.closed !== null, 5000, "hog connected");
  pump();
  return hog;
}

/** Drop a hog (a reset), as a crashed client would. */
export function dropHog(transport: Transport, hog: Hog): void {
  if (hog.closed === null) transport.close(hog.conn, CloseMode.Abort);
}
