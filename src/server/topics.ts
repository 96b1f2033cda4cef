/**
 * Pub/sub inside one server (Bun.serve's `subscribe`/`publish`): topics by name, each with
 * its subscribers in a dense array (a publish walks it), and each socket's topics in a Map
 * kept beside the socket (the socket object stays small).
 *
 * A publish is framed once: the header is written once, the payload encoded once, and each
 * subscriber queues that frame under its own backpressure limit (the socket's send rules:
 * drop or close at the limit, `dropped` told). From LOAN_FROM_BYTES up the payload is copied
 * once into native memory and lent to every subscriber's queue (no copy per subscriber);
 * below, each subscriber's queue copies the few bytes (cheaper than a loan) — unless the
 * topic is so large that a send chunk per subscriber would take a good part of the send
 * memory (io_uring holds each until its completion): from LEND_TO_MEMBERS subscribers, any
 * frame that does not fit a small slot is lent too.
 *
 * Delivery is synchronous, so order holds per topic, and between `send` and `publish` on
 * one socket (one queue per connection). A subscribe or unsubscribe during a publish (from a
 * `dropped` handler, say) changes the topic for the next publish, never the running one.
 *
 * With threads, `peers` (the worker bus) is told every topic's subscriber count as it
 * changes, gets every publish to pass on to the other workers that have subscribers, and
 * hands their publishes back through deliver() (local subscribers only, never passed on).
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { PubSubStats } from "../api/websocket.ts";
import { writeFrameHeader } from "../protocol/frame-writer.ts";
import { FRAME_HEADER_BYTES_MAX } from "../protocol/constants.ts";
import { SMALL_SLOT_SIZE } from "../reactor/send-queues.ts";
import { LENDABLE_BYTES, type MessageBufferPool } from "./message-buffers.ts";
import type { DeflateSessions } from "./deflate-sessions.ts";

/** Topics are strings (as in Bun); anything else is a mistake worth a clear error. */
export function checkTopic(topic: string): string {
  if (typeof topic !== "string") {
    throw new UsageError(ErrorCode.BAD_TOPIC, "a topic is a string");
  }
  return topic;
}

/**
 * Set on the opcode a publish crosses to other workers with when its `compress` was false
 * (the bus carries the opcode byte as it is): those workers send it uncompressed too.
 */
const PUBLISH_UNCOMPRESSED = 0x80;

/** The opcode byte a publish crosses to other workers with: its `compress` flag rides along. */
export function peerOpcode(opcode: number, compress: boolean): number {
  return compress ? opcode : opcode | PUBLISH_UNCOMPRESSED;
}

/** One published message, framed once, as every subscriber queues it. */
export interface PublishedFrame {
  /** The frame header, `header[0, headerSize)`. */
  readonly header: Uint8Array;
  readonly headerSize: number;
  /** The payload, `payload[start, end)`: native memory to lend when `lender` is set. */
  payload: Uint8Array;
  start: number;
  end: number;
  lender: MessageBufferPool | null;
  /** Compressed sockets get it compressed (publish's `compress`, threshold met, deflate on). */
  readonly compressible: boolean;
  /** Compressed forms by window bits, made once for all sockets sharing that stream. */
  variants: (PublishedFrame | undefined)[] | null;
  /** For a compressed form: the frame it was made from (what `dropped` is told). */
  readonly source: PublishedFrame | null;
}

/** What a topic needs of a socket. */
export interface Subscriber {
  /** Queue a published frame; bytes queued (> 0), -1 backpressure, 0 dropped. */
  deliver(frame: PublishedFrame, topic: string): number;
}

/**
 * A payload this long or longer is lent to subscribers' queues, not copied into each
 * (measured at 1,000 subscribers × 4 KiB: 2,789 ms CPU per million deliveries lent against
 * 3,909 copied).
 */
export const LOAN_FROM_BYTES = 4096;
/**
 * Topics this large lend every payload that needs more than a small slot: 1,024 chunks of
 * 16 KiB are a quarter of the default send pool (10,000 subscribers × 4 KiB copied needed
 * 160 MiB of a 64 MiB pool, and evicted subscribers).
 */
export const LEND_TO_MEMBERS = 1024;

class Topic<S> {
  readonly members: S[] = [];
  /** Index of each member in `members`. */
  readonly positions = new Map<S, number>();
  constructor(readonly name: string) {}
}

/** The other workers' side of pub/sub (worker-bus.ts), with threads. */
export interface TopicPeers {
  /** This worker's subscriber count of `topic` is now `count`. */
  countChanged(topic: string, count: number): void;
  /** Pass a local publish on to the workers with subscribers; how many workers it went to. */
  forward(topic: string, opcode: number, payload: Uint8Array, start: number, end: number): number;
  /** The other workers' subscribers of `topic` (as last told). */
  remoteCount(topic: string): number;
  stats(): WorkerPubSubCounters;
}

