//! The properties of SPEC §7 as plain functions over what was observed, so the
//! scenario tests, the property tests, the fuzz targets and the model check
//! exactly the same thing.

use gateway_core::protocol::{JobStatus, Seq, ServerFrame, ServerMessage};
use gateway_core::room::Room;
use gateway_core::{CloseCode, Millis};
use std::collections::BTreeMap;

/// The invariants, numbered as in SPEC §7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// 1: a subscriber's `seq` and `processedCount` never go backwards.
    Monotonic,
    /// 2: no `job_progress` after `job_complete`.
    NothingAfterComplete,
    /// 3: 1000 only after `job_complete`, 1001 only after cancel, 4001 only after `error`.
    CloseCodeJustified,
    /// 4: a superseded socket is never closed with 1000.
    SupersededNot1000,
    /// 5: at most one live socket per `clientId`.
    OneSocketPerClient,
    /// 6: persisted `seq` never decreases and no acknowledged event is lost.
    Durable,
    /// 7: once the job is terminal and the network heals, every subscriber
    /// that keeps trying finishes (liveness; checked by the model).
    EventuallyFinished,
    /// 8: a subscriber that stayed connected never holds only expired
    /// tokens, until its session reaches the maximum length.
    FreshToken,
    /// 9: a socket that has sent nothing (not even a literal ping) for 2 × the
    /// ping interval is closed with 4002 within one more interval.
    IdleClosed,
    /// 10: a timer that is due fires, whether the room was warm or hibernated.
    TimerFires,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Self; 10] = [
        Self::Monotonic,
        Self::NothingAfterComplete,
        Self::CloseCodeJustified,
        Self::SupersededNot1000,
        Self::OneSocketPerClient,
        Self::Durable,
        Self::EventuallyFinished,
        Self::FreshToken,
        Self::IdleClosed,
        Self::TimerFires,
    ];

    /// A short name for reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Monotonic => "1 seq and processedCount never go backwards",
            Self::NothingAfterComplete => "2 no job_progress after job_complete",
            Self::CloseCodeJustified => "3 1000/1001/4001 only after complete/cancel/error",
            Self::SupersededNot1000 => "4 a superseded socket is never closed with 1000",
            Self::OneSocketPerClient => "5 at most one live socket per clientId",
            Self::Durable => "6 persisted seq never decreases, no acked event lost",
            Self::EventuallyFinished => "7 every subscriber that keeps trying finishes",
            Self::FreshToken => "8 a connected subscriber holds an unexpired token",
            Self::IdleClosed => {
                "9 a socket silent for 2 ping intervals is closed 4002 within one more"
            }
            Self::TimerFires => "10 a due timer fires, warm or hibernated",
        }
    }
}

/// A broken invariant and what broke it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Which one.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {} violated: {}",
            self.invariant.name(),
            self.detail
        )
    }
}

fn fail(invariant: Invariant, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// What one subscriber socket saw, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocketLog {
    /// Frames received.
    pub frames: Vec<ServerFrame>,
    /// How it closed, if it did.
    pub close: Option<CloseCode>,
    /// A newer socket of the same `clientId` was accepted while this one lived.
    pub superseded: bool,
    /// The job had been canceled when this socket was closed.
    pub canceled_before_close: bool,
}

/// Running state of invariants 1 and 2 for one subscriber across all its sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubscriberWatch {
    /// Highest seq seen.
    pub seq: Option<Seq>,
    /// Highest processedCount seen.
    pub processed: u64,
    /// `job_complete` seen.
    pub completed: bool,
}

impl SubscriberWatch {
    /// Checks one more frame a subscriber received (invariants 1 and 2).
    pub fn observe(&mut self, frame: &ServerFrame) -> Result<(), Violation> {
        if let (Some(new), Some(old)) = (frame.seq, self.seq) {
            if new < old {
                return fail(
                    Invariant::Monotonic,
                    format!("seq went from {} to {}", old.0, new.0),
                );
            }
        }
        let processed = match &frame.message {
            ServerMessage::JobProgress {
                processed_count, ..
            } => Some(*processed_count),
            ServerMessage::Snapshot { state, .. } => Some(state.processed_count),
            _ => None,
        };
        if let Some(p) = processed {
            if p < self.processed {
                return fail(
                    Invariant::Monotonic,
                    format!("processedCount went from {} to {p}", self.processed),
                );
            }
            self.processed = p;
        }
        if self.completed && matches!(frame.message, ServerMessage::JobProgress { .. }) {
            return fail(
                Invariant::NothingAfterComplete,
                "job_progress after job_complete".into(),
            );
        }
        if matches!(frame.message, ServerMessage::JobComplete { .. }) {
            self.completed = true;
        }
        if let Some(s) = frame.seq {
            self.seq = Some(self.seq.map_or(s, |o| o.max(s)));
        }
        Ok(())
    }
}

