//! The operator's configuration (Worker vars and secrets), parsed and checked
//! once, and the decisions that only depend on it: which browser origins may
//! call the gateway, which CORS origin an answer carries, and whether a
//! producer presented one of the configured secrets.
//!
//! An invalid value is never replaced by a default: the gateway refuses every
//! request with `500 misconfigured` naming the variable and its allowed range
//! ([`ConfigError::to_http`]), so a mistake shows on the first call after a
//! deploy instead of running with settings nobody chose.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use thiserror::Error;

use crate::error::HttpError;
use crate::http::bearer;
use crate::room::RoomConfig;
use crate::token::{TokenKey, TokenKeys};
use crate::Millis;

/// Var: origins allowed to call the gateway from a browser.
pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
/// Var: sockets per job.
pub const MAX_SOCKETS_PER_JOB: &str = "MAX_SOCKETS_PER_JOB";
/// Var: the subscribers' ping interval in ms.
pub const PING_INTERVAL_MS: &str = "PING_INTERVAL_MS";
/// Var: the retention period in ms (how long a running job may go without
/// events before it ends as `job_expired`, and how long an ended job stays).
pub const JOB_RETENTION_MS: &str = "JOB_RETENTION_MS";
/// Secret: the producer secret.
pub const PRODUCER_SECRET: &str = "PRODUCER_SECRET";
/// Secret: the next producer secret, accepted as well during a rotation.
pub const PRODUCER_SECRET_NEXT: &str = "PRODUCER_SECRET_NEXT";
/// Secret: signs subscriber tokens (derived from `PRODUCER_SECRET` if unset).
pub const TOKEN_SECRET: &str = "TOKEN_SECRET";
/// Secret: the token secret before a rotation, accepted for checking only.
pub const TOKEN_SECRET_PREVIOUS: &str = "TOKEN_SECRET_PREVIOUS";
/// Var: the longest session a token lineage may have, in ms.
pub const MAX_SESSION_MS: &str = "MAX_SESSION_MS";

/// Allowed `MAX_SESSION_MS`: 1 min (tests) to 30 days.
pub const MAX_SESSION_RANGE: (u64, u64) = (60_000, 30 * 24 * 3_600_000);
/// The label a token key is derived from `TOKEN_SECRET` under.
const TOKEN_SECRET_LABEL: &str = "progress-gateway token key v1";
/// The label a token key is derived from `PRODUCER_SECRET` under, when no
/// `TOKEN_SECRET` is set.
const PRODUCER_SECRET_LABEL: &str = "progress-gateway token key from producer secret v1";

/// Allowed `PING_INTERVAL_MS`: 1 s (the tests' value) to 10 min.
pub const PING_INTERVAL_RANGE: (u64, u64) = (1_000, 600_000);
/// Allowed `MAX_SOCKETS_PER_JOB`: the runtime accepts at most 32,768
/// WebSockets per Durable Object.
pub const MAX_SOCKETS_RANGE: (u64, u64) = (1, 32_768);
/// Allowed `JOB_RETENTION_MS`: 1 s (the tests') up to SPEC's 24 h, never longer.
pub const JOB_RETENTION_RANGE: (u64, u64) = (1_000, 86_400_000);
/// Longest value quoted back in an error message.
const QUOTE_MAX: usize = 40;

/// A var the gateway cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A numeric var that is not an integer within its range.
    #[error(
        "{var} is {value:?}; it must be a whole number from {min} to {max} \
         (unset it for the default {default})"
    )]
    OutOfRange {
        /// The variable.
        var: &'static str,
        /// Its value (shortened).
        value: String,
        /// Lowest allowed value.
        min: u64,
        /// Highest allowed value.
        max: u64,
        /// The value used when it is unset.
        default: u64,
    },
    /// `ALLOWED_ORIGINS` is not `*` or a list of origins.
    #[error(
        "ALLOWED_ORIGINS {problem}; set it to * or to a comma-separated list of \
         origins such as https://app.example.com (scheme://host[:port], no path)"
    )]
    Origins {
        /// What is wrong with it.
        problem: String,
    },
}

impl ConfigError {
    /// The answer to every request while the configuration is invalid.
    #[must_use]
    pub fn to_http(&self) -> HttpError {
        HttpError::new(
            500,
            "misconfigured",
            format!("the gateway is misconfigured: {self}; then redeploy (docs/DEPLOY.md)"),
        )
    }
}