/** stats().pubsub's counters for messages between workers (0 without threads). */
export interface WorkerPubSubCounters {
  /** Messages written to other workers' rings (one per worker, not per subscriber). */
  sentToWorkers: number;
  /** Messages read from other workers' rings and delivered here. */
  receivedFromWorkers: number;
  /** Messages for another worker given up on: too much already waited for it, or it died. */
  droppedToWorkers: number;
  /** Messages waiting now for room in another worker's ring. */
  queuedToWorkers: number;
}

const NO_PEERS: WorkerPubSubCounters = {
  sentToWorkers: 0, receivedFromWorkers: 0, droppedToWorkers: 0, queuedToWorkers: 0,
};

export interface PubSubCounters {
  /** publish() calls that reached at least one subscriber (here or, with threads, on another worker). */
  published: number;
  /** Frames queued to subscribers. */
  delivered: number;
  /** Frames a subscriber's backpressure limit dropped (or closed it for). */
  dropped: number;
}

export class Topics<S extends Subscriber> {
  private readonly topics = new Map<string, Topic<S>>();
  private readonly bySocket = new Map<S, Set<Topic<S>>>();
  readonly counters: PubSubCounters = { published: 0, delivered: 0, dropped: 0 };
  /** Where frame headers are written (its own, not the sockets' scratch: handlers may send). */
  private readonly header = new Uint8Array(16);

  /** The worker bus, with threads. */
  private peers: TopicPeers | undefined;

  /** permessage-deflate streams, for publishes to compressed sockets (null: off). */
  private deflate: DeflateSessions | null = null;

  constructor(private readonly buffers: MessageBufferPool) {}

  useCompression(deflate: DeflateSessions | null): void {
    this.deflate = deflate;
  }

  /** Join the other workers: from now on they hear of every count change and publish. */
  attachPeers(peers: TopicPeers): void {
    this.peers = peers;
    for (const topic of this.topics.values()) peers.countChanged(topic.name, topic.members.length);
  }

  subscribe(socket: S, name: string): void {
    let topic = this.topics.get(name);
    if (topic === undefined) {
      topic = new Topic<S>(name);
      this.topics.set(name, topic);
    }
    if (topic.positions.has(socket)) return;
    topic.positions.set(socket, topic.members.length);
    topic.members.push(socket);
    this.peers?.countChanged(name, topic.members.length);
    let mine = this.bySocket.get(socket);
    if (mine === undefined) {
      mine = new Set();
      this.bySocket.set(socket, mine);
    }
    mine.add(topic);
  }

  unsubscribe(socket: S, name: string): void {
    const topic = this.topics.get(name);
    if (topic === undefined || !topic.positions.has(socket)) return;
    this.leave(topic, socket);
    const mine = this.bySocket.get(socket)!;
    mine.delete(topic);
    if (mine.size === 0) this.bySocket.delete(socket);
  }

  isSubscribed(socket: S, name: string): boolean {
    return this.topics.get(name)?.positions.has(socket) ?? false;
  }

  subscriptionsOf(socket: S): string[] {
    const mine = this.bySocket.get(socket);
    return mine === undefined ? [] : [...mine].map((topic) => topic.name);
  }

  /** The socket closed: out of every topic. */
  dropSocket(socket: S): void {
    const mine = this.bySocket.get(socket);
    if (mine === undefined) return;
    this.bySocket.delete(socket);
    for (const topic of mine) this.leave(topic, socket);
  }

  /** This server's subscribers of `name` (this worker's, with threads). */
  subscriberCount(name: string): number {
    return this.topics.get(name)?.members.length ?? 0;
  }

  /** Subscribers of `name` here and, with threads, on the other workers (as last told). */
  totalSubscriberCount(name: string): number {
    return this.subscriberCount(name) + (this.peers?.remoteCount(name) ?? 0);
  }

  stats(): PubSubStats {
    return { topics: this.topics.size, ...this.counters, ...(this.peers?.stats() ?? NO_PEERS) };
  }

  /**
   * Frame `payload[start, end)` once and queue it to every subscriber of `name` but
   * `except`, and pass it on to the other workers that have subscribers. Returns the
   * payload's length when at least one subscriber queued it or it went to another worker
   * (1 for an empty payload), -1 when a subscriber here is backed up, 0 when none took it
   * (no subscribers, or every one dropped it).
   */
  publish(name: string, opcode: number, payload: Uint8Array, start: number, end: number,
    except: S | undefined, compress = true): number {
    const local = this.deliver(name, opcode, payload, start, end, except, compress);
    const workers = this.peers === undefined ? 0
      : this.peers.forward(name, peerOpcode(opcode, compress), payload, start, end);
    if (local === 0 && workers === 0) return 0;
    this.counters.published++;
    if (local !== 0) return local;
    return end === start ? 1 : end - start;
  }

