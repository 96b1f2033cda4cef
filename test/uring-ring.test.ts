/**
 * The io_uring ring itself, driven by hand: NOP round trips, TIMEOUT, ASYNC_CANCEL,
 * SHUTDOWN, CQ overflow recovery and errno reporting. Skips by name where io_uring is
 * not allowed (seccomp, kernel.io_uring_disabled).
 */
import { describe, expect, test } from "bun:test";
import { EBADF, ECANCELED, ENOENT, ETIME } from "../src/api/errno.ts";
import { SystemError } from "../src/api/errors.ts";
import * as abi from "../src/ffi/io-uring-abi.ts";
import { AF_INET, check, libc, SHUT_WR, SOCK_STREAM } from "../src/ffi/libc.ts";
import { addressOf } from "../src/ffi/memory.ts";
import { MemoryRegion } from "../src/pool/region.ts";
import { UringRing } from "../src/reactor/uring-ring.ts";
import { SqeWriter } from "../src/reactor/uring-sqe.ts";
import { ioUringUnavailable } from "./support/platform.ts";

const skipReason = ioUringUnavailable();
if (skipReason) console.log(`[skip] io_uring ring tests: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

interface Completion { low: number; high: number; res: number; flags: number }

/** Enter with GETEVENTS until `count` completions are collected (bounded). */
function collect(ring: UringRing, count: number, timeoutMs = 2000): Completion[] {
  const out: Completion[] = [];
  const deadline = performance.now() + timeoutMs;
  while (out.length < count) {
    if (performance.now() > deadline) throw new Error(`only ${out.length}/${count} CQEs`);
    ring.enter(1, true);
    const ready = ring.readyCount();
    let head = ring.cqHead();
    for (let i = 0; i < ready; i++, head++) {
      const base = (head & ring.cqMask) << 2;
      out.push({
        low: ring.cqeWords[base], high: ring.cqeWords[base + 1],
        res: ring.cqeResults[base + 2], flags: ring.cqeWords[base + 3],
      });
    }
    ring.advanceCq(ready);
  }
  return out;
}

suite("io_uring ring", () => {
  test("NOP round trip returns user_data intact, in batches larger than the SQ", () => {
    const ring = new UringRing({ entries: 64 });
    const sqe = new SqeWriter(ring);
    try {
      const seen = new Set<number>();
      for (let batch = 0; batch < 10; batch++) {
        for (let i = 0; i < 64; i++) {
          const index = ring.getSqe();
          expect(index).toBeGreaterThanOrEqual(0);
          sqe.prepNop(index, batch * 64 + i, 0xabcdef01);
        }
        expect(ring.getSqe()).toBe(-1); // full until submitted
        for (const cqe of collect(ring, 64)) {
          expect(cqe.res).toBe(0);
          expect(cqe.high).toBe(0xabcdef01);
          seen.add(cqe.low);
        }
      }
      expect(seen.size).toBe(640);
    } finally {
      ring.close();
    }
  });

  test("prefers SINGLE_ISSUER|DEFER_TASKRUN and reports features", () => {
    const ring = new UringRing({ entries: 8 });
    try {
      expect(ring.features & abi.IORING_FEAT_NODROP).toBeTruthy();
      // Kernel 6.1+ accepts DEFER_TASKRUN; on older kernels the fallback flags are used.
      if (ring.deferTaskrun) {
        expect(ring.flags & abi.IORING_SETUP_SINGLE_ISSUER).toBeTruthy();
      }
      expect(ring.cqEntries).toBe(32);
    } finally {
      ring.close();
    }
  });

  test("with TASKRUN_FLAG, a GETEVENTS enter with nothing to submit or run makes no syscall", () => {
    const ring = new UringRing({ entries: 8, deferTaskrun: false });
    const sqe = new SqeWriter(ring);
    const internals = ring as unknown as { calls: { enter: (...args: unknown[]) => number } };
    const calls = internals.calls;
    let entered = 0;
    internals.calls = { ...calls, enter: (...args: unknown[]) => (entered++, calls.enter(...args)) };
    try {
      // Kernel 5.19+ accepts it (with COOP_TASKRUN); older kernels enter every time.
      expect(ring.taskrunFlagged).toBe((ring.flags & abi.IORING_SETUP_TASKRUN_FLAG) !== 0);
      sqe.prepNop(ring.getSqe(), 1, 0);
      expect(ring.enter(0, true)).toBe(1); // something to submit: a syscall
      expect(entered).toBe(1);
      expect(ring.readyCount()).toBe(1); // a NOP completes inline
      ring.advanceCq(1);
      expect(ring.hasWorkToReap()).toBe(false);
      expect(ring.enter(0, true)).toBe(0);
      expect(entered).toBe(ring.taskrunFlagged ? 1 : 2);
    } finally {
      ring.close();
    }
  });

  test("TIMEOUT fires after its timespec; ASYNC_CANCEL cancels a pending one", () => {
    const region = MemoryRegion.allocate(4096, { hugepages: "off" });
    const ring = new UringRing({ entries: 8 });
    const sqe = new SqeWriter(ring);
    try {
      const spec = new BigInt64Array(region.view.buffer, 0, 4);
      spec[0] = 0n;
      spec[1] = 20_000_000n; // 20 ms
      spec[2] = 60n; // 60 s: will be cancelled
      spec[3] = 0n;
      const started = performance.now();
      sqe.prepTimeout(ring.getSqe(), region.pointer, 0, 0, 1, 0);
      const [fired] = collect(ring, 1);
      expect(fired.res).toBe(-ETIME);
      expect(performance.now() - started).toBeGreaterThanOrEqual(15);

      sqe.prepTimeout(ring.getSqe(), region.pointer + 16, 0, 0, 2, 0);
      sqe.prepCancel(ring.getSqe(), 2, 0, -1, 0, 3, 0);
      const results = collect(ring, 2);
      const byId = new Map(results.map((c) => [c.low, c.res]));
      expect(byId.get(2)).toBe(-ECANCELED);
      expect(byId.get(3)).toBe(0);

      sqe.prepCancel(ring.getSqe(), 99, 0, -1, 0, 4, 0);
      expect(collect(ring, 1)[0].res).toBe(-ENOENT); // nothing with that user_data
    } finally {
      ring.close();
      region.free();
    }
  });

  test("a CQ overflow is flushed by the next enter, nothing lost (FEAT_NODROP)", () => {
    const ring = new UringRing({ entries: 64, cqEntries: 64 });
    const sqe = new SqeWriter(ring);
    try {
      // 3 × 64 NOPs without reaping: 128 of them cannot be posted and must wait in the kernel.
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 64; i++) sqe.prepNop(ring.getSqe(), round * 64 + i, 0);
        ring.enter(0, true);
      }
      expect(ring.readyCount()).toBe(64);
      expect(ring.cqOverflowPending()).toBe(true);
      const all = collect(ring, 192);
      expect(new Set(all.map((c) => c.low)).size).toBe(192);
      expect(ring.cqOverflowPending()).toBe(false);
      expect(ring.cqDropped()).toBe(0);
    } finally {
      ring.close();
    }
  });

  test("SHUTDOWN and CLOSE complete; a bad fd reports -EBADF", () => {
    const ring = new UringRing({ entries: 8 });
    const sqe = new SqeWriter(ring);
    const fd = check("socket", libc().socket(AF_INET, SOCK_STREAM, 0));
    try {
      sqe.prepShutdown(ring.getSqe(), fd, SHUT_WR, 1, 0); // not connected: -ENOTCONN
      sqe.prepClose(ring.getSqe(), 987654, 2, 0);
      const byId = new Map(collect(ring, 2).map((c) => [c.low, c.res]));
      expect(byId.get(1)).toBe(-107);
      expect(byId.get(2)).toBe(-EBADF);
      sqe.prepClose(ring.getSqe(), fd, 3, 0);
      expect(collect(ring, 1)[0].res).toBe(0);
    } finally {
      ring.close();
    }
  });

  test("libc failures become SystemError with call, errno, name and hint", () => {
    let caught: unknown;
    try {
      check("close", libc().close(987654));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SystemError);
    const error = caught as SystemError;
    expect(error.call).toBe("close");
    expect(error.errno).toBe(EBADF);
    expect(error.code).toBe("EBADF");
    expect(error.hint).toContain("not open");
    expect(error.message).toContain("close failed: EBADF");
  });

  test("io_uring_setup EPERM carries the seccomp / io_uring_disabled hint", async () => {
    const { systemError } = await import("../src/ffi/errno.ts");
    const error = systemError("io_uring_setup", -1);
    expect(error.code).toBe("EPERM");
    expect(error.hint).toContain("kernel.io_uring_disabled");
  });

  test("addresses of native views are the region's", () => {
    const region = MemoryRegion.allocate(8192, { hugepages: "off" });
    try {
      expect(addressOf(region.view)).toBe(region.pointer);
    } finally {
      region.free();
    }
  });
});
