//! The wire format (SPEC §2, §3): the server's JSON envelope, subscriber frames,
//! producer events and their limits. Parsing never panics on any input.

use crate::api;
use crate::error::{FrameError, HttpError};
use crate::strict_json::{self, StrictJsonError};
use crate::Millis;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;

/// Envelope schema version (seed 003).
pub const SCHEMA_VERSION: &str = "1.0.0";
/// Largest subscriber frame the room reads.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Largest producer request body.
pub const MAX_PRODUCER_BODY: usize = 1024 * 1024;
/// Outgoing frames above this are logged as a warning (mobile data).
pub const WARN_OUTGOING: usize = 1_000_000;
/// Outgoing frames above this are never sent.
pub const MAX_OUTGOING: usize = 32 * 1024 * 1024;
/// The exact ping the runtime answers without waking the room.
pub const LITERAL_PING: &str = r#"{"type":"ping"}"#;
/// The runtime's exact answer to [`LITERAL_PING`].
pub const LITERAL_PONG: &str = r#"{"type":"pong"}"#;
/// Longest producer `eventId`.
pub const MAX_EVENT_ID: usize = 64;
/// Longest custom `jobId`.
pub const MAX_JOB_ID: usize = 64;
/// Largest integer the wire carries (counts, `lastSeq`): 2^53 − 1, the
/// largest that JavaScript and Dart apps read exactly.
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

/// Refuses an integer above [`MAX_SAFE_INTEGER`]; `what` names it.
pub fn check_safe_integer(what: &str, n: u64) -> Result<u64, String> {
    if n <= MAX_SAFE_INTEGER {
        Ok(n)
    } else {
        Err(format!(
            "{what} {n} is over 9007199254740991 (2^53 - 1), the largest integer \
             JavaScript and Dart apps read exactly"
        ))
    }
}

/// Per-job event sequence number: starts at 1, never goes backwards.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The next one.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// The kind of job (seed 003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// Book enrichment batches.
    BatchEnrichment,
    /// CSV imports.
    CsvImport,
    /// Bookshelf scans.
    AiScan,
}

impl Pipeline {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BatchEnrichment => "batch_enrichment",
            Self::CsvImport => "csv_import",
            Self::AiScan => "ai_scan",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::BatchEnrichment, Self::CsvImport, Self::AiScan]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Where a job is (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, not started.
    Pending,
    /// Started or progressing.
    Processing,
    /// Ended with `complete`.
    Completed,
    /// Ended with `failed`.
    Failed,
    /// Canceled by a subscriber.
    Canceled,
}

impl JobStatus {
    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the job has ended.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// `processedCount / totalCount` clamped to 0..=1; 0 when the total is unknown.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn progress_ratio(processed: u64, total: Option<u64>) -> f64 {
    match total {
        Some(t) if t > 0 => (processed as f64 / t as f64).clamp(0.0, 1.0),
        _ => 0.0,
    }
}

// ---------------------------------------------------------------------------
// Server → subscriber

/// Job counters as a snapshot shows them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// The job's status.
    pub status: JobStatus,
    /// Items done.
    pub processed_count: u64,
    /// Items in all, if known.
    pub total_count: Option<u64>,
}

/// A message from the gateway to a subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerMessage {
    /// `job_started`.
    JobStarted {
        /// Items in all, if known.
        total_count: Option<u64>,
        /// Free text.
        message: Option<String>,
    },
    /// `job_progress`.
    JobProgress {
        /// Items done.
        processed_count: u64,
        /// Items in all, if known.
        total_count: Option<u64>,
        /// What is being worked on.
        current_item: Option<String>,
        /// Free text.
        message: Option<String>,
    },
    /// `job_complete`, then close 1000.
    JobComplete {
        /// The producer's summary, as JSON text.
        summary: String,
    },
    /// `error`: the job failed (then close 4001) or a client frame was refused.
    Error {
        /// Stable code.
        code: String,
        /// Human text.
        message: String,
        /// Whether retrying may help.
        retryable: bool,
    },
    /// `snapshot` (or `reconnected` when `resumed`): first frame on each socket.
    Snapshot {
        /// The socket resumed with `lastSeq`: the type is `reconnected`.
        resumed: bool,
        /// Continuity proven: nothing but folded progress was missed.
        recovered: bool,
        /// The state.
        state: Snapshot,
    },
    /// `token_refresh`: a new token for later reconnects.
    TokenRefresh {
        /// The new token.
        token: String,
        /// Its expiry.
        expires_at: Millis,
    },
    /// `pong` envelope, for a ping that reached the room.
    Pong,
}

