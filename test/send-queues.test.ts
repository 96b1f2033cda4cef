/**
 * SendQueues over a JS-memory chunk source: chains, partial completions, SENDMSG iovecs,
 * exhaustion, and that fully sent chunks go back to the pool.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ENOBUFS } from "../src/api/errno.ts";
import {
  LOAN_HEADER_SIZE, MESSAGE_AREA_SIZE, MESSAGE_SEGMENT_CONNECTIONS, SendQueues, SMALL_SLOT_SIZE,
  type ChunkSource,
} from "../src/reactor/send-queues.ts";

const CHUNK = 64;
const LOANS = 64;
const LOAN_HEADERS_AT = 0x30_0000;

class ArrayChunks implements ChunkSource {
  readonly memory: Uint8Array;
  private readonly free: number[] = [];
  constructor(readonly count: number, readonly base = 0x10_0000, readonly size = CHUNK) {
    this.memory = new Uint8Array(count * size);
    for (let id = count - 1; id >= 0; id--) this.free.push(id);
  }
  get capacity() { return this.count; }
  acquire() { return this.free.pop() ?? -1; }
  release(id: number) {
    if (this.free.includes(id)) throw new Error(`double release ${id}`);
    this.free.push(id);
  }
  slotView(id: number) { return this.memory.subarray(id * this.size, (id + 1) * this.size); }
  slotAddress(id: number) { return this.base + id * this.size; }
  get available() { return this.free.length; }
  /** Bytes at a fake address (to read back what a SEND would transmit). */
  bytesAt(address: number, length: number) {
    const offset = address - this.base;
    return this.memory.slice(offset, offset + length);
  }
}

function setup(connections = 4, chunks = 8) {
  const source = new ArrayChunks(chunks);
  const area = new Uint8Array(connections * MESSAGE_AREA_SIZE);
  const segmentBytes = MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE;
  const areas = {
    address: 0x20_0000,
    segment: (index: number) => area.subarray(index * segmentBytes, (index + 1) * segmentBytes),
  };
  const loanHeaders = { address: LOAN_HEADERS_AT, view: new Uint8Array(LOANS * LOAN_HEADER_SIZE) };
  const queues = new SendQueues(connections, source, CHUNK, chunks, areas, loanHeaders, LOANS, NO_SMALL);
  return { source, area, queues, loanHeaders };
}

/** No small slots: these tests pin the chunk chains themselves. */
const NO_SMALL = new ArrayChunks(0, 0x40_0000, SMALL_SLOT_SIZE);

const bytes = (length: number, from = 0) => Uint8Array.from({ length }, (_, i) => (from + i) & 0xff);

