/**
 * Incremental UTF-8 validation (RFC 3629 §4, required for text messages by RFC 6455 §8.1).
 *
 * The whole state between calls is one small integer, so a text message can be validated
 * fragment by fragment, chunk by chunk, and rejected at the first bad byte sequence instead
 * of after the last fragment. Rejected: bytes C0, C1 and F5-FF, overlong forms (E0 80-9F,
 * F0 80-8F), UTF-16 surrogates U+D800-U+DFFF (ED A0-BF), code points above U+10FFFF
 * (F4 90-BF), stray continuation bytes, and (through `isCompleteUtf8`) a message that ends
 * inside a sequence.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { assert } from "../api/errors.ts";
import { wordViewOf } from "./word-view.ts";

/** Between characters: the start state, and the only state in which a message may end. */
export const UTF8_ACCEPT = 0;
/** Returned once a byte sequence is invalid; validateUtf8 keeps returning it. */
export const UTF8_INVALID = 8;

// Waiting states: how many continuation bytes are still due, and, right after the lead
// bytes E0, ED, F0, F4, the narrowed range the next byte must fall in (RFC 3629 §4).
const TAIL_1 = 1; // 80..BF, then done
const TAIL_2 = 2; // 80..BF, then TAIL_1
const TAIL_3 = 3; // 80..BF, then TAIL_2
const AFTER_E0 = 4; // A0..BF: below is an overlong 3-byte form
const AFTER_ED = 5; // 80..9F: above encodes a surrogate
const AFTER_F0 = 6; // 90..BF: below is an overlong 4-byte form
const AFTER_F4 = 7; // 80..8F: above is beyond U+10FFFF
const STATE_COUNT = 9;

/** transitions[state * 256 + byte] = next state: one table load per byte, no branches. */
const transitions = buildTransitions();

function buildTransitions(): Uint8Array {
  const table = new Uint8Array(STATE_COUNT * 256).fill(UTF8_INVALID);
  const setRange = (state: number, low: number, high: number, next: number) => {
    for (let byte = low; byte <= high; byte++) table[state * 256 + byte] = next;
  };
  setRange(UTF8_ACCEPT, 0x00, 0x7f, UTF8_ACCEPT);
  setRange(UTF8_ACCEPT, 0xc2, 0xdf, TAIL_1);
  setRange(UTF8_ACCEPT, 0xe0, 0xe0, AFTER_E0);
  setRange(UTF8_ACCEPT, 0xe1, 0xec, TAIL_2);
  setRange(UTF8_ACCEPT, 0xed, 0xed, AFTER_ED);
  setRange(UTF8_ACCEPT, 0xee, 0xef, TAIL_2);
  setRange(UTF8_ACCEPT, 0xf0, 0xf0, AFTER_F0);
  setRange(UTF8_ACCEPT, 0xf1, 0xf3, TAIL_3);
  setRange(UTF8_ACCEPT, 0xf4, 0xf4, AFTER_F4);
  setRange(TAIL_1, 0x80, 0xbf, UTF8_ACCEPT);
  setRange(TAIL_2, 0x80, 0xbf, TAIL_1);
  setRange(TAIL_3, 0x80, 0xbf, TAIL_2);
  setRange(AFTER_E0, 0xa0, 0xbf, TAIL_1);
  setRange(AFTER_ED, 0x80, 0x9f, TAIL_1);
  setRange(AFTER_F0, 0x90, 0xbf, TAIL_2);
  setRange(AFTER_F4, 0x80, 0x8f, TAIL_2);
  return table;
}

/**
 * Where Bun's native `isUtf8` (SIMD; it needs a subarray, one small allocation) beats the JS
 * state machine, measured in bench/utf8.ts on Bun 1.4.5: from about 256 bytes on ASCII,
 * where the JS word scan is quick, and from about 64 bytes once non-ASCII text appears.
 */
