/** ConnectionFifo: first in, first out, across wrap-around and growth (the receive-buffer waiting line). */
import { describe, expect, test } from "bun:test";
import { ConnectionFifo } from "../src/reactor/connection-fifo.ts";

describe("ConnectionFifo", () => {
  test("oldest first, across wrap-around and growth, never drops one", () => {
    const fifo = new ConnectionFifo(4);
    const expected: number[] = [];
    const taken: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      const pushes = (round * 7) % 5 + 1;
      for (let i = 0; i < pushes; i++) {
        fifo.push(next);
        expected.push(next++);
      }
      const shifts = Math.min(fifo.size, (round * 3) % 4 + 1);
      for (let i = 0; i < shifts; i++) taken.push(fifo.shift());
    }
    while (fifo.size > 0) taken.push(fifo.shift());
    expect(taken).toEqual(expected);
  });

  test("the same id may wait twice (a stale entry of a closed connection stays until taken)", () => {
    const fifo = new ConnectionFifo(1);
    for (const conn of [3, 5, 3]) fifo.push(conn);
    expect([fifo.shift(), fifo.shift(), fifo.shift()]).toEqual([3, 5, 3]);
    expect(fifo.size).toBe(0);
  });
});
