/**
 * Threads per core. The main thread reserves the port, starts one Bun worker per CPU (one
 * after another: concurrent dlopen in fresh workers has crashed Bun before), and
 * supervises: it restarts a worker that dies, sums their stats, fans out shutdown. Each
 * worker re-runs the entry module; its `serve()` call finds its assignment here and serves
 * on its own pinned CPU with its own ring, SO_REUSEPORT listener and NUMA-local pools.
 *
 * Pub/sub crosses workers on the worker bus (worker-bus.ts): the supervisor makes the rings
 * (bus-table.ts), hands a starting worker those to every node alive, tells the others of it
 * (and of its death), and is a node itself, so `server.publish` and `subscriberCount` work here.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { ErrorCode, UsageError } from "../api/errors.ts";
import { isStronger, stopArgumentOf, stopModeOf, type StopMode } from "./stop-mode.ts";
import type { TransportStats } from "../api/transport.ts";
import type { CompressionStats, PubSubStats, Server, ServerStats } from "../api/websocket.ts";
import { OPCODE_BINARY, OPCODE_TEXT } from "../protocol/constants.ts";
import { allowedCpus, nodeOfCpu, pinThreadToCpu } from "../reactor/affinity.ts";
import { closeSocket, reservePort } from "../reactor/sockets.ts";
import { BusTable } from "./bus-table.ts";
import { NO_COMPRESSION } from "./deflate-sessions.ts";
import { viewBytes } from "./outgoing-bytes.ts";
import { peerOpcode, type WorkerPubSubCounters } from "./topics.ts";
import { WorkerBus, type BusAssignment, type PeerLinks } from "./worker-bus.ts";

/** What the main thread tells a worker. */
export interface WorkerAssignment {
  index: number;
  cpu: number;
  /** NUMA node of `cpu`, -1 when unknown. */
  node: number;
  port: number;
  /** This worker's node on the worker bus: its rings to every node alive when it started. */
  bus?: BusAssignment;
}

type ToWorker =
  | { type: "stop"; mode: StopMode }
  /** A node started (or was replaced): talk to it through these rings. */
  | { type: "bus-peer"; links: PeerLinks }
  /** A node died: read what it wrote, forget its subscribers. */
  | { type: "bus-peer-gone"; index: number };
type FromWorker =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "crashed"; message: string }
  | { type: "stats"; stats: ServerStats }
  | { type: "stopped" };

const STATS_INTERVAL_MS = 250;
const RESTARTS_PER_MINUTE_MAX = 10;
/**
 * How long past its deadline a stopping worker may take to report before it is terminated:
 * the server core's own backstop (1 s) plus the transport's bounded drain (2 s).
 */
const STOP_MARGIN_MS = 3000;
const STOPPED_BEFORE_READY = "hioload-ws: stop() was called before every worker was ready";

/** This worker's assignment when it runs as a hioload-ws worker, else undefined. */
export function workerAssignment(): WorkerAssignment | undefined {
  if (isMainThread) return undefined;
  const data = workerData as { hioload?: WorkerAssignment } | undefined;
  return data?.hioload;
}

/** Pin the worker's thread to its CPU before any memory is placed. */
export function enterAssignment(assignment: WorkerAssignment): void {
  pinThreadToCpu(assignment.cpu);
}

type Report = (message: FromWorker) => void;

/**
 * Wire a worker's server to the supervisor: ready/failure, periodic stats, stop, and the
 * bus's news of other workers.
 */
export function reportToSupervisor(start: () => Server, bus: WorkerBus | undefined): Server | undefined {
  const port = parentPort!;
  const report: Report = (message) => port.postMessage(message);
  failOnUnhandledRejection(report);
  let server: Server;
  try {
    server = start();
  } catch (error) {
    report({ type: "failed", message: String(error) });
    bus?.close();
    return undefined;
  }
  const timer = setInterval(() => report({ type: "stats", stats: server.stats() }), STATS_INTERVAL_MS);
  let phase: "serving" | "stopping" | "stopped" = "serving";
  port.on("message", (message: ToWorker) => {
    if (message.type === "bus-peer") bus?.addPeer(message.links);
    else if (message.type === "bus-peer-gone") bus?.removePeer(message.index);
    if (message.type !== "stop") return;
    if (phase === "serving") {
      phase = "stopping";
      clearInterval(timer);
      void stopAndReport(server, message.mode, report).then(() => {
        phase = "stopped";
        bus?.close();
      });
    } else if (phase === "stopping") {
      void server.stop(stopArgumentOf(message.mode)); // a stronger stop: the server escalates
    }
  });
  report({ type: "ready" });
  return server;
}

