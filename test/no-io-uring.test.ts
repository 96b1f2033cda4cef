/**
 * A real "io_uring is forbidden" environment: test/tools/no-io-uring.c installs a seccomp
 * filter like Docker's default profile (io_uring_setup/enter/register → EPERM) and execs
 * Bun. There the ring cannot be made and says why; outside it the same script works.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { EPERM } from "../src/api/errno.ts";
import { ioUringUnavailable } from "./support/platform.ts";
import { noIoUringLauncher } from "./tools/no-io-uring.ts";

const root = join(import.meta.dir, "..");
const launcher = noIoUringLauncher();
const launcherReason = launcher.reason;
const uringReason = ioUringUnavailable();
if (launcherReason) console.log(`[skip] no-io-uring launcher: ${launcherReason}`);
if (uringReason) console.log(`[skip] io_uring outside the launcher: ${uringReason}`);

function named(name: string, reason: string): string {
  return reason ? `${name} (skipped: ${reason})` : name;
}

// Makes a ring and an epoll fd; prints one JSON line with what happened to each.
const probe = `
import { UringRing } from ${JSON.stringify(join(root, "src/reactor/uring-ring.ts"))};
import { closeFd, epollCreate } from ${JSON.stringify(join(root, "src/ffi/epoll.ts"))};
import { uring } from ${JSON.stringify(join(root, "src/ffi/uring.ts"))};
const out = { source: uring().source, ring: null, epoll: false };
try {
  new UringRing({ entries: 2 }).close();
  out.ring = { ok: true };
} catch (e) {
  out.ring = { ok: false, name: e?.name, call: e?.call, errno: e?.errno, code: e?.code,
    hint: e?.hint, message: String(e?.message ?? e) };
}
try { closeFd(epollCreate()); out.epoll = true; } catch {}
console.log(JSON.stringify(out));
`;

interface ProbeResult {
  source: "liburing" | "syscall";
  ring: { ok: boolean; name?: string; call?: string; errno?: number; code?: string;
    hint?: string; message?: string };
  epoll: boolean;
}

function runProbe(prefix: string[], env: Record<string, string> = {}): ProbeResult {
  const result = Bun.spawnSync([...prefix, process.execPath, "-e", probe], {
    cwd: root, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", timeout: 30_000,
  });
  const stdout = result.stdout.toString().trim();
  if (result.exitCode !== 0 || stdout === "") {
    throw new Error(`probe exited ${result.exitCode}: ${result.stderr.toString()}`);
  }
  return JSON.parse(stdout.split("\n").pop()!) as ProbeResult;
}

describe("io_uring forbidden by seccomp (no-io-uring launcher)", () => {
  // "default": liburing.so.2 when installed, else syscall(); "syscall": forced.
  for (const path of ["default", "syscall"] as const) {
    test.skipIf(launcherReason !== "")(
      named(`io_uring_setup fails with EPERM and a seccomp hint (${path} path); epoll still works`,
        launcherReason), () => {
        const env: Record<string, string> = path === "syscall" ? { HIOLOAD_NO_LIBURING: "1" } : {};
        const result = runProbe([launcher.path], env);
        if (path === "syscall") expect(result.source).toBe("syscall");
        expect(result.ring.ok).toBe(false);
        expect(result.ring.name).toBe("SystemError");
        expect(result.ring.call).toBe("io_uring_setup");
        expect(result.ring.errno).toBe(EPERM);
        expect(result.ring.code).toBe("EPERM");
        expect(result.ring.hint).toContain("seccomp");
        expect(result.ring.hint).toContain("io_uring_disabled");
        expect(result.ring.message).toContain("io_uring_setup failed: EPERM");
        expect(result.epoll).toBe(true);
      });
  }

  const bothReason = launcherReason || uringReason;
  test.skipIf(bothReason !== "")(
    named("the same script outside the launcher makes its ring", bothReason), () => {
      const result = runProbe([]);
      expect(result.ring).toEqual({ ok: true });
      expect(result.epoll).toBe(true);
    });

  test.skipIf(launcherReason !== "")(
    named("the launcher reports usage and exec failures", launcherReason), () => {
      const usage = Bun.spawnSync([launcher.path], { stderr: "pipe", timeout: 10_000 });
      expect(usage.exitCode).toBe(2);
      expect(usage.stderr.toString()).toContain("usage:");
      const missing = Bun.spawnSync([launcher.path, "/nonexistent/command"],
        { stderr: "pipe", timeout: 10_000 });
      expect(missing.exitCode).toBe(127);
      expect(missing.stderr.toString()).toContain("/nonexistent/command");
      // The exec'd command itself runs under the filter (Seccomp: 2 = filter mode).
      const status = Bun.spawnSync([launcher.path, "grep", "^Seccomp:", "/proc/self/status"],
        { stdout: "pipe", timeout: 10_000 });
      expect(status.stdout.toString()).toMatch(/Seccomp:\s+2/);
    });
});
