//! Property tests for the wire format (SPEC §2–§3): round trips, parsers that
//! never panic on any bytes, and the size limits. Bounded (128 cases each) so
//! that `cargo test --workspace` stays fast; the fuzz targets go further. A
//! fixed seed: every run checks the same cases (`PROPTEST_RNG_SEED` picks
//! others).

use gateway_core::error::GatewayError;
use gateway_core::protocol::{
    self, ClientMessage, EventKind, Incoming, JobHeader, JobStatus, Pipeline, ProducerEvent, Seq,
    ServerFrame, ServerMessage, Snapshot, MAX_CLIENT_FRAME, MAX_PRODUCER_BODY,
};
use gateway_core::{FrameError, Millis};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        rng_seed: seed(),
        ..ProptestConfig::default()
    }
}

/// 15 unless `PROPTEST_RNG_SEED` says otherwise.
fn seed() -> RngSeed {
    RngSeed::Fixed(
        std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_ ]{0,12}",
        any::<String>(),
        Just("\u{0}\"\\\u{1F600}".to_owned())
    ]
}

fn status() -> impl Strategy<Value = JobStatus> {
    prop_oneof![
        Just(JobStatus::Pending),
        Just(JobStatus::Processing),
        Just(JobStatus::Completed),
        Just(JobStatus::Failed),
        Just(JobStatus::Canceled),
    ]
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    prop_oneof![
        Just(Pipeline::BatchEnrichment),
        Just(Pipeline::CsvImport),
        Just(Pipeline::AiScan),
    ]
}

/// JSON summaries, floats included (they must survive exactly).
fn summary() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (any::<Option<u64>>(), prop::option::of(text())).prop_map(|(total_count, message)| {
            ServerMessage::JobStarted {
                total_count,
                message,
            }
        }),
        (
            any::<u64>(),
            any::<Option<u64>>(),
            prop::option::of(text()),
            prop::option::of(text())
        )
            .prop_map(|(processed_count, total_count, current_item, message)| {
                ServerMessage::JobProgress {
                    processed_count,
                    total_count,
                    current_item,
                    message,
                }
            }),
        summary().prop_map(|summary| ServerMessage::JobComplete { summary }),
        (text(), text(), any::<bool>()).prop_map(|(code, message, retryable)| {
            ServerMessage::Error {
                code,
                message,
                retryable,
            }
        }),
        (
            any::<bool>(),
            any::<bool>(),
            status(),
            any::<u64>(),
            any::<Option<u64>>()
        )
            .prop_map(
                |(resumed, recovered, status, processed_count, total_count)| {
                    ServerMessage::Snapshot {
                        resumed,
                        recovered,
                        state: Snapshot {
                            status,
                            processed_count,
                            total_count,
                        },
                    }
                }
            ),
        (text(), any::<u64>()).prop_map(|(token, t)| ServerMessage::TokenRefresh {
            token,
            expires_at: Millis(t),
        }),
        Just(ServerMessage::Pong),
    ]
}

fn event_id() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-zA-Z0-9_-]{1,64}")
}

fn producer_event() -> impl Strategy<Value = ProducerEvent> {
    let kind = prop_oneof![
        (
            prop::option::of(0..=protocol::MAX_SAFE_INTEGER),
            prop::option::of(text())
        )
            .prop_map(|(total_count, message)| {
                EventKind::Started {
                    total_count,
                    message,
                }
            }),
        (
            0..=protocol::MAX_SAFE_INTEGER,
            prop::option::of(0..=protocol::MAX_SAFE_INTEGER),
            prop::option::of(text()),
            prop::option::of(text())
        )
            .prop_map(|(processed_count, total_count, current_item, message)| {
                EventKind::Progress {
                    processed_count,
                    total_count,
                    current_item,
                    message,
                }
            }),
        summary().prop_map(|summary| EventKind::Complete { summary }),
        (text(), text()).prop_map(|(code, message)| EventKind::Failed { code, message }),
    ];
    (event_id(), kind).prop_map(|(event_id, kind)| ProducerEvent { event_id, kind })
}

