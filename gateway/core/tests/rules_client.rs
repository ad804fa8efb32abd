//! Rules of the subscriber machine (SPEC §3, §4, seed 002), driven input by
//! input with virtual time: what a watching app does on each frame, close code,
//! refusal and state-sync answer, when it pings, how long it waits before a
//! reconnect, and when it gives up. Numbers are the spec's, written out (1 s
//! first backoff step, 30 s cap, a state sync after 3 failed reconnects, 3
//! tries of it, a ping every 30 s), never taken from the core's constants.
//! No test loops without a bound: a mutant that stops a timer fails an
//! assertion, never hangs.

use gateway_core::client::{
    Backoff, Client, ClientConfig, ConnectParams, Effect, FailReason, Input, JobEnd, State, View,
};
use gateway_core::protocol::{
    encode, JobHeader, JobStatus, Pipeline, Seq, ServerMessage, Snapshot, LITERAL_PING,
};
use gateway_core::token::Token;
use gateway_core::{CloseCode, Millis};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const JOB: &str = "job-1";
const T0: Millis = Millis(1_000_000);
const CANCEL: &str = r#"{"type":"cancel"}"#;

fn tok() -> Token {
    Token::from_string("tok-1".into())
}

/// The production defaults, with a client id.
fn config() -> ClientConfig {
    let mut c = ClientConfig::new(JOB);
    c.client_id = Some("app-1".into());
    c
}

fn frame(seq: Option<u64>, msg: &ServerMessage) -> Input {
    let job = JobHeader {
        job_id: JOB.into(),
        pipeline: Pipeline::CsvImport,
    };
    Input::Frame(encode(&job, T0, seq.map(Seq), msg))
}

/// The first frame of a socket: `recovered` is `None` for a fresh socket.
fn snapshot(seq: u64, processed: u64, recovered: Option<bool>) -> Input {
    frame(
        Some(seq),
        &ServerMessage::Snapshot {
            resumed: recovered.is_some(),
            recovered: recovered.unwrap_or(false),
            state: Snapshot {
                status: JobStatus::Processing,
                processed_count: processed,
                total_count: Some(10),
            },
        },
    )
}

fn progress(seq: u64, processed: u64) -> Input {
    frame(
        Some(seq),
        &ServerMessage::JobProgress {
            processed_count: processed,
            total_count: Some(10),
            current_item: Some(format!("item {processed}")),
            message: None,
        },
    )
}

fn complete(seq: u64) -> Input {
    frame(
        Some(seq),
        &ServerMessage::JobComplete {
            summary: r#"{"rows":10}"#.into(),
        },
    )
}

fn job_error(seq: Option<u64>) -> Input {
    frame(
        seq,
        &ServerMessage::Error {
            code: "bad_csv".into(),
            message: "row 7".into(),
            retryable: false,
        },
    )
}

fn closed(code: u16) -> Input {
    Input::Closed { code: Some(code) }
}

fn refused(status: u16) -> Input {
    Input::Refused {
        status,
        retry_after: None,
    }
}

fn fetched(status: u16, body: Option<&str>) -> Input {
    Input::StateFetched {
        status,
        body: body.map(str::to_owned),
    }
}

/// A `GET /api/job-state` body.
fn state_body(seq: u64, status: &str, processed: u64) -> String {
    format!(
        r#"{{"jobId":"{JOB}","pipeline":"csv_import","seq":{seq},"updatedAt":1,"status":"{status}","processedCount":{processed},"totalCount":10,"progress":0.5,"currentProgress":0.5}}"#
    )
}

/// A machine and its virtual clock.
struct Run {
    c: Client,
    now: Millis,
}

impl Run {
    fn new(config: ClientConfig) -> Self {
        Self {
            c: Client::new(config, tok(), None, [7; 8]),
            now: T0,
        }
    }

    /// Started, upgraded and following the job (snapshot at seq 0).
    fn active(config: ClientConfig) -> Self {
        let mut r = Self::new(config);
        r.go(Input::Start);
        r.go(Input::Opened);
        r.go(snapshot(0, 0, None));
        assert_eq!(r.c.state(), &State::Active);
        r
    }

    fn go(&mut self, input: Input) -> Vec<Effect> {
        self.c.handle(self.now, input)
    }

    fn at(&mut self, t: Millis, input: Input) -> Vec<Effect> {
        self.now = t;
        self.go(input)
    }

    /// The timer the machine asked for last (follows `SetTimer` effects).
    fn tick_when_due(&mut self, timer: Option<Millis>) -> Vec<Effect> {
        let at = timer.expect("the machine asked for no timer: nothing would wake it");
        self.at(at, Input::Tick)
    }
}

