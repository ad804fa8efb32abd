//! Entry points for the cargo-fuzz targets in `fuzz/`: each target is one call
//! into this module, so the checks live beside the code they attack. Every
//! function takes the fuzzer's raw bytes; the structure-aware ones decode them
//! with [`arbitrary`] into scripts of room, client or JSON operations.

use crate::{Packet, Sim};
use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use gateway_core::client::{self, Client, ClientConfig};
use gateway_core::protocol::{
    self, ClientMessage, EventKind, Incoming, JobHeader, JobStatus, Pipeline, ProducerEvent, Seq,
    ServerFrame, ServerMessage, Snapshot, LITERAL_PING, MAX_CLIENT_FRAME, MAX_EVENT_ID,
};
use gateway_core::room::{Input, RoomConfig, WireFrame};
use gateway_core::token::Token;
use gateway_core::{CloseCode, FrameError, Millis};
use serde_json::{Map, Value};

/// A plausible "now" (Nov 2025), so that expiries and retention are realistic.
const T0: Millis = Millis(1_763_000_000_000);

// ---------------------------------------------------------------------------
// Raw-bytes parsers

/// Subscriber frame parser: never panics, and every refusal maps to a close code
/// that the gateway sends.
pub fn client_frame(data: &[u8]) {
    let frame = match std::str::from_utf8(data) {
        Ok(text) => Incoming::Text(text),
        Err(_) => Incoming::Binary(data.len()),
    };
    match protocol::parse_client_frame(frame) {
        Err(e) => {
            let code = gateway_core::error::GatewayError::from(e).close_code();
            assert!(code.is_sent_by_gateway(), "{code:?}");
        }
        Ok(ClientMessage::Unknown { type_name }) => {
            assert!(type_name.chars().count() <= 64);
            assert!(type_name != "ping" && type_name != "cancel");
        }
        Ok(_) => assert!(data.len() <= MAX_CLIENT_FRAME),
    }
}

/// Producer parsers (`POST …/events` and `POST /api/jobs`): never panic, refuse
/// only with 413/422 (events) or 400/413 (create), and whatever they accept
/// survives an encode → parse round trip unchanged.
pub fn producer_body(data: &[u8]) {
    match protocol::parse_producer_body(data) {
        Err(e) => assert!(matches!(e.status, 413 | 422), "{e}"),
        Ok(events) => {
            assert!(!events.is_empty());
            for e in &events {
                if let Some(id) = &e.event_id {
                    assert!(!id.is_empty() && id.chars().count() <= MAX_EVENT_ID);
                }
            }
            assert_producer_round_trip(&events);
        }
    }
    match protocol::parse_create_job(data) {
        Err(e) => assert!(matches!(e.status, 400 | 413), "{e}"),
        Ok(job) => {
            assert!((Millis::from_secs(60)..=Millis::from_secs(86_400)).contains(&job.ttl));
            if let Some(id) = &job.job_id {
                assert!(protocol::is_valid_job_id(id), "{id:?}");
            }
        }
    }
}

/// Server envelope decoder (the client's side): never panics, and whatever it
/// decodes re-encodes to a frame that decodes to the same thing.
pub fn server_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = protocol::decode(text) {
        assert_envelope_round_trip(&frame);
    }
}

/// Close-code round trip over any number.
pub fn close_code(data: &[u8]) {
    if let [a, b, ..] = *data {
        let n = u16::from_le_bytes([a, b]);
        let code = CloseCode::from(n);
        assert_eq!(u16::from(code), n);
        assert_eq!(
            code.is_sent_by_gateway(),
            gateway_core::close_code::TABLE
                .iter()
                .any(|r| r.code == code && r.code != CloseCode::Abnormal)
        );
    }
}

// ---------------------------------------------------------------------------
// Structure-aware JSON frames

/// Keys the protocol knows, so arbitrary objects hit them often.
const KEYS: &[&str] = &[
    "type",
    "timestamp",
    "reason",
    "eventId",
    "totalCount",
    "processedCount",
    "currentItem",
    "message",
    "summary",
    "code",
    "pipeline",
    "jobId",
    "ttlSeconds",
    "seq",
    "payload",
    "status",
    "recovered",
    "token",
    "expiresAt",
];

/// Type names of both directions.
const TYPES: &[&str] = &[
    "ping",
    "cancel",
    "pong",
    "started",
    "progress",
    "complete",
    "failed",
    "job_started",
    "job_progress",
    "job_complete",
    "error",
    "snapshot",
    "reconnected",
    "token_refresh",
    "csv_import",
    "batch_enrichment",
    "ai_scan",
];

fn pick<'a>(u: &mut Unstructured<'_>, from: &'a [&'a str]) -> ArbResult<&'a str> {
    u.choose(from).copied()
}

