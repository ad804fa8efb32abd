/**
 * The wire format a subscriber reads (SPEC §2) and the frames it sends (§3),
 * decoded with the same rules as the Rust core's `protocol::decode`: an
 * unreadable frame or an unknown `type` is ignored (forward compatibility).
 * @module
 */

/** Exactly the ping the runtime answers without waking the room. */
export const LITERAL_PING = '{"type":"ping"}';
/** The runtime's exact answer to {@link LITERAL_PING}. */
export const LITERAL_PONG = '{"type":"pong"}';
/** Asks the room to cancel the job. */
export const CANCEL = '{"type":"cancel"}';

/** A job's status on the wire. */
export type JobStatus = "pending" | "processing" | "completed" | "failed" | "canceled";

const STATUSES: readonly string[] = ["pending", "processing", "completed", "failed", "canceled"];

/** `s` if it is a wire status name. */
export function parseStatus(s: unknown): JobStatus | undefined {
  return typeof s === "string" && STATUSES.includes(s) ? (s as JobStatus) : undefined;
}

/** One decoded server frame. */
export type ServerMessage =
  | { type: "job_started"; totalCount: number | undefined; message: string | undefined }
  | {
      type: "job_progress";
      processedCount: number;
      totalCount: number | undefined;
      currentItem: string | undefined;
      message: string | undefined;
    }
  | { type: "job_complete"; summary: unknown }
  | { type: "error"; code: string; message: string; retryable: boolean }
  | {
      type: "snapshot";
      resumed: boolean;
      recovered: boolean;
      status: JobStatus;
      processedCount: number;
      totalCount: number | undefined;
    }
  | { type: "token_refresh"; token: string; expiresAt: number }
  | { type: "pong" };

/** A frame with its job-event `seq`, if it carries one. */
export interface ServerFrame {
  seq: number | undefined;
  message: ServerMessage;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A JSON number that is a u64 (what the Rust decoder accepts). */
export function asCount(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined;
}

const asString = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Decodes a server text frame; `undefined` for anything the client ignores. */
export function decode(text: string): ServerFrame | undefined {
  if (text === LITERAL_PONG) return { seq: undefined, message: { type: "pong" } };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.type !== "string") return undefined;
  let seq: number | undefined;
  if (v.seq !== undefined && v.seq !== null) {
    seq = asCount(v.seq);
    if (seq === undefined) return undefined;
  }
  const p: Json = isObject(v.payload) ? v.payload : {};
  const message = payload(v.type, p);
  return message && { seq, message };
}

function payload(type: string, p: Json): ServerMessage | undefined {
  switch (type) {
    case "job_started":
      return { type, totalCount: asCount(p.totalCount), message: asString(p.message) };
    case "job_progress": {
      const processedCount = asCount(p.processedCount);
      if (processedCount === undefined) return undefined;
      return {
        type,
        processedCount,
        totalCount: asCount(p.totalCount),
        currentItem: asString(p.currentItem),
        message: asString(p.message),
      };
    }
    case "job_complete":
      return { type, summary: p.summary === undefined ? null : p.summary };
    case "error":
      return {
        type,
        code: asString(p.code) ?? "",
        message: asString(p.message) ?? "",
        retryable: p.retryable === true,
      };
    case "snapshot":
    case "reconnected": {
      const status = parseStatus(p.status);
      if (status === undefined) return undefined;
      return {
        type: "snapshot",
        resumed: type === "reconnected",
        recovered: p.recovered === true,
        status,
        processedCount: asCount(p.processedCount) ?? 0,
        totalCount: asCount(p.totalCount),
      };
    }
    case "token_refresh": {
      const token = asString(p.token);
      const expiresAt = asCount(p.expiresAt);
      if (token === undefined || expiresAt === undefined) return undefined;
      return { type, token, expiresAt };
    }
    case "pong":
      return { type };
    default:
      return undefined;
  }
}