/** Stop the server, then say so: the supervisor terminates this thread (app timers keep it alive). */
async function stopAndReport(server: Server, mode: StopMode, report: Report): Promise<void> {
  try {
    await server.stop(stopArgumentOf(mode));
  } catch (error) {
    console.error("hioload-ws: a worker's stop failed:", error);
  }
  report({ type: "stats", stats: server.stats() });
  report({ type: "stopped" });
}

/**
 * Bun ends a worker on an unhandled rejection silently and with exit code 0, which reads as
 * a clean exit. Do what Node does instead (print it, exit 1), unless the app listens itself.
 */
function failOnUnhandledRejection(report: Report): void {
  process.on("unhandledRejection", (reason) => {
    if (process.listenerCount("unhandledRejection") > 1) return; // the app handles its own
    console.error("hioload-ws: unhandled rejection in a worker:", reason);
    report({ type: "crashed", message: `unhandled rejection: ${oneLine(reason)}` });
    process.exit(1);
  });
}

function oneLine(value: unknown): string {
  return (value instanceof Error ? String(value) : Bun.inspect(value)).replace(/\s*\n\s*/g, " ");
}

export function threadCount(threads: number | "auto" | undefined): number {
  if (threads === undefined || threads === 0) return 0;
  if (threads === "auto") return allowedCpus().length;
  if (!Number.isInteger(threads) || threads < 0 || threads > 1024) {
    throw new UsageError(ErrorCode.BAD_OPTION, "threads must be \"auto\" or an integer 0..1024");
  }
  return threads;
}

/** What the supervisor needs of serve()'s resolved options. */
export interface SupervisorOptions {
  hostname: string;
  /** 0 picks a free port that every worker then shares. */
  port: number;
  /** A stopping worker has this long (plus STOP_MARGIN_MS) to report before it is terminated. */
  closeTimeoutMs: number;
  /** Read back as server.development and server.id. */
  development: boolean;
  id: string;
}

interface Slot {
  readonly assignment: WorkerAssignment;
  worker: Worker | undefined;
  /** Resolves once `worker` has exited (at once while there is none). */
  exited: Promise<void>;
  stats: ServerStats | undefined;
  restarts: number[];
  /** Became ready once: only such a slot is restarted when its worker dies. */
  served: boolean;
  /** Died too often: no longer restarted. */
  givenUp: boolean;
  /** Why the current worker is dying, for the log ("" when nobody said). */
  cause: string;
}

/** Main thread: start `count` workers on the entry module and return the supervising Server. */
export function superviseWorkers(count: number, options: SupervisorOptions): Server {
  return new Supervisor(count, options).server;
}

class Supervisor {
  readonly server: Server;
  private readonly reservation: { fd: number; port: number };
  private readonly slots: Slot[];
  /** Worker starts run one at a time, restarts included (see the module comment). */
  private startQueue: Promise<void> = Promise.resolve();
  /** Set by the first stop(): from then on no worker is started. */
  private stopRequested = false;
  private stopMode: StopMode = "drain";
  private stopping: Promise<void> | undefined;
  private stragglerTimer: ReturnType<typeof setTimeout> | undefined;
  private stragglerDeadline = Infinity;
  /** The rings between the workers and this thread; this thread's own node on them. */
  private readonly busTable: BusTable;
  private readonly bus: WorkerBus;
  /** server.publish calls here that went to at least one worker. */
  private published = 0;

