/** Peer for the benchmarks: Bun.serve's WebSocket echo (uWebSockets inside), on argv[2]. */
const port = Number(process.argv[2] ?? 9002);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(request, server) {
    if (server.upgrade(request)) return;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    idleTimeout: 120,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`Bun.serve WebSocket echo listening on :${server.port}`);
