//! Tokens: checking them, handing out new ones (refresh timer, producer),
//! and closing sockets whose session ended.

use super::*;
use crate::api::IssueTokenResponse;
use crate::token::{TooManyTokens, MAX_PRODUCER_TOKENS};

/// Why a socket whose token expired is closed (the app gets a new token
/// from its backend).
pub const SESSION_ENDED_REASON: &str = "token expired: get a new one from your backend";

/// The answer to a create or an issue in a room without a token key; the
/// edge refuses such requests first, so only a bug reaches this.
pub(super) fn no_token_key() -> HttpError {
    HttpError::new(
        500,
        "not_configured",
        "no token key: set PRODUCER_SECRET (or TOKEN_SECRET) with `wrangler secret put`, then redeploy",
    )
}

impl Room {
    pub(super) fn authorize(&self, token: &str, now: Millis) -> Result<(), HttpError> {
        let job = self.job_or_404()?;
        match job.tokens.verify(token, now) {
            Verdict::Valid(_) => Ok(()),
            Verdict::Invalid => Err(crate::http::bad_token()),
        }
    }

    /// A new token on the producer's request (e.g. after a revoke): valid
    /// until it expires or a revoke, and sent to nobody but the producer.
    pub(super) fn issue_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let (key, max_session) = (self.config.token_key, self.config.max_session);
        let Some(job) = self.job_mut() else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        let Some(key) = key else {
            return out.push(Effect::Respond(no_token_key().into()));
        };
        let minter = Minter {
            key: &key,
            job_id: &job.job_id,
            max_session,
        };
        let (token, expires_at) = match job.tokens.issue_for_producer(&minter, now, random) {
            Ok(issued) => issued,
            Err(TooManyTokens { slot_free_at }) => {
                let mut e = HttpError::new(
                    429,
                    "too_many_tokens",
                    format!(
                        "{MAX_PRODUCER_TOKENS} issued tokens of this job are still valid; \
                         reuse one, revoke them all, or retry when the first expires"
                    ),
                );
                e.retry_after = Some(slot_free_at.minus(now).ceil_secs().max(1));
                return out.push(Effect::Respond(e.into()));
            }
        };
        let body = IssueTokenResponse {
            job_id: job.job_id.clone(),
            token: token.expose().to_owned(),
            expires_at: expires_at.0,
        };
        self.persist_update(now, true, out);
        out.push(Effect::Respond(Response {
            status: 202,
            // Serializing strings and an integer cannot fail.
            body: serde_json::to_string(&body).unwrap_or_default(),
            retry_after: None,
        }));
    }

    pub(super) fn refresh_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some(job) = self.job() else { return };
        if job.tokens.is_empty() || job.phase.status().is_terminal() {
            return; // revoked tokens stay revoked; ended jobs need no new ones
        }
        if self.hand_out_token(now, random, out).is_some() {
            out.push(log(Level::Info, "token_refreshed", None));
        }
    }

    /// Issues the lineage's next token (within the session's bound), writes
    /// it (as a hash), and sends it to every live socket as `token_refresh`,
    /// so none is left holding only a dropped or expiring token. `None` if
    /// there is no job or the session cannot be extended.
    pub(super) fn hand_out_token(
        &mut self,
        now: Millis,
        random: [u8; 16],
        out: &mut Vec<Effect>,
    ) -> Option<(Token, Millis)> {
        let (key, max_session) = (self.config.token_key?, self.config.max_session);
        let job = self.job_mut()?;
        let minter = Minter {
            key: &key,
            job_id: &job.job_id,
            max_session,
        };
        let (token, expires_at) = job.tokens.refresh(&minter, now, random)?;
        let header = job.header();
        self.persist_update(now, true, out);
        let msg = ServerMessage::TokenRefresh {
            token: token.expose().to_owned(),
            expires_at,
        };
        // A socket holding a producer-issued token that outlives this one
        // keeps its own.
        let ids: Vec<SocketId> = self
            .sockets()
            .iter()
            .filter(|(_, s)| s.attachment.token_expires_at.is_none_or(|t| t < expires_at))
            .map(|(id, _)| *id)
            .collect();
        self.broadcast(now, &header, &ids, None, &msg, out);
        if let Some(live) = &mut self.live {
            for id in &ids {
                if let Some(sub) = live.sockets.get_mut(id) {
                    sub.attachment.token_expires_at = Some(expires_at);
                    out.push(Effect::Attach {
                        socket: *id,
                        attachment: sub.attachment.clone(),
                    });
                }
            }
        }
        Some((token, expires_at))
    }

    /// Closes (1008) every socket whose newest token has expired: its
    /// session reached the maximum length, so no refresh reached it.
    pub(super) fn close_expired(&mut self, now: Millis, out: &mut Vec<Effect>) {
        let expired: Vec<SocketId> = self
            .sockets()
            .iter()
            .filter(|(_, s)| s.attachment.token_expires_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.close(id, CloseCode::Revoked, SESSION_ENDED_REASON, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CreateJob, Pipeline};

    const T0: Millis = Millis(1_763_000_000_000);

    fn room_with_job() -> Room {
        let (room, fx) = create(RoomConfig::default());
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Respond(r) if r.status == 202)),
            "{fx:?}"
        );
        room
    }

    fn create(config: RoomConfig) -> (Room, Vec<Effect>) {
        let (mut room, _) = Room::restore(config, T0, Kept::default());
        let request = CreateJob {
            job_id: Some("job-1".into()),
            pipeline: Pipeline::CsvImport,
            total_count: Some(10),
            ttl: Millis::from_hours(2),
            callback_url: None,
        };
        let fx = room.handle(
            T0,
            Input::Create {
                request,
                job_id: "job-1".into(),
                token_random: [1; 16],
                origin: "http://127.0.0.1:8787".into(),
            },
        );
        (room, fx)
    }

    fn refreshed(room: &mut Room, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        room.refresh_token(now, [7; 16], &mut out);
        out
    }

    // The refresh timer is never armed for a revoked or ended job (`rearm`);
    // `refresh_token` refuses them on its own too, so a timer left armed by
    // some later change cannot hand a token to a revoked job.

    #[test]
    fn a_revoked_running_job_gets_no_new_token() {
        let mut room = room_with_job();
        room.handle(T0, Input::Revoke);
        assert!(room.job().is_some_and(|j| j.tokens.is_empty()));
        let fx = refreshed(&mut room, T0.plus(Millis::from_mins(115)));
        assert!(fx.is_empty(), "{fx:?}");
        assert!(room.job().is_some_and(|j| j.tokens.is_empty()));
    }

    #[test]
    fn an_ended_job_gets_no_new_token() {
        let mut room = room_with_job();
        let fx = room.handle(
            T0,
            Input::Events {
                body: br#"{"type":"complete"}"#.to_vec(),
            },
        );
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Respond(r) if r.status == 202)),
            "{fx:?}"
        );
        let before = room.job().and_then(|j| j.tokens.newest_expiry());
        let fx = refreshed(&mut room, T0.plus(Millis::from_mins(115)));
        assert!(fx.is_empty(), "{fx:?}");
        assert_eq!(room.job().and_then(|j| j.tokens.newest_expiry()), before);
    }

    #[test]
    fn a_running_job_gets_its_next_token() {
        // The two refusals above are not because a refresh never works here.
        let mut room = room_with_job();
        let fx = refreshed(&mut room, T0.plus(Millis::from_mins(115)));
        assert!(fx.iter().any(|e| matches!(e, Effect::Persist(_))), "{fx:?}");
        assert_eq!(
            room.job().and_then(|j| j.tokens.newest_expiry()),
            Some(T0.plus(Millis::from_mins(115)).plus(Millis::from_hours(2)))
        );
    }

    #[test]
    fn a_room_without_a_token_key_signs_nothing() {
        // What the Worker runs a room on while its vars are invalid.
        let (room, fx) = create(RoomConfig::unconfigured());
        let refused = fx.iter().find_map(|e| match e {
            Effect::Respond(r) => Some(r),
            _ => None,
        });
        assert!(
            refused.is_some_and(|r| r.status == 500 && r.body.contains("not_configured")),
            "{fx:?}"
        );
        assert!(room.job().is_none(), "no job without a key");
        // A room whose job was made under a key, woken without one: no
        // refresh, no issued token; its sockets keep the tokens they hold.
        let mut room = room_with_job();
        room.config.token_key = None;
        assert!(refreshed(&mut room, T0.plus(Millis::from_mins(115))).is_empty());
        let fx = room.handle(T0, Input::IssueToken { random: [3; 16] });
        assert!(
            matches!(fx.as_slice(), [Effect::Respond(r)] if r.status == 500),
            "{fx:?}"
        );
        let before = room.job().and_then(|j| j.tokens.newest_expiry());
        assert_eq!(before, Some(T0.plus(Millis::from_hours(2))));
    }
}
