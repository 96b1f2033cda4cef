/**
 * The raw WebSocket echo servers of bench/raw/ (C: epoll and io_uring, the least work a
 * WebSocket echo can do), built with gcc -O2 into /tmp, one binary per hash of the sources
 * (a rebuild only when they change). A variant that cannot be built (no gcc, no liburing
 * headers, a compile error) is skipped, with the reason.
 */
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { repositoryRoot } from "./wsload.ts";

export type RawKind = "epoll" | "io_uring";

export interface RawEcho {
  kind: RawKind;
  /** The binary, or undefined when it could not be built. */
  binary?: string;
  /** Why it was not built. */
  skipped?: string;
}

const rawDir = join(repositoryRoot, "bench", "raw");
const variants: { kind: RawKind; source: string; libs: string[]; header?: string }[] = [
  { kind: "epoll", source: "echo-epoll.c", libs: [] },
  { kind: "io_uring", source: "echo-uring.c", libs: ["-luring"], header: "/usr/include/liburing.h" },
];

/** Builds (or finds built) both variants. */
export function buildRawEchoes(): RawEcho[] {
  const gcc = Bun.which("gcc");
  const shared = readFileSync(join(rawDir, "ws-echo.h"), "utf8");
  return variants.map(({ kind, source, libs, header }): RawEcho => {
    if (!gcc) return { kind, skipped: "gcc not found" };
    if (header && !existsSync(header)) return { kind, skipped: `${header} missing (install liburing-dev)` };
    const path = join(rawDir, source);
    const flags = ["-O2", "-Wall"];
    const hash = Bun.hash(readFileSync(path, "utf8") + shared + flags.join(" ") + libs.join(" ")).toString(16);
    const binary = `/tmp/hioload-raw-${source.replace(/\.c$/, "")}-${hash}`;
    if (existsSync(binary)) return { kind, binary };
    const partial = `${binary}.${process.pid}`; // renamed once whole: a concurrent run never sees half a binary
    const built = Bun.spawnSync([gcc, ...flags, "-o", partial, path, ...libs], { stderr: "pipe" });
    if (built.exitCode !== 0) {
      return { kind, skipped: `gcc failed: ${built.stderr.toString().trim().split("\n").slice(0, 3).join(" / ")}` };
    }
    renameSync(partial, binary);
    return { kind, binary };
  });
}
