/**
 * A chat server written as a Bun.serve app: `bun examples/chat.ts [port]` (default 9002).
 * The same file runs on Bun.serve with the import line changed to `const { serve } = Bun;`
 * (test/server/drop-in.test.ts does exactly that and compares what clients see).
 *
 *   GET /health            → "ok"
 *   GET /rooms/NAME        → {"room":"NAME","members":N}
 *   WS  /chat/NAME         → needs a cookie `user=NAME` (checked asynchronously); joins the room,
 *                            every message goes to the room's others as "user: text",
 *                            and the room hears "user joined" / "user left".
 */
import { serve } from "../src/index.ts";

interface Member {
  user: string;
  room: string;
}

/** Stands for a session store: async, as a database lookup would be. */
async function userFromCookie(cookie: string | null): Promise<string | undefined> {
  await Promise.resolve();
  const match = /(?:^|;\s*)user=([A-Za-z0-9_-]+)/.exec(cookie ?? "");
  return match?.[1];
}

const server = serve<Member>({
  port: Number(process.argv[2] ?? process.env.PORT ?? 9002),
  hostname: "127.0.0.1",
  async fetch(req, server) {
    const { pathname } = new URL(req.url);
    if (pathname === "/health") return new Response("ok");
    if (pathname.startsWith("/rooms/")) {
      const room = pathname.slice("/rooms/".length);
      return Response.json({ room, members: server.subscriberCount(room) });
    }
    if (pathname.startsWith("/chat/")) {
      const user = await userFromCookie(req.headers.get("cookie"));
      if (user === undefined) return new Response("who are you?", { status: 401 });
      const room = pathname.slice("/chat/".length);
      if (server.upgrade(req, { data: { user, room } })) return;
      return new Response("expected a WebSocket upgrade", { status: 400 });
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    open(ws) {
      ws.subscribe(ws.data.room);
      ws.publish(ws.data.room, `${ws.data.user} joined`);
    },
    message(ws, message) {
      ws.publish(ws.data.room, `${ws.data.user}: ${String(message)}`);
    },
    close(ws) {
      server.publish(ws.data.room, `${ws.data.user} left`);
    },
  },
});

console.log(`chat listening on :${server.port}`);