/// Invariants 1 and 2 over everything one subscriber received, in order.
pub fn check_subscriber<'a>(
    frames: impl IntoIterator<Item = &'a ServerFrame>,
) -> Result<(), Violation> {
    let mut w = SubscriberWatch::default();
    frames.into_iter().try_for_each(|f| w.observe(f))
}

/// Invariants 3 and 4 for one closed socket.
pub fn check_close(log: &SocketLog) -> Result<(), Violation> {
    let Some(code) = log.close else { return Ok(()) };
    let got = |pred: fn(&ServerMessage, Option<Seq>) -> bool| {
        log.frames.iter().any(|f| pred(&f.message, f.seq))
    };
    if log.superseded && code == CloseCode::Completed {
        return fail(
            Invariant::SupersededNot1000,
            "a replaced socket was told 1000 (job done)".into(),
        );
    }
    match code {
        CloseCode::Completed if !got(|m, _| matches!(m, ServerMessage::JobComplete { .. })) => {
            fail(
                Invariant::CloseCodeJustified,
                "closed 1000 without job_complete".into(),
            )
        }
        CloseCode::Canceled if !log.canceled_before_close => fail(
            Invariant::CloseCodeJustified,
            "closed 1001 but the job was not canceled".into(),
        ),
        CloseCode::JobFailed
            if !got(|m, s| matches!(m, ServerMessage::Error { .. }) && s.is_some()) =>
        {
            fail(
                Invariant::CloseCodeJustified,
                "closed 4001 without a job error".into(),
            )
        }
        _ => Ok(()),
    }
}

/// Invariant 5 on the room's live sockets.
pub fn check_one_socket_per_client(room: &Room) -> Result<(), Violation> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, cid) in room.live_sockets() {
        if let Some(c) = cid {
            let n = seen.entry(c).or_default();
            *n += 1;
            if *n > 1 {
                return fail(
                    Invariant::OneSocketPerClient,
                    format!("clientId {c:?} has {n} live sockets"),
                );
            }
        }
    }
    Ok(())
}

/// Invariant 6: a new write may not lower the persisted seq, and must hold
/// every event a producer was acknowledged for.
pub fn check_persist(previous: Option<Seq>, written: Seq, acked: Seq) -> Result<(), Violation> {
    if let Some(p) = previous {
        if written < p {
            return fail(
                Invariant::Durable,
                format!("persisted seq went from {} to {}", p.0, written.0),
            );
        }
    }
    check_acked_durable(written, acked)
}

/// Invariant 6 after a restart: the restored seq covers every acknowledged event.
pub fn check_acked_durable(restored: Seq, acked: Seq) -> Result<(), Violation> {
    if restored < acked {
        return fail(
            Invariant::Durable,
            format!(
                "producer was acknowledged seq {} but storage holds {}",
                acked.0, restored.0
            ),
        );
    }
    Ok(())
}

/// Invariant 8 for a connected subscriber. A token that expires at the end
/// of its session (`session_end`: no refresh may go past it) is exempt: the
/// room closes such a socket (1008) when it expires, and the close is on its way.
pub fn check_fresh_token(
    connected: bool,
    token_expires_at: Option<Millis>,
    session_end: Option<Millis>,
    now: Millis,
) -> Result<(), Violation> {
    match token_expires_at {
        Some(exp) if connected && exp <= now && session_end.is_none_or(|end| exp < end) => fail(
            Invariant::FreshToken,
            format!("connected subscriber's newest token expired at {exp} (now {now})"),
        ),
        _ => Ok(()),
    }
}

/// Whether a status ends the job (for invariant 7's precondition).
#[must_use]
pub const fn is_terminal(status: JobStatus) -> bool {
    status.is_terminal()
}
