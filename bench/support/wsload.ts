/**
 * The independent C load generator (../shared/tools/wsload.c, or $WSLOAD_SRC) built with gcc
 * into /tmp once per run, and CPU pinning for benchmark processes.
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

export const repositoryRoot = join(import.meta.dir, "..", "..");

/** Path of the built wsload binary, or undefined when gcc or the source is missing. */
export function buildWsload(): string | undefined {
  const source = process.env.WSLOAD_SRC ?? join(repositoryRoot, "..", "shared", "tools", "wsload.c");
  const binary = "/tmp/hioload-wsload";
  if (!existsSync(source) || !Bun.which("gcc")) return undefined;
  return Bun.spawnSync(["gcc", "-O2", "-o", binary, source]).exitCode === 0 ? binary : undefined;
}

/** Two CPUs or more: the server and the load generator each get their own. */
export const twoCpus = cpus().length >= 2;

/** `cmd` pinned to `cpu` with taskset when there are two CPUs or more. */
export function pinned(cpu: number, cmd: string[]): string[] {
  return twoCpus ? ["taskset", "-c", String(cpu), ...cmd] : cmd;
}
