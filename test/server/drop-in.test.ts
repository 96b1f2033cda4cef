/**
 * The drop-in promise: a Bun.serve app runs on hioload-ws with only its import changed.
 * examples/chat.ts (plain HTTP routes, an async cookie check before server.upgrade, rooms
 * as pub/sub topics, join/leave notices, subscriberCount) is run twice as it is written
 * for users: once as is, on hioload-ws, and once with its import line replaced by
 * `const { serve } = Bun;`. The same clients drive both; what they see must be the same.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor, withTimeout } from "../support/wait-for.ts";

const APP = join(import.meta.dir, "..", "..", "examples", "chat.ts");
const IMPORT_LINE = 'import { serve } from "../src/index.ts";';
const dir = mkdtempSync(join(tmpdir(), "hioload-drop-in-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The app's source with its import line swapped for Bun.serve. */
function bunVariant(): string {
  const source = readFileSync(APP, "utf8");
  expect(source).toContain(IMPORT_LINE);
  const path = join(dir, "chat-on-bun.ts");
  writeFileSync(path, source.replace(IMPORT_LINE, "const { serve } = Bun;"));
  return path;
}

async function startApp(path: string) {
  const child = Bun.spawn([process.execPath, path, "0"], { stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  const { value } = await withTimeout(reader.read(), 10_000, "the app's ready line");
  reader.releaseLock();
  const port = Number(/:(\d+)/.exec(new TextDecoder().decode(value))?.[1]);
  expect(port).toBeGreaterThan(0);
  return { child, port };
}

interface ChatClient {
  ws: WebSocket;
  heard: string[];
  closed: boolean;
}

async function join_(port: number, room: string, user: string | undefined): Promise<ChatClient | string> {
  const headers: Record<string, string> = user === undefined ? {} : { cookie: `user=${user}` };
  // Bun's WebSocket takes request headers as a second-argument option.
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat/${room}`, { headers } as never);
  const client: ChatClient = { ws, heard: [], closed: false };
  ws.onmessage = (event) => void client.heard.push(String(event.data));
  const opened = await withTimeout(new Promise<boolean>((resolve) => {
    ws.onopen = () => resolve(true);
    ws.onerror = () => resolve(false);
    ws.onclose = () => {
      client.closed = true;
      resolve(false);
    };
  }), 5000, `${user ?? "nobody"} joining ${room}`);
  return opened ? client : "refused";
}

async function get(port: number, path: string): Promise<string> {
  const response = await withTimeout(fetch(`http://127.0.0.1:${port}${path}`), 5000, `GET ${path}`);
  return `${response.status} ${await response.text()}`;
}

/** One scripted session; returns everything every client saw, in order. */
async function session(port: number): Promise<Record<string, unknown>> {
  const seen: Record<string, unknown> = {};
  seen.health = await get(port, "/health");
  seen.missing = await get(port, "/nope");
  seen.noUpgrade = await get(port, "/chat/r1"); // with no cookie: 401 before any upgrade
  seen.anonymous = await join_(port, "r1", undefined);
  const alice = (await join_(port, "r1", "alice")) as ChatClient;
  const bob = (await join_(port, "r1", "bob")) as ChatClient;
  await waitFor(() => alice.heard.length === 1, 5000, "alice hears bob join");
  const carol = (await join_(port, "r2", "carol")) as ChatClient;
  alice.ws.send("hello");
  await waitFor(() => bob.heard.length === 1, 5000, "bob hears alice");
  seen.members = await get(port, "/rooms/r1");
  bob.ws.close();
  await waitFor(() => alice.heard.length === 2, 5000, "alice hears bob leave");
  await waitFor(() => bob.closed, 5000, "bob's socket closed");
  seen.afterLeave = await get(port, "/rooms/r1");
  carol.ws.send("anyone?");
  await Bun.sleep(50); // nobody else is in r2: nothing may arrive
  seen.alice = alice.heard;
  seen.bob = bob.heard;
  seen.carol = carol.heard;
  alice.ws.close();
  carol.ws.close();
  return seen;
}

test("examples/chat.ts behaves the same on hioload-ws and on Bun.serve", async () => {
  const results: Record<string, unknown>[] = [];
  for (const path of [APP, bunVariant()]) {
    const { child, port } = await startApp(path);
    try {
      results.push(await session(port));
    } finally {
      child.kill();
      await child.exited;
    }
  }
  const [ours, bun] = results;
  expect(ours).toEqual({
    health: "200 ok",
    missing: "404 not found",
    noUpgrade: "401 who are you?",
    anonymous: "refused",
    members: '200 {"room":"r1","members":2}',
    afterLeave: '200 {"room":"r1","members":1}',
    alice: ["bob joined", "bob left"],
    bob: ["alice: hello"],
    carol: [],
  });
  expect(ours).toEqual(bun);
}, 30_000);
