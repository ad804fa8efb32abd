/**
 * Every WebSocket close code of SPEC §4 and what a subscriber does on each:
 * the same table as the Rust core's `CloseCode::action` (close_code.rs).
 * @module
 */

/** The close codes the gateway sends, plus 1006 (a dropped connection). */
export const CloseCode = {
  Completed: 1000,
  Canceled: 1001,
  Protocol: 1002,
  Unsupported: 1003,
  Abnormal: 1006,
  Revoked: 1008,
  TooBig: 1009,
  InternalError: 1011,
  Restarting: 1012,
  TryAgainLater: 1013,
  Superseded: 4000,
  JobFailed: 4001,
  Idle: 4002,
} as const;

/** What a subscriber does after a close. */
export type CloseAction =
  /** The job reached its end; never reconnect. */
  | { readonly kind: "done" }
  /** Reconnect and resume, waiting at least `minDelay` ms plus the jittered backoff. */
  | { readonly kind: "reconnect"; readonly minDelay: number }
  /** The token is no good any more: get a new one from the app's backend. */
  | { readonly kind: "reauthenticate" }
  /** Stop this connection for good (a client bug, or a newer socket exists). */
  | { readonly kind: "stop" };

/** SPEC §4. Codes the gateway never sends are treated as a dropped connection. */
export function closeAction(code: number): CloseAction {
  switch (code) {
    case CloseCode.Completed:
    case CloseCode.Canceled:
    case CloseCode.JobFailed:
      return { kind: "done" };
    case CloseCode.Protocol:
    case CloseCode.Unsupported:
    case CloseCode.TooBig:
    case CloseCode.Superseded:
      return { kind: "stop" };
    case CloseCode.Revoked:
      return { kind: "reauthenticate" };
    case CloseCode.InternalError:
      return { kind: "reconnect", minDelay: 1000 };
    case CloseCode.TryAgainLater:
      return { kind: "reconnect", minDelay: 5000 };
    default: // 1012, 1006, 4002 and any other number
      return { kind: "reconnect", minDelay: 0 };
  }
}
