/**
 * One io_uring instance owned from TypeScript: the SQ and CQ rings and the SQE array are
 * mmapped and read/written as typed-array views, using the offsets the kernel returns in
 * io_uring_params (kernel ABI), never liburing's struct layout (which changes between
 * versions). Shared indices go through Atomics so the JIT neither hoists nor reorders them.
 */
import { assert } from "../api/errors.ts";
import { EINTR, EINVAL, ETIME } from "../api/errno.ts";
import * as abi from "../ffi/io-uring-abi.ts";
import { systemError } from "../ffi/errno.ts";
import {
  check, libc, MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE,
} from "../ffi/libc.ts";
import { arrayBufferAt } from "../ffi/memory.ts";
import { uring, type UringCalls } from "../ffi/uring.ts";

export interface RingOptions {
  /** SQ entries (power of two); default 4096. */
  entries?: number;
  /** CQ entries; default 4 × entries (multishot ops post many CQEs per SQE). */
  cqEntries?: number;
  /** Ask for SINGLE_ISSUER | DEFER_TASKRUN (6.1+) when available; default true. */
  deferTaskrun?: boolean;
}

interface Mapping { address: number; size: number }

/** Flag sets tried in order: the first the kernel accepts wins. */
function flagCandidates(deferTaskrun: boolean): number[] {
  const base = abi.IORING_SETUP_CQSIZE | abi.IORING_SETUP_SUBMIT_ALL;
  // TASKRUN_FLAG (5.19): the kernel flags pending task work in the SQ ring, so a turn with
  // nothing to submit and nothing flagged needs no io_uring_enter (see `enter`).
  const flagged = abi.IORING_SETUP_TASKRUN_FLAG;
  const candidates = [];
  if (deferTaskrun) {
    candidates.push(base | abi.IORING_SETUP_SINGLE_ISSUER | abi.IORING_SETUP_DEFER_TASKRUN | flagged);
  }
  candidates.push(base | abi.IORING_SETUP_COOP_TASKRUN | flagged, base | abi.IORING_SETUP_COOP_TASKRUN,
    base, abi.IORING_SETUP_CQSIZE);
  return candidates;
}

export class UringRing {
  readonly fd: number;
  readonly flags: number;
  readonly features: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  /** The SQE array as 32-bit words (16 per SQE) and as bytes. */
  readonly sqeWords: Uint32Array;
  readonly sqeBytes: Uint8Array;
  /** The CQE array: words [4i]=user_data lo, [4i+1]=hi, [4i+2]=res, [4i+3]=flags. */
  readonly cqeWords: Uint32Array;
  readonly cqeResults: Int32Array;
  readonly cqMask: number;
  readonly deferTaskrun: boolean;
  /** The kernel sets IORING_SQ_TASKRUN while task work is pending (TASKRUN_FLAG accepted). */
  readonly taskrunFlagged: boolean;

  private readonly calls: UringCalls;
  private readonly ringWords: Uint32Array;
  private readonly cqRingWords: Uint32Array;
  private readonly sqHeadIndex: number;
  private readonly sqTailIndex: number;
  private readonly sqFlagsIndex: number;
  private readonly cqHeadIndex: number;
  private readonly cqTailIndex: number;
  private readonly cqOverflowIndex: number;
  private readonly sqMask: number;
  private readonly mappings: Mapping[] = [];
  /** Our copy of the SQ tail: SQEs prepared but not yet published. */
  private sqTailLocal = 0;
  private sqTailPublished = 0;
  private cqHeadLocal = 0;
  private closed = false;

