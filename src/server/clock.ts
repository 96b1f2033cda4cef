/** The real clock: performance.now() and an unref'd interval (timers never keep a process up). */
import type { Clock } from "../api/websocket.ts";

export const realClock: Clock = {
  now: () => performance.now(),
  every(intervalMs, callback) {
    const timer = setInterval(callback, intervalMs);
    timer.unref?.();
    return () => clearInterval(timer);
  },
};