impl ServerMessage {
    /// The envelope's `type`.
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::JobStarted { .. } => "job_started",
            Self::JobProgress { .. } => "job_progress",
            Self::JobComplete { .. } => "job_complete",
            Self::Error { .. } => "error",
            Self::Snapshot { resumed: false, .. } => "snapshot",
            Self::Snapshot { resumed: true, .. } => "reconnected",
            Self::TokenRefresh { .. } => "token_refresh",
            Self::Pong => "pong",
        }
    }

    /// The payload as the contract's type (`crate::api`).
    fn payload(&self) -> Payload<'_> {
        match self {
            Self::JobStarted {
                total_count,
                message,
            } => Payload::Started(api::JobStartedPayload {
                message: message.clone(),
                total_count: *total_count,
            }),
            Self::JobProgress {
                processed_count,
                total_count,
                current_item,
                message,
            } => Payload::Progress(api::JobProgressPayload {
                current_item: current_item.clone(),
                message: message.clone(),
                processed_count: *processed_count,
                progress: progress_ratio(*processed_count, *total_count),
                total_count: *total_count,
            }),
            // The producer's summary as the exact text it sent: no number
            // is rounded on its way through.
            Self::JobComplete { summary } => Payload::Summary {
                summary: serde_json::from_str(summary).ok(),
            },
            Self::Error {
                code,
                message,
                retryable,
            } => Payload::Error(api::ErrorPayload {
                code: code.clone(),
                message: message.clone(),
                retryable: *retryable,
            }),
            Self::Snapshot {
                recovered, state, ..
            } => {
                let progress = progress_ratio(state.processed_count, state.total_count);
                Payload::Snapshot(api::SnapshotPayload {
                    current_progress: progress,
                    processed_count: state.processed_count,
                    progress,
                    recovered: *recovered,
                    status: state.status,
                    total_count: state.total_count,
                })
            }
            Self::TokenRefresh { token, expires_at } => {
                Payload::TokenRefresh(api::TokenRefreshPayload {
                    expires_at: expires_at.0,
                    token: token.clone(),
                })
            }
            Self::Pong => Payload::Pong(api::PongPayload {}),
        }
    }
}

/// Who a frame is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobHeader {
    /// The job's id.
    pub job_id: String,
    /// Its pipeline.
    pub pipeline: Pipeline,
}

/// One decoded server frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerFrame {
    /// Envelope `seq`, for job events and snapshots.
    pub seq: Option<Seq>,
    /// The message.
    pub message: ServerMessage,
}

/// One envelope, its keys in the order a sorted map would give them.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "jobId")]
    job_id: &'a str,
    payload: Payload<'a>,
    pipeline: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    timestamp: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    version: &'static str,
}

/// A frame's payload: one of the contract's payload types (`crate::api`),
/// whose fields are declared in the order a sorted map would give them.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Snapshot(api::SnapshotPayload),
    Started(api::JobStartedPayload),
    Progress(api::JobProgressPayload),
    Error(api::ErrorPayload),
    TokenRefresh(api::TokenRefreshPayload),
    Pong(api::PongPayload),
    /// The producer's summary, forwarded as the exact text it sent.
    Summary {
        summary: Option<&'a RawValue>,
    },
}