fn json_string(u: &mut Unstructured<'_>) -> ArbResult<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => pick(u, TYPES)?.to_owned(),
        1 => pick(u, KEYS)?.to_owned(),
        _ => String::arbitrary(u)?,
    })
}

/// An arbitrary JSON value, at most `depth` levels deep, biased to protocol words.
fn json_value(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<Value> {
    let leaf_only = depth == 0;
    Ok(match u.int_in_range(0..=if leaf_only { 6 } else { 8 })? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::from(u64::arbitrary(u)?),
        3 => Value::from(i64::arbitrary(u)?),
        4 => serde_json::Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
        5 => Value::from(u.int_in_range(0..=200u64)?),
        6 => Value::String(json_string(u)?),
        7 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| json_value(u, depth - 1))
                    .collect::<ArbResult<_>>()?,
            )
        }
        _ => json_object(u, depth - 1)?,
    })
}

fn json_object(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<Value> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0..=6)? {
        let key = if u.ratio(7, 8)? {
            pick(u, KEYS)?.to_owned()
        } else {
            String::arbitrary(u)?
        };
        m.insert(key, json_value(u, depth)?);
    }
    Ok(Value::Object(m))
}

/// What the subscriber frame parser must say about a JSON value (SPEC §3).
fn expected_client_message(v: &Value, len: usize) -> Result<ClientMessage, FrameError> {
    if len > MAX_CLIENT_FRAME {
        return Err(FrameError::TooBig { len });
    }
    let Value::Object(o) = v else {
        return Err(FrameError::NotAnObject);
    };
    let Some(Value::String(ty)) = o.get("type") else {
        return Err(FrameError::MissingType);
    };
    let wrong = |field: &'static str, ok: bool| match o.get(field) {
        Some(Value::Null) | None => false,
        Some(_) => !ok,
    };
    match ty.as_str() {
        "ping"
            if wrong(
                "timestamp",
                o.get("timestamp").is_some_and(Value::is_number),
            ) =>
        {
            Err(FrameError::WrongFieldType { field: "timestamp" })
        }
        "ping" => Ok(ClientMessage::Ping),
        "cancel" if wrong("reason", o.get("reason").is_some_and(Value::is_string)) => {
            Err(FrameError::WrongFieldType { field: "reason" })
        }
        "cancel" => Ok(ClientMessage::Cancel),
        other => Ok(ClientMessage::Unknown {
            type_name: other.chars().take(64).collect(),
        }),
    }
}

/// A pipeline, decoded as `#[derive(Arbitrary)]` on the enum did (the core
/// does not depend on `arbitrary`), so existing corpora keep their meaning.
fn arbitrary_pipeline(u: &mut Unstructured<'_>) -> ArbResult<Pipeline> {
    const ALL: [Pipeline; 3] = [
        Pipeline::BatchEnrichment,
        Pipeline::CsvImport,
        Pipeline::AiScan,
    ];
    let i = (u64::from(u32::arbitrary(u)?) * ALL.len() as u64) >> 32;
    Ok(ALL[usize::try_from(i).unwrap_or(0)])
}

fn arbitrary_text(u: &mut Unstructured<'_>) -> ArbResult<Option<String>> {
    Ok(if bool::arbitrary(u)? {
        Some(json_string(u)?)
    } else {
        None
    })
}

fn arbitrary_event(u: &mut Unstructured<'_>) -> ArbResult<ProducerEvent> {
    let event_id = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(format!("e{}", u.int_in_range(0..=9)?)),
        2 => Some("x".repeat(u.int_in_range(0..=70)?)),
        _ => Some(String::arbitrary(u)?),
    };
    let opt_u64 = |u: &mut Unstructured<'_>| -> ArbResult<Option<u64>> {
        Ok(if bool::arbitrary(u)? {
            Some(u64::arbitrary(u)?)
        } else {
            None
        })
    };
    let kind = match u.int_in_range(0..=3)? {
        0 => EventKind::Started {
            total_count: opt_u64(u)?,
            message: arbitrary_text(u)?,
        },
        1 => EventKind::Progress {
            processed_count: u64::arbitrary(u)?,
            total_count: opt_u64(u)?,
            current_item: arbitrary_text(u)?,
            message: arbitrary_text(u)?,
        },
        2 => EventKind::Complete {
            summary: json_value(u, 3)?.to_string(),
        },
        _ => EventKind::Failed {
            code: json_string(u)?,
            message: json_string(u)?,
        },
    };
    Ok(ProducerEvent { event_id, kind })
}

