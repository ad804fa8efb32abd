//! Rules of refusals (SPEC §1, §3, §4): each socket error closes with its own
//! code and a reason that fits a close frame (non-empty, at most 123 bytes, cut
//! on a character boundary); each HTTP refusal has its status, a stable code
//! and a message that says what to do, in the `{"error":{code,message}}` body.

use gateway_core::error::GatewayError;
use gateway_core::protocol::JobStatus;
use gateway_core::{FrameError, HttpError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// WebSocket's limit on a close reason, in bytes.
const MAX_REASON: usize = 123;

/// A frame error whose reason is `field "<name>" has the wrong type`: 27 bytes
/// around the field's name, so a name sets the reason's length exactly.
fn wrong_field(name: &str) -> GatewayError {
    let field: &'static str = Box::leak(name.to_owned().into_boxed_str());
    GatewayError::Frame(FrameError::WrongFieldType { field })
}

/// `f` must return within 2 s: a reason cut that loops fails, never hangs.
fn within_2s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(2))
        .expect("close_reason did not return within 2 s")
}

fn reason(e: GatewayError) -> String {
    within_2s(move || e.close_reason())
}

fn every_gateway_error() -> Vec<(GatewayError, u16)> {
    vec![
        (FrameError::Binary.into(), 1003),
        (FrameError::TooBig { len: 65_537 }.into(), 1009),
        (FrameError::InvalidJson.into(), 1002),
        (FrameError::NotAnObject.into(), 1002),
        (FrameError::MissingType.into(), 1002),
        (FrameError::WrongFieldType { field: "reason" }.into(), 1002),
        (FrameError::RateLimited.into(), 1013),
        (GatewayError::OutgoingTooBig { len: 40 << 20 }, 1009),
        (GatewayError::Superseded, 4000),
        (GatewayError::Revoked, 1008),
        (GatewayError::Idle, 4002),
        (GatewayError::Restarting, 1012),
        (GatewayError::Internal, 1011),
    ]
}

#[test]
fn each_socket_error_closes_with_its_spec_code() {
    for (e, code) in every_gateway_error() {
        assert_eq!(e.close_code().as_u16(), code, "{e:?}");
    }
}

#[test]
fn each_socket_error_has_its_message_as_a_non_empty_reason() {
    for (e, _) in every_gateway_error() {
        let r = reason(e.clone());
        assert!(!r.is_empty(), "{e:?}");
        assert_eq!(r, e.to_string(), "a short reason is sent whole");
    }
    assert_eq!(
        reason(FrameError::TooBig { len: 70_000 }.into()),
        "frame of 70000 bytes is over the 65536-byte limit"
    );
}

#[test]
fn a_reason_of_exactly_123_bytes_is_sent_whole_one_more_is_cut_to_123() {
    let exact = wrong_field(&"f".repeat(96));
    assert_eq!(exact.to_string().len(), MAX_REASON);
    assert_eq!(reason(exact.clone()), exact.to_string());

    let over = wrong_field(&"f".repeat(97));
    assert_eq!(over.to_string().len(), MAX_REASON + 1);
    let cut = reason(over.clone());
    assert_eq!(cut.len(), MAX_REASON);
    assert!(over.to_string().starts_with(&cut));
}

#[test]
fn a_reason_is_cut_before_a_character_that_straddles_byte_123() {
    // `field "` (7 bytes) + 115 bytes, then 'é' covers bytes 122 and 123.
    let e = wrong_field(&format!("{}é{}", "f".repeat(115), "g".repeat(10)));
    let cut = reason(e.clone());
    assert_eq!(cut.len(), 122);
    assert!(e.to_string().starts_with(&cut));
    // And a four-byte character covering bytes 121..=124.
    let e = wrong_field(&format!("{}😀{}", "f".repeat(114), "g".repeat(10)));
    assert_eq!(reason(e).len(), 121);
}

/// Fixed seed: the same cases every run. No shrinking: a cut that loops
/// leaves a spinning thread behind each try, so the first failure is reported.
fn config() -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        max_shrink_iters: 0,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the message, the reason is its longest prefix that ends on a
    /// character boundary and fits 123 bytes.
    #[test]
    fn a_reason_is_the_longest_prefix_that_fits(name in "[a-zé😀\u{800}]{0,140}") {
        let e = wrong_field(&name);
        let full = e.to_string();
        let cut = reason(e);
        let want = (0..=full.len().min(MAX_REASON))
            .rev()
            .find(|&i| full.is_char_boundary(i))
            .map_or("", |i| &full[..i]);
        prop_assert_eq!(cut.as_str(), want);
        prop_assert!(!cut.is_empty());
    }
}

#[test]
fn each_http_refusal_has_its_status_code_and_advice() {
    let cases = [
        (
            HttpError::bad_request("invalid_body", "send JSON"),
            400,
            "invalid_body",
        ),
        (HttpError::unauthorized("send a token"), 401, "unauthorized"),
        (HttpError::job_not_found(), 404, "job_not_found"),
        (
            HttpError::job_ended(JobStatus::Completed),
            409,
            "job_completed",
        ),
        (HttpError::job_ended(JobStatus::Failed), 409, "job_failed"),
        (
            HttpError::job_ended(JobStatus::Canceled),
            409,
            "job_canceled",
        ),
        (HttpError::internal(), 500, "internal_error"),
        (
            HttpError::new(429, "rate_limited", "slow down"),
            429,
            "rate_limited",
        ),
    ];
    for (e, status, code) in cases {
        assert_eq!((e.status, e.code), (status, code), "{e:?}");
        assert!(!e.message.is_empty(), "{e:?}");
        assert_eq!(e.retry_after, None, "{e:?}");
        assert_eq!(e.to_string(), format!("{status} {code}: {}", e.message));
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": code, "message": e.message}})
        );
    }
    assert!(HttpError::job_not_found().message.contains("24 h"));
    assert!(HttpError::internal().message.contains("retry"));
}
