/**
 * permessage-deflate codec cost per message: MessageDeflater / MessageInflater (system zlib
 * through bun:ffi, one z_stream per direction) on 4 KiB JSON-like messages, level 1 vs 6,
 * context takeover on vs off, against node:zlib's deflateRawSync/inflateRawSync one-shots
 * and Bun.deflateSync/inflateSync, measured in the same run. Also the one-time cost of
 * zlib's init with the default allocator vs JSCallback counting allocators.
 *
 *   bun bench/deflate-codec.ts [--ms 400]
 */
import { JSCallback } from "bun:ffi";
import { parseArgs } from "node:util";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { heap } from "../src/ffi/zlib.ts";
import { MessageDeflater } from "../src/server/message-deflater.ts";
import { MessageInflater } from "../src/server/message-inflater.ts";
import { jsonFeed } from "./support/json-feed.ts";
import { cpuModel } from "./support/report.ts";

const { values } = parseArgs({ options: { ms: { type: "string", default: "400" } } });
const budgetNs = Number(values.ms) * 1e6;
const MESSAGE_BYTES = 4096;
const CYCLE = 64;


/** ns per call of `run(i)` over i = 0, 1, 2 ... after a warm-up of a third of the budget. */
function nsPerOp(run: (index: number) => unknown): number {
  let index = 0;
  const warmUntil = Bun.nanoseconds() + budgetNs / 3;
  while (Bun.nanoseconds() < warmUntil) run(index++);
  index = 0;
  const started = Bun.nanoseconds();
  let elapsed = 0;
  do {
    for (let i = 0; i < CYCLE; i++) run(index++);
    elapsed = Bun.nanoseconds() - started;
  } while (elapsed < budgetNs);
  return elapsed / index;
}

const messages = jsonFeed(CYCLE, MESSAGE_BYTES);
const syncFlush = { finishFlush: constants.Z_SYNC_FLUSH };
const rows: Record<string, string | number>[] = [];
const row = (name: string, op: string, ns: number, ratio: number) =>
  rows.push({ codec: name, op, "ns/message": Math.round(ns), "MB/s": Math.round((MESSAGE_BYTES * 1e3) / ns), "out/in": ratio.toFixed(3) });

for (const level of [1, 6]) {
  for (const contextTakeover of [true, false]) {
    const name = `hioload L${level} ${contextTakeover ? "takeover" : "no-takeover"}`;
    const deflater = new MessageDeflater({ level, contextTakeover });
    let compressedBytes = 0;
    const compressNs = nsPerOp((i) => (compressedBytes += deflater.compress(messages[i % CYCLE])));
    deflater.dispose();
    // One cycle compressed from a fresh stream, inflated in order by a fresh inflater each time.
    const sender = new MessageDeflater({ level, contextTakeover });
    const payloads = messages.map((message) => (sender.compress(message), sender.output.slice()));
    sender.dispose();
    const ratio = payloads.reduce((sum, p) => sum + p.length, 0) / (CYCLE * MESSAGE_BYTES);
    row(name, "compress", compressNs, ratio);
    let inflater = new MessageInflater({ contextTakeover });
    const inflateNs = nsPerOp((i) => {
      const slot = i % CYCLE;
      if (slot === 0) {
        inflater.dispose();
        inflater = new MessageInflater({ contextTakeover });
      }
      const payload = payloads[slot];
      if (inflater.inflate(payload, 0, payload.length, 1 << 20) !== MESSAGE_BYTES) throw new Error("bad inflate");
    });
    inflater.dispose();
    row(name, "inflate", inflateNs, ratio);
    if (!contextTakeover) {
      // The same payloads through node:zlib's bundled zlib: the libraries compared on equal input.
      const withTail = payloads.map((payload) => Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]));
      row(`node:zlib on ${name} payloads`, "inflateRawSync", nsPerOp((i) => inflateRawSync(withTail[i % CYCLE], syncFlush)), ratio);
    }
    void compressedBytes;
  }
  const nodePayloads = messages.map((message) => deflateRawSync(message, { level, ...syncFlush }));
  const nodeRatio = nodePayloads.reduce((sum, p) => sum + p.length - 4, 0) / (CYCLE * MESSAGE_BYTES);
  row(`node:zlib L${level} one-shot`, "deflateRawSync", nsPerOp((i) => deflateRawSync(messages[i % CYCLE], { level, ...syncFlush })), nodeRatio);
  row(`node:zlib L${level} one-shot`, "inflateRawSync", nsPerOp((i) => inflateRawSync(nodePayloads[i % CYCLE], syncFlush)), nodeRatio);
  const bunPayloads = messages.map((message) => Bun.deflateSync(message, { level: level as 1 | 6 }));
  const bunRatio = bunPayloads.reduce((sum, p) => sum + p.length, 0) / (CYCLE * MESSAGE_BYTES);
  row(`Bun L${level} one-shot`, "deflateSync", nsPerOp((i) => Bun.deflateSync(messages[i % CYCLE], { level: level as 1 | 6 })), bunRatio);
  row(`Bun L${level} one-shot`, "inflateSync", nsPerOp((i) => Bun.inflateSync(bunPayloads[i % CYCLE])), bunRatio);
}

/** Init (first message) cost: zlib's default malloc vs zalloc/zfree through JSCallback. */
function initNs(useCallbacks: boolean): number {
  const zalloc = new JSCallback((_o: number, items: number, size: number) => heap.malloc(items * size),
    { args: ["ptr", "u32", "u32"], returns: "ptr" });
  const zfree = new JSCallback((_o: number, address: number) => heap.free(address), { args: ["ptr", "ptr"], returns: "void" });
  const allocator = useCallbacks ? { zalloc: Number(zalloc.ptr), zfree: Number(zfree.ptr) } : undefined;
  const ns = nsPerOp((i) => {
    const deflater = new MessageDeflater({ allocator });
    deflater.compress(messages[i % CYCLE]);
    deflater.dispose();
  });
  zalloc.close();
  zfree.close();
  return ns;
}

console.log(`permessage-deflate codec, ${MESSAGE_BYTES} B JSON-like messages (${CYCLE} distinct); ${cpuModel()}; Bun ${Bun.version}`);
console.table(rows);
const plain = initNs(false);
const counted = initNs(true);
console.log(`new MessageDeflater + first 4 KiB message + dispose: ${Math.round(plain)} ns with malloc, ` +
  `${Math.round(counted)} ns with JSCallback zalloc/zfree (5 allocations through JS)`);
