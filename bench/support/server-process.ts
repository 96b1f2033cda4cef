/**
 * One benchmark server in a fresh child process (pinned to CPU 0): started on a free port
 * read back from its ready line, its stdout kept as lines (hioload-echo's `stats {json}`),
 * its RSS sampled from /proc, stopped with SIGTERM and killed when it does not go in time.
 * Every child any bench spawns is registered here and killed when the bench exits, however
 * it exits, so a stuck server never outlives its run.
 */
import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pinned, repositoryRoot } from "./wsload.ts";

export interface ServerSpec {
  name: string;
  /** The command line for a server on `port` (0: any free port). */
  cmd: (port: number) => string[];
}

/**
 * hioload-ws and Bun.serve echoing, with the same backpressure limit and a graceful SIGTERM;
 * `only`: a comma-separated subset of their names.
 */
export function echoServers(backpressureLimit: number, only?: string): ServerSpec[] {
  const limit = ["--backpressure-limit", String(backpressureLimit)];
  const specs: ServerSpec[] = [
    { name: "hioload-ws", cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/hioload-echo.ts"), String(port), ...limit] },
    { name: "Bun.serve", cmd: (port) => [process.execPath, join(repositoryRoot, "bench/servers/bun-serve-echo.ts"), String(port), ...limit, "--graceful"] },
  ];
  return only === undefined ? specs : specs.filter((s) => only.split(",").includes(s.name));
}

const children = new Set<Subprocess>();

/** Spawns a child that is killed when this process exits. */
export function spawnChild(cmd: string[], stdout: "pipe" | "inherit" = "pipe"): Subprocess<"ignore", "pipe", "inherit"> {
  const child = Bun.spawn(cmd, { stdin: "ignore", stdout: stdout === "pipe" ? "pipe" : "inherit", stderr: "inherit" });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child as Subprocess<"ignore", "pipe", "inherit">;
}

function killChildren(): void {
  for (const child of children) child.kill("SIGKILL");
}
process.on("exit", killChildren);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    killChildren();
    process.exit(130);
  });
}

/** Ends the whole bench after `ms` (children killed on the way out): no run can hang it. */
export function deadline(ms: number): void {
  setTimeout(() => {
    console.error(`bench: gave up after ${Math.round(ms / 1000)} s`);
    process.exit(3);
  }, ms).unref();
}

/** Lines a child prints, read as they come, with waiting for a line that matches. */
export class LineReader {
  readonly lines: string[] = [];
  private waiters: { test: RegExp; resolve: (line: string | null) => void }[] = [];
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>, private readonly onLine?: (line: string) => void) {
    void this.read(stream);
  }

  /** The first line (seen or to come) matching `test`; null at end of output or timeout. */
  wait(test: RegExp, timeoutMs: number): Promise<string | null> {
    const seen = this.lines.find((line) => test.test(line));
    if (seen !== undefined || this.ended) return Promise.resolve(seen ?? null);
    return new Promise((resolve) => {
      const waiter = { test, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
    });
  }

  /** The last line matching `test`. */
  last(test: RegExp): string | undefined {
    return this.lines.findLast((line) => test.test(line));
  }

  private async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop()!;
      for (const line of parts) this.push(line);
    }
    if (partial) this.push(partial);
    this.ended = true;
    for (const waiter of this.waiters) waiter.resolve(null);
    this.waiters = [];
  }

  private push(line: string): void {
    this.lines.push(line);
    this.onLine?.(line);
    for (const waiter of this.waiters.filter((w) => w.test.test(line))) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(line);
    }
  }
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM), -1 once the process is gone. */
export function procStatusKb(pid: number, field: string): number {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : -1;
  } catch {
    return -1;
  }
}

export interface RssSample { atMs: number; kb: number }

export interface StopResult {
  /** How long the server took to exit after SIGTERM, ms. */
  exitMs: number;
  /** It did not exit within the timeout and was killed. */
  killed: boolean;
}

export class ServerProcess {
  readonly samples: RssSample[] = [];
  private sampler: Timer | undefined;
  private hwmAtBaseline = Infinity;

  private constructor(
    readonly spec: ServerSpec,
    readonly child: Subprocess<"ignore", "pipe", "inherit">,
    readonly output: LineReader,
    readonly port: number,
  ) {}

  get pid(): number {
    return this.child.pid;
  }

  /** Starts `spec` pinned to CPU 0 and waits for its "listening on :PORT" line. */
  static async start(spec: ServerSpec, timeoutMs = 15_000): Promise<ServerProcess> {
    const child = spawnChild(pinned(0, spec.cmd(0)));
    const output = new LineReader(child.stdout);
    const ready = await output.wait(/listening on :\d+/, timeoutMs);
    if (ready === null) {
      child.kill("SIGKILL");
      throw new Error(`${spec.name} did not start`);
    }
    const server = new ServerProcess(spec, child, output, Number(/:(\d+)/.exec(ready)![1]));
    await Bun.sleep(200); // let it settle (JIT, first GC) before anything is measured
    return server;
  }

  /**
   * Resident memory in KiB: VmRSS plus HugetlbPages, which VmRSS leaves out and which
   * hioload-ws's pools live in when hugepages are reserved. -1 once the process is gone.
   */
  rssKb(): number {
    const rss = procStatusKb(this.pid, "VmRSS");
    return rss < 0 ? rss : rss + Math.max(0, procStatusKb(this.pid, "HugetlbPages"));
  }

  /** Peak resident memory so far (VmHWM, plus the hugetlb pages mapped now), KiB. */
  hwmKb(): number {
    const hwm = procStatusKb(this.pid, "VmHWM");
    return hwm < 0 ? hwm : hwm + Math.max(0, procStatusKb(this.pid, "HugetlbPages"));
  }

  /** Samples VmRSS every `everyMs` into `samples` (time from `origin`, performance.now()). */
  startSampling(everyMs = 100, origin = performance.now()): void {
    const take = () => {
      const kb = this.rssKb();
      if (kb >= 0) this.samples.push({ atMs: performance.now() - origin, kb });
    };
    take();
    this.sampler = setInterval(take, everyMs);
  }

  stopSampling(): void {
    clearInterval(this.sampler);
  }

  /** Memory now (the baseline growth is measured from), remembering the peak so far. */
  baseline(): number {
    this.hwmAtBaseline = this.hwmKb();
    return this.rssKb();
  }

  /**
   * The peak since `baseline()`: the largest sample, or VmHWM when it rose since (it then
   * caught a peak between samples; before, it may hold a start-up peak).
   */
  peakKb(): number {
    const sampled = Math.max(-1, ...this.samples.map((s) => s.kb));
    const hwm = this.hwmKb();
    return hwm > this.hwmAtBaseline ? Math.max(sampled, hwm) : sampled;
  }

  /** The last `stats {json}` line the server printed (hioload-ws only), or null. */
  lastStats(): Record<string, unknown> | null {
    const line = this.output.last(/^stats \{/);
    return line === undefined ? null : JSON.parse(line.slice(6)) as Record<string, unknown>;
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 12_000): Promise<StopResult> {
    const started = performance.now();
    this.stopSampling();
    this.child.kill("SIGTERM");
    const exited = await Promise.race([this.child.exited.then(() => true), Bun.sleep(timeoutMs).then(() => false)]);
    if (!exited) {
      this.child.kill("SIGKILL");
      await this.child.exited;
    }
    await Bun.sleep(50); // the last lines of output
    return { exitMs: Math.round(performance.now() - started), killed: !exited };
  }
}