describe("SendQueues", () => {
  test("one chunk: plain SEND of exactly the queued bytes, then empty and chunk freed", () => {
    const { source, queues } = setup();
    expect(queues.append(0, bytes(10), 0, 10)).toBe(10);
    expect(queues.append(0, bytes(5, 10), 0, 5)).toBe(5);
    expect(queues.prepare(0)).toBe(1);
    expect(queues.sendLength).toBe(15);
    expect(source.bytesAt(queues.sendAddress, 15)).toEqual(bytes(15));
    expect(queues.prepare(0)).toBe(0); // one send in flight at a time
    expect(queues.complete(0, 15)).toBe(true);
    expect(queues.queuedBytes(0)).toBe(0);
    expect(source.available).toBe(8);
  });

  test("partial completion resumes where the kernel stopped", () => {
    const { queues, source } = setup();
    queues.append(1, bytes(40), 0, 40);
    queues.prepare(1);
    expect(queues.complete(1, 25)).toBe(false);
    expect(queues.hasUnsent(1)).toBe(true);
    expect(queues.prepare(1)).toBe(1);
    expect(queues.sendLength).toBe(15);
    expect(source.bytesAt(queues.sendAddress, 15)).toEqual(bytes(15, 25));
    expect(queues.complete(1, 15)).toBe(true);
  });

  test("several chunks go out as one SENDMSG with an iovec per chunk", () => {
    const { queues, area, source } = setup();
    const data = bytes(150);
    expect(queues.append(2, data, 0, 150)).toBe(150);
    expect(queues.prepare(2)).toBe(2);
    expect(queues.sendLength).toBe(150);
    const words = new Uint32Array(area.buffer, 2 * MESSAGE_AREA_SIZE, MESSAGE_AREA_SIZE / 4);
    expect(words[6]).toBe(3); // msg_iovlen
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const iov = 16 + i * 4;
      sent.push(...source.bytesAt(words[iov], words[iov + 2]));
    }
    expect(Uint8Array.from(sent)).toEqual(data);
    expect(source.available).toBe(5);
    // The kernel took 100 bytes: the first chunk is freed, the rest continues mid-chunk.
    expect(queues.complete(2, 100)).toBe(false);
    expect(source.available).toBe(6);
    expect(queues.prepare(2)).toBe(2); // 28 bytes left of chunk 2, 22 of chunk 3
    expect(queues.sendLength).toBe(50);
    expect(words[6]).toBe(2);
    const rest = [...source.bytesAt(words[16], words[18]), ...source.bytesAt(words[20], words[22])];
    expect(Uint8Array.from(rest)).toEqual(data.slice(100));
    expect(queues.complete(2, 50)).toBe(true);
    expect(source.available).toBe(8);
  });

  test("bytes appended while a send is in flight are sent next, in order", () => {
    const { queues, source } = setup();
    queues.append(0, bytes(30), 0, 30);
    queues.prepare(0);
    queues.append(0, bytes(70, 30), 0, 70); // fills the first chunk's tail, then a second
    expect(queues.queuedBytes(0)).toBe(100);
    expect(queues.complete(0, 30)).toBe(false);
    expect(queues.prepare(0)).toBe(2);
    expect(queues.sendLength).toBe(70);
    expect(queues.complete(0, 70)).toBe(true);
    expect(source.available).toBe(8);
  });

  test("exhaustion refuses the whole append (-ENOBUFS) and queues nothing", () => {
    const { queues } = setup(4, 2);
    expect(queues.append(0, bytes(100), 0, 100)).toBe(100);
    expect(queues.append(1, bytes(100), 0, 100)).toBe(-ENOBUFS);
    expect(queues.queuedBytes(1)).toBe(0);
    expect(queues.append(0, bytes(28), 0, 28)).toBe(28); // fits in the tail chunk's room
  });

  test("dropUnsent frees what is not in flight at once; the in-flight send completes", () => {
    const { queues, source } = setup(4, 8);
    queues.append(0, bytes(100), 0, 100); // chunks of 64: 64 + 36
    expect(queues.prepare(0)).toBe(2);
    expect(queues.sendLength).toBe(100);
    queues.append(0, bytes(200, 100), 0, 200); // 28 into the tail chunk, then 3 more chunks
    expect(source.available).toBe(8 - 5);
    expect(queues.dropUnsent(0)).toBe(200);
    expect(queues.queuedBytes(0)).toBe(100);
    expect(source.available).toBe(8 - 2); // the two chunks the kernel still reads
    expect(queues.complete(0, 100)).toBe(true);
    expect(source.available).toBe(8);
    // Nothing in flight: everything goes.
    queues.append(1, bytes(150), 0, 150);
    expect(queues.dropUnsent(1)).toBe(150);
    expect(source.available).toBe(8);
    expect(queues.prepare(1)).toBe(0);
  });

  test("unit boundaries: a send asked to end at one does, and only then may another queue go next", () => {
    // 10 units of 64 bytes (a chunk each), then one of 2,000 bytes over 32 chunks: a send of
    // 15 iovecs ends inside the big unit unless asked to end at a unit.
    const fill = (queues: SendQueues) => {
      for (let i = 0; i < 10; i++) queues.append(0, bytes(64, i), 0, 64);
      queues.appendPair(0, bytes(14), 0, 14, bytes(1986), 0, 1986);
    };
    const plain = setup(4, 64).queues;
    fill(plain);
    expect(plain.atUnitBoundary(0)).toBe(true);
    expect(plain.prepare(0)).toBe(2);
    expect(plain.sendLength).toBe(15 * 64);
    plain.complete(0, plain.sendLength);
    expect(plain.atUnitBoundary(0)).toBe(false); // inside the big unit

    const cut = setup(4, 64).queues;
    fill(cut);
    expect(cut.prepare(0, true)).toBe(2);
    expect(cut.sendLength).toBe(10 * 64); // back to the end of the last whole unit
    cut.complete(0, cut.sendLength - 1); // the kernel took less: mid-unit
    expect(cut.atUnitBoundary(0)).toBe(false);
    cut.prepare(0, true);
    cut.complete(0, cut.sendLength); // the last byte of the small units
    expect(cut.atUnitBoundary(0)).toBe(true);
  });

  test("clear returns every chunk; a send beyond what was in flight is a bug", () => {
    const { queues, source } = setup();
    queues.append(3, bytes(200), 0, 200);
    queues.prepare(3);
    expect(() => queues.complete(3, 10_000)).toThrow("more than was in flight");
    queues.clear(3);
    expect(source.available).toBe(8);
    expect(queues.queuedBytes(3)).toBe(0);
  });

  test("grown for more connections: old queues intact, a later segment's msghdr in place", () => {
    const { source, area, queues } = setup(1100, 8);
    const small = new SendQueues(2, source, CHUNK, 8, {
      address: 0x20_0000,
      segment: (index: number) => area.subarray(index * MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE,
        (index + 1) * MESSAGE_SEGMENT_CONNECTIONS * MESSAGE_AREA_SIZE),
    }, noLoanHeaders(), 1, NO_SMALL);
    expect(queues.queuedBytes(0)).toBe(0);
    expect(small.append(1, bytes(10), 0, 10)).toBe(10);
    small.grow(1100);
    expect(small.queuedBytes(1)).toBe(10);
    const conn = MESSAGE_SEGMENT_CONNECTIONS + 6;
    expect(small.append(conn, bytes(100), 0, 100)).toBe(100);
    expect(small.prepare(conn)).toBe(2);
    expect(small.sendAddress).toBe(0x20_0000 + conn * MESSAGE_AREA_SIZE);
    const words = new Uint32Array(area.buffer, conn * MESSAGE_AREA_SIZE, MESSAGE_AREA_SIZE / 4);
    expect(words[6]).toBe(2); // two chunks, two iovecs
    expect(Uint8Array.from([...source.bytesAt(words[16], words[18]),
      ...source.bytesAt(words[20], words[22])])).toEqual(bytes(100));
    expect(small.complete(conn, 100)).toBe(true);
    expect(small.prepare(1)).toBe(1);
    expect(small.complete(1, 10)).toBe(true);
  });

  test("a loan goes out without a copy, after its header, and is given back once sent", () => {
    const { source, area, queues, loanHeaders } = setup();
    const given: number[] = [];
    const lender = { giveBack: (token: number) => void given.push(token) };
    const header = Uint8Array.of(0x82, 0x7e, 0x01, 0x00);
    expect(queues.appendLoan(1, header, 0, 4, 0x90_0000, 256, lender, 7)).toBe(260);
    expect(queues.queuedBytes(1)).toBe(260);
    expect(queues.loansOut).toBe(1);
    expect(source.available).toBe(8); // the header has a slot of its own: no chunk taken
    expect(queues.prepare(1)).toBe(2); // header + loan: SENDMSG
    const words = new Uint32Array(area.buffer, 1 * MESSAGE_AREA_SIZE, MESSAGE_AREA_SIZE / 4);
    expect(words[6]).toBe(2);
    const headerAt = words[16] - LOAN_HEADERS_AT;
    expect(loanHeaders.view.slice(headerAt, headerAt + words[18])).toEqual(header);
    expect(words[20]).toBe(0x90_0000); // the loan's own address
    expect(words[22]).toBe(256);
    expect(queues.complete(1, 100)).toBe(false); // partly sent: the loan stays
    expect(given).toEqual([]);
    expect(queues.prepare(1)).toBe(2); // the rest of the loan alone: one iovec from it
    expect(words[6]).toBe(1);
    expect(words[16]).toBe(0x90_0000 + 96);
    expect(queues.sendLength).toBe(160);
    expect(queues.complete(1, 160)).toBe(true);
    expect(given).toEqual([7]);
    expect(queues.loansOut).toBe(0);
    expect(source.available).toBe(8);
  });

  test("bytes after a loan go to a new chunk; clearing gives every loan back", () => {
    const { source, queues } = setup();
    const given: number[] = [];
    const lender = { giveBack: (token: number) => void given.push(token) };
    queues.appendLoan(0, bytes(2), 0, 2, 0x90_0000, 1000, lender, 1);
    expect(queues.append(0, bytes(5), 0, 5)).toBe(5);
    queues.appendLoan(0, bytes(2), 0, 2, 0x91_0000, 10, lender, 2);
    expect(queues.queuedBytes(0)).toBe(2 + 1000 + 5 + 2 + 10);
    expect(source.available).toBe(7); // only the 5 bytes between the loans take a chunk
    queues.clear(0);
    expect(given).toEqual([1, 2]);
    expect(source.available).toBe(8);
    expect(queues.loansOut).toBe(0);
  });

  test("no loan entry left: -ENOBUFS, nothing queued or kept", () => {
    const source = new ArrayChunks(1);
    const area = new Uint8Array(4 * MESSAGE_AREA_SIZE);
    const queues = new SendQueues(4, source, CHUNK, 1, { address: 0x20_0000, segment: () => area },
      noLoanHeaders(), 1, NO_SMALL);
    const lender = { giveBack: () => { throw new Error("nothing was lent"); } };
    expect(queues.appendLoan(0, bytes(2), 0, 2, 0x90_0000, 100, lender, 1)).toBe(102);
    expect(queues.appendLoan(1, bytes(2), 0, 2, 0x90_0000, 100, lender, 2)).toBe(-ENOBUFS);
    expect(queues.queuedBytes(1)).toBe(0);
  });
});

