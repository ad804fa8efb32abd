//! The producer's side: creating the job, its events, cancel and revoke,
//! and the limits that keep one request and the stored record bounded.

use super::*;
use std::collections::HashMap;

/// Events one request may carry: as many as the room remembers ids of, so a
/// retried request is always recognised whole.
pub const MAX_EVENTS_PER_REQUEST: usize = REMEMBERED_EVENT_IDS;
/// `summary`: bytes of its JSON text as sent.
pub const MAX_SUMMARY_BYTES: usize = 128 * 1024;
/// `message` (of any event): UTF-8 bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// `currentItem`: UTF-8 bytes.
pub const MAX_CURRENT_ITEM_BYTES: usize = 4 * 1024;
/// `code` of a `failed` event: UTF-8 bytes.
pub const MAX_CODE_BYTES: usize = 128;
/// The job record as written (JSON bytes). The platform holds 2 MB per
/// value; the runtime stores a string with any non-Latin-1 character as
/// UTF-16 (two bytes a unit), so 512 KiB of JSON is at most 1 MiB stored.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;

impl Room {
    pub(super) fn create(
        &mut self,
        now: Millis,
        req: &CreateJob,
        job_id: String,
        token_random: [u8; 16],
        origin: &str,
        out: &mut Vec<Effect>,
    ) {
        if self.live.is_some() {
            out.push(Effect::Respond(
                HttpError::new(
                    409,
                    "job_exists",
                    "a job with this jobId exists; choose another jobId",
                )
                .into(),
            ));
            return;
        }
        let Some(key) = self.config.token_key else {
            return out.push(Effect::Respond(tokens::no_token_key().into()));
        };
        let mut tokens = TokenSet::new(req.ttl);
        let minter = Minter {
            key: &key,
            job_id: &job_id,
            max_session: self.config.max_session,
        };
        let (token, expires_at) = tokens.start_session(&minter, now, token_random);
        let job = JobRecord {
            job_id,
            pipeline: req.pipeline,
            phase: Phase::Pending,
            seq: Seq(0),
            delivered: Seq(0),
            processed_count: 0,
            total_count: req.total_count,
            current_item: None,
            message: None,
            created_at: now,
            updated_at: now,
            legacy_ended_at: None,
            tokens,
            applied: VecDeque::new(),
            remembered: 0,
            next_socket: 0,
            callback_url: req.callback_url.clone(),
            notify: None,
        };
        let ws_origin = origin
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let body = api::CreateJobResponse {
            expires_at: expires_at.0,
            job_id: job.job_id.clone(),
            state_url: format!("{origin}/api/job-state/{}", job.job_id),
            token: token.expose().to_owned(),
            ws_url: format!("{ws_origin}/ws/progress?jobId={}", job.job_id),
        };
        out.push(Effect::Persist(storage::write(&job, 0)));
        self.live = Some(Live::new(job, now));
        out.push(Effect::Respond(ok(202, &body)));
    }

    pub(super) fn events(&mut self, now: Millis, body: &[u8], out: &mut Vec<Effect>) {
        match self.apply_events(now, body, out) {
            Ok(seq) => out.push(Effect::Respond(ok(
                202,
                &api::EventsResponse { seq: seq.0 },
            ))),
            Err(e) => out.push(Effect::Respond(e.into())),
        }
    }

    /// Validates the whole body, then applies it: all or nothing. Answers
    /// the seq of the body's last event.
    fn apply_events(
        &mut self,
        now: Millis,
        body: &[u8],
        out: &mut Vec<Effect>,
    ) -> Result<Seq, HttpError> {
        let job = self.job_or_404()?;
        let events = protocol::parse_producer_body(body)?;
        if events.len() > MAX_EVENTS_PER_REQUEST {
            return Err(HttpError::new(
                413,
                "too_many_events",
                format!(
                    "{} events in one request; send at most {MAX_EVENTS_PER_REQUEST} per request",
                    events.len()
                ),
            ));
        }
        // Ids seen so far and the seq each was applied at: linear in the
        // body and the remembered ids.
        let mut seen: HashMap<&str, Seq> = job
            .applied
            .iter()
            .map(|(id, seq)| (id.as_str(), *seq))
            .collect();
        // A body whose events were all applied before is a retry (SPEC §3):
        // answered as the first time, also after the job ended.
        if let Some(seq) = events
            .iter()
            .map(|e| e.event_id.as_deref().and_then(|id| seen.get(id).copied()))
            .collect::<Option<Vec<Seq>>>()
            .and_then(|seqs| seqs.last().copied())
        {
            return Ok(seq);
        }
        let status = job.phase.status();
        if status.is_terminal() {
            return Err(HttpError::job_ended(status));
        }
        let mut next = job.clone();
        let header = next.header();
        let mut last_seq = next.seq;
        let mut fanout: Vec<(Seq, ServerMessage)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(seq) = e.event_id.as_deref().and_then(|id| seen.get(id)) {
                // A repeat (of an earlier request or within this one) is not
                // applied again, whatever it carries now.
                last_seq = *seq;
                continue;
            }
            if next.phase.status().is_terminal() {
                return Err(HttpError::new(
                    422,
                    "event_after_end",
                    format!("event {i} follows a terminal event in the same request; send nothing after complete or failed"),
                ));
            }
            check_bounds(i, &e.kind)?;
            let msg = apply(&mut next, i, &e.kind, now)?;
            next.seq = next.seq.next();
            next.updated_at = now;
            last_seq = next.seq;
            if let Some(id) = e.event_id.as_deref() {
                seen.insert(id, next.seq);
                let seq = next.seq;
                next.remember(id.to_owned(), seq);
            }
            fanout.push((next.seq, msg));
        }
        if fanout.is_empty() {
            return Ok(last_seq);
        }
        // Under `EveryRequest` this is the record as it will be written.
        next.delivered = next.delivered.max(self.seq_at_input);
        check_record_size(&next)?;
        let terminal = next.phase.terminal().map(|(_, code)| code);
        let seq = next.seq;
        if let Some(job) = self.job_mut() {
            *job = next;
        }
        self.persist_update(now, terminal.is_some(), out);
        let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
        for (seq, msg) in &fanout {
            self.broadcast(now, &header, &ids, Some(*seq), msg, out);
        }
        if let Some(code) = terminal {
            for id in ids {
                self.close(id, code, "job ended", out);
            }
        }
        // The fan-out is done: a wake need not catch the sockets up.
        out.push(Effect::MarkDelivered(seq));
        Ok(last_seq)
    }

    pub(super) fn cancel(&mut self, now: Millis, out: &mut Vec<Effect>) -> Result<(), HttpError> {
        let job = self.job_mut().ok_or_else(HttpError::job_not_found)?;
        let status = job.phase.status();
        if status.is_terminal() {
            return Err(HttpError::job_ended(status));
        }
        job.phase = Phase::Canceled { at: now };
        job.updated_at = now;
        queue_notify(job, CallbackEvent::Canceled, now);
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
        for id in ids {
            self.close(id, CloseCode::Canceled, "job canceled", out);
        }
        Ok(())
    }

    pub(super) fn revoke(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(job) = self.job_mut() else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        job.tokens.revoke_all();
        job.updated_at = now;
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
        for id in ids {
            let e = GatewayError::Revoked;
            self.close(id, e.close_code(), &e.close_reason(), out);
        }
        out.push(Effect::Respond(ok(
            202,
            &api::RevokeResponse { revoked: true },
        )));
    }
}

