/**
 * The whole server on the in-memory fake backend, for tests: a FakeNetwork, a FakeClock, a
 * server recording its sockets and closes, and a client transport on the same network.
 */
import type { Server, ServerWebSocket, ServeOptions } from "../../src/api/websocket.ts";
import { FakeClock } from "../../src/fake/fake-clock.ts";
import { FakeNetwork, type FakeNetworkOptions } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import { TestWsClient } from "./ws-client.ts";

/** The network's seed (HIOLOAD_FAKE_SEED to replay another). */
export const FAKE_SEED = Number(process.env.HIOLOAD_FAKE_SEED ?? 7);
const running: Server[] = [];

/** For afterEach: stop (abort) every server started since the last call. */
export async function stopFakeServers(): Promise<void> {
  for (const server of running.splice(0)) await server.stop("abort");
}

export interface Harness<T> {
  server: Server;
  client: (options?: Parameters<typeof TestWsClient.connect>[2]) => TestWsClient;
  clock: FakeClock;
  network: FakeNetwork;
  clientTransport: FakeTransport;
  closes: { code: number; reason: string }[];
  sockets: ServerWebSocket<T>[];
}

export function startFakeServer<T = undefined>(options: Partial<ServeOptions<T>> = {},
  networkOptions: FakeNetworkOptions = {}): Harness<T> {
  const network = new FakeNetwork({ seed: FAKE_SEED, ...networkOptions });
  const clock = new FakeClock();
  const closes: { code: number; reason: string }[] = [];
  const sockets: ServerWebSocket<T>[] = [];
  const server = serve<T>({
    port: 0, clock,
    ...options,
    backend: new FakeTransport(network, { maxConnections: options.maxConnections, ...options.transport }),
    websocket: {
      open: (ws) => void sockets.push(ws),
      message: (ws, message) => void ws.send(message),
      close: (_, code, reason) => void closes.push({ code, reason }),
      ...options.websocket,
    },
  } as ServeOptions<T>);
  running.push(server);
  const clientTransport = new FakeTransport(network, { poisonAfterCallback: false });
  return {
    server, clock, network, clientTransport, closes, sockets,
    client: (connectOptions = {}) => TestWsClient.connect(clientTransport, server.port, connectOptions),
  };
}
