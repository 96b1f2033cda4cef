/**
 * The real backends (io_uring, epoll, the portable Bun.listen one) the server suites run on, each with why it cannot run here
 * ("" when it can): a suite is written once and run on each, skipped by name with the reason.
 */
import { describe } from "bun:test";
import type { Transport } from "../../src/api/transport.ts";
import { BunTransport } from "../../src/reactor/bun-transport.ts";
import { EpollTransport } from "../../src/reactor/epoll-transport.ts";
import { UringTransport, type UringTransportOptions } from "../../src/reactor/uring-transport.ts";
import { ioUringUnavailable } from "./platform.ts";

export type RealBackendName = "io_uring" | "epoll" | "bun";

export interface RealBackend {
  readonly name: RealBackendName;
  readonly skipReason: string;
}

export function realBackends(): RealBackend[] {
  const linux = process.platform === "linux" ? "" : `not Linux (${process.platform})`;
  return [
    { name: "io_uring", skipReason: ioUringUnavailable() },
    { name: "epoll", skipReason: linux },
    { name: "bun", skipReason: "" },
  ];
}

/** `describe(title (backend), body)` for each real backend; skipped ones say why. */
export function describeEachBackend(title: string, body: (backend: RealBackendName) => void): void {
  for (const { name, skipReason } of realBackends()) {
    if (skipReason) console.log(`[skip] ${title} on ${name}: ${skipReason}`);
    (skipReason ? describe.skip : describe)(`${title} (${name})`, () => body(name));
  }
}

/** A transport of backend `name` (clients of the server suites use the server's backend). */
export function createRealTransport(name: RealBackendName, options: UringTransportOptions = {}): Transport {
  if (name === "bun") return new BunTransport(options);
  return name === "epoll" ? new EpollTransport(options) : new UringTransport(options);
}
