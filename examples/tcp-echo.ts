/**
 * A raw TCP echo server on the io_uring transport: `bun examples/tcp-echo.ts [port]`
 * (default 9001). Shows the transport contract with nothing above it; Ctrl-C stops it.
 */
import { createTransport } from "../src/index.ts";

const port = Number(process.argv[2] ?? process.env.PORT ?? 9001);
const transport = createTransport("auto");

const listener = transport.listen({ hostname: "0.0.0.0", port }, {
  onOpen() {},
  // `data` is a view into pool memory, valid during this call: send() copies it out.
  onData(conn, data, start, end) {
    transport.send(conn, data, start, end);
  },
  onDrain() {},
  onEnd() {},
  onClose() {},
});

console.log(`TCP echo (${transport.backend}) listening on :${transport.listenerPort(listener)}`);

async function shutdown() {
  await transport.dispose();
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
