/** Why a backend cannot run on this machine ("" when it can): tests skip by name with it. */
import { readFileSync } from "node:fs";
import { SystemError } from "../../src/api/errors.ts";
import { UringRing } from "../../src/reactor/uring-ring.ts";

let cached: string | undefined;

export function ioUringUnavailable(): string {
  if (cached !== undefined) return cached;
  if (process.platform !== "linux") return (cached = `not Linux (${process.platform})`);
  try {
    const disabled = readFileSync("/proc/sys/kernel/io_uring_disabled", "utf8").trim();
    if (disabled === "2") return (cached = "kernel.io_uring_disabled = 2");
  } catch {
    // older kernels have no such sysctl: try the call itself
  }
  try {
    new UringRing({ entries: 2 }).close();
    cached = "";
  } catch (error) {
    cached = error instanceof SystemError ? error.message : String(error);
  }
  return cached;
}
