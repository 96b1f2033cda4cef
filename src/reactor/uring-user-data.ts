/**
 * user_data of an SQE is 64 bits; a JS object pointer cannot go there, so (like liburing's
 * examples/proxy.h) we pack: low u32 = slot (connection or listener index), high u32 =
 * operation (8 bits) | generation (24 bits). A generation mismatch marks a stale CQE.
 */
export const OP_ACCEPT = 1;
export const OP_RECV = 2;
export const OP_SEND = 3;
export const OP_CLOSE = 4;
export const OP_CANCEL = 5;
export const OP_CONNECT = 6;
export const OP_WAKE = 7;
export const OP_LISTENER_CLOSE = 8;
export const OP_LISTENER_CANCEL = 9;
export const OP_SEND_ZC = 10;

export const GENERATION_MASK = 0xff_ffff;

export function userHigh(op: number, generation: number): number {
  return (op | (generation << 8)) >>> 0;
}

export function opOf(high: number): number {
  return high & 0xff;
}

export function generationOf(high: number): number {
  return high >>> 8;
}