/// The origins a browser may call the gateway from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin.
    Any,
    /// Exact origins, lower-cased (browsers send them lower-case).
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses `ALLOWED_ORIGINS`: `*` alone, or a comma-separated list of
    /// `scheme://host[:port]` (blank entries are skipped).
    ///
    /// # Errors
    /// A blank value, `*` mixed with origins, or an entry that is not an origin.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let entries: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let problem = |p: String| Err(ConfigError::Origins { problem: p });
        if entries.is_empty() {
            return problem("is blank (unset it for the default *)".into());
        }
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(Self::Any)
            } else {
                problem("mixes * with origins".into())
            };
        }
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            if !is_origin(entry) {
                return problem(format!("entry {:?} is not an origin", quote(entry)));
            }
            list.push(entry.to_ascii_lowercase());
        }
        Ok(Self::List(list))
    }

    /// Whether a request with this `Origin` header may go on. No header (a
    /// native app, a backend) always may; a browser's origin must be listed.
    ///
    /// # Errors
    /// `403 origin_not_allowed`, before any job is looked at.
    pub fn check(&self, origin: Option<&str>) -> Result<(), HttpError> {
        match (self, origin) {
            (Self::Any, _) | (_, None) => Ok(()),
            (Self::List(list), Some(origin))
                if list.iter().any(|o| o.eq_ignore_ascii_case(origin)) =>
            {
                Ok(())
            }
            (Self::List(_), Some(origin)) => Err(HttpError::new(
                403,
                "origin_not_allowed",
                format!(
                    "origin {:?} is not allowed to call this gateway; the operator \
                     lists allowed origins in ALLOWED_ORIGINS",
                    quote(origin)
                ),
            )),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`:
    /// `*`, the listed origin itself, or none.
    #[must_use]
    pub fn cors(&self, origin: Option<&str>) -> Option<String> {
        match self {
            Self::Any => Some("*".to_owned()),
            Self::List(list) => origin
                .filter(|o| list.iter().any(|l| l.eq_ignore_ascii_case(o)))
                .map(str::to_owned),
        }
    }

    /// Whether answers depend on the `Origin` header (`Vary: Origin`).
    #[must_use]
    pub const fn varies(&self) -> bool {
        matches!(self, Self::List(_))
    }
}

/// `scheme://host[:port]` as a browser serializes it: no path, query,
/// fragment, user info or whitespace.
fn is_origin(s: &str) -> bool {
    let Some((scheme, authority)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal keeps its colons inside brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    scheme_ok
        && port_ok
        && !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#@\\,".contains(c))
}

/// The producer secrets, kept as SHA-256 digests only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProducerSecrets {
    current: Option<[u8; 32]>,
    next: Option<[u8; 32]>,
}

impl fmt::Debug for ProducerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerSecrets")
            .field("current", &self.current.is_some())
            .field("next", &self.next.is_some())
            .finish()
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl ProducerSecrets {
    /// `PRODUCER_SECRET` and, during a rotation, `PRODUCER_SECRET_NEXT`
    /// (blank counts as unset).
    #[must_use]
    pub fn new(current: Option<&str>, next: Option<&str>) -> Self {
        let set = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(digest);
        Self {
            current: set(current),
            next: set(next),
        }
    }

    /// Checks `Authorization: Bearer <secret>` against both secrets. The
    /// digests are compared in constant time, so neither the secrets' length
    /// nor which one matched shows in the timing.
    ///
    /// # Errors
    /// `500 not_configured` without `PRODUCER_SECRET`; `401` otherwise.
    pub fn authorize(&self, header: Option<&str>) -> Result<(), HttpError> {
        let Some(current) = self.current else {
            return Err(HttpError::new(
                500,
                "not_configured",
                "PRODUCER_SECRET is not set; run `wrangler secret put PRODUCER_SECRET`",
            ));
        };
        let refused = || {
            HttpError::unauthorized("producer calls need Authorization: Bearer <PRODUCER_SECRET>")
        };
        let presented = digest(bearer(header).ok_or_else(refused)?);
        let next = self.next.unwrap_or(current);
        let same: Choice = presented.ct_eq(&current) | presented.ct_eq(&next);
        if bool::from(same) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// Everything the operator configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `ALLOWED_ORIGINS` (default `*`).
    pub origins: AllowedOrigins,
    /// `MAX_SOCKETS_PER_JOB`, `PING_INTERVAL_MS` and `JOB_RETENTION_MS` over
    /// the room's defaults.
    pub room: RoomConfig,
    /// `PRODUCER_SECRET` and `PRODUCER_SECRET_NEXT`.
    pub producer: ProducerSecrets,
    /// The keys subscriber tokens are checked with, from `TOKEN_SECRET`
    /// (else `PRODUCER_SECRET`) and `TOKEN_SECRET_PREVIOUS`; `None` when
    /// neither secret is set (no job can exist then). The current key is
    /// also `room.token_key` (`None` with it).
    pub tokens: Option<TokenKeys>,
}

impl Config {
    /// Reads every var and secret through `get` (unset: `None`).
    ///
    /// # Errors
    /// The first invalid var, in the order `ALLOWED_ORIGINS`,
    /// `MAX_SOCKETS_PER_JOB`, `PING_INTERVAL_MS`, `JOB_RETENTION_MS`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let origins = match get(ALLOWED_ORIGINS) {
            None => AllowedOrigins::Any,
            Some(v) => AllowedOrigins::parse(&v)?,
        };
        let mut room = RoomConfig::default();
        if let Some(v) = get(MAX_SOCKETS_PER_JOB) {
            let default = room.max_sockets as u64;
            let n = integer(MAX_SOCKETS_PER_JOB, &v, MAX_SOCKETS_RANGE, default)?;
            room.max_sockets = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(v) = get(PING_INTERVAL_MS) {
            let default = room.ping_interval.0;
            room.ping_interval =
                Millis(integer(PING_INTERVAL_MS, &v, PING_INTERVAL_RANGE, default)?);
        }
        if let Some(v) = get(JOB_RETENTION_MS) {
            let default = room.retention.0;
            room.retention = Millis(integer(JOB_RETENTION_MS, &v, JOB_RETENTION_RANGE, default)?);
        }
        if let Some(v) = get(MAX_SESSION_MS) {
            let default = room.max_session.0;
            room.max_session = Millis(integer(MAX_SESSION_MS, &v, MAX_SESSION_RANGE, default)?);
        }
        let producer_secret = get(PRODUCER_SECRET).filter(|s| !s.is_empty());
        let producer = ProducerSecrets::new(
            producer_secret.as_deref(),
            get(PRODUCER_SECRET_NEXT).as_deref(),
        );
        let current = match get(TOKEN_SECRET).filter(|s| !s.is_empty()) {
            Some(s) => Some(TokenKey::derive(TOKEN_SECRET_LABEL, &s)),
            None => producer_secret
                .as_deref()
                .map(|s| TokenKey::derive(PRODUCER_SECRET_LABEL, s)),
        };
        let previous = get(TOKEN_SECRET_PREVIOUS)
            .filter(|s| !s.is_empty())
            .map(|s| TokenKey::derive(TOKEN_SECRET_LABEL, &s));
        room.token_key = current;
        let tokens = current.map(|current| TokenKeys { current, previous });
        Ok(Self {
            origins,
            room,
            producer,
            tokens,
        })
    }
}

/// A decimal integer (ASCII digits only, surrounding spaces allowed) in `range`.
fn integer(
    var: &'static str,
    value: &str,
    (min, max): (u64, u64),
    default: u64,
) -> Result<u64, ConfigError> {
    let t = value.trim();
    t.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| t.parse::<u64>().ok())
        .flatten()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ConfigError::OutOfRange {
            var,
            value: quote(value),
            min,
            max,
            default,
        })
}

