//! The HTTP surface (SPEC §1) as pure functions, and the one decision the
//! Worker's router acts on ([`decide`]): routing, the checks that need no
//! room (origin, producer secret, 426/400, the subscriber token's MAC and
//! expiry, body size) and the CORS origin of every answer. The router
//! forwards a [`ToRoom`] to the job's Durable Object, which turns its
//! [`RoomRequest`] into the room's input without routing again.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::HttpError;
use crate::protocol::{
    check_safe_integer, is_valid_job_id, parse_create_job, CreateJob, Seq, MAX_PRODUCER_BODY,
};
use crate::room::Upgrade;
use crate::Millis;

/// Longest accepted `clientId`.
pub const MAX_CLIENT_ID: usize = 128;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`.
    Health,
    /// `POST /api/jobs` (producer).
    CreateJob,
    /// `POST /api/jobs/{id}/events` (producer).
    Events(String),
    /// `GET /api/jobs/{id}` (producer).
    Inspect(String),
    /// `POST /api/jobs/{id}/revoke` (producer).
    Revoke(String),
    /// `POST /api/jobs/{id}/tokens` (producer): a new subscriber token, e.g.
    /// after a revoke, for a user who signed in again.
    IssueToken(String),
    /// `POST /api/jobs/{id}/cancel` (subscriber token).
    Cancel(String),
    /// `GET /api/job-state/{id}` (subscriber token).
    JobState(String),
    /// `GET /ws/progress` (subscriber upgrade).
    Upgrade,
    /// `OPTIONS` on a subscriber route.
    Preflight,
    /// Anything else.
    Refused(HttpError),
}

impl Route {
    /// Whether the route needs the producer secret.
    #[must_use]
    pub const fn is_producer(&self) -> bool {
        matches!(
            self,
            Self::CreateJob
                | Self::Events(_)
                | Self::Inspect(_)
                | Self::Revoke(_)
                | Self::IssueToken(_)
        )
    }

    /// Whether the route is one an app calls from a browser, which answers CORS.
    #[must_use]
    pub const fn answers_cors(&self) -> bool {
        matches!(
            self,
            Self::Upgrade | Self::Cancel(_) | Self::JobState(_) | Self::Preflight
        )
    }

    /// The job the route is about, if any (the Upgrade's is in its query).
    #[must_use]
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Self::Events(j)
            | Self::Inspect(j)
            | Self::Revoke(j)
            | Self::IssueToken(j)
            | Self::Cancel(j)
            | Self::JobState(j) => Some(j),
            _ => None,
        }
    }
}

fn not_found() -> HttpError {
    HttpError::new(404, "not_found", "no such route; see docs/PROTOCOL.md")
}

fn method_not_allowed(allowed: &str) -> HttpError {
    HttpError::new(405, "method_not_allowed", format!("use {allowed}"))
}

/// Routes a request by method and path.
#[must_use]
pub fn route(method: &str, path: &str) -> Route {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let job = |id: &str, r: fn(String) -> Route| {
        if is_valid_job_id(id) {
            r(id.to_owned())
        } else {
            Route::Refused(HttpError::bad_request(
                "invalid_job_id",
                "jobId must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
            ))
        }
    };
    let subscriber_route = matches!(
        parts.as_slice(),
        ["ws", "progress"] | ["api", "job-state", _] | ["api", "jobs", _, "cancel"]
    );
    if method == "OPTIONS" && subscriber_route {
        return Route::Preflight;
    }
    match (method, parts.as_slice()) {
        ("GET", ["healthz"]) => Route::Health,
        ("POST", ["api", "jobs"]) => Route::CreateJob,
        ("POST", ["api", "jobs", id, "events"]) => job(id, Route::Events),
        ("GET", ["api", "jobs", id]) => job(id, Route::Inspect),
        ("POST", ["api", "jobs", id, "revoke"]) => job(id, Route::Revoke),
        ("POST", ["api", "jobs", id, "tokens"]) => job(id, Route::IssueToken),
        ("POST", ["api", "jobs", id, "cancel"]) => job(id, Route::Cancel),
        ("GET", ["api", "job-state", id]) => job(id, Route::JobState),
        ("GET", ["ws", "progress"]) => Route::Upgrade,
        (_, ["healthz"] | ["ws", "progress"] | ["api", "job-state", _] | ["api", "jobs", _]) => {
            Route::Refused(method_not_allowed("GET"))
        }
        (_, ["api", "jobs"] | ["api", "jobs", _, "events" | "revoke" | "cancel" | "tokens"]) => {
            Route::Refused(method_not_allowed("POST"))
        }
        _ => Route::Refused(not_found()),
    }
}

/// The upgrade checks that need no room (SPEC §1, in order): `426` without
/// `Upgrade: websocket`, then `400` for a missing or blank `jobId`/`token` or a
/// malformed `lastSeq`/`clientId`.
pub fn parse_upgrade(upgrade_header: Option<&str>, query: &str) -> Result<Upgrade, HttpError> {
    if !upgrade_header.is_some_and(|h| h.trim().eq_ignore_ascii_case("websocket")) {
        return Err(HttpError::new(
            426,
            "upgrade_required",
            "connect with a WebSocket client (Upgrade: websocket)",
        ));
    }
    let (mut job_id, mut token, mut client_id, mut last_seq) = (None, None, None, None);
    for (k, v) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        match k.as_ref() {
            "jobId" => job_id = Some(v.into_owned()),
            "token" => token = Some(v.into_owned()),
            "clientId" => client_id = Some(v.into_owned()),
            "lastSeq" => last_seq = Some(v.into_owned()),
            _ => {}
        }
    }
    let job_id = job_id.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        HttpError::bad_request(
            "missing_job_id",
            "add jobId to the URL (the wsUrl from job creation has it)",
        )
    })?;
    if !is_valid_job_id(&job_id) {
        return Err(HttpError::bad_request(
            "invalid_job_id",
            "jobId must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
        ));
    }
    let token = token.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        HttpError::bad_request("missing_token", "add &token= with the job's token")
    })?;
    let client_id = match client_id {
        None => None,
        Some(c)
            if !c.is_empty()
                && c.len() <= MAX_CLIENT_ID
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            Some(c)
        }
        Some(_) => {
            return Err(HttpError::bad_request(
                "invalid_client_id",
                "clientId must be 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.' or ':'",
            ))
        }
    };
    let last_seq = last_seq.as_deref().map(parse_last_seq).transpose()?;
    Ok(Upgrade {
        job_id,
        token,
        client_id,
        last_seq,
    })
}

/// `lastSeq` in canonical decimal: digits only, no sign, no leading zero
/// (except `0` itself), at most 2^53 − 1.
fn parse_last_seq(s: &str) -> Result<Seq, HttpError> {
    let refused = |m: &str| {
        HttpError::bad_request(
            "invalid_last_seq",
            format!("{m}; send the seq of the last frame you saw, e.g. lastSeq=17"),
        )
    };
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(refused(
            "lastSeq must be a decimal integer without sign or leading zeros",
        ));
    }
    let n = s
        .parse::<u64>()
        .map_err(|_| refused("lastSeq is over 9007199254740991 (2^53 - 1)"))?;
    check_safe_integer("lastSeq", n)
        .map(Seq)
        .map_err(|m| refused(&m))
}

/// The token of an `Authorization: Bearer …` header.
#[must_use]
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty()).then(|| rest.trim())
}

/// A subscriber route's bearer token, or `401`.
pub fn require_bearer(header: Option<&str>) -> Result<&str, HttpError> {
    bearer(header).ok_or_else(|| {
        HttpError::unauthorized("send Authorization: Bearer <token> with the job's token")
    })
}

/// Checks the producer secret (one secret; see
/// [`crate::config::ProducerSecrets`] for the rotation pair), comparing
/// SHA-256 digests in constant time.
pub fn authorize_producer(header: Option<&str>, secret: &str) -> Result<(), HttpError> {
    crate::config::ProducerSecrets::new(Some(secret), None).authorize(header)
}

/// A body refused by its declared `Content-Length`, before any of it is read:
/// `413` when over [`MAX_PRODUCER_BODY`]. A missing or unparsable header
/// passes; the reader then stops at `MAX_PRODUCER_BODY + 1` bytes.
pub fn check_content_length(header: Option<&str>) -> Result<(), HttpError> {
    let Some(digits) = header
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Ok(());
    };
    match digits.parse::<u64>() {
        Ok(len) if len <= MAX_PRODUCER_BODY as u64 => Ok(()),
        Ok(len) => Err(body_too_large(Some(len))),
        // More digits than a u64 holds.
        Err(_) => Err(body_too_large(None)),
    }
}

/// `413` for a body over [`MAX_PRODUCER_BODY`] (its length when declared).
#[must_use]
pub fn body_too_large(len: Option<u64>) -> HttpError {
    let size = len.map_or_else(|| "body".to_owned(), |n| format!("body of {n} bytes"));
    HttpError::new(
        413,
        "payload_too_large",
        format!(
            "{size} is over the 1 MiB ({MAX_PRODUCER_BODY}-byte) limit; send fewer events per request"
        ),
    )
}

/// Methods and headers a preflight allows.
pub const CORS_ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Headers a preflight allows.
pub const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type";

/// The refusal of a subscriber token that is malformed, forged, for
/// another job, expired, revoked or unknown: one answer for all, from the
/// edge and from the room alike, whether or not the job exists.
#[must_use]
pub fn bad_token() -> HttpError {
    HttpError::unauthorized("token is wrong, revoked or expired; get a new one from your backend")
}

/// What the router needs to know of a request (all borrowed from it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestParts<'a> {
    /// The method.
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: &'a str,
    /// `scheme://host[:port]` the caller used (for `wsUrl`/`stateUrl`).
    pub url_origin: &'a str,
    /// The `Origin` header (browsers only).
    pub origin: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Upgrade` header.
    pub upgrade: Option<&'a str>,
    /// The `Content-Length` header.
    pub content_length: Option<&'a str>,
}

/// What one request needs from its job's room, with everything the edge
/// already parsed and checked. Serialized from the router to the Durable
/// Object (see [`ToRoom`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RoomRequest {
    /// `POST /api/jobs` with its parsed body.
    Create {
        /// The body.
        request: CreateJob,
        /// `scheme://host` the producer called.
        origin: String,
    },
    /// `POST /api/jobs/{id}/events`; the body follows the envelope.
    Events,
    /// `GET /api/jobs/{id}`.
    Inspect,
    /// `POST /api/jobs/{id}/revoke`.
    Revoke,
    /// `POST /api/jobs/{id}/tokens`.
    IssueToken,
    /// `POST /api/jobs/{id}/cancel` with a token the edge checked.
    Cancel {
        /// The token.
        token: String,
    },
    /// `GET /api/job-state/{id}` with a token the edge checked.
    JobState {
        /// The token.
        token: String,
    },
    /// `GET /ws/progress` with its parsed query and a token the edge checked.
    Upgrade {
        /// The upgrade.
        request: Upgrade,
    },
}

