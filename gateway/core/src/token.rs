//! Subscriber tokens: random UUID v4 strings, stored only as SHA-256, compared
//! in constant time. The refresh lineage (the creation token and in-band
//! refreshes) keeps at most two (the newest and the one it replaced); tokens
//! the producer asks for stand apart, each valid until it expires or a revoke.

use crate::Millis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Refresh when less than this (or half the lifetime, if shorter) is left.
pub const REFRESH_MARGIN: Millis = Millis::from_mins(10);

/// Most producer-issued tokens valid at once; each lives until it expires
/// or a revoke, so the bound keeps the record (and every check) small.
pub const MAX_PRODUCER_TOKENS: usize = 16;

/// A token as the subscriber holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// A UUID v4 token from 16 random bytes (122 random bits).
    #[must_use]
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .to_string(),
        )
    }

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
        }
    }

    /// Issues a token the producer asked for: valid until it expires or a
    /// revoke, whatever refreshes happen. Expired ones are dropped first;
    /// refused while [`MAX_PRODUCER_TOKENS`] are still valid.
    pub fn issue_for_producer(
        &mut self,
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
        let token = Token::from_random(random);
        let expires_at = now.plus(self.ttl);
        self.producer_issued.push(IssuedToken {
            hash: TokenHash::of(token.expose()),
            expires_at,
        });
        Ok((token, expires_at))
    }

    /// Issues the next token of the refresh lineage from random bytes; the
    /// oldest beyond two is dropped.
    pub fn issue(&mut self, now: Millis, random: [u8; 16]) -> (Token, Millis) {
        let token = Token::from_random(random);
        let expires_at = now.plus(self.ttl);
        self.issued.retain(|t| t.expires_at > now);
        self.issued.push(IssuedToken {
            hash: TokenHash::of(token.expose()),
            expires_at,
        });
        while self.issued.len() > 2 {
            self.issued.remove(0);
        }
        (token, expires_at)
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

    /// When the next refresh is due: `min(10 min, ttl / 2)` before the newest expires.
    #[must_use]
    pub fn refresh_due_at(&self) -> Option<Millis> {
        let margin = if self.ttl.0 / 2 < REFRESH_MARGIN.0 {
            Millis(self.ttl.0 / 2)
        } else {
            REFRESH_MARGIN
        };
        self.newest_expiry().map(|e| e.minus(margin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_uuid_v4_and_only_hashes_are_kept() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (t, exp) = set.issue(Millis(0), [7; 16]);
        let u = uuid::Uuid::parse_str(t.expose()).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(exp, Millis::from_hours(2));
        let stored = serde_json::to_string(&set).unwrap();
        assert!(!stored.contains(t.expose()));
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn verify_checks_value_and_expiry() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (t, exp) = set.issue(Millis(0), [1; 16]);
        assert_eq!(set.verify(t.expose(), Millis(5)), Verdict::Valid(exp));
        assert_eq!(set.verify("nope", Millis(5)), Verdict::Invalid);
        assert_eq!(set.verify(t.expose(), exp), Verdict::Invalid);
    }

    #[test]
    fn at_most_two_valid() {
        let mut set = TokenSet::new(Millis::from_hours(2));
        let (a, _) = set.issue(Millis(0), [1; 16]);
        let (b, _) = set.issue(Millis(1), [2; 16]);
        let (c, _) = set.issue(Millis(2), [3; 16]);
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
        let (created, _) = set.issue(Millis(0), [1; 16]);
        let mut granted = Vec::new();
        for i in 0..16u8 {
            let (t, _) = set
                .issue_for_producer(Millis(u64::from(i)), [100 + i; 16])
                .unwrap();
            granted.push(t);
        }
        assert_eq!(
            set.issue_for_producer(Millis(20), [99; 16]),
            Err(TooManyTokens {
                slot_free_at: Millis::from_hours(2)
            })
        );
        // Refreshes rotate the lineage only.
        set.issue(Millis(30), [2; 16]);
        set.issue(Millis(31), [3; 16]);
        assert_eq!(set.verify(created.expose(), Millis(32)), Verdict::Invalid);
        for t in &granted {
            assert!(matches!(
                set.verify(t.expose(), Millis(32)),
                Verdict::Valid(_)
            ));
        }
        // The first expired one frees its slot.
        assert!(set
            .issue_for_producer(Millis::from_hours(2), [98; 16])
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
    fn records_without_producer_tokens_still_read() {
        let old = r#"{"ttl":7200000,"issued":[]}"#;
        let set: TokenSet = serde_json::from_str(old).unwrap();
        assert!(set.producer_issued.is_empty());
        assert_eq!(serde_json::to_string(&set).unwrap(), old);
    }

    #[test]
    fn refresh_margin_is_min_of_10_min_and_half_ttl() {
        let mut long = TokenSet::new(Millis::from_hours(2));
        long.issue(Millis(0), [1; 16]);
        assert_eq!(long.refresh_due_at(), Some(Millis::from_mins(110)));
        let mut short = TokenSet::new(Millis::from_mins(2));
        short.issue(Millis(0), [1; 16]);
        assert_eq!(short.refresh_due_at(), Some(Millis::from_mins(1)));
    }
}
