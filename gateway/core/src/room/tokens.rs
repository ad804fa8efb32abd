//! Tokens: checking them, and handing out new ones (refresh timer, producer).

use super::*;
use crate::token::{TooManyTokens, MAX_PRODUCER_TOKENS};

impl Room {
    pub(super) fn authorize(&self, token: &str, now: Millis) -> Result<(), HttpError> {
        let job = self.job_or_404()?;
        match job.tokens.verify(token, now) {
            Verdict::Valid(_) => Ok(()),
            Verdict::Invalid => Err(HttpError::unauthorized(
                "token is wrong, revoked or expired; get a new one from your backend",
            )),
        }
    }

    /// A new token on the producer's request (e.g. after a revoke): valid
    /// until it expires or a revoke, and sent to nobody but the producer.
    pub(super) fn issue_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some(job) = self.job_mut() else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        let (token, expires_at) = match job.tokens.issue_for_producer(now, random) {
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
        let body = serde_json::json!({
            "jobId": job.job_id,
            "token": token.expose(),
            "expiresAt": expires_at.0,
        });
        self.persist_update(now, true, out);
        out.push(Effect::Respond(ok(202, &body)));
    }

    pub(super) fn refresh_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some(job) = self.job() else { return };
        if job.tokens.is_empty() || job.phase.status().is_terminal() {
            return; // revoked tokens stay revoked; ended jobs need no new ones
        }
        self.hand_out_token(now, random, out);
        out.push(log(Level::Info, "token_refreshed", None));
    }

    /// Issues the lineage's next token, writes it (as a hash), and sends it to
    /// every live socket as `token_refresh`, so none is left holding only a
    /// dropped or expiring token. `None` if there is no job.
    pub(super) fn hand_out_token(
        &mut self,
        now: Millis,
        random: [u8; 16],
        out: &mut Vec<Effect>,
    ) -> Option<(Token, Millis)> {
        let job = self.job_mut()?;
        let (token, expires_at) = job.tokens.issue(now, random);
        let header = job.header();
        self.persist_update(now, true, out);
        let msg = ServerMessage::TokenRefresh {
            token: token.expose().to_owned(),
            expires_at,
        };
        let ids: Vec<SocketId> = self.sockets().keys().copied().collect();
        self.broadcast(now, &header, &ids, None, &msg, out);
        if let Some(live) = &mut self.live {
            for (socket, sub) in &mut live.sockets {
                sub.attachment.token_expires_at = Some(expires_at);
                out.push(Effect::Attach {
                    socket: *socket,
                    attachment: sub.attachment.clone(),
                });
            }
        }
        Some((token, expires_at))
    }
}
