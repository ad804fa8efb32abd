//! Subscriber tokens: self-authenticating strings the edge checks before a
//! job's room is touched, stored by the room only as SHA-256 (for revocation
//! and the refresh lineage), compared in constant time.
//!
//! A token is `v1.<expiresAt>.<sessionStart>.<nonce>.<mac>`: Unix ms in
//! canonical decimal, 16 random bytes and `HMAC-SHA256(key, "v1|" jobId "|"
//! expiresAt "|" sessionStart "|" nonce)` in lower-case hex; at most
//! [`MAX_TOKEN_LEN`] characters of `[0-9a-z.]`. The refresh lineage (the
//! creation token and in-band refreshes) keeps at most two (the newest and the
//! one it replaced) and never extends past its session's start plus the
//! maximum session length; tokens the producer asks for stand apart, each
//! valid until it expires or a revoke.

use crate::Millis;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Refresh when less than this (or half the lifetime, if shorter) is left.
pub const REFRESH_MARGIN: Millis = Millis::from_mins(10);

/// Most producer-issued tokens valid at once; each lives until it expires
/// or a revoke, so the bound keeps the record (and every check) small.
pub const MAX_PRODUCER_TOKENS: usize = 16;

/// The token format's version prefix.
const VERSION: &str = "v1";
/// Longest token text: `v1`, two 20-digit times, 32 + 64 hex digits, four dots.
pub const MAX_TOKEN_LEN: usize = 2 + 20 + 20 + 32 + 64 + 4;
/// Default longest session (`MAX_SESSION_MS`): 24 h.
pub const DEFAULT_MAX_SESSION: Millis = Millis::from_hours(24);

/// A key that signs and checks tokens. `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// A fixed key for tests, the simulation and the model; never deployed
    /// (the Worker always derives its key from a secret).
    pub const TEST: Self = Self([0x5a; 32]);

    /// The key derived from a secret under a label, so one secret string
    /// used for two purposes gives two unrelated keys.
    #[must_use]
    pub fn derive(label: &str, secret: &str) -> Self {
        Self(hmac_sha256(secret.as_bytes(), label.as_bytes()))
    }

    fn mac(
        &self,
        job_id: &str,
        expires_at: Millis,
        session_start: Millis,
        nonce: &str,
    ) -> [u8; 32] {
        let msg = format!(
            "{VERSION}|{job_id}|{}|{}|{nonce}",
            expires_at.0, session_start.0
        );
        hmac_sha256(&self.0, msg.as_bytes())
    }

    /// Signs a token for `job_id`.
    #[must_use]
    pub fn mint(
        &self,
        job_id: &str,
        expires_at: Millis,
        session_start: Millis,
        random: [u8; 16],
    ) -> Token {
        let nonce = hex::encode(random);
        let mac = hex::encode(self.mac(job_id, expires_at, session_start, &nonce));
        Token(format!(
            "{VERSION}.{}.{}.{nonce}.{mac}",
            expires_at.0, session_start.0
        ))
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The keys the edge checks tokens with: the current one (which also signs)
/// and, during a rotation, the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenKeys {
    /// Signs and checks.
    pub current: TokenKey,
    /// Checks only (`TOKEN_SECRET_PREVIOUS`).
    pub previous: Option<TokenKey>,
}

/// What a valid token says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claims {
    /// When it stops being valid.
    pub expires_at: Millis,
    /// When the session it belongs to began.
    pub session_start: Millis,
}

/// A token the edge refuses: malformed, signed by no key it knows, for
/// another job, or expired. Deliberately one case, so no answer tells which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadToken;

