/**
 * Finds or builds build/no-io-uring (test/tools/no-io-uring.c): a launcher that runs a command
 * under a seccomp filter that makes io_uring_setup/enter/register fail with EPERM, as
 * Docker's and Kubernetes' default profiles do. Tests use it to get a real "io_uring is
 * forbidden" process:
 *
 *   const launcher = noIoUringLauncher();
 *   if (launcher.reason === "") Bun.spawnSync([launcher.path, process.execPath, "script.ts"]);
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..");
const source = join(root, "test", "tools", "no-io-uring.c");
const script = join(root, "test", "tools", "build-no-io-uring.sh");
export const NO_IO_URING_PATH = join(root, "build", "no-io-uring");

export interface Launcher {
  /** Absolute path of the launcher ("" when unavailable). */
  path: string;
  /** Why it cannot be used on this machine; "" when it can. */
  reason: string;
}

let cached: Launcher | undefined;

/** The launcher, built on first use when missing or older than its source; checked to run. */
export function noIoUringLauncher(): Launcher {
  if (cached !== undefined) return cached;
  cached = findOrBuild();
  if (cached.reason === "") {
    // The kernel may lack seccomp filters, or an outer sandbox may refuse another one.
    const probe = Bun.spawnSync([cached.path, "true"], { stderr: "pipe", timeout: 10_000 });
    if (probe.exitCode !== 0) {
      cached = { path: "", reason: `launcher cannot run here: ${probe.stderr.toString().trim()}` };
    }
  }
  return cached;
}

function findOrBuild(): Launcher {
  const fresh = existsSync(NO_IO_URING_PATH) &&
    statSync(NO_IO_URING_PATH).mtimeMs >= statSync(source).mtimeMs;
  if (fresh) return { path: NO_IO_URING_PATH, reason: "" };
  if (Bun.which("gcc") === null) {
    return { path: "", reason: "gcc not found (needed to build build/no-io-uring)" };
  }
  const build = Bun.spawnSync(["bash", script, NO_IO_URING_PATH],
    { stdout: "pipe", stderr: "pipe", timeout: 60_000 });
  if (build.exitCode !== 0) {
    return { path: "", reason: `building no-io-uring failed: ${build.stderr.toString().trim()}` };
  }
  return { path: build.stdout.toString().trim(), reason: "" };
}
