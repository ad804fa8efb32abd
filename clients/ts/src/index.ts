/**
 * progress-gateway-client: watch one job of the progress gateway from a
 * browser or Node ≥ 20 (`watchJob`), or drive the pure machine yourself (`Client`).
 * @module
 */

export { watchJob } from "./watch.js";
export type {
  Ending,
  NetworkEvents,
  Outcome,
  WatchEvent,
  WatchHandle,
  WatchOptions,
  WebSocketConstructor,
  WebSocketLike,
} from "./watch.js";
export { Client, defaultConfig } from "./machine.js";
export type { ClientConfig, ConnectParams, Effect, FailReason, Input, JobEnd, State, View } from "./machine.js";
export { jobIdOf, jobStateUrl, progressUrl } from "./urls.js";
export { CloseCode, closeAction } from "./closeCode.js";
export type { CloseAction } from "./closeCode.js";
export { CANCEL, LITERAL_PING, LITERAL_PONG, decode } from "./protocol.js";
export type { JobStatus, ServerFrame, ServerMessage } from "./protocol.js";
