import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { SystemError } from "../src/api/errors.ts";
import {
  check, libc, MAP_ANONYMOUS, MAP_PRIVATE, MPOL_BIND, PROT_READ, PROT_WRITE,
} from "../src/ffi/libc.ts";
import { addressOf, viewOf } from "../src/ffi/memory.ts";
import {
  numaAllocOnNode, numaAvailable, numaFree, numaMaxNode, numaNodeOfCpu, numaStatus,
  policyOfAddress,
} from "../src/ffi/numa.ts";

const probe = join(import.meta.dir, "fixtures", "numa-probe.ts");

function runProbe(mode: string, env: Record<string, string> = {}) {
  const result = Bun.spawnSync([process.execPath, probe, mode], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const stdout = result.stdout.toString();
  const stderr = result.stderr.toString();
  if (result.exitCode !== 0) throw new Error(`numa-probe ${mode} failed: ${stderr}`);
  return { json: JSON.parse(stdout.trim()), stderr };
}

describe("libc errors", () => {
  test("check() turns -1 into SystemError with call, errno, code and hint", () => {
    let caught: unknown;
    try {
      check("close", libc().close(12345));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SystemError);
    const error = caught as SystemError;
    expect(error.code).toBe("EBADF");
    expect(error.errno).toBe(9);
    expect(error.call).toBe("close");
    expect(error.hint).toBeString();
    expect(error.hint!.length).toBeGreaterThan(0);
    expect(error.message).toContain("close failed: EBADF");
  });

  test("check() passes results other than -1 through", () => {
    expect(check("getpid", libc().getpid())).toBe(process.pid);
  });
});

describe("native views", () => {
  test("viewOf and addressOf round-trip over mmapped memory", () => {
    const pointer = mapPlain(65536);
    try {
      const view = viewOf(pointer, 65536);
      expect(view.byteLength).toBe(65536);
      expect(addressOf(view)).toBe(pointer);
      expect(addressOf(view.subarray(4096))).toBe(pointer + 4096);
      view[0] = 0xab;
      view[65535] = 0xcd;
      expect(viewOf(pointer, 65536)[0]).toBe(0xab);
      expect(viewOf(pointer + 65535, 1)[0]).toBe(0xcd);
    } finally {
      libc().munmap(pointer, 65536);
    }
  });
});

function mapPlain(size: number): number {
  const pointer = Number(libc().mmap(0, size, PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  expect(pointer).not.toBe(-1);
  return pointer;
}

describe("libnuma", () => {
  const skipNote = numaAvailable() ? "" : " (skipped: libnuma unavailable)";

  test("numaStatus agrees with the wrappers", () => {
    const status = numaStatus();
    expect(numaAvailable()).toBe(status.available);
    if (status.available) {
      expect(status.nodes).toBeGreaterThanOrEqual(1);
      expect(status.note).toBe("");
      expect(numaMaxNode()).toBe(status.nodes - 1);
      const node = numaNodeOfCpu(0);
      expect(node).toBeGreaterThanOrEqual(0);
      expect(node).toBeLessThan(status.nodes);
      expect(numaNodeOfCpu(1 << 20)).toBe(-1);
    } else {
      expect(status.nodes).toBe(0);
      expect(status.note.length).toBeGreaterThan(0);
      expect(numaMaxNode()).toBe(-1);
      expect(numaNodeOfCpu(0)).toBe(-1);
    }
  });

  test.skipIf(!numaAvailable())(
    `numa_alloc_onnode binds pages to the node${skipNote}`, () => {
      const size = 64 * 1024;
      const pointer = numaAllocOnNode(size, 0);
      expect(pointer).toBeGreaterThan(0);
      viewOf(pointer, size)[0] = 1; // first touch: the page is allocated now, on node 0
      const policy = policyOfAddress(pointer);
      expect(policy.mode).toBe(MPOL_BIND);
      expect(policy.node).toBe(0);
      numaFree(pointer, size);
    });

  test.skipIf(!numaAvailable())(
    `numa_tonode_memory failure is reported through errno${skipNote}`, () => {
      const { json, stderr } = runProbe("bad-bind");
      expect(json.available).toBe(true);
      expect(json.errno).toBe(22); // EINVAL: unaligned start
      expect(stderr).toContain("mbind"); // libnuma's numa_error() perror()s
    });

  test("HIOLOAD_NO_LIBNUMA=1 makes NUMA unavailable with a reason, and nothing fails", () => {
    const { json } = runProbe("absent", { HIOLOAD_NO_LIBNUMA: "1" });
    expect(json.status).toEqual({
      available: false, nodes: 0, note: "libnuma disabled by HIOLOAD_NO_LIBNUMA=1",
    });
    expect(json.toNodeResult).toBe(-1);
  });
});
