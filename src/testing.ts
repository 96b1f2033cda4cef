/**
 * `hioload-ws/testing`: the in-memory backend for your own tests. Run `serve({ backend:
 * new FakeTransport(network), clock })` and connect more `FakeTransport`s on the same
 * network as clients.
 */
export { FakeNetwork, type FakeNetworkOptions } from "./fake/fake-network.ts";
export { FakeTransport, type FakeTransportOptions } from "./fake/fake-transport.ts";
export { FakeClock } from "./fake/fake-clock.ts";
