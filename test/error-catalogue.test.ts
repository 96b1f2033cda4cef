/**
 * The one catalogue of UsageError codes (src/api/errors.ts): unique, and never equal to a code
 * a peer's violation is reported with, so a log line tells local misuse from a bad peer.
 */
import { describe, expect, test } from "bun:test";
import { ErrorCode } from "../src/api/errors.ts";
import { PoolErrorCode } from "../src/pool/pool-errors.ts";
import * as frameCodes from "../src/protocol/constants.ts";
import { PROTOCOL_NOT_OFFERED } from "../src/protocol/handshake.ts";
import { HttpErrorCode } from "../src/protocol/http-errors.ts";
import * as responseCodes from "../src/protocol/http-response.ts";

const catalogue: string[] = Object.values(ErrorCode);

/** Codes of the frame layer's ProtocolError constants (objects with a closeCode and a code). */
function peerFrameCodes(): string[] {
  const codes: string[] = [];
  for (const value of Object.values(frameCodes)) {
    if (typeof value === "object" && value !== null && "closeCode" in value && "code" in value) {
      codes.push(String(value.code));
    }
  }
  return codes;
}

describe("ErrorCode, the catalogue of UsageError codes", () => {
  test("every code is a distinct WS_ERR_ string", () => {
    expect(new Set(catalogue).size).toBe(catalogue.length);
    for (const code of catalogue) expect(code).toMatch(/^WS_ERR_[A-Z0-9_]+$/);
  });

  test("no local-misuse code equals a peer-violation code", () => {
    const peer = [...peerFrameCodes(), ...Object.values(HttpErrorCode)];
    expect(peer.length).toBeGreaterThan(20);
    expect(catalogue.filter((code) => peer.includes(code))).toEqual([]);
  });

  test("the codes other modules name come from the catalogue", () => {
    const named = [
      ...Object.values(PoolErrorCode), PROTOCOL_NOT_OFFERED, responseCodes.INVALID_HEADER,
      responseCodes.INVALID_STATUS, responseCodes.RESPONSE_TOO_LARGE,
      responseCodes.RESPONSE_BODY_USED, responseCodes.RESPONSE_BODY_INVALID,
    ];
    expect(named.filter((code) => !catalogue.includes(code))).toEqual([]);
  });
});