  constructor(count: number, private readonly options: SupervisorOptions) {
    this.reservation = reservePort(options.hostname, options.port);
    this.busTable = new BusTable(count);
    this.bus = new WorkerBus(this.busTable.mainAssignment());
    this.bus.start(() => {}); // workers send it counts, never messages (it has no subscribers)
    const cpus = allowedCpus();
    this.slots = Array.from({ length: count }, (_, index) => {
      const cpu = cpus[index % cpus.length];
      return {
        assignment: { index, cpu, node: nodeOfCpu(cpu), port: this.reservation.port },
        worker: undefined, exited: Promise.resolve(), stats: undefined, restarts: [],
        served: false, givenUp: false, cause: "",
      };
    });
    const ready = this.startAll();
    ready.catch(() => {}); // callers may never await it; failures also stop the workers
    const slots = this.slots;
    this.server = {
      port: this.reservation.port,
      hostname: options.hostname,
      url: new URL(`http://${options.hostname}:${this.reservation.port}/`),
      get pendingWebSockets() {
        return slots.reduce((sum, slot) => sum + (slot.stats?.connections ?? 0), 0);
      },
      get pendingRequests() {
        return slots.reduce((sum, slot) => sum + (slot.stats?.pendingHandshakes ?? 0), 0);
      },
      development: options.development,
      id: options.id,
      ready,
      threads: count,
      stop: (closeActiveConnections) => this.stop(stopModeOf(closeActiveConnections)),
      stats: () => sumStats(this.slots.map((slot) => slot.stats).filter((s) => s !== undefined),
        { published: this.published, ...this.bus.stats() }),
      // Requests reach the workers' servers, never this one.
      upgrade: () => false,
      requestIP: () => null,
      // Sockets live in the workers: publish goes to those with subscribers, counts are theirs.
      publish: (topic, data, compress) => this.publish(topic, data, compress !== false),
      subscriberCount: (topic) => this.bus.remoteCount(topic),
      // Each worker runs the user's module, so its own reload call swaps its handlers.
      reload: () => this.server,
      [Symbol.dispose]: () => void this.stop("close"),
    };
  }

  /** To every worker with subscribers of `topic`: the byte count (1 if empty) when one had some, else 0. */
  private publish(topic: string, data: string | ArrayBufferView | ArrayBuffer, compress: boolean): number {
    if (typeof topic !== "string") throw new UsageError(ErrorCode.BAD_TOPIC, "a topic is a string");
    const text = typeof data === "string";
    const bytes = text ? Buffer.from(data, "utf8") : viewBytes(data);
    const opcode = peerOpcode(text ? OPCODE_TEXT : OPCODE_BINARY, compress);
    const workers = this.bus.forward(topic, opcode, bytes, 0, bytes.length);
    if (workers === 0) return 0;
    this.published++;
    return bytes.length === 0 ? 1 : bytes.length;
  }

  /** Resolves once every worker is ready; rejects when one fails (stopping the rest) or stop() came first. */
  private async startAll(): Promise<void> {
    try {
      for (const slot of this.slots) await this.start(slot);
    } catch (error) {
      if (this.stopRequested) throw new Error(STOPPED_BEFORE_READY);
      void this.stop("abort");
      throw error;
    }
    if (this.stopRequested) throw new Error(STOPPED_BEFORE_READY);
  }

  private start(slot: Slot): Promise<void> {
    const started = this.startQueue.then(() => this.launch(slot));
    this.startQueue = started.catch(() => {});
    return started;
  }

  /** Start the slot's worker: resolves once it is ready, rejects if it fails or exits first. */
  private launch(slot: Slot): Promise<void> {
    if (this.stopRequested) return Promise.reject(new Error(STOPPED_BEFORE_READY));
    const bus = this.joinBus(slot.assignment.index);
    const worker = new Worker(Bun.main, { workerData: { hioload: { ...slot.assignment, bus } } });
    slot.worker = worker;
    slot.cause = "";
    slot.exited = new Promise((resolve) => worker.once("exit", () => resolve()));
    const index = slot.assignment.index;
    return new Promise((resolve, reject) => {
      worker.on("message", (message: FromWorker) => {
        if (message.type === "ready") {
          slot.served = true;
          resolve();
        } else if (message.type === "failed") {
          slot.cause = message.message;
          reject(new Error(`worker ${index}: ${message.message}`));
        } else {
          this.onReport(slot, worker, message);
        }
      });
      worker.on("error", (error) => (slot.cause = oneLine(error))); // an uncaught exception
      worker.on("exit", (code) => {
        reject(new Error(`worker ${index} exited (${code}) before it was ready${because(slot.cause)}`));
        this.onExit(slot, worker, code);
      });
    });
  }

  private onReport(slot: Slot, worker: Worker, message: FromWorker): void {
    if (message.type === "stats") slot.stats = message.stats;
    else if (message.type === "crashed") slot.cause = message.message;
    else if (message.type === "stopped") terminate(worker); // its server is gone; app timers would keep it
  }

