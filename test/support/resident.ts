/** Resident memory of one mapping of this process, read from /proc/self/smaps (tests only). */
import { readFileSync } from "node:fs";

/** KiB resident (Rss + Private_Hugetlb) of the mapping that starts at `address`; -1: none. */
export function residentKiB(address: number): number {
  const lines = readFileSync("/proc/self/smaps", "utf8").split("\n");
  const start = address.toString(16);
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith(`${start}-`)) continue;
    let kib = 0;
    for (let j = i + 1; j < lines.length && !/^[0-9a-f]+-/.test(lines[j]); j++) {
      const match = /^(Rss|Private_Hugetlb):\s+(\d+) kB/.exec(lines[j]);
      if (match) kib += Number(match[2]);
    }
    return kib;
  }
  return -1;
}
