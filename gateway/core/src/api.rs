//! The wire contract as types: every HTTP request and answer body of SPEC §1
//! (with this gateway's additions), the error body, every WebSocket frame of
//! §2/§3 and the close codes of §4. `docs/openapi.json` and
//! `docs/asyncapi.json` are generated from these types ([`openapi`],
//! [`asyncapi`]; `cargo run -p gateway-core --example api-docs`), and a test
//! fails when the committed documents differ from what the code generates.
//!
//! The room serializes its answers from these types, and the Rust client,
//! the CLI, the simulation and the end-to-end helpers parse answers into them.
//! The schemas of answers and frames refuse unknown fields
//! (`additionalProperties: false`), so a body that grows a field the contract
//! does not name fails the end-to-end schema checks; serde itself ignores
//! unknown fields, so a client built on these types keeps working against a
//! newer gateway that added one. The producer's `summary` stays raw JSON
//! ([`RawValue`]).
//!
//! Fields of the HTTP answers are declared in the order of their wire names:
//! the room built these bodies as JSON maps, which sort their keys, and the
//! bodies keep those bytes (a test pins it).

use crate::close_code;
use crate::protocol::{JobStatus, Pipeline, MAX_EVENT_ID, MAX_JOB_ID};
use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::fmt;

impl JsonSchema for Pipeline {
    fn schema_name() -> Cow<'static, str> {
        "Pipeline".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The kind of job (seed 003); any other name is refused with 400 unknown_pipeline.",
            "type": "string",
            "enum": ["batch_enrichment", "csv_import", "ai_scan"],
        })
    }
}

impl JsonSchema for JobStatus {
    fn schema_name() -> Cow<'static, str> {
        "JobStatus".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Where a job is.",
            "type": "string",
            "enum": ["pending", "processing", "completed", "failed", "canceled"],
        })
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// Every refusal's body (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of a refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable `snake_case` code.
    pub code: String,
    /// What to do about it, for a developer.
    pub message: String,
}

/// `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Health {
    /// Always `ok`.
    pub status: OkLiteral,
}

/// The literal `ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OkLiteral {
    /// `ok`.
    #[serde(rename = "ok")]
    Ok,
}

/// `POST /api/jobs` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobRequest {
    /// The kind of job.
    pub pipeline: Pipeline,
    /// Items in all, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
    /// The producer's own id (default: a random UUID v4); `409` if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_JOB_ID), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub job_id: Option<String>,
    /// Token lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86_400))]
    pub ttl_seconds: Option<u64>,
    /// Where the gateway POSTs a signed notification when a subscriber
    /// cancels the job or it expires: `https://`, or `http://` to a loopback
    /// host; no credentials; `422 invalid_callback_url` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = crate::callback::MAX_CALLBACK_URL_BYTES))]
    pub callback_url: Option<String>,
}

impl CreateJobRequest {
    /// A request with only the pipeline set.
    #[must_use]
    pub const fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            total_count: None,
            job_id: None,
            ttl_seconds: None,
            callback_url: None,
        }
    }
}

/// `202` to `POST /api/jobs`.
// `Debug` (below) shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct CreateJobResponse {
    /// When the token expires, in ms since the epoch.
    pub expires_at: u64,
    /// The job's id.
    pub job_id: String,
    /// The state-sync URL.
    pub state_url: String,
    /// A subscriber token (a secret: never log it).
    pub token: String,
    /// The upgrade URL without the token (the app appends `&token=`).
    pub ws_url: String,
}

/// `202` to `POST /api/jobs/{jobId}/tokens`.
// `Debug` (below) shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct IssueTokenResponse {
    /// When it expires, in ms since the epoch.
    pub expires_at: u64,
    /// The job's id.
    pub job_id: String,
    /// The new subscriber token.
    pub token: String,
}

/// What `Debug` prints for a subscriber token: it is a secret, and a debug
/// print ends up in logs.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for CreateJobResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateJobResponse")
            .field("expires_at", &self.expires_at)
            .field("job_id", &self.job_id)
            .field("state_url", &self.state_url)
            .field("token", &REDACTED)
            .field("ws_url", &self.ws_url)
            .finish()
    }
}

impl fmt::Debug for IssueTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueTokenResponse")
            .field("expires_at", &self.expires_at)
            .field("job_id", &self.job_id)
            .field("token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for TokenRefreshPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefreshPayload")
            .field("expires_at", &self.expires_at)
            .field("token", &REDACTED)
            .finish()
    }
}

