/**
 * UTF-8 validation throughput: hioload-ws's validateUtf8 (JS state machine with an ASCII word
 * scan, native `isUtf8` for long ranges) and its JS-only path, against Bun's native
 * `isUtf8` and a fatal TextDecoder, measured in the same run, on ASCII (JSON-like) and on
 * mixed text (Cyrillic, symbols, emoji).
 *
 *   bun bench/utf8.ts [--ms 300]
 */
import { isUtf8 } from "node:buffer";
import { parseArgs } from "node:util";
import { UTF8_ACCEPT, validateUtf8, validateUtf8InJs } from "../src/protocol/utf8.ts";
import { measure } from "./support/measure.ts";

const { values } = parseArgs({ options: { ms: { type: "string", default: "300" } } });
const budgetNs = Number(values.ms) * 1e6;

const measureMbps = (size: number, run: () => unknown) => measure(size, budgetNs, run);

/** About `size` bytes of valid UTF-8 built from `unit`, cut at a character boundary. */
function sample(unit: string, size: number): Uint8Array {
  const bytes = new TextEncoder().encode(unit.repeat(Math.ceil(size / unit.length) + 1));
  let end = size;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

const texts = {
  ascii: '{"id":12345,"name":"hioload","tags":["a","b"],"ok":true} ',
  mixed: "Привет, мир — ≠ 😀 text ",
};
const decoder = new TextDecoder("utf-8", { fatal: true });
const rows: Record<string, string | number>[] = [];
for (const [kind, unit] of Object.entries(texts)) {
  for (const size of [16, 128, 1024, 64 * 1024, 1 << 20]) {
    const data = sample(unit, size);
    const n = data.length;
    rows.push({
      text: kind,
      bytes: n,
      "validateUtf8 MB/s": Math.round(measureMbps(n, () => validateUtf8(data, 0, n, UTF8_ACCEPT))),
      "JS only MB/s": Math.round(measureMbps(n, () => validateUtf8InJs(data, 0, n, UTF8_ACCEPT))),
      "isUtf8 (peer) MB/s": Math.round(measureMbps(n, () => isUtf8(data.subarray(0, n)))),
      "TextDecoder fatal (peer) MB/s": Math.round(measureMbps(n, () => decoder.decode(data))),
    });
  }
}
console.log(`Bun ${Bun.version}, ${process.arch}`);
console.table(rows);