fn arbitrary_server_message(u: &mut Unstructured<'_>) -> ArbResult<ServerMessage> {
    let opt_u64 = |u: &mut Unstructured<'_>| -> ArbResult<Option<u64>> {
        Ok(if bool::arbitrary(u)? {
            Some(u64::arbitrary(u)?)
        } else {
            None
        })
    };
    Ok(match u.int_in_range(0..=7)? {
        0 => ServerMessage::JobStarted {
            total_count: opt_u64(u)?,
            message: arbitrary_text(u)?,
        },
        1 => ServerMessage::JobProgress {
            processed_count: u64::arbitrary(u)?,
            total_count: opt_u64(u)?,
            current_item: arbitrary_text(u)?,
            message: arbitrary_text(u)?,
        },
        2 => ServerMessage::JobComplete {
            summary: json_value(u, 3)?.to_string(),
        },
        3 => ServerMessage::Error {
            code: json_string(u)?,
            message: json_string(u)?,
            retryable: bool::arbitrary(u)?,
        },
        4 => ServerMessage::Snapshot {
            resumed: bool::arbitrary(u)?,
            recovered: bool::arbitrary(u)?,
            state: Snapshot {
                status: *u.choose(&[
                    JobStatus::Pending,
                    JobStatus::Processing,
                    JobStatus::Completed,
                    JobStatus::Failed,
                    JobStatus::Canceled,
                ])?,
                processed_count: u64::arbitrary(u)?,
                total_count: opt_u64(u)?,
            },
        },
        5 => ServerMessage::TokenRefresh {
            token: String::arbitrary(u)?,
            expires_at: Millis(u64::arbitrary(u)?),
        },
        _ => ServerMessage::Pong,
    })
}

/// Structure-aware frames: arbitrary JSON (biased to protocol keys and types),
/// producer events and server envelopes, serialised with `serde_json` and fed to
/// the parsers, each checked against what SPEC §2–§3 says the answer must be.
pub fn json_frames(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = json_frames_inner(&mut u);
}

fn json_frames_inner(u: &mut Unstructured<'_>) -> ArbResult<()> {
    while !u.is_empty() {
        match u.int_in_range(0..=3)? {
            0 => {
                // A subscriber frame, compact or pretty, sometimes padded past 64 KiB.
                let v = json_object_or_value(u)?;
                let mut text = if bool::arbitrary(u)? {
                    serde_json::to_string_pretty(&v).unwrap_or_default()
                } else {
                    v.to_string()
                };
                if u.ratio(1, 16)? {
                    text.push_str(
                        &" ".repeat(MAX_CLIENT_FRAME + 1 - text.len().min(MAX_CLIENT_FRAME)),
                    );
                }
                let got = protocol::parse_client_frame(Incoming::Text(&text));
                assert_eq!(got, expected_client_message(&v, text.len()), "{text}");
                if text == LITERAL_PING {
                    assert_eq!(got, Ok(ClientMessage::Ping));
                }
            }
            1 => {
                // A batch of valid-looking producer events: accepted iff every
                // eventId is 1 to 64 characters, and then unchanged.
                let n = u.int_in_range(1..=4)?;
                let events = (0..n)
                    .map(|_| arbitrary_event(u))
                    .collect::<ArbResult<Vec<_>>>()?;
                let body = producer_json(&events, bool::arbitrary(u)?);
                let safe = |n: Option<u64>| n.is_none_or(|n| n <= protocol::MAX_SAFE_INTEGER);
                let valid = events.iter().all(|e| {
                    let counts_safe = match &e.kind {
                        EventKind::Started { total_count, .. } => safe(*total_count),
                        EventKind::Progress {
                            processed_count,
                            total_count,
                            ..
                        } => safe(Some(*processed_count)) && safe(*total_count),
                        _ => true,
                    };
                    counts_safe
                        && e.event_id
                            .as_ref()
                            .is_none_or(|id| !id.is_empty() && id.chars().count() <= MAX_EVENT_ID)
                });
                match protocol::parse_producer_body(body.as_bytes()) {
                    Ok(parsed) => {
                        assert!(valid, "accepted an invalid eventId or count: {body}");
                        assert_events_equal(&parsed, &events);
                    }
                    Err(e) => {
                        assert!(!valid, "refused a valid body ({e}): {body}");
                        assert_eq!(e.status, 422);
                    }
                }
            }
            2 => {
                // Arbitrary objects with producer keys: no panic, sane answers.
                let v = json_object_or_value(u)?;
                producer_body(v.to_string().as_bytes());
            }
            _ => {
                let seq = if bool::arbitrary(u)? {
                    Some(Seq(u64::arbitrary(u)?))
                } else {
                    None
                };
                let frame = ServerFrame {
                    seq,
                    message: arbitrary_server_message(u)?,
                };
                let header = JobHeader {
                    job_id: String::arbitrary(u)?,
                    pipeline: arbitrary_pipeline(u)?,
                };
                let text =
                    protocol::encode(&header, Millis(u64::arbitrary(u)?), seq, &frame.message);
                assert_eq!(protocol::decode(&text).as_ref(), Ok(&frame), "{text}");
            }
        }
    }
    Ok(())
}

