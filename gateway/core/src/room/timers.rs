//! The alarm: named timers due at it, the idle sweep, the end of an
//! abandoned job, and re-arming.

use super::*;

/// The failure code a job gets when its producer sent nothing for the whole
/// retention period (it ends at the first step after it: [`expiry_step`]).
pub const JOB_EXPIRED: &str = "job_expired";
const JOB_EXPIRED_MESSAGE: &str =
    "the producer sent no event for the retention period (24 h by default); the job ended as failed: start a new job";

/// A 24th of the retention: one hour at the default 24 h. An abandoned job
/// ends at the first multiple of it (of the Unix epoch) after its retention,
/// so a producer without subscribers moves the alarm once a step, not with
/// every event; a shortened retention (the tests') keeps its precision.
fn expiry_step(retention: Millis) -> u64 {
    (retention.0 / 24).max(1)
}

/// `at`, or the next multiple of `step` after it.
fn round_up(at: Millis, step: u64) -> Millis {
    Millis(at.0.div_ceil(step).saturating_mul(step))
}

impl Room {
    pub(super) fn alarm(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let mut due = self
            .live
            .as_mut()
            .map(|l| l.timers.take_due(now))
            .unwrap_or_default();
        // The sweep's deadline moves with pings the room learns only now, and
        // a sweep stays armed after the last socket left (a room restored by
        // this alarm does not know it), so every alarm sweeps: the alarm may
        // have been set for it.
        if self.live.is_some() && !due.contains(&Timer::IdleSweep) {
            due.push(Timer::IdleSweep);
        }
        for timer in due {
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: TIMER_FIRED,
                socket: None,
                seq: None,
                close_code: None,
                value: Timer::ALL
                    .iter()
                    .position(|t| *t == timer)
                    .map(|i| i as u64),
            }));
            match timer {
                Timer::Cleanup => self.cleanup(now, out),
                Timer::TokenRefresh => self.refresh_token(now, random, out),
                Timer::IdleSweep => self.sweep(now, out),
                Timer::Notify => self.notify(now, out),
                Timer::TokenExpiry => self.close_expired(now, out),
            }
        }
    }

    /// Retention is over. An ended job is forgotten; a job still running
    /// was abandoned by its producer and ends as failed (`job_expired`), so
    /// apps show a result; it is forgotten one retention later.
    fn cleanup(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(job) = self.job_mut() else { return };
        if job.phase.status().is_terminal() {
            let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
            for id in ids {
                // Only sockets that never read their terminal close are left.
                self.close(id, CloseCode::Restarting, "job expired", out);
            }
            // Its timers and throttle go with it.
            self.live = None;
            out.push(Effect::Forget);
            out.push(log(Level::Info, "job_forgotten", None));
            return;
        }
        let (code, message) = (JOB_EXPIRED.to_owned(), JOB_EXPIRED_MESSAGE.to_owned());
        job.phase = Phase::Failed {
            code: code.clone(),
            message: message.clone(),
            at: now,
        };
        job.seq = job.seq.next();
        job.updated_at = now;
        queue_notify(job, CallbackEvent::Expired, now);
        let (header, seq) = (job.header(), job.seq);
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
        let frame = ServerMessage::Error {
            code,
            message,
            retryable: false,
        };
        self.broadcast(now, &header, &ids, Some(seq), &frame, out);
        for id in ids {
            self.close(id, CloseCode::JobFailed, "job expired", out);
        }
        out.push(Effect::MarkDelivered(seq));
        out.push(log(Level::Warn, "job_expired", None));
    }

    /// What the runtime knows of literal pings the room never saw.
    pub(super) fn learn_pings(&mut self, pings: &[(SocketId, Millis)]) {
        for (id, at) in pings {
            if let Some(s) = self.socket_mut(*id) {
                s.last_active = s.last_active.max(*at);
            }
        }
    }

    /// Closes (4002) every socket silent for more than 2 × the ping interval.
    pub(super) fn sweep(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let limit = Millis(self.config.ping_interval.0.saturating_mul(2));
        let idle: Vec<SocketId> = self
            .sockets()
            .iter()
            .filter(|(_, s)| now.minus(s.last_active) > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            let e = GatewayError::Idle;
            self.close(id, e.close_code(), &e.close_reason(), out);
        }
    }

    /// Recomputes every timer from state and moves the alarm if it changed.
    pub(super) fn rearm(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let config = self.config;
        if let Some(Live {
            record: job,
            sockets,
            timers,
            ..
        }) = &mut self.live
        {
            let live = !sockets.is_empty();
            let running = !job.phase.status().is_terminal();
            // Due a margin before the oldest token a live socket holds
            // expires (a socket may have connected with an older token
            // than the newest).
            let due = job.tokens.refresh_due_at(config.max_session).map(|at| {
                let newest = job.tokens.newest_expiry().unwrap_or(at);
                let oldest = sockets
                    .values()
                    .filter_map(|s| s.attachment.token_expires_at)
                    .min()
                    .map_or(newest, |o| o.min(newest));
                at.minus(newest.minus(oldest))
            });
            match due {
                Some(at) if live && running => {
                    timers.set(Timer::TokenRefresh, at.max(now));
                }
                _ => timers.clear(Timer::TokenRefresh),
            }
            // Normally refreshes keep every socket's token ahead of this;
            // once the session cannot be extended, it closes them.
            match sockets
                .values()
                .filter_map(|s| s.attachment.token_expires_at)
                .min()
            {
                Some(at) if live && running => timers.set(Timer::TokenExpiry, at),
                _ => timers.clear(Timer::TokenExpiry),
            }
            // A socket silent since `oldest` is idle after 2 intervals
            // and must be closed within one more: one wake per 2 to 3
            // intervals, not one per interval. A sweep already armed
            // earlier stays (an early sweep finds nothing and re-arms), and
            // so does one armed when the last socket left (the sweep of an
            // empty room clears it): a reconnect does not move the alarm.
            if let Some(oldest) = sockets.values().map(|s| s.last_active).min() {
                let within = Millis(config.ping_interval.0.saturating_mul(3));
                let at = oldest.plus(within);
                if timers.get(Timer::IdleSweep).is_none_or(|armed| armed > at) {
                    timers.set(Timer::IdleSweep, at);
                }
            }
            match &job.notify {
                Some(n) => timers.set(Timer::Notify, n.due),
                None => timers.clear(Timer::Notify),
            }
            // A running job expires at the first step after its retention:
            // the alarm moves once a step (an hour), not with every event.
            let cleanup = match job.phase.ended_at() {
                Some(ended) => ended.plus(config.retention),
                None => round_up(
                    job.updated_at.plus(config.retention),
                    expiry_step(config.retention),
                ),
            };
            timers.set(Timer::Cleanup, cleanup);
        }
        let next = self.live.as_ref().and_then(|l| l.timers.next());
        if next != self.alarm {
            self.alarm = next;
            out.push(Effect::SetAlarm(next));
        }
    }
}