export const UTF8_NATIVE_THRESHOLD = 256;
const UTF8_NATIVE_NON_ASCII_THRESHOLD = 64;
/** Below this, the ASCII word scan is not worth setting up. */
const ASCII_WORD_THRESHOLD = 32;
/** 0x80808080 as an int32: the high bit of each of 4 bytes. */
const HIGH_BITS = 0x80808080 | 0;

/**
 * Validates `data[start..end)` continuing from `state` (UTF8_ACCEPT for a new message).
 * Returns the state to pass with the next fragment, or UTF8_INVALID as soon as the bytes so
 * far cannot be the start of valid UTF-8. A message is valid when its last call returns a
 * state for which `isCompleteUtf8` is true.
 */
export function validateUtf8(data: Uint8Array, start: number, end: number, state: number): number {
  assert(start >= 0 && start <= end && end <= data.length, "utf8 range outside the array");
  assert(state >= UTF8_ACCEPT && state <= UTF8_INVALID, "utf8 state out of range");
  if (state !== UTF8_ACCEPT || end - start >= UTF8_NATIVE_THRESHOLD) {
    return validateUtf8Native(data, start, end, state);
  }
  if (end - start < ASCII_WORD_THRESHOLD) {
    // Short messages are mostly ASCII (JSON): one OR over the bytes settles those.
    let highBits = 0;
    for (let index = start; index < end; index++) highBits |= data[index];
    if (highBits < 0x80) return UTF8_ACCEPT;
    return validateUtf8InJs(data, start, end, state);
  }
  // Medium ranges: an ASCII prefix goes by the word scan without allocating; enough
  // non-ASCII after it goes native.
  const index = data[start] < 0x80 ? skipAscii(data, start, end) : start;
  if (end - index >= UTF8_NATIVE_NON_ASCII_THRESHOLD) {
    return validateUtf8Native(data, index, end, UTF8_ACCEPT);
  }
  return validateUtf8InJs(data, index, end, UTF8_ACCEPT);
}

/** validateUtf8 for ranges long enough that native code should check the middle. */
function validateUtf8Native(data: Uint8Array, start: number, end: number, state: number): number {
  if (state === UTF8_INVALID) return UTF8_INVALID;
  let index = start;
  // Finish a sequence carried over from the previous fragment in JS, then let native code
  // check everything up to the start of a sequence that this range cuts off (if any).
  for (; state !== UTF8_ACCEPT && index < end; index++) {
    state = transitions[(state << 8) | data[index]];
    if (state === UTF8_INVALID) return UTF8_INVALID;
  }
  const completeEnd = endOfCompleteSequences(data, index, end);
  if (completeEnd - index >= UTF8_NATIVE_NON_ASCII_THRESHOLD) {
    if (!isUtf8(data.subarray(index, completeEnd))) return UTF8_INVALID;
    index = completeEnd;
  }
  return validateUtf8InJs(data, index, end, state);
}

/**
 * The JavaScript state machine alone, without the native shortcut (validateUtf8 uses it
 * for short ranges and for the ends of long ones; tests and bench/utf8.ts call it directly).
 * Same contract as validateUtf8.
 */
export function validateUtf8InJs(
  data: Uint8Array,
  start: number,
  end: number,
  state: number,
): number {
  if (state === UTF8_INVALID) return UTF8_INVALID;
  let index = start;
  while (index < end) {
    const byte = data[index];
    if (state === UTF8_ACCEPT && byte < 0x80) {
      index = end - index >= ASCII_WORD_THRESHOLD ? skipAscii(data, index, end) : index + 1;
      continue;
    }
    state = transitions[(state << 8) | byte];
    if (state === UTF8_INVALID) return UTF8_INVALID;
    index++;
  }
  return state;
}

/** True when a message whose last validateUtf8 call returned `state` is valid UTF-8. */
export function isCompleteUtf8(state: number): boolean {
  return state === UTF8_ACCEPT;
}

