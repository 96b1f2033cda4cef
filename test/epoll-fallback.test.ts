/**
 * "auto" where io_uring is forbidden, for real: the echo server runs under
 * build/no-io-uring (a seccomp filter that fails io_uring_setup with EPERM, as Docker's
 * default profile does), falls back to epoll, says why once on stderr, and serves a real
 * client; with threads per core too. HIOLOAD_BACKEND=epoll forces it anywhere.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { noIoUringLauncher } from "./tools/no-io-uring.ts";

const launcher = noIoUringLauncher();
if (launcher.reason) console.log(`[skip] io_uring-forbidden fallback: ${launcher.reason}`);
const FIXTURE = join(import.meta.dir, "fixtures/fallback-echo.ts");

function run(command: string[], env: Record<string, string> = {}) {
  const child = Bun.spawnSync(command, { timeout: 20_000, stdout: "pipe", stderr: "pipe",
    env: { ...process.env, ...env } });
  const lines = child.stdout.toString().trim().split("\n");
  return { code: child.exitCode, out: JSON.parse(lines.pop() || "{}"), err: child.stderr.toString() };
}

describe("backend selection", () => {
  test.skipIf(launcher.reason !== "")("under a seccomp profile that forbids io_uring: epoll, said once, echo works", () => {
    const result = run([launcher.path, process.execPath, FIXTURE]);
    expect(result).toMatchObject({ code: 0, out: { backend: "epoll", echo: "through epoll?" } });
    const said = result.err.split("\n").filter((line) => line.includes("using epoll"));
    expect(said.length).toBe(1);
    expect(said[0]).toContain("io_uring_setup: EPERM");
  }, 30_000);

  test.skipIf(launcher.reason !== "")("threads per core under the same profile: every worker on epoll", () => {
    const result = run([launcher.path, process.execPath, FIXTURE, "2"]);
    expect(result).toMatchObject({ code: 0, out: { backend: "epoll", echo: "through epoll?" } });
  }, 30_000);

  test("HIOLOAD_BACKEND=epoll forces epoll, with no fallback line", () => {
    const result = run([process.execPath, FIXTURE], { HIOLOAD_BACKEND: "epoll" });
    expect(result).toMatchObject({ code: 0, out: { backend: "epoll", echo: "through epoll?" } });
    expect(result.err).not.toContain("using epoll");
  }, 30_000);
});
