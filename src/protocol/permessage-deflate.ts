/**
 * permessage-deflate negotiation (RFC 7692 §5, §7.1): the client's offers in
 * Sec-WebSocket-Extensions, the server's settings, and the one response the server sends.
 * Pure: no zlib here, only which parameters both sides agreed to.
 *
 * Rules kept (section numbers of RFC 7692):
 * - Offers are tried in the client's order; the first acceptable one wins (§5.1). An offer is
 *   declined, never failed, when it has an unknown parameter, a parameter twice, or a bad
 *   value (§7.1); a header that does not parse as RFC 6455 §9.1's grammar declines them all.
 * - `server_no_context_takeover` offered → it is in the response (§7.1.1.1); also sent when
 *   the server's compressor keeps no window anyway.
 * - `client_no_context_takeover` is sent when the server's decompressor keeps no window (a
 *   server may send it whether offered or not, §7.1.1.2).
 * - `server_max_window_bits=N` offered → answered with min(N, the server's window) (§7.1.2.1).
 *   8 is honoured: zlib deflates a raw 8-bit request with a 9-bit window, whose matches
 *   never reach back past 250 bytes (its MAX_DIST), so a 256-byte window decodes them.
 * - `client_max_window_bits` (value optional in the offer) → answered with a value only when
 *   the server wants a smaller window than the client's own limit, never below 9 (§7.1.2.2);
 *   without it in the offer the response never has it.
 */

/** One parameter of an extension offer: name → value (`true` when it had none). */
export type ExtensionParams = Map<string, string | true>;

/** One extension in a Sec-WebSocket-Extensions list. */
export interface ExtensionOffer {
  readonly name: string;
  readonly params: ExtensionParams;
}

/** The server's side, from its compress/decompress settings. */
export interface DeflateServerSettings {
  /** The server compresses (false: it never sets RSV1, yet still negotiates to inflate). */
  readonly compress: boolean;
  /** Largest LZ77 window the server compresses with, 9..15. */
  readonly serverWindowBits: number;
  /** The server keeps its compression window between messages (a dedicated compressor). */
  readonly serverContextTakeover: boolean;
  /** Largest window the server wants the client to compress with, 9..15. */
  readonly clientWindowBits: number;
  /** The server keeps a window per socket to inflate with (a dedicated decompressor). */
  readonly clientContextTakeover: boolean;
}

/** What both sides agreed to, for one connection. */
export interface DeflateAgreement {
  /** The Sec-WebSocket-Extensions value of the 101 response. */
  readonly response: string;
  /** The server may send compressed messages (false when its compress setting is off). */
  readonly serverCompresses: boolean;
  /** Window bits to deflate with, 8..15 (8: see the module comment). */
  readonly serverWindowBits: number;
  readonly serverNoContextTakeover: boolean;
  /** Window bits to inflate the client's messages with (9..15: never less than zlib writes). */
  readonly clientWindowBits: number;
  readonly clientNoContextTakeover: boolean;
}

export const PERMESSAGE_DEFLATE = "permessage-deflate";
const WINDOW_BITS_MIN = 8;
const WINDOW_BITS_MAX = 15;
/** zlib writes raw deflate with 9 bits when asked for 8; inflating with less breaks. */
const ZLIB_WINDOW_BITS_MIN = 9;

// RFC 7230 token characters: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a Sec-WebSocket-Extensions value (several header lines joined with ", ") into its
 * extensions in order; null when it does not follow RFC 6455 §9.1's grammar. Quoted values
 * are unquoted (and must then be tokens, §9.1). Names are compared case-insensitively.
 */
export function parseExtensionOffers(header: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = [];
  const parts = splitOutsideQuotes(header, ",");
  if (parts === null) return null;
  for (const part of parts) {
    if (part.trim() === "") continue; // "a, , b": empty list elements are allowed (RFC 7230 §7)
    const pieces = splitOutsideQuotes(part, ";")!;
    const name = pieces[0].trim().toLowerCase();
    if (!TOKEN.test(name)) return null;
    const params: ExtensionParams = new Map();
    let duplicate = false;
    for (let i = 1; i < pieces.length; i++) {
      const param = parseParam(pieces[i]);
      if (param === null) return null;
      if (params.has(param[0])) duplicate = true;
      params.set(param[0], param[1]);
    }
    // A repeated parameter declines this offer (§7.1), so it is marked rather than parsed away.
    if (duplicate) params.set(DUPLICATE, true);
    offers.push({ name, params });
  }
  return offers;
}