fn json_object_or_value(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    if u.ratio(7, 8)? {
        json_object(u, 3)
    } else {
        json_value(u, 3)
    }
}

fn producer_json(events: &[ProducerEvent], force_array: bool) -> String {
    protocol::encode_producer_body(events, force_array)
}

/// Compares events, with summaries compared as JSON values (the parser keeps
/// the producer's text; re-encoding may reformat it).
fn assert_events_equal(got: &[ProducerEvent], want: &[ProducerEvent]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        match (&g.kind, &w.kind) {
            (EventKind::Complete { summary: a }, EventKind::Complete { summary: b }) => {
                let a: Option<Value> = serde_json::from_str(a).ok();
                let b: Option<Value> = serde_json::from_str(b).ok();
                assert_eq!(a, b);
                assert!(a.is_some(), "summary is not JSON");
                assert_eq!(g.event_id, w.event_id);
            }
            _ => assert_eq!(g, w),
        }
    }
}

fn assert_producer_round_trip(events: &[ProducerEvent]) {
    let body = producer_json(events, events.len() > 1);
    match protocol::parse_producer_body(body.as_bytes()) {
        Ok(again) => assert_events_equal(&again, events),
        // Re-encoding can only grow a body that was at most 1 MiB.
        Err(e) => assert_eq!(e.status, 413, "{e}: {body}"),
    }
}

fn assert_envelope_round_trip(frame: &ServerFrame) {
    let header = JobHeader {
        job_id: "j".into(),
        pipeline: Pipeline::CsvImport,
    };
    let text = protocol::encode(&header, Millis(1), frame.seq, &frame.message);
    assert_eq!(protocol::decode(&text).as_ref(), Ok(frame), "{text}");
}

// ---------------------------------------------------------------------------
// Sequences of room and client operations, through the simulation

/// A span of virtual time.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Wait {
    /// Milliseconds.
    Millis(u16),
    /// Seconds (up to 18 h).
    Secs(u16),
    /// Whole hours (at most 30).
    Hours(u8),
}

impl Wait {
    fn millis(self) -> Millis {
        match self {
            Self::Millis(n) => Millis(u64::from(n)),
            Self::Secs(n) => Millis::from_secs(u64::from(n)),
            Self::Hours(n) => Millis::from_hours(u64::from(n % 31)),
        }
    }
}

/// The kind of one producer event in a script.
#[derive(Arbitrary, Clone, Debug)]
pub enum EventSpec {
    /// `started`.
    Started {
        /// totalCount.
        total: Option<u16>,
    },
    /// `progress` (small numbers, so it sometimes goes backwards: 422).
    Progress {
        /// processedCount.
        processed: u16,
        /// totalCount.
        total: Option<u16>,
        /// currentItem.
        item: Option<String>,
    },
    /// `complete`.
    Complete {
        /// A small summary.
        books: u8,
    },
    /// `failed`.
    Failed {
        /// The producer's code.
        code: String,
    },
}

/// One producer event with an optional id from a small set, so repeats happen.
#[derive(Arbitrary, Clone, Debug)]
pub struct ScriptEvent {
    /// `eventId` = `e{n % 8}`.
    pub id: Option<u8>,
    /// What happened.
    pub spec: EventSpec,
}