/// One producer event (SPEC §3), flat; optional fields may be left out.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProducerEvent {
    /// The job started.
    Started {
        /// Idempotency key.
        #[serde(rename = "eventId", default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_EVENT_ID))]
        event_id: Option<String>,
        /// Items in all, if known.
        #[serde(
            rename = "totalCount",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        total_count: Option<u64>,
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Progress; `processedCount` may not decrease.
    Progress {
        /// Idempotency key.
        #[serde(rename = "eventId", default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_EVENT_ID))]
        event_id: Option<String>,
        /// Items done.
        #[serde(rename = "processedCount")]
        processed_count: u64,
        /// Items in all, if known.
        #[serde(
            rename = "totalCount",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        total_count: Option<u64>,
        /// What is being worked on.
        #[serde(
            rename = "currentItem",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        current_item: Option<String>,
        /// Free text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Success; then the job is frozen.
    Complete {
        /// Idempotency key.
        #[serde(rename = "eventId", default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_EVENT_ID))]
        event_id: Option<String>,
        /// The result, any JSON (kept as sent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Value")]
        summary: Option<Box<RawValue>>,
    },
    /// Failure; then the job is frozen.
    Failed {
        /// Idempotency key.
        #[serde(rename = "eventId", default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_EVENT_ID))]
        event_id: Option<String>,
        /// Stable code (default `job_failed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        /// Human text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl From<&crate::protocol::ProducerEvent> for ProducerEvent {
    /// The wire form of a validated event; its summary stays the JSON text
    /// it holds (`null` if that is not JSON).
    fn from(e: &crate::protocol::ProducerEvent) -> Self {
        use crate::protocol::EventKind;
        let event_id = e.event_id.clone();
        match &e.kind {
            EventKind::Started {
                total_count,
                message,
            } => Self::Started {
                event_id,
                total_count: *total_count,
                message: message.clone(),
            },
            EventKind::Progress {
                processed_count,
                total_count,
                current_item,
                message,
            } => Self::Progress {
                event_id,
                processed_count: *processed_count,
                total_count: *total_count,
                current_item: current_item.clone(),
                message: message.clone(),
            },
            EventKind::Complete { summary } => Self::Complete {
                event_id,
                summary: Some(
                    RawValue::from_string(summary.clone())
                        .unwrap_or_else(|_| RawValue::NULL.to_owned()),
                ),
            },
            EventKind::Failed { code, message } => Self::Failed {
                event_id,
                code: Some(code.clone()),
                message: Some(message.clone()),
            },
        }
    }
}

/// `POST /api/jobs/{jobId}/events` body: one event or a non-empty array.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EventsRequest {
    /// One event.
    One(ProducerEvent),
    /// Several, applied whole or not at all.
    Many(#[schemars(length(min = 1, max = 1000))] Vec<ProducerEvent>),
}

/// `202` to `POST /api/jobs/{jobId}/events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EventsResponse {
    /// The `seq` of the body's last event (the original one for a retry).
    pub seq: u64,
}

/// `202` to `POST /api/jobs/{jobId}/revoke`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RevokeResponse {
    /// Always `true`.
    pub revoked: bool,
}

/// `202` to `POST /api/jobs/{jobId}/cancel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CancelResponse {
    /// Always `canceled`.
    pub status: Canceled,
}

/// The literal `canceled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Canceled {
    /// `canceled`.
    #[serde(rename = "canceled")]
    Canceled,
}

/// `200` to `GET /api/job-state/{jobId}` (SPEC §1, seed 002).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct JobState {
    /// The same as `progress` (seed 000's name).
    #[schemars(range(min = 0, max = 1))]
    pub current_progress: f64,
    /// The job's id.
    pub job_id: String,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Items done.
    pub processed_count: u64,
    /// processedCount / totalCount (0 when unknown).
    #[schemars(range(min = 0, max = 1))]
    pub progress: f64,
    /// The job's `seq` (its last event's).
    pub seq: u64,
    /// Where it is.
    pub status: JobStatus,
    /// Items in all, `null` if unknown.
    pub total_count: Option<u64>,
    /// Last change, ms since the epoch.
    pub updated_at: u64,
}

