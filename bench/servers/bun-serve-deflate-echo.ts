/**
 * Peer for bench/deflate-echo.ts: Bun.serve's WebSocket echo with `perMessageDeflate: true`,
 * on 127.0.0.1, argv[2] (0: a free port, printed in the ready line).
 *
 *   bun bench/servers/bun-serve-deflate-echo.ts PORT [off]
 *
 * Bun 1.4.5 compresses a send only when its second argument is true (`ws.send(m, true)`):
 * without it a negotiated socket still gets every message uncompressed. So this echo passes
 * true, which compresses every reply (all of the bench's messages are 4 KiB). "off": no
 * perMessageDeflate, a plain ws.send(m).
 */
const off = process.argv[3] === "off";
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch(request, server) {
    if (server.upgrade(request)) return;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    backpressureLimit: 16 * 1024 * 1024,
    idleTimeout: 120,
    perMessageDeflate: !off,
    message(ws, message) {
      if (off) ws.send(message);
      else ws.send(message, true);
    },
  },
});
console.log(`Bun.serve deflate echo${off ? " (off)" : ""} listening on :${server.port}`);