impl ScriptEvent {
    fn to_event(&self) -> ProducerEvent {
        let kind = match &self.spec {
            EventSpec::Started { total } => EventKind::Started {
                total_count: total.map(u64::from),
                message: None,
            },
            EventSpec::Progress {
                processed,
                total,
                item,
            } => EventKind::Progress {
                processed_count: u64::from(*processed),
                total_count: total.map(u64::from),
                current_item: item.clone(),
                message: None,
            },
            EventSpec::Complete { books } => EventKind::Complete {
                summary: format!(r#"{{"books":{books}}}"#),
            },
            EventSpec::Failed { code } => EventKind::Failed {
                code: code.clone(),
                message: "failed".into(),
            },
        };
        ProducerEvent {
            event_id: self.id.map(|n| format!("e{}", n % 8)),
            kind,
        }
    }
}

/// A subscriber frame a script sends.
#[derive(Arbitrary, Clone, Debug)]
pub enum ScriptFrame {
    /// The literal ping the runtime answers.
    LiteralPing,
    /// `{ "type": "ping" }`, which reaches the room.
    SpacedPing,
    /// `{"type":"cancel"}`.
    Cancel,
    /// An unknown type.
    Unknown(String),
    /// Anything at all.
    Raw(String),
    /// A frame over 64 KiB.
    Oversized,
    /// A binary frame of this many bytes.
    Binary(u16),
}

/// One step of a room script. Client indices wrap around the clients that exist.
#[derive(Arbitrary, Clone, Debug)]
pub enum RoomOp {
    /// A new subscriber (`clientId` `c{n % 3}`), with the job's token or a bad one.
    AddClient {
        /// Client id.
        client_id: Option<u8>,
        /// Present a wrong token.
        bad_token: bool,
    },
    /// A client starts.
    Start(u8),
    /// `POST …/events` with these events (array when more than one).
    Events(Vec<ScriptEvent>),
    /// `POST …/events` with any body.
    RawEvents(Vec<u8>),
    /// Events whose request dies right after the write.
    EventsThenEvict(Vec<ScriptEvent>),
    /// Deliver this many packets.
    Deliver(u8),
    /// Deliver everything in flight.
    Settle,
    /// Let time pass (timers and the alarm fire).
    Advance(Wait),
    /// The runtime evicts the room.
    Evict,
    /// A client's link drops.
    DropLink(u8),
    /// A client's link dies silently on the client's side only.
    HalfOpen(u8),
    /// A client sends a frame on its socket.
    Send {
        /// Which client.
        client: u8,
        /// What it sends.
        frame: ScriptFrame,
    },
    /// The user asks the client to cancel.
    UserCancel(u8),
    /// The user stops watching.
    UserStop(u8),
    /// `POST …/cancel` with the first token or a bad one.
    HttpCancel {
        /// Present the job's first token.
        valid: bool,
    },
    /// `GET /api/job-state` with the first token or a bad one.
    JobState {
        /// Present the job's first token.
        valid: bool,
    },
    /// `GET /api/jobs/{id}`.
    Inspect,
    /// `POST …/revoke`.
    Revoke,
    /// `POST /api/jobs/{id}/tokens`.
    IssueToken([u8; 16]),
    /// `POST /api/jobs` again (409 while the job exists).
    CreateAgain,
    /// The runtime refuses the next accept.
    FailNextAccept,
}

/// A whole room script: settings, then steps.
#[derive(Arbitrary, Clone, Debug)]
pub struct RoomScript {
    /// Socket cap (1 to 4).
    pub max_sockets: u8,
    /// Token lifetime choice.
    pub ttl: u8,
    /// The job's totalCount.
    pub total: Option<u16>,
    /// The steps (at most 64 are run).
    pub ops: Vec<RoomOp>,
}

const TTLS: [u64; 4] = [60, 600, 7200, 86_400];

/// Sequences of room operations in the simulation: after every step every
/// invariant of SPEC §7 holds (`sim.violations` stays empty), every HTTP input
/// gets exactly one answer, and at the end, once the job is over and the
/// network heals, every started subscriber finishes (invariant 7).
pub fn room_ops(data: &[u8]) {
    if let Ok(script) = RoomScript::arbitrary_take_rest(Unstructured::new(data)) {
        run_room_script(&script);
    }
}

fn client_index(sim: &Sim, n: u8) -> Option<usize> {
    match sim.clients.len() {
        0 => None,
        len => Some(usize::from(n) % len),
    }
}

fn one_response(sim: &mut Sim, input: Input) -> u16 {
    let responses = sim.room_input(input);
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.first().map_or(0, |r| r.status)
}

fn events_body(events: &[ScriptEvent]) -> String {
    let events: Vec<ProducerEvent> = events.iter().take(6).map(ScriptEvent::to_event).collect();
    match events.as_slice() {
        [] => r#"{"type":"started"}"#.to_owned(),
        _ => producer_json(&events, false),
    }
}

/// Runs one script and checks it (public so that regression tests can replay one).
pub fn run_room_script(script: &RoomScript) {
    let config = RoomConfig {
        max_sockets: usize::from(script.max_sockets % 4) + 1,
        ..RoomConfig::default()
    };
    let mut sim = Sim::new(config, T0, u64::from(script.ttl));
    let ttl = TTLS
        .get(usize::from(script.ttl) % TTLS.len())
        .copied()
        .unwrap_or(7200);
    let created = sim.create_job(script.total.map(u64::from), Millis::from_secs(ttl));
    assert_eq!(created.status, 202);
    let first_token = sim
        .token
        .as_ref()
        .map(|(t, _)| t.expose().to_owned())
        .unwrap_or_default();
    for op in script.ops.iter().take(64) {
        room_step(&mut sim, op, &first_token);
        assert!(
            sim.violations.is_empty(),
            "after {op:?}: {:#?}",
            sim.violations
        );
        assert!(sim.live_sockets() <= config.max_sockets);
    }
    heal_and_finish(&mut sim);
}

fn room_step(sim: &mut Sim, op: &RoomOp, first_token: &str) {
    match op {
        RoomOp::AddClient {
            client_id,
            bad_token,
        } => {
            if sim.clients.len() < 6 {
                let cid = client_id.map(|n| format!("c{}", n % 3));
                if *bad_token {
                    sim.add_client_with(cid.as_deref(), Token::from_string("bad".into()), None);
                } else {
                    sim.add_client(cid.as_deref());
                }
            }
        }
        RoomOp::Start(n) => {
            if let Some(i) = client_index(sim, *n) {
                sim.start(i);
            }
        }
        RoomOp::Events(events) => {
            let status = sim.producer(&events_body(events)).status;
            assert!(matches!(status, 202 | 404 | 409 | 422), "{status}");
        }
        RoomOp::RawEvents(body) => {
            let status = one_response(sim, Input::Events { body: body.clone() });
            assert!(matches!(status, 202 | 404 | 409 | 413 | 422), "{status}");
        }
        RoomOp::EventsThenEvict(events) => sim.events_then_evict(&events_body(events)),
        RoomOp::Deliver(n) => {
            for _ in 0..*n {
                if !sim.deliver_one() {
                    break;
                }
            }
        }
        RoomOp::Settle => sim.settle(),
        RoomOp::Advance(w) => sim.advance(w.millis()),
        RoomOp::Evict => sim.evict(),
        RoomOp::DropLink(n) => {
            if let Some(i) = client_index(sim, *n) {
                sim.drop_link(i);
            }
        }
        RoomOp::HalfOpen(n) => {
            if let Some(i) = client_index(sim, *n) {
                sim.half_open(i);
            }
        }
        RoomOp::Send { client, frame } => {
            let Some(socket) = client_index(sim, *client)
                .and_then(|i| sim.clients.get(i))
                .and_then(|c| c.socket)
            else {
                return;
            };
            let text = match frame {
                ScriptFrame::LiteralPing => LITERAL_PING.to_owned(),
                ScriptFrame::SpacedPing => r#"{ "type": "ping" }"#.to_owned(),
                ScriptFrame::Cancel => r#"{"type":"cancel"}"#.to_owned(),
                ScriptFrame::Unknown(t) => serde_json::json!({ "type": t }).to_string(),
                ScriptFrame::Raw(t) => t.clone(),
                ScriptFrame::Oversized => format!(
                    r#"{{"type":"ping","pad":"{}"}}"#,
                    "a".repeat(MAX_CLIENT_FRAME)
                ),
                ScriptFrame::Binary(len) => {
                    sim.room_input(Input::Frame {
                        socket,
                        frame: WireFrame::Binary(usize::from(*len)),
                    });
                    return;
                }
            };
            sim.net.push_back(Packet::Up { socket, text });
        }
        RoomOp::UserCancel(n) => {
            if let Some(i) = client_index(sim, *n) {
                sim.client_input(i, client::Input::Cancel);
            }
        }
        RoomOp::UserStop(n) => {
            if let Some(i) = client_index(sim, *n) {
                sim.client_input(i, client::Input::Stop);
            }
        }
        RoomOp::HttpCancel { valid } => {
            let token = if *valid { first_token } else { "bad" }.to_owned();
            let status = one_response(sim, Input::Cancel { token });
            assert!(matches!(status, 202 | 401 | 404 | 409), "{status}");
        }
        RoomOp::JobState { valid } => {
            let token = if *valid { first_token } else { "bad" }.to_owned();
            let status = one_response(sim, Input::JobState { token });
            assert!(matches!(status, 200 | 401 | 404), "{status}");
        }
        RoomOp::Inspect => {
            let status = one_response(sim, Input::Inspect);
            assert!(matches!(status, 200 | 404), "{status}");
        }
        RoomOp::Revoke => {
            let status = one_response(sim, Input::Revoke);
            assert!(matches!(status, 202 | 404), "{status}");
        }
        RoomOp::IssueToken(random) => {
            let status = one_response(sim, Input::IssueToken { random: *random });
            assert!(matches!(status, 202 | 404 | 429), "{status}");
        }
        RoomOp::FailNextAccept => sim.fail_next_accept = true,
        RoomOp::CreateAgain => {
            let exists = sim.job().is_some();
            let status = sim.create_default_job(None).status;
            assert_eq!(status, if exists { 409 } else { 202 });
        }
    }
}

/// Invariant 7, bounded: end the job if it still runs, heal the network, and
/// give every started subscriber two virtual hours to finish.
fn heal_and_finish(sim: &mut Sim) {
    sim.settle();
    let running = sim.job().is_some_and(|j| !j.phase.status().is_terminal());
    if running {
        let status = sim.producer(r#"{"type":"complete","summary":{}}"#).status;
        assert_eq!(status, 202);
    }
    for _ in 0..120 {
        if sim
            .clients
            .iter()
            .all(|c| c.machine.is_finished() || c.machine.state() == &client::State::Idle)
        {
            break;
        }
        sim.advance(Millis::from_mins(1));
    }
    for (i, c) in sim.clients.iter().enumerate() {
        assert!(
            c.machine.is_finished() || c.machine.state() == &client::State::Idle,
            "client {i} never finished: {:?}",
            c.machine.state()
        );
    }
    assert!(sim.violations.is_empty(), "{:#?}", sim.violations);
}

// ---------------------------------------------------------------------------
// The client machine alone

/// A server frame a client script receives.
#[derive(Arbitrary, Clone, Debug)]
pub enum ScriptServerFrame {
    /// A snapshot.
    Snapshot {
        /// Envelope seq.
        seq: u8,
        /// Status index.
        status: u8,
        /// processedCount.
        processed: u16,
        /// `reconnected` instead of `snapshot`.
        resumed: bool,
    },
    /// `job_progress`.
    Progress {
        /// Envelope seq.
        seq: u8,
        /// processedCount.
        processed: u16,
    },
    /// `job_complete`.
    Complete {
        /// Envelope seq.
        seq: u8,
    },
    /// A job `error`.
    JobError {
        /// Envelope seq.
        seq: u8,
    },
    /// A refusal `error` (no seq).
    Refusal,
    /// `token_refresh`.
    TokenRefresh {
        /// Expiry offset from now, seconds.
        in_secs: u16,
    },
    /// The literal pong.
    Pong,
    /// Anything.
    Raw(String),
}

/// One input of a client script.
#[derive(Arbitrary, Clone, Debug)]
pub enum ClientOp {
    /// `Start`.
    Start,
    /// `Opened`.
    Opened,
    /// `Refused`.
    Refused {
        /// Status (400 to 599 mostly).
        status: u16,
        /// `Retry-After`.
        retry_after: Option<u8>,
    },
    /// A frame.
    Frame(ScriptServerFrame),
    /// `Closed`.
    Closed {
        /// The code (gateway codes mostly).
        code: Option<u16>,
    },
    /// `Tick` now.
    Tick,
    /// Jump to the client's timer and `Tick`.
    TickAtTimer,
    /// `StateFetched`.
    StateFetched {
        /// Status.
        status: u16,
        /// Status index of the body, or no body.
        body: Option<(u8, u8)>,
    },
    /// The user cancels.
    Cancel,
    /// The user stops.
    Stop,
    /// Time passes.
    Wait(Wait),
}

const STATUSES: [JobStatus; 5] = [
    JobStatus::Pending,
    JobStatus::Processing,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Canceled,
];

fn status_of(n: u8) -> JobStatus {
    STATUSES
        .get(usize::from(n) % STATUSES.len())
        .copied()
        .unwrap_or(JobStatus::Pending)
}

fn job_error() -> ServerMessage {
    ServerMessage::Error {
        code: "x".into(),
        message: "y".into(),
        retryable: false,
    }
}

fn server_text(now: Millis, f: &ScriptServerFrame) -> String {
    let header = JobHeader {
        job_id: "j".into(),
        pipeline: Pipeline::AiScan,
    };
    let enc = |seq: Option<u8>, m: &ServerMessage| {
        protocol::encode(&header, now, seq.map(|s| Seq(u64::from(s))), m)
    };
    match f {
        ScriptServerFrame::Snapshot {
            seq,
            status,
            processed,
            resumed,
        } => enc(
            Some(*seq),
            &ServerMessage::Snapshot {
                resumed: *resumed,
                recovered: *resumed,
                state: Snapshot {
                    status: status_of(*status),
                    processed_count: u64::from(*processed),
                    total_count: Some(100),
                },
            },
        ),
        ScriptServerFrame::Progress { seq, processed } => enc(
            Some(*seq),
            &ServerMessage::JobProgress {
                processed_count: u64::from(*processed),
                total_count: None,
                current_item: None,
                message: None,
            },
        ),
        ScriptServerFrame::Complete { seq } => enc(
            Some(*seq),
            &ServerMessage::JobComplete {
                summary: "{}".into(),
            },
        ),
        ScriptServerFrame::JobError { seq } => enc(Some(*seq), &job_error()),
        ScriptServerFrame::Refusal => enc(None, &job_error()),
        ScriptServerFrame::TokenRefresh { in_secs } => enc(
            None,
            &ServerMessage::TokenRefresh {
                token: "t2".into(),
                expires_at: now.plus(Millis::from_secs(u64::from(*in_secs))),
            },
        ),
        ScriptServerFrame::Pong => protocol::LITERAL_PONG.to_owned(),
        ScriptServerFrame::Raw(s) => s.clone(),
    }
}

/// Close codes a client script mostly uses: the gateway's, plus a few others.
const CODES: [u16; 16] = [
    1000, 1001, 1002, 1003, 1006, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4002, 1005, 3000, 0,
];

fn client_input(
    now: Millis,
    timer: Option<Millis>,
    op: &ClientOp,
) -> (Millis, Option<client::Input>) {
    let input = match op {
        ClientOp::Start => client::Input::Start,
        ClientOp::Opened => client::Input::Opened,
        ClientOp::Refused {
            status,
            retry_after,
        } => client::Input::Refused {
            status: if *status < 1000 {
                400 + status % 200
            } else {
                *status
            },
            retry_after: retry_after.map(u64::from),
        },
        ClientOp::Frame(f) => client::Input::Frame(server_text(now, f)),
        ClientOp::Closed { code } => client::Input::Closed {
            code: code.map(|c| CODES.get(usize::from(c % 32)).copied().unwrap_or(c)),
        },
        ClientOp::Tick => client::Input::Tick,
        ClientOp::TickAtTimer => {
            return (timer.map_or(now, |t| t.max(now)), Some(client::Input::Tick))
        }
        ClientOp::StateFetched { status, body } => client::Input::StateFetched {
            status: *status % 600,
            body: body.map(|(s, seq)| {
                serde_json::json!({
                    "jobId": "j",
                    "seq": seq,
                    "status": status_of(s),
                    "processedCount": seq,
                    "totalCount": 100,
                })
                .to_string()
            }),
        },
        ClientOp::Cancel => client::Input::Cancel,
        ClientOp::Stop => client::Input::Stop,
        ClientOp::Wait(w) => return (now.plus(w.millis()), None),
    };
    (now, Some(input))
}

/// Sequences of client inputs (with virtual time that only moves forward):
/// the machine never panics, once finished it stays finished and silent,
/// `Finished` is said exactly once, every timer it sets is not in the past,
/// it sends only on an open socket (`Authenticating`, `Active`), every wait it
/// reports lies in its bounds, and the seq it shows never goes backwards.
pub fn client_ops(data: &[u8]) {
    let Ok(ops) = Vec::<ClientOp>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut cfg = ClientConfig::new("j");
    cfg.client_id = Some("c".into());
    let mut c = Client::new(
        cfg,
        Token::from_string("t".into()),
        Some(T0.plus(Millis::from_hours(2))),
        [7; 8],
    );
    let mut now = T0;
    let mut timer = None;
    let mut finished_said = 0;
    for op in ops.iter().take(256) {
        let (at, input) = client_input(now, timer, op);
        now = at;
        let Some(input) = input else { continue };
        let was_finished = c.is_finished();
        let seq_before = c.view().seq;
        let effects = c.handle(now, input.clone());
        if was_finished {
            assert!(effects.is_empty(), "{input:?} after finishing: {effects:?}");
            assert!(c.is_finished());
        }
        for e in &effects {
            match e {
                client::Effect::SetTimer(t) => {
                    assert!(t.is_none_or(|t| t >= now), "timer {t:?} before {now}");
                    timer = *t;
                }
                client::Effect::Finished(s) => {
                    finished_said += 1;
                    assert_eq!(s, c.state());
                }
                client::Effect::Send(_) => {
                    // The literal ping goes out as soon as the socket opens.
                    assert!(
                        matches!(
                            c.state(),
                            client::State::Active | client::State::Authenticating { .. }
                        ),
                        "{input:?}"
                    );
                }
                client::Effect::Connect(p) => {
                    assert!(matches!(c.state(), client::State::Connecting { .. }));
                    assert_eq!(p.last_seq, c.view().seq);
                }
                client::Effect::FetchState(_) => {
                    assert!(matches!(c.state(), client::State::Syncing { at: None, .. }));
                }
                client::Effect::Waiting(b) => {
                    assert!(
                        matches!(c.state(), client::State::Reconnecting { at, .. } if *at == b.at)
                    );
                    assert!(b.min <= b.at.minus(now) && b.at.minus(now) <= b.max);
                }
                client::Effect::Close(_)
                | client::Effect::Progress(_)
                | client::Effect::TokenUpdated { .. }
                | client::Effect::Resumed { .. } => {}
            }
        }
        assert!(finished_said <= 1);
        assert_eq!(finished_said == 1, c.is_finished());
        assert!(c.view().seq >= seq_before, "{input:?}");
        if c.is_finished() {
            assert_eq!(timer, None);
        }
    }
}
