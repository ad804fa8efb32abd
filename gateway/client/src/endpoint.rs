//! The gateway's base URL and the URLs of SPEC §1 built on it (with the `url`
//! crate: parsing, percent-encoding, the `ws`/`http` scheme pairs). Only
//! [`Endpoint::progress_url`] ever holds a token.

use gateway_core::client::ConnectParams;
use std::fmt;
use url::{Host, Url};

/// Why a base URL is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not a URL at all.
    #[error("base URL is not a URL ({0}); expected e.g. http://127.0.0.1:8787")]
    Invalid(url::ParseError),
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
    /// `http[s]://host[:port][/prefix/]`, always with a trailing slash.
    http: Url,
}

impl Endpoint {
    /// Parses a base URL; `ws://` and `http://` name the same gateway, and so
    /// do `wss://` and `https://` (TLS for both the upgrade and the HTTP calls).
    pub fn parse(base: &str) -> Result<Self, EndpointError> {
        let mut url = Url::parse(base.trim()).map_err(EndpointError::Invalid)?;
        let http = match url.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => return Err(EndpointError::Scheme(other.chars().take(16).collect())),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EndpointError::Query);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(EndpointError::Scheme(base.chars().take(16).collect()));
        }
        // ws ↔ http between special schemes is always allowed.
        let _ = url.set_scheme(http);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Self { http: url })
    }

    /// Whether the gateway is reached over TLS (`https://`/`wss://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.http.scheme() == "https"
    }

    /// Whether the host is this machine: `localhost`, `127.0.0.0/8` or `::1`
    /// (also as `::ffff:127.x.y.z`). Plain `http://`/`ws://` is only safe there.
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        match self.http.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            None => false,
        }
    }

    /// The host as written in the URL (no user, port or path), for messages.
    #[must_use]
    pub fn host(&self) -> String {
        self.http.host_str().unwrap_or_default().to_owned()
    }

    /// The upgrade URL `ws[s]://…/ws/progress?jobId=…&token=…[&clientId=…][&lastSeq=…]`
    /// for the machine's connect parameters. It holds the token: never log it.
    #[must_use]
    pub fn progress_url(&self, params: &ConnectParams) -> Url {
        let mut url = self.at(&["ws", "progress"]);
        let ws = if self.is_tls() { "wss" } else { "ws" };
        let _ = url.set_scheme(ws);
        url.set_query(Some(&params.query()));
        url
    }

    /// `GET /api/job-state/{jobId}`.
    #[must_use]
    pub fn job_state_url(&self, job_id: &str) -> Url {
        self.at(&["api", "job-state", job_id])
    }

    /// `POST /api/jobs`.
    pub(crate) fn jobs(&self) -> Url {
        self.at(&["api", "jobs"])
    }

    /// `/api/jobs/{jobId}`, then `/{tail}` unless `tail` is empty (e.g. `events`).
    pub(crate) fn job(&self, job_id: &str, tail: &str) -> Url {
        if tail.is_empty() {
            self.at(&["api", "jobs", job_id])
        } else {
            self.at(&["api", "jobs", job_id, tail])
        }
    }

    /// The base with these path segments appended (each percent-encoded).
    fn at(&self, segments: &[&str]) -> Url {
        let mut url = self.http.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.http.as_str().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::protocol::Seq;
    use gateway_core::token::Token;

    fn params(last_seq: Option<u64>) -> ConnectParams {
        ConnectParams {
            job_id: "j 1".into(),
            token: Token::from_string("t&k".into()),
            client_id: Some("app".into()),
            last_seq: last_seq.map(Seq),
        }
    }

    #[test]
    fn schemes_and_paths() {
        let e = Endpoint::parse("http://127.0.0.1:8787/").unwrap();
        assert_eq!(
            e.progress_url(&params(Some(4))).as_str(),
            "ws://127.0.0.1:8787/ws/progress?jobId=j+1&token=t%26k&clientId=app&lastSeq=4"
        );
        assert_eq!(
            e.job_state_url("j 1").as_str(),
            "http://127.0.0.1:8787/api/job-state/j%201"
        );
        assert_eq!(
            e.job("j", "events").as_str(),
            "http://127.0.0.1:8787/api/jobs/j/events"
        );
        assert_eq!(e.job("j", "").as_str(), "http://127.0.0.1:8787/api/jobs/j");
        assert_eq!(e.to_string(), "http://127.0.0.1:8787");
        assert_eq!(
            Endpoint::parse("ws://h").unwrap(),
            Endpoint::parse("http://h").unwrap()
        );
        assert!(!e.is_tls());
    }

    #[test]
    fn tls_and_a_path_prefix() {
        let tls = Endpoint::parse("https://gw.example.dev/base/").unwrap();
        assert!(tls.is_tls());
        assert_eq!(tls, Endpoint::parse("wss://gw.example.dev/base").unwrap());
        assert_eq!(
            tls.progress_url(&params(None)).as_str(),
            "wss://gw.example.dev/base/ws/progress?jobId=j+1&token=t%26k&clientId=app"
        );
        assert_eq!(
            tls.job_state_url("j").as_str(),
            "https://gw.example.dev/base/api/job-state/j"
        );
        assert_eq!(tls.jobs().as_str(), "https://gw.example.dev/base/api/jobs");
    }

    #[test]
    fn unusable_bases() {
        assert!(matches!(
            Endpoint::parse("https://"),
            Err(EndpointError::Invalid(_))
        ));
        assert!(matches!(
            Endpoint::parse("127.0.0.1:8787"),
            Err(EndpointError::Invalid(_) | EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("ftp://h"),
            Err(EndpointError::Scheme(_))
        ));
        assert_eq!(Endpoint::parse("http://h?x"), Err(EndpointError::Query));
        assert_eq!(Endpoint::parse("http://h/#f"), Err(EndpointError::Query));
    }

    #[test]
    fn loopback_hosts() {
        for base in [
            "http://127.0.0.1:8787",
            "http://127.255.255.254",
            "ws://localhost:8787",
            "http://LOCALHOST.",
            "http://[::1]:8787",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(Endpoint::parse(base).unwrap().is_loopback(), "{base}");
        }
        for base in [
            "http://128.0.0.1",
            "http://126.255.255.255",
            "http://0.0.0.0:8787",
            "http://10.0.0.1",
            "http://[::2]",
            "http://[::ffff:10.0.0.1]",
            "http://localhost.example.com",
            "http://mylocalhost",
            "https://gw.example.workers.dev",
        ] {
            assert!(!Endpoint::parse(base).unwrap().is_loopback(), "{base}");
        }
        assert_eq!(
            Endpoint::parse("http://user:pw@gw.example.com:80/x")
                .unwrap()
                .host(),
            "gw.example.com"
        );
    }
}
