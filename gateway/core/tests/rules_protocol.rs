//! Rules of the wire format's limits and fields (SPEC §2, §3), each at exactly
//! the limit and one over, with the spec's numbers written out (not the core's
//! constants, so a changed constant fails here): a client frame of 64 KiB, the
//! 1 MB warning and 32 MiB refusal for outgoing frames, 1 MiB producer and
//! creation bodies, eventIds of 1 to 64 characters, jobIds of 1 to 64 safe
//! characters, ttlSeconds of 60 to 86400, and the progress ratio.

use gateway_core::error::GatewayError;
use gateway_core::protocol::{
    self, check_outgoing, is_valid_job_id, parse_client_frame, parse_create_job,
    parse_producer_body, progress_ratio, ClientMessage, EventKind, Incoming, JobStatus,
    OutgoingSize, Pipeline, Seq,
};
use gateway_core::{FrameError, HttpError, Millis};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const KIB_64: usize = 65_536;
const MIB_1: usize = 1_048_576;

/// A ping frame of exactly `len` bytes.
fn ping_of(len: usize) -> String {
    let shell = r#"{"type":"ping","pad":""}"#.len();
    let text = format!(r#"{{"type":"ping","pad":"{}"}}"#, "a".repeat(len - shell));
    assert_eq!(text.len(), len);
    text
}

/// A progress event body of exactly `len` bytes.
fn event_body_of(len: usize) -> Vec<u8> {
    let head = r#"{"type":"progress","processedCount":1,"message":""#;
    let text = format!("{head}{}\"}}", "m".repeat(len - head.len() - 2));
    assert_eq!(text.len(), len);
    text.into_bytes()
}

/// A job creation body of exactly `len` bytes (JSON whitespace pads it).
fn create_body_of(len: usize) -> Vec<u8> {
    let json = br#"{"pipeline":"csv_import"}"#;
    let mut body = vec![b' '; len - json.len()];
    body.extend_from_slice(json);
    body
}

fn status_code(r: Result<impl std::fmt::Debug, HttpError>) -> (u16, &'static str) {
    let e = r.expect_err("refused");
    (e.status, e.code)
}

// ---------------------------------------------------------------------------
// Subscriber frames

#[test]
fn a_client_frame_of_exactly_64_kib_is_read_one_byte_more_closes_1009() {
    assert_eq!(
        parse_client_frame(Incoming::Text(&ping_of(KIB_64))),
        Ok(ClientMessage::Ping)
    );
    let over = ping_of(KIB_64 + 1);
    let e = parse_client_frame(Incoming::Text(&over)).unwrap_err();
    assert_eq!(e, FrameError::TooBig { len: KIB_64 + 1 });
    assert_eq!(GatewayError::from(e).close_code().as_u16(), 1009);
}

#[test]
fn an_oversized_frame_is_refused_before_it_is_parsed() {
    let junk = "x".repeat(KIB_64 + 1);
    assert_eq!(
        parse_client_frame(Incoming::Text(&junk)),
        Err(FrameError::TooBig { len: KIB_64 + 1 })
    );
    assert_eq!(
        parse_client_frame(Incoming::Text(&"x".repeat(KIB_64))),
        Err(FrameError::InvalidJson)
    );
}

#[test]
fn any_binary_frame_closes_1003_whatever_its_size() {
    for len in [0, 1, KIB_64, KIB_64 + 1] {
        let e = parse_client_frame(Incoming::Binary(len)).unwrap_err();
        assert_eq!(e, FrameError::Binary);
        assert_eq!(GatewayError::from(e).close_code().as_u16(), 1003);
    }
}

#[test]
fn a_malformed_frame_closes_1002_naming_what_is_wrong() {
    let cases = [
        ("{", FrameError::InvalidJson),
        ("", FrameError::InvalidJson),
        ("[]", FrameError::NotAnObject),
        ("1", FrameError::NotAnObject),
        ("{}", FrameError::MissingType),
        (r#"{"type":null}"#, FrameError::MissingType),
        (r#"{"type":7}"#, FrameError::MissingType),
        (
            r#"{"type":"ping","timestamp":"now"}"#,
            FrameError::WrongFieldType { field: "timestamp" },
        ),
        (
            r#"{"type":"cancel","reason":5}"#,
            FrameError::WrongFieldType { field: "reason" },
        ),
    ];
    for (text, want) in cases {
        let e = parse_client_frame(Incoming::Text(text)).unwrap_err();
        assert_eq!(e, want, "{text}");
        assert_eq!(GatewayError::from(e).close_code().as_u16(), 1002, "{text}");
    }
}

#[test]
fn optional_fields_may_be_absent_null_or_of_their_type() {
    for text in [
        r#"{"type":"ping"}"#,
        r#"{"type":"ping","timestamp":null}"#,
        r#"{"type":"ping","timestamp":1763000000000}"#,
        r#"{"type":"ping","reason":5}"#,
    ] {
        assert_eq!(
            parse_client_frame(Incoming::Text(text)),
            Ok(ClientMessage::Ping),
            "{text}"
        );
    }
    for text in [
        r#"{"type":"cancel"}"#,
        r#"{"type":"cancel","reason":null}"#,
        r#"{"type":"cancel","reason":"user"}"#,
        r#"{"type":"cancel","timestamp":"x"}"#,
    ] {
        assert_eq!(
            parse_client_frame(Incoming::Text(text)),
            Ok(ClientMessage::Cancel),
            "{text}"
        );
    }
}

#[test]
fn an_unknown_type_is_named_by_its_first_64_characters() {
    let long = "é".repeat(70);
    let text = serde_json::json!({ "type": long }).to_string();
    assert_eq!(
        parse_client_frame(Incoming::Text(&text)),
        Ok(ClientMessage::Unknown {
            type_name: "é".repeat(64)
        })
    );
}

// ---------------------------------------------------------------------------
// Outgoing frames

#[test]
fn an_outgoing_frame_up_to_1_mb_is_sent_quietly_one_byte_more_warns() {
    assert_eq!(check_outgoing(0), OutgoingSize::Ok);
    assert_eq!(check_outgoing(1_000_000), OutgoingSize::Ok);
    assert_eq!(check_outgoing(1_000_001), OutgoingSize::Large);
}

#[test]
fn an_outgoing_frame_up_to_32_mib_is_sent_one_byte_more_never() {
    assert_eq!(check_outgoing(33_554_432), OutgoingSize::Large);
    assert_eq!(check_outgoing(33_554_433), OutgoingSize::TooBig);
    assert_eq!(check_outgoing(usize::MAX), OutgoingSize::TooBig);
    let e = GatewayError::OutgoingTooBig { len: 33_554_433 };
    assert_eq!(e.close_code().as_u16(), 1009);
}

// ---------------------------------------------------------------------------
// Producer bodies

#[test]
fn a_producer_body_of_exactly_1_mib_is_read_one_byte_more_is_413() {
    let fits = parse_producer_body(&event_body_of(MIB_1)).unwrap();
    assert_eq!(fits.len(), 1);
    let e = parse_producer_body(&event_body_of(MIB_1 + 1)).unwrap_err();
    assert_eq!((e.status, e.code), (413, "payload_too_large"));
    assert!(e.message.contains("1048577 bytes"), "{}", e.message);
    assert!(e.message.contains("fewer events"), "{}", e.message);
}

#[test]
fn a_creation_body_of_exactly_1_mib_is_read_one_byte_more_is_413() {
    let job = parse_create_job(&create_body_of(MIB_1)).unwrap();
    assert_eq!(job.pipeline, Pipeline::CsvImport);
    assert_eq!(
        status_code(parse_create_job(&create_body_of(MIB_1 + 1))),
        (413, "payload_too_large")
    );
}

#[test]
fn a_body_that_is_not_events_is_422_saying_why() {
    for body in [&b"not json"[..], b"", b"[]", b"3", b"\"started\"", b"null"] {
        let e = parse_producer_body(body).unwrap_err();
        assert_eq!((e.status, e.code), (422, "invalid_event"), "{body:?}");
        assert!(!e.message.is_empty());
    }
    let e = parse_producer_body(br#"[{"type":"started"},{"type":5}]"#).unwrap_err();
    assert!(e.message.starts_with("event 1:"), "{}", e.message);
    let e = parse_producer_body(br#"{"type":"progress"}"#).unwrap_err();
    assert_eq!(e.message, "a progress event needs processedCount");
    let long = format!(r#"{{"type":"{}"}}"#, "z".repeat(40));
    let e = parse_producer_body(long.as_bytes()).unwrap_err();
    assert!(
        e.message.contains(&format!("{:?}", "z".repeat(32))),
        "{}",
        e.message
    );
    assert!(!e.message.contains(&"z".repeat(33)), "{}", e.message);
}

#[test]
fn each_event_type_carries_its_fields_and_defaults() {
    let events = parse_producer_body(
        br#"[
            {"type":"started","totalCount":50,"message":"go"},
            {"type":"progress","processedCount":3,"totalCount":50,"currentItem":"b","message":"m"},
            {"type":"complete","summary":{"books":3}},
            {"type":"complete"},
            {"type":"failed","code":"ocr","message":"bad scan"},
            {"type":"failed"}
        ]"#,
    )
    .unwrap();
    let kinds: Vec<EventKind> = events.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Started {
                total_count: Some(50),
                message: Some("go".into())
            },
            EventKind::Progress {
                processed_count: 3,
                total_count: Some(50),
                current_item: Some("b".into()),
                message: Some("m".into())
            },
            EventKind::Complete {
                summary: r#"{"books":3}"#.into()
            },
            EventKind::Complete {
                summary: "null".into()
            },
            EventKind::Failed {
                code: "ocr".into(),
                message: "bad scan".into()
            },
            EventKind::Failed {
                code: "job_failed".into(),
                message: "the job failed".into()
            },
        ]
    );
}

#[test]
fn complete_and_failed_end_a_job_started_and_progress_do_not() {
    let kind = |body: &[u8]| parse_producer_body(body).unwrap().remove(0).kind;
    assert!(kind(br#"{"type":"complete"}"#).is_terminal());
    assert!(kind(br#"{"type":"failed"}"#).is_terminal());
    assert!(!kind(br#"{"type":"started"}"#).is_terminal());
    assert!(!kind(br#"{"type":"progress","processedCount":1}"#).is_terminal());
}

#[test]
fn completed_failed_and_canceled_jobs_have_ended_pending_and_processing_not() {
    for (s, name, ended) in [
        (JobStatus::Pending, "pending", false),
        (JobStatus::Processing, "processing", false),
        (JobStatus::Completed, "completed", true),
        (JobStatus::Failed, "failed", true),
        (JobStatus::Canceled, "canceled", true),
    ] {
        assert_eq!(s.is_terminal(), ended, "{s:?}");
        assert_eq!(s.as_str(), name);
    }
}

fn event_id_verdict(id: &str) -> Result<Option<String>, (u16, &'static str)> {
    let body = serde_json::json!({"type": "started", "eventId": id}).to_string();
    parse_producer_body(body.as_bytes())
        .map(|mut e| e.remove(0).event_id)
        .map_err(|e| (e.status, e.code))
}

#[test]
fn an_event_id_of_1_to_64_characters_is_kept_empty_or_65_is_422() {
    for id in [
        "a".to_owned(),
        "a".repeat(64),
        "é".repeat(64),
        "😀".repeat(64),
    ] {
        assert_eq!(event_id_verdict(&id), Ok(Some(id.clone())), "{id}");
    }
    for id in [String::new(), "a".repeat(65), "é".repeat(65)] {
        assert_eq!(event_id_verdict(&id), Err((422, "invalid_event")), "{id:?}");
    }
    let none = parse_producer_body(br#"{"type":"started"}"#).unwrap();
    assert_eq!(none[0].event_id, None);
}

// ---------------------------------------------------------------------------
// Job creation

#[test]
fn a_job_id_is_1_to_64_of_letters_digits_dash_and_underscore() {
    assert!(is_valid_job_id("a"));
    assert!(is_valid_job_id(&"a".repeat(64)));
    assert!(is_valid_job_id("AZaz09-_"));
    assert!(!is_valid_job_id(""));
    assert!(!is_valid_job_id(&"a".repeat(65)));
    for bad in ["a.b", "a/b", "a b", "é", "a:b", "a+b", "a%b"] {
        assert!(!is_valid_job_id(bad), "{bad}");
    }
}

#[test]
fn a_creation_names_a_known_pipeline() {
    for (name, p) in [
        ("batch_enrichment", Pipeline::BatchEnrichment),
        ("csv_import", Pipeline::CsvImport),
        ("ai_scan", Pipeline::AiScan),
    ] {
        let body = format!(r#"{{"pipeline":"{name}"}}"#);
        assert_eq!(parse_create_job(body.as_bytes()).unwrap().pipeline, p);
        assert_eq!(p.as_str(), name);
    }
    assert_eq!(
        status_code(parse_create_job(br#"{"pipeline":"CSV_IMPORT"}"#)),
        (400, "unknown_pipeline")
    );
    for body in [&b"{}"[..], b"[]", b"nope", br#"{"pipeline":1}"#] {
        assert_eq!(status_code(parse_create_job(body)), (400, "invalid_body"));
    }
}

#[test]
fn a_creation_keeps_its_job_id_and_total_and_refuses_an_unsafe_id() {
    let job =
        parse_create_job(br#"{"pipeline":"ai_scan","jobId":"mine-1","totalCount":9}"#).unwrap();
    assert_eq!(job.job_id.as_deref(), Some("mine-1"));
    assert_eq!(job.total_count, Some(9));
    let longest = "j".repeat(64);
    let ok = format!(r#"{{"pipeline":"ai_scan","jobId":"{longest}"}}"#);
    assert_eq!(
        parse_create_job(ok.as_bytes()).unwrap().job_id,
        Some(longest.clone())
    );
    let over = format!(r#"{{"pipeline":"ai_scan","jobId":"{longest}j"}}"#);
    assert_eq!(
        status_code(parse_create_job(over.as_bytes())),
        (400, "invalid_job_id")
    );
    assert_eq!(
        status_code(parse_create_job(br#"{"pipeline":"ai_scan","jobId":""}"#)),
        (400, "invalid_job_id")
    );
}

#[test]
fn a_token_lives_60_to_86400_seconds_2_hours_by_default() {
    let ttl = |secs: &str| {
        let body = format!(r#"{{"pipeline":"csv_import"{secs}}}"#);
        parse_create_job(body.as_bytes()).map(|j| j.ttl)
    };
    assert_eq!(ttl(""), Ok(Millis(7_200_000)));
    assert_eq!(ttl(r#","ttlSeconds":60"#), Ok(Millis(60_000)));
    assert_eq!(ttl(r#","ttlSeconds":86400"#), Ok(Millis(86_400_000)));
    for bad in [
        r#","ttlSeconds":59"#,
        r#","ttlSeconds":86401"#,
        r#","ttlSeconds":0"#,
    ] {
        assert_eq!(status_code(ttl(bad)), (400, "invalid_ttl"), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Progress and sequence numbers

#[test]
fn progress_is_zero_while_the_total_is_unknown_or_zero() {
    assert_eq!(progress_ratio(0, None), 0.0);
    assert_eq!(progress_ratio(5, None), 0.0);
    assert_eq!(progress_ratio(0, Some(0)), 0.0);
    assert_eq!(progress_ratio(5, Some(0)), 0.0);
}

#[test]
fn progress_is_done_over_total_clamped_to_one() {
    assert_eq!(progress_ratio(0, Some(4)), 0.0);
    assert_eq!(progress_ratio(1, Some(4)), 0.25);
    assert_eq!(progress_ratio(4, Some(4)), 1.0);
    assert_eq!(progress_ratio(9, Some(4)), 1.0);
    assert_eq!(progress_ratio(1, Some(1)), 1.0);
}

#[test]
fn a_seq_counts_up_by_one_and_never_wraps() {
    assert_eq!(Seq(0).next(), Seq(1));
    assert_eq!(Seq(41).next(), Seq(42));
    assert_eq!(Seq(u64::MAX).next(), Seq(u64::MAX));
}

#[test]
fn the_literal_ping_and_pong_are_the_spec_bytes() {
    assert_eq!(protocol::LITERAL_PING, r#"{"type":"ping"}"#);
    assert_eq!(protocol::LITERAL_PONG, r#"{"type":"pong"}"#);
    assert_eq!(
        parse_client_frame(Incoming::Text(protocol::LITERAL_PING)),
        Ok(ClientMessage::Ping)
    );
}

/// Fixed seed and no failure files: the same cases in every run.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Progress is `done / total` within 0..=1 for any known total.
    #[test]
    fn progress_is_a_ratio_within_zero_and_one(done in 0u64..1_000_000, total in 1u64..1_000_000) {
        let p = progress_ratio(done, Some(total));
        prop_assert!((0.0..=1.0).contains(&p));
        #[allow(clippy::cast_precision_loss)]
        let want = (done as f64 / total as f64).min(1.0);
        prop_assert_eq!(p, want);
    }

    /// An eventId is kept exactly when it has 1 to 64 characters.
    #[test]
    fn an_event_id_is_kept_exactly_when_it_has_1_to_64_characters(id in "[a-zé😀]{0,80}") {
        let chars = id.chars().count();
        let verdict = event_id_verdict(&id);
        if (1..=64).contains(&chars) {
            prop_assert_eq!(verdict, Ok(Some(id)));
        } else {
            prop_assert_eq!(verdict, Err((422, "invalid_event")));
        }
    }

    /// A job id is valid exactly when it is 1 to 64 of `A-Za-z0-9_-`.
    #[test]
    fn a_job_id_is_valid_exactly_when_it_is_safe(id in "[A-Za-z0-9_./ é-]{0,80}") {
        let safe = (1..=64).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(is_valid_job_id(&id), safe);
    }

    /// Outgoing sizes: quiet up to 1 000 000 bytes, a warning up to 32 MiB, never above.
    #[test]
    fn an_outgoing_frame_is_judged_by_its_size(len in prop_oneof![
        0usize..2_000_000,
        999_990usize..1_000_010,
        33_554_420usize..33_554_445,
        any::<usize>(),
    ]) {
        let want = if len > 33_554_432 {
            OutgoingSize::TooBig
        } else if len > 1_000_000 {
            OutgoingSize::Large
        } else {
            OutgoingSize::Ok
        };
        prop_assert_eq!(check_outgoing(len), want);
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Frames around 64 KiB: read up to it, 1009 above it.
    #[test]
    fn a_client_frame_is_read_up_to_64_kib(len in 65_000usize..66_000) {
        let got = parse_client_frame(Incoming::Text(&ping_of(len)));
        if len <= KIB_64 {
            prop_assert_eq!(got, Ok(ClientMessage::Ping));
        } else {
            prop_assert_eq!(got, Err(FrameError::TooBig { len }));
        }
    }
}

// ---------------------------------------------------------------------------
// Server envelopes, as a client reads them

fn header() -> protocol::JobHeader {
    protocol::JobHeader {
        job_id: "j1".into(),
        pipeline: Pipeline::AiScan,
    }
}

#[test]
fn each_server_message_reads_back_as_sent_with_its_seq() {
    use protocol::{ServerFrame, ServerMessage, Snapshot};
    let mut messages = vec![
        ServerMessage::JobStarted {
            total_count: Some(3),
            message: Some("go".into()),
        },
        ServerMessage::JobProgress {
            processed_count: 1,
            total_count: Some(3),
            current_item: Some("b".into()),
            message: Some("m".into()),
        },
        ServerMessage::JobComplete {
            summary: r#"{"books":3}"#.into(),
        },
        ServerMessage::Error {
            code: "ocr".into(),
            message: "bad scan".into(),
            retryable: true,
        },
        ServerMessage::TokenRefresh {
            token: "t".into(),
            expires_at: Millis(9),
        },
        ServerMessage::Pong,
    ];
    for status in [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Canceled,
    ] {
        for resumed in [false, true] {
            messages.push(ServerMessage::Snapshot {
                resumed,
                recovered: !resumed,
                state: Snapshot {
                    status,
                    processed_count: 2,
                    total_count: Some(4),
                },
            });
        }
    }
    for (i, message) in messages.into_iter().enumerate() {
        let seq = Some(Seq(i as u64 + 1));
        let text = protocol::encode(&header(), Millis(5), seq, &message);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], message.type_name(), "{text}");
        assert_eq!(
            protocol::decode(&text),
            Ok(ServerFrame { seq, message }),
            "{text}"
        );
    }
}

#[test]
fn each_envelope_type_has_its_spec_name() {
    let names: Vec<&str> = [
        r#"{"type":"job_started","payload":{}}"#,
        r#"{"type":"job_progress","payload":{"processedCount":1,"progress":0}}"#,
        r#"{"type":"job_complete","payload":{"summary":null}}"#,
        r#"{"type":"error","payload":{"code":"c","message":"m","retryable":false}}"#,
        SNAPSHOT_PAYLOAD_PENDING
            .replace("TYPE", "snapshot")
            .as_str(),
        SNAPSHOT_PAYLOAD_PENDING
            .replace("TYPE", "reconnected")
            .as_str(),
        r#"{"type":"token_refresh","payload":{"token":"t","expiresAt":1}}"#,
        r#"{"type":"pong"}"#,
    ]
    .iter()
    .map(|t| protocol::decode(t).unwrap().message.type_name())
    .collect();
    assert_eq!(
        names,
        [
            "job_started",
            "job_progress",
            "job_complete",
            "error",
            "snapshot",
            "reconnected",
            "token_refresh",
            "pong"
        ]
    );
}

const SNAPSHOT_PAYLOAD_PENDING: &str = r#"{"type":"TYPE","seq":0,"payload":{"currentProgress":0,"processedCount":0,"progress":0,"recovered":false,"status":"pending","totalCount":null}}"#;

/// A client reads each payload as its contract type (`docs/asyncapi.json`):
/// a frame whose payload lacks a field the schema requires, or holds one of
/// the wrong type, is ignored like an unknown type, never half-applied.
#[test]
fn a_client_ignores_what_it_cannot_read() {
    for text in [
        "",
        "[]",
        r#"{"seq":1}"#,
        r#"{"type":"later_type"}"#,
        r#"{"type":"job_started","seq":-1}"#,
        r#"{"type":"job_started","payload":{"totalCount":"7"}}"#,
        r#"{"type":"job_progress","payload":{}}"#,
        r#"{"type":"job_progress","payload":{"processedCount":1}}"#,
        r#"{"type":"job_complete","payload":{}}"#,
        r#"{"type":"error","payload":{}}"#,
        r#"{"type":"error","payload":{"code":"c","message":"m"}}"#,
        r#"{"type":"snapshot","payload":{"status":"pending"}}"#,
        &SNAPSHOT_PAYLOAD_PENDING
            .replace("TYPE", "snapshot")
            .replace("pending", "lost"),
        r#"{"type":"token_refresh","payload":{"expiresAt":1}}"#,
        r#"{"type":"token_refresh","payload":{"token":"t"}}"#,
    ] {
        assert!(protocol::decode(text).is_err(), "{text}");
    }
    assert_eq!(
        protocol::decode(protocol::LITERAL_PONG).map(|f| f.message),
        Ok(protocol::ServerMessage::Pong)
    );
}

/// Forward compatibility: fields a client does not know, and a later schema
/// `version`, do not stop it reading the fields it knows.
#[test]
fn a_client_reads_past_fields_it_does_not_know() {
    let text = r#"{"type":"job_progress","jobId":"j","pipeline":"csv_import","timestamp":1,"version":"1.1.0","seq":9,"later":{"x":1},"payload":{"processedCount":3,"progress":0.5,"totalCount":6,"eta":12}}"#;
    assert_eq!(
        protocol::decode(text),
        Ok(protocol::ServerFrame {
            seq: Some(protocol::Seq(9)),
            message: protocol::ServerMessage::JobProgress {
                processed_count: 3,
                total_count: Some(6),
                current_item: None,
                message: None,
            },
        })
    );
}

// ---------------------------------------------------------------------------
// Loose parsing (issue 11): duplicate keys, unsafe integers, huge numbers,
// summaries kept digit for digit

#[test]
fn a_frame_naming_a_key_twice_closes_1002_at_any_depth() {
    for (text, key) in [
        (r#"{"type":"ping","type":"cancel"}"#, "type"),
        (r#"{"type":"cancel","type":"ping"}"#, "type"),
        (r#"{"type":"ping","x":1,"x":1}"#, "x"),
        (r#"{"type":"ping","x":{"y":[{"z":1,"z":2}]}}"#, "z"),
        (r#"{"type":"ping","\u0074ype":"cancel"}"#, "type"),
    ] {
        let e = parse_client_frame(Incoming::Text(text)).unwrap_err();
        assert_eq!(e, FrameError::DuplicateKey { key: key.into() }, "{text}");
        assert_eq!(GatewayError::from(e).close_code().as_u16(), 1002, "{text}");
    }
    // The same key in sibling objects is no duplicate.
    assert_eq!(
        parse_client_frame(Incoming::Text(
            r#"{"type":"ping","a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}"#
        )),
        Ok(ClientMessage::Ping)
    );
}

#[test]
fn a_ping_is_a_ping_whatever_number_it_carries_up_to_a_doubles_range() {
    for text in [
        r#"{"type":"ping","timestamp":1.7976931348623157e308}"#,
        r#"{"type":"ping","timestamp":-1e308}"#,
        r#"{"type":"ping","timestamp":123456789012345678901234567890}"#,
        r#"{"type":"ping","timestamp":1.5}"#,
        r#"{"type":"ping","timestamp":1e-400}"#,
        r#"{"type":"ping","n":[1e308,{"m":-1e308}]}"#,
    ] {
        assert_eq!(
            parse_client_frame(Incoming::Text(text)),
            Ok(ClientMessage::Ping),
            "{text}"
        );
    }
    // Beyond it, in any field: not JSON the gateway reads (1002).
    for text in [
        r#"{"type":"ping","timestamp":1.7976931348623159e308}"#,
        r#"{"type":"ping","timestamp":1e309}"#,
        r#"{"type":"ping","n":[{"m":-1e400}]}"#,
        r#"{"type":"cancel","n":1e400}"#,
    ] {
        let e = parse_client_frame(Incoming::Text(text)).unwrap_err();
        assert_eq!(e, FrameError::InvalidJson, "{text}");
        assert_eq!(GatewayError::from(e).close_code().as_u16(), 1002);
    }
}

#[test]
fn counts_up_to_2_pow_53_minus_1_are_read_one_more_is_refused() {
    let max = 9_007_199_254_740_991_u64;
    for n in [max, max + 1, u64::MAX] {
        for body in [
            format!(r#"{{"type":"started","totalCount":{n}}}"#),
            format!(r#"{{"type":"progress","processedCount":{n}}}"#),
            format!(r#"{{"type":"progress","processedCount":0,"totalCount":{n}}}"#),
        ] {
            let got = parse_producer_body(body.as_bytes());
            if n == max {
                assert!(got.is_ok(), "{body}: {got:?}");
            } else {
                let e = got.unwrap_err();
                assert_eq!((e.status, e.code), (422, "invalid_event"), "{body}");
                assert!(e.message.contains("9007199254740991"), "{}", e.message);
            }
        }
        let create = format!(r#"{{"pipeline":"ai_scan","totalCount":{n}}}"#);
        let got = parse_create_job(create.as_bytes());
        if n == max {
            assert_eq!(got.unwrap().total_count, Some(max));
        } else {
            assert_eq!(status_code(got), (400, "invalid_total_count"), "{create}");
        }
    }
    // Beyond 64 bits, or not an integer: refused as before.
    for n in ["18446744073709551616", "1e3", "-1", "1.0"] {
        let body = format!(r#"{{"type":"progress","processedCount":{n}}}"#);
        assert_eq!(
            status_code(parse_producer_body(body.as_bytes())),
            (422, "invalid_event"),
            "{n}"
        );
    }
}

#[test]
fn a_body_naming_a_key_twice_is_refused_and_nothing_in_it_is_read() {
    for body in [
        &br#"{"type":"progress","processedCount":1,"processedCount":2}"#[..],
        br#"{"type":"started","type":"complete"}"#,
        br#"[{"type":"started"},{"type":"complete","summary":{"a":1,"a":2}}]"#,
        br#"{"type":"started","extra":1,"extra":2}"#,
    ] {
        let e = parse_producer_body(body).unwrap_err();
        assert_eq!((e.status, e.code), (422, "duplicate_key"), "{body:?}");
        assert!(e.message.contains("twice"), "{}", e.message);
    }
    assert_eq!(
        status_code(parse_create_job(
            br#"{"pipeline":"ai_scan","pipeline":"csv_import"}"#
        )),
        (400, "duplicate_key")
    );
    assert_eq!(
        status_code(parse_create_job(
            br#"{"pipeline":"ai_scan","x":{"y":1,"y":1}}"#
        )),
        (400, "duplicate_key")
    );
    // A number no reader reads is refused even where nothing reads it.
    assert_eq!(
        status_code(parse_create_job(br#"{"pipeline":"ai_scan","x":1e400}"#)),
        (400, "invalid_body")
    );
    assert!(parse_create_job(br#"{"pipeline":"ai_scan","x":1e308}"#).is_ok());
}

#[test]
fn a_summary_reaches_subscribers_digit_for_digit() {
    let summary = r#"{"big":123456789012345678901234567890,"neg":-98765432109876543210987654321,"f":1.000000000000000000001,"e":-0.5e-400,"s":"\u00e9"}"#;
    let body = format!(r#"{{"type":"complete","summary":{summary}}}"#);
    let events = parse_producer_body(body.as_bytes()).unwrap();
    let EventKind::Complete { summary: kept } = &events[0].kind else {
        panic!("{events:?}")
    };
    assert_eq!(kept, summary);
    let header = protocol::JobHeader {
        job_id: "j".into(),
        pipeline: Pipeline::CsvImport,
    };
    let frame = protocol::encode(
        &header,
        Millis(1),
        Some(Seq(3)),
        &protocol::ServerMessage::JobComplete {
            summary: kept.clone(),
        },
    );
    assert!(
        frame.contains(&format!(r#""payload":{{"summary":{summary}}}"#)),
        "{frame}"
    );
    // What every JSON reader can read: a number beyond a double's range is not.
    for n in ["1e400", "-1.7976931348623159e308"] {
        let body = format!(r#"{{"type":"complete","summary":{{"x":[{n}]}}}}"#);
        let e = parse_producer_body(body.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.code), (422, "invalid_event"), "{n}");
        assert!(e.message.contains("number out of range"), "{}", e.message);
    }
    let max = r#"{"type":"complete","summary":[-1.7976931348623157e308]}"#;
    assert!(parse_producer_body(max.as_bytes()).is_ok());
    // And a client reads it back unchanged.
    assert_eq!(
        protocol::decode(&frame).unwrap().message,
        protocol::ServerMessage::JobComplete {
            summary: summary.into()
        }
    );
}

/// A validated event goes back on the wire (the simulated producers and the
/// fuzzers post it) as the same event: every field, its kind and its
/// summary's digits survive the round trip.
#[test]
fn a_validated_event_encodes_back_to_the_same_event() {
    let body = br#"[{"type":"started","eventId":"a","totalCount":3,"message":"go"},{"type":"progress","processedCount":1,"totalCount":3,"currentItem":"x","message":"m"},{"type":"complete","summary":{"n":18446744073709551617}},{"type":"failed","code":"c","message":"m"}]"#;
    let events = parse_producer_body(body).unwrap();
    for event in &events {
        let one = std::slice::from_ref(event);
        let wire = gateway_core::protocol::encode_producer_body(one, false);
        assert!(wire.starts_with('{'), "one event is one object: {wire}");
        assert_eq!(parse_producer_body(wire.as_bytes()).unwrap(), one, "{wire}");
    }
    let wire = gateway_core::protocol::encode_producer_body(&events, false);
    assert_eq!(
        parse_producer_body(wire.as_bytes()).unwrap(),
        events,
        "{wire}"
    );
    let wire = gateway_core::protocol::encode_producer_body(&events[..1], true);
    assert!(wire.starts_with('['), "an array when asked: {wire}");
    assert_eq!(parse_producer_body(wire.as_bytes()).unwrap(), &events[..1]);
}