fn waiting(fx: &[Effect]) -> Backoff {
    fx.iter()
        .find_map(|e| match e {
            Effect::Waiting(b) => Some(*b),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no reconnect wait in {fx:?}"))
}

fn timer(fx: &[Effect]) -> Option<Option<Millis>> {
    fx.iter().rev().find_map(|e| match e {
        Effect::SetTimer(t) => Some(*t),
        _ => None,
    })
}

fn connects(fx: &[Effect]) -> Vec<&ConnectParams> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Connect(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn sends(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn fetches(fx: &[Effect]) -> usize {
    fx.iter()
        .filter(|e| matches!(e, Effect::FetchState(_)))
        .count()
}

fn last_view(fx: &[Effect]) -> Option<&View> {
    fx.iter().rev().find_map(|e| match e {
        Effect::Progress(v) => Some(v),
        _ => None,
    })
}

fn finished(fx: &[Effect]) -> Option<&State> {
    fx.iter().find_map(|e| match e {
        Effect::Finished(s) => Some(s),
        _ => None,
    })
}

// --- connecting ---------------------------------------------------------

#[test]
fn production_defaults_are_the_specs() {
    let c = ClientConfig::new("j");
    assert_eq!(c.job_id, "j");
    assert_eq!(c.client_id, None);
    assert_eq!(c.backoff_base, Millis(1_000));
    assert_eq!(c.backoff_cap, Millis(30_000));
    assert_eq!(c.sync_after, 3);
    assert_eq!(c.sync_tries, 3);
    assert_eq!(c.ping_interval, Millis(30_000));
}

#[test]
fn the_upgrade_query_names_the_job_the_token_the_client_and_the_resume_point() {
    let full = ConnectParams {
        job_id: "job 1/é".into(),
        token: Token::from_string("t+k=n&x".into()),
        client_id: Some("app 1".into()),
        last_seq: Some(Seq(42)),
    };
    assert_eq!(
        full.query(),
        "jobId=job+1%2F%C3%A9&token=t%2Bk%3Dn%26x&clientId=app+1&lastSeq=42"
    );
    let bare = ConnectParams {
        job_id: JOB.into(),
        token: tok(),
        client_id: None,
        last_seq: None,
    };
    assert_eq!(bare.query(), "jobId=job-1&token=tok-1");
}

#[test]
fn start_opens_one_socket_with_the_token_and_no_timer() {
    let mut r = Run::new(config());
    assert_eq!(r.c.state(), &State::Idle);
    let fx = r.go(Input::Start);
    let expected = ConnectParams {
        job_id: JOB.into(),
        token: tok(),
        client_id: Some("app-1".into()),
        last_seq: None,
    };
    assert_eq!(fx, [Effect::Connect(expected)]);
    assert_eq!(r.c.state(), &State::Connecting { attempt: 0 });
    // A second start changes nothing.
    assert_eq!(r.go(Input::Start), []);
}

#[test]
fn the_token_and_its_expiry_are_the_ones_given_until_a_refresh() {
    let r = Run::new(config());
    assert_eq!(r.c.token(), &tok());
    assert_eq!(r.c.token_expires_at(), None);
    let c = Client::new(config(), tok(), Some(Millis(5_000)), [0; 8]);
    assert_eq!(c.token_expires_at(), Some(Millis(5_000)));
}

// --- pings (SPEC §3) ----------------------------------------------------

#[test]
fn a_literal_ping_on_open_then_every_30_s_and_not_a_millisecond_early() {
    let mut r = Run::new(config());
    r.go(Input::Start);
    let fx = r.at(T0.plus(Millis(5)), Input::Opened);
    let opened = T0.plus(Millis(5));
    assert_eq!(
        fx,
        [
            Effect::Send(LITERAL_PING.into()),
            Effect::SetTimer(Some(opened.plus(Millis(30_000))))
        ]
    );
    assert_eq!(r.c.state(), &State::Authenticating { attempt: 0 });
    // Before the snapshot too.
    // A tick a millisecond early sends nothing and re-arms the same deadline.
    assert_eq!(
        r.at(opened.plus(Millis(29_999)), Input::Tick),
        [Effect::SetTimer(Some(opened.plus(Millis(30_000))))]
    );
    let fx = r.at(opened.plus(Millis(30_000)), Input::Tick);
    assert_eq!(sends(&fx), [LITERAL_PING]);
    assert_eq!(timer(&fx), Some(Some(opened.plus(Millis(60_000)))));
    // A frame neither pings nor moves the schedule.
    let fx = r.go(snapshot(0, 0, None));
    assert!(sends(&fx).is_empty() && timer(&fx).is_none(), "{fx:?}");
    assert_eq!(
        r.at(opened.plus(Millis(59_999)), Input::Tick),
        [Effect::SetTimer(Some(opened.plus(Millis(60_000))))]
    );
    let fx = r.at(opened.plus(Millis(60_000)), Input::Tick);
    assert_eq!(sends(&fx), [LITERAL_PING]);
    assert_eq!(timer(&fx), Some(Some(opened.plus(Millis(90_000)))));
}

#[test]
fn no_ping_while_not_connected() {
    let mut r = Run::active(config());
    r.c.script_random([0.0]);
    let fx = r.go(closed(1006));
    // Only the reconnect timer (at once: r = 0, no floor) is left.
    assert_eq!(timer(&fx), Some(Some(r.now)));
    assert!(sends(&fx).is_empty());
    let fx = r.go(Input::Tick);
    assert_eq!(connects(&fx).len(), 1);
    assert_eq!(timer(&fx), Some(None), "no timer while connecting: {fx:?}");
    assert!(sends(&fx).is_empty());
    assert_eq!(r.at(r.now.plus(Millis(30_000)), Input::Tick), []);
}

// --- what frames show ---------------------------------------------------

#[test]
fn frames_build_the_view_and_progress_never_goes_backwards() {
    let mut r = Run::new(config());
    r.go(Input::Start);
    r.go(Input::Opened);
    let fx = r.go(snapshot(3, 4, None));
    let v = last_view(&fx).expect("the snapshot is shown");
    assert_eq!(v.status, Some(JobStatus::Processing));
    assert_eq!(
        (v.processed_count, v.total_count, v.seq),
        (4, Some(10), Some(Seq(3)))
    );
    assert_eq!(r.c.view(), v);
    let fx = r.go(frame(
        Some(4),
        &ServerMessage::JobStarted {
            total_count: None,
            message: Some("go".into()),
        },
    ));
    let v = last_view(&fx).expect("job_started is shown");
    assert_eq!(
        v.total_count,
        Some(10),
        "an unknown total keeps the known one"
    );
    assert_eq!(v.message.as_deref(), Some("go"));
    let fx = r.go(progress(6, 7));
    let v = last_view(&fx).expect("job_progress is shown");
    assert_eq!((v.processed_count, v.seq), (7, Some(Seq(6))));
    assert_eq!(v.message.as_deref(), Some("item 7"));
    // A late, lower frame moves neither the count nor the seq back.
    let fx = r.go(progress(5, 2));
    let v = last_view(&fx).expect("shown");
    assert_eq!((v.processed_count, v.seq), (7, Some(Seq(6))));
    assert_eq!(r.c.view().processed_count, 7);
}

#[test]
fn pongs_refusals_and_garbage_change_nothing_shown() {
    let mut r = Run::active(config());
    let before = r.c.view().clone();
    for input in [
        frame(None, &ServerMessage::Pong),
        job_error(None),
        Input::Frame("not json".into()),
    ] {
        let fx = r.go(input);
        assert!(last_view(&fx).is_none(), "{fx:?}");
    }
    assert_eq!(r.c.view(), &before);
    assert_eq!(r.c.state(), &State::Active);
}

#[test]
fn a_refreshed_token_is_adopted_for_reconnects_and_state_syncs() {
    let mut config = config();
    config.sync_after = 1;
    let mut r = Run::active(config);
    let fx = r.go(frame(
        None,
        &ServerMessage::TokenRefresh {
            token: "tok-2".into(),
            expires_at: Millis(9_000_000),
        },
    ));
    assert_eq!(
        fx,
        [Effect::TokenUpdated {
            expires_at: Millis(9_000_000)
        }]
    );
    assert_eq!(r.c.token().expose(), "tok-2");
    assert_eq!(r.c.token_expires_at(), Some(Millis(9_000_000)));
    let fx = r.go(closed(1006));
    let fx = r.tick_when_due(timer(&fx).flatten());
    assert_eq!(connects(&fx)[0].token.expose(), "tok-2");
    let fx = r.go(closed(1006));
    let fx = r.tick_when_due(timer(&fx).flatten());
    assert_eq!(
        fx[0],
        Effect::FetchState(Token::from_string("tok-2".into()))
    );
}

#[test]
fn cancel_sends_the_cancel_frame_only_on_a_live_socket() {
    let mut r = Run::new(config());
    r.go(Input::Start);
    assert_eq!(r.go(Input::Cancel), []);
    r.go(Input::Opened);
    assert_eq!(r.go(Input::Cancel), [], "not before the snapshot");
    r.go(snapshot(0, 0, None));
    assert_eq!(r.go(Input::Cancel), [Effect::Send(CANCEL.into())]);
    assert_eq!(r.c.state(), &State::Active, "the gateway's 1001 ends it");
}

// --- resume -------------------------------------------------------------

#[test]
fn a_reconnect_resumes_from_the_last_seq_and_reports_continuity_once() {
    for recovered in [true, false] {
        let mut r = Run::active(config());
        r.go(progress(2, 2));
        r.c.script_random([0.0]);
        r.go(closed(1006));
        let fx = r.go(Input::Tick);
        assert_eq!(connects(&fx)[0].last_seq, Some(Seq(2)));
        r.go(Input::Opened);
        let fx = r.go(snapshot(4, 4, Some(recovered)));
        assert!(
            matches!(&fx[..], [Effect::Progress(_), Effect::Resumed { from: Seq(2), recovered: x }] if *x == recovered),
            "{fx:?}"
        );
        assert_eq!(r.c.view().recovered, recovered);
        let fx = r.go(snapshot(4, 4, Some(recovered)));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Resumed { .. })));
    }
}

#[test]
fn a_first_socket_reports_no_resume() {
    let mut r = Run::new(config());
    r.go(Input::Start);
    r.go(Input::Opened);
    let fx = r.go(snapshot(0, 0, None));
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Resumed { .. })),
        "{fx:?}"
    );
}