/// `200` to `GET /api/jobs/{jobId}`: the state plus the result.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct JobInspect {
    /// Creation, ms since the epoch.
    pub created_at: u64,
    /// The last `currentItem`, if any.
    pub current_item: Option<String>,
    /// The same as `progress`.
    #[schemars(range(min = 0, max = 1))]
    pub current_progress: f64,
    /// The end, ms since the epoch, `null` while running.
    pub ended_at: Option<u64>,
    /// The job's id.
    pub job_id: String,
    /// The last `message`, if any.
    pub message: Option<String>,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Items done.
    pub processed_count: u64,
    /// processedCount / totalCount (0 when unknown).
    #[schemars(range(min = 0, max = 1))]
    pub progress: f64,
    /// `null` until the job completed or failed.
    pub result: Option<JobResult>,
    /// The job's `seq`.
    pub seq: u64,
    /// Where it is.
    pub status: JobStatus,
    /// Items in all, `null` if unknown.
    pub total_count: Option<u64>,
    /// Last change, ms since the epoch.
    pub updated_at: u64,
}

/// How a job ended.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum JobResult {
    /// It completed.
    Completed {
        /// The producer's summary.
        #[schemars(with = "Value")]
        summary: Box<RawValue>,
    },
    /// It failed.
    Failed {
        /// The producer's code and message.
        error: ErrorDetail,
    },
}

/// An untagged enum buffers its input, and a buffered [`RawValue`] cannot be
/// read; the two shapes are told apart by their field instead.
impl<'de> Deserialize<'de> for JobResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default, deserialize_with = "present_raw")]
            summary: Option<Box<RawValue>>,
            #[serde(default)]
            error: Option<ErrorDetail>,
        }
        /// A present `summary`, `null` included.
        fn present_raw<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Box<RawValue>>, D::Error> {
            Box::<RawValue>::deserialize(d).map(Some)
        }
        match Fields::deserialize(d)? {
            Fields {
                summary: Some(summary),
                error: None,
            } => Ok(Self::Completed { summary }),
            Fields {
                summary: None,
                error: Some(error),
            } => Ok(Self::Failed { error }),
            _ => Err(serde::de::Error::custom(
                "a result holds either `summary` or `error`",
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// WebSocket frames

macro_rules! tag {
    ($name:ident, $lit:literal) => {
        #[doc = concat!("The literal `", $lit, "`.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            #[doc = concat!("`", $lit, "`.")]
            #[serde(rename = $lit)]
            Tag,
        }
    };
}

tag!(JobStartedType, "job_started");
tag!(JobProgressType, "job_progress");
tag!(JobCompleteType, "job_complete");
tag!(ErrorType, "error");
tag!(TokenRefreshType, "token_refresh");
tag!(PongType, "pong");
tag!(PingType, "ping");
tag!(CancelType, "cancel");
tag!(SchemaVersion, "1.0.0");

/// `snapshot`, or `reconnected` for a socket that resumed with `lastSeq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotType {
    /// A new socket.
    Snapshot,
    /// A socket that sent `lastSeq`.
    Reconnected,
}

macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $payload:ty, seq: required) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(deny_unknown_fields)]
        pub struct $name {
            /// The frame's type.
            #[serde(rename = "type")]
            pub kind: $ty,
            /// The job's id.
            pub job_id: String,
            /// Its pipeline.
            pub pipeline: Pipeline,
            /// When the gateway built the frame, ms since the epoch.
            pub timestamp: u64,
            /// Schema version.
            pub version: SchemaVersion,
            /// Per-job sequence number: starts at 1, one more per job event, never goes back.
            pub seq: u64,
            /// The content.
            pub payload: $payload,
        }
    };
    ($(#[$doc:meta])* $name:ident, $ty:ty, $payload:ty, seq: optional) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(deny_unknown_fields)]
        pub struct $name {
            /// The frame's type.
            #[serde(rename = "type")]
            pub kind: $ty,
            /// The job's id.
            pub job_id: String,
            /// Its pipeline.
            pub pipeline: Pipeline,
            /// When the gateway built the frame, ms since the epoch.
            pub timestamp: u64,
            /// Schema version.
            pub version: SchemaVersion,
            /// Present when the job failed (a job event); absent when one client message was refused.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub seq: Option<u64>,
            /// The content.
            pub payload: $payload,
        }
    };
    ($(#[$doc:meta])* $name:ident, $ty:ty, $payload:ty, seq: none) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(deny_unknown_fields)]
        pub struct $name {
            /// The frame's type.
            #[serde(rename = "type")]
            pub kind: $ty,
            /// The job's id.
            pub job_id: String,
            /// Its pipeline.
            pub pipeline: Pipeline,
            /// When the gateway built the frame, ms since the epoch.
            pub timestamp: u64,
            /// Schema version.
            pub version: SchemaVersion,
            /// The content.
            pub payload: $payload,
        }
    };
}

envelope!(
    /// `snapshot` / `reconnected`: the first frame on every socket.
    SnapshotFrame, SnapshotType, SnapshotPayload, seq: required
);
envelope!(
    /// `job_started`.
    JobStartedFrame, JobStartedType, JobStartedPayload, seq: required
);
envelope!(
    /// `job_progress`.
    JobProgressFrame, JobProgressType, JobProgressPayload, seq: required
);
envelope!(
    /// `job_complete`, then close 1000.
    JobCompleteFrame, JobCompleteType, JobCompletePayload, seq: required
);
envelope!(
    /// `error`: the job failed (with `seq`, then close 4001) or one client message was refused (no `seq`).
    ErrorFrame, ErrorType, ErrorPayload, seq: optional
);
envelope!(
    /// `token_refresh`: a new token for later connections (no `seq`).
    TokenRefreshFrame, TokenRefreshType, TokenRefreshPayload, seq: none
);
envelope!(
    /// `pong` envelope: the answer to a ping other than the literal one (no `seq`).
    PongFrame, PongType, PongPayload, seq: none
);

/// `snapshot` payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct SnapshotPayload {
    /// The same as `progress`.
    #[schemars(range(min = 0, max = 1))]
    pub current_progress: f64,
    /// Items done.
    pub processed_count: u64,
    /// processedCount / totalCount (0 when unknown).
    #[schemars(range(min = 0, max = 1))]
    pub progress: f64,
    /// Continuity proven: nothing but folded progress was missed.
    pub recovered: bool,
    /// Where the job is.
    pub status: JobStatus,
    /// Items in all, `null` if unknown.
    pub total_count: Option<u64>,
}

