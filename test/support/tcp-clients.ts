/** Real TCP peers (Bun.connect) for loopback tests of real backends; every wait is bounded. */
import type { Socket } from "bun";
import { withTimeout } from "./wait-for.ts";

/**
 * Connect, send `payload` (in pieces, honouring backpressure), collect the same number of
 * bytes back, then close. Resolves with what came back.
 */
export function echoOnce(port: number, payload: Uint8Array, timeoutMs = 10_000) {
  return withTimeout(new Promise<Uint8Array>((resolve, reject) => {
    const received = new Uint8Array(payload.length);
    let receivedLength = 0;
    let written = 0;
    const pump = (socket: Socket<undefined>) => {
      while (written < payload.length) {
        const n = socket.write(payload.subarray(written, Math.min(payload.length, written + 65536)));
        if (n <= 0) return;
        written += n;
      }
    };
    Bun.connect({
      hostname: "127.0.0.1", port,
      socket: {
        open: pump,
        drain: pump,
        data(socket, chunk) {
          received.set(chunk, receivedLength);
          receivedLength += chunk.length;
          if (receivedLength >= payload.length) {
            socket.end();
            resolve(received);
          }
        },
        close() {
          if (receivedLength < payload.length) {
            reject(new Error(`closed after ${receivedLength}/${payload.length} bytes`));
          }
        },
        error(_, error) {
          reject(error);
        },
      },
    }).catch(reject);
  }), timeoutMs, `echo of ${payload.length} bytes on :${port}`);
}