  /**
   * Queue `payload[start, end)` to this server's subscribers of `name` but `except` (a
   * message from another worker comes here: it is never passed on). publish()'s results,
   * without counting a publish.
   */
  deliver(name: string, opcode: number, payload: Uint8Array, start: number, end: number,
    except: S | undefined, compress = true): number {
    const topic = this.topics.get(name);
    if (topic === undefined) return 0;
    // Those subscribed now: a (un)subscribe during the walk (from a handler) changes the
    // topic, not this copy of it.
    const members = topic.members.slice();
    const length = end - start;
    const headerSize = writeFrameHeader(this.header, 0, opcode, true, false, length);
    const compressible = compress && this.deflate !== null && length >= this.deflate.threshold;
    const frame: PublishedFrame = {
      header: this.header, headerSize, payload, start, end, lender: null, compressible, variants: null, source: null,
    };
    let lent: Uint8Array | null = null;
    const lend = length >= LOAN_FROM_BYTES
      || (length + FRAME_HEADER_BYTES_MAX > SMALL_SLOT_SIZE && members.length >= LEND_TO_MEMBERS);
    if (lend && members.length > 1) {
      // Native (lendable) buffers start at LENDABLE_BYTES: a smaller one would be JS heap.
      lent = this.buffers.acquire(Math.max(length, LENDABLE_BYTES));
      if (lent !== null) {
        lent.set(payload.subarray(start, end), 0);
        frame.payload = lent;
        frame.start = 0;
        frame.end = length;
        frame.lender = this.buffers;
      }
    }
    let queued = 0;
    let backedUp = false;
    try {
      for (const member of members) {
        if (member === except) continue;
        const result = member.deliver(frame, name);
        if (result === 0) {
          this.counters.dropped++;
          continue;
        }
        this.counters.delivered++;
        queued++;
        if (result < 0) backedUp = true;
      }
    } finally {
      if (lent !== null) this.buffers.release(lent); // back once every loan returned
      if (frame.variants !== null) this.releaseVariants(frame.variants);
    }
    if (queued === 0) return 0;
    if (backedUp) return -1;
    return length === 0 ? 1 : length;
  }

  /** Another worker's publish (its peerOpcode): to this worker's subscribers only. */
  deliverFromPeer(name: string, wireOpcode: number, payload: Uint8Array, start: number, end: number): number {
    return this.deliver(name, wireOpcode & ~PUBLISH_UNCOMPRESSED, payload, start, end, undefined,
      (wireOpcode & PUBLISH_UNCOMPRESSED) === 0);
  }

  /**
   * `frame` compressed for the sockets sharing the server's stream of `windowBits`: made on
   * the first such subscriber, then queued to every other one (compressed once per publish,
   * not per subscriber). Its bytes are copied out of the stream's output (the next compress
   * reuses that), into native memory to lend when the frame would be lent.
   */
  compressedFrame(frame: PublishedFrame, windowBits: number): PublishedFrame {
    const variants = (frame.variants ??= []);
    const made = variants[windowBits];
    if (made !== undefined) return made;
    const deflate = this.deflate!;
    const length = deflate.compressShared(windowBits, frame.payload, frame.start, frame.end);
    const header = new Uint8Array(FRAME_HEADER_BYTES_MAX);
    const headerSize = writeFrameHeader(header, 0, frame.header[0] & 0x0f, true, true, length);
    const lendable = frame.lender !== null ? this.buffers.acquire(Math.max(length, LENDABLE_BYTES)) : null;
    const payload = lendable ?? new Uint8Array(length);
    payload.set(deflate.output.subarray(0, length), 0);
    const variant: PublishedFrame = {
      header, headerSize, payload, start: 0, end: length, lender: lendable === null ? null : this.buffers,
      compressible: false, variants: null, source: frame,
    };
    variants[windowBits] = variant;
    return variant;
  }

  private releaseVariants(variants: (PublishedFrame | undefined)[]): void {
    for (const variant of variants) {
      if (variant?.lender != null) variant.lender.release(variant.payload);
    }
  }

  private leave(topic: Topic<S>, socket: S): void {
    const index = topic.positions.get(socket)!;
    const last = topic.members.pop()!;
    if (last !== socket) {
      topic.members[index] = last;
      topic.positions.set(last, index);
    }
    topic.positions.delete(socket);
    if (topic.members.length === 0) this.topics.delete(topic.name);
    this.peers?.countChanged(topic.name, topic.members.length);
  }
}