/// `job_started` payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct JobStartedPayload {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Items in all, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
}

/// `job_progress` payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct JobProgressPayload {
    /// What is being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_item: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Items done.
    pub processed_count: u64,
    /// processedCount / totalCount (0 when unknown).
    #[schemars(range(min = 0, max = 1))]
    pub progress: f64,
    /// Items in all, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_count: Option<u64>,
}

/// `job_complete` payload.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JobCompletePayload {
    /// The producer's summary, as it sent it (`null` if it sent none).
    #[schemars(with = "Value")]
    pub summary: Box<RawValue>,
}

/// `error` payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorPayload {
    /// Stable code (the producer's for a failed job; e.g. `unknown_type` for a refused message).
    pub code: String,
    /// Human text.
    pub message: String,
    /// Whether retrying may help (`false` for a failed job).
    pub retryable: bool,
}

/// `token_refresh` payload.
// `Debug` (below) shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TokenRefreshPayload {
    /// When it expires, ms since the epoch.
    pub expires_at: u64,
    /// The new token (a secret).
    pub token: String,
}

/// `pong` payload: empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PongPayload {}

/// The literal `{"type":"pong"}`: the edge's answer to the literal ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LiteralPong {
    /// `pong`.
    #[serde(rename = "type")]
    pub kind: PongType,
}

/// A ping from a subscriber. Exactly `{"type":"ping"}` is answered by the edge
/// with the literal pong without waking the room; any other valid ping gets a
/// `pong` envelope.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingFrame {
    /// `ping`.
    #[serde(rename = "type")]
    pub kind: PingType,
    /// Optional client time; must be a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
}

/// `{"type":"cancel"}`: cancels the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelFrame {
    /// `cancel`.
    #[serde(rename = "type")]
    pub kind: CancelType,
    /// Optional reason; must be a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------
// The documents

/// The API's version in the documents.
pub const API_VERSION: &str = "1.0.0";

struct Components {
    generator: SchemaGenerator,
}

impl Components {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.contract = schemars::generate::Contract::Serialize;
        });
        Self {
            generator: settings.into_generator(),
        }
    }

    /// A `$ref` to `T`'s schema (or `T`'s schema inline when it has no name).
    fn of<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    fn schemas(mut self) -> Map<String, Value> {
        self.generator.take_definitions(true)
    }
}

