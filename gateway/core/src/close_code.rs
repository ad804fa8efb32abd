//! Every WebSocket close code of SPEC §4, and what a subscriber must do on each.
//!
//! [`CloseCode::action`] is the one table the client machine, the protocol docs
//! and the model share; a test keeps `docs/PROTOCOL.md` equal to it.

use crate::Millis;

/// A WebSocket close code. Unknown numbers survive a round trip as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseCode {
    /// 1000: the job completed, after `job_complete`.
    Completed,
    /// 1001: the job was canceled.
    Canceled,
    /// 1002: the client broke the protocol.
    Protocol,
    /// 1003: the client sent a binary frame.
    Unsupported,
    /// 1006: never sent; what a client sees when the connection drops.
    Abnormal,
    /// 1008: the job's tokens were revoked, or the session ended.
    Revoked,
    /// 1009: a frame was too big.
    TooBig,
    /// 1011: internal error in the gateway.
    InternalError,
    /// 1012: the room is restarting or draining.
    Restarting,
    /// 1013: rate limited or overloaded.
    TryAgainLater,
    /// 4000: the same `clientId` connected again on a newer socket.
    Superseded,
    /// 4001: the job failed, after `error`.
    JobFailed,
    /// 4002: no ping within twice the ping interval.
    Idle,
    /// Any other number.
    Other(u16),
}

/// What a subscriber does when its socket closes with a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAction {
    /// The job reached its end; never reconnect.
    Done,
    /// Reconnect and resume with `lastSeq`, waiting at least `min_delay` plus
    /// the jittered backoff.
    Reconnect {
        /// Lower bound of the delay before the next attempt.
        min_delay: Millis,
    },
    /// The token is no good any more: get a new one from the app's backend.
    Reauthenticate,
    /// Stop this connection for good (a client bug or a newer socket exists).
    Stop,
}

/// One row of the close-code table: the code, when the gateway sends it, and
/// what the client does.
#[derive(Clone, Copy, Debug)]
pub struct CloseCodeRow {
    /// The code.
    pub code: CloseCode,
    /// When it is sent.
    pub sent_when: &'static str,
    /// What the client does, in words (the machine uses [`CloseCode::action`]).
    pub client_does: &'static str,
}

/// The table of SPEC §4, in order. The docs are generated from and tested against it.
pub const TABLE: &[CloseCodeRow] = &[
    CloseCodeRow {
        code: CloseCode::Completed,
        sent_when: "job completed, after `job_complete`",
        client_does: "done, never reconnect",
    },
    CloseCodeRow {
        code: CloseCode::Canceled,
        sent_when: "job canceled (no frame before it; the snapshot says `canceled`)",
        client_does: "done, never reconnect",
    },
    CloseCodeRow {
        code: CloseCode::Protocol,
        sent_when: "client broke the protocol",
        client_does: "don't reconnect (client bug), report",
    },
    CloseCodeRow {
        code: CloseCode::Unsupported,
        sent_when: "binary frame",
        client_does: "don't reconnect",
    },
    CloseCodeRow {
        code: CloseCode::Revoked,
        sent_when: "the job's tokens were revoked after upgrade, or the socket's token expired at the end of its session (`MAX_SESSION_MS`, default 24 h)",
        client_does: "get a new token from the app's backend; no blind retry",
    },
    CloseCodeRow {
        code: CloseCode::TooBig,
        sent_when: "frame too big (either way)",
        client_does: "don't reconnect the same request",
    },
    CloseCodeRow {
        code: CloseCode::InternalError,
        sent_when: "gateway internal error",
        client_does: "reconnect with backoff and resume",
    },
    CloseCodeRow {
        code: CloseCode::Restarting,
        sent_when: "room restarting / draining (deploy, eviction)",
        client_does: "reconnect after a short jittered delay and resume",
    },
    CloseCodeRow {
        code: CloseCode::TryAgainLater,
        sent_when: "rate limited / overloaded",
        client_does: "reconnect with backoff, honour `Retry-After` on the next 429",
    },
    CloseCodeRow {
        code: CloseCode::Abnormal,
        sent_when: "(never sent; what clients see when a deploy drops the socket)",
        client_does: "treat like 1012",
    },
    CloseCodeRow {
        code: CloseCode::Superseded,
        sent_when: "superseded: the same `clientId` connected again",
        client_does: "stop this socket, never reconnect it",
    },
    CloseCodeRow {
        code: CloseCode::JobFailed,
        sent_when: "job failed, after `error`",
        client_does: "done, show the failure, never reconnect",
    },
    CloseCodeRow {
        code: CloseCode::Idle,
        sent_when: "idle: no ping within 2 × the ping interval",
        client_does: "reconnect and resume",
    },
];