impl TokenKeys {
    /// Checks a presented token's MAC (against both keys, in constant time)
    /// and expiry: valid while `now < expiresAt`.
    ///
    /// # Errors
    /// [`BadToken`] for any failure.
    pub fn verify(&self, token: &str, job_id: &str, now: Millis) -> Result<Claims, BadToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(BadToken);
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(exp), Some(start), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(BadToken);
        };
        let (expires_at, session_start) = (decimal(exp)?, decimal(start)?);
        if nonce.len() != 32 || !is_lower_hex(nonce) || !is_lower_hex(mac) {
            return Err(BadToken);
        }
        let mut presented = [0u8; 32];
        hex::decode_to_slice(mac, &mut presented).map_err(|_| BadToken)?;
        let current = self.current.mac(job_id, expires_at, session_start, nonce);
        let previous = self.previous.map_or([0xff; 32], |k| {
            k.mac(job_id, expires_at, session_start, nonce)
        });
        let known = presented.ct_eq(&current)
            | (presented.ct_eq(&previous)
                & subtle::Choice::from(u8::from(self.previous.is_some())));
        if bool::from(known) && now < expires_at {
            Ok(Claims {
                expires_at,
                session_start,
            })
        } else {
            Err(BadToken)
        }
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Canonical decimal: digits, no leading zero (except `0`), fits a u64.
fn decimal(s: &str) -> Result<Millis, BadToken> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(BadToken);
    }
    s.parse().map(Millis).map_err(|_| BadToken)
}

/// How a room signs its tokens: the key, the job and the session bound.
#[derive(Clone, Copy, Debug)]
pub struct Minter<'a> {
    /// The signing key.
    pub key: &'a TokenKey,
    /// The job the tokens are for.
    pub job_id: &'a str,
    /// The longest session (`MAX_SESSION_MS`).
    pub max_session: Millis,
}

/// A token as the subscriber holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// The token text, for the one place that sends it to its owner.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a token the client was given.
    #[must_use]
    pub fn from_string(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// SHA-256 of a token; the only form the room keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl TokenHash {
    /// Hashes token text.
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenHash({}…)",
            hex::encode(self.0.get(..4).unwrap_or_default())
        )
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// One issued token, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedToken {
    /// Its hash.
    pub hash: TokenHash,
    /// When it stops being valid.
    pub expires_at: Millis,
}

/// The valid tokens of one job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSet {
    /// Lifetime of each token.
    pub ttl: Millis,
    /// The refresh lineage (creation token, then refreshes): at most two,
    /// oldest first.
    pub issued: Vec<IssuedToken>,
    /// Tokens the producer asked for, oldest first: at most
    /// [`MAX_PRODUCER_TOKENS`], untouched by refreshes. Absent from records
    /// written before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub producer_issued: Vec<IssuedToken>,
    /// When the lineage's session began (the creation token); refreshes
    /// never extend past it plus the maximum session. Absent from records
    /// written before sessions were bounded, and after a revoke: then the
    /// newest token's issue time stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_start: Option<Millis>,
}

/// [`MAX_PRODUCER_TOKENS`] producer-issued tokens are still valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyTokens {
    /// When the first of them expires and frees a slot.
    pub slot_free_at: Millis,
}

/// How the token check went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid until this time.
    Valid(Millis),
    /// Unknown, revoked or expired.
    Invalid,
}

impl TokenSet {
    /// An empty set with a lifetime.
    #[must_use]
    pub const fn new(ttl: Millis) -> Self {
        Self {
            ttl,
            issued: Vec::new(),
            producer_issued: Vec::new(),
            session_start: None,
        }
    }

    /// Issues the creation token: it starts the lineage's session.
    pub fn start_session(
        &mut self,
        minter: &Minter<'_>,
        now: Millis,
        random: [u8; 16],
    ) -> (Token, Millis) {
        self.session_start = Some(now);
        let expires_at = now.plus(self.ttl).min(now.plus(minter.max_session));
        let token = minter.key.mint(minter.job_id, expires_at, now, random);
        self.push_lineage(&token, expires_at, now);
        (token, expires_at)
    }