fn json_content(schema: &Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error_response(status: u16, when: &str, error: &Value) -> (String, Value) {
    let mut r = Map::new();
    r.insert("description".into(), when.into());
    r.insert("content".into(), json_content(error));
    if status == 429 {
        let retry_after = json!({"Retry-After": {
            "description": "Seconds to wait before the next attempt.",
            "schema": {"type": "integer", "minimum": 0}
        }});
        r.insert("headers".into(), retry_after);
    }
    (status.to_string(), Value::Object(r))
}

/// The OpenAPI 3.1 document of SPEC §1 (with this gateway's additions).
#[must_use]
pub fn openapi() -> Value {
    let mut c = Components::new();
    let error = c.of::<ErrorBody>();
    let job_id = json!({
        "name": "jobId", "in": "path", "required": true,
        "description": "The job's id.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_JOB_ID, "pattern": "^[A-Za-z0-9_-]+$"}
    });
    let producer = json!([{"producerSecret": []}]);
    let subscriber = json!([{"subscriberToken": []}]);
    let errs = |list: &[(u16, &str)]| -> Map<String, Value> {
        list.iter()
            .map(|(s, w)| error_response(*s, w, &error))
            .collect()
    };
    let ok = |status: u16, what: &str, schema: Value, more: &[(u16, &str)]| -> Value {
        let mut m = errs(more);
        m.insert(
            status.to_string(),
            json!({"description": what, "content": json_content(&schema)}),
        );
        Value::Object(m)
    };
    let bad_id = (400, "The path's jobId is malformed.");
    let no_secret = (401, "Missing or wrong producer secret.");
    let no_token = (
        401,
        "Missing, wrong, revoked or expired subscriber token. The edge checks the token's signature, job and expiry \
         (including the end of its session, MAX_SESSION_MS) before the job is looked at, and answers every such \
         refusal with the same body whether or not the job exists; a revoked token is refused by the job.",
    );
    let no_job = (
        404,
        "No such job (or it ended longer ago than the retention, JOB_RETENTION_MS, 24 h by default).",
    );

    let create_body = c.of::<CreateJobRequest>();
    let create = json!({
        "post": {
            "operationId": "createJob",
            "summary": "Create a job (producer).",
            "security": producer,
            "requestBody": {"required": true, "content": json_content(&create_body)},
            "responses": ok(202, "The job, its first subscriber token and the URLs an app uses.", c.of::<CreateJobResponse>(), &[
                (400, "Invalid body: not JSON, a key named twice, an unknown pipeline, a malformed jobId, ttlSeconds out of range or totalCount over 2^53 - 1."),
                no_secret,
                (409, "A job with this jobId exists."),
                (413, "Body over 1 MiB."),
                (422, "callbackUrl is not https:// (or http:// to a loopback host), holds credentials or is over 2,048 bytes."),
            ]),
        }
    });
    let events_body = c.of::<EventsRequest>();
    let events = json!({
        "post": {
            "operationId": "postEvents",
            "summary": "Report one event or an array of events (producer); applied whole or not at all.",
            "security": producer,
            "parameters": [job_id],
            "requestBody": {"required": true, "content": json_content(&events_body)},
            "responses": ok(202, "Applied (or all already applied): the seq of the body's last event.", c.of::<EventsResponse>(), &[
                bad_id, no_secret, no_job,
                (409, "The job has ended: job_canceled, job_completed or job_failed."),
                (413, "Body over 1 MiB, over 1,000 events, or the job's stored state would grow too large."),
                (422, "Invalid event: not JSON, a key named twice, an unknown type, a field too long, a count over 2^53 - 1, processedCount decreased, an event after the end in the same body."),
            ]),
        }
    });
    let inspect = json!({
        "get": {
            "operationId": "inspectJob",
            "summary": "The job's full state including its result (producer).",
            "security": producer,
            "parameters": [job_id],
            "responses": ok(200, "The job.", c.of::<JobInspect>(), &[bad_id, no_secret, no_job]),
        }
    });
    let revoke = json!({
        "post": {
            "operationId": "revokeTokens",
            "summary": "Invalidate every token of the job (producer); live sockets close with 1008.",
            "security": producer,
            "parameters": [job_id],
            "responses": ok(202, "Revoked.", c.of::<RevokeResponse>(), &[bad_id, no_secret, no_job]),
        }
    });
    let tokens = json!({
        "post": {
            "operationId": "issueToken",
            "summary": "Issue a new subscriber token (producer), e.g. after a revoke.",
            "security": producer,
            "parameters": [job_id],
            "responses": ok(202, "A new token.", c.of::<IssueTokenResponse>(), &[
                bad_id, no_secret, no_job,
                (429, "16 producer-issued tokens are valid already; retry after Retry-After seconds (when the first expires) or revoke."),
            ]),
        }
    });
    let cancel = json!({
        "post": {
            "operationId": "cancelJob",
            "summary": "Cancel the job (subscriber); its sockets close with 1001.",
            "security": subscriber,
            "parameters": [job_id],
            "responses": ok(202, "Canceled.", c.of::<CancelResponse>(), &[
                bad_id, no_token, no_job,
                (409, "The job has already ended: job_canceled, job_completed or job_failed."),
            ]),
        }
    });
    let state = json!({
        "get": {
            "operationId": "jobState",
            "summary": "State sync after a reconnect (subscriber, seed 002).",
            "security": subscriber,
            "parameters": [job_id],
            "responses": ok(200, "The job's state.", c.of::<JobState>(), &[bad_id, no_token, no_job]),
        }
    });
    let mut upgrade_responses = errs(&[
        (
            400,
            "Missing or blank jobId or token, or a malformed lastSeq or clientId.",
        ),
        no_token,
        no_job,
        (426, "Not a WebSocket request (no Upgrade: websocket)."),
        (
            429,
            "The job's socket cap is reached; retry after Retry-After seconds.",
        ),
    ]);
    upgrade_responses.insert(
        "101".into(),
        json!({"description": "Switching protocols: the frames of docs/asyncapi.json follow."}),
    );
    let upgrade = json!({
        "get": {
            "operationId": "subscribe",
            "summary": "WebSocket upgrade (subscriber). Refusals are plain HTTP before any socket exists.",
            "parameters": [
                {"name": "jobId", "in": "query", "required": true, "description": "The job's id.",
                 "schema": {"type": "string", "minLength": 1, "maxLength": MAX_JOB_ID, "pattern": "^[A-Za-z0-9_-]+$"}},
                {"name": "token", "in": "query", "required": true, "description": "The job's subscriber token (a secret).",
                 "schema": {"type": "string", "minLength": 1}},
                {"name": "clientId", "in": "query", "required": false,
                 "description": "A stable id per app install; a new socket with the same clientId replaces the old one (close 4000).",
                 "schema": {"type": "string", "minLength": 1, "maxLength": crate::http::MAX_CLIENT_ID, "pattern": "^[A-Za-z0-9_.:-]+$"}},
                {"name": "lastSeq", "in": "query", "required": false,
                 "description": "The seq of the last frame the app saw; the first frame is then `reconnected`.",
                 "schema": {"type": "integer", "minimum": 0, "maximum": crate::protocol::MAX_SAFE_INTEGER}},
                {"name": "Upgrade", "in": "header", "required": true,
                 "schema": {"type": "string", "const": "websocket"}},
            ],
            "responses": upgrade_responses,
        }
    });
    let health = json!({
        "get": {
            "operationId": "health",
            "summary": "Liveness.",
            "security": [],
            "responses": ok(200, "Alive.", c.of::<Health>(), &[]),
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Progress gateway",
            "version": API_VERSION,
            "description": "The HTTP surface of the progress gateway (SPEC §1). Generated from gateway/core/src/api.rs by `cargo run -p gateway-core --example api-docs`; the frames on the socket are in asyncapi.json. Every refusal's body is ErrorBody.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": {
            "/healthz": health,
            "/api/jobs": create,
            "/api/jobs/{jobId}": inspect,
            "/api/jobs/{jobId}/events": events,
            "/api/jobs/{jobId}/revoke": revoke,
            "/api/jobs/{jobId}/tokens": tokens,
            "/api/jobs/{jobId}/cancel": cancel,
            "/api/job-state/{jobId}": state,
            "/ws/progress": upgrade,
        },
        "components": {
            "securitySchemes": {
                "producerSecret": {"type": "http", "scheme": "bearer",
                    "description": "Authorization: Bearer <PRODUCER_SECRET> (a Worker secret)."},
                "subscriberToken": {"type": "http", "scheme": "bearer",
                    "description": "Authorization: Bearer <token>, the job's subscriber token."},
            },
            "schemas": c.schemas(),
        },
    });
    // Refusals of the edge, before any route: any operation may answer them.
    let edge = errs(&[
        (
            403,
            "A browser Origin not in ALLOWED_ORIGINS (only when it lists origins).",
        ),
        (
            500,
            "The gateway is misconfigured (a var out of range) or the producer secret is not set.",
        ),
    ]);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths.values_mut().filter_map(Value::as_object_mut) {
            for responses in op
                .values_mut()
                .filter_map(|o| o.get_mut("responses"))
                .filter_map(Value::as_object_mut)
            {
                for (status, r) in &edge {
                    responses.entry(status.clone()).or_insert_with(|| r.clone());
                }
            }
        }
    }
    doc
}

/// The AsyncAPI 3.0 document of the job socket: the frames of SPEC §2/§3 and
/// the close codes of §4.
#[must_use]
pub fn asyncapi() -> Value {
    let mut c = Components::new();
    let mut messages = Map::new();
    let mut add = |name: &str, title: &str, summary: &str, schema: Value| {
        messages.insert(
            name.to_owned(),
            json!({"name": name, "title": title, "summary": summary, "contentType": "application/json", "payload": schema}),
        );
    };
    add(
        "snapshot",
        "snapshot / reconnected",
        "First frame on every socket: the job's state.",
        c.of::<SnapshotFrame>(),
    );
    add(
        "jobStarted",
        "job_started",
        "The producer started the job.",
        c.of::<JobStartedFrame>(),
    );
    add(
        "jobProgress",
        "job_progress",
        "Progress.",
        c.of::<JobProgressFrame>(),
    );
    add(
        "jobComplete",
        "job_complete",
        "Success, then close 1000.",
        c.of::<JobCompleteFrame>(),
    );
    add("error", "error", "The job failed (with seq, then close 4001), or one client message was refused (no seq; the socket stays open).", c.of::<ErrorFrame>());
    add(
        "tokenRefresh",
        "token_refresh",
        "A new token for later connections.",
        c.of::<TokenRefreshFrame>(),
    );
    add(
        "pong",
        "pong envelope",
        "Answer to a ping that reached the room.",
        c.of::<PongFrame>(),
    );
    add(
        "literalPong",
        "literal pong",
        "Exactly {\"type\":\"pong\"}: the edge's answer to the literal ping.",
        c.of::<LiteralPong>(),
    );
    add(
        "ping",
        "ping",
        "Send exactly {\"type\":\"ping\"} when the socket opens, then every 30 s.",
        c.of::<PingFrame>(),
    );
    add(
        "cancel",
        "cancel",
        "Cancels the job.",
        c.of::<CancelFrame>(),
    );
    let refs = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({"$ref": format!("#/channels/job/messages/{n}")}))
            .collect()
    };
    let server = [
        "snapshot",
        "jobStarted",
        "jobProgress",
        "jobComplete",
        "error",
        "tokenRefresh",
        "pong",
        "literalPong",
    ];
    let client = ["ping", "cancel"];
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|n| {
            (
                n.clone(),
                json!({"$ref": format!("#/components/messages/{n}")}),
            )
        })
        .collect();
    let close_codes: Vec<Value> = close_code::TABLE
        .iter()
        .map(|r| {
            json!({
                "code": r.code.as_u16(),
                "sentWhen": r.sent_when,
                "clientDoes": r.client_does,
                "sentByGateway": r.code.is_sent_by_gateway(),
            })
        })
        .collect();
    let table: String = close_code::TABLE
        .iter()
        .map(|r| {
            format!(
                "- {}: {}. Client: {}.\n",
                r.code.as_u16(),
                r.sent_when,
                r.client_does
            )
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Progress gateway: the job socket",
            "version": API_VERSION,
            "description": format!("The frames of SPEC §2 and §3 and the close codes of §4. Generated from gateway/core/src/api.rs by `cargo run -p gateway-core --example api-docs`; the HTTP surface is in openapi.json. Text frames only (binary: 1003), client frames at most 64 KiB (1009), at most 20 non-ping frames per 10 s (1013); anything that is not a JSON object with a string `type` closes with 1002; an unknown `type` gets `error` with code `unknown_type` and the socket stays open.\n\nClose codes:\n{table}"),
            "license": {"name": "Apache-2.0"},
            "x-close-codes": close_codes,
        },
        "defaultContentType": "application/json",
        "channels": {
            "job": {
                "address": "/ws/progress?jobId={jobId}&token={token}",
                "title": "One job's progress",
                "description": "Open with GET /ws/progress (docs/openapi.json, operation subscribe); optional query clientId and lastSeq.",
                "parameters": {
                    "jobId": {"description": "The job's id."},
                    "token": {"description": "The job's subscriber token (a secret)."},
                },
                "messages": channel_messages,
                "bindings": {"ws": {
                    "method": "GET",
                    "query": {"type": "object", "required": ["jobId", "token"], "properties": {
                        "jobId": {"type": "string"},
                        "token": {"type": "string"},
                        "clientId": {"type": "string"},
                        "lastSeq": {"type": "integer", "minimum": 0},
                    }},
                }},
            }
        },
        "operations": {
            "receiveFrames": {
                "action": "receive",
                "channel": {"$ref": "#/channels/job"},
                "summary": "Frames the gateway sends to a subscriber.",
                "messages": refs(&server),
            },
            "sendFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/job"},
                "summary": "Frames a subscriber sends.",
                "messages": refs(&client),
            },
        },
        "components": {
            "messages": messages,
            "schemas": c.schemas(),
        },
    })
}

