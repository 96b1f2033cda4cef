/**
 * Bounded waiting for tests: every wait has a timeout and says what it waited for.
 */

/** Resolves once `predicate()` is true; rejects after `timeoutMs` with `label` in the message. */
export async function waitFor(
  predicate: () => boolean,
  timeoutMs: number,
  label: string | (() => string),
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let polls = 0;
  while (!predicate()) {
    if (performance.now() > deadline) {
      const text = typeof label === "function" ? label() : label;
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${text}`);
    }
    await pause(polls++);
  }
}

/** Fails as soon as `invariant()` turns false during `durationMs`; resolves after it held. */
export async function holdsFor(
  invariant: () => boolean,
  durationMs: number,
  label: string | (() => string),
): Promise<void> {
  const deadline = performance.now() + durationMs;
  let polls = 0;
  while (performance.now() < deadline) {
    if (!invariant()) {
      const text = typeof label === "function" ? label() : label;
      throw new Error(`expected to hold for ${durationMs} ms but broke: ${text}`);
    }
    await pause(polls++);
  }
  if (!invariant()) throw new Error(`expected to hold for ${durationMs} ms but broke at the end`);
}

/** Rejects when `promise` does not settle within `timeoutMs`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  timeoutMs: number,
  label: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const fail = () => reject(new Error(`timed out after ${timeoutMs} ms: ${label}`));
    timer = setTimeout(fail, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function pause(polls: number): Promise<void> {
  // setImmediate first: an in-memory backend finishes in a few event-loop turns. Later, sleep,
  // so a real backend's I/O is not starved by a busy poll.
  if (polls < 2000) return new Promise<void>((resolve) => setImmediate(resolve));
  return Bun.sleep(1);
}
