//! The producer's side: creating the job, its events, cancel and revoke.

use super::*;

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
        if self.job.is_some() {
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
        let mut tokens = TokenSet::new(req.ttl);
        let (token, expires_at) = tokens.issue(now, token_random);
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
            next_socket: 0,
        };
        let ws_origin = origin
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let body = serde_json::json!({
            "jobId": job.job_id,
            "token": token.expose(),
            "expiresAt": expires_at.0,
            "wsUrl": format!("{ws_origin}/ws/progress?jobId={}", job.job_id),
            "stateUrl": format!("{origin}/api/job-state/{}", job.job_id),
        });
        self.persist_now(now, &job, out);
        self.job = Some(job);
        out.push(Effect::Respond(ok(202, &body)));
    }

    pub(super) fn events(&mut self, now: Millis, body: &[u8], out: &mut Vec<Effect>) {
        let job = match self.job_or_404() {
            Ok(j) => j,
            Err(e) => return out.push(Effect::Respond(e.into())),
        };
        if job.phase.status().is_terminal() {
            return out.push(Effect::Respond(HttpError::job_ended().into()));
        }
        let events = match protocol::parse_producer_body(body) {
            Ok(e) => e,
            Err(e) => return out.push(Effect::Respond(e.into())),
        };
        // Validate the whole batch before applying any of it.
        let mut processed = job.processed_count;
        let mut ended = false;
        let mut batch_ids: Vec<&str> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(id) = e.event_id.as_deref() {
                if batch_ids.contains(&id) || job.applied.iter().any(|(a, _)| a == id) {
                    continue;
                }
                batch_ids.push(id);
            }
            if ended {
                return out.push(Effect::Respond(
                    HttpError::new(
                        422,
                        "event_after_end",
                        format!("event {i} follows a terminal event in the same request"),
                    )
                    .into(),
                ));
            }
            if let EventKind::Progress {
                processed_count, ..
            } = e.kind
            {
                if processed_count < processed {
                    return out.push(Effect::Respond(
                        HttpError::new(
                            422,
                            "processed_count_decreased",
                            format!("event {i}: processedCount {processed_count} is below {processed}; it may not decrease"),
                        )
                        .into(),
                    ));
                }
                processed = processed_count;
            }
            ended |= e.kind.is_terminal();
        }
        let Some(job) = self.job.as_mut() else { return };
        let header = job.header();
        let mut last_seq = job.seq;
        let mut fanout: Vec<(Seq, ServerMessage)> = Vec::new();
        for e in events {
            if let Some(id) = e.event_id.as_deref() {
                if let Some((_, s)) = job.applied.iter().find(|(a, _)| a == id) {
                    last_seq = *s;
                    continue;
                }
            }
            job.seq = job.seq.next();
            last_seq = job.seq;
            let msg = match e.kind {
                EventKind::Started {
                    total_count,
                    message,
                } => {
                    job.phase = Phase::Processing;
                    if total_count.is_some() {
                        job.total_count = total_count;
                    }
                    job.message.clone_from(&message);
                    ServerMessage::JobStarted {
                        total_count: job.total_count,
                        message,
                    }
                }
                EventKind::Progress {
                    processed_count,
                    total_count,
                    current_item,
                    message,
                } => {
                    job.phase = Phase::Processing;
                    job.processed_count = processed_count;
                    if total_count.is_some() {
                        job.total_count = total_count;
                    }
                    job.current_item.clone_from(&current_item);
                    job.message.clone_from(&message);
                    ServerMessage::JobProgress {
                        processed_count,
                        total_count: job.total_count,
                        current_item,
                        message,
                    }
                }
                EventKind::Complete { summary } => {
                    job.phase = Phase::Completed {
                        summary: summary.clone(),
                        at: now,
                    };
                    ServerMessage::JobComplete { summary }
                }
                EventKind::Failed { code, message } => {
                    job.phase = Phase::Failed {
                        code: code.clone(),
                        message: message.clone(),
                        at: now,
                    };
                    ServerMessage::Error {
                        code,
                        message,
                        retryable: false,
                    }
                }
            };
            if let Some(id) = e.event_id {
                job.applied.push_back((id, job.seq));
                while job.applied.len() > REMEMBERED_EVENT_IDS {
                    job.applied.pop_front();
                }
            }
            job.updated_at = now;
            fanout.push((job.seq, msg));
        }
        let terminal = job.phase.terminal().map(|(_, code)| code);
        let seq = job.seq;
        if !fanout.is_empty() {
            self.persist_update(now, terminal.is_some(), out);
        }
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for (seq, msg) in &fanout {
            self.broadcast(now, &header, &ids, Some(*seq), msg, out);
        }
        if let Some(code) = terminal {
            for id in ids {
                self.close(id, code, "job ended", out);
            }
        }
        if !fanout.is_empty() {
            // The fan-out is done: a wake need not catch the sockets up.
            out.push(Effect::MarkDelivered(seq));
        }
        out.push(Effect::Respond(ok(
            202,
            &serde_json::json!({ "seq": last_seq.0 }),
        )));
    }

    pub(super) fn cancel(&mut self, now: Millis, out: &mut Vec<Effect>) -> Result<(), HttpError> {
        let job = self.job.as_mut().ok_or_else(HttpError::job_not_found)?;
        if job.phase.status().is_terminal() {
            return Err(HttpError::job_ended());
        }
        job.phase = Phase::Canceled { at: now };
        job.updated_at = now;
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for id in ids {
            self.close(id, CloseCode::Canceled, "job canceled", out);
        }
        Ok(())
    }

    pub(super) fn revoke(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let Some(job) = self.job.as_mut() else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        job.tokens.revoke_all();
        job.updated_at = now;
        self.persist_update(now, true, out);
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        for id in ids {
            let e = GatewayError::Revoked;
            self.close(id, e.close_code(), &e.close_reason(), out);
        }
        out.push(Effect::Respond(ok(
            202,
            &serde_json::json!({ "revoked": true }),
        )));
    }
}