/// The committed documents as the generator writes them: (file name under
/// `docs/`, text).
#[must_use]
pub fn documents() -> [(&'static str, String); 2] {
    let pretty = |v: &Value| {
        let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
        s.push('\n');
        s
    };
    [
        ("openapi.json", pretty(&openapi())),
        ("asyncapi.json", pretty(&asyncapi())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HttpError;
    use crate::protocol::{encode, JobHeader, Seq, ServerMessage, Snapshot};
    use crate::Millis;

    fn frame(seq: Option<u64>, msg: &ServerMessage) -> String {
        let job = JobHeader {
            job_id: "j1".into(),
            pipeline: Pipeline::CsvImport,
        };
        encode(&job, Millis(1_763_000_000_000), seq.map(Seq), msg)
    }

    /// Each frame the room encodes parses into its contract type, which
    /// refuses unknown fields, and serializes back to the same JSON.
    fn round_trips<T: serde::de::DeserializeOwned + Serialize>(text: &str) {
        let t: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let back: Value = serde_json::to_value(&t).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap(), "{text}");
    }

    #[test]
    fn encoded_frames_match_their_types() {
        round_trips::<JobStartedFrame>(&frame(
            Some(1),
            &ServerMessage::JobStarted {
                total_count: Some(5),
                message: None,
            },
        ));
        round_trips::<JobProgressFrame>(&frame(
            Some(2),
            &ServerMessage::JobProgress {
                processed_count: 2,
                total_count: Some(5),
                current_item: Some("a".into()),
                message: Some("m".into()),
            },
        ));
        round_trips::<JobCompleteFrame>(&frame(
            Some(3),
            &ServerMessage::JobComplete {
                summary: r#"{"n":1}"#.into(),
            },
        ));
        round_trips::<ErrorFrame>(&frame(
            None,
            &ServerMessage::Error {
                code: "unknown_type".into(),
                message: "m".into(),
                retryable: false,
            },
        ));
        for resumed in [false, true] {
            round_trips::<SnapshotFrame>(&frame(
                Some(0),
                &ServerMessage::Snapshot {
                    resumed,
                    recovered: resumed,
                    state: Snapshot {
                        status: JobStatus::Pending,
                        processed_count: 0,
                        total_count: None,
                    },
                },
            ));
        }
        round_trips::<TokenRefreshFrame>(&frame(
            None,
            &ServerMessage::TokenRefresh {
                token: "t".into(),
                expires_at: Millis(9),
            },
        ));
        round_trips::<PongFrame>(&frame(None, &ServerMessage::Pong));
        round_trips::<LiteralPong>(crate::protocol::LITERAL_PONG);
        round_trips::<PingFrame>(crate::protocol::LITERAL_PING);
    }

    #[test]
    fn an_unknown_field_is_ignored_by_readers_and_refused_by_the_schema() {
        let text =
            frame(None, &ServerMessage::Pong).replace("\"payload\"", "\"extra\":1,\"payload\"");
        // A client keeps working when a newer gateway adds a field...
        assert!(serde_json::from_str::<PongFrame>(&text).is_ok());
        // ...but the contract names every field: the documents refuse it.
        for schema in [
            schemars::schema_for!(PongFrame),
            schemars::schema_for!(JobState),
            schemars::schema_for!(ErrorDetail),
        ] {
            assert_eq!(
                schema.get("additionalProperties"),
                Some(&Value::Bool(false))
            );
        }
        assert!(
            serde_json::from_str::<JobProgressFrame>(&frame(None, &ServerMessage::Pong)).is_err()
        );
    }

    #[test]
    fn a_validated_event_goes_back_on_the_wire_with_its_summary_exact() {
        let body = br#"[{"type":"started","totalCount":3,"eventId":"a"},{"type":"progress","processedCount":1,"currentItem":"x","message":"m"},{"type":"complete","summary":{"n":18446744073709551617,"f":2.50}}]"#;
        let events = crate::protocol::parse_producer_body(body).unwrap();
        let wire: Vec<ProducerEvent> = events.iter().map(ProducerEvent::from).collect();
        let text = serde_json::to_string(&EventsRequest::Many(wire)).unwrap();
        assert_eq!(
            text,
            r#"[{"type":"started","eventId":"a","totalCount":3},{"type":"progress","processedCount":1,"currentItem":"x","message":"m"},{"type":"complete","summary":{"n":18446744073709551617,"f":2.50}}]"#
        );
        // The same events as the hand-built encoding, which rounds the summary.
        assert_eq!(
            crate::protocol::parse_producer_body(text.as_bytes()).unwrap(),
            events
        );
    }

    #[test]
    fn error_body_is_the_contract_type() {
        let body = HttpError::job_not_found().body();
        let parsed: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.error.code, "job_not_found");
    }
}
