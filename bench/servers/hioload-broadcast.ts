/**
 * Peer for bench/broadcast.ts (hioload-ws): every message goes to every connected socket,
 * either with a loop of ws.send (argv[3] "loop") or pub/sub (argv[3] "publish": every socket
 * subscribes to one topic, and the sender publishes to it and sends itself a copy, as the
 * Bun.serve peer does).
 */
import { serve } from "../../src/index.ts";
import type { ServerWebSocket } from "../../src/api/websocket.ts";

const mode = process.argv[3] ?? "loop";
const peers = new Set<ServerWebSocket>();
const server = serve({
  port: Number(process.argv[2] ?? 9003),
  hostname: "127.0.0.1",
  maxConnections: 65_536,
  websocket: {
    maxPayloadLength: 16 * 1024 * 1024,
    open(ws) {
      if (mode === "publish") ws.subscribe("all");
      else peers.add(ws);
    },
    close: (ws) => void peers.delete(ws),
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
await server.ready;
console.log(`hioload-ws broadcast (${mode}) listening on :${server.port}`);
