/**
 * Real peers beyond Bun and `ws`: Python's `websockets` library and headless Chromium.
 * Each is skipped by name, with the reason printed, where it is not installed.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "../../src/api/websocket.ts";
import { serve } from "../../src/server/serve.ts";
import { describeEachBackend, type RealBackendName } from "../support/backends.ts";
import { waitFor, withTimeout } from "../support/wait-for.ts";

const PYTHON = "/usr/bin/python3";
const CHROMIUM = "/usr/bin/chromium";

function pythonWebsocketsMissing(): string {
  if (!existsSync(PYTHON)) return `${PYTHON} not installed`;
  const probe = Bun.spawnSync([PYTHON, "-c", "import websockets"]);
  return probe.exitCode === 0 ? "" : "python3-websockets not installed (apt-get install python3-websockets)";
}

const pythonReason = pythonWebsocketsMissing();
const chromiumReason = existsSync(CHROMIUM) ? "" : "chromium not installed";
let backend: RealBackendName = "io_uring";
if (pythonReason) console.log(`[skip] Python websockets client: ${pythonReason}`);
if (chromiumReason) console.log(`[skip] headless Chromium: ${chromiumReason}`);

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await withTimeout(server.stop("abort"), 5000, "stop");
});

describeEachBackend("real peers", (name) => {
  beforeAll(() => {
    backend = name;
  });

  test.skipIf(pythonReason !== "")("Python websockets: echo of 0 B to 1 MiB, ping, close 1000", async () => {
    const closes: number[] = [];
    const server = serve({ port: 0, hostname: "127.0.0.1", backend,
      websocket: { message: (ws, m) => void ws.send(m), close: (_, code) => void closes.push(code) } });
    servers.push(server);
    const child = Bun.spawn([PYTHON, join(import.meta.dir, "../fixtures/python-echo-client.py"),
      `ws://127.0.0.1:${server.port}/`], { stdout: "pipe", stderr: "pipe" });
    const exitCode = await withTimeout(child.exited, 25_000, "python client");
    const output = await new Response(child.stdout).text();
    const errors = await new Response(child.stderr).text();
    expect(errors).toBe("");
    expect(exitCode).toBe(0);
    expect(output.trim()).toBe("OK 1000");
    await waitFor(() => closes.length === 1, 2000, "server close handler");
    expect(closes[0]).toBe(1000);
  });

  test.skipIf(chromiumReason !== "")("headless Chromium: a page echoes text and binary over our server", async () => {
    const page = `<!doctype html><script>
      const ws = new WebSocket("ws://" + location.host + "/ws");
      ws.binaryType = "arraybuffer";
      const results = [];
      ws.onopen = () => { ws.send("héllo"); ws.send(new Uint8Array(70000).fill(7)); };
      ws.onmessage = (e) => {
        results.push(typeof e.data === "string" ? e.data : "bin:" + e.data.byteLength + ":" +
          new Uint8Array(e.data).every((b) => b === 7));
        if (results.length === 2) ws.close(1000, "bye");
      };
      ws.onclose = (e) => fetch("/result?" + encodeURIComponent(JSON.stringify({ results, code: e.code })));
    </script>`;
    let result: unknown;
    const server = serve({
      port: 0, hostname: "127.0.0.1", backend,
      // As a Bun.serve app is written: fetch serves the page and upgrades the WebSocket.
      fetch: (request, server) => {
        if (server.upgrade(request)) return;
        const url = new URL(request.url);
        if (url.pathname === "/result") {
          result = JSON.parse(decodeURIComponent(url.search.slice(1)));
          return new Response("thanks");
        }
        return new Response(page, { headers: { "Content-Type": "text/html; charset=utf-8" } });
      },
      websocket: { message: (ws, m) => void ws.send(m) },
    });
    servers.push(server);
    const profile = mkdtempSync(join(tmpdir(), "hioload-chromium-"));
    const browser = Bun.spawn([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-first-run", "--disable-quic", `--user-data-dir=${profile}`,
      `http://127.0.0.1:${server.port}/`], { stdout: "ignore", stderr: "ignore" });
    try {
      await waitFor(() => result !== undefined, 30_000, "the page reported its result");
      expect(result).toEqual({ results: ["héllo", "bin:70000:true"], code: 1000 });
    } finally {
      browser.kill("SIGKILL");
      await browser.exited;
      rmSync(profile, { recursive: true, force: true });
    }
  }, 40_000);
});