fn too_long(i: usize, field: &str, len: usize, max: usize) -> HttpError {
    HttpError::new(
        422,
        "field_too_long",
        format!("event {i}: {field} is {len} bytes, over the {max}-byte limit; send it shorter"),
    )
}

/// Each field within its own limit (SPEC §3 leaves them to the gateway).
fn check_bounds(i: usize, kind: &EventKind) -> Result<(), HttpError> {
    let check = |field: &str, value: Option<&str>, max: usize| match value {
        Some(v) if v.len() > max => Err(too_long(i, field, v.len(), max)),
        _ => Ok(()),
    };
    match kind {
        EventKind::Started { message, .. } => {
            check("message", message.as_deref(), MAX_MESSAGE_BYTES)
        }
        EventKind::Progress {
            current_item,
            message,
            ..
        } => {
            check(
                "currentItem",
                current_item.as_deref(),
                MAX_CURRENT_ITEM_BYTES,
            )?;
            check("message", message.as_deref(), MAX_MESSAGE_BYTES)
        }
        EventKind::Complete { summary } => check("summary", Some(summary), MAX_SUMMARY_BYTES),
        EventKind::Failed { code, message } => {
            check("code", Some(code), MAX_CODE_BYTES)?;
            check("message", Some(message), MAX_MESSAGE_BYTES)
        }
    }
}

/// The record must fit one storage write with room to spare; a request that
/// would outgrow it changes nothing.
fn check_record_size(job: &JobRecord) -> Result<(), HttpError> {
    let len = serde_json::to_vec(job).map_or(usize::MAX, |v| v.len());
    if len > MAX_RECORD_BYTES {
        return Err(HttpError::new(
            413,
            "job_state_too_large",
            format!(
                "the job's stored state would be {len} bytes, over the {MAX_RECORD_BYTES}-byte limit; send a shorter summary, message or currentItem"
            ),
        ));
    }
    Ok(())
}

/// Applies one event to the record and returns the frame it fans out.
fn apply(
    job: &mut JobRecord,
    i: usize,
    kind: &EventKind,
    now: Millis,
) -> Result<ServerMessage, HttpError> {
    Ok(match kind {
        EventKind::Started {
            total_count,
            message,
        } => {
            job.phase = Phase::Processing;
            if total_count.is_some() {
                job.total_count = *total_count;
            }
            job.message.clone_from(message);
            ServerMessage::JobStarted {
                total_count: job.total_count,
                message: message.clone(),
            }
        }
        EventKind::Progress {
            processed_count,
            total_count,
            current_item,
            message,
        } => {
            if *processed_count < job.processed_count {
                return Err(HttpError::new(
                    422,
                    "processed_count_decreased",
                    format!(
                        "event {i}: processedCount {processed_count} is below {}; it may not decrease",
                        job.processed_count
                    ),
                ));
            }
            job.phase = Phase::Processing;
            job.processed_count = *processed_count;
            if total_count.is_some() {
                job.total_count = *total_count;
            }
            job.current_item.clone_from(current_item);
            job.message.clone_from(message);
            ServerMessage::JobProgress {
                processed_count: *processed_count,
                total_count: job.total_count,
                current_item: current_item.clone(),
                message: message.clone(),
            }
        }
        EventKind::Complete { summary } => {
            job.phase = Phase::Completed {
                summary: summary.clone(),
                at: now,
            };
            ServerMessage::JobComplete {
                summary: summary.clone(),
            }
        }
        EventKind::Failed { code, message } => {
            job.phase = Phase::Failed {
                code: code.clone(),
                message: message.clone(),
                at: now,
            };
            ServerMessage::Error {
                code: code.clone(),
                message: message.clone(),
                retryable: false,
            }
        }
    })
}
