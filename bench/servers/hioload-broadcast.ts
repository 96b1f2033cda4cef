/**
 * Peer for bench/broadcast.ts (hioload-ws): every message goes to every connected socket,
 * either with a loop of ws.send (argv[3] "loop") or pub/sub (argv[3] "publish": every socket
 * subscribes to one topic, and the sender publishes to it and sends itself a copy, as the
 * Bun.serve peer does). argv[4] (or THREADS): serve({ threads }), 0 by default; with
 * threads the "loop" mode reaches only the sender's worker's sockets, "publish" every worker's.
 */
import { isMainThread } from "node:worker_threads";
import { serve } from "../../src/index.ts";
import type { ServerWebSocket } from "../../src/api/websocket.ts";

// Workers re-run this module without argv (Bun gives them none): they read it from the env.
if (isMainThread) process.env.HIOLOAD_BROADCAST_ARGS = JSON.stringify(process.argv.slice(2));
const args: string[] = JSON.parse(process.env.HIOLOAD_BROADCAST_ARGS ?? "[]");
const mode = args[1] ?? "loop";
const threads = Number(args[2] ?? process.env.THREADS ?? 0);
const peers = new Set<ServerWebSocket>();
const server = serve({
  port: Number(args[0] ?? 9003),
  hostname: "127.0.0.1",
  maxConnections: 65_536,
  threads,
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
if (isMainThread) console.log(`hioload-ws broadcast (${mode}) listening on :${server.port}${threads > 0 ? `, ${threads} threads` : ""}`);
