//! Every refusal the gateway makes, and the one place each maps to the wire:
//! a close code for a socket ([`GatewayError::close_code`]) or an HTTP status
//! and JSON body for a request ([`HttpError`]).

use crate::protocol::JobStatus;
use crate::CloseCode;
use thiserror::Error;

/// A subscriber frame the room refuses. Each closes the socket (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A binary frame; the protocol is text only.
    #[error("binary frames are not supported; send JSON text frames")]
    Binary,
    /// A text frame over 64 KiB.
    #[error("frame of {len} bytes is over the 65536-byte limit")]
    TooBig {
        /// Its size in bytes.
        len: usize,
    },
    /// Not JSON at all.
    #[error("invalid JSON: send one JSON object per frame")]
    InvalidJson,
    /// JSON, but not an object.
    #[error("a frame must be a JSON object")]
    NotAnObject,
    /// An object that names a key twice (at any depth): ambiguous, since
    /// readers differ on which one counts.
    #[error("key {key:?} appears twice in one object; send each key once")]
    DuplicateKey {
        /// The key (at most 64 characters of it).
        key: String,
    },
    /// An object without a string `type`.
    #[error("missing or non-string \"type\"")]
    MissingType,
    /// A known field with the wrong JSON type.
    #[error("field \"{field}\" has the wrong type")]
    WrongFieldType {
        /// The field's name.
        field: &'static str,
    },
    /// More than the allowed frames within the rate window.
    #[error("too many frames: at most 20 in any 10 s; reconnect later")]
    RateLimited,
}

/// Anything that ends a socket other than the job's own end.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The client's frame was refused.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An outgoing frame was over 32 MiB and was not sent.
    #[error("outgoing frame of {len} bytes is over the 32 MiB limit")]
    OutgoingTooBig {
        /// Its size in bytes.
        len: usize,
    },
    /// The socket's `clientId` connected again on a newer socket.
    #[error("superseded by a newer connection with the same clientId")]
    Superseded,
    /// The job's tokens were revoked.
    #[error("tokens revoked: get a new token from your backend")]
    Revoked,
    /// No ping for twice the ping interval.
    #[error("idle: no ping for 2 ping intervals; reconnect with lastSeq")]
    Idle,
    /// The room is restarting or shedding load; try again shortly.
    #[error("room restarting; reconnect with lastSeq")]
    Restarting,
    /// Storage failed or the adapter hit a bug; the room is reloaded.
    #[error("internal error; reconnect with lastSeq")]
    Internal,
}

impl GatewayError {
    /// The close code for this error; the adapter never picks a number itself.
    #[must_use]
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Self::Frame(FrameError::Binary) => CloseCode::Unsupported,
            Self::Frame(FrameError::TooBig { .. }) | Self::OutgoingTooBig { .. } => {
                CloseCode::TooBig
            }
            Self::Frame(FrameError::RateLimited) => CloseCode::TryAgainLater,
            Self::Frame(_) => CloseCode::Protocol,
            Self::Superseded => CloseCode::Superseded,
            Self::Revoked => CloseCode::Revoked,
            Self::Idle => CloseCode::Idle,
            Self::Restarting => CloseCode::Restarting,
            Self::Internal => CloseCode::InternalError,
        }
    }

    /// A close reason: at most 123 bytes, as WebSocket allows.
    #[must_use]
    pub fn close_reason(&self) -> String {
        let mut s = self.to_string();
        if s.len() > 123 {
            let mut end = 123;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// An HTTP refusal: status, stable snake_case code, and a message saying what
/// to do. Rendered as `{"error":{"code":…,"message":…}}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Error)]
#[error("{status} {code}: {message}")]
pub struct HttpError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl HttpError {
    /// A refusal without `Retry-After`.
    #[must_use]
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400.
    #[must_use]
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 401.
    #[must_use]
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 404 for a job.
    #[must_use]
    pub fn job_not_found() -> Self {
        Self::new(
            404,
            "job_not_found",
            "no such job; it may have ended more than 24 h ago",
        )
    }

    /// 409 for a job that has ended, coded by how it ended, so a producer
    /// learns that a subscriber canceled and stops working for nobody.
    #[must_use]
    pub fn job_ended(status: JobStatus) -> Self {
        let (code, message) = match status {
            JobStatus::Canceled => (
                "job_canceled",
                "a subscriber canceled the job; stop its work and send nothing more",
            ),
            JobStatus::Failed => (
                "job_failed",
                "the job has already failed; it accepts no more events (a retry of an applied eventId is still answered 202)",
            ),
            JobStatus::Completed | JobStatus::Pending | JobStatus::Processing => (
                "job_completed",
                "the job has already completed; it accepts no more events (a retry of an applied eventId is still answered 202)",
            ),
        };
        Self::new(409, code, message)
    }

    /// 500: the runtime failed (storage, a binding); the caller may retry.
    #[must_use]
    pub fn internal() -> Self {
        Self::new(
            500,
            "internal_error",
            "the gateway failed; retry with backoff",
        )
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> String {
        let body = crate::api::ErrorBody {
            error: crate::api::ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_errors_map_to_spec_codes() {
        let cases = [
            (FrameError::Binary, 1003),
            (FrameError::TooBig { len: 70_000 }, 1009),
            (FrameError::InvalidJson, 1002),
            (FrameError::NotAnObject, 1002),
            (FrameError::MissingType, 1002),
            (FrameError::DuplicateKey { key: "type".into() }, 1002),
            (FrameError::WrongFieldType { field: "type" }, 1002),
            (FrameError::RateLimited, 1013),
        ];
        for (e, code) in cases {
            assert_eq!(
                GatewayError::from(e.clone()).close_code().as_u16(),
                code,
                "{e:?}"
            );
        }
        assert_eq!(GatewayError::Superseded.close_code().as_u16(), 4000);
        assert_eq!(GatewayError::Idle.close_code().as_u16(), 4002);
        assert_eq!(GatewayError::Internal.close_code().as_u16(), 1011);
        assert_eq!(GatewayError::Revoked.close_code().as_u16(), 1008);
        assert_eq!(GatewayError::Restarting.close_code().as_u16(), 1012);
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let e = GatewayError::OutgoingTooBig { len: usize::MAX };
        assert!(e.close_reason().len() <= 123);
    }

    #[test]
    fn http_error_body_has_spec_shape() {
        let v: serde_json::Value =
            serde_json::from_str(&HttpError::job_not_found().body()).unwrap();
        assert_eq!(v["error"]["code"], "job_not_found");
        assert!(v["error"]["message"].is_string());
    }
}