    /// Issues a token the producer asked for: it starts a session of its
    /// own and is valid until it expires or a revoke, whatever refreshes
    /// happen. Expired ones are dropped first; refused while
    /// [`MAX_PRODUCER_TOKENS`] are still valid.
    pub fn issue_for_producer(
        &mut self,
        minter: &Minter<'_>,
        now: Millis,
        random: [u8; 16],
    ) -> Result<(Token, Millis), TooManyTokens> {
        self.producer_issued.retain(|t| t.expires_at > now);
        if self.producer_issued.len() >= MAX_PRODUCER_TOKENS {
            let slot_free_at = self
                .producer_issued
                .iter()
                .map(|t| t.expires_at)
                .min()
                .unwrap_or(now);
            return Err(TooManyTokens { slot_free_at });
        }
        let expires_at = now.plus(self.ttl).min(now.plus(minter.max_session));
        let token = minter.key.mint(minter.job_id, expires_at, now, random);
        self.producer_issued.push(IssuedToken {
            hash: TokenHash::of(token.expose()),
            expires_at,
        });
        Ok((token, expires_at))
    }

    /// When the lineage's session began (see [`TokenSet::session_start`]).
    fn lineage_start(&self, now: Millis) -> Millis {
        self.session_start
            .unwrap_or_else(|| self.newest_expiry().map_or(now, |e| e.minus(self.ttl)))
    }

    /// When no refresh can extend the lineage any more.
    #[must_use]
    pub fn session_end(&self, max_session: Millis, now: Millis) -> Millis {
        self.lineage_start(now).plus(max_session)
    }

    /// Issues the lineage's next token (an in-band refresh), in the same
    /// session: its expiry is capped at the session's start plus
    /// `max_session`. `None` when that cap allows nothing later than the
    /// newest token already has. The oldest beyond two is dropped.
    pub fn refresh(
        &mut self,
        minter: &Minter<'_>,
        now: Millis,
        random: [u8; 16],
    ) -> Option<(Token, Millis)> {
        let start = self.lineage_start(now);
        let expires_at = now.plus(self.ttl).min(start.plus(minter.max_session));
        if expires_at <= self.newest_expiry().unwrap_or(now).max(now) {
            return None;
        }
        self.session_start = Some(start);
        let token = minter.key.mint(minter.job_id, expires_at, start, random);
        self.push_lineage(&token, expires_at, now);
        Some((token, expires_at))
    }

    fn push_lineage(&mut self, token: &Token, expires_at: Millis, now: Millis) {
        self.issued.retain(|t| t.expires_at > now);
        self.issued.push(IssuedToken {
            hash: TokenHash::of(token.expose()),
            expires_at,
        });
        while self.issued.len() > 2 {
            self.issued.remove(0);
        }
    }

    /// Checks a presented token in constant time against every issued one.
    #[must_use]
    pub fn verify(&self, token: &str, now: Millis) -> Verdict {
        let presented = TokenHash::of(token);
        let mut verdict = Verdict::Invalid;
        for t in self.issued.iter().chain(&self.producer_issued) {
            let same: bool = t.hash.0.ct_eq(&presented.0).into();
            if same && t.expires_at > now {
                verdict = Verdict::Valid(t.expires_at);
            }
        }
        verdict
    }

    /// Invalidates every token, producer-issued ones too.
    pub fn revoke_all(&mut self) {
        self.issued.clear();
        self.producer_issued.clear();
        self.session_start = None;
    }

