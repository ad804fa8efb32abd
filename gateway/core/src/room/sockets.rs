//! Subscriber sockets: upgrade, accept, catch-up and the frames they send.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Subscriber {
    pub(super) attachment: Attachment,
    /// The last sign of life the room knows of: its accept, its last frame,
    /// or its last auto-answered ping as the runtime reported it.
    pub(super) last_active: Millis,
    /// Arrival times of recent frames, for the rate limit.
    pub(super) recent: VecDeque<Millis>,
}

/// An upgrade the room said yes to, waiting for the runtime's accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PendingAccept {
    pub(super) attachment: Attachment,
    pub(super) last_seq: Option<Seq>,
}

impl Room {
    pub(super) fn upgrade(
        &mut self,
        now: Millis,
        up: Upgrade,
        pings: &[(SocketId, Millis)],
        out: &mut Vec<Effect>,
    ) {
        let refuse = |out: &mut Vec<Effect>, e: HttpError| {
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: "upgrade_refused",
                socket: None,
                seq: None,
                close_code: None,
                value: Some(u64::from(e.status)),
            }));
            out.push(Effect::Respond(e.into()));
        };
        let Some(job) = self.job() else {
            return refuse(out, HttpError::job_not_found());
        };
        let Verdict::Valid(token_expires_at) = job.tokens.verify(&up.token, now) else {
            return refuse(out, crate::http::bad_token());
        };
        self.learn_pings(pings);
        if self.others(up.client_id.as_deref()) >= self.config.max_sockets {
            // Zombies must not hold the last slots: sweep before refusing.
            self.sweep(now, out);
        }
        let others = self.others(up.client_id.as_deref());
        if others >= self.config.max_sockets {
            let mut e = HttpError::new(
                429,
                "too_many_sockets",
                format!("this job already has {others} sockets; retry later or close one"),
            );
            e.retry_after = Some(self.config.retry_after.ceil_secs());
            return refuse(out, e);
        }
        let Some(job) = self.job_mut() else { return };
        // Ids grow with the clock as well as the counter, so a room restored from
        // a record older than its last accept never hands out a live id again.
        let socket = SocketId(job.next_socket.max(now.0.saturating_mul(SOCKET_IDS_PER_MS)));
        job.next_socket = socket.0.saturating_add(1);
        let attachment = Attachment {
            socket,
            client_id: up.client_id,
            connected_at: now,
            last_frame: None,
            token_expires_at: Some(token_expires_at),
        };
        // Nothing changes (no supersede, no slot taken) until the runtime
        // has accepted the socket.
        self.pending = Some(PendingAccept {
            attachment: attachment.clone(),
            last_seq: up.last_seq,
        });
        out.push(Effect::Accept { socket, attachment });
    }

    /// Sockets that count against the cap for a new socket of `client_id`
    /// (its own older socket is about to be replaced).
    pub(super) fn others(&self, client_id: Option<&str>) -> usize {
        self.sockets().len() - usize::from(self.socket_of(client_id).is_some())
    }

    pub(super) fn socket_of(&self, client_id: Option<&str>) -> Option<SocketId> {
        let cid = client_id?;
        self.sockets()
            .iter()
            .find(|(_, s)| s.attachment.client_id.as_deref() == Some(cid))
            .map(|(id, _)| *id)
    }

    /// The runtime accepted the socket: now it replaces the older socket of
    /// its `clientId` and gets its catch-up.
    pub(super) fn accepted(&mut self, now: Millis, socket: SocketId, out: &mut Vec<Effect>) {
        let Some(pending) = self.pending.take_if(|p| p.attachment.socket == socket) else {
            // Not an accept this room asked for.
            return out.push(close(socket, &GatewayError::Internal));
        };
        if self.live.is_none() {
            return out.push(close(socket, &GatewayError::Internal));
        }
        if let Some(old) = self.socket_of(pending.attachment.client_id.as_deref()) {
            self.remove_socket(old);
            let (code, reason) = match self.config.supersede {
                SupersedePolicy::Spec => (
                    GatewayError::Superseded.close_code(),
                    GatewayError::Superseded.close_reason(),
                ),
                SupersedePolicy::SeedClose1000 => {
                    (CloseCode::Completed, "Client reconnecting".to_owned())
                }
            };
            out.push(Effect::Log(Log {
                level: Level::Info,
                event: "socket_superseded",
                socket: Some(old),
                seq: None,
                close_code: Some(code),
                value: Some(socket.0),
            }));
            out.push(Effect::Close {
                socket: old,
                code,
                reason,
            });
        }
        // No log line here: the adapter logs the upgrade once, with its
        // socket and timings (`upgrade_timing`).
        if let Some(live) = &mut self.live {
            live.sockets.insert(
                socket,
                Subscriber {
                    attachment: pending.attachment,
                    last_active: now,
                    recent: VecDeque::new(),
                },
            );
        }
        self.catch_up(now, socket, pending.last_seq, out);
    }

    /// The first frames of a socket (SPEC §2): snapshot, then the end if any.
    pub(super) fn catch_up(
        &mut self,
        now: Millis,
        socket: SocketId,
        last_seq: Option<Seq>,
        out: &mut Vec<Effect>,
    ) {
        let Some(job) = self.job() else { return };
        let header = job.header();
        let snapshot = ServerMessage::Snapshot {
            resumed: last_seq.is_some(),
            recovered: last_seq.is_some_and(|l| l <= job.seq),
            state: job.snapshot(),
        };
        let snapshot_seq = job.snapshot_seq();
        let seq = job.seq;
        let phase = job.phase.clone();
        self.send(now, &header, socket, Some(snapshot_seq), &snapshot, out);
        if let Some((msg, code)) = phase.terminal() {
            self.send(now, &header, socket, Some(seq), &msg, out);
            self.close(socket, code, "job ended", out);
        } else if matches!(phase, Phase::Canceled { .. }) {
            self.close(socket, CloseCode::Canceled, "job canceled", out);
        }
    }

    pub(super) fn frame(
        &mut self,
        now: Millis,
        socket: SocketId,
        frame: &WireFrame,
        out: &mut Vec<Effect>,
    ) {
        let window = self.config.rate_window;
        let limit = self.config.rate_limit;
        let Some(sub) = self.socket_mut(socket) else {
            return;
        };
        sub.last_active = now;
        // Kept with the socket, so a hibernated room still knows it.
        sub.attachment.last_frame = Some(now);
        out.push(Effect::Attach {
            socket,
            attachment: sub.attachment.clone(),
        });
        sub.recent.push_back(now);
        while sub.recent.front().is_some_and(|&t| now.minus(t) >= window) {
            sub.recent.pop_front();
        }
        if sub.recent.len() > limit {
            let e = GatewayError::from(crate::FrameError::RateLimited);
            return self.close(socket, e.close_code(), &e.close_reason(), out);
        }
        let parsed = protocol::parse_client_frame(match frame {
            WireFrame::Text(t) => Incoming::Text(t),
            WireFrame::Binary(n) => Incoming::Binary(*n),
        });
        let Some(header) = self.job().map(JobRecord::header) else {
            return self.close(socket, CloseCode::InternalError, "job not found", out);
        };
        match parsed {
            Err(e) => {
                let e = GatewayError::from(e);
                self.close(socket, e.close_code(), &e.close_reason(), out);
            }
            Ok(ClientMessage::Ping) => {
                self.send(now, &header, socket, None, &ServerMessage::Pong, out);
            }
            Ok(ClientMessage::Cancel) => {
                // A socket only lives while the job runs, so this cannot be refused.
                let _ = self.cancel(now, out);
            }
            Ok(ClientMessage::Unknown { type_name }) => {
                let msg = ServerMessage::Error {
                    code: "unknown_type".into(),
                    message: format!("unknown message type {type_name:?}; this socket stays open"),
                    retryable: false,
                };
                self.send(now, &header, socket, None, &msg, out);
            }
        }
    }
}
