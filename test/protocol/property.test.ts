/**
 * Round trip: any sequence of messages, fragmented at random into frames with control frames
 * interleaved, survives encode (frame-writer, masked when a client sends) -> random chunking
 * (down to 1 byte) -> decode (frame-parser), giving exactly the original events in order.
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import { Prng } from "../../src/fake/prng.ts";
import { writeClosePayload } from "../../src/protocol/close.ts";
import {
  OPCODE_BINARY,
  OPCODE_CONTINUATION,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
  Role,
} from "../../src/protocol/constants.ts";
import { FrameParser } from "../../src/protocol/frame-parser.ts";
import { writeCloseFrame, writeFrame } from "../../src/protocol/frame-writer.ts";
import { patternBytes } from "../support/bytes.ts";
import { CountingBuffers, type FrameEvent, RecordingSink } from "./frame-support.ts";

const encoder = new TextEncoder();

interface Control {
  opcode: number;
  payload: Uint8Array;
  /** Sent before this fragment of the message (0 = before the message starts). */
  beforeFragment: number;
}

interface Message {
  opcode: number;
  payload: Uint8Array;
  compressed: boolean;
  /** Fragment boundaries, sorted; equal cuts make empty fragments. */
  cuts: number[];
  controls: Control[];
}

const LARGE_BYTES_MAX = 200 * 1024;

const smallText = fc.string({ unit: "binary", maxLength: 60 }).map((value) => ({
  opcode: OPCODE_TEXT,
  payload: encoder.encode(value),
}));
const smallBinary = fc.uint8Array({ maxLength: 300 }).map((payload) => ({
  opcode: OPCODE_BINARY,
  payload,
}));
// Large payloads are built, not drawn byte by byte: a pattern, or unicode text repeated.
const largePayload = fc
  .record({
    size: fc.integer({ min: 126, max: LARGE_BYTES_MAX }),
    seed: fc.nat(),
    isText: fc.boolean(),
    sample: fc.string({ unit: "binary", minLength: 1, maxLength: 12 }),
  })
  .map(({ size, seed, isText, sample }) => {
    if (!isText) return { opcode: OPCODE_BINARY, payload: patternBytes(size, seed) };
    const unit = encoder.encode(sample);
    return {
      opcode: OPCODE_TEXT,
      payload: encoder.encode(sample.repeat(Math.ceil(size / unit.length))),
    };
  });

const control = fc.record({
  opcode: fc.constantFrom(OPCODE_PING, OPCODE_PONG),
  payload: fc.uint8Array({ maxLength: 125 }),
  beforeFragment: fc.nat(),
});

const messageArbitrary = fc
  .record({
    body: fc.oneof(
      { arbitrary: smallText, weight: 4 },
      { arbitrary: smallBinary, weight: 4 },
      { arbitrary: largePayload, weight: 1 },
    ),
    compressed: fc.boolean(),
    cutSeeds: fc.array(fc.nat(), { maxLength: 4 }),
    controls: fc.array(control, { maxLength: 3 }),
  })
  .map(({ body, compressed, cutSeeds, controls }): Message => {
    const length = body.payload.length;
    const cuts = cutSeeds.map((seed) => seed % (length + 1)).sort((a, b) => a - b);
    const fragmentCount = cuts.length + 1;
    const placed = controls.map((c) => ({
      ...c,
      beforeFragment: c.beforeFragment % fragmentCount,
    }));
    const message = { ...body, compressed, cuts, controls: placed };
    // Counterexamples print as a summary, not as hundreds of KiB of byte values.
    return Object.assign(message, {
      [fc.toStringMethod]: () =>
        `{opcode ${body.opcode}, ${length} B, cuts [${cuts}], compressed ${compressed}, ` +
        `controls [${placed.map((c) => `${c.opcode}:${c.payload.length}B@${c.beforeFragment}`)}]}`,
    });
  });

const chunkingArbitrary = fc.oneof(
  fc.constant<"bytes">("bytes"),
  fc.constant<"whole">("whole"),
  fc.array(
    fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 70000 })),
    { minLength: 1, maxLength: 8 },
  ),
);