impl CloseCode {
    /// The number on the wire.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        match self {
            Self::Completed => 1000,
            Self::Canceled => 1001,
            Self::Protocol => 1002,
            Self::Unsupported => 1003,
            Self::Abnormal => 1006,
            Self::Revoked => 1008,
            Self::TooBig => 1009,
            Self::InternalError => 1011,
            Self::Restarting => 1012,
            Self::TryAgainLater => 1013,
            Self::Superseded => 4000,
            Self::JobFailed => 4001,
            Self::Idle => 4002,
            Self::Other(n) => n,
        }
    }

    /// What a subscriber must do after this close (SPEC §4). Codes the gateway
    /// never sends (`Other`) are treated as a dropped connection.
    #[must_use]
    pub const fn action(self) -> ClientAction {
        match self {
            Self::Completed | Self::Canceled | Self::JobFailed => ClientAction::Done,
            Self::Protocol | Self::Unsupported | Self::TooBig | Self::Superseded => {
                ClientAction::Stop
            }
            Self::Revoked => ClientAction::Reauthenticate,
            Self::InternalError => ClientAction::Reconnect {
                min_delay: Millis::from_secs(1),
            },
            Self::TryAgainLater => ClientAction::Reconnect {
                min_delay: Millis::from_secs(5),
            },
            Self::Restarting | Self::Abnormal | Self::Idle | Self::Other(_) => {
                ClientAction::Reconnect {
                    min_delay: Millis::ZERO,
                }
            }
        }
    }

    /// Whether the gateway ever sends this code itself.
    #[must_use]
    pub const fn is_sent_by_gateway(self) -> bool {
        !matches!(self, Self::Abnormal | Self::Other(_))
    }
}

impl From<u16> for CloseCode {
    fn from(n: u16) -> Self {
        match n {
            1000 => Self::Completed,
            1001 => Self::Canceled,
            1002 => Self::Protocol,
            1003 => Self::Unsupported,
            1006 => Self::Abnormal,
            1008 => Self::Revoked,
            1009 => Self::TooBig,
            1011 => Self::InternalError,
            1012 => Self::Restarting,
            1013 => Self::TryAgainLater,
            4000 => Self::Superseded,
            4001 => Self::JobFailed,
            4002 => Self::Idle,
            n => Self::Other(n),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> Self {
        c.as_u16()
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_round_trips() {
        for n in 0..=u16::MAX {
            assert_eq!(u16::from(CloseCode::from(n)), n);
        }
    }

    #[test]
    fn named_codes_are_not_other() {
        for row in TABLE {
            assert!(!matches!(row.code, CloseCode::Other(_)), "{:?}", row.code);
            assert_eq!(CloseCode::from(row.code.as_u16()), row.code);
        }
        assert_eq!(TABLE.len(), 13);
    }

    #[test]
    fn abnormal_is_treated_like_restarting() {
        assert_eq!(CloseCode::Abnormal.action(), CloseCode::Restarting.action());
    }

    #[test]
    fn terminal_codes_never_reconnect() {
        for c in [
            CloseCode::Completed,
            CloseCode::Canceled,
            CloseCode::JobFailed,
        ] {
            assert_eq!(c.action(), ClientAction::Done);
        }
        assert_eq!(CloseCode::Superseded.action(), ClientAction::Stop);
        assert_eq!(CloseCode::Revoked.action(), ClientAction::Reauthenticate);
    }
}
