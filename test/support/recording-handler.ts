/**
 * A TransportHandler for tests: records every event per connection, optionally echoes, and checks
 * the event order the contract promises (open, data/drain..., end, close; close last and once).
 */
import type { Transport, TransportHandler } from "../../src/api/transport.ts";
import { errnoName } from "../../src/api/errno.ts";
import { concatBytes } from "./bytes.ts";

export interface ConnectionRecord {
  readonly conn: number;
  /** Made by `track` for an id from `connect` (only those may close without opening). */
  viaConnect: boolean;
  /** Listener id from onOpen (-1: outgoing); -2 until onOpen. */
  listener: number;
  opened: boolean;
  ended: boolean;
  /** The onClose reason, or null while the connection lives. */
  closeReason: number | null;
  drains: number;
  bytesReceived: number;
  /** Copies of every onData range, in order. */
  readonly chunks: Uint8Array[];
  /** "open" | "data" | "drain" | "end" | "close", in order (runs of "data" collapsed). */
  readonly events: string[];
  /** Results of echo sends that did not queue the whole range. */
  readonly sendFailures: number[];
  /** Contract violations seen (events after close, data after end...). */
  readonly violations: string[];
}

export interface RecordingHooks {
  open?(conn: number, record: ConnectionRecord): void;
  data?(conn: number, data: Uint8Array, start: number, end: number, record: ConnectionRecord): void;
  drain?(conn: number, record: ConnectionRecord): void;
  end?(conn: number, record: ConnectionRecord): void;
  close?(conn: number, reason: number, record: ConnectionRecord): void;
}

export interface RecordingOptions {
  /** Send every received range straight back. */
  echo?: boolean;
  hooks?: RecordingHooks;
  /** Receives one line per event (determinism tests). */
  log?: (line: string) => void;
  /** Prefix for log lines, e.g. "server". */
  label?: string;
}

export class RecordingHandler implements TransportHandler {
  /** Records of connections whose onClose has not run, by id. */
  readonly active = new Map<number, ConnectionRecord>();
  /** Every record, in creation order (ids may repeat: slots are reused). */
  readonly all: ConnectionRecord[] = [];
  private readonly transport: Transport;
  private readonly options: RecordingOptions;

  constructor(transport: Transport, options: RecordingOptions = {}) {
    this.transport = transport;
    this.options = options;
  }

  /** Starts a record for an id returned by `connect` (events for it follow later). */
  track(conn: number): ConnectionRecord {
    if (conn < 0) throw new Error(`connect returned ${conn} (${errnoName(conn)})`);
    const record = this.recordFor(conn);
    record.viaConnect = true;
    return record;
  }

  onOpen(conn: number, listener: number): void {
    const record = this.recordFor(conn);
    if (record.opened) record.violations.push("onOpen twice");
    if (record.events.length > 0) record.violations.push(`onOpen after ${record.events.join(",")}`);
    record.opened = true;
    record.listener = listener;
    this.event(record, "open", `${listener}`);
    this.options.hooks?.open?.(conn, record);
  }

  onData(conn: number, data: Uint8Array, start: number, end: number): void {
    const record = this.recordFor(conn);
    if (!record.opened) record.violations.push("onData before onOpen");
    if (record.ended) record.violations.push("onData after onEnd");
    if (record.closeReason !== null) record.violations.push("onData after onClose");
    if (!(start >= 0 && start < end && end <= data.length)) {
      record.violations.push(`bad range ${start}..${end} of ${data.length}`);
    }
    // A copy: a Buffer's slice() would be a view of a receive buffer that is reused.
    record.chunks.push(Uint8Array.prototype.slice.call(data, start, end));
    record.bytesReceived += end - start;
    if (record.events[record.events.length - 1] !== "data") record.events.push("data");
    this.options.log?.(`${this.options.label ?? ""} data ${conn} ${end - start}`);
    if (this.options.echo) {
      const queued = this.transport.send(conn, data, start, end);
      if (queued !== end - start) record.sendFailures.push(queued);
    }
    this.options.hooks?.data?.(conn, data, start, end, record);
  }

  onDrain(conn: number): void {
    const record = this.recordFor(conn);
    record.drains++;
    this.event(record, "drain", "");
    this.options.hooks?.drain?.(conn, record);
  }

  onEnd(conn: number): void {
    const record = this.recordFor(conn);
    if (record.ended) record.violations.push("onEnd twice");
    record.ended = true;
    this.event(record, "end", "");
    this.options.hooks?.end?.(conn, record);
  }

  onClose(conn: number, reason: number): void {
    const record = this.recordFor(conn);
    if (!record.opened && !record.viaConnect) record.violations.push("onClose for an unknown id");
    record.closeReason = reason;
    this.event(record, "close", reason === 0 ? "0" : errnoName(reason));
    this.active.delete(conn);
    this.options.hooks?.close?.(conn, reason, record);
  }

  /** Everything received on `record`, concatenated. */
  static received(record: ConnectionRecord): Uint8Array {
    return concatBytes(record.chunks);
  }

  /** Records that are closed. */
  closed(): ConnectionRecord[] {
    return this.all.filter((record) => record.closeReason !== null);
  }

  /** All contract violations seen on any connection, as readable lines. */
  violations(): string[] {
    const lines: string[] = [];
    for (const record of this.all) {
      for (const violation of record.violations) lines.push(`conn ${record.conn}: ${violation}`);
    }
    return lines;
  }

  private recordFor(conn: number): ConnectionRecord {
    let record = this.active.get(conn);
    if (record === undefined) {
      record = {
        conn, viaConnect: false, listener: -2, opened: false, ended: false, closeReason: null,
        drains: 0, bytesReceived: 0, chunks: [], events: [], sendFailures: [], violations: [],
      };
      this.active.set(conn, record);
      this.all.push(record);
    }
    return record;
  }

  private event(record: ConnectionRecord, name: string, detail: string): void {
    if (name !== "close" && record.closeReason !== null) {
      record.violations.push(`${name} after close`);
    }
    if (name === "close" && record.events.includes("close")) {
      record.violations.push("onClose twice");
    }
    record.events.push(name);
    this.options.log?.(`${this.options.label ?? ""} ${name} ${record.conn} ${detail}`);
  }
}
