/** The peer for bench/tcp-echo.ts: Bun's own TCP echo (Bun.listen), on argv[2]. */
import type { Socket } from "bun";

const port = Number(process.argv[2] ?? 9002);
// Bytes the kernel did not take yet, per socket: a correct echo never drops them.
const backlog = new Map<Socket<undefined>, Uint8Array>();

function flush(socket: Socket<undefined>, bytes: Uint8Array) {
  const written = socket.write(bytes);
  if (written < bytes.length) backlog.set(socket, bytes.slice(Math.max(0, written)));
  else backlog.delete(socket);
}

const server = Bun.listen({
  hostname: "127.0.0.1",
  port,
  socket: {
    data(socket, chunk) {
      const pending = backlog.get(socket);
      if (pending === undefined) flush(socket, chunk);
      else {
        const joined = new Uint8Array(pending.length + chunk.length);
        joined.set(pending);
        joined.set(chunk, pending.length);
        backlog.set(socket, joined);
      }
    },
    drain(socket) {
      const pending = backlog.get(socket);
      if (pending !== undefined) flush(socket, pending);
    },
    close(socket) {
      backlog.delete(socket);
    },
  },
});
console.log(`Bun.listen echo listening on :${server.port}`);
