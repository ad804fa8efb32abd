//! Tokens: checking them, and handing out new ones (refresh timer, producer).

use super::*;

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

    /// A new token on the producer's request (e.g. after a revoke).
    pub(super) fn issue_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some((token, expires_at)) = self.hand_out_token(now, random, out) else {
            return out.push(Effect::Respond(HttpError::job_not_found().into()));
        };
        let job_id = self.job.as_ref().map(|j| j.job_id.clone());
        let body = serde_json::json!({
            "jobId": job_id,
            "token": token.expose(),
            "expiresAt": expires_at.0,
        });
        out.push(Effect::Respond(ok(202, &body)));
    }

    pub(super) fn refresh_token(&mut self, now: Millis, random: [u8; 16], out: &mut Vec<Effect>) {
        let Some(job) = self.job.as_ref() else { return };
        if job.tokens.issued.is_empty() || job.phase.status().is_terminal() {
            return; // revoked tokens stay revoked; ended jobs need no new ones
        }
        self.hand_out_token(now, random, out);
        out.push(log(Level::Info, "token_refreshed", None));
    }

    /// Issues a token, writes it (as a hash), and sends it to every live socket
    /// as `token_refresh`, so none is left holding only a dropped or expiring
    /// token. `None` if there is no job.
    pub(super) fn hand_out_token(
        &mut self,
        now: Millis,
        random: [u8; 16],
        out: &mut Vec<Effect>,
    ) -> Option<(Token, Millis)> {
        let job = self.job.as_mut()?;
        let (token, expires_at) = job.tokens.issue(now, random);
        let header = job.header();
        self.persist_update(now, true, out);
        let msg = ServerMessage::TokenRefresh {
            token: token.expose().to_owned(),
            expires_at,
        };
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        self.broadcast(now, &header, &ids, None, &msg, out);
        for (socket, sub) in &mut self.sockets {
            sub.attachment.token_expires_at = Some(expires_at);
            out.push(Effect::Attach {
                socket: *socket,
                attachment: sub.attachment.clone(),
            });
        }
        Some((token, expires_at))
    }
}
