/**
 * The compression benches' messages: distinct JSON texts shaped like a chat/trading feed
 * (the same keys, varying values), reproducible from a fixed seed.
 */
import { Prng } from "../../src/fake/prng.ts";

export function jsonFeed(count: number, bytes: number): Uint8Array<ArrayBuffer>[] {
  const prng = new Prng(4096);
  const encoder = new TextEncoder();
  return Array.from({ length: count }, (_, index) => {
    let text = "[";
    for (let id = 0; text.length < bytes; id++) {
      text += JSON.stringify({
        id: index * 1000 + id, user: `user${prng.int(5000)}`, active: prng.chance(0.5),
        price: Math.round(prng.int(1e7)) / 100, side: prng.chance(0.5) ? "buy" : "sell",
        tags: [`t${prng.int(50)}`, `k${prng.int(90)}`], note: `n${prng.int(1e6).toString(36)}`,
      }) + ",";
    }
    return encoder.encode(text.slice(0, bytes));
  });
}
