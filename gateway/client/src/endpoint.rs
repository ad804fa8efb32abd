//! The gateway's base URL, split into its HTTP and WebSocket forms, and the
//! paths of SPEC §1. Nothing here ever holds a token.

use std::fmt;

/// Why a base URL is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not `http://`, `https://`, `ws://` or `wss://`.
    #[error("base URL must start with http://, https://, ws:// or wss:// (got {0:?})")]
    Scheme(String),
    /// A query or fragment on the base URL.
    #[error("base URL must not carry a query or fragment")]
    Query,
}

/// The gateway's base URL (e.g. `http://127.0.0.1:8787`, `https://gw.example.workers.dev`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http[s]://host[:port][/prefix]`, no trailing slash.
    http: String,
    /// `ws[s]://host[:port][/prefix]`, no trailing slash.
    ws: String,
}

impl Endpoint {
    /// Parses a base URL; `ws://` and `http://` name the same gateway, and so
    /// do `wss://` and `https://` (TLS for both the upgrade and the HTTP calls).
    pub fn parse(base: &str) -> Result<Self, EndpointError> {
        let base = base.trim().trim_end_matches('/');
        if base.contains(['?', '#']) {
            return Err(EndpointError::Query);
        }
        let (secure, rest) = if let Some(r) = base.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = base.strip_prefix("ws://") {
            (false, r)
        } else if let Some(r) = base.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = base.strip_prefix("wss://") {
            (true, r)
        } else {
            return Err(EndpointError::Scheme(base.chars().take(16).collect()));
        };
        if rest.is_empty() {
            return Err(EndpointError::Scheme(base.to_owned()));
        }
        let s = if secure { "s" } else { "" };
        Ok(Self {
            http: format!("http{s}://{rest}"),
            ws: format!("ws{s}://{rest}"),
        })
    }

    /// Whether the gateway is reached over TLS (`https://`/`wss://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.http.starts_with("https://")
    }

    /// `GET /ws/progress?{query}` (the query holds the token: never log the result).
    pub(crate) fn ws_progress(&self, query: &str) -> String {
        format!("{}/ws/progress?{query}", self.ws)
    }

    /// `GET /api/job-state/{jobId}`.
    pub(crate) fn job_state(&self, job_id: &str) -> String {
        format!("{}/api/job-state/{}", self.http, segment(job_id))
    }

    /// `POST /api/jobs`.
    pub(crate) fn jobs(&self) -> String {
        format!("{}/api/jobs", self.http)
    }

    /// `/api/jobs/{jobId}` followed by `tail` (e.g. `/events`).
    pub(crate) fn job(&self, job_id: &str, tail: &str) -> String {
        format!("{}/api/jobs/{}{tail}", self.http, segment(job_id))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http)
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_paths() {
        let e = Endpoint::parse("http://127.0.0.1:8787/").unwrap();
        assert_eq!(e.ws_progress("a=b"), "ws://127.0.0.1:8787/ws/progress?a=b");
        assert_eq!(
            e.job_state("j 1"),
            "http://127.0.0.1:8787/api/job-state/j%201"
        );
        assert_eq!(
            e.job("j", "/events"),
            "http://127.0.0.1:8787/api/jobs/j/events"
        );
        assert_eq!(
            Endpoint::parse("ws://h").unwrap(),
            Endpoint::parse("http://h").unwrap()
        );
        assert!(!e.is_tls());
        let tls = Endpoint::parse("https://gw.example.dev/base/").unwrap();
        assert!(tls.is_tls());
        assert_eq!(tls, Endpoint::parse("wss://gw.example.dev/base").unwrap());
        assert_eq!(
            tls.ws_progress("a=b"),
            "wss://gw.example.dev/base/ws/progress?a=b"
        );
        assert_eq!(
            tls.job_state("j"),
            "https://gw.example.dev/base/api/job-state/j"
        );
        assert_eq!(tls.jobs(), "https://gw.example.dev/base/api/jobs");
        assert!(matches!(
            Endpoint::parse("https://"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("ftp://h"),
            Err(EndpointError::Scheme(_))
        ));
        assert_eq!(Endpoint::parse("http://h?x"), Err(EndpointError::Query));
    }
}
