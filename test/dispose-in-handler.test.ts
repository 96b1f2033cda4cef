/**
 * Nothing is unmapped inside a turn: `server.stop()` from the last socket's `close` handler,
 * and `transport.dispose()` from any transport handler, used to unmap the rings and buffers
 * while the completion queue was still being walked (a segfault). Each case runs in a child
 * process (test/fixtures/dispose-in-handler.ts), so a crash fails the test instead of the runner.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { describeEachBackend, type RealBackendName } from "./support/backends.ts";

const FIXTURE = join(import.meta.dir, "fixtures/dispose-in-handler.ts");

function runScenario(scenario: string, backend: RealBackendName) {
  const child = Bun.spawnSync([process.execPath, FIXTURE, scenario, backend],
    { timeout: 15_000, stdout: "pipe", stderr: "pipe" });
  return { code: child.exitCode, signal: child.signalCode ?? "", out: child.stdout.toString().trim(),
    err: child.stderr.toString() };
}

describeEachBackend("dispose inside a handler (child process)", (backend) => {
  for (const scenario of ["server-stop-in-close", "dispose-in-data", "dispose-in-close",
    "dispose-in-end", "dispose-in-open"]) {
    test(scenario, () => {
      const result = runScenario(scenario, backend);
      if (result.code !== 0) console.error(result.err.slice(-2000));
      expect({ code: result.code, signal: result.signal, out: result.out })
        .toEqual({ code: 0, signal: "", out: `ok ${scenario}` });
    }, 20_000);
  }
});
