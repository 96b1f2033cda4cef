/**
 * After a burst of handshakes, once the server has gone quiet, ask Bun to give back what
 * warming up cost. Most of what a fresh server spends on its first thousands of connections
 * is not the connections: it is the optimizing JIT's work (compiler data in the allocator,
 * code blocks, machine code) done while the handshake and loop code got hot. A collection
 * alone (Bun.gc(true)) gives almost none of it back; Bun.shrink() does: it discards compiled
 * code (recompiled as it runs again), collects, and returns free allocator memory to the OS.
 * Measured on Bun 1.4.5, 5,000 idle connections, epoll: 1.8 → 1.2 KiB per connection
 * (bench/RESULTS.md, "Performance round two").
 *
 * Bounded so that it never costs at load: at most once per MIN_HANDSHAKES handshakes and
 * once per MIN_INTERVAL_MS, only after QUIET_MS without a handshake and with fewer than
 * QUIET_MESSAGES_PER_S messages a second meanwhile (recompiling a busy message path would
 * cost CPU for nothing: memory in use is not given back anyway). The check runs on a timer
 * armed only once MIN_HANDSHAKES handshakes happened, and stopped after it shrinks; a
 * handshake costs a counter and a clock read.
 */
import type { Clock } from "../api/websocket.ts";

export const MIN_HANDSHAKES = 512;
export const QUIET_MS = 1000;
export const MIN_INTERVAL_MS = 30_000;
export const QUIET_MESSAGES_PER_S = 1000;
/** How often the armed check looks: the shrink comes QUIET_MS to QUIET_MS + CHECK_MS after the burst. */
export const CHECK_MS = 250;

/** Bun.shrink when this Bun has it (deprecated in its types, so looked up, not assumed). */
export function bunShrink(): void {
  const shrink = (Bun as unknown as { shrink?: () => void }).shrink;
  if (typeof shrink === "function") shrink.call(Bun);
}

export class IdleShrink {
  /** Shrinks asked so far. */
  count = 0;
  private handshakes = 0;
  private lastHandshakeAt = 0;
  private lastShrinkAt = -Infinity;
  private messagesSeen = 0;
  private stopChecking: (() => void) | undefined = undefined;

  constructor(
    private readonly clock: Clock,
    /** Messages received so far (a counter the server keeps anyway). */
    private readonly messages: () => number,
    private readonly shrink: () => void = bunShrink,
  ) {}

  /** A handshake completed. */
  handshake(): void {
    this.handshakes++;
    this.lastHandshakeAt = this.clock.now();
    if (this.handshakes >= MIN_HANDSHAKES && this.stopChecking === undefined) {
      this.messagesSeen = this.messages();
      this.stopChecking = this.clock.every(CHECK_MS, () => this.check());
    }
  }

  private check(): void {
    const now = this.clock.now();
    const messages = this.messages();
    const busy = messages - this.messagesSeen > (QUIET_MESSAGES_PER_S * CHECK_MS) / 1000;
    this.messagesSeen = messages;
    if (busy || now - this.lastHandshakeAt < QUIET_MS || now - this.lastShrinkAt < MIN_INTERVAL_MS) {
      return;
    }
    this.dispose();
    this.handshakes = 0;
    this.lastShrinkAt = now;
    this.count++;
    this.shrink();
  }

  /** Stops the check (the server stops). */
  dispose(): void {
    this.stopChecking?.();
    this.stopChecking = undefined;
  }
}
