/**
 * Hostile clients against hioload-ws and Bun.serve, side by side (issue 18, "Hostile
 * clients"): each scenario runs against a fresh server process of each, and the table says
 * how the server ended it (status line or close code, FIN or reset), how long that took
 * and how much the server's resident memory grew (peak, and --after s after the end: the
 * server gives idle message buffers back after one to two quiet seconds).
 *
 *   bun bench/hostile.ts [--only "silent,slowloris,..."] [--wait 20] [--after 3]
 *
 * Scenarios: silent (connect, send nothing), slowloris (a request head one byte every
 * 500 ms), header bomb (request headers sent as fast as the server takes them, up to 16 MiB),
 * absurd length (after the upgrade, a frame header declaring 2^63 − 1 bytes), fragment flood
 * (an unfinished binary message in 1 KiB continuation frames, up to 64 MiB: past both
 * servers' 16 MiB maxPayloadLength), ping flood (200,000 pings of 125 B, never reading).
 * Every scenario gives up after --wait s. The servers are bench/servers/hioload-echo.ts and
 * bench/servers/bun-serve-echo.ts (16 MiB maxPayloadLength, 16 MiB backpressure limit).
 */
import type { Socket } from "bun";
import { parseArgs } from "node:util";
import { writeControlFrame, writeFrame } from "../src/protocol/frame-writer.ts";
import { describeMachine, machine } from "./support/report.ts";
import { deadline, echoServers, ServerProcess } from "./support/server-process.ts";
import { frameBlock, RawClient } from "./support/ws-client.ts";

const { values } = parseArgs({ options: { only: { type: "string" }, wait: { type: "string", default: "20" }, after: { type: "string", default: "3" } } });
const waitMs = Number(values.wait) * 1000;
const MASK = 0x1d2c3b4a;
deadline(30 * 60 * 1000);

/** A raw TCP client that keeps everything it receives and how the connection ended. */
class Peer {
  received = new Uint8Array(0);
  ended: "open" | "fin" | "reset" = "open";
  endedAt = 0;
  private socket!: Socket<undefined>;
  private pending: Uint8Array[] = [];
  private drained: (() => void) | null = null;

  static async connect(port: number): Promise<Peer> {
    const peer = new Peer();
    peer.socket = await Bun.connect({
      hostname: "127.0.0.1", port,
      socket: {
        data: (_s, chunk) => {
          const joined = new Uint8Array(peer.received.length + chunk.length);
          joined.set(peer.received);
          joined.set(chunk, peer.received.length);
          peer.received = joined;
        },
        drain: () => peer.flush(),
        end: () => peer.end("fin"),
        close: (_s, error) => peer.end(error ? "reset" : "fin"),
        error: () => peer.end("reset"),
      },
    });
    return peer;
  }

  private end(how: "fin" | "reset"): void {
    if (this.ended !== "open") return;
    this.ended = how;
    this.endedAt = performance.now();
    this.drained?.();
  }

  /** Writes `bytes`; resolves once the kernel took them all (or the connection ended). */
  write(bytes: Uint8Array): Promise<void> {
    this.pending.push(bytes);
    this.flush();
    if (this.pending.length === 0 || this.ended !== "open") return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }

  private flush(): void {
    while (this.pending.length > 0 && this.ended === "open") {
      const head = this.pending[0];
      const written = Math.max(0, this.socket.write(head));
      if (written < head.length) {
        this.pending[0] = head.subarray(written);
        return;
      }
      this.pending.shift();
    }
    const resolve = this.drained;
    this.drained = null;
    resolve?.();
  }

  close(): void {
    this.socket.terminate();
  }

  text(): string {
    return new TextDecoder().decode(this.received.subarray(0, 200));
  }
}

async function until(test: () => boolean, ms = waitMs): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (test()) return true;
    await Bun.sleep(5);
  }
  return test();
}

function maskedFrame(opcode: number, fin: boolean, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(payload.length + 14);
  return frame.subarray(0, writeFrame(frame, 0, opcode, fin, false, payload, 0, payload.length, MASK));
}

interface Outcome { ending: string; ms: number }
type Scenario = (port: number) => Promise<Outcome>;

const ending = (peer: Peer, extra: string) =>
  peer.ended === "open" ? `still open after ${values.wait} s${extra}` : `${extra}${extra ? ", " : ""}${peer.ended}`;
const statusOf = (peer: Peer) => peer.text().split("\r\n")[0] || "no answer";

