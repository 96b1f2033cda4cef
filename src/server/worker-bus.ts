/**
 * Pub/sub across worker threads: one bus node per thread (every worker, and the supervising
 * main thread, which publishes but has no subscribers). Each ordered pair of nodes has its
 * own SPSC ring (spsc-ring.ts); records are described in bus-records.ts.
 *
 * - A publish goes, once per node, to the nodes whose INTEREST says they have subscribers
 *   for the topic; the receiving node hands it to its own Topics as a local publish would,
 *   and never forwards it again. One ring per pair keeps order per (publisher, topic).
 * - Interest: a node tells every other node its subscriber count of a topic when it changes
 *   (coalesced to one record per topic per microtask) and all of them when a node joins.
 *   A count therefore lags by the time a record takes to be read (well under a millisecond
 *   on an idle machine).
 * - A full ring: records queue here (in order, behind anything already queued) and are
 *   written when the reader frees room (it wakes this node). Past QUEUE_BYTES_MAX bytes
 *   queued for one node, a new message for it is dropped instead: counted in
 *   stats().pubsub.droppedToWorkers and logged (at most every 10 s). Interest is never dropped.
 * - Reading: the node drains its rings in turns of up to TURN_BUDGET records per ring and
 *   yields to the event loop between turns. When all are empty it looks again on the next
 *   event-loop turns for POLL_AFTER_WORK_MS after the last record (as the transport does:
 *   under steady traffic that saves a park and a notify per message), then parks on its
 *   wake word (wake-words.ts): at rest it takes no CPU.
 * - A node that dies: the supervisor tells the others, which read what it wrote whole,
 *   forget its counts and drop what still waited for it; its replacement gets fresh rings.
 */
import { BusPeer, type BusCounters, type DeliverRemote } from "./bus-peer.ts";
import { MessageRecords } from "./bus-records.ts";
import type { TopicPeers, WorkerPubSubCounters } from "./topics.ts";
import { WakeWords } from "./wake-words.ts";

/** The rings between this node and one other. */
export interface PeerLinks {
  index: number;
  /** Its ring to this node. */
  inbound: SharedArrayBuffer;
  /** This node's ring to it. */
  outbound: SharedArrayBuffer;
}

/** What a node is handed when it starts (the other nodes alive then). */
export interface BusAssignment {
  index: number;
  /** Every node's wake word (the main thread's is the last). */
  wakeWords: SharedArrayBuffer;
  peers: PeerLinks[];
}

