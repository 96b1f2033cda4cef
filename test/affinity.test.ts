import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { SystemError, UsageError } from "../src/api/errors.ts";
import { numaNodeOfCpu, numaStatus } from "../src/ffi/numa.ts";
import {
  allowedCpus, currentCpu, nodeOfCpu, pinThreadToCpu, setThreadAffinity,
} from "../src/reactor/affinity.ts";

describe("affinity", () => {
  test("the current CPU is one of the allowed CPUs", () => {
    const cpus = allowedCpus();
    expect(cpus.length).toBeGreaterThan(0);
    expect([...cpus].sort((a, b) => a - b)).toEqual(cpus);
    expect(cpus).toContain(currentCpu());
  });

  test("pinning moves the thread to that CPU; the old mask is restored", () => {
    const original = allowedCpus();
    try {
      for (const cpu of original) {
        pinThreadToCpu(cpu);
        // sched_setaffinity migrates the caller before returning when it is elsewhere.
        expect(currentCpu()).toBe(cpu);
        expect(allowedCpus()).toEqual([cpu]);
      }
    } finally {
      setThreadAffinity(original);
    }
    expect(allowedCpus()).toEqual(original);
  });

  test("bad CPU numbers: UsageError for nonsense, SystemError EINVAL for absent CPUs", () => {
    expect(() => pinThreadToCpu(-1)).toThrow(UsageError);
    expect(() => pinThreadToCpu(1.5)).toThrow(UsageError);
    expect(() => setThreadAffinity([])).toThrow(UsageError);
    const absent = 4095;
    expect(allowedCpus()).not.toContain(absent);
    let caught: unknown;
    try {
      pinThreadToCpu(absent);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SystemError);
    expect((caught as SystemError).code).toBe("EINVAL");
  });

  test("nodeOfCpu: libnuma's answer, or the sysfs node link; -1 for absent CPUs", () => {
    for (const cpu of allowedCpus()) {
      const node = nodeOfCpu(cpu);
      expect(node).toBeGreaterThanOrEqual(0);
      if (numaStatus().available) expect(node).toBe(numaNodeOfCpu(cpu));
      if (existsSync(`/sys/devices/system/cpu/cpu${cpu}/node${node}`)) continue;
      // No sysfs link: only a kernel without CONFIG_NUMA, where everything is node 0.
      expect(node).toBe(0);
    }
    expect(nodeOfCpu(65535)).toBe(-1);
  });
});
