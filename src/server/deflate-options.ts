/**
 * websocket.perMessageDeflate as Bun.serve takes it (compressor names from uWS), resolved to
 * the negotiation settings and zlib parameters, plus what Bun lacks: a `threshold` below
 * which messages go out uncompressed, and per-direction settings that really apply.
 *
 * Names (compress): "shared" — one zlib stream per server, reset per message
 * (server_no_context_takeover): no memory per socket; "dedicated" — a window kept per socket
 * (15 bits, memLevel 8: 256 KiB); "3KB" … "256KB" — dedicated with uWS's window/memLevel
 * pairs, named by zlib's deflate memory 2^(w+2) + 2^(m+9). Decompress: "shared" asks the
 * client not to keep a window (client_no_context_takeover) and inflates with one stream per
 * server; "dedicated" inflates with a 15-bit window per socket (32 KiB + zlib's ~7 KiB); a size
 * keeps the compressor's window of that name. `true` is "shared".
 */
import { ErrorCode, UsageError } from "../api/errors.ts";
import type { Compressor, PerMessageDeflateOptions } from "../api/websocket.ts";
import type { DeflateServerSettings } from "../protocol/permessage-deflate.ts";

/** Window bits and memLevel of each named dedicated compressor (uWS's pairs). */
const DEDICATED: Record<string, readonly [windowBits: number, memLevel: number]> = {
  dedicated: [15, 8], "3KB": [9, 1], "4KB": [9, 2], "8KB": [10, 3], "16KB": [11, 4],
  "32KB": [12, 5], "64KB": [13, 6], "128KB": [14, 7], "256KB": [15, 8],
};
const SHARED_WINDOW: readonly [number, number] = [15, 8];

export interface DeflateConfig {
  readonly settings: DeflateServerSettings;
  /** zlib memLevel of the server's compressor. */
  readonly memLevel: number;
  readonly level: number;
  readonly threshold: number;
}

type Direction = { enabled: boolean; takeover: boolean; windowBits: number; memLevel: number };

function direction(name: string, value: boolean | Compressor | undefined): Direction {
  if (value === undefined || value === true || value === "shared") {
    return { enabled: true, takeover: false, windowBits: SHARED_WINDOW[0], memLevel: SHARED_WINDOW[1] };
  }
  if (value === false || value === "disable") {
    return { enabled: false, takeover: false, windowBits: SHARED_WINDOW[0], memLevel: SHARED_WINDOW[1] };
  }
  const pair = typeof value === "string" ? DEDICATED[value] : undefined;
  if (pair === undefined) {
    throw new UsageError(ErrorCode.BAD_OPTION, `perMessageDeflate.${name} is a boolean or one of ` +
      `"disable", "shared", ${Object.keys(DEDICATED).map((key) => `"${key}"`).join(", ")}; got ${JSON.stringify(value)}`);
  }
  return { enabled: true, takeover: true, windowBits: pair[0], memLevel: pair[1] };
}

function integer(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isInteger(chosen) || chosen < min || chosen > max) {
    throw new UsageError(ErrorCode.BAD_OPTION, `perMessageDeflate.${name} must be an integer from ${min} to ${max}`);
  }
  return chosen;
}

/** null: the extension is not offered back (no option, false, or both directions disabled). */
export function resolveDeflate(option: boolean | PerMessageDeflateOptions | undefined): DeflateConfig | null {
  if (option === undefined || option === false) return null;
  if (option !== true && (option === null || typeof option !== "object")) {
    throw new UsageError(ErrorCode.BAD_OPTION, "perMessageDeflate is a boolean or { compress, decompress, threshold, level }");
  }
  const given = option === true ? {} : option;
  const compress = direction("compress", given.compress);
  const decompress = direction("decompress", given.decompress);
  const threshold = integer("threshold", given.threshold, 1024, 0, 2 ** 31);
  const level = integer("level", given.level, 1, 1, 9);
  if (!compress.enabled && !decompress.enabled) return null;
  return {
    settings: {
      compress: compress.enabled,
      serverWindowBits: compress.windowBits,
      serverContextTakeover: compress.enabled && compress.takeover,
      clientWindowBits: decompress.windowBits,
      clientContextTakeover: decompress.enabled && decompress.takeover,
    },
    memLevel: compress.memLevel,
    level,
    threshold,
  };
}