/// Summaries compare as JSON values: the parser keeps the producer's text.
fn same_events(a: &[ProducerEvent], b: &[ProducerEvent]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (&x.kind, &y.kind) {
            (EventKind::Complete { summary: s }, EventKind::Complete { summary: t }) => {
                x.event_id == y.event_id
                    && serde_json::from_str::<serde_json::Value>(s).ok()
                        == serde_json::from_str::<serde_json::Value>(t).ok()
            }
            _ => x == y,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn server_envelope_round_trips(
        msg in server_message(),
        seq in any::<Option<u64>>(),
        job_id in text(),
        pipeline in pipeline(),
        ts in any::<u64>(),
    ) {
        let header = JobHeader { job_id, pipeline };
        let seq = seq.map(Seq);
        let text = protocol::encode(&header, Millis(ts), seq, &msg);
        prop_assert_eq!(protocol::decode(&text), Ok(ServerFrame { seq, message: msg }));
    }

    #[test]
    fn producer_events_round_trip(events in prop::collection::vec(producer_event(), 1..5)) {
        let body = protocol::encode_producer_body(&events, false);
        let parsed = protocol::parse_producer_body(body.as_bytes()).unwrap();
        prop_assert!(same_events(&parsed, &events), "{parsed:?} != {events:?}");
    }

    #[test]
    fn client_frame_parser_never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let frame = match std::str::from_utf8(&data) {
            Ok(t) => Incoming::Text(t),
            Err(_) => Incoming::Binary(data.len()),
        };
        if let Err(e) = protocol::parse_client_frame(frame) {
            prop_assert!(GatewayError::from(e).close_code().is_sent_by_gateway());
        }
    }

    #[test]
    fn client_frame_parser_never_panics_on_json_like_text(
        text in r#"[{}\[\]":,a-z0-9 .\-\\]{0,64}"#,
    ) {
        let _ = protocol::parse_client_frame(Incoming::Text(&text));
        let _ = protocol::decode(&text);
    }

    #[test]
    fn every_string_type_is_accepted_and_unknown_ones_keep_the_socket(ty in any::<String>()) {
        let text = serde_json::json!({ "type": ty }).to_string();
        let got = protocol::parse_client_frame(Incoming::Text(&text));
        match ty.as_str() {
            "ping" => prop_assert_eq!(got, Ok(ClientMessage::Ping)),
            "cancel" => prop_assert_eq!(got, Ok(ClientMessage::Cancel)),
            _ => prop_assert_eq!(
                got,
                Ok(ClientMessage::Unknown { type_name: ty.chars().take(64).collect() })
            ),
        }
    }

    #[test]
    fn producer_parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = protocol::parse_producer_body(&data) {
            prop_assert!(e.status == 422 || e.status == 413);
        }
        if let Err(e) = protocol::parse_create_job(&data) {
            prop_assert!(e.status == 400 || e.status == 413);
        }
        if let Ok(s) = std::str::from_utf8(&data) {
            let _ = protocol::decode(s);
        }
    }

    #[test]
    fn client_frames_over_64_kib_close_with_1009(extra in 1usize..2048) {
        let pad = MAX_CLIENT_FRAME + extra - r#"{"type":"ping","p":""}"#.len();
        let text = format!(r#"{{"type":"ping","p":"{}"}}"#, "a".repeat(pad));
        prop_assert_eq!(text.len(), MAX_CLIENT_FRAME + extra);
        let e = protocol::parse_client_frame(Incoming::Text(&text)).unwrap_err();
        prop_assert_eq!(&e, &FrameError::TooBig { len: text.len() });
        prop_assert_eq!(GatewayError::from(e).close_code().as_u16(), 1009);
    }

    #[test]
    fn client_frames_up_to_64_kib_are_read(short in 0usize..2048) {
        let pad = MAX_CLIENT_FRAME - short - r#"{"type":"ping","p":""}"#.len();
        let text = format!(r#"{{"type":"ping","p":"{}"}}"#, "a".repeat(pad));
        prop_assert_eq!(protocol::parse_client_frame(Incoming::Text(&text)), Ok(ClientMessage::Ping));
    }
}

proptest! {
    // Megabyte bodies: fewer cases.
    #![proptest_config(ProptestConfig { cases: 8, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn producer_bodies_over_1_mib_get_413_and_up_to_it_are_read(delta in 0usize..64) {
        let body = |n: usize| {
            let head = r#"{"type":"progress","processedCount":1,"message":""#;
            format!("{head}{}\"}}", "m".repeat(n - head.len() - 2))
        };
        let over = body(MAX_PRODUCER_BODY + 1 + delta);
        prop_assert_eq!(protocol::parse_producer_body(over.as_bytes()).unwrap_err().status, 413);
        prop_assert_eq!(protocol::parse_create_job(over.as_bytes()).unwrap_err().status, 413);
        let fits = body(MAX_PRODUCER_BODY - delta);
        prop_assert_eq!(protocol::parse_producer_body(fits.as_bytes()).map(|e| e.len()), Ok(1));
    }
}