/** Whole-message check: `data[start..end)` is complete, valid UTF-8. */
export function isValidUtf8(data: Uint8Array, start: number, end: number): boolean {
  return validateUtf8(data, start, end, UTF8_ACCEPT) === UTF8_ACCEPT;
}

/** classifyText results. */
export const TEXT_INVALID = 0;
export const TEXT_UTF8 = 1;
/** Valid and all 7-bit: any single-byte decoding (latin1Slice) gives the same string, faster. */
export const TEXT_ASCII = 2;

/**
 * isValidUtf8 that also says when the range is pure ASCII. Below UTF8_NATIVE_THRESHOLD the
 * scans that validate see every byte anyway; longer ranges ask Bun's native (SIMD) isAscii
 * first: it costs less than isUtf8, and an ASCII message then decodes as latin1, cheaper
 * than utf8Slice (4 KiB: isAscii 89 ns vs isUtf8 136, latin1Slice 548 vs utf8Slice 679,
 * Bun 1.4.5 on AMD EPYC). Non-ASCII long text pays both native checks.
 */
export function classifyText(data: Uint8Array, start: number, end: number): number {
  assert(start >= 0 && start <= end && end <= data.length, "utf8 range outside the array");
  const length = end - start;
  let from = start;
  if (length < ASCII_WORD_THRESHOLD) {
    let highBits = 0;
    for (let index = start; index < end; index++) highBits |= data[index];
    if (highBits < 0x80) return TEXT_ASCII;
    return validateUtf8InJs(data, start, end, UTF8_ACCEPT) === UTF8_ACCEPT ? TEXT_UTF8 : TEXT_INVALID;
  }
  if (length < UTF8_NATIVE_THRESHOLD && data[start] < 0x80) {
    // The word scan stops before a partial last word; the few bytes after it go singly.
    from = skipAscii(data, start, end);
    while (from < end && data[from] < 0x80) from++;
    if (from === end) return TEXT_ASCII;
  }
  if (length >= UTF8_NATIVE_THRESHOLD && isAscii(data.subarray(start, end))) return TEXT_ASCII;
  // The ASCII prefix already seen ends between characters: validation starts after it.
  return validateUtf8(data, from, end, UTF8_ACCEPT) === UTF8_ACCEPT ? TEXT_UTF8 : TEXT_INVALID;
}

/**
 * `data[index]` is ASCII; returns the index of the first byte after it not yet known to be
 * ASCII, checking 4 bytes per step over the aligned middle.
 */
function skipAscii(data: Uint8Array, index: number, end: number): number {
  let position = index + 1;
  // Single bytes up to a 4-byte aligned address in the buffer.
  while (position < end && ((data.byteOffset + position) & 3) !== 0) {
    if (data[position] >= 0x80) return position;
    position++;
  }
  const words = wordViewOf(data);
  const firstWord = (data.byteOffset + position) >>> 2;
  const wordEnd = firstWord + ((end - position) >>> 2);
  let wordIndex = firstWord;
  while (wordIndex < wordEnd && (words[wordIndex] & HIGH_BITS) === 0) wordIndex++;
  return position + ((wordIndex - firstWord) << 2);
}

/**
 * `data[start..end)` begins at a character boundary. Returns where a multi-byte sequence that
 * `end` cuts short begins, or `end` when the range does not end inside one (then any error
 * in the range is the native check's to find).
 */
function endOfCompleteSequences(data: Uint8Array, start: number, end: number): number {
  // A sequence is at most 4 bytes, so its lead byte is within the last 3.
  const lowest = Math.max(start, end - 3);
  for (let position = end - 1; position >= lowest; position--) {
    const byte = data[position];
    if ((byte & 0xc0) === 0x80) continue; // continuation byte
    if (byte < 0xc0) return end;
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    return position + length > end ? position : end;
  }
  return end;
}
