//! The producer's callback: an optional `callbackUrl` given at job creation
//! that the room notifies when a subscriber cancels the job or the job
//! expires. The room decides when to send and when to give up
//! ([`Effect::Notify`](crate::room::Effect::Notify)); the adapter sends, signs
//! with [`signature`] and reports the outcome back.

use crate::{HttpError, Millis};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest `callbackUrl`, in bytes.
pub const MAX_CALLBACK_URL_BYTES: usize = 2048;

/// The header that carries the signature: `t=<ms>,v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Gateway-Signature";

/// How long the adapter waits for one attempt's answer.
pub const ATTEMPT_TIMEOUT: Millis = Millis(5_000);

/// The wait after each failed attempt before the next: the first attempt
/// runs at once, then one retry after each of these, then the notification
/// is dropped.
pub const RETRY_BACKOFF: [Millis; 5] = [
    Millis(1_000),
    Millis(5_000),
    Millis(30_000),
    Millis(120_000),
    Millis(600_000),
];

/// Attempts in all: the first and one per [`RETRY_BACKOFF`] step.
pub const MAX_ATTEMPTS: u32 = 1 + RETRY_BACKOFF.len() as u32;

/// What the producer is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackEvent {
    /// A subscriber canceled the job.
    Canceled,
    /// The job ran the whole retention period without an event and ended as
    /// failed (`job_expired`).
    Expired,
}

/// A notification not yet acknowledged with a 2xx; kept in the job record so
/// it survives hibernation and eviction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingNotify {
    /// What happened.
    pub event: CallbackEvent,
    /// When it happened.
    pub at: Millis,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the next attempt is due. While an attempt runs this is already
    /// the time of the one after it (as if it failed), so an attempt lost
    /// with the instance is retried.
    pub due: Millis,
}

/// The body POSTed to the callback URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The job.
    pub job_id: String,
    /// What happened.
    pub event: CallbackEvent,
    /// When it happened (Unix ms).
    pub at: Millis,
}

impl CallbackBody {
    /// The JSON text that is sent and signed.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The [`SIGNATURE_HEADER`] value: `t=<t>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>`.
/// `t` is the sending time in Unix ms; receivers recompute the MAC over
/// the exact body bytes, compare in constant time and refuse an old `t`.
#[must_use]
pub fn signature(secret: &[u8], t: Millis, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        // HMAC takes keys of any length; this branch is unreachable.
        return String::new();
    };
    mac.update(t.0.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={},v1={}", t.0, hex::encode(mac.finalize().into_bytes()))
}

/// Checks a `callbackUrl`: an absolute `https://` URL, or `http://` to a
/// loopback host (local development and tests), without credentials, at most
/// [`MAX_CALLBACK_URL_BYTES`] long.
///
/// # Errors
/// 422 `invalid_callback_url`, saying what to send instead.
pub fn validate_url(url: &str) -> Result<(), HttpError> {
    let refuse = |why: &str| {
        Err(HttpError::new(
            422,
            "invalid_callback_url",
            format!("callbackUrl {why}; send an absolute https:// URL (http:// only to localhost, 127.0.0.1 or [::1]) of at most {MAX_CALLBACK_URL_BYTES} bytes"),
        ))
    };
    if url.len() > MAX_CALLBACK_URL_BYTES {
        return refuse(&format!("is {} bytes long", url.len()));
    }
    if url.bytes().any(|b| !b.is_ascii_graphic()) {
        return refuse("holds spaces, control or non-ASCII characters");
    }
    let lower = url.to_ascii_lowercase();
    let (https, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        (false, rest)
    } else {
        return refuse("is not an http(s) URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return refuse("holds credentials");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => return refuse("has an unclosed [IPv6] host"),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return refuse("has no host");
    }
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return refuse("has an invalid port");
        }
    }
    if !https && !is_loopback(host) {
        return refuse("uses http:// to a host that is not loopback");
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "::1"
        || host.strip_prefix("127.").is_some_and(|r| {
            let parts: Vec<&str> = r.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "https://example.com/hook",
            "HTTPS://example.com:8443/a?b=c",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
            "https://[2001:db8::1]/x",
        ] {
            assert_eq!(validate_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://example.com/",
            "http://example.com/cb",
            "http://10.0.0.1/cb",
            "http://127.0.0.1.evil.com/cb",
            "http://localhost.evil.com/cb",
            "https:///path",
            "https://user:pw@example.com/",
            "https://example.com:/",
            "https://example.com:99999999/",
            "https://exa mple.com/",
            "https://[::1/",
            "/relative",
        ] {
            let e = validate_url(bad).expect_err(bad);
            assert_eq!((e.status, e.code), (422, "invalid_callback_url"), "{bad}");
        }
    }

    #[test]
    fn url_length_limit() {
        let base = "https://example.com/";
        let at = format!("{base}{}", "a".repeat(MAX_CALLBACK_URL_BYTES - base.len()));
        assert_eq!(validate_url(&at), Ok(()));
        let over = format!("{at}a");
        assert_eq!(validate_url(&over).map_err(|e| e.status), Err(422));
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // openssl: printf '1700000000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        let s = signature(b"secret", Millis(1_700_000_000_000), r#"{"a":1}"#);
        assert_eq!(
            s,
            "t=1700000000000,v1=4ef2732b0d632a6897af3a6d02a6de287f60d6c5f15dabdb0ceb045a34e3c5a7"
        );
    }
}
