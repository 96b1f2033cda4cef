/**
 * Pub/sub across worker threads, end to end, in child processes (workers re-run the entry
 * module, which must be a script of its own): see test/fixtures/threads-pubsub*.ts.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ioUringUnavailable } from "../support/platform.ts";

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] threads pub/sub: ${skipReason}`);

/** Run a fixture as its own process (killed after `timeoutMs`); its last stdout line, parsed. */
function runFixture(name: string, timeoutMs: number, env: Record<string, string> = {}) {
  const child = Bun.spawnSync([process.execPath, join(import.meta.dir, "../fixtures", name)], {
    timeout: timeoutMs, stderr: "pipe", env: { ...process.env, ...env },
  });
  const lastLine = child.stdout.toString().trim().split("\n").pop() || "{}";
  let findings: Record<string, unknown>;
  try {
    findings = JSON.parse(lastLine);
  } catch {
    findings = { output: lastLine };
  }
  return { exitCode: child.exitCode, stderr: child.stderr.toString(), findings };
}

describe("pub/sub across worker threads", () => {
  for (const deflate of [false, true]) {
  test.skipIf(skipReason !== "")(`every subscriber on every worker gets each publish once, in order per publisher${
    deflate ? " (permessage-deflate)" : ""}`, () => {
    const { exitCode, stderr, findings } = runFixture("threads-pubsub.ts", 15_000,
      { THREADS_PUBSUB_DEFLATE: deflate ? "1" : "0" });
    if (findings.error !== undefined) console.error(findings.error, stderr);
    expect(findings.error).toBeUndefined();
    expect(findings.workers).toBe(2); // three clients on each worker
    expect(findings.subscriberCount).toBe(6); // the main thread: the total
    expect(findings.countOnWorkers).toBe(Array(6).fill("count:6").join(",")); // each worker: the total
    expect(findings.bursts).toBe("ok");
    expect(findings.mainResults).toBe(true); // server.publish on the main thread: byte counts
    expect(findings.mainNoSubscribers).toBe(0);
    expect(findings.fromMain).toBe(true);
    expect(findings.big300000).toBe(true); // more than a record: in parts
    expect(findings.big3000000).toBe(true); // more than the whole ring
    expect(findings.mainBigResult).toBe(500_000);
    expect(findings.mainBig).toBe(true);
    // 6 × 200 bursts, 22 main-thread publishes to both workers, 2 big ones: once per worker.
    expect(findings.sentToWorkers).toBe(6 * 200 + 22 * 2 + 2);
    expect(findings.receivedFromWorkers).toBe(findings.sentToWorkers);
    expect(findings.droppedToWorkers).toBe(0);
    expect(findings.queuedToWorkers).toBe(0);
    expect(findings.delivered).toBe(6 * 200 * 5 + 22 * 6 + 2 * 5);
    // Compressed: the three big publishes (the bursts are under the threshold), once on each
    // worker whatever its subscriber count; they crossed uncompressed.
    expect(findings.compressedSockets).toBe(deflate ? 6 : 0);
    expect(findings.messagesCompressed).toBe(deflate ? 3 * 2 : 0);
    expect(findings.stopped).toBe(true);
    expect(exitCode).toBe(0);
  }, 20_000);
  }

  test.skipIf(skipReason !== "")("a worker that dies leaves pub/sub between the others working; its replacement joins in", () => {
    const { exitCode, stderr, findings } = runFixture("threads-pubsub-crash.ts", 15_000);
    if (findings.error !== undefined) console.error(findings.error, stderr);
    expect(findings.error).toBeUndefined();
    expect(findings.before).toBe("ok");
    expect(findings.deadCloses).toBe(2);
    expect(findings.afterDeath).toBe("ok"); // the counts dropped to the survivors' 4 first
    expect(findings.fromMainAfterDeath).toBe(true);
    expect(findings.withReplacement).toBe("ok");
    expect(findings.droppedToWorkers).toBe(0);
    expect(findings.queuedToWorkers).toBe(0);
    expect(findings.stopped).toBe(true);
    expect(stderr).toContain("restarting it");
    expect(exitCode).toBe(0);
  }, 20_000);
});
