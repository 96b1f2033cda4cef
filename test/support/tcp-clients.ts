/** Real TCP peers (Bun.connect) for loopback tests of real backends; every wait is bounded. */
import type { Socket } from "bun";

export function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Poll `predicate` every few ms until true, or fail with `label` after `timeoutMs`. */
export async function waitUntil(predicate: () => boolean, timeoutMs: number, label: string) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${label}`);
    await Bun.sleep(2);
  }
}

export function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

export interface EchoResult { received: Uint8Array; closedBy: "peer" | "us" }

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
