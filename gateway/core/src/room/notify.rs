//! The producer's callback: queued with the cancel or expiry that causes
//! it, sent from the alarm (never in the way of the subscribers), retried
//! after [`RETRY_BACKOFF`], dropped after [`MAX_ATTEMPTS`].

use super::*;
use crate::callback::{CallbackBody, ATTEMPT_TIMEOUT, MAX_ATTEMPTS, RETRY_BACKOFF};

/// Queues a notification, due at once, if the job has a callback URL.
pub(super) fn queue_notify(job: &mut JobRecord, event: CallbackEvent, now: Millis) {
    if job.callback_url.is_some() {
        job.notify = Some(PendingNotify {
            event,
            at: now,
            attempts: 0,
            due: now,
        });
    }
}

/// The wait after failed attempt `attempt` (1-based), if another follows.
fn backoff_after(attempt: u32) -> Option<Millis> {
    usize::try_from(attempt)
        .ok()
        .and_then(|a| a.checked_sub(1))
        .and_then(|i| RETRY_BACKOFF.get(i).copied())
}

impl Room {
    /// The notify timer fired: start the next attempt, or drop the
    /// notification when every attempt was spent (the last one's answer was
    /// lost with the instance).
    pub(super) fn notify(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(job) = self.job_mut() else { return };
        let (Some(url), Some(n)) = (job.callback_url.clone(), job.notify.as_mut()) else {
            return;
        };
        if n.attempts >= MAX_ATTEMPTS {
            let attempts = n.attempts;
            job.notify = None;
            self.persist_update(now, true, out);
            out.push(callback_log(Level::Warn, "callback_dropped", attempts));
            return;
        }
        n.attempts += 1;
        let attempt = n.attempts;
        // Written before the attempt starts: if the instance is lost while
        // it runs, the retry is already due.
        n.due = now
            .plus(ATTEMPT_TIMEOUT)
            .plus(backoff_after(attempt).unwrap_or_default());
        let body = CallbackBody {
            job_id: job.job_id.clone(),
            event: n.event,
            at: n.at,
        }
        .to_json();
        self.persist_update(now, true, out);
        out.push(callback_log(Level::Info, "callback_attempt", attempt));
        out.push(Effect::Notify { url, body, attempt });
    }

    /// The adapter's answer to [`Effect::Notify`]. A stale answer (for an
    /// attempt that is no longer the latest) changes nothing.
    pub(super) fn notify_result(
        &mut self,
        now: Millis,
        attempt: u32,
        status: Option<u16>,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.job_mut() else { return };
        let Some(n) = job.notify.as_mut().filter(|n| n.attempts == attempt) else {
            return;
        };
        let status_value = u32::from(status.unwrap_or(0));
        if status.is_some_and(|s| (200..300).contains(&s)) {
            job.notify = None;
            out.push(callback_log(
                Level::Info,
                "callback_delivered",
                status_value,
            ));
        } else {
            out.push(callback_log(Level::Warn, "callback_failed", status_value));
            // No step after the last attempt (`MAX_ATTEMPTS` is one more than
            // the steps).
            match backoff_after(attempt) {
                Some(wait) => n.due = now.plus(wait),
                None => {
                    job.notify = None;
                    out.push(callback_log(Level::Warn, "callback_dropped", attempt));
                }
            }
        }
        self.persist_update(now, true, out);
    }
}

fn callback_log(level: Level, event: &'static str, value: u32) -> Effect {
    Effect::Log(Log {
        level,
        event,
        socket: None,
        seq: None,
        close_code: None,
        value: Some(u64::from(value)),
    })
}
