//! The producer hears of a cancel (issue 11, part 5): a job created with a
//! `callbackUrl` is notified once when a subscriber cancels it or it
//! expires; failed attempts are retried at the documented backoff through
//! the alarm, across hibernation and eviction, and dropped after the last.

use gateway_core::callback::{self, CallbackBody, CallbackEvent};
use gateway_core::client::{Input as ClientInput, JobEnd, State};
use gateway_core::protocol::parse_create_job;
use gateway_core::room::{Input, RoomConfig};
use gateway_core::Millis;
use gateway_sim::{NotifyAnswer, Sim, HIBERNATE_AFTER};
use serde_json::json;

const T0: Millis = Millis(1_763_000_000_000);
const URL: &str = "https://producer.example/hooks/progress?k=v";
// The documented backoff (docs/PROTOCOL.md), written out so that a changed
// constant fails a test.
const BACKOFF_MS: [u64; 5] = [1_000, 5_000, 30_000, 120_000, 600_000];
const ATTEMPT_TIMEOUT_MS: u64 = 5_000;
const MAX_URL_BYTES: usize = 2_048;

fn with_subscriber(url: Option<&str>) -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 5);
    s.callback_url = url.map(str::to_owned);
    assert_eq!(s.create_default_job(Some(10)).status, 202);
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    s
}

fn cancel_by_frame(s: &mut Sim) -> Millis {
    let at = s.now;
    s.client_input(0, ClientInput::Cancel);
    s.settle();
    assert_eq!(
        s.clients[0].machine.state(),
        &State::Completed(JobEnd::Canceled)
    );
    at
}

fn body(s: &Sim, i: usize) -> CallbackBody {
    serde_json::from_str(&s.notifies[i].body).unwrap()
}

#[test]
fn a_cancel_frame_notifies_once_after_the_sockets_closed() {
    let mut s = with_subscriber(Some(URL));
    let at = cancel_by_frame(&mut s);
    // Sent from the alarm, not from the cancel: the socket is closed first.
    assert!(s.notifies.is_empty());
    assert_eq!(s.live_sockets(), 0);
    assert_eq!(s.alarm(), Some(at));
    s.advance(Millis(0));
    assert_eq!(s.notifies.len(), 1);
    assert_eq!(
        (s.notifies[0].url.as_str(), s.notifies[0].attempt),
        (URL, 1)
    );
    assert_eq!(
        body(&s, 0),
        CallbackBody {
            job_id: gateway_sim::JOB_ID.into(),
            event: CallbackEvent::Canceled,
            at,
        }
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&s.notifies[0].body).unwrap(),
        json!({"jobId": gateway_sim::JOB_ID, "event": "canceled", "at": at.0})
    );
    assert_eq!(s.job().unwrap().notify, None, "a 2xx ends it");
    assert_eq!(s.storage.as_ref().unwrap().notify, None);
    s.advance(Millis::from_hours(1));
    assert_eq!(s.notifies.len(), 1, "exactly one notification");
}

#[test]
fn the_cancel_endpoint_notifies_too() {
    let mut s = with_subscriber(Some(URL));
    let token = s.token.clone().unwrap().0.expose().to_owned();
    assert_eq!(s.room_request(Input::Cancel { token }).status, 202);
    s.settle();
    s.advance(Millis(0));
    assert_eq!(s.notifies.len(), 1);
    assert_eq!(body(&s, 0).event, CallbackEvent::Canceled);
}

#[test]
fn no_callback_url_no_notification() {
    let mut s = with_subscriber(None);
    cancel_by_frame(&mut s);
    s.advance(Millis::from_hours(1));
    assert!(s.notifies.is_empty());
    assert_eq!(s.job().unwrap().notify, None);
}

#[test]
fn an_expired_job_notifies_expired() {
    let mut s = with_subscriber(Some(URL));
    s.advance(Millis::from_hours(25));
    assert_eq!(s.notifies.len(), 1);
    let b = body(&s, 0);
    assert_eq!(b.event, CallbackEvent::Expired);
    // The retention (24 h) is over at the first full hour after it.
    let hour = Millis::from_hours(1).0;
    let expired = T0.plus(Millis::from_hours(24)).0.div_ceil(hour) * hour;
    assert_ne!(
        expired,
        T0.plus(Millis::from_hours(24)).0,
        "T0 is not on the hour"
    );
    assert_eq!(b.at, Millis(expired));
}