/// At most [`QUOTE_MAX`] characters of an operator's or a caller's value.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn unset_vars_give_the_spec_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.origins, AllowedOrigins::Any);
        // The defaults, with no key: no secret is set.
        assert_eq!(c.room, RoomConfig::unconfigured());
        assert_eq!(c.room.max_sockets, 32);
        assert_eq!(c.room.ping_interval, Millis(30_000));
    }

    #[test]
    fn ping_interval_from_1000_to_600000() {
        for (v, ok) in [
            ("1000", Some(1_000)),
            (" 600000 ", Some(600_000)),
            ("999", None),
            ("600001", None),
            ("0", None),
            ("+5000", None),
            ("-1", None),
            ("5e3", None),
            ("30000.0", None),
            ("", None),
            ("99999999999999999999999", None),
        ] {
            let got = config(&[(PING_INTERVAL_MS, v)]);
            match ok {
                Some(ms) => assert_eq!(got.unwrap().room.ping_interval, Millis(ms), "{v:?}"),
                None => {
                    let e = got.unwrap_err();
                    let http = e.to_http();
                    assert_eq!((http.status, http.code), (500, "misconfigured"), "{v:?}");
                    assert!(http.message.contains("PING_INTERVAL_MS"), "{http}");
                    assert!(http.message.contains("from 1000 to 600000"), "{http}");
                }
            }
        }
    }

    #[test]
    fn max_sockets_from_1_to_32768() {
        for (v, ok) in [
            ("1", Some(1)),
            ("32768", Some(32_768)),
            ("0", None),
            ("32769", None),
            ("many", None),
        ] {
            let got = config(&[(MAX_SOCKETS_PER_JOB, v)]);
            match ok {
                Some(n) => assert_eq!(got.unwrap().room.max_sockets, n, "{v:?}"),
                None => {
                    let e = got.unwrap_err().to_http();
                    assert_eq!((e.status, e.code), (500, "misconfigured"));
                    assert!(e.message.contains("MAX_SOCKETS_PER_JOB"), "{e}");
                    assert!(e.message.contains("from 1 to 32768"), "{e}");
                }
            }
        }
    }

    #[test]
    fn job_retention_from_1000_to_24_h() {
        assert_eq!(config(&[]).unwrap().room.retention, Millis(86_400_000));
        for (v, ok) in [
            ("1000", Some(1_000)),
            ("86400000", Some(86_400_000)),
            ("999", None),
            ("86400001", None),
            ("0", None),
        ] {
            let got = config(&[(JOB_RETENTION_MS, v)]);
            match ok {
                Some(ms) => assert_eq!(got.unwrap().room.retention, Millis(ms), "{v:?}"),
                None => {
                    let e = got.unwrap_err().to_http();
                    assert_eq!((e.status, e.code), (500, "misconfigured"));
                    assert!(e.message.contains("JOB_RETENTION_MS"), "{e}");
                    assert!(e.message.contains("from 1000 to 86400000"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_long_bad_value_is_quoted_short() {
        let long = "9".repeat(500);
        let e = config(&[(PING_INTERVAL_MS, &long)])
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn allowed_origins_is_star_or_a_list_of_origins() {
        assert_eq!(AllowedOrigins::parse(" * ").unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse(
                "https://A.example, http://localhost:8080,capacitor://localhost,"
            )
            .unwrap(),
            AllowedOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:8080".into(),
                "capacitor://localhost".into()
            ])
        );
        assert!(AllowedOrigins::parse("http://[::1]:8080").is_ok());
        for bad in [
            "",
            " , ",
            "*, https://a.example",
            "https://a.example/",
            "https://a.example/app",
            "a.example",
            "https://",
            "https://a.example:",
            "https://a.example:80a",
            "https://user@a.example",
            "https://a.example?x",
            "https://a b",
        ] {
            let e = config(&[(ALLOWED_ORIGINS, bad)]).unwrap_err().to_http();
            assert_eq!((e.status, e.code), (500, "misconfigured"), "{bad:?}");
            assert!(e.message.contains("ALLOWED_ORIGINS"), "{e}");
        }
    }

    #[test]
    fn a_listed_origin_or_none_passes_and_any_other_is_403() {
        let list = AllowedOrigins::parse("https://a.example, https://b.example").unwrap();
        assert_eq!(list.check(None), Ok(()));
        assert_eq!(list.check(Some("https://a.example")), Ok(()));
        assert_eq!(list.check(Some("https://b.example")), Ok(()));
        for origin in [
            "https://c.example",
            "https://a.example:443",
            "null",
            "",
            "http://a.example",
        ] {
            let e = list.check(Some(origin)).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (403, "origin_not_allowed"),
                "{origin:?}"
            );
            assert!(e.message.contains("ALLOWED_ORIGINS"), "{e}");
        }
        assert_eq!(AllowedOrigins::Any.check(Some("https://c.example")), Ok(()));
    }

    #[test]
    fn cors_echoes_a_listed_origin_or_star() {
        let list = AllowedOrigins::parse("https://a.example").unwrap();
        assert_eq!(
            list.cors(Some("https://a.example")).as_deref(),
            Some("https://a.example")
        );
        assert_eq!(list.cors(Some("https://c.example")), None);
        assert_eq!(list.cors(None), None);
        assert!(list.varies());
        assert_eq!(AllowedOrigins::Any.cors(None).as_deref(), Some("*"));
        assert!(!AllowedOrigins::Any.varies());
    }

    #[test]
    fn either_secret_passes_during_a_rotation() {
        let both = ProducerSecrets::new(Some("old-secret"), Some("new-secret"));
        assert_eq!(both.authorize(Some("Bearer old-secret")), Ok(()));
        assert_eq!(both.authorize(Some("Bearer new-secret")), Ok(()));
        for h in [
            None,
            Some("Bearer old-secre"),
            Some("Bearer new-secret2"),
            Some("Bearer "),
            Some("old-secret"),
        ] {
            let e = both.authorize(h).unwrap_err();
            assert_eq!((e.status, e.code), (401, "unauthorized"), "{h:?}");
        }
        let one = ProducerSecrets::new(Some("old-secret"), Some(""));
        assert_eq!(one.authorize(Some("Bearer old-secret")), Ok(()));
        assert_eq!(one.authorize(Some("Bearer ")).unwrap_err().status, 401);
        // The next secret alone does not configure the producer routes.
        let next_only = ProducerSecrets::new(None, Some("new-secret"));
        let e = next_only.authorize(Some("Bearer new-secret")).unwrap_err();
        assert_eq!((e.status, e.code), (500, "not_configured"));
    }

    #[test]
    fn secrets_come_from_the_vars_and_never_show_in_debug() {
        let c = config(&[(PRODUCER_SECRET, "s3cret"), (PRODUCER_SECRET_NEXT, "n3xt")]).unwrap();
        assert_eq!(c.producer.authorize(Some("Bearer n3xt")), Ok(()));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("n3xt"),
            "{shown}"
        );
    }
}