  /** Fresh rings between a starting worker and every node alive; the others are told. */
  private joinBus(index: number): BusAssignment {
    const alive = this.slots.filter((slot) => slot.worker !== undefined && slot.assignment.index !== index);
    const assignment = this.busTable.join(index, [...alive.map((slot) => slot.assignment.index), this.busTable.main]);
    for (const slot of alive) {
      const message: ToWorker = { type: "bus-peer", links: this.busTable.links(slot.assignment.index, index) };
      slot.worker!.postMessage(message);
    }
    this.bus.addPeer(this.busTable.links(this.busTable.main, index));
    return assignment;
  }

  /** A worker is gone: the others read what it wrote and forget its subscribers. */
  private leaveBus(index: number): void {
    this.bus.removePeer(index);
    this.busTable.leave(index);
    const message: ToWorker = { type: "bus-peer-gone", index };
    for (const slot of this.slots) slot.worker?.postMessage(message);
  }

  private onExit(slot: Slot, worker: Worker, code: number): void {
    if (slot.worker === worker) {
      slot.worker = undefined;
      this.leaveBus(slot.assignment.index);
    }
    // Stopping, or a first start that failed: startAll reports that one through `ready`.
    if (this.stopRequested || !slot.served) return;
    this.restartOrGiveUp(slot, code);
  }

  private restartOrGiveUp(slot: Slot, code: number): void {
    const { index, cpu } = slot.assignment;
    const death = `hioload-ws: worker ${index} on CPU ${cpu} exited (${code})${because(slot.cause)}`;
    if (!this.takeRestart(slot)) {
      slot.givenUp = true;
      console.error(`${death}; restarted ${RESTARTS_PER_MINUTE_MAX} times within a minute already: not restarting it`);
      if (this.slots.every((each) => each.givenUp)) this.failProcess();
      return;
    }
    console.error(`${death}; restarting it`);
    this.start(slot).catch(() => {}); // a restart that fails ends in onExit again, which decides
  }

  /** Count a restart, unless the slot has used up this minute's share. */
  private takeRestart(slot: Slot): boolean {
    const now = Date.now();
    slot.restarts = slot.restarts.filter((at) => now - at < 60_000);
    if (slot.restarts.length >= RESTARTS_PER_MINUTE_MAX) return false;
    slot.restarts.push(now);
    return true;
  }

  /**
   * No worker is left and none may be restarted: the port is served by nobody. Neither idle
   * on nor exit 0 (both look healthy to a process manager): say so and exit with code 1.
   */
  private failProcess(): void {
    console.error(`hioload-ws: no worker is left serving port ${this.reservation.port}; exiting with code 1`);
    process.exitCode = 1;
    void this.stop("abort").finally(() => process.exit(1));
  }

  private stop(mode: StopMode): Promise<void> {
    if (this.stopping === undefined) {
      this.stopRequested = true;
      this.stopMode = mode;
      this.stopping = this.stopWorkers(mode);
    } else if (isStronger(mode, this.stopMode)) {
      this.stopMode = mode;
      this.tellWorkers({ type: "stop", mode }); // the workers escalate their own stop
      this.terminateStragglersIn(this.stragglerDelay(mode));
    }
    return this.stopping;
  }

  /** Every worker stops and reports (then is terminated) or is terminated at the deadline; then the port is released. */
  private async stopWorkers(mode: StopMode): Promise<void> {
    this.tellWorkers({ type: "stop", mode });
    // A drain waits as long as the clients stay: no deadline until a stronger stop.
    if (mode !== "drain") this.terminateStragglersIn(this.stragglerDelay(mode));
    await Promise.all(this.slots.map((slot) => slot.exited));
    clearTimeout(this.stragglerTimer);
    this.bus.close();
    closeSocket(this.reservation.fd);
  }

  private stragglerDelay(mode: StopMode): number {
    return (mode === "close" ? this.options.closeTimeoutMs : 0) + STOP_MARGIN_MS;
  }

  private tellWorkers(message: ToWorker): void {
    for (const slot of this.slots) slot.worker?.postMessage(message);
  }

  /** Terminate the workers that have not exited `ms` from now (the deadline only ever moves earlier). */
  private terminateStragglersIn(ms: number): void {
    const deadline = performance.now() + ms;
    if (deadline >= this.stragglerDeadline) return;
    this.stragglerDeadline = deadline;
    clearTimeout(this.stragglerTimer);
    this.stragglerTimer = setTimeout(() => this.terminateStragglers(), ms);
  }

  private terminateStragglers(): void {
    for (const slot of this.slots) {
      if (slot.worker === undefined) continue;
      console.error(`hioload-ws: worker ${slot.assignment.index} did not stop in time; terminating it`);
      terminate(slot.worker);
    }
  }
}

