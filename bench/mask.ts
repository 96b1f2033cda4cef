/**
 * Masking throughput (RFC 6455 §5.3): hioload-ws's unmaskInPlace (aligned and unaligned
 * start) and maskInto (copy + mask), against a plain byte loop measured in the same run.
 *
 *   bun bench/mask.ts [--ms 300]
 */
import { parseArgs } from "node:util";
import { maskInto, unmaskInPlace } from "../src/protocol/mask.ts";
import { measure } from "./support/measure.ts";

const { values } = parseArgs({ options: { ms: { type: "string", default: "300" } } });
const budgetNs = Number(values.ms) * 1e6;
const KEY = 0x37fa213d;

/** The peer: what a straightforward implementation does, one byte at a time. */
function byteLoopMask(data: Uint8Array, start: number, end: number, key: number): void {
  for (let i = start; i < end; i++) data[i] ^= key >>> ((3 - ((i - start) & 3)) << 3);
}

const measureMbps = (size: number, run: () => unknown) => measure(size, budgetNs, run);

const buffer = new Uint8Array(new ArrayBuffer((1 << 20) + 64));
const target = new Uint8Array(new ArrayBuffer((1 << 20) + 64));
const rows: Record<string, string | number>[] = [];
for (const size of [16, 1024, 64 * 1024, 1 << 20]) {
  const label =
    size >= 1 << 20 ? `${size >> 20} MiB` : size >= 1024 ? `${size >> 10} KiB` : `${size} B`;
  rows.push({
    size: label,
    "unmaskInPlace MB/s": Math.round(measureMbps(size, () => unmaskInPlace(buffer, 0, size, KEY, 0))),
    "unaligned (+1) MB/s": Math.round(
      measureMbps(size, () => unmaskInPlace(buffer, 1, size + 1, KEY, 0)),
    ),
    "maskInto MB/s": Math.round(
      measureMbps(size, () => maskInto(target, 0, buffer, 3, size + 3, KEY)),
    ),
    "byte loop (peer) MB/s": Math.round(measureMbps(size, () => byteLoopMask(buffer, 0, size, KEY))),
  });
}
console.log(`Bun ${Bun.version}, ${process.arch}`);
console.table(rows);