/// Encodes one envelope (SPEC §2).
#[must_use]
pub fn encode(job: &JobHeader, timestamp: Millis, seq: Option<Seq>, msg: &ServerMessage) -> String {
    let envelope = Envelope {
        job_id: &job.job_id,
        payload: msg.payload(),
        pipeline: job.pipeline.as_str(),
        seq: seq.map(|s| s.0),
        timestamp: timestamp.0,
        kind: msg.type_name(),
        version: SCHEMA_VERSION,
    };
    // Serializing strings, numbers and valid raw JSON cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// What the size guard says about an outgoing frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutgoingSize {
    /// Fine.
    Ok,
    /// Over 1 MB: send, but log a warning.
    Large,
    /// Over 32 MiB: never send.
    TooBig,
}

/// Measures an outgoing frame (SPEC §2).
#[must_use]
pub const fn check_outgoing(len: usize) -> OutgoingSize {
    if len > MAX_OUTGOING {
        OutgoingSize::TooBig
    } else if len > WARN_OUTGOING {
        OutgoingSize::Large
    } else {
        OutgoingSize::Ok
    }
}

/// Why a server frame could not be decoded (client side).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable server frame: {0}")]
pub struct ServerFrameError(pub &'static str);

/// Decodes a server frame; used by the client machine. The payload is read
/// into its contract type (`crate::api`, the types `docs/asyncapi.json` is
/// generated from): a frame whose payload lacks a field its schema requires is
/// an error, like an unknown `type`, and the client ignores it. Fields it does
/// not know are ignored (a later gateway may add some), and so are the
/// envelope's `jobId`, `pipeline`, `timestamp` and `version`, which the client
/// does not use.
pub fn decode(text: &str) -> Result<ServerFrame, ServerFrameError> {
    /// The envelope as the client reads it.
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type")]
        kind: std::borrow::Cow<'a, str>,
        #[serde(default)]
        seq: Option<u64>,
        #[serde(default, borrow)]
        payload: Option<&'a RawValue>,
    }
    fn payload<'a, T: Deserialize<'a>>(
        raw: Option<&'a RawValue>,
        what: &'static str,
    ) -> Result<T, ServerFrameError> {
        serde_json::from_str(raw.map_or("{}", RawValue::get)).map_err(|_| ServerFrameError(what))
    }

    if text == LITERAL_PONG {
        return Ok(ServerFrame {
            seq: None,
            message: ServerMessage::Pong,
        });
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(text).map_err(|_| ServerFrameError("not an envelope"))?;
    let raw = envelope.payload;
    let message = match &*envelope.kind {
        "job_started" => {
            let p: api::JobStartedPayload = payload(raw, "bad job_started payload")?;
            ServerMessage::JobStarted {
                total_count: p.total_count,
                message: p.message,
            }
        }
        "job_progress" => {
            let p: api::JobProgressPayload = payload(raw, "bad job_progress payload")?;
            ServerMessage::JobProgress {
                processed_count: p.processed_count,
                total_count: p.total_count,
                current_item: p.current_item,
                message: p.message,
            }
        }
        "job_complete" => {
            let p: api::JobCompletePayload = payload(raw, "bad job_complete payload")?;
            // The producer's summary as the exact text it sent.
            ServerMessage::JobComplete {
                summary: p.summary.get().to_owned(),
            }
        }
        "error" => {
            let p: api::ErrorPayload = payload(raw, "bad error payload")?;
            ServerMessage::Error {
                code: p.code,
                message: p.message,
                retryable: p.retryable,
            }
        }
        kind @ ("snapshot" | "reconnected") => {
            let p: api::SnapshotPayload = payload(raw, "bad snapshot payload")?;
            ServerMessage::Snapshot {
                resumed: kind == "reconnected",
                recovered: p.recovered,
                state: Snapshot {
                    status: p.status,
                    processed_count: p.processed_count,
                    total_count: p.total_count,
                },
            }
        }
        "token_refresh" => {
            let p: api::TokenRefreshPayload = payload(raw, "bad token_refresh payload")?;
            ServerMessage::TokenRefresh {
                token: p.token,
                expires_at: Millis(p.expires_at),
            }
        }
        "pong" => ServerMessage::Pong,
        _ => return Err(ServerFrameError("unknown type")),
    };
    Ok(ServerFrame {
        seq: envelope.seq.map(Seq),
        message,
    })
}

// ---------------------------------------------------------------------------
// Subscriber → server

/// A frame as the socket delivered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame of this many bytes.
    Binary(usize),
}