impl RoomRequest {
    /// A stable name for logs (never the token).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Events => "events",
            Self::Inspect => "inspect",
            Self::Revoke => "revoke",
            Self::IssueToken => "issue_token",
            Self::Cancel { .. } => "cancel",
            Self::JobState { .. } => "job_state",
            Self::Upgrade { .. } => "upgrade",
        }
    }
}

/// A request for a job's room, and the CORS origin its answer carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToRoom {
    /// The job (names the Durable Object).
    pub job_id: String,
    /// What to do.
    pub request: RoomRequest,
    /// `Access-Control-Allow-Origin` of the answer, if any.
    pub cors: Option<String>,
}

/// An answer the edge gives itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A JSON answer (a refusal, or `/healthz`).
    Json {
        /// Status.
        status: u16,
        /// Body.
        body: String,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
        /// `Access-Control-Allow-Origin`, if any.
        cors: Option<String>,
    },
    /// `204` to a CORS preflight, allowing this origin (none: no CORS headers).
    Preflight {
        /// The allowed origin.
        cors: Option<String>,
    },
}

impl Reply {
    /// A refusal in the SPEC's error shape.
    #[must_use]
    pub fn error(e: &HttpError, cors: Option<String>) -> Self {
        Self::Json {
            status: e.status,
            body: e.body(),
            retry_after: e.retry_after,
            cors,
        }
    }
}