/** Bytes that may wait here for one node before new messages for it are dropped. */
export const QUEUE_BYTES_MAX = 32 * 1024 * 1024;
/** Records read from one ring before the event loop gets a turn. */
const TURN_BUDGET = 1024;
const DROP_LOG_INTERVAL_MS = 10_000;
const TOPIC_CACHE_MAX = 4096;
/** Keep looking this long after the last record read before parking (50 µs). */
const POLL_AFTER_WORK_MS = 0.05;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class WorkerBus implements TopicPeers {
  readonly index: number;
  private readonly wakeWords: WakeWords;
  private peers: BusPeer[] = [];
  /** Other nodes' subscribers per topic, summed. */
  private readonly totals = new Map<string, number>();
  /** This node's subscribers per topic (what the others were or will be told). */
  private readonly local = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private flushQueued = false;
  private readonly topicBytes = new Map<string, Uint8Array>();
  private readonly records = new MessageRecords();
  readonly counters: BusCounters = { sent: 0, received: 0, dropped: 0 };
  private deliver: DeliverRemote = () => {};
  private running = false;
  private closed = false;
  private lastDropLog = -Infinity;
  private unloggedDrops = 0;
  /** When a turn last read a record (performance.now()). */
  private lastRead = -Infinity;
  /** Turns run so far (a parked node runs none: tests look). */
  turns = 0;

  constructor(assignment: BusAssignment) {
    this.index = assignment.index;
    this.wakeWords = new WakeWords(assignment.wakeWords);
    for (const links of assignment.peers) this.addPeer(links);
  }

  /** Start reading: messages from the others go to `deliver`. */
  start(deliver: DeliverRemote): void {
    this.deliver = deliver;
    if (this.running || this.closed) return;
    this.running = true;
    void this.run();
  }

  close(): void {
    this.closed = true;
    this.wakeWords.interrupt(this.index);
  }

  /** A node joined (or was replaced): talk to it through these rings. */
  addPeer(links: PeerLinks): void {
    this.removePeer(links.index);
    const peer = new BusPeer(links.index, links.outbound, links.inbound, this.counters);
    this.peers.push(peer);
    for (const [topic, count] of this.local) peer.sendInterest(this.encodeTopic(topic), count);
    this.wakeWords.wake(peer.index);
    this.wakeWords.wake(this.index); // it may have written before we knew its ring
  }

  /** A node died: what it wrote whole is delivered, its counts forgotten, what waited for it dropped. */
  removePeer(index: number): void {
    const peer = this.peers.find((each) => each.index === index);
    if (peer === undefined) return;
    this.peers = this.peers.filter((each) => each !== peer);
    try {
      peer.receive(Infinity, this.deliver, this.onInterest, () => {});
    } catch (error) {
      console.error("hioload-ws: reading a dead worker's last messages failed:", error);
    }
    peer.dropPartial();
    for (const [topic, count] of peer.interest) this.addTotal(topic, -count);
    const lost = peer.discardQueue();
    if (lost > 0) this.drop(lost, index, "it exited before reading them");
  }

  // ------------------------------------------------------------ TopicPeers

  /** To every other node with subscribers of `topic`; how many that is. */
  forward(topic: string, opcode: number, payload: Uint8Array, start: number, end: number): number {
    let nodes = 0;
    for (const peer of this.peers) {
      if (!((peer.interest.get(topic) ?? 0) > 0)) continue;
      const records = this.records;
      records.set(this.encodeTopic(topic), opcode, payload, start, end, peer.maxRecord);
      if (records.count === 0) {
        this.drop(1, peer.index, "its topic is longer than a ring's record");
        continue;
      }
      if (peer.queuedBytes > 0 && peer.queuedBytes + records.queuedBytes > QUEUE_BYTES_MAX) {
        this.drop(1, peer.index, `${QUEUE_BYTES_MAX >> 20} MiB already wait for it (it reads too slowly)`);
        continue;
      }
      peer.sendMessage(records);
      this.wakeWords.wake(peer.index);
      nodes++;
    }
    return nodes;
  }

  countChanged(topic: string, count: number): void {
    if (count === 0) this.local.delete(topic);
    else this.local.set(topic, count);
    this.dirty.add(topic);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flushInterest());
  }

  remoteCount(topic: string): number {
    return this.totals.get(topic) ?? 0;
  }

  stats(): WorkerPubSubCounters {
    let queued = 0;
    for (const peer of this.peers) queued += peer.queuedMessages;
    return {
      sentToWorkers: this.counters.sent,
      receivedFromWorkers: this.counters.received,
      droppedToWorkers: this.counters.dropped,
      queuedToWorkers: queued,
    };
  }

  // ------------------------------------------------------------ internals

  private flushInterest(): void {
    this.flushQueued = false;
    for (const topic of this.dirty) {
      const bytes = this.encodeTopic(topic);
      const count = this.local.get(topic) ?? 0;
      for (const peer of this.peers) peer.sendInterest(bytes, count);
    }
    this.dirty.clear();
    for (const peer of this.peers) this.wakeWords.wake(peer.index);
  }

  private readonly onInterest = (peer: BusPeer, topic: string, count: number): void => {
    const before = peer.interest.get(topic) ?? 0;
    if (count === 0) peer.interest.delete(topic);
    else peer.interest.set(topic, count);
    this.addTotal(topic, count - before);
  };

  private addTotal(topic: string, delta: number): void {
    const total = (this.totals.get(topic) ?? 0) + delta;
    if (total <= 0) this.totals.delete(topic);
    else this.totals.set(topic, total);
  }

  private encodeTopic(topic: string): Uint8Array {
    let bytes = this.topicBytes.get(topic);
    if (bytes === undefined) {
      if (this.topicBytes.size >= TOPIC_CACHE_MAX) this.topicBytes.clear();
      bytes = Buffer.from(topic, "utf8");
      this.topicBytes.set(topic, bytes);
    }
    return bytes;
  }

  private drop(count: number, node: number, why: string): void {
    this.counters.dropped += count;
    this.unloggedDrops += count;
    const now = performance.now();
    if (now - this.lastDropLog < DROP_LOG_INTERVAL_MS) return;
    this.lastDropLog = now;
    console.error(`hioload-ws: ${this.nodeName(this.index)} dropped ${this.unloggedDrops} published ` +
      `message(s) for ${this.nodeName(node)}: ${why} (stats().pubsub.droppedToWorkers counts them)`);
    this.unloggedDrops = 0;
  }

  private nodeName(index: number): string {
    return index === this.wakeWords.count - 1 ? "the main thread" : `worker ${index}`;
  }

  private readonly wakePeer = (peer: BusPeer): void => this.wakeWords.wake(peer.index);

  /** Drain, yield, park: never a spin while the rings stay empty. */
  private async run(): Promise<void> {
    while (!this.closed) {
      let busy: boolean;
      try {
        busy = this.turn();
      } catch (error) {
        console.error("hioload-ws: a message between workers failed:", error);
        busy = true;
      }
      if (this.closed) break;
      if (busy || performance.now() - this.lastRead < POLL_AFTER_WORK_MS) await nextTurn();
      else await this.wakeWords.sleep(this.index, this.idle);
    }
    this.running = false;
  }

  /** One turn over every ring; true when one had more than its budget. */
  private turn(): boolean {
    this.turns++;
    let busy = false;
    for (const peer of this.peers) {
      const used = peer.receive(TURN_BUDGET, this.deliver, this.onInterest, this.wakePeer);
      if (used === 0) continue;
      this.lastRead = performance.now();
      if (used >= TURN_BUDGET) busy = true;
    }
    for (const peer of this.peers) {
      if (!peer.hasQueue) continue;
      peer.flush();
      this.wakeWords.wake(peer.index);
    }
    return busy;
  }

  /** Nothing to read and nothing queued that fits: checked after saying we sleep. */
  private readonly idle = (): boolean => {
    if (this.closed) return false;
    for (const peer of this.peers) {
      if (!peer.inbound.isEmpty() || peer.canFlush()) return false;
    }
    return true;
  };
}
