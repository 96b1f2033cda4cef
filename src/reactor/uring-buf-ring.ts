/**
 * A provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19+): the kernel picks a receive
 * buffer per completion, so an idle connection owns none. Buffers live in one pool region;
 * the ring of {addr, len, bid} entries lives in its own page-aligned mapping. Returned
 * buffers are batched and published with one release store of the tail per loop turn.
 */
import { assert } from "../api/errors.ts";
import * as abi from "../ffi/io-uring-abi.ts";
import { systemError } from "../ffi/errno.ts";
import { check, libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../ffi/libc.ts";
import { arrayBufferAt } from "../ffi/memory.ts";
import type { MemoryRegion } from "../pool/region.ts";
import type { UringRing } from "./uring-ring.ts";

const TWO_32 = 0x1_0000_0000;

export class ProvidedBufferRing {
  readonly group: number;
  /** Ring entries: the most buffers the ring can ever hold (a power of two). */
  readonly capacity: number;
  /** Buffers in use by the ring now (ids 0..count-1); grows up to `capacity`. */
  count: number;
  readonly bufferSize: number;
  /** One view per buffer id, made when the buffer joins the ring. */
  readonly views: Uint8Array[];
  private readonly ring: UringRing;
  private readonly region: MemoryRegion;
  private readonly entriesAddress: number;
  private readonly entriesSize: number;
  private readonly words: Uint32Array;
  private readonly halves: Uint16Array;
  private readonly buffersAddress: number;
  private tailLocal = 0;
  private tailPublished = 0;
  /** Buffers the kernel may pick right now (published and not yet reported in a CQE). */
  private available = 0;
  private inUseHighWater = 0;
  private registered = false;

  /**
   * @param region memory for `capacity` × bufferSize bytes; only the buffers in use are
   *   viewed (JSC counts viewed bytes as heap) or touched.
   * @param initialCount buffers to start with (grow() adds more).
   */
  constructor(ring: UringRing, group: number, capacity: number, initialCount: number,
    bufferSize: number, region: MemoryRegion) {
    assert((capacity & (capacity - 1)) === 0 && capacity <= 32768, "ring entries: power of two ≤ 32768");
    assert(initialCount >= 1 && initialCount <= capacity, "initial buffers within the ring");
    assert(region.size >= capacity * bufferSize, "buffer memory too small");
    this.ring = ring;
    this.group = group;
    this.capacity = capacity;
    this.count = 0;
    this.bufferSize = bufferSize;
    this.region = region;
    this.buffersAddress = region.pointer;
    this.entriesSize = Math.max(4096, capacity * abi.BUF_ENTRY_SIZE);
    this.entriesAddress = check("mmap", Number(libc().mmap(0, this.entriesSize,
      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)));
    const entries = arrayBufferAt(this.entriesAddress, this.entriesSize);
    this.words = new Uint32Array(entries);
    this.halves = new Uint16Array(entries);
    this.views = [];
    const reg = new Uint32Array(new ArrayBuffer(1024));
    reg[abi.BUF_REG_RING_ADDR / 4] = this.entriesAddress >>> 0;
    reg[abi.BUF_REG_RING_ADDR / 4 + 1] = Math.floor(this.entriesAddress / TWO_32);
    reg[abi.BUF_REG_RING_ENTRIES / 4] = capacity;
    reg[abi.BUF_REG_BGID / 4] = group; // bgid u16, flags u16 = 0
    const result = ring.register(abi.IORING_REGISTER_PBUF_RING, reg, 1);
    if (result < 0) {
      libc().munmap(this.entriesAddress, this.entriesSize);
      throw systemError("io_uring_register(PBUF_RING)", result);
    }
    this.registered = true;
    this.grow(initialCount);
  }

  /**
   * Give the ring buffers up to `count` in all (at most `capacity`): the kernel sees them
   * after the next publish(). Returns how many were added.
   */
  grow(count: number): number {
    const target = Math.min(count, this.capacity);
    const added = target - this.count;
    for (let bid = this.count; bid < target; bid++) {
      const view = this.region.viewRange(bid * this.bufferSize, (bid + 1) * this.bufferSize);
      // Buffers (a Uint8Array subclass): handlers can decode text in place with utf8Slice.
      this.views.push(Buffer.from(view.buffer, view.byteOffset, view.byteLength));
      this.count = bid + 1;
      this.add(bid);
    }
    this.publish();
    return Math.max(0, added);
  }

  /** Queue buffer `bid` for the kernel again (visible after `publish`). */
  add(bid: number): void {
    const slot = this.tailLocal & (this.capacity - 1);
    const address = this.buffersAddress + bid * this.bufferSize;
    const base = slot * 4; // 16-byte entry = 4 words
    this.words[base] = address >>> 0;
    this.words[base + 1] = Math.floor(address / TWO_32);
    this.words[base + 2] = this.bufferSize;
    // bid shares word 3 with the tail (in entry 0), so write it as a u16 only.
    this.halves[slot * 8 + 6] = bid;
    this.tailLocal = (this.tailLocal + 1) & 0xffff;
  }

  /** Make every added buffer visible to the kernel: one release store of the tail. */
  publish(): number {
    const added = (this.tailLocal - this.tailPublished) & 0xffff;
    if (added === 0) return 0;
    Atomics.store(this.halves, abi.BUF_RING_TAIL / 2, this.tailLocal);
    this.tailPublished = this.tailLocal;
    this.available += added;
    return added;
  }

  /** A completion consumed one buffer. */
  taken(): void {
    this.available--;
    const inUse = this.count - this.available;
    if (inUse > this.inUseHighWater) this.inUseHighWater = inUse;
  }

  /** Most buffers ever out of the ring at once (with the kernel's data or a handler). */
  highWater(): number {
    return this.inUseHighWater;
  }

  availableCount(): number {
    return this.available;
  }

  inUse(): number {
    return this.count - this.available;
  }

  close(): void {
    if (!this.registered) return;
    this.registered = false;
    const reg = new Uint32Array(new ArrayBuffer(1024));
    reg[abi.BUF_REG_BGID / 4] = this.group;
    this.ring.register(abi.IORING_UNREGISTER_PBUF_RING, reg, 1);
    libc().munmap(this.entriesAddress, this.entriesSize);
  }
}