/// The router's one decision about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer at the edge; no room is touched.
    Reply(Reply),
    /// Forward to the job's room.
    ToRoom(ToRoom),
    /// `POST /api/jobs`: read the body (at most [`MAX_PRODUCER_BODY`] bytes),
    /// then [`decide_create`].
    ReadCreateBody,
}

/// Decides what happens to a request, before any body is read: every check
/// that needs no room, in the order of SPEC §1. The `now` is for token expiry.
#[must_use]
pub fn decide(parts: &RequestParts<'_>, config: &Config, now: Millis) -> Decision {
    // A browser origin that is not allowed gets no further, on any route.
    if let Err(e) = config.origins.check(parts.origin) {
        return Decision::Reply(Reply::error(&e, None));
    }
    let route = route(parts.method, parts.path);
    let cors = if route.answers_cors() {
        config.origins.cors(parts.origin)
    } else {
        None
    };
    let refuse = |e: HttpError| Decision::Reply(Reply::error(&e, cors.clone()));
    if route.is_producer() {
        if let Err(e) = config.producer.authorize(parts.authorization) {
            return refuse(e);
        }
    }
    let to_room = |job_id: String, request: RoomRequest| {
        Decision::ToRoom(ToRoom {
            job_id,
            request,
            cors: cors.clone(),
        })
    };
    // The token's MAC and expiry, so a forged or stale one never wakes a room.
    let check_token = |token: &str, job_id: &str| match &config.tokens {
        Some(keys) => keys
            .verify(token, job_id, now)
            .map(|_| ())
            .map_err(|_| bad_token()),
        None => Err(bad_token()),
    };
    let bearer_token = |job_id: &str| {
        require_bearer(parts.authorization)
            .and_then(|token| check_token(token, job_id).map(|()| token.to_owned()))
    };
    match route {
        Route::Health => Decision::Reply(Reply::Json {
            status: 200,
            body: r#"{"status":"ok"}"#.to_owned(),
            retry_after: None,
            cors: None,
        }),
        Route::Preflight => Decision::Reply(Reply::Preflight { cors }),
        Route::Refused(e) => refuse(e),
        Route::CreateJob => match check_content_length(parts.content_length) {
            Ok(()) => Decision::ReadCreateBody,
            Err(e) => refuse(e),
        },
        Route::Events(job) => match check_content_length(parts.content_length) {
            Ok(()) => to_room(job, RoomRequest::Events),
            Err(e) => refuse(e),
        },
        Route::Inspect(job) => to_room(job, RoomRequest::Inspect),
        Route::Revoke(job) => to_room(job, RoomRequest::Revoke),
        Route::IssueToken(job) => to_room(job, RoomRequest::IssueToken),
        Route::Cancel(job) => match bearer_token(&job) {
            Ok(token) => to_room(job, RoomRequest::Cancel { token }),
            Err(e) => refuse(e),
        },
        Route::JobState(job) => match bearer_token(&job) {
            Ok(token) => to_room(job, RoomRequest::JobState { token }),
            Err(e) => refuse(e),
        },
        Route::Upgrade => match parse_upgrade(parts.upgrade, parts.query) {
            Ok(up) => match check_token(&up.token, &up.job_id) {
                Ok(()) => to_room(up.job_id.clone(), RoomRequest::Upgrade { request: up }),
                Err(e) => refuse(e),
            },
            Err(e) => refuse(e),
        },
    }
}

