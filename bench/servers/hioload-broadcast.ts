/** Peer for bench/broadcast.ts: every message goes to every connected socket (hioload-ws). */
import { serve } from "../../src/index.ts";
import type { ServerWebSocket } from "../../src/api/websocket.ts";

const peers = new Set<ServerWebSocket>();
const server = serve({
  port: Number(process.argv[2] ?? 9003),
  hostname: "127.0.0.1",
  maxPayloadLength: 16 * 1024 * 1024,
  websocket: {
    open: (ws) => void peers.add(ws),
    close: (ws) => void peers.delete(ws),
    message(_, message) {
      for (const peer of peers) peer.send(message);
    },
  },
});
await server.ready;
console.log(`hioload-ws broadcast listening on :${server.port}`);
