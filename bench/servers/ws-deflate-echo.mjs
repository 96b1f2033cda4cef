// Peer for bench/deflate-echo.ts: the `ws` package's echo with perMessageDeflate on (ws's
// defaults: context takeover both ways, threshold 1024 B, zlib's default level), run with
// `node` or `bun`, on argv[2] (0: a free port, printed in the ready line).
import { WebSocketServer } from "ws";

const server = new WebSocketServer({ host: "127.0.0.1", port: Number(process.argv[2] ?? 0),
  maxPayload: 16 * 1024 * 1024, perMessageDeflate: true });
server.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
});
server.on("listening", () => console.log(`ws deflate echo listening on :${server.address().port}`));
