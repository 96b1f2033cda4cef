/** permessage-deflate negotiation (RFC 7692 §7.1): every offer gets the right response or a decline. */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  negotiateDeflate, parseExtensionOffers, type DeflateServerSettings,
} from "../../src/protocol/permessage-deflate.ts";

/** Bun's default ("shared" both ways): no window kept on either side. */
const SHARED: DeflateServerSettings = {
  compress: true, serverWindowBits: 15, serverContextTakeover: false, clientWindowBits: 15, clientContextTakeover: false,
};
/** "dedicated" both ways: windows kept, 15 bits. */
const DEDICATED: DeflateServerSettings = {
  compress: true, serverWindowBits: 15, serverContextTakeover: true, clientWindowBits: 15, clientContextTakeover: true,
};

describe("negotiateDeflate: responses", () => {
  test("a bare offer with shared settings: both no_context_takeover", () => {
    const agreed = negotiateDeflate("permessage-deflate", SHARED)!;
    expect(agreed.response).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    expect(agreed).toMatchObject({
      serverCompresses: true, serverWindowBits: 15, serverNoContextTakeover: true,
      clientWindowBits: 15, clientNoContextTakeover: true,
    });
  });

  test("a browser's offer with dedicated settings: plain permessage-deflate, windows kept", () => {
    const agreed = negotiateDeflate("permessage-deflate; client_max_window_bits", DEDICATED)!;
    expect(agreed.response).toBe("permessage-deflate");
    expect(agreed).toMatchObject({ serverNoContextTakeover: false, clientNoContextTakeover: false, clientWindowBits: 15 });
  });

  test("server_no_context_takeover offered is answered even with a dedicated compressor", () => {
    const agreed = negotiateDeflate("permessage-deflate; server_no_context_takeover", DEDICATED)!;
    expect(agreed.response).toBe("permessage-deflate; server_no_context_takeover");
    expect(agreed.serverNoContextTakeover).toBe(true);
  });

  test("client_no_context_takeover offered is a promise: no window kept for it, nothing to answer", () => {
    const agreed = negotiateDeflate("permessage-deflate; client_no_context_takeover", DEDICATED)!;
    expect(agreed.response).toBe("permessage-deflate");
    expect(agreed.clientNoContextTakeover).toBe(true);
  });

  test("server_max_window_bits=N is answered with min(N, ours), quoted or not", () => {
    expect(negotiateDeflate("permessage-deflate; server_max_window_bits=10", DEDICATED)).toMatchObject({
      response: "permessage-deflate; server_max_window_bits=10", serverWindowBits: 10, serverCompresses: true,
    });
    expect(negotiateDeflate('permessage-deflate; server_max_window_bits="12"',
      { ...DEDICATED, serverWindowBits: 11 })).toMatchObject({
      response: "permessage-deflate; server_max_window_bits=11", serverWindowBits: 11,
    });
  });

  test("server_max_window_bits=8: answered 8 and honoured (zlib's 9-bit window never reaches past 250 bytes)", () => {
    const agreed = negotiateDeflate("permessage-deflate; server_max_window_bits=8", SHARED)!;
    expect(agreed.response).toBe(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8");
    expect(agreed).toMatchObject({ serverCompresses: true, serverWindowBits: 8 });
  });

  test("client_max_window_bits: a smaller window is asked for only when the server wants one", () => {
    const small = { ...DEDICATED, clientWindowBits: 12 };
    expect(negotiateDeflate("permessage-deflate; client_max_window_bits", small)).toMatchObject({
      response: "permessage-deflate; client_max_window_bits=12", clientWindowBits: 12,
    });
    // The client's own limit is already smaller: nothing to say, inflate with its limit.
    expect(negotiateDeflate("permessage-deflate; client_max_window_bits=10", small)).toMatchObject({
      response: "permessage-deflate", clientWindowBits: 10,
    });
    // Not in the offer: the response must not have it, so the client may use 15 bits.
    expect(negotiateDeflate("permessage-deflate", small)).toMatchObject({
      response: "permessage-deflate", clientWindowBits: 15,
    });
  });

  test("client_max_window_bits=8 is accepted (Bun closes with 1011); inflating uses 9, what zlib writes", () => {
    const agreed = negotiateDeflate("permessage-deflate; client_max_window_bits=8", DEDICATED)!;
    expect(agreed.response).toBe("permessage-deflate");
    expect(agreed.clientWindowBits).toBe(9);
    // A server wanting 8 asks for 9 (zlib's floor), not below.
    expect(negotiateDeflate("permessage-deflate; client_max_window_bits",
      { ...DEDICATED, clientWindowBits: 9 })!.response).toBe("permessage-deflate; client_max_window_bits=9");
  });

  test("compress off: negotiated (to inflate), the server never compresses", () => {
    expect(negotiateDeflate("permessage-deflate", { ...SHARED, compress: false })).toMatchObject({
      serverCompresses: false, clientNoContextTakeover: true,
    });
  });

  test("several offers: the first acceptable wins, in the client's order; other extensions are skipped", () => {
    const header = "x-webkit-deflate-frame, permessage-deflate; foo=1, " +
      "permessage-deflate; server_max_window_bits=11, permessage-deflate";
    expect(negotiateDeflate(header, DEDICATED)!.response).toBe("permessage-deflate; server_max_window_bits=11");
    expect(negotiateDeflate("Permessage-Deflate; Server_Max_Window_Bits=13", DEDICATED)!.response)
      .toBe("permessage-deflate; server_max_window_bits=13");
  });
});

describe("negotiateDeflate: declines", () => {
  const declined = [
    "permessage-deflate; foo",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_no_context_takeover=true",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=0",
  ];
  for (const header of declined) {
    test(`declined: ${header}`, () => {
      expect(negotiateDeflate(header, SHARED)).toBeNull();
      // A declined offer never spoils the next one.
      expect(negotiateDeflate(`${header}, permessage-deflate`, SHARED)).not.toBeNull();
    });
  }

  test("a header that does not parse declines everything; no offer at all is no extension", () => {
    expect(parseExtensionOffers('permessage-deflate; a="unterminated')).toBeNull();
    expect(negotiateDeflate('permessage-deflate, x; a="unterminated', SHARED)).toBeNull();
    expect(negotiateDeflate("permessage-deflate; =10", SHARED)).toBeNull();
    // A quoted value must be a token once unquoted (RFC 6455 §9.1).
    expect(negotiateDeflate('permessage-deflate; server_max_window_bits="1 0", permessage-deflate', SHARED)).toBeNull();
    expect(negotiateDeflate("", SHARED)).toBeNull();
    expect(negotiateDeflate("x-webkit-deflate-frame", SHARED)).toBeNull();
  });

  test("empty list elements are allowed", () => {
    expect(negotiateDeflate(" , permessage-deflate ,", SHARED)).not.toBeNull();
  });
});

describe("negotiateDeflate: properties", () => {
  const paramNames = ["server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
    "client_max_window_bits", "foo"];
  const param = fc.tuple(fc.constantFrom(...paramNames),
    fc.option(fc.constantFrom("8", "9", "10", "12", "15", "16", "07", '"11"', "x"), { nil: undefined }))
    .map(([name, value]) => (value === undefined ? name : `${name}=${value}`));
  const offer = fc.array(param, { maxLength: 5 }).map((params) => ["permessage-deflate", ...params].join("; "));
  const settings = fc.record({
    compress: fc.boolean(), serverWindowBits: fc.integer({ min: 9, max: 15 }), serverContextTakeover: fc.boolean(),
    clientWindowBits: fc.integer({ min: 9, max: 15 }), clientContextTakeover: fc.boolean(),
  });

  test("every response obeys §7.1 against its offer and the server's settings", () => {
    fc.assert(fc.property(offer, settings, (header, server) => {
      const agreed = negotiateDeflate(header, server);
      if (agreed === null) return;
      const offered = parseExtensionOffers(header)![0].params;
      const answered = new Map(agreed.response.split("; ").slice(1).map((p) => {
        const [name, value] = p.split("=");
        return [name, value] as const;
      }));
      for (const name of answered.keys()) expect(paramNames).toContain(name);
      if (offered.has("server_no_context_takeover")) expect(answered.has("server_no_context_takeover")).toBe(true);
      if (!offered.has("client_max_window_bits")) expect(answered.has("client_max_window_bits")).toBe(false);
      if (!offered.has("server_max_window_bits")) expect(answered.has("server_max_window_bits")).toBe(false);
      const offeredServerBits = offered.get("server_max_window_bits");
      if (typeof offeredServerBits === "string") {
        expect(Number(answered.get("server_max_window_bits"))).toBeLessThanOrEqual(Number(offeredServerBits));
      }
      const answeredClientBits = answered.get("client_max_window_bits");
      if (answeredClientBits !== undefined) expect(Number(answeredClientBits)).toBeGreaterThanOrEqual(9);
      expect(agreed.serverWindowBits).toBeLessThanOrEqual(server.serverWindowBits);
      expect(agreed.clientWindowBits).toBeGreaterThanOrEqual(9);
      if (!server.compress) expect(agreed.serverCompresses).toBe(false);
      if (!server.clientContextTakeover) expect(agreed.clientNoContextTakeover).toBe(true);
    }), { seed: 7692, numRuns: 2000 });
  });

  test("arbitrary header text never throws", () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), settings, (header, server) => {
      negotiateDeflate(header, server);
    }), { seed: 1, numRuns: 3000 });
  });
});