    /// Whether no token was issued since the last revoke (or ever).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.issued.is_empty() && self.producer_issued.is_empty()
    }

    /// Expiry of the newest token of the lineage or, when a revoke emptied
    /// it, of the newest producer-issued one.
    #[must_use]
    pub fn newest_expiry(&self) -> Option<Millis> {
        self.issued
            .last()
            .or_else(|| self.producer_issued.iter().max_by_key(|t| t.expires_at))
            .map(|t| t.expires_at)
    }

    /// When the next refresh is due: `min(10 min, ttl / 2)` before the
    /// newest expires; `None` once the newest reaches the session's end
    /// (no refresh could extend it).
    #[must_use]
    pub fn refresh_due_at(&self, max_session: Millis) -> Option<Millis> {
        let margin = if self.ttl.0 / 2 < REFRESH_MARGIN.0 {
            Millis(self.ttl.0 / 2)
        } else {
            REFRESH_MARGIN
        };
        let newest = self.newest_expiry()?;
        (newest < self.session_end(max_session, newest)).then(|| newest.minus(margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINTER: Minter<'static> = Minter {
        key: &TokenKey::TEST,
        job_id: "job-1",
        max_session: DEFAULT_MAX_SESSION,
    };

    #[test]
    fn only_hashes_are_kept() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (t, exp) = set.start_session(&MINTER, Millis(0), [7; 16]);
        assert_eq!(exp, Millis::from_hours(2));
        let stored = serde_json::to_string(&set).unwrap();
        assert!(!stored.contains(t.expose()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn verify_checks_value_and_expiry() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (t, exp) = set.start_session(&MINTER, Millis(0), [1; 16]);
        assert_eq!(set.verify(t.expose(), Millis(5)), Verdict::Valid(exp));
        assert_eq!(set.verify("nope", Millis(5)), Verdict::Invalid);
        assert_eq!(set.verify(t.expose(), exp), Verdict::Invalid);
    }

    #[test]
    fn at_most_two_valid() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (a, _) = set.start_session(&MINTER, Millis(0), [1; 16]);
        let (b, _) = set.refresh(&MINTER, Millis(1), [2; 16]).unwrap();
        let (c, _) = set.refresh(&MINTER, Millis(2), [3; 16]).unwrap();
        assert_eq!(set.verify(a.expose(), Millis(3)), Verdict::Invalid);
        assert!(matches!(
            set.verify(b.expose(), Millis(3)),
            Verdict::Valid(_)
        ));
        assert!(matches!(
            set.verify(c.expose(), Millis(3)),
            Verdict::Valid(_)
        ));
    }

    #[test]
    fn producer_tokens_outlive_refreshes_up_to_16_at_once() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (created, _) = set.start_session(&MINTER, Millis(0), [1; 16]);
        let mut granted = Vec::new();
        for i in 0..16u8 {
            let (t, _) = set
                .issue_for_producer(&MINTER, Millis(u64::from(i)), [100 + i; 16])
                .unwrap();
            granted.push(t);
        }
        assert_eq!(
            set.issue_for_producer(&MINTER, Millis(20), [99; 16]),
            Err(TooManyTokens {
                slot_free_at: Millis::from_hours(2)
            })
        );
        // Refreshes rotate the lineage only.
        set.refresh(&MINTER, Millis(30), [2; 16]).unwrap();
        set.refresh(&MINTER, Millis(31), [3; 16]).unwrap();
        assert_eq!(set.verify(created.expose(), Millis(32)), Verdict::Invalid);
        for t in &granted {
            assert!(matches!(
                set.verify(t.expose(), Millis(32)),
                Verdict::Valid(_)
            ));
        }
        // The first expired one frees its slot.
        assert!(set
            .issue_for_producer(&MINTER, Millis::from_hours(2), [98; 16])
            .is_ok());
        assert_eq!(set.producer_issued.len(), 16);
        set.revoke_all();
        assert!(set.is_empty());
        assert_eq!(
            set.verify(granted[15].expose(), Millis(33)),
            Verdict::Invalid
        );
    }

    #[test]
    fn records_without_producer_tokens_or_session_still_read() {
        let old = r#"{"ttl":7200000,"issued":[]}"#;
        let set: TokenSet = serde_json::from_str(old).unwrap();
        assert!(set.producer_issued.is_empty());
        assert_eq!(set.session_start, None);
        assert_eq!(serde_json::to_string(&set).unwrap(), old);
    }

    #[test]
    fn refresh_margin_is_min_of_10_min_and_half_ttl() {
        let mut long = TokenSet::new(Millis::from_hours(2));
        long.start_session(&MINTER, Millis(0), [1; 16]);
        assert_eq!(
            long.refresh_due_at(DEFAULT_MAX_SESSION),
            Some(Millis::from_mins(110))
        );
        let mut short = TokenSet::new(Millis::from_mins(2));
        short.start_session(&MINTER, Millis(0), [1; 16]);
        assert_eq!(
            short.refresh_due_at(DEFAULT_MAX_SESSION),
            Some(Millis::from_mins(1))
        );
    }
}