/// The second half of [`decide`] for `POST /api/jobs`, once its body is
/// read: parses it and names the job (the body's id, or `new_job_id`).
///
/// # Errors
/// The refusal of a body that is not a valid job creation (400, 413, 422).
pub fn decide_create(
    body: &[u8],
    url_origin: &str,
    new_job_id: impl FnOnce() -> String,
) -> Result<ToRoom, Reply> {
    let request = parse_create_job(body).map_err(|e| Reply::error(&e, None))?;
    let job_id = request.job_id.clone().unwrap_or_else(new_job_id);
    Ok(ToRoom {
        job_id,
        request: RoomRequest::Create {
            request,
            origin: url_origin.to_owned(),
        },
        cors: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/healthz"), Route::Health);
        assert_eq!(route("POST", "/api/jobs"), Route::CreateJob);
        assert_eq!(
            route("POST", "/api/jobs/j1/events"),
            Route::Events("j1".into())
        );
        assert_eq!(
            route("GET", "/api/job-state/j1"),
            Route::JobState("j1".into())
        );
        assert_eq!(route("OPTIONS", "/ws/progress"), Route::Preflight);
        assert_eq!(
            route("POST", "/api/jobs/j1/tokens"),
            Route::IssueToken("j1".into())
        );
        assert!(route("POST", "/api/jobs/j1/tokens").is_producer());
        assert!(matches!(route("GET", "/nope"), Route::Refused(e) if e.status == 404));
        assert!(matches!(route("DELETE", "/api/jobs/j1"), Route::Refused(e) if e.status == 405));
        assert!(route("POST", "/api/jobs").is_producer());
        assert!(!route("POST", "/api/jobs/j/cancel").is_producer());
    }

    #[test]
    fn upgrade_checks_in_spec_order() {
        assert_eq!(
            parse_upgrade(None, "jobId=a&token=b").unwrap_err().status,
            426
        );
        assert_eq!(
            parse_upgrade(Some("websocket"), "token=b")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_upgrade(Some("websocket"), "jobId=a&token=%20")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_upgrade(Some("websocket"), "jobId=a&token=b&lastSeq=-1")
                .unwrap_err()
                .code,
            "invalid_last_seq"
        );
        assert_eq!(
            parse_upgrade(Some("websocket"), "jobId=a&token=b&clientId=a%20b")
                .unwrap_err()
                .code,
            "invalid_client_id"
        );
        let up = parse_upgrade(
            Some("WebSocket"),
            "?jobId=a&token=b&clientId=phone-1&lastSeq=7",
        )
        .unwrap();
        assert_eq!(up.last_seq, Some(Seq(7)));
        assert_eq!(up.client_id.as_deref(), Some("phone-1"));
    }

    #[test]
    fn a_declared_length_over_1_mib_is_413_before_reading() {
        assert_eq!(check_content_length(None), Ok(()));
        assert_eq!(check_content_length(Some("1048576")), Ok(()));
        assert_eq!(check_content_length(Some(" 0 ")), Ok(()));
        let e = check_content_length(Some("1048577")).unwrap_err();
        assert_eq!((e.status, e.code), (413, "payload_too_large"));
        assert!(e.message.contains("1048577 bytes"), "{e}");
        assert!(e.message.contains("send fewer events"), "{e}");
        let e = check_content_length(Some("99999999999999999999")).unwrap_err();
        assert_eq!(e.status, 413);
        // Unparsable: left to the bounded reader.
        assert_eq!(check_content_length(Some("abc")), Ok(()));
        assert_eq!(body_too_large(None).status, 413);
    }

    #[test]
    fn producer_auth() {
        assert!(authorize_producer(Some("Bearer s3"), "s3").is_ok());
        assert_eq!(
            authorize_producer(Some("Bearer s4"), "s3")
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(authorize_producer(None, "s3").unwrap_err().status, 401);
    }
}