  constructor(options: RingOptions = {}) {
    const entries = options.entries ?? 4096;
    const cqEntries = options.cqEntries ?? entries * 4;
    assert((entries & (entries - 1)) === 0, "ring entries must be a power of two");
    this.calls = uring();
    const params = new Uint32Array(new ArrayBuffer(1024)); // >1000 B: never a movable small array
    let fd = -EINVAL;
    for (const flags of flagCandidates(options.deferTaskrun ?? true)) {
      params.fill(0);
      params[abi.PARAMS_FLAGS / 4] = flags;
      params[abi.PARAMS_CQ_ENTRIES / 4] = cqEntries;
      fd = this.calls.setup(entries, params);
      if (fd >= 0 || fd !== -EINVAL) break; // EINVAL: flags unknown to this kernel, try fewer
    }
    if (fd < 0) throw systemError("io_uring_setup", fd);
    this.fd = fd;
    this.flags = params[abi.PARAMS_FLAGS / 4];
    this.features = params[abi.PARAMS_FEATURES / 4];
    this.deferTaskrun = (this.flags & abi.IORING_SETUP_DEFER_TASKRUN) !== 0;
    this.taskrunFlagged = (this.flags & abi.IORING_SETUP_TASKRUN_FLAG) !== 0;
    this.sqEntries = params[abi.PARAMS_SQ_ENTRIES / 4];
    this.cqEntries = params[abi.PARAMS_CQ_ENTRIES / 4];
    try {
      const sq = (field: number) => params[(abi.PARAMS_SQ_OFF + field) / 4];
      const cq = (field: number) => params[(abi.PARAMS_CQ_OFF + field) / 4];
      const sqSize = sq(abi.SQ_OFF_ARRAY) + this.sqEntries * 4;
      const cqSize = cq(abi.CQ_OFF_CQES) + this.cqEntries * abi.CQE_SIZE;
      const single = (this.features & abi.IORING_FEAT_SINGLE_MMAP) !== 0;
      const sqRing = this.map(single ? Math.max(sqSize, cqSize) : sqSize, abi.IORING_OFF_SQ_RING);
      const cqRing = single ? sqRing : this.map(cqSize, abi.IORING_OFF_CQ_RING);
      const sqes = this.map(this.sqEntries * abi.SQE_SIZE, abi.IORING_OFF_SQES);
      this.ringWords = new Uint32Array(arrayBufferAt(sqRing.address, sqRing.size));
      this.cqRingWords = new Uint32Array(arrayBufferAt(cqRing.address, cqRing.size));
      this.sqHeadIndex = sq(abi.SQ_OFF_HEAD) / 4;
      this.sqTailIndex = sq(abi.SQ_OFF_TAIL) / 4;
      this.sqFlagsIndex = sq(abi.SQ_OFF_FLAGS) / 4;
      this.sqMask = this.ringWords[sq(abi.SQ_OFF_RING_MASK) / 4];
      this.cqHeadIndex = cq(abi.CQ_OFF_HEAD) / 4;
      this.cqTailIndex = cq(abi.CQ_OFF_TAIL) / 4;
      this.cqOverflowIndex = cq(abi.CQ_OFF_OVERFLOW) / 4;
      this.cqMask = this.cqRingWords[cq(abi.CQ_OFF_RING_MASK) / 4];
      this.cqeWords = new Uint32Array(
        arrayBufferAt(cqRing.address + cq(abi.CQ_OFF_CQES), this.cqEntries * abi.CQE_SIZE));
      this.cqeResults = new Int32Array(this.cqeWords.buffer);
      const sqesBuffer = arrayBufferAt(sqes.address, sqes.size);
      this.sqeWords = new Uint32Array(sqesBuffer);
      this.sqeBytes = new Uint8Array(sqesBuffer);
      // Identity SQ array: slot i always points at SQE i, so SQE index = tail & mask.
      const array = new Uint32Array(arrayBufferAt(sqRing.address + sq(abi.SQ_OFF_ARRAY),
        this.sqEntries * 4));
      for (let i = 0; i < this.sqEntries; i++) array[i] = i;
      this.sqTailLocal = this.sqTailPublished = Atomics.load(this.ringWords, this.sqTailIndex);
      this.cqHeadLocal = Atomics.load(this.cqRingWords, this.cqHeadIndex);
    } catch (error) {
      this.unmapAll();
      libc().close(fd);
      throw error;
    }
  }

  private map(size: number, offset: number): Mapping {
    const address = Number(libc().mmap(0, size, PROT_READ | PROT_WRITE,
      MAP_SHARED | MAP_POPULATE, this.fd, offset));
    check("mmap", address);
    const mapping = { address, size };
    this.mappings.push(mapping);
    return mapping;
  }

  /** Free SQE slots right now (without submitting). */
  sqSpace(): number {
    const head = Atomics.load(this.ringWords, this.sqHeadIndex);
    return this.sqEntries - ((this.sqTailLocal - head) >>> 0);
  }

  /**
   * Index of a cleared SQE to fill, or -1 when the SQ is full (submit first). The caller
   * writes the fields with the prep helpers in uring-sqe.ts.
   */
  getSqe(): number {
    const head = Atomics.load(this.ringWords, this.sqHeadIndex);
    if (((this.sqTailLocal - head) >>> 0) >= this.sqEntries) return -1;
    const index = this.sqTailLocal & this.sqMask;
    this.sqTailLocal = (this.sqTailLocal + 1) >>> 0;
    return index;
  }