// --- close codes (SPEC §4) ----------------------------------------------

/// Active, then optionally a frame, then the close: the effects of the close.
fn close_after(before: Option<Input>, code: Option<u16>) -> (Run, Vec<Effect>) {
    let mut r = Run::active(config());
    if let Some(f) = before {
        r.go(f);
    }
    let fx = r.go(Input::Closed { code });
    (r, fx)
}

#[test]
fn the_ending_codes_end_the_watch_with_the_jobs_outcome() {
    let summary = Some(r#"{"rows":10}"#.to_owned());
    let producer = JobEnd::Failed {
        code: "bad_csv".into(),
        message: "row 7".into(),
    };
    let generic = JobEnd::Failed {
        code: "job_failed".into(),
        message: String::new(),
    };
    let cases = [
        (Some(complete(1)), 1000, JobEnd::Succeeded { summary }),
        (None, 1000, JobEnd::Succeeded { summary: None }),
        (None, 1001, JobEnd::Canceled),
        // 1001 wins over a job_complete seen before it.
        (Some(complete(1)), 1001, JobEnd::Canceled),
        (Some(job_error(Some(1))), 4001, producer),
        (None, 4001, generic),
    ];
    for (before, code, end) in cases {
        let (r, fx) = close_after(before, Some(code));
        let status = match end {
            JobEnd::Succeeded { .. } => JobStatus::Completed,
            JobEnd::Failed { .. } => JobStatus::Failed,
            JobEnd::Canceled => JobStatus::Canceled,
        };
        assert_eq!(
            last_view(&fx).map(|v| v.status),
            Some(Some(status)),
            "{code}: {fx:?}"
        );
        assert_eq!(
            finished(&fx),
            Some(&State::Completed(end.clone())),
            "{code}"
        );
        assert_eq!(r.c.state(), &State::Completed(end), "{code}");
        assert!(r.c.is_finished());
        assert_eq!(timer(&fx), Some(None), "{code}: the ping timer is dropped");
    }
}

#[test]
fn the_stopping_codes_give_up_without_reconnecting() {
    for (code, reason) in [
        (1002, FailReason::Refused(CloseCode::Protocol)),
        (1003, FailReason::Refused(CloseCode::Unsupported)),
        (1009, FailReason::Refused(CloseCode::TooBig)),
        (4000, FailReason::Superseded),
        (1008, FailReason::Revoked),
    ] {
        let (r, fx) = close_after(None, Some(code));
        assert_eq!(
            finished(&fx),
            Some(&State::Failed(reason.clone())),
            "{code}"
        );
        assert_eq!(r.c.state(), &State::Failed(reason), "{code}");
        assert!(connects(&fx).is_empty());
        assert_eq!(timer(&fx), Some(None), "{code}");
    }
}

#[test]
fn the_reconnecting_codes_wait_at_least_their_minimum_delay() {
    // r = 0: the wait is exactly the floor.
    for (code, floor) in [
        (None, 0),
        (Some(1006), 0),
        (Some(1011), 1_000),
        (Some(1012), 0),
        (Some(1013), 5_000),
        (Some(4002), 0),
        (Some(3999), 0),
    ] {
        let mut r = Run::active(config());
        r.c.script_random([0.0]);
        let fx = r.go(Input::Closed { code });
        let b = waiting(&fx);
        assert_eq!(
            b,
            Backoff {
                attempt: 0,
                min: Millis(floor),
                max: Millis(floor + 1_000),
                at: T0.plus(Millis(floor)),
            },
            "{code:?}"
        );
        assert_eq!(
            r.c.state(),
            &State::Reconnecting {
                attempt: 0,
                at: b.at
            }
        );
        assert_eq!(timer(&fx), Some(Some(b.at)));
        assert!(!r.c.is_finished());
    }
}

#[test]
fn a_lost_close_after_the_terminal_event_still_ends_the_watch() {
    let (r, fx) = close_after(Some(complete(1)), None);
    let end = JobEnd::Succeeded {
        summary: Some(r#"{"rows":10}"#.into()),
    };
    assert_eq!(finished(&fx), Some(&State::Completed(end)));
    assert!(connects(&fx).is_empty() && r.c.is_finished());
    let (_, fx) = close_after(Some(job_error(Some(1))), Some(1012));
    assert!(
        matches!(finished(&fx), Some(State::Completed(JobEnd::Failed { code, .. })) if code == "bad_csv"),
        "{fx:?}"
    );
}

#[test]
fn an_error_without_seq_is_a_refused_frame_not_the_jobs_end() {
    let (r, fx) = close_after(Some(job_error(None)), None);
    assert!(finished(&fx).is_none(), "{fx:?}");
    assert!(matches!(
        r.c.state(),
        State::Reconnecting { attempt: 0, .. }
    ));
}

#[test]
fn a_socket_that_fails_before_its_first_frame_counts_as_a_failed_attempt() {
    // From Connecting and from Authenticating alike: attempt 1, twice the range.
    for opened in [false, true] {
        let mut r = Run::new(config());
        r.go(Input::Start);
        if opened {
            r.go(Input::Opened);
        }
        r.c.script_random([0.0]);
        let b = waiting(&r.go(closed(1006)));
        assert_eq!((b.attempt, b.min, b.max), (1, Millis(0), Millis(2_000)));
    }
    // After a frame the count starts over.
    let mut r = Run::active(config());
    let b = waiting(&r.go(closed(1006)));
    assert_eq!((b.attempt, b.max), (0, Millis(1_000)));
}

// --- upgrade refusals ----------------------------------------------------

#[test]
fn upgrade_refusals_map_to_what_the_app_is_told() {
    for (status, reason) in [
        (401, Some(FailReason::Unauthorized)),
        (404, Some(FailReason::NotFound)),
        (400, Some(FailReason::BadRequest(400))),
        (403, Some(FailReason::BadRequest(403))),
        (426, Some(FailReason::BadRequest(426))),
        (499, Some(FailReason::BadRequest(499))),
        (399, None),
        (500, None),
        (503, None),
    ] {
        let mut r = Run::new(config());
        r.go(Input::Start);
        r.c.script_random([0.0]);
        let fx = r.go(refused(status));
        match reason {
            Some(reason) => {
                assert_eq!(
                    fx,
                    [Effect::Finished(State::Failed(reason.clone()))],
                    "{status}"
                );
                assert_eq!(r.c.state(), &State::Failed(reason));
            }
            None => {
                let b = waiting(&fx);
                assert_eq!((b.attempt, b.min, b.at), (1, Millis(0), T0), "{status}");
            }
        }
    }
}

#[test]
fn a_429_waits_its_retry_after_until_a_socket_gets_a_frame() {
    let mut r = Run::new(config());
    r.go(Input::Start);
    r.c.script_random([0.0, 0.0, 0.0, 0.0]);
    let b = waiting(&r.go(Input::Refused {
        status: 429,
        retry_after: Some(7),
    }));
    assert_eq!(
        (b.attempt, b.min, b.max, b.at),
        (1, Millis(7_000), Millis(9_000), T0.plus(Millis(7_000)))
    );
    // Without Retry-After: one second.
    let mut r2 = Run::new(config());
    r2.go(Input::Start);
    r2.c.script_random([0.0]);
    let b2 = waiting(&r2.go(refused(429)));
    assert_eq!(b2.min, Millis(1_000));
    // The floor holds for the next failures, and a 1013's 5 s does not lower it.
    r.tick_when_due(Some(b.at));
    let b = waiting(&r.go(closed(1013)));
    assert_eq!(b.min, Millis(7_000));
    r.tick_when_due(Some(b.at));
    r.go(Input::Opened);
    r.go(snapshot(0, 0, None));
    let b = waiting(&r.go(closed(1013)));
    assert_eq!(b.min, Millis(5_000), "a frame clears the server's floor");
}

// --- backoff ------------------------------------------------------------

/// Fixed seed and no failure files: the same cases in every run.
fn prop_config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Fails `n` upgrades in a row (503) and returns each wait.
fn failed_upgrades(config: ClientConfig, seed: [u8; 8], n: usize) -> Vec<Backoff> {
    let mut r = Run {
        c: Client::new(config, tok(), None, seed),
        now: T0,
    };
    r.go(Input::Start);
    let mut waits = Vec::with_capacity(n);
    for _ in 0..n {
        let fx = r.go(refused(503));
        let b = waiting(&fx);
        assert_eq!(timer(&fx), Some(Some(b.at)), "the timer is the wait");
        waits.push(b);
        // Not a millisecond early.
        if b.at > r.now {
            assert_eq!(
                r.at(b.at.minus(Millis(1)), Input::Tick),
                [Effect::SetTimer(Some(b.at))]
            );
        }
        let fx = r.at(b.at, Input::Tick);
        assert_eq!(
            connects(&fx).len(),
            1,
            "no upgrade when the wait is over: {fx:?}"
        );
    }
    waits
}

#[test]
fn the_backoff_range_doubles_from_1_s_up_to_30_s() {
    let mut config = config();
    config.sync_after = u32::MAX;
    let waits = failed_upgrades(config, [7; 8], 8);
    let ranges: Vec<u64> = waits.iter().map(|b| b.max.0 - b.min.0).collect();
    assert_eq!(
        ranges,
        [2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
    );
    for (i, b) in waits.iter().enumerate() {
        assert_eq!(b.attempt as usize, i + 1);
    }
}

#[test]
fn the_backoff_exponent_stops_at_2_to_the_20() {
    let mut config = config();
    config.sync_after = u32::MAX;
    config.backoff_base = Millis(1);
    config.backoff_cap = Millis(u64::MAX);
    let waits = failed_upgrades(config, [7; 8], 22);
    assert_eq!(waits[18].max.0, 1 << 19);
    assert_eq!(waits[19].max.0, 1 << 20);
    assert_eq!(waits[20].max.0, 1 << 20);
    assert_eq!(waits[21].max.0, 1 << 20);
}

#[test]
fn scripted_draws_pick_the_wait_inside_the_range() {
    // r in [0, 1): floor(r · (range + 1)); r out of range is clamped, NaN is 0.
    let mut config = config();
    config.sync_after = u32::MAX;
    let mut r = Run::new(config);
    r.c.script_random([0.0, 0.5, 0.999_999, 1.0, 7.0, -1.0, f64::NAN]);
    r.go(Input::Start);
    let mut jitters = Vec::new();
    for _ in 0..7 {
        let b = waiting(&r.go(refused(503)));
        jitters.push((b.at.0 - r.now.0, b.max.0 - b.min.0));
        r.tick_when_due(Some(b.at));
    }
    let range = |k: u64| (1_000u64 << k).min(30_000);
    assert_eq!(
        jitters,
        [
            (0, range(1)),
            (range(2) / 2, range(2)),
            (range(3), range(3)),
            (range(4), range(4)),
            (range(5), range(5)),
            (0, range(6)),
            (0, range(7)),
        ]
    );
}

#[test]
fn the_seeded_jitter_covers_its_whole_range_evenly() {
    // A range of 9 ms: 1,000 waits, each of 0..=9 ms drawn 100 times on average.
    let mut config = config();
    config.sync_after = u32::MAX;
    config.backoff_base = Millis(9);
    config.backoff_cap = Millis(9);
    let waits = failed_upgrades(config, [7; 8], 1_000);
    let mut counts = [0u32; 10];
    let mut now = T0;
    for b in &waits {
        assert_eq!((b.min, b.max), (Millis(0), Millis(9)));
        let j = b.at.0 - now.0;
        assert!(j <= 9, "a wait of {j} ms is past the range");
        counts[usize::try_from(j).unwrap()] += 1;
        now = b.at;
    }
    for (ms, n) in counts.iter().enumerate() {
        assert!(
            (60..=140).contains(n),
            "{ms} ms drawn {n} times of 1,000: {counts:?}"
        );
    }
}

proptest! {
    #![proptest_config(prop_config(64))]

    /// Every wait lies between its floor and the floor plus min(cap, base · 2^attempt).
    #[test]
    fn every_wait_lies_within_its_range(
        base in 1u64..=5_000,
        extra in 0u64..=100_000,
        seed in any::<[u8; 8]>(),
        n in 1usize..=12,
    ) {
        let mut config = config();
        config.sync_after = u32::MAX;
        config.backoff_base = Millis(base);
        config.backoff_cap = Millis(base + extra);
        let mut now = T0;
        for (i, b) in failed_upgrades(config, seed, n).iter().enumerate() {
            let range = (base << (i + 1)).min(base + extra);
            prop_assert_eq!(b.max.0 - b.min.0, range);
            prop_assert!(b.at >= now.plus(b.min) && b.at <= now.plus(b.max), "{:?}", b);
            now = b.at;
        }
    }

    /// A ping on open, then one an interval after the last, never early (a
    /// timer that fires late pings then, and the next is an interval later).
    #[test]
    fn pings_follow_the_interval(interval in 1_000u64..=600_000, late in 0u64..=999) {
        let mut config = config();
        config.ping_interval = Millis(interval);
        let mut r = Run::new(config);
        r.go(Input::Start);
        let fx = r.go(Input::Opened);
        prop_assert_eq!(sends(&fx), [LITERAL_PING]);
        r.go(snapshot(0, 0, None));
        let mut due = T0.plus(Millis(interval));
        for _ in 0..3 {
            prop_assert_eq!(
                r.at(due.minus(Millis(1)), Input::Tick),
                [Effect::SetTimer(Some(due))]
            );
            let fired = due.plus(Millis(late));
            let fx = r.at(fired, Input::Tick);
            prop_assert_eq!(sends(&fx), [LITERAL_PING]);
            due = fired.plus(Millis(interval));
            prop_assert_eq!(timer(&fx), Some(Some(due)));
        }
    }
}

// --- state sync (seed 002) ----------------------------------------------

/// Active, then the socket drops and `failures` reconnects fail (1006 from
/// Connecting), each waited out: the effects of the last tick.
fn after_failed_reconnects(r: &mut Run, failures: u32) -> Vec<Effect> {
    let fx = r.go(closed(1006));
    let mut fx = r.tick_when_due(timer(&fx).flatten());
    for _ in 0..failures {
        assert_eq!(connects(&fx).len(), 1, "{fx:?}");
        let wait = r.go(closed(1006));
        fx = r.tick_when_due(timer(&wait).flatten());
    }
    fx
}

#[test]
fn three_failed_reconnects_lead_to_a_state_sync_and_every_third_after() {
    let mut r = Run::active(config());
    // The drop itself is no failed reconnect: the first tick reconnects.
    let fx = after_failed_reconnects(&mut r, 2);
    assert_eq!(connects(&fx).len(), 1, "attempts 1 and 2 reconnect: {fx:?}");
    let wait = r.go(closed(1006));
    assert_eq!(waiting(&wait).attempt, 3);
    let fx = r.tick_when_due(timer(&wait).flatten());
    assert_eq!(fx, [Effect::FetchState(tok()), Effect::SetTimer(None)]);
    assert_eq!(
        r.c.state(),
        &State::Syncing {
            attempt: 3,
            tries: 1,
            at: None
        }
    );
    // The job still runs: reconnect at once, attempt 3.
    let fx = r.go(fetched(200, Some(&state_body(0, "processing", 0))));
    assert_eq!(connects(&fx).len(), 1, "{fx:?}");
    assert_eq!(r.c.state(), &State::Connecting { attempt: 3 });
    for attempt in [4, 5] {
        let wait = r.go(closed(1006));
        let fx = r.tick_when_due(timer(&wait).flatten());
        assert_eq!(
            connects(&fx).len(),
            1,
            "attempt {attempt} reconnects: {fx:?}"
        );
    }
    let wait = r.go(closed(1006));
    let fx = r.tick_when_due(timer(&wait).flatten());
    assert_eq!(fetches(&fx), 1, "attempt 6 syncs: {fx:?}");
}

#[test]
fn with_sync_after_1_the_drop_still_reconnects_first() {
    let mut config = config();
    config.sync_after = 1;
    let mut r = Run::active(config);
    let fx = after_failed_reconnects(&mut r, 0);
    assert_eq!(connects(&fx).len(), 1, "{fx:?}");
    let wait = r.go(closed(1006));
    let fx = r.tick_when_due(timer(&wait).flatten());
    assert_eq!(fetches(&fx), 1, "{fx:?}");
}

/// In `Syncing` after `sync_after` = 1 and one failed reconnect.
fn syncing() -> Run {
    let mut config = config();
    config.sync_after = 1;
    let mut r = Run::active(config);
    r.go(progress(5, 5));
    let fx = after_failed_reconnects(&mut r, 1);
    assert_eq!(fetches(&fx), 1, "{fx:?}");
    r
}

#[test]
fn a_sync_that_finds_the_end_ends_the_watch_with_it() {
    let generic = JobEnd::Failed {
        code: "job_failed".into(),
        message: String::new(),
    };
    for (status, end) in [
        ("completed", JobEnd::Succeeded { summary: None }),
        ("failed", generic),
        ("canceled", JobEnd::Canceled),
    ] {
        let mut r = syncing();
        let fx = r.go(fetched(200, Some(&state_body(9, status, 10))));
        let v = last_view(&fx).expect("the synced state is shown");
        assert_eq!(
            (v.seq, v.processed_count, v.total_count),
            (Some(Seq(9)), 10, Some(10))
        );
        assert_eq!(
            finished(&fx),
            Some(&State::Completed(end.clone())),
            "{status}"
        );
        assert_eq!(r.c.state(), &State::Completed(end));
        assert!(connects(&fx).is_empty());
    }
}

#[test]
fn a_sync_that_finds_the_job_running_resumes_from_its_seq() {
    let mut r = syncing();
    let fx = r.go(fetched(200, Some(&state_body(9, "processing", 8))));
    assert_eq!(
        last_view(&fx).map(|v| (v.seq, v.processed_count)),
        Some((Some(Seq(9)), 8))
    );
    assert_eq!(connects(&fx)[0].last_seq, Some(Seq(9)));
    // An older state moves nothing back.
    let mut r = syncing();
    let fx = r.go(fetched(200, Some(&state_body(3, "processing", 1))));
    assert!(last_view(&fx).is_none(), "{fx:?}");
    assert_eq!(r.c.view().processed_count, 5);
    assert_eq!(connects(&fx)[0].last_seq, Some(Seq(5)));
    // An unreadable body, or one that is not the contract's job state (a
    // required field missing, e.g. `seq`, or of another type): nothing in it
    // is applied, even a terminal status, and the client reconnects as before.
    let completed_without_seq = state_body(9, "completed", 10).replace(r#""seq":9,"#, "");
    let seq_as_text = state_body(9, "processing", 8).replace(r#""seq":9"#, r#""seq":"9""#);
    for body in ["{", completed_without_seq.as_str(), seq_as_text.as_str()] {
        let mut r = syncing();
        let fx = r.go(fetched(200, Some(body)));
        assert!(last_view(&fx).is_none(), "{body}: {fx:?}");
        assert_eq!(r.c.view().processed_count, 5, "{body}");
        assert_eq!(connects(&fx)[0].last_seq, Some(Seq(5)), "{body}");
    }
}

#[test]
fn sync_refusals_give_up_with_their_reason() {
    for (status, reason) in [
        (401, FailReason::Unauthorized),
        (404, FailReason::NotFound),
        (400, FailReason::BadRequest(400)),
        (403, FailReason::BadRequest(403)),
        (499, FailReason::BadRequest(499)),
    ] {
        let mut r = syncing();
        let fx = r.go(fetched(status, None));
        assert_eq!(fx, [Effect::Finished(State::Failed(reason))], "{status}");
    }
}

#[test]
fn a_failing_sync_is_tried_3_times_2_s_and_4_s_apart_then_reconnects() {
    for status in [0, 500, 503, 399] {
        let mut r = syncing();
        let t1 = r.now;
        let fx = r.go(fetched(status, None));
        assert_eq!(
            fx,
            [Effect::SetTimer(Some(t1.plus(Millis(2_000))))],
            "{status}"
        );
        assert_eq!(
            r.at(t1.plus(Millis(1_999)), Input::Tick),
            [Effect::SetTimer(Some(t1.plus(Millis(2_000))))]
        );
        let fx = r.at(t1.plus(Millis(2_000)), Input::Tick);
        assert_eq!(fetches(&fx), 1, "try 2: {fx:?}");
        let t2 = r.now;
        let fx = r.go(fetched(status, None));
        assert_eq!(fx, [Effect::SetTimer(Some(t2.plus(Millis(4_000))))]);
        assert_eq!(
            r.at(t2.plus(Millis(3_999)), Input::Tick),
            [Effect::SetTimer(Some(t2.plus(Millis(4_000))))]
        );
        let fx = r.at(t2.plus(Millis(4_000)), Input::Tick);
        assert_eq!(fetches(&fx), 1, "try 3: {fx:?}");
        let fx = r.go(fetched(status, None));
        assert_eq!(connects(&fx).len(), 1, "after 3 tries, an upgrade: {fx:?}");
        assert_eq!(r.c.state(), &State::Connecting { attempt: 1 });
    }
}

#[test]
fn a_sync_answer_outside_a_sync_is_ignored() {
    let mut r = Run::active(config());
    assert_eq!(
        r.go(fetched(200, Some(&state_body(9, "completed", 10)))),
        []
    );
    assert_eq!(r.c.state(), &State::Active);
}

// --- stopping -----------------------------------------------------------

#[test]
fn stop_closes_an_open_or_opening_socket_with_1000_and_ends() {
    let stopped = Effect::Finished(State::Failed(FailReason::Stopped));
    let close = Effect::Close(CloseCode::Completed);
    // Idle: nothing to close.
    let mut r = Run::new(config());
    assert_eq!(r.go(Input::Stop), std::slice::from_ref(&stopped));
    // Connecting.
    let mut r = Run::new(config());
    r.go(Input::Start);
    assert_eq!(r.go(Input::Stop), [close.clone(), stopped.clone()]);
    // Authenticating and Active: the ping timer goes too.
    let mut r = Run::new(config());
    r.go(Input::Start);
    r.go(Input::Opened);
    let fx = r.go(Input::Stop);
    assert_eq!(fx, [close.clone(), stopped.clone(), Effect::SetTimer(None)]);
    let mut r = Run::active(config());
    let fx = r.go(Input::Stop);
    assert_eq!(fx, [close, stopped.clone(), Effect::SetTimer(None)]);
    // Reconnecting: no socket, the reconnect timer goes.
    let mut r = Run::active(config());
    r.go(closed(1006));
    assert_eq!(r.go(Input::Stop), [stopped, Effect::SetTimer(None)]);
    assert_eq!(r.c.state(), &State::Failed(FailReason::Stopped));
}

#[test]
fn after_the_end_no_input_does_anything() {
    let (mut r, _) = close_after(Some(complete(1)), Some(1000));
    let end = r.c.state().clone();
    for input in [
        Input::Start,
        Input::Opened,
        Input::Stop,
        Input::Cancel,
        Input::Tick,
        progress(9, 9),
        closed(1006),
        refused(503),
        fetched(200, Some(&state_body(9, "failed", 10))),
    ] {
        assert_eq!(r.go(input), []);
        assert_eq!(r.c.state(), &end);
    }
}
