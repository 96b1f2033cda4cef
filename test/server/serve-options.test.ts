/** serve({ backend }): a name, or a Transport the caller made (and the server then owns). */
import { describe, expect, test } from "bun:test";
import { FakeNetwork } from "../../src/fake/fake-network.ts";
import { FakeTransport } from "../../src/fake/fake-transport.ts";
import { serve } from "../../src/server/serve.ts";
import { withTimeout } from "../support/wait-for.ts";

const websocket = { message() {} };

describe("serve({ backend })", () => {
  test("an injected transport serves, and stop() disposes it", async () => {
    const transport = new FakeTransport(new FakeNetwork());
    const server = serve({ port: 0, backend: transport, websocket });
    expect(server.stats().backend).toBe("fake");
    await withTimeout(server.stop(), 2000, "stop");
    expect(() => transport.listen({ port: 0 }, {
      onOpen() {}, onData() {}, onDrain() {}, onEnd() {}, onClose() {},
    })).toThrow(expect.objectContaining({ code: "WS_ERR_DISPOSED" }));
  });

  test('"fake" by name says how to inject it; unknown names are refused with the list', () => {
    expect(() => serve({ port: 0, backend: "fake" as never, websocket }))
      .toThrow(/new FakeTransport\(network\)/);
    expect(() => serve({ port: 0, backend: "uring" as never, websocket }))
      .toThrow(/unknown backend "uring" \(one of auto, io_uring, epoll, bun, iocp, or a Transport\)/);
  });

  test("threads need a backend by name", () => {
    expect(() => serve({ port: 0, threads: 2, backend: new FakeTransport(new FakeNetwork()), websocket }))
      .toThrow(expect.objectContaining({ code: "WS_ERR_BAD_OPTION" }));
  });
});