  /** SQEs prepared and not yet handed to the kernel. */
  pendingSubmissions(): number {
    return (this.sqTailLocal - this.sqTailPublished) >>> 0;
  }

  /**
   * Publish prepared SQEs and enter the kernel once: submits them and, with `getEvents`,
   * runs deferred task work so completions get posted (DEFER_TASKRUN only posts them here).
   * Returns the number submitted, or -errno (EINTR, ETIME and EBUSY are left to the caller).
   */
  enter(waitFor: number, getEvents: boolean): number {
    const toSubmit = (this.sqTailLocal - this.sqTailPublished) >>> 0;
    if (toSubmit > 0) {
      Atomics.store(this.ringWords, this.sqTailIndex, this.sqTailLocal);
      this.sqTailPublished = this.sqTailLocal;
    }
    const flags = getEvents || waitFor > 0 ? abi.IORING_ENTER_GETEVENTS : 0;
    if (toSubmit === 0 && (flags === 0 || (waitFor === 0 && this.nothingToGet()))) return 0;
    return this.calls.enter(this.fd, toSubmit, waitFor, flags, null, 0);
  }

  /**
   * With TASKRUN_FLAG, no task work is pending and nothing overflowed: every completion there
   * is sits in the CQ already, and a GETEVENTS enter would only cost a syscall (what a spin
   * turn or the turn after a wake-up did, ~1 per message at sparse load).
   */
  private nothingToGet(): boolean {
    return this.taskrunFlagged &&
      (Atomics.load(this.ringWords, this.sqFlagsIndex) & (abi.IORING_SQ_TASKRUN | abi.IORING_SQ_CQ_OVERFLOW)) === 0;
  }

  /** Completions to reap, or (TASKRUN_FLAG) task work or an overflow an enter would turn into some. */
  hasWorkToReap(): boolean {
    if (this.readyCount() > 0) return true;
    return this.taskrunFlagged && !this.nothingToGet();
  }

  /** Like `enter`, but waits at most `timeoutMs` for `waitFor` completions (EXT_ARG, 5.11+). */
  enterWithTimeout(waitFor: number, timeoutMs: number, argument: BigInt64Array): number {
    const toSubmit = (this.sqTailLocal - this.sqTailPublished) >>> 0;
    if (toSubmit > 0) {
      Atomics.store(this.ringWords, this.sqTailIndex, this.sqTailLocal);
      this.sqTailPublished = this.sqTailLocal;
    }
    // argument: struct io_uring_getevents_arg {u64 sigmask; u32 sigmask_sz; u32 pad; u64 ts}
    // followed by the __kernel_timespec it points to; both live in `argument` (≥ 1000 B).
    const seconds = Math.floor(timeoutMs / 1000);
    argument[4] = BigInt(seconds);
    argument[5] = BigInt(Math.round((timeoutMs - seconds * 1000) * 1e6));
    const result = this.calls.enter(this.fd, toSubmit, waitFor,
      abi.IORING_ENTER_GETEVENTS | abi.IORING_ENTER_EXT_ARG, argument, 24);
    return result === -ETIME || result === -EINTR ? 0 : result;
  }

  /** Completions ready to read: CQE index i is (head + i) & cqMask. */
  readyCount(): number {
    return (Atomics.load(this.cqRingWords, this.cqTailIndex) - this.cqHeadLocal) >>> 0;
  }

  /** First unread CQE's ring position (mask it with cqMask). */
  cqHead(): number {
    return this.cqHeadLocal;
  }

  /** Mark `count` CQEs as consumed and hand their slots back to the kernel. */
  advanceCq(count: number): void {
    this.cqHeadLocal = (this.cqHeadLocal + count) >>> 0;
    Atomics.store(this.cqRingWords, this.cqHeadIndex, this.cqHeadLocal);
  }

  /** The kernel kept completions it could not post (FEAT_NODROP): enter GETEVENTS flushes. */
  cqOverflowPending(): boolean {
    return (Atomics.load(this.ringWords, this.sqFlagsIndex) & abi.IORING_SQ_CQ_OVERFLOW) !== 0;
  }

  /** Completions the kernel dropped outright (only without FEAT_NODROP). */
  cqDropped(): number {
    return Atomics.load(this.cqRingWords, this.cqOverflowIndex);
  }

  register(opcode: number, argument: NodeJS.TypedArray | number | null, count: number): number {
    return this.calls.register(this.fd, opcode, argument, count);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unmapAll();
    libc().close(this.fd);
  }

  private unmapAll(): void {
    for (const { address, size } of this.mappings) libc().munmap(address, size);
    this.mappings.length = 0;
  }
}