const scenario = fc.record({
  messages: fc.array(messageArbitrary, { maxLength: 6 }),
  clientSends: fc.boolean(),
  deflate: fc.boolean(),
  close: fc.option(
    fc.record({
      code: fc.constantFrom(1000, 1001, 1011, 1014, 3000, 4999),
      reason: fc.string({ unit: "binary", maxLength: 40 }),
    }),
  ),
  chunking: chunkingArbitrary,
  seed: fc.nat(),
});

/** Encodes the scenario's frames; returns the wire bytes and the events they must decode to. */
function encode(
  messages: Message[],
  close: { code: number; reason: string } | null,
  masks: Prng | null,
  deflate: boolean,
): { wire: Uint8Array; expected: FrameEvent[] } {
  let capacity = 200;
  for (const m of messages) {
    const frames = m.cuts.length + 1 + m.controls.length;
    capacity += m.payload.length + 14 * frames + 125 * m.controls.length;
  }
  const wire = new Uint8Array(capacity);
  const expected: FrameEvent[] = [];
  const key = () => (masks === null ? -1 : masks.next());
  let offset = 0;
  for (const m of messages) {
    const bounds = [0, ...m.cuts, m.payload.length];
    for (let fragment = 0; fragment + 1 < bounds.length; fragment++) {
      for (const c of m.controls) {
        if (c.beforeFragment !== fragment) continue;
        const length = c.payload.length;
        offset += writeFrame(wire, offset, c.opcode, true, false, c.payload, 0, length, key());
        expected.push({ kind: c.opcode === OPCODE_PING ? "ping" : "pong", data: c.payload });
      }
      const opcode = fragment === 0 ? m.opcode : OPCODE_CONTINUATION;
      const fin = fragment + 2 === bounds.length;
      const rsv1 = deflate && m.compressed && fragment === 0;
      const [start, end] = [bounds[fragment], bounds[fragment + 1]];
      offset += writeFrame(wire, offset, opcode, fin, rsv1, m.payload, start, end, key());
    }
    const compressed = deflate && m.compressed;
    expected.push({ kind: "message", opcode: m.opcode, data: m.payload, compressed });
  }
  if (close !== null) {
    offset += writeCloseFrame(wire, offset, close.code, close.reason, key());
    const payload = new Uint8Array(125);
    const length = writeClosePayload(payload, 0, close.code, close.reason);
    expected.push({ kind: "close", code: close.code, reason: payload.slice(2, length) });
  }
  return { wire: wire.subarray(0, offset), expected };
}

/**
 * Feeds `wire` through one reused receive buffer (as the server's pool slots are reused), so
 * a parser that kept a view of an earlier chunk would read the junk written over it.
 */
function decode(
  parser: FrameParser,
  wire: Uint8Array,
  chunking: "bytes" | "whole" | number[],
  seed: number,
): FrameEvent[] {
  const sink = new RecordingSink();
  const receive = new Uint8Array(wire.length + 16);
  let position = 0;
  let index = 0;
  while (position < wire.length) {
    let size = wire.length;
    if (chunking === "bytes") size = 1;
    else if (chunking !== "whole") size = chunking[index++ % chunking.length];
    const piece = wire.subarray(position, Math.min(wire.length, position + size));
    const at = (seed + index) % 8; // unaligned receive offsets
    receive.fill(0xee, 0, at + piece.length + 8);
    receive.set(piece, at);
    parser.consume(receive, at, at + piece.length, sink);
    position += piece.length;
  }
  return sink.events;
}

test("encode -> random chunking -> decode returns the original events", () => {
  fc.assert(
    fc.property(scenario, ({ messages, clientSends, deflate, close, chunking, seed }) => {
      const masks = clientSends ? new Prng(seed) : null;
      const { wire, expected } = encode(messages, close, masks, deflate);
      // One byte per call is slow for big scenarios; they still get small random chunks.
      const effective = chunking === "bytes" && wire.length > 40_000 ? [1, 7, 300] : chunking;
      const buffers = new CountingBuffers();
      const parser = new FrameParser({
        role: clientSends ? Role.Server : Role.Client,
        allowRsv1: deflate,
        maxPayloadLength: LARGE_BYTES_MAX * 2,
        messageBuffers: buffers,
      });
      const events = decode(parser, wire, effective, seed);
      expect(events).toEqual(expected);
      expect(buffers.outstanding).toBe(0);
    }),
    { numRuns: 150 },
  );
});
