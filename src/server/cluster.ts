/**
 * Threads per core. The main thread reserves the port, starts one Bun worker per CPU (one
 * after another: concurrent dlopen in fresh workers has crashed Bun before), and
 * supervises: it restarts a worker that dies, sums their stats, fans out shutdown. Each
 * worker re-runs the entry module; its `serve()` call finds its assignment here and serves
 * on its own pinned CPU with its own ring, SO_REUSEPORT listener and NUMA-local pools.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { UsageError } from "../api/errors.ts";
import type { TransportStats } from "../api/transport.ts";
import type { Server, ServerStats } from "../api/websocket.ts";
import { allowedCpus, nodeOfCpu, pinThreadToCpu } from "../reactor/affinity.ts";
import { closeSocket, reservePort } from "../reactor/sockets.ts";

/** What the main thread tells a worker. */
export interface WorkerAssignment {
  index: number;
  cpu: number;
  /** NUMA node of `cpu`, -1 when unknown. */
  node: number;
  port: number;
}

type ToWorker = { type: "stop"; graceful: boolean };
type FromWorker =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "stats"; stats: ServerStats };

const STATS_INTERVAL_MS = 250;
const RESTARTS_PER_MINUTE_MAX = 10;

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

/** Wire a worker's server to the supervisor: ready/failure, periodic stats, stop. */
export function reportToSupervisor(start: () => Server): Server | undefined {
  const port = parentPort!;
  let server: Server;
  try {
    server = start();
  } catch (error) {
    port.postMessage({ type: "failed", message: String(error) } satisfies FromWorker);
    return undefined;
  }
  const timer = setInterval(() => {
    port.postMessage({ type: "stats", stats: server.stats() } satisfies FromWorker);
  }, STATS_INTERVAL_MS);
  port.on("message", async (message: ToWorker) => {
    if (message.type !== "stop") return;
    clearInterval(timer);
    await server.stop(message.graceful);
    port.postMessage({ type: "stats", stats: server.stats() } satisfies FromWorker);
    port.close(); // nothing keeps the worker alive now: it exits
  });
  port.postMessage({ type: "ready" } satisfies FromWorker);
  return server;
}

export function threadCount(threads: number | "auto" | undefined): number {
  if (threads === undefined || threads === 0) return 0;
  if (threads === "auto") return allowedCpus().length;
  if (!Number.isInteger(threads) || threads < 0 || threads > 1024) {
    throw new UsageError("WS_ERR_BAD_OPTION", "threads must be \"auto\" or an integer 0..1024");
  }
  return threads;
}

interface Slot {
  assignment: WorkerAssignment;
  worker: Worker | undefined;
  stats: ServerStats | undefined;
  restarts: number[];
  /** Became ready once: only such a worker is restarted when it dies. */
  served: boolean;
}

/** Main thread: start `count` workers on the entry module and return the supervising Server. */
export function superviseWorkers(count: number, hostname: string, requestedPort: number): Server {
  const reservation = reservePort(hostname, requestedPort);
  const cpus = allowedCpus();
  const slots: Slot[] = Array.from({ length: count }, (_, index) => {
    const cpu = cpus[index % cpus.length];
    return {
      assignment: { index, cpu, node: nodeOfCpu(cpu), port: reservation.port },
      worker: undefined, stats: undefined, restarts: [], served: false,
    };
  });
  let stopping: Promise<void> | undefined;
  let readyResolve!: () => void;
  let readyReject!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  ready.catch(() => {}); // callers may never await it; failures also stop the workers

  const start = (slot: Slot): Promise<void> => new Promise((resolve, reject) => {
    const worker = new Worker(Bun.main, { workerData: { hioload: slot.assignment } });
    slot.worker = worker;
    worker.on("message", (message: FromWorker) => {
      if (message.type === "ready") {
        slot.served = true;
        resolve();
      }
      else if (message.type === "failed") reject(new Error(`worker ${slot.assignment.index}: ${message.message}`));
      else if (message.type === "stats") slot.stats = message.stats;
    });
    worker.on("error", (error) => reject(error));
    worker.on("exit", (code) => {
      slot.worker = undefined;
      reject(new Error(`worker ${slot.assignment.index} exited (${code}) before it was ready`));
      if (stopping === undefined && slot.served) restart(slot, code);
    });
  });

  const restart = (slot: Slot, code: number): void => {
    const now = Date.now();
    slot.restarts = slot.restarts.filter((at) => now - at < 60_000);
    if (slot.restarts.length >= RESTARTS_PER_MINUTE_MAX) {
      console.error(`hioload-ws: worker ${slot.assignment.index} keeps dying; not restarting it`);
      return;
    }
    slot.restarts.push(now);
    console.error(`hioload-ws: worker ${slot.assignment.index} on CPU ${slot.assignment.cpu} ` +
      `exited (${code}); restarting it`);
    start(slot).catch((error) => console.error("hioload-ws: restart failed:", error));
  };

  (async () => {
    for (const slot of slots) await start(slot); // one at a time (see module comment)
    readyResolve();
  })().catch((error) => {
    readyReject(error);
    void stop(false);
  });

  const stop = (graceful = true): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(slots.map((slot) => new Promise<void>((resolve) => {
        const worker = slot.worker;
        if (worker === undefined) return resolve();
        worker.once("exit", () => resolve());
        worker.postMessage({ type: "stop", graceful } satisfies ToWorker);
      })));
      closeSocket(reservation.fd);
    })();
    return stopping;
  };

  return {
    port: reservation.port,
    hostname,
    ready,
    threads: count,
    stop,
    stats: () => sumStats(slots.map((slot) => slot.stats).filter((s) => s !== undefined)),
  };
}

/** The workers' latest reports added up (counts summed; backend and memory kind from the first). */
export function sumStats(reports: ServerStats[]): ServerStats {
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
    transport,
  };
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
