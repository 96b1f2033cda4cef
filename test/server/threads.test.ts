/**
 * serve({ threads }) end to end, in a child process (workers re-run the entry module, which
 * must be a script of its own, not the test runner).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ioUringUnavailable } from "../support/platform.ts";

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] threads: ${skipReason}`);

interface FixtureRun {
  /** null when the child was killed (it outlived `timeoutMs`). */
  exitCode: number | null;
  stderr: string;
  /** The child's last stdout line, parsed (fixtures print one JSON line of findings). */
  findings: Record<string, unknown>;
  elapsedMs: number;
}

/** Run a fixture entry module as its own process; kill it after `timeoutMs`. */
function runFixture(name: string, timeoutMs: number, env: Record<string, string> = {}): FixtureRun {
  const started = performance.now();
  const child = Bun.spawnSync([process.execPath, join(import.meta.dir, "../fixtures", name)], {
    timeout: timeoutMs, stderr: "pipe", env: { ...process.env, ...env },
  });
  const lastLine = child.stdout.toString().trim().split("\n").pop() || "{}";
  let findings: Record<string, unknown> = {};
  try {
    findings = JSON.parse(lastLine);
  } catch {
    findings = { output: lastLine };
  }
  return { exitCode: child.exitCode, stderr: child.stderr.toString(), findings, elapsedMs: performance.now() - started };
}

describe("threads per core", () => {
  test.skipIf(skipReason !== "")("workers share the port, survive a crash, stop together", () => {
    const { exitCode, stderr, findings } = runFixture("threads-server.ts", 30_000);
    expect(exitCode).toBe(0);
    expect(findings.threads).toBe(2);
    expect(findings.distinctWorkers).toBe(2); // SO_REUSEPORT spread 40 connections over both
    expect(findings.echo).toBe("hello");
    expect(findings.messagesIn).toBeGreaterThanOrEqual(41);
    expect(findings.afterRestart).toBe(true);
    expect(findings.stopCode).toBe(1001);
    expect(stderr).toContain("restarting it");
  }, 40_000);

  test.skipIf(skipReason !== "")("stop() before ready starts no further worker, rejects ready, and the process exits", () => {
    const { exitCode, findings } = runFixture("threads-stop-early.ts", 10_000);
    expect(findings.ready).toMatch(/^rejected: .*stop\(\)/);
    expect(findings.acceptingAfterStop).toBe(false);
    expect(findings.acceptingLater).toBe(false);
    expect(exitCode).toBe(0); // null: killed at the timeout, something kept the process alive
  }, 15_000);

  test.skipIf(skipReason !== "")("stop() resolves although every worker keeps a timer alive", () => {
    const { exitCode, findings } = runFixture("threads-timer.ts", 10_000);
    expect(findings.closeCode).toBe(1001);
    expect(findings.stopMs).toBeLessThan(500 + 3000); // closeTimeout + the supervisor's margin
    expect(exitCode).toBe(0);
  }, 15_000);

  test.skipIf(skipReason !== "")("workers that keep dying make the process exit non-zero", () => {
    const { exitCode, stderr } = runFixture("threads-crash-loop.ts", 20_000, { CRASH: "exit" });
    expect(stderr).toContain("exited (3)");
    expect(stderr).toContain("not restarting it");
    expect(stderr).toContain("no worker is left serving");
    expect(exitCode).toBe(1);
  }, 25_000);

  test.skipIf(skipReason !== "")("a worker killed by an unhandled rejection is logged with its reason and a non-zero code", () => {
    const { exitCode, stderr } = runFixture("threads-crash-loop.ts", 20_000, { CRASH: "reject" });
    expect(stderr).toContain("a promise nobody awaited");
    expect(stderr).not.toContain("exited (0)");
    expect(stderr).toContain("exited (1)");
    expect(exitCode).toBe(1);
  }, 25_000);

  test.skipIf(skipReason !== "")("stop(false) after a graceful stop() drops a silent peer at once", () => {
    const { exitCode, findings } = runFixture("threads-escalate.ts", 15_000);
    expect(findings.closeCode).toBe(1001); // the graceful stop reached it first
    expect(findings.samePromise).toBe(true);
    expect(findings.droppedAfterMs).toBeLessThan(1000); // not after closeTimeout (3000 ms)
    expect(exitCode).toBe(0);
  }, 20_000);

  test.skipIf(skipReason !== "")("stop() drains: no new connections, open sockets go on, resolves once they leave", () => {
    const { exitCode, findings, stderr } = runFixture("threads-drain.ts", 20_000);
    expect(findings).toEqual({
      refusedDuringDrain: true, echo: "still here", resolvedWhileOpen: false, closeCode: 1000, resolved: true,
    });
    expect(exitCode, stderr).toBe(0);
  }, 25_000);
});
