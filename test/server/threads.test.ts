/**
 * serve({ threads }) end to end, in a child process (workers re-run the entry module, which
 * must be a script of its own, not the test runner).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ioUringUnavailable } from "../support/platform.ts";

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] threads: ${skipReason}`);

describe("threads per core", () => {
  test.skipIf(skipReason !== "")("workers share the port, survive a crash, stop together", () => {
    const child = Bun.spawnSync([process.execPath, join(import.meta.dir, "../fixtures/threads-server.ts")],
      { timeout: 30_000, stderr: "pipe" });
    const stdout = child.stdout.toString().trim();
    const findings = JSON.parse(stdout.split("\n").pop() || "{}");
    expect(child.exitCode).toBe(0);
    expect(findings.threads).toBe(2);
    expect(findings.distinctWorkers).toBe(2); // SO_REUSEPORT spread 40 connections over both
    expect(findings.echo).toBe("hello");
    expect(findings.messagesIn).toBeGreaterThanOrEqual(41);
    expect(findings.afterRestart).toBe(true);
    expect(findings.stopCode).toBe(1001);
    expect(child.stderr.toString()).toContain("restarting it");
  }, 40_000);
});
