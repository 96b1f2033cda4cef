// Peer for the benchmarks: the `ws` package's echo server, run with `node` or `bun`, on argv[2].
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? 9003);
const server = new WebSocketServer({ host: "127.0.0.1", port, maxPayload: 16 * 1024 * 1024 });
server.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
});
server.on("listening", () => console.log(`ws echo listening on :${port}`));