#[test]
fn failed_attempts_are_retried_at_the_documented_backoff() {
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = [
        NotifyAnswer::Status(500),
        NotifyAnswer::Timeout,
        NotifyAnswer::Status(302),
    ]
    .into();
    cancel_by_frame(&mut s);
    s.advance(Millis::from_hours(1));
    let times: Vec<u64> = s
        .notifies
        .iter()
        .map(|n| n.at.minus(s.notifies[0].at).0)
        .collect();
    // 500 → +1 s, timeout → +5 s, 302 (not 2xx) → +30 s, then 200.
    assert_eq!(times, vec![0, 1_000, 6_000, 36_000]);
    let attempts: Vec<u32> = s.notifies.iter().map(|n| n.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    assert!(s.notifies.iter().all(|n| n.body == s.notifies[0].body));
    assert_eq!(s.job().unwrap().notify, None);
}

#[test]
fn exhaustion_drops_the_notification_after_the_last_attempt() {
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = std::iter::repeat_n(NotifyAnswer::Status(503), 10).collect();
    cancel_by_frame(&mut s);
    s.advance(Millis::from_hours(2));
    assert_eq!(callback::MAX_ATTEMPTS, 6);
    assert_eq!(s.notifies.len(), 6, "the first attempt and five retries");
    let mut expected = vec![0];
    for b in BACKOFF_MS {
        expected.push(expected.last().unwrap() + b);
    }
    let times: Vec<u64> = s
        .notifies
        .iter()
        .map(|n| n.at.minus(s.notifies[0].at).0)
        .collect();
    assert_eq!(times, expected);
    assert_eq!(s.job().unwrap().notify, None, "dropped");
    assert_eq!(s.storage.as_ref().unwrap().notify, None);
    // The four answers left are never asked for.
    assert_eq!(s.notify_answers.len(), 4);
}

#[test]
fn hibernation_and_eviction_between_attempts_keep_it() {
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = [NotifyAnswer::Status(500), NotifyAnswer::Status(500)].into();
    cancel_by_frame(&mut s);
    s.advance(Millis(0));
    s.advance(Millis(1_000));
    assert_eq!(s.notifies.len(), 2);
    // The third attempt is due in 5 s: evict the room before it.
    s.evict();
    assert!(!s.is_awake());
    assert!(s.storage.as_ref().unwrap().notify.is_some(), "stored");
    s.advance(Millis(10_000));
    assert_eq!(s.notifies.len(), 3);
    assert_eq!(s.notifies[2].attempt, 3);
    assert_eq!(s.job().unwrap().notify, None);
    // A longer wait (30 s) spans a hibernation.
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = std::iter::repeat_n(NotifyAnswer::Status(500), 3).collect();
    cancel_by_frame(&mut s);
    s.advance(Millis(6_000));
    assert_eq!(s.notifies.len(), 3);
    s.advance(HIBERNATE_AFTER.plus(Millis(1)));
    assert!(!s.is_awake(), "hibernated");
    s.advance(Millis(30_000));
    assert_eq!(s.notifies.len(), 4);
    assert!(s.stats.cold_alarms >= 1);
    assert_eq!(s.job().unwrap().notify, None);
}

#[test]
fn an_attempt_lost_with_the_instance_is_retried() {
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = [NotifyAnswer::Lost].into();
    cancel_by_frame(&mut s);
    s.advance(Millis(0));
    assert_eq!(s.notifies.len(), 1);
    s.evict();
    // Retried after the timeout and the first backoff step.
    s.advance(Millis(ATTEMPT_TIMEOUT_MS + BACKOFF_MS[0] - 2));
    assert_eq!(s.notifies.len(), 1);
    s.advance(Millis(1));
    assert_eq!(s.notifies.len(), 2);
    assert_eq!(s.notifies[1].attempt, 2);
}

#[test]
fn a_stale_result_changes_nothing() {
    let mut s = with_subscriber(Some(URL));
    s.notify_answers = [NotifyAnswer::Status(500)].into();
    cancel_by_frame(&mut s);
    s.advance(Millis(0));
    let pending = s.job().unwrap().notify.clone();
    assert!(pending.is_some());
    s.room_input(Input::NotifyResult {
        attempt: 7,
        status: Some(200),
    });
    assert_eq!(s.job().unwrap().notify, pending);
}

#[test]
fn callback_url_is_checked_at_creation() {
    let create = |url: &str| {
        parse_create_job(
            json!({"pipeline":"csv_import","callbackUrl":url})
                .to_string()
                .as_bytes(),
        )
    };
    assert_eq!(create(URL).unwrap().callback_url.as_deref(), Some(URL));
    assert!(create("http://127.0.0.1:9000/cb").is_ok());
    for bad in [
        "http://producer.example/cb",
        "not a url",
        "https://u:p@producer.example/",
    ] {
        let e = create(bad).unwrap_err();
        assert_eq!((e.status, e.code), (422, "invalid_callback_url"), "{bad}");
        assert!(e.message.contains("https://"), "{}", e.message);
    }
    let base = "https://producer.example/";
    let at_limit = format!("{base}{}", "a".repeat(MAX_URL_BYTES - base.len()));
    assert!(create(&at_limit).is_ok());
    let e = create(&format!("{at_limit}a")).unwrap_err();
    assert_eq!((e.status, e.code), (422, "invalid_callback_url"));
    // Absent: no callback.
    let none = parse_create_job(br#"{"pipeline":"csv_import"}"#).unwrap();
    assert_eq!(none.callback_url, None);
}

/// `http://` is for local development only: the host must be `localhost`,
/// `::1` or a dotted 127.x.y.z address of four decimal parts of at most three
/// digits each, every part a byte; anything that merely starts with `127.`
/// is a public name. A port is 1 to 5 digits.
#[test]
fn plain_http_only_to_a_loopback_host_and_ports_of_at_most_5_digits() {
    for ok in [
        "http://localhost/cb",
        "http://[::1]:8080/cb",
        "http://127.0.0.1/cb",
        "http://127.255.255.255:65535/cb",
        "https://producer.example:65535/cb",
        "https://producer.example:1/cb",
    ] {
        assert!(callback::validate_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        // Not four parts.
        "http://127.0.0/cb",
        "http://127.0.0.1.5/cb",
        "http://127.0.0.1.evil.example/cb",
        // A part that is empty, not a byte, or longer than three digits.
        "http://127..0.1/cb",
        "http://127.0.0.999/cb",
        "http://127.0.0.0001/cb",
        "http://127.a.b.c/cb",
        // Ports.
        "https://producer.example:123456/cb",
        "https://producer.example:/cb",
        "https://producer.example:8o/cb",
    ] {
        let e = callback::validate_url(bad).unwrap_err();
        assert_eq!((e.status, e.code), (422, "invalid_callback_url"), "{bad}");
    }
}

#[test]
fn old_records_without_the_fields_still_load() {
    let s = with_subscriber(None);
    let text = serde_json::to_string(s.storage.as_ref().unwrap()).unwrap();
    assert!(
        !text.contains("callbackUrl") && !text.contains("notify"),
        "{text}"
    );
    let back: gateway_core::room::JobRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(back.callback_url, None);
}

#[test]
fn the_signature_is_hmac_sha256_over_t_dot_body() {
    let h = callback::signature(b"secret", Millis(1_700_000_000_000), r#"{"a":1}"#);
    assert_eq!(
        h,
        "t=1700000000000,v1=4ef2732b0d632a6897af3a6d02a6de287f60d6c5f15dabdb0ceb045a34e3c5a7"
    );
    assert_ne!(
        h,
        callback::signature(b"secreT", Millis(1_700_000_000_000), r#"{"a":1}"#)
    );
    assert_eq!(callback::SIGNATURE_HEADER, "X-Gateway-Signature");
}

#[test]
fn documented_constants() {
    let b: Vec<u64> = callback::RETRY_BACKOFF.iter().map(|m| m.0).collect();
    assert_eq!(b, BACKOFF_MS);
    assert_eq!(callback::ATTEMPT_TIMEOUT.0, ATTEMPT_TIMEOUT_MS);
    assert_eq!(callback::MAX_CALLBACK_URL_BYTES, MAX_URL_BYTES);
}

/// Drives the room itself to see its logs: the attempts, the failures and
/// the drop are logged, and no log line holds the URL.
#[test]
fn exhaustion_is_logged_and_the_url_never_is() {
    use gateway_core::protocol::{CreateJob, Pipeline};
    use gateway_core::room::{Effect, Kept, Room};
    let mut room = Room::restore(RoomConfig::default(), T0, Kept::default()).0;
    let fx = room.handle(
        T0,
        Input::Create {
            request: CreateJob {
                job_id: None,
                pipeline: Pipeline::CsvImport,
                total_count: None,
                ttl: Millis::from_hours(2),
                callback_url: Some(URL.into()),
            },
            job_id: "logged".into(),
            token_random: [3; 16],
            origin: "https://gw.example".into(),
        },
    );
    let Some(Effect::Respond(r)) = fx.iter().find(|e| matches!(e, Effect::Respond(_))) else {
        panic!("{fx:?}")
    };
    let token = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut all = room.handle(T0, Input::Cancel { token });
    let mut now = T0;
    let mut sent = 0;
    // Six attempts are six wakes; a notify timer still set after 20 never
    // ends (bounded, so a room that stops attempting fails here, not hangs).
    let mut wakes = 0;
    while let Some(at) = room.timer(gateway_core::timer::Timer::Notify) {
        wakes += 1;
        assert!(
            wakes <= 20,
            "the notify timer is still set after {wakes} wakes ({sent} attempts)"
        );
        now = at;
        let fx = room.handle(
            now,
            Input::Alarm {
                pings: Vec::new(),
                random: [0; 16],
            },
        );
        let attempts: Vec<u32> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Notify { attempt, url, .. } => {
                    assert_eq!(url, URL);
                    Some(*attempt)
                }
                _ => None,
            })
            .collect();
        all.extend(fx);
        for attempt in attempts {
            sent += 1;
            all.extend(room.handle(
                now,
                Input::NotifyResult {
                    attempt,
                    status: Some(500),
                },
            ));
        }
    }
    assert_eq!(sent, 6);
    let events: Vec<&str> = all
        .iter()
        .filter_map(|e| match e {
            Effect::Log(l) if l.event.starts_with("callback_") => Some(l.event),
            _ => None,
        })
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == "callback_attempt").count(),
        6
    );
    assert_eq!(
        events.iter().filter(|e| **e == "callback_failed").count(),
        6
    );
    assert_eq!(events.last(), Some(&"callback_dropped"));
    assert!(all
        .iter()
        .filter(|e| matches!(e, Effect::Log(_)))
        .all(|e| !format!("{e:?}").contains("producer.example")));
    assert_eq!(room.job().unwrap().notify, None);
    assert!(now > T0);
}