/** How an upgraded client's connection ended, once `until` saw a close frame or an end. */
function wsOutcome(client: RawClient, started: number): Outcome {
  const ms = performance.now() - started;
  const ended = client.ending;
  client.terminate();
  if (client.closeCode < 0 && ended === "open") return { ending: `still open after ${values.wait} s`, ms };
  return { ending: `close ${client.closeCode}${ended === "open" ? "" : `, ${ended}`}`, ms };
}

const scenarios: Record<string, Scenario> = {
  async silent(port) {
    const peer = await Peer.connect(port);
    const started = performance.now();
    await until(() => peer.ended !== "open");
    peer.close();
    return { ending: ending(peer, statusOf(peer)), ms: (peer.endedAt || performance.now()) - started };
  },
  async slowloris(port) {
    const peer = await Peer.connect(port);
    const started = performance.now();
    const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(200));
    for (let i = 0; i < head.length && peer.ended === "open" && performance.now() - started < waitMs; i++) {
      await peer.write(head.subarray(i, i + 1));
      await Bun.sleep(500);
    }
    peer.close();
    return { ending: ending(peer, statusOf(peer)), ms: (peer.endedAt || performance.now()) - started };
  },
  async "header bomb"(port) {
    const peer = await Peer.connect(port);
    const started = performance.now();
    await peer.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
    const line = new TextEncoder().encode(`X-Bomb: ${"b".repeat(65_000)}\r\n`);
    for (let sent = 0; sent < 16 * 1024 * 1024 && peer.ended === "open" && peer.received.length === 0 &&
      performance.now() - started < waitMs; sent += line.length) {
      await Promise.race([peer.write(line), Bun.sleep(2000)]);
    }
    await until(() => peer.ended !== "open" || peer.received.length > 0, 2000);
    peer.close();
    return { ending: ending(peer, statusOf(peer)), ms: (peer.endedAt || performance.now()) - started };
  },
  async "absurd length"(port) {
    const client = await RawClient.open(port);
    const started = performance.now();
    client.write(new Uint8Array([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]));
    await until(() => client.ending !== "open" || client.closeCode >= 0);
    return wsOutcome(client, started);
  },
  async "fragment flood"(port) {
    const client = await RawClient.open(port);
    const started = performance.now();
    const kib = new Uint8Array(1024).fill(7);
    client.write(maskedFrame(0x2, false, kib));
    const block = frameBlock(maskedFrame(0x0, false, kib), 256);
    const flood = client.pump(block, 64 * 1024 * 1024);
    await until(() => client.ending !== "open" || client.closeCode >= 0);
    client.stopPump();
    await flood;
    return wsOutcome(client, started);
  },
  async "ping flood"(port) {
    const client = await RawClient.open(port);
    client.pause();
    const started = performance.now();
    const ping = new Uint8Array(125 + 14);
    const one = ping.subarray(0, writeControlFrame(ping, 0, 0x9, new Uint8Array(125), 0, 125, MASK));
    const block = frameBlock(one, 1000);
    await Promise.race([client.pump(block, 200 * block.length), Bun.sleep(waitMs)]);
    const ms = performance.now() - started;
    client.stopPump();
    client.terminate();
    return { ending: client.ending === "open" ? "open (pongs unread)" : client.ending, ms };
  },
};

const names = values.only?.split(",") ?? Object.keys(scenarios);
const servers = echoServers(16 * 1024 * 1024);
console.log(`hostile clients; ${describeMachine(machine())}`);
const rows: string[] = [];
for (const name of names) {
  const scenario = scenarios[name];
  if (scenario === undefined) throw new Error(`no scenario ${name}`);
  const cells: string[] = [];
  for (const spec of servers) {
    const server = await ServerProcess.start(spec);
    const before = server.rssKb();
    const outcome = await scenario(server.port);
    const peak = server.hwmKb() - before;
    await Bun.sleep(Number(values.after) * 1000);
    const after = server.rssKb() - before;
    cells.push(`${outcome.ending}; ${(outcome.ms / 1000).toFixed(2)} s; +${(peak / 1024).toFixed(1)} MiB peak, ` +
      `+${(after / 1024).toFixed(1)} MiB ${values.after} s later`);
    await server.stop();
  }
  rows.push(`| ${name} | ${cells.join(" | ")} |`);
  console.error(`done: ${name}`);
}
console.log(`| scenario | ${servers.map((s) => s.name).join(" | ")} |\n|---|${servers.map(() => "---").join("|")}|`);
console.log(rows.join("\n"));
