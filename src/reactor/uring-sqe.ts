/**
 * SQE preparation, named after liburing's io_uring_prep_* helpers (static inline in C, so
 * bun:ffi cannot call them). Every helper writes all 16 words of the SQE, so a reused slot
 * never carries stale fields. Addresses and user_data are written as two u32 halves: no
 * BigInt on this path.
 */
import * as abi from "../ffi/io-uring-abi.ts";
import type { UringRing } from "./uring-ring.ts";

const TWO_32 = 0x1_0000_0000;

export class SqeWriter {
  private readonly words: Uint32Array;

  constructor(ring: UringRing) {
    this.words = ring.sqeWords;
  }

  /** io_uring_prep_rw: the base every other helper builds on. */
  prepRw(sqe: number, opcode: number, fd: number, address: number, length: number,
    offset: number, userLow: number, userHigh: number): void {
    const w = this.words;
    const base = sqe << 4;
    w[base] = opcode; // opcode | flags<<8 | ioprio<<16, flags and ioprio cleared
    w[base + 1] = fd;
    w[base + 2] = offset >>> 0;
    w[base + 3] = Math.floor(offset / TWO_32);
    w[base + 4] = address >>> 0;
    w[base + 5] = Math.floor(address / TWO_32);
    w[base + 6] = length;
    w[base + 7] = 0;
    w[base + 8] = userLow;
    w[base + 9] = userHigh;
    w[base + 10] = 0;
    w[base + 11] = 0;
    w[base + 12] = 0;
    w[base + 13] = 0;
    w[base + 14] = 0;
    w[base + 15] = 0;
  }

  /** Swap the opcode of a prepared SQE (SEND → SEND_ZC: same fields, other operation). */
  setOpcode(sqe: number, opcode: number): void {
    const base = sqe << 4;
    this.words[base] = (this.words[base] & ~0xff) | opcode;
  }

  setFlags(sqe: number, flags: number): void {
    this.words[sqe << 4] |= flags << 8;
  }

  setIoprio(sqe: number, ioprio: number): void {
    this.words[sqe << 4] |= ioprio << 16;
  }

  setOpFlags(sqe: number, opFlags: number): void {
    this.words[(sqe << 4) + 7] = opFlags;
  }

  setBufGroup(sqe: number, group: number): void {
    this.words[(sqe << 4) + 10] = group & 0xffff;
  }

  prepNop(sqe: number, userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_NOP, -1, 0, 0, 0, userLow, userHigh);
  }

  /** Multishot accept (5.19): one SQE posts a CQE per accepted connection. */
  prepMultishotAccept(sqe: number, fd: number, acceptFlags: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_ACCEPT, fd, 0, 0, 0, userLow, userHigh);
    this.setIoprio(sqe, abi.IORING_ACCEPT_MULTISHOT);
    this.setOpFlags(sqe, acceptFlags);
  }

  /** Multishot recv (6.0) with a buffer picked from provided-buffer group `group`. */
  prepRecvMultishot(sqe: number, fd: number, group: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_RECV, fd, 0, 0, 0, userLow, userHigh);
    this.setIoprio(sqe, abi.IORING_RECV_MULTISHOT);
    this.setFlags(sqe, abi.IOSQE_BUFFER_SELECT);
    this.setBufGroup(sqe, group);
  }

  prepSend(sqe: number, fd: number, address: number, length: number, msgFlags: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_SEND, fd, address, length, 0, userLow, userHigh);
    this.setOpFlags(sqe, msgFlags);
  }

  prepSendmsg(sqe: number, fd: number, msghdrAddress: number, msgFlags: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_SENDMSG, fd, msghdrAddress, 1, 0, userLow, userHigh);
    this.setOpFlags(sqe, msgFlags);
  }

  prepConnect(sqe: number, fd: number, sockaddrAddress: number, sockaddrLength: number,
    userLow: number, userHigh: number): void {
    // io_uring_prep_connect: addrlen travels in the off field.
    this.prepRw(sqe, abi.IORING_OP_CONNECT, fd, sockaddrAddress, 0, sockaddrLength,
      userLow, userHigh);
  }

  prepClose(sqe: number, fd: number, userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_CLOSE, fd, 0, 0, 0, userLow, userHigh);
  }

  prepShutdown(sqe: number, fd: number, how: number, userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_SHUTDOWN, fd, 0, how, 0, userLow, userHigh);
  }

  /** Cancel by user_data (target halves), or with CANCEL_FD|ALL every request on `fd`. */
  prepCancel(sqe: number, targetLow: number, targetHigh: number, fd: number, cancelFlags: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_ASYNC_CANCEL, fd, 0, 0, 0, userLow, userHigh);
    const w = this.words;
    const base = sqe << 4;
    w[base + 4] = targetLow; // addr carries the user_data to match
    w[base + 5] = targetHigh;
    w[base + 7] = cancelFlags;
  }

  /**
   * TIMEOUT: fires after the __kernel_timespec at `timespecAddress` (native memory), or once
   * `count` other completions have posted (0 = pure timer).
   */
  prepTimeout(sqe: number, timespecAddress: number, count: number, timeoutFlags: number,
    userLow: number, userHigh: number): void {
    this.prepRw(sqe, abi.IORING_OP_TIMEOUT, -1, timespecAddress, 1, count, userLow, userHigh);
    this.setOpFlags(sqe, timeoutFlags);
  }
}