/** Room for one loan's header (tests that make their own SendQueues). */
function noLoanHeaders() {
  return { address: LOAN_HEADERS_AT, view: new Uint8Array(LOAN_HEADER_SIZE) };
}

describe("SendQueues against a model: copies and loans in any order", () => {
  const LOAN_BASE = 0x90_0000;

  test("the kernel is handed exactly the bytes queued, in order; each loan comes back once", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("append" as const), length: fc.integer({ min: 1, max: 150 }) }),
      fc.record({ kind: fc.constant("loan" as const), length: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ kind: fc.constant("send" as const), fraction: fc.double({ min: 0.05, max: 1, noNaN: true }),
        // The connection is torn down while this send is in flight: what follows it goes.
        dropRest: fc.integer({ min: 0, max: 9 }).map((n) => n === 0) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), fc.boolean(), (ops, clearAtEnd) => {
      const { source, area, queues, loanHeaders } = setup(2, 12);
      const loanMemory = new Uint8Array(64 * 1024);
      let loanUsed = 0;
      const given: number[] = [];
      const lender = { giveBack: (token: number) => void given.push(token) };
      const loanEnds: number[] = []; // stream offset at which loan i is fully sent
      let queuedStream: number[] = [];
      const sentStream: number[] = [];
      let next = 0;
      let tokens = 0;
      const readAt = (address: number, length: number) => address >= LOAN_BASE
        ? loanMemory.slice(address - LOAN_BASE, address - LOAN_BASE + length)
        : address >= LOAN_HEADERS_AT
          ? loanHeaders.view.slice(address - LOAN_HEADERS_AT, address - LOAN_HEADERS_AT + length)
          : source.bytesAt(address, length);
      let dropped = false;
      for (const step of ops) {
        if (step.kind === "append") {
          const data = bytes(step.length, next);
          if (queues.append(0, data, 0, data.length) === data.length) {
            queuedStream.push(...data);
            next += step.length;
          }
        } else if (step.kind === "loan") {
          if (loanUsed + step.length > loanMemory.length) continue;
          const header = bytes(2, next);
          const payload = bytes(step.length, next + 2);
          loanMemory.set(payload, loanUsed);
          const queued = queues.appendLoan(0, header, 0, 2, LOAN_BASE + loanUsed, step.length, lender, tokens);
          if (queued === 2 + step.length) {
            queuedStream.push(...header, ...payload);
            next += 2 + step.length;
            loanUsed += step.length;
            loanEnds[tokens++] = queuedStream.length + sentStream.length;
          } else {
            expect(queued).toBe(-ENOBUFS);
          }
        } else {
          const kind = queues.prepare(0);
          if (kind === 0) continue;
          const pieces: Uint8Array[] = [];
          if (kind === 1) {
            pieces.push(readAt(queues.sendAddress, queues.sendLength));
          } else {
            const words = new Uint32Array(area.buffer, 0, MESSAGE_AREA_SIZE / 4);
            for (let i = 0; i < words[6]; i++) {
              const iov = 16 + i * 4;
              pieces.push(readAt(words[iov], words[iov + 2]));
            }
          }
          const offered = pieces.flatMap((piece) => [...piece]);
          expect(offered.length).toBe(queues.sendLength);
          if (step.dropRest) {
            // Only the bytes in flight stay; every loan beyond them comes back now.
            expect(queues.dropUnsent(0)).toBe(queuedStream.length - offered.length);
            queuedStream = queuedStream.slice(0, offered.length);
            for (let token = 0; token < tokens; token++) {
              if (loanEnds[token] > sentStream.length + offered.length) loanEnds[token] = -1;
            }
            dropped = true;
          }
          const taken = Math.max(1, Math.floor(offered.length * step.fraction));
          sentStream.push(...offered.slice(0, taken));
          queues.complete(0, taken);
          queuedStream = queuedStream.slice(taken);
          // A loan is given back once the stream has gone past its last byte (or it was
          // dropped), not before.
          for (let token = 0; token < tokens; token++) {
            expect(given.includes(token)).toBe(loanEnds[token] <= sentStream.length);
          }
          if (dropped) break; // torn down: nothing more is queued on it
        }
      }
      expect(queues.queuedBytes(0)).toBe(queuedStream.length);
      // What went out is a prefix of what was queued, byte for byte.
      const all = [...sentStream, ...queuedStream];
      for (let i = 0; i < all.length; i++) expect(all[i]).toBe(i & 0xff);
      if (clearAtEnd) {
        queues.clear(0);
        expect([...given].sort((a, b) => a - b)).toEqual(Array.from({ length: tokens }, (_, i) => i));
        expect(source.available).toBe(12);
        expect(queues.loansOut).toBe(0);
      }
      expect(new Set(given).size).toBe(given.length); // never twice
    }), { numRuns: 300 });
  });

  test("small slots: a short first send takes one, what follows goes to chunks, both come back", () => {
    const chunks = new ArrayChunks(2);
    const small = new ArrayChunks(2, 0x50_0000, SMALL_SLOT_SIZE);
    const area = new Uint8Array(4 * MESSAGE_AREA_SIZE);
    const queues = new SendQueues(4, chunks, CHUNK, 2, { address: 0x20_0000, segment: () => area },
      noLoanHeaders(), 1, small);
    // Three connections with a short send each: two small slots, then a chunk.
    for (const conn of [0, 1, 2]) expect(queues.append(conn, bytes(20, conn), 0, 20)).toBe(20);
    expect(small.available).toBe(0);
    expect(chunks.available).toBe(1);
    expect(queues.prepare(0)).toBe(1);
    expect(small.bytesAt(queues.sendAddress, 20)).toEqual(bytes(20, 0));
    // More on connection 1 fills its small slot, then goes on in a chunk: one SENDMSG.
    expect(queues.append(1, bytes(SMALL_SLOT_SIZE, 7), 0, SMALL_SLOT_SIZE)).toBe(SMALL_SLOT_SIZE);
    expect(queues.prepare(1)).toBe(2);
    expect(queues.sendLength).toBe(20 + SMALL_SLOT_SIZE);
    expect(queues.complete(1, 20 + SMALL_SLOT_SIZE)).toBe(true);
    expect(queues.complete(0, 20)).toBe(true);
    queues.clear(2);
    expect(small.available).toBe(2);
    expect(chunks.available).toBe(2);
    // No small slot and no chunk left: all or nothing.
    expect(queues.append(0, bytes(20), 0, 20)).toBe(20);
    expect(queues.append(1, bytes(20), 0, 20)).toBe(20);
    expect(queues.append(2, bytes(CHUNK * 2 + 1), 0, CHUNK * 2 + 1)).toBe(-ENOBUFS);
  });

  test("loan entries grow on demand up to the cap, and every one comes back", () => {
    const source = new ArrayChunks(4);
    const area = new Uint8Array(4 * MESSAGE_AREA_SIZE);
    const cap = 2500;
    const headers = { address: LOAN_HEADERS_AT, view: new Uint8Array(cap * LOAN_HEADER_SIZE) };
    const queues = new SendQueues(4, source, CHUNK, 4, { address: 0x20_0000, segment: () => area },
      headers, cap, NO_SMALL);
    let given = 0;
    const lender = { giveBack: () => void given++ };
    for (let i = 0; i < cap; i++) {
      expect(queues.appendLoan(i % 4, bytes(2), 0, 2, 0x90_0000 + i * 10, 8, lender, i)).toBe(10);
    }
    expect(queues.loansOut).toBe(cap);
    expect(queues.appendLoan(0, bytes(2), 0, 2, 0x90_0000, 8, lender, 0)).toBe(-ENOBUFS);
    // The first send of connection 1 gathers its first loans: header and payload iovecs.
    expect(queues.prepare(1)).toBe(2);
    expect(queues.sendLength).toBe(8 * 10); // 16 iovecs: 8 loans of two
    expect(queues.complete(1, 80)).toBe(false);
    expect(given).toBe(8);
    for (const conn of [0, 1, 2, 3]) queues.clear(conn);
    expect(given).toBe(cap);
    expect(queues.loansOut).toBe(0);
  });
});
