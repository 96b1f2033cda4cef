/**
 * Compile-time check (tsc runs over test/): the annotations a Bun.serve app carries compile
 * against hioload-ws's types with only the import changed. Nothing here runs.
 */
import { serve, type Server, type ServerWebSocket, type WebSocketHandler } from "../../src/index.ts";

interface Data {
  user: string;
}

const clients = new Set<ServerWebSocket<Data>>();

const handler: WebSocketHandler<Data> = {
  maxPayloadLength: 1 << 20,
  idleTimeout: 60,
  backpressureLimit: 1 << 20,
  closeOnBackpressureLimit: false,
  sendPings: true,
  publishToSelf: false,
  perMessageDeflate: false,
  open(ws: ServerWebSocket<Data>) {
    clients.add(ws);
    ws.subscribe("lobby");
    ws.send(`hello ${ws.data.user}`, false);
  },
  message(ws: ServerWebSocket<Data>, message: string | Buffer) {
    if (typeof message === "string") ws.publish("lobby", message);
    else ws.sendBinary(message.subarray(0, 4));
    ws.binaryType = "arraybuffer";
  },
  close(ws: ServerWebSocket<Data>, code: number, reason: string) {
    clients.delete(ws);
    void code;
    void reason;
  },
  drain(ws) {
    void ws.getBufferedAmount();
  },
  ping(_ws, data: Buffer) {
    void data.length;
  },
};

export function start(): Server<Data> {
  const server: Server<Data> = serve<Data, "/chat">({
    port: 0,
    fetch(req: Request, server: Server<Data>) {
      if (server.upgrade(req, { data: { user: "a" }, headers: { "Set-Cookie": "x=1" } })) return;
      return new Response(`${server.pendingWebSockets} ${server.url.href}`);
    },
    error(error) {
      return new Response(String(error), { status: 500 });
    },
    development: false,
    websocket: handler,
  });
  server.publish("lobby", "hi");
  void server.subscriberCount("lobby");
  void server.requestIP;
  void [server.pendingRequests, server.id, server.development];
  server.reload({ fetch: () => new Response("v2"), websocket: handler });
  return server;
}
