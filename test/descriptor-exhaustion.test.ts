/**
 * Out of file descriptors (EMFILE) on the real Linux backends: a server started under a low
 * `ulimit -n` keeps serving the connections it has while more wait in the backlog, and
 * accepts them once descriptors are free again. Runs in a child process so the limit is its
 * own.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ioUringUnavailable } from "./support/platform.ts";
import { waitFor, withTimeout } from "./support/wait-for.ts";

const FIXTURE = join(import.meta.dir, "fixtures", "emfile-echo.ts");
const DESCRIPTOR_LIMIT = 64;
/** Connections beyond what the limit lets the server accept. */
const OVER = 20;

interface Client {
  socket: Socket<undefined>;
  received: number;
  closed: boolean;
}

function connect(port: number): Promise<Client> {
  return withTimeout(new Promise<Client>((resolve, reject) => {
    const client: Client = { socket: undefined as never, received: 0, closed: false };
    Bun.connect({
      hostname: "127.0.0.1", port,
      socket: {
        open(socket) {
          client.socket = socket;
          resolve(client);
        },
        data(_, chunk) {
          client.received += chunk.length;
        },
        close() {
          client.closed = true;
        },
        error(_, error) {
          reject(error);
        },
      },
    }).catch(reject);
  }), 5000, "TCP connect");
}

/** Sends 4 bytes and reports whether they came back within `timeoutMs`. */
async function echoes(client: Client, timeoutMs: number): Promise<boolean> {
  const expected = client.received + 4;
  client.socket.write("ping");
  try {
    await waitFor(() => client.received >= expected || client.closed, timeoutMs, "echo");
  } catch {
    return false;
  }
  return client.received >= expected;
}

const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

const backends = [
  { name: "io_uring", skipReason: ioUringUnavailable() },
  { name: "epoll", skipReason: process.platform === "linux" ? "" : `not Linux (${process.platform})` },
];

for (const { name, skipReason } of backends) {
  if (skipReason) console.log(`[skip] descriptor exhaustion on ${name}: ${skipReason}`);
  (skipReason ? describe.skip : describe)(`out of descriptors (${name})`, () => {
    test("serves what it has, then accepts the waiting connections once descriptors free", async () => {
      const child = Bun.spawn(["sh", "-c", `ulimit -n ${DESCRIPTOR_LIMIT} && exec "$0" "$1" "$2"`,
        process.execPath, FIXTURE, name], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
      const clients: Client[] = [];
      try {
        const reader = child.stdout.getReader();
        const first = await withTimeout(reader.read(), 10_000, "the fixture's port");
        const port = Number(new TextDecoder().decode(first.value).trim());
        expect(port).toBeGreaterThan(0);
        const room = DESCRIPTOR_LIMIT - openDescriptors(child.pid);
        expect(room).toBeGreaterThan(OVER);

        // More connections than descriptors: the kernel completes them all (backlog).
        for (let i = 0; i < room + OVER; i++) clients.push(await connect(port));
        const served = clients.slice(0, room - 2);
        // The first ones are served throughout, while accepts fail with EMFILE behind them.
        for (const client of served) expect(await echoes(client, 3000)).toBe(true);
        const waiting: Client[] = [];
        for (const client of clients.slice(room - 2)) {
          if (!(await echoes(client, 150))) waiting.push(client);
        }
        expect(waiting.length).toBeGreaterThanOrEqual(OVER - 2);
        expect(openDescriptors(child.pid)).toBe(DESCRIPTOR_LIMIT);

        // Free descriptors: the waiting connections are accepted and their bytes echoed.
        for (const client of served.slice(0, OVER + 5)) client.socket.end();
        for (const client of waiting) {
          await waitFor(() => client.received >= 4 || client.closed, 5000, "a waiting connection served");
          expect(client.closed).toBe(false);
        }
        for (const client of served.slice(OVER + 5)) expect(await echoes(client, 3000)).toBe(true);
      } finally {
        for (const client of clients) client.socket?.end();
        child.stdin.end();
        await withTimeout(child.exited, 10_000, "the fixture's exit").catch(() => child.kill(9));
      }
      expect(child.exitCode).toBe(0);
    }, 30_000);
  });
}
