/**
 * What an idle WebSocket holds in the JS heap: its WebSocketConnection, and no frame parser
 * (one is lent from the server's spares for each read and taken back between frames). A
 * socket keeps one only while a frame or fragmented message is half read.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { OPCODE_CONTINUATION, OPCODE_TEXT } from "../../src/protocol/constants.ts";
import type { WebSocketConnection } from "../../src/server/ws-connection.ts";
import { startFakeServer, stopFakeServers } from "../support/fake-server.ts";
import { waitFor } from "../support/wait-for.ts";

afterEach(stopFakeServers);

const parserOf = (socket: unknown) => (socket as WebSocketConnection<undefined>).parser;

describe("frame parsers are lent, not owned", () => {
  test("between messages a socket holds no parser; mid-message it keeps its own", async () => {
    const harness = startFakeServer();
    const clients = [harness.client(), harness.client()];
    for (const client of clients) await client.opened101();
    await waitFor(() => harness.sockets.length === 2, 2000, "two sockets");
    expect(harness.sockets.map(parserOf)).toEqual([null, null]); // open, never read from
    clients[0].sendText("whole");
    await clients[0].waitMessages(1);
    expect(harness.sockets.map(parserOf)).toEqual([null, null]);
    // A fragmented message in progress: its parser (and the bytes so far) stay with it.
    clients[1].sendFrame(OPCODE_TEXT, "first half, ", false);
    const holding = () => harness.sockets.filter((socket) => parserOf(socket) !== null).length;
    await waitFor(() => holding() === 1, 2000, "the half-read message");
    clients[0].sendText("meanwhile"); // another socket reads with a parser of its own
    await clients[0].waitMessages(2);
    expect(holding()).toBe(1);
    clients[1].sendFrame(OPCODE_CONTINUATION, "second half", true);
    await clients[1].waitMessages(1);
    expect(clients[1].messages()[0].text).toBe("first half, second half");
    expect(harness.sockets.map(parserOf)).toEqual([null, null]);
  });

  test("a frame header cut by the end of a read keeps the parser until the rest arrives", async () => {
    const harness = startFakeServer();
    const client = harness.client();
    await client.opened101();
    await waitFor(() => harness.sockets.length === 1, 2000, "the socket");
    const frame = new Uint8Array([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]); // masked "hi"
    client.sendRaw(frame.subarray(0, 3));
    await waitFor(() => parserOf(harness.sockets[0]) !== null, 2000, "the half header");
    client.sendRaw(frame.subarray(3));
    await client.waitMessages(1);
    expect(client.messages()[0].text).toBe("hi");
    expect(parserOf(harness.sockets[0])).toBeNull();
  });
});
