/**
 * Masking throughput (RFC 6455 §5.3): hioload-ws's unmaskInPlace (aligned and unaligned
 * start) and maskInto (copy + mask), against a plain byte loop measured in the same run.
 *
 *   bun bench/mask.ts [--ms 300]
 */
import { parseArgs } from "node:util";
import { maskInto, unmaskInPlace } from "../src/protocol/mask.ts";

const { values } = parseArgs({ options: { ms: { type: "string", default: "300" } } });
const budgetNs = Number(values.ms) * 1e6;
const KEY = 0x37fa213d;

/** The peer: what a straightforward implementation does, one byte at a time. */
function byteLoopMask(data: Uint8Array, start: number, end: number, key: number): void {
  for (let i = start; i < end; i++) data[i] ^= key >>> ((3 - ((i - start) & 3)) << 3);
}

/** MB/s (10^6 bytes per second) of `run` over `size` bytes, after a warm-up. */
function measure(size: number, run: () => void): number {
  // Warm up long enough for JSC to reach its optimizing tier (FTL) for this call site.
  const warmUntil = Bun.nanoseconds() + budgetNs / 3;
  while (Bun.nanoseconds() < warmUntil) for (let i = 0; i < 64; i++) run();
  let iterations = 0;
  const started = Bun.nanoseconds();
  let elapsed = 0;
  do {
    for (let i = 0; i < 64; i++) run();
    iterations += 64;
    elapsed = Bun.nanoseconds() - started;
  } while (elapsed < budgetNs);
  return (size * iterations * 1e3) / elapsed;
}

const buffer = new Uint8Array(new ArrayBuffer((1 << 20) + 64));
const target = new Uint8Array(new ArrayBuffer((1 << 20) + 64));
const rows: Record<string, string | number>[] = [];
for (const size of [16, 1024, 64 * 1024, 1 << 20]) {
  const label =
    size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`;
  rows.push({
    size: label,
    "unmaskInPlace MB/s": Math.round(measure(size, () => unmaskInPlace(buffer, 0, size, KEY, 0))),
    "unaligned (+1) MB/s": Math.round(
      measure(size, () => unmaskInPlace(buffer, 1, size + 1, KEY, 0)),
    ),
    "maskInto MB/s": Math.round(
      measure(size, () => maskInto(target, 0, buffer, 3, size + 3, KEY)),
    ),
    "byte loop (peer) MB/s": Math.round(measure(size, () => byteLoopMask(buffer, 0, size, KEY))),
  });
}
console.log(`Bun ${Bun.version}, ${process.arch}`);
console.table(rows);
