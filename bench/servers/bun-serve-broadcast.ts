/**
 * Peer for bench/broadcast.ts: Bun.serve relaying every message to every socket, either with
 * a loop of ws.send (argv[3] "loop", like the hioload-ws server) or uWS's native pub/sub
 * (argv[3] "publish": every socket subscribes to one topic).
 */
import type { ServerWebSocket } from "bun";

const mode = process.argv[3] ?? "loop";
const peers = new Set<ServerWebSocket<unknown>>();
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 9004),
  fetch(request, server) {
    if (server.upgrade(request)) return;
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    backpressureLimit: 16 * 1024 * 1024,
    open(ws) {
      if (mode === "publish") ws.subscribe("all");
      else peers.add(ws);
    },
    close(ws) {
      peers.delete(ws);
    },
    message(ws, message) {
      if (mode === "publish") {
        ws.publish("all", message);
        ws.send(message); // publish skips the sender
      } else {
        for (const peer of peers) peer.send(message);
      }
    },
  },
});
console.log(`Bun.serve broadcast (${mode}) listening on :${server.port}`);