/** A parameter name no offer can carry: marks an offer with a repeated parameter. */
const DUPLICATE = " duplicate";

function parseParam(text: string): [string, string | true] | null {
  const equals = text.indexOf("=");
  const name = (equals < 0 ? text : text.slice(0, equals)).trim().toLowerCase();
  if (!TOKEN.test(name)) return null;
  if (equals < 0) return [name, true];
  let value = text.slice(equals + 1).trim();
  if (value.startsWith('"')) {
    if (value.length < 2 || !value.endsWith('"')) return null;
    value = value.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  if (!TOKEN.test(value)) return null;
  return [name, value];
}

/** Splits on `separator` outside double quotes; null for an unterminated quote. */
function splitOutsideQuotes(text: string, separator: string): string[] | null {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === "\\") i++;
      else if (char === '"') quoted = false;
    } else if (char === '"') {
      quoted = true;
    } else if (char === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return null;
  parts.push(text.slice(start));
  return parts;
}

/** A window-bits value: a decimal 8..15 without leading zeros (§7.1.2.1); NaN otherwise. */
function windowBits(value: string | true): number {
  if (value === true || !/^[1-9][0-9]?$/.test(value)) return NaN;
  const bits = Number(value);
  return bits >= WINDOW_BITS_MIN && bits <= WINDOW_BITS_MAX ? bits : NaN;
}

/** The agreement for one permessage-deflate offer, or null to decline it. */
export function acceptDeflateOffer(params: ExtensionParams, server: DeflateServerSettings):
  DeflateAgreement | null {
  let serverNoTakeoverOffered = false;
  let clientNoTakeoverOffered = false;
  let serverMaxBits = NaN; // offered limit on the server's window
  let clientMaxOffered = false;
  let clientMaxBits = NaN; // the client's own limit, when it gave one
  for (const [name, value] of params) {
    switch (name) {
      case "server_no_context_takeover":
        if (value !== true) return null;
        serverNoTakeoverOffered = true;
        break;
      case "client_no_context_takeover":
        if (value !== true) return null;
        clientNoTakeoverOffered = true;
        break;
      case "server_max_window_bits":
        serverMaxBits = windowBits(value);
        if (Number.isNaN(serverMaxBits)) return null;
        break;
      case "client_max_window_bits":
        clientMaxOffered = true;
        if (value !== true) {
          clientMaxBits = windowBits(value);
          if (Number.isNaN(clientMaxBits)) return null;
        }
        break;
      default:
        return null; // unknown, or DUPLICATE: decline (§7.1)
    }
  }
  const response = [PERMESSAGE_DEFLATE];
  const serverNoContextTakeover = serverNoTakeoverOffered || !server.serverContextTakeover;
  if (serverNoContextTakeover) response.push("server_no_context_takeover");
  // The client keeps its window unless told otherwise; a decompressor without a window per
  // socket must tell it. When the client offered not to keep one, it will not either way.
  const clientNoContextTakeover = clientNoTakeoverOffered || !server.clientContextTakeover;
  if (!server.clientContextTakeover) response.push("client_no_context_takeover");
  let serverBits = server.serverWindowBits;
  if (!Number.isNaN(serverMaxBits)) {
    serverBits = Math.min(serverBits, serverMaxBits);
    response.push(`server_max_window_bits=${serverBits}`);
  }
  const clientLimit = Number.isNaN(clientMaxBits) ? WINDOW_BITS_MAX : clientMaxBits;
  let clientBits = clientLimit;
  if (clientMaxOffered && server.clientWindowBits < clientLimit) {
    clientBits = Math.max(ZLIB_WINDOW_BITS_MIN, server.clientWindowBits);
    if (clientBits < clientLimit) response.push(`client_max_window_bits=${clientBits}`);
    else clientBits = clientLimit;
  }
  return {
    response: response.join("; "),
    serverCompresses: server.compress,
    serverWindowBits: serverBits,
    serverNoContextTakeover,
    clientWindowBits: Math.max(ZLIB_WINDOW_BITS_MIN, clientBits),
    clientNoContextTakeover,
  };
}

/**
 * The agreement for a request's Sec-WebSocket-Extensions value: the first permessage-deflate
 * offer the server accepts, or null (no extension: the connection is uncompressed).
 */
export function negotiateDeflate(header: string, server: DeflateServerSettings): DeflateAgreement | null {
  if (header === "") return null;
  const offers = parseExtensionOffers(header);
  if (offers === null) return null;
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const agreement = acceptDeflateOffer(offer.params, server);
    if (agreement !== null) return agreement;
  }
  return null;
}
