//! Inputs the fuzz targets (`fuzz/`, see docs/FUZZING.md) found, replayed on
//! every `cargo test` so that each fix stays fixed.

use gateway_core::protocol::{self, JobHeader, Pipeline, ServerMessage};
use gateway_core::Millis;

/// `json_frames`: a producer's summary number reached subscribers changed by one
/// unit in the last place, because serde_json's default float parser is not
/// correctly rounded and the room re-parses the summary to embed it. Fixed by
/// serde_json's `float_roundtrip` feature.
#[test]
fn summary_floats_reach_subscribers_unchanged() {
    let header = JobHeader {
        job_id: "j".into(),
        pipeline: Pipeline::BatchEnrichment,
    };
    for n in [
        "2.0876322159296466e-308",
        "0.30000000000000004",
        "1.7976931348623157e308",
    ] {
        let summary = format!(r#"{{"ratio":{n}}}"#);
        let events = protocol::parse_producer_body(
            format!(r#"{{"type":"complete","summary":{summary}}}"#).as_bytes(),
        )
        .unwrap();
        let protocol::EventKind::Complete { summary: stored } = &events[0].kind else {
            panic!("{events:?}");
        };
        let text = protocol::encode(
            &header,
            Millis(0),
            None,
            &ServerMessage::JobComplete {
                summary: stored.clone(),
            },
        );
        let sent: serde_json::Value = serde_json::from_str(&text).unwrap();
        let want: f64 = n.parse().unwrap(); // std's parser is correctly rounded
        let got = sent["payload"]["summary"]["ratio"].as_f64().unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{n} became {text}");
        let ServerMessage::JobComplete { summary: seen } = protocol::decode(&text).unwrap().message
        else {
            panic!("{text}");
        };
        let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
        assert_eq!(
            seen["ratio"].as_f64().map(f64::to_bits),
            Some(want.to_bits())
        );
    }
}