function terminate(worker: Worker): void {
  worker.terminate().catch(() => {}); // it is going either way
}

function because(cause: string): string {
  return cause === "" ? "" : `: ${cause}`;
}

/**
 * The workers' latest reports added up (counts summed; backend and memory kind from the
 * first), and the main thread's own publishes (`own`).
 */
export function sumStats(reports: ServerStats[], own?: { published: number } & WorkerPubSubCounters): ServerStats {
  const sum = <R>(items: R[], pick: (item: R) => number) =>
    items.reduce((total, item) => total + pick(item), 0);
  const transports = reports.map((report) => report.transport);
  const transport: TransportStats = {
    ...(transports[0] ?? NO_TRANSPORT),
    connections: sum(transports, (t) => t.connections),
    accepted: sum(transports, (t) => t.accepted),
    connected: sum(transports, (t) => t.connected),
    closed: sum(transports, (t) => t.closed),
    bytesIn: sum(transports, (t) => t.bytesIn),
    bytesOut: sum(transports, (t) => t.bytesOut),
    turns: sum(transports, (t) => t.turns),
    parks: sum(transports, (t) => t.parks),
    recvBufferStalls: sum(transports, (t) => t.recvBufferStalls),
    cqOverflows: sum(transports, (t) => t.cqOverflows),
    loansOut: sum(transports, (t) => t.loansOut),
  };
  const pubsubs = reports.map((report) => report.pubsub);
  const pubsub: PubSubStats = {
    topics: sum(reports, (s) => s.pubsub.topics), // a topic on two workers counts twice
    published: sum(reports, (s) => s.pubsub.published) + (own?.published ?? 0),
    delivered: sum(reports, (s) => s.pubsub.delivered),
    dropped: sum(reports, (s) => s.pubsub.dropped),
    sentToWorkers: sum(pubsubs, (p) => p.sentToWorkers) + (own?.sentToWorkers ?? 0),
    receivedFromWorkers: sum(pubsubs, (p) => p.receivedFromWorkers) + (own?.receivedFromWorkers ?? 0),
    droppedToWorkers: sum(pubsubs, (p) => p.droppedToWorkers) + (own?.droppedToWorkers ?? 0),
    queuedToWorkers: sum(pubsubs, (p) => p.queuedToWorkers) + (own?.queuedToWorkers ?? 0),
  };
  return {
    backend: transport.backend,
    connections: sum(reports, (s) => s.connections),
    pendingHandshakes: sum(reports, (s) => s.pendingHandshakes),
    messagesIn: sum(reports, (s) => s.messagesIn),
    messagesOut: sum(reports, (s) => s.messagesOut),
    messagesLent: sum(reports, (s) => s.messagesLent),
    bytesIn: sum(reports, (s) => s.bytesIn),
    bytesOut: sum(reports, (s) => s.bytesOut),
    dropped: sum(reports, (s) => s.dropped),
    protocolErrors: sum(reports, (s) => s.protocolErrors),
    idleTimeouts: sum(reports, (s) => s.idleTimeouts),
    evictions: sum(reports, (s) => s.evictions),
    idleShrinks: sum(reports, (s) => s.idleShrinks),
    pubsub,
    compression: sumCompression(reports.map((report) => report.compression)),
    transport,
  };
}

/** Every field summed, bytesPerSocket recomputed from the sums. */
function sumCompression(reports: CompressionStats[]): CompressionStats {
  const total = { ...NO_COMPRESSION } as Record<keyof CompressionStats, number>;
  for (const report of reports) {
    for (const key of Object.keys(total) as (keyof CompressionStats)[]) total[key] += report[key];
  }
  total.bytesPerSocket = total.sockets === 0 ? 0 : Math.round(total.socketBytes / total.sockets);
  return total;
}

const NO_POOL = {
  slotSize: 0, capacity: 0, inUse: 0, highWater: 0, regionKind: "plain", node: -1, bytes: 0,
} as const;

/** Before any worker has reported. */
const NO_TRANSPORT: TransportStats = {
  backend: "io_uring", connections: 0, accepted: 0, connected: 0, closed: 0, bytesIn: 0,
  bytesOut: 0, turns: 0, parks: 0, recvBufferStalls: 0, cqOverflows: 0, loansOut: 0, recvBuffers: NO_POOL,
  sendBuffers: NO_POOL, regionKind: "plain", node: -1,
};