/// A subscriber message that reached the room.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientMessage {
    /// A ping other than the literal one: answered with a `pong` envelope.
    Ping,
    /// Cancel the job.
    Cancel,
    /// A well-formed message of a type this gateway does not know.
    Unknown {
        /// Its `type`.
        type_name: String,
    },
}

/// Parses a subscriber frame (SPEC §3). Never panics.
///
/// An object naming a key twice, at any depth, is refused (`1002`), and so is
/// a number beyond a double's range, as for every JSON the gateway reads.
/// Fields other than `type`, `timestamp` (ping) and `reason` (cancel) are
/// ignored whatever they hold; `timestamp` may be any number.
pub fn parse_client_frame(frame: Incoming<'_>) -> Result<ClientMessage, FrameError> {
    let text = match frame {
        Incoming::Binary(_) => return Err(FrameError::Binary),
        Incoming::Text(t) => t,
    };
    if text.len() > MAX_CLIENT_FRAME {
        return Err(FrameError::TooBig { len: text.len() });
    }
    strict_json::check(text).map_err(|e| match e {
        StrictJsonError::DuplicateKey(key) => FrameError::DuplicateKey { key },
        _ => FrameError::InvalidJson,
    })?;
    let fields: HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|_| FrameError::NotAnObject)?;
    let ty = fields
        .get("type")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .ok_or(FrameError::MissingType)?;
    let field_is = |k: &'static str, first: fn(char) -> bool| match fields.get(k) {
        None => Ok(()),
        Some(raw) if raw.get() == "null" || raw.get().starts_with(first) => Ok(()),
        Some(_) => Err(FrameError::WrongFieldType { field: k }),
    };
    match ty.as_str() {
        "ping" => {
            field_is("timestamp", |c| c == '-' || c.is_ascii_digit())?;
            Ok(ClientMessage::Ping)
        }
        "cancel" => {
            field_is("reason", |c| c == '"')?;
            Ok(ClientMessage::Cancel)
        }
        other => Ok(ClientMessage::Unknown {
            type_name: other.chars().take(64).collect(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Producer → room

/// One producer event (SPEC §3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProducerEvent {
    /// Idempotency key: a repeat is answered with the original `seq`.
    pub event_id: Option<String>,
    /// What happened.
    pub kind: EventKind,
}

/// What a producer event reports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The job started.
    Started {
        /// Items in all, if known.
        total_count: Option<u64>,
        /// Free text.
        message: Option<String>,
    },
    /// Progress.
    Progress {
        /// Items done; may not decrease.
        processed_count: u64,
        /// Items in all, if known.
        total_count: Option<u64>,
        /// What is being worked on.
        current_item: Option<String>,
        /// Free text.
        message: Option<String>,
    },
    /// Success, with the summary as JSON text.
    Complete {
        /// JSON text.
        summary: String,
    },
    /// Failure.
    Failed {
        /// Stable code.
        code: String,
        /// Human text.
        message: String,
    },
}

impl EventKind {
    /// Whether the event ends the job.
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(self, Self::Complete { .. } | Self::Failed { .. })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    event_id: Option<String>,
    total_count: Option<u64>,
    processed_count: Option<u64>,
    current_item: Option<String>,
    message: Option<String>,
    summary: Option<Box<RawValue>>,
    code: Option<String>,
}

fn unprocessable(message: impl Into<String>) -> HttpError {
    HttpError::new(422, "invalid_event", message)
}

/// The refusal of a body that is not strict JSON, with the status its route
/// gives malformed bodies.
fn not_strict_json(e: &StrictJsonError, status: u16, code: &'static str) -> HttpError {
    match e {
        StrictJsonError::DuplicateKey(_) => HttpError::new(status, "duplicate_key", e.to_string()),
        _ => HttpError::new(status, code, format!("body is {e}")),
    }
}

impl RawEvent {
    fn validate(self) -> Result<ProducerEvent, HttpError> {
        if let Some(id) = &self.event_id {
            if id.is_empty() || id.chars().count() > MAX_EVENT_ID {
                return Err(unprocessable("eventId must be 1 to 64 characters"));
            }
        }
        for (what, n) in [
            ("totalCount", self.total_count),
            ("processedCount", self.processed_count),
        ] {
            if let Some(n) = n {
                check_safe_integer(what, n).map_err(unprocessable)?;
            }
        }
        let kind = match self.kind.as_str() {
            "started" => EventKind::Started {
                total_count: self.total_count,
                message: self.message,
            },
            "progress" => EventKind::Progress {
                processed_count: self
                    .processed_count
                    .ok_or_else(|| unprocessable("a progress event needs processedCount"))?,
                total_count: self.total_count,
                current_item: self.current_item,
                message: self.message,
            },
            // Kept as sent: the strict check already refused what not every
            // reader reads (a duplicate key, a number beyond a double).
            "complete" => EventKind::Complete {
                summary: self
                    .summary
                    .map_or_else(|| "null".to_owned(), |r| r.get().to_owned()),
            },
            "failed" => EventKind::Failed {
                code: self.code.unwrap_or_else(|| "job_failed".to_owned()),
                message: self.message.unwrap_or_else(|| "the job failed".to_owned()),
            },
            other => {
                return Err(unprocessable(format!(
                    "unknown event type {:?}; use started, progress, complete or failed",
                    other.chars().take(32).collect::<String>()
                )))
            }
        };
        Ok(ProducerEvent {
            event_id: self.event_id,
            kind,
        })
    }
}

/// Parses a producer body: one event object or an array of them.
pub fn parse_producer_body(body: &[u8]) -> Result<Vec<ProducerEvent>, HttpError> {
    if body.len() > MAX_PRODUCER_BODY {
        return Err(HttpError::new(
            413,
            "payload_too_large",
            format!(
                "body of {} bytes is over the 1 MiB limit; send fewer events per request",
                body.len()
            ),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| unprocessable(format!("body is not valid JSON: not UTF-8: {e}")))?;
    strict_json::check(text).map_err(|e| not_strict_json(&e, 422, "invalid_event"))?;
    // Events are read from their raw text, so that a summary keeps every digit.
    let items: Vec<&RawValue> = match text.trim_start().chars().next() {
        Some('[') => serde_json::from_str(text),
        Some('{') => serde_json::from_str(text).map(|one| vec![one]),
        _ => {
            return Err(unprocessable(
                "body must be an event object or an array of events",
            ))
        }
    }
    .map_err(|e| unprocessable(format!("body is not valid JSON: {e}")))?;
    if items.is_empty() {
        return Err(unprocessable("empty event array"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_str::<RawEvent>(item.get())
                .map_err(|e| unprocessable(format!("event {i}: {e}")))
                .and_then(RawEvent::validate)
        })
        .collect()
}

/// Encodes producer events back to their wire form, one object or an array
/// (used by tests and the fuzzers), through the contract's type
/// [`api::EventsRequest`]: a summary goes out as the exact text it holds.
#[must_use]
pub fn encode_producer_body(events: &[ProducerEvent], force_array: bool) -> String {
    let body = match events {
        [one] if !force_array => api::EventsRequest::One(one.into()),
        _ => api::EventsRequest::Many(events.iter().map(Into::into).collect()),
    };
    // Strings, integers and JSON text always serialize.
    serde_json::to_string(&body).unwrap_or_default()
}

/// A validated `POST /api/jobs` body (serialized only from the router to
/// the room, see [`crate::http::ToRoom`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJob {
    /// The producer's own id, if it chose one.
    pub job_id: Option<String>,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Items in all, if known.
    pub total_count: Option<u64>,
    /// Token lifetime.
    pub ttl: Millis,
    /// Where the room notifies the producer of a cancel or expiry
    /// (checked by [`crate::callback::validate_url`]).
    pub callback_url: Option<String>,
}

/// Default token lifetime (2 h).
pub const DEFAULT_TTL_SECS: u64 = 7200;

/// Whether a job id is safe in a URL and a storage key.
#[must_use]
pub fn is_valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a `POST /api/jobs` body.
pub fn parse_create_job(body: &[u8]) -> Result<CreateJob, HttpError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        pipeline: String,
        total_count: Option<u64>,
        job_id: Option<String>,
        ttl_seconds: Option<u64>,
        callback_url: Option<String>,
    }
    if body.len() > MAX_PRODUCER_BODY {
        return Err(HttpError::new(
            413,
            "payload_too_large",
            "body is over the 1 MiB limit",
        ));
    }
    let refused = |e: &dyn std::fmt::Display| {
        HttpError::bad_request(
            "invalid_body",
            format!("expected {{pipeline, totalCount?, jobId?, ttlSeconds?, callbackUrl?}}: {e}"),
        )
    };
    strict_json::check_bytes(body).map_err(|e| match e {
        StrictJsonError::DuplicateKey(_) => not_strict_json(&e, 400, "invalid_body"),
        _ => refused(&e),
    })?;
    let raw: Raw = serde_json::from_slice(body).map_err(|e| refused(&e))?;
    let pipeline = Pipeline::parse(&raw.pipeline).ok_or_else(|| {
        HttpError::bad_request(
            "unknown_pipeline",
            "pipeline must be one of batch_enrichment, csv_import, ai_scan",
        )
    })?;
    if let Some(id) = &raw.job_id {
        if !is_valid_job_id(id) {
            return Err(HttpError::bad_request(
                "invalid_job_id",
                "jobId must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
            ));
        }
    }
    if let Some(n) = raw.total_count {
        check_safe_integer("totalCount", n)
            .map_err(|m| HttpError::bad_request("invalid_total_count", m))?;
    }
    let ttl = raw.ttl_seconds.unwrap_or(DEFAULT_TTL_SECS);
    if !(60..=86_400).contains(&ttl) {
        return Err(HttpError::bad_request(
            "invalid_ttl",
            "ttlSeconds must be between 60 and 86400",
        ));
    }
    if let Some(url) = &raw.callback_url {
        crate::callback::validate_url(url)?;
    }
    Ok(CreateJob {
        job_id: raw.job_id,
        pipeline,
        total_count: raw.total_count,
        ttl: Millis::from_secs(ttl),
        callback_url: raw.callback_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn job() -> JobHeader {
        JobHeader {
            job_id: "j1".into(),
            pipeline: Pipeline::CsvImport,
        }
    }

    #[test]
    fn seed_bad_frames_close_with_1002() {
        for bad in [
            r#"{"invalid": "json""#,
            "null",
            r#""not an object""#,
            "{}",
            r#"{"type": 123}"#,
        ] {
            let e = parse_client_frame(Incoming::Text(bad)).unwrap_err();
            assert_eq!(
                crate::error::GatewayError::from(e).close_code().as_u16(),
                1002,
                "{bad}"
            );
        }
    }

    #[test]
    fn oversized_and_binary_frames() {
        let big = format!(
            r#"{{"type":"ping","x":"{}"}}"#,
            "a".repeat(MAX_CLIENT_FRAME)
        );
        assert!(matches!(
            parse_client_frame(Incoming::Text(&big)),
            Err(FrameError::TooBig { .. })
        ));
        assert_eq!(
            parse_client_frame(Incoming::Binary(3)),
            Err(FrameError::Binary)
        );
    }

    #[test]
    fn known_and_unknown_types() {
        assert_eq!(
            parse_client_frame(Incoming::Text(r#"{ "type": "ping" }"#)),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            parse_client_frame(Incoming::Text(r#"{"type":"cancel"}"#)),
            Ok(ClientMessage::Cancel)
        );
        assert_eq!(
            parse_client_frame(Incoming::Text(r#"{"type":"subscribe"}"#)),
            Ok(ClientMessage::Unknown {
                type_name: "subscribe".into()
            })
        );
        assert_eq!(
            parse_client_frame(Incoming::Text(r#"{"type":"ping","timestamp":"x"}"#)),
            Err(FrameError::WrongFieldType { field: "timestamp" })
        );
    }

    #[test]
    fn envelope_has_spec_fields() {
        let text = encode(
            &job(),
            Millis(1_763_000_000_000),
            Some(Seq(17)),
            &ServerMessage::JobProgress {
                processed_count: 5,
                total_count: Some(10),
                current_item: None,
                message: None,
            },
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "job_progress");
        assert_eq!(v["jobId"], "j1");
        assert_eq!(v["pipeline"], "csv_import");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["seq"], 17);
        assert_eq!(v["timestamp"], 1_763_000_000_000_u64);
        assert_eq!(v["payload"]["progress"], 0.5);
        let back = decode(&text).unwrap();
        assert_eq!(back.seq, Some(Seq(17)));
    }

    #[test]
    fn pong_has_no_seq() {
        let text = encode(&job(), Millis(1), None, &ServerMessage::Pong);
        assert!(!text.contains("seq"));
        assert_eq!(decode(LITERAL_PONG).unwrap().message, ServerMessage::Pong);
    }

    #[test]
    fn producer_events() {
        let ev = parse_producer_body(br#"[{"type":"started","totalCount":50},{"type":"progress","processedCount":3,"eventId":"e1"}]"#).unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].event_id.as_deref(), Some("e1"));
        assert_eq!(
            parse_producer_body(br#"{"type":"progress"}"#)
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(
            parse_producer_body(br#"{"type":"nope"}"#)
                .unwrap_err()
                .status,
            422
        );
        assert_eq!(parse_producer_body(b"[]").unwrap_err().status, 422);
        let big = vec![b' '; MAX_PRODUCER_BODY + 1];
        assert_eq!(parse_producer_body(&big).unwrap_err().status, 413);
        let s = parse_producer_body(br#"{"type":"complete","summary":{"books":3}}"#).unwrap();
        assert_eq!(
            s[0].kind,
            EventKind::Complete {
                summary: r#"{"books":3}"#.into()
            }
        );
    }

    #[test]
    fn create_job_validation() {
        assert_eq!(
            parse_create_job(br#"{"pipeline":"csv_import"}"#)
                .unwrap()
                .ttl,
            Millis::from_secs(7200)
        );
        assert_eq!(
            parse_create_job(br#"{"pipeline":"x"}"#).unwrap_err().code,
            "unknown_pipeline"
        );
        assert_eq!(
            parse_create_job(br#"{"pipeline":"ai_scan","ttlSeconds":5}"#)
                .unwrap_err()
                .code,
            "invalid_ttl"
        );
        assert_eq!(
            parse_create_job(br#"{"pipeline":"ai_scan","jobId":"a/b"}"#)
                .unwrap_err()
                .code,
            "invalid_job_id"
        );
    }

    #[test]
    fn outgoing_limits() {
        assert_eq!(check_outgoing(10), OutgoingSize::Ok);
        assert_eq!(check_outgoing(WARN_OUTGOING + 1), OutgoingSize::Large);
        assert_eq!(check_outgoing(MAX_OUTGOING + 1), OutgoingSize::TooBig);
    }
}
