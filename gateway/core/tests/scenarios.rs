//! Scenario tests: one room, several clients and the network, on virtual time.
//! One test (at least) per close code of SPEC §4 and per invariant of SPEC §7,
//! including the races. Every step of every scenario is also checked against
//! all invariants by the harness (`Sim::violations`).

use gateway_core::client::{FailReason, JobEnd, State};
use gateway_core::protocol::{JobStatus, Seq, ServerMessage};
use gateway_core::room::{
    Effect, Input, PersistPolicy, RoomConfig, SocketId, SupersedePolicy, WireFrame,
};
use gateway_core::token::Token;
use gateway_core::{CloseCode, Millis};
use gateway_sim::invariants::Invariant;
use gateway_sim::{Packet, Sim};

const T0: Millis = Millis(1_763_000_000_000);

fn sim() -> Sim {
    sim_with(RoomConfig::default())
}

fn sim_with(cfg: RoomConfig) -> Sim {
    let mut s = Sim::new(cfg, T0, 7);
    assert_eq!(s.create_default_job(Some(10)).status, 202);
    s
}

/// A simulation that records broken invariants instead of failing at once.
fn recording_sim_with(cfg: RoomConfig) -> Sim {
    let mut s = Sim::new(cfg, T0, 7).recording();
    assert_eq!(s.create_default_job(Some(10)).status, 202);
    s
}

fn progress(n: u64) -> String {
    format!(
        r#"{{"type":"progress","processedCount":{n},"totalCount":10,"currentItem":"book {n}"}}"#
    )
}

/// The `n`th socket the room accepted (ids grow with time and count).
fn nth(s: &Sim, n: usize) -> SocketId {
    *s.logs
        .keys()
        .nth(n)
        .expect("that many sockets were accepted")
}

/// An upgrade straight into the room, accepted by the runtime: the effects of
/// both steps.
fn upgrade_accepted(s: &mut Sim, request: gateway_core::room::Upgrade) -> Vec<Effect> {
    let now = s.now;
    let room = s.room_mut();
    let mut fx = room.handle(
        now,
        Input::Upgrade {
            request,
            pings: vec![],
        },
    );
    if let Some(socket) = fx.iter().find_map(|e| match e {
        Effect::Accept { socket, .. } => Some(*socket),
        _ => None,
    }) {
        fx.extend(room.handle(now, Input::Accepted { socket }));
    }
    fx
}

/// The app behind a client is gone: a fresh, never-started machine takes its place.
fn forget(s: &mut Sim, client: usize) {
    s.clients[client].machine = gateway_core::client::Client::new(
        gateway_core::client::ClientConfig::new("sim-job"),
        Token::from_string("x".into()),
        None,
        [0; 8],
    );
}

fn clean(s: &Sim) {
    assert!(
        s.violations.is_empty(),
        "invariants broken: {:#?}",
        s.violations
    );
}

/// Frames and close code of one socket.
fn socket_frames(s: &Sim, n: usize) -> (Vec<(Option<u64>, &'static str)>, Option<u16>) {
    let log = &s.logs[&nth(s, n)];
    let frames = log
        .frames
        .iter()
        .map(|f| (f.seq.map(|q| q.0), f.message.type_name()))
        .collect();
    (frames, log.close.map(CloseCode::as_u16))
}

fn connected(client_id: Option<&str>) -> (Sim, usize) {
    let mut s = sim();
    let c = s.add_client(client_id);
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    (s, c)
}

/// The first socket was closed 1008, its client gave up (`Revoked`), and a
/// new client with the same token is refused (`Unauthorized`).
fn closed_1008_and_locked_out(s: &mut Sim, c: usize) {
    assert_eq!(socket_frames(s, 0).1, Some(1008));
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Failed(FailReason::Revoked)
    );
    let again = s.add_client(None);
    s.start(again);
    s.settle();
    assert_eq!(
        s.clients[again].machine.state(),
        &State::Failed(FailReason::Unauthorized)
    );
    clean(s);
}

// --- §4 close codes -------------------------------------------------------

#[test]
fn close_1000_after_job_complete_to_every_subscriber() {
    let mut s = sim();
    let a = s.add_client(Some("phone"));
    let b = s.add_client(Some("web"));
    s.start(a);
    s.start(b);
    s.settle();
    assert_eq!(
        s.producer(r#"{"type":"started","totalCount":10}"#).status,
        202
    );
    for n in 1..=3 {
        s.producer(&progress(n));
    }
    let r = s.producer(r#"{"type":"complete","summary":{"books":3}}"#);
    assert_eq!(r.body, r#"{"seq":5}"#);
    s.settle();
    for (client, socket) in [(a, 0), (b, 1)] {
        let (frames, close) = socket_frames(&s, socket);
        assert_eq!(
            frames,
            vec![
                (Some(0), "snapshot"),
                (None, "pong"), // the runtime's answer to the ping sent on open
                (Some(1), "job_started"),
                (Some(2), "job_progress"),
                (Some(3), "job_progress"),
                (Some(4), "job_progress"),
                (Some(5), "job_complete"),
            ]
        );
        assert_eq!(close, Some(1000));
        assert_eq!(
            s.clients[client].machine.state(),
            &State::Completed(JobEnd::Succeeded {
                summary: Some(r#"{"books":3}"#.into())
            })
        );
        assert_eq!(s.clients[client].machine.view().processed_count, 3);
    }
    clean(&s);
}

#[test]
fn close_1001_on_cancel_from_a_socket_and_the_producer_is_frozen_out() {
    let (mut s, c) = connected(None);
    s.producer(&progress(1));
    s.client_input(c, gateway_core::client::Input::Cancel);
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(1001));
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Completed(JobEnd::Canceled)
    );
    assert_eq!(s.producer(&progress(2)).status, 409);
    // A late subscriber sees the canceled snapshot, then 1001.
    let late = s.add_client(None);
    s.start(late);
    s.settle();
    let (frames, close) = socket_frames(&s, 1);
    assert_eq!(frames, vec![(Some(1), "snapshot")]);
    assert_eq!(close, Some(1001));
    clean(&s);
}

#[test]
fn close_1001_on_cancel_over_http_needs_a_valid_token() {
    let (mut s, c) = connected(None);
    assert_eq!(
        s.room_request(Input::Cancel {
            token: "wrong".into()
        })
        .status,
        401
    );
    let token = s.token.clone().unwrap().0.expose().to_owned();
    assert_eq!(
        s.room_request(Input::Cancel {
            token: token.clone()
        })
        .status,
        202
    );
    assert_eq!(s.room_request(Input::Cancel { token }).status, 409);
    s.settle();
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Completed(JobEnd::Canceled)
    );
    clean(&s);
}

#[test]
fn close_1002_for_each_protocol_error_of_the_seed() {
    for bad in [
        r#"{"invalid": "json""#,
        "null",
        r#""not an object""#,
        "{}",
        r#"{"type": 123}"#,
    ] {
        let (mut s, c) = connected(None);
        s.net.push_back(Packet::Up {
            socket: nth(&s, 0),
            text: bad.into(),
        });
        s.settle();
        assert_eq!(socket_frames(&s, 0).1, Some(1002), "{bad}");
        assert_eq!(
            s.clients[c].machine.state(),
            &State::Failed(FailReason::Refused(CloseCode::Protocol))
        );
        clean(&s);
    }
}

#[test]
fn close_1003_for_a_binary_frame() {
    let (mut s, _) = connected(None);
    let (now, socket) = (s.now, nth(&s, 0));
    let fx = s.room_mut().handle(
        now,
        Input::Frame {
            socket,
            frame: WireFrame::Binary(4),
        },
    );
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Close {
            code: CloseCode::Unsupported,
            ..
        }
    )));
}

#[test]
fn close_1008_on_revoke_and_the_token_stops_working() {
    let (mut s, c) = connected(Some("phone"));
    assert_eq!(s.room_request(Input::Revoke).status, 202);
    s.settle();
    closed_1008_and_locked_out(&mut s, c);
}

#[test]
fn close_1009_for_a_frame_over_64_kib() {
    let (mut s, c) = connected(None);
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70_000));
    s.net.push_back(Packet::Up {
        socket: nth(&s, 0),
        text: big,
    });
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(1009));
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Failed(FailReason::Refused(CloseCode::TooBig))
    );
}

#[test]
fn close_1011_when_sockets_outlive_their_job_record() {
    let (mut s, _) = connected(None);
    s.lose_storage(); // storage lost: the room cannot serve these sockets
    s.evict();
    s.wake();
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(1011));
}

#[test]
fn close_4001_when_an_abandoned_job_expires_then_404_a_retention_later() {
    // The subscriber stays connected past the default 24 h session cap
    // (which would close it 1008 first): the cap here is 48 h.
    let mut s = sim_with(RoomConfig {
        max_session: Millis::from_hours(48),
        ..RoomConfig::default()
    });
    let c = s.add_client(None);
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    s.producer(&progress(1));
    s.advance(Millis::from_hours(25));
    // Ended as failed (`job_expired`, then 4001), not dropped with 1012.
    assert_eq!(socket_frames(&s, 0).1, Some(4001));
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Completed(JobEnd::Failed { code, .. }) if code == "job_expired"
    ));
    assert_eq!(s.producer(&progress(2)).status, 409);
    s.advance(Millis::from_hours(24));
    assert!(s.storage.is_none());
    assert_eq!(s.producer(&progress(2)).status, 404);
}

#[test]
fn close_1013_past_20_frames_in_10_s_then_reconnect_after_at_least_5_s() {
    let (mut s, c) = connected(None);
    for _ in 0..21 {
        s.net.push_back(Packet::Up {
            socket: nth(&s, 0),
            text: r#"{ "type": "ping" }"#.into(),
        });
    }
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(1013));
    let pongs = socket_frames(&s, 0)
        .0
        .iter()
        .filter(|f| f.1 == "pong")
        .count();
    assert_eq!(
        pongs,
        20 + 1,
        "20 pong envelopes and the literal pong to the open's ping"
    );
    match s.clients[c].machine.state() {
        State::Reconnecting { at, .. } => assert!(at.0 >= s.now.0 + 5000),
        other => panic!("{other:?}"),
    }
    s.advance(Millis::from_secs(40));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    clean(&s);
}

#[test]
fn literal_pings_never_reach_the_room_nor_count_for_the_rate_limit() {
    let (mut s, _) = connected(None);
    for _ in 0..50 {
        s.net.push_back(Packet::Up {
            socket: nth(&s, 0),
            text: r#"{"type":"ping"}"#.into(),
        });
    }
    s.settle();
    let (frames, close) = socket_frames(&s, 0);
    assert_eq!(close, None);
    // 50, and one for the ping the client sent on open.
    assert_eq!(frames.iter().filter(|f| f.1 == "pong").count(), 51);
}

#[test]
fn close_1006_drop_then_resume_with_last_seq_recovered() {
    let (mut s, c) = connected(Some("phone"));
    s.producer(r#"{"type":"started"}"#);
    s.producer(&progress(1));
    s.settle();
    s.drop_link(c);
    s.producer(&progress(2));
    s.producer(&progress(3));
    s.advance(Millis::from_secs(3));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    let (frames, _) = socket_frames(&s, 1);
    assert_eq!(frames.first(), Some(&(Some(4), "reconnected")));
    let snap = &s.logs[&nth(&s, 1)].frames[0].message;
    assert!(
        matches!(snap, ServerMessage::Snapshot { recovered: true, resumed: true, state } if state.processed_count == 3)
    );
    s.producer(&progress(4));
    s.settle();
    assert_eq!(
        socket_frames(&s, 1).0.last(),
        Some(&(Some(5), "job_progress"))
    );
    clean(&s);
}

#[test]
fn last_seq_ahead_of_the_room_is_not_recovered() {
    let mut s = sim();
    let token = s.token.clone().unwrap().0;
    let fx = upgrade_accepted(
        &mut s,
        gateway_core::room::Upgrade {
            job_id: "sim-job".into(),
            token: token.expose().into(),
            client_id: None,
            last_seq: Some(Seq(99)),
        },
    );
    let snap = fx.iter().find_map(|e| match e {
        Effect::Send { text, .. } => Some(text.clone()),
        _ => None,
    });
    let v: serde_json::Value = serde_json::from_str(&snap.unwrap()).unwrap();
    assert_eq!(v["type"], "reconnected");
    assert_eq!(v["payload"]["recovered"], false);
}

#[test]
fn close_4000_supersede_never_1000() {
    let mut s = sim();
    let old = s.add_client(Some("phone"));
    s.start(old);
    s.settle();
    let new = s.add_client(Some("phone"));
    s.start(new);
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(4000));
    assert_eq!(
        s.clients[old].machine.state(),
        &State::Failed(FailReason::Superseded)
    );
    assert_eq!(s.clients[new].machine.state(), &State::Active);
    assert_eq!(s.live_sockets(), 1);
    clean(&s);
}

#[test]
fn close_4001_after_error_when_the_job_fails() {
    let (mut s, c) = connected(None);
    s.producer(&progress(1));
    s.producer(r#"{"type":"failed","code":"csv_invalid","message":"row 7 is broken"}"#);
    s.settle();
    let (frames, close) = socket_frames(&s, 0);
    assert_eq!(frames.last(), Some(&(Some(2), "error")));
    assert_eq!(close, Some(4001));
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Completed(JobEnd::Failed {
            code: "csv_invalid".into(),
            message: "row 7 is broken".into()
        })
    );
    clean(&s);
}

#[test]
fn close_4002_for_a_zombie_while_a_pinging_client_stays() {
    let mut s = sim();
    let alive = s.add_client(Some("alive"));
    let zombie = s.add_client(Some("zombie"));
    s.start(alive);
    s.start(zombie);
    s.settle();
    s.half_open(zombie); // its socket lingers in the room, nobody pings on it
    forget(&mut s, zombie);
    s.advance(Millis::from_mins(3));
    assert_eq!(socket_frames(&s, 1).1, Some(4002));
    assert_eq!(socket_frames(&s, 0).1, None);
    assert_eq!(s.clients[alive].machine.state(), &State::Active);
    clean(&s);
}

#[test]
fn unknown_type_gets_an_error_and_the_socket_stays_open() {
    let (mut s, _) = connected(None);
    s.net.push_back(Packet::Up {
        socket: nth(&s, 0),
        text: r#"{"type":"subscribe"}"#.into(),
    });
    s.settle();
    let log = &s.logs[&nth(&s, 0)];
    assert!(log.close.is_none());
    let last = log.frames.last().unwrap();
    assert_eq!(last.seq, None);
    assert!(
        matches!(&last.message, ServerMessage::Error { code, retryable: false, .. } if code == "unknown_type")
    );
    s.producer(&progress(1));
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).0.last(),
        Some(&(Some(1), "job_progress"))
    );
}

#[test]
fn a_ping_with_extra_fields_reaches_the_room_and_gets_a_pong_envelope() {
    let (mut s, _) = connected(None);
    s.net.push_back(Packet::Up {
        socket: nth(&s, 0),
        text: r#"{"type":"ping","timestamp":5}"#.into(),
    });
    s.settle();
    let f = s.logs[&nth(&s, 0)].frames.last().unwrap();
    assert_eq!((f.seq, f.message.type_name()), (None, "pong"));
}

// --- §1 HTTP refusals -------------------------------------------------------

#[test]
fn upgrade_refusals_404_401_429_with_retry_after() {
    let mut s = Sim::new(
        RoomConfig {
            max_sockets: 2,
            ..RoomConfig::default()
        },
        T0,
        1,
    );
    let req = |token: &str, client_id: Option<&str>| gateway_core::room::Upgrade {
        job_id: "sim-job".into(),
        token: token.into(),
        client_id: client_id.map(Into::into),
        last_seq: None,
    };
    let up = |token: &str, client_id: Option<&str>| Input::Upgrade {
        request: req(token, client_id),
        pings: vec![],
    };
    assert_eq!(s.room_request(up("t", None)).status, 404);
    s.create_default_job(None);
    let token = s.token.clone().unwrap().0.expose().to_owned();
    assert_eq!(s.room_request(up("wrong", None)).status, 401);
    let fx = upgrade_accepted(&mut s, req(&token, Some("a")));
    assert!(fx.iter().any(|e| matches!(e, Effect::Accept { .. })));
    upgrade_accepted(&mut s, req(&token, Some("b")));
    let r = s.room_request(up(&token, Some("c")));
    assert_eq!((r.status, r.retry_after), (429, Some(5)));
    assert!(r.body.contains("too_many_sockets"));
    // The same clientId replaces its socket even at the cap.
    let fx = upgrade_accepted(&mut s, req(&token, Some("a")));
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Close {
            code: CloseCode::Superseded,
            ..
        }
    )));
    assert!(fx.iter().any(|e| matches!(e, Effect::Accept { .. })));
}

#[test]
fn producer_refusals_404_409_413_422_and_create_409() {
    let mut s = Sim::new(RoomConfig::default(), T0, 1);
    assert_eq!(s.producer(&progress(1)).status, 404);
    s.create_default_job(Some(10));
    assert_eq!(s.create_default_job(Some(10)).status, 409);
    assert_eq!(s.producer(&progress(5)).status, 202);
    let r = s.producer(&progress(4));
    assert_eq!(r.status, 422);
    assert!(r.body.contains("processed_count_decreased"));
    assert_eq!(s.producer("{not json").status, 422);
    let big = format!(
        r#"{{"type":"started","message":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(s.producer(&big).status, 413);
    // A batch is all or nothing.
    let r = s.producer(&format!("[{},{}]", progress(6), progress(2)));
    assert_eq!(r.status, 422);
    assert_eq!(s.job().unwrap().seq, Seq(1));
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 202);
    assert_eq!(s.producer(&progress(9)).status, 409);
}

#[test]
fn job_state_needs_the_token_and_reports_the_seed_fields() {
    let mut s = sim();
    s.producer(&progress(4));
    assert_eq!(
        s.room_request(Input::JobState {
            token: "nope".into()
        })
        .status,
        401
    );
    let token = s.token.clone().unwrap().0.expose().to_owned();
    let r = s.room_request(Input::JobState { token });
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["status"], "processing");
    assert_eq!(v["processedCount"], 4);
    assert_eq!(v["progress"], 0.4);
    assert_eq!(v["currentProgress"], 0.4);
    assert_eq!(v["seq"], 1);
    let r = s.room_request(Input::Inspect);
    assert!(r.body.contains("\"result\":null"));
}

#[test]
fn create_answers_with_urls_without_the_token() {
    let mut s = Sim::new(RoomConfig::default(), T0, 1);
    let r = s.create_default_job(None);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["wsUrl"], "ws://127.0.0.1:8787/ws/progress?jobId=sim-job");
    assert_eq!(v["stateUrl"], "http://127.0.0.1:8787/api/job-state/sim-job");
    assert_eq!(v["expiresAt"], T0.0 + 7_200_000);
    let token = v["token"].as_str().unwrap();
    assert!(!v["wsUrl"].as_str().unwrap().contains(token));
    let stored = serde_json::to_string(s.storage.as_ref().unwrap()).unwrap();
    assert!(
        !stored.contains(token),
        "the token itself must never be stored"
    );
}

#[test]
fn repeated_event_ids_are_answered_with_the_original_seq_and_not_applied() {
    let mut s = sim();
    let ev = r#"{"type":"progress","processedCount":2,"eventId":"e-1"}"#;
    assert_eq!(s.producer(ev).body, r#"{"seq":1}"#);
    assert_eq!(
        s.producer(r#"{"type":"progress","processedCount":3}"#).body,
        r#"{"seq":2}"#
    );
    assert_eq!(s.producer(ev).body, r#"{"seq":1}"#);
    assert_eq!(s.job().unwrap().seq, Seq(2));
    assert_eq!(s.job().unwrap().processed_count, 3);
}

// --- §2 catch-up --------------------------------------------------------------

#[test]
fn late_subscriber_after_completion_gets_snapshot_terminal_and_close() {
    let mut s = sim();
    s.producer(&progress(10));
    s.producer(r#"{"type":"complete","summary":{"ok":true}}"#);
    s.advance(Millis::from_hours(1)); // within the token's 2 h life
    let c = s.add_client(None);
    s.start(c);
    s.settle();
    assert_eq!(
        socket_frames(&s, 0),
        (
            vec![(Some(1), "snapshot"), (Some(2), "job_complete")],
            Some(1000)
        )
    );
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Completed(JobEnd::Succeeded { summary: Some(_) })
    ));
    // 24 h after the end the job is gone.
    s.advance(Millis::from_hours(24));
    assert!(s.storage.is_none());
    assert_eq!(s.room_request(Input::Inspect).status, 404);
    clean(&s);
}

// --- §7 invariants and races ---------------------------------------------------

#[test]
fn race_reconnect_with_same_client_id_while_the_old_socket_is_half_open() {
    let (mut s, c) = connected(Some("phone"));
    s.producer(&progress(1));
    s.settle();
    s.half_open(c); // the room still holds socket 0
    s.advance(Millis::from_secs(2));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    assert_eq!(s.clients[c].socket, Some(nth(&s, 1)));
    let old = &s.logs[&nth(&s, 0)];
    assert!(old.superseded);
    assert_eq!(old.close, Some(CloseCode::Superseded));
    assert_eq!(s.live_sockets(), 1);
    s.producer(r#"{"type":"complete"}"#);
    s.settle();
    assert!(matches!(s.clients[c].machine.state(), State::Completed(_)));
    clean(&s);
}

#[test]
fn race_completion_during_a_reconnect() {
    let (mut s, c) = connected(Some("phone"));
    s.producer(&progress(3));
    s.settle();
    s.drop_link(c);
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Reconnecting { .. }
    ));
    s.producer(r#"{"type":"complete","summary":{"n":3}}"#);
    s.advance(Millis::from_secs(5));
    assert_eq!(
        socket_frames(&s, 1),
        (
            vec![(Some(1), "reconnected"), (Some(2), "job_complete")],
            Some(1000)
        )
    );
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Completed(JobEnd::Succeeded { .. })
    ));
    clean(&s);
}

#[test]
fn race_eviction_between_a_producer_write_and_its_fan_out() {
    let (mut s, c) = connected(None);
    s.producer(&progress(1));
    s.settle();
    s.events_then_evict(r#"{"type":"progress","processedCount":2,"eventId":"e-2"}"#);
    s.settle();
    assert_eq!(
        s.storage.as_ref().unwrap().seq,
        Seq(2),
        "the write survived"
    );
    assert_eq!(s.clients[c].machine.view().processed_count, 1);
    // The producer never got its 202 and retries: the retry wakes the room,
    // which catches the socket up, and is answered, not applied twice.
    assert_eq!(
        s.producer(r#"{"type":"progress","processedCount":2,"eventId":"e-2"}"#)
            .body,
        r#"{"seq":2}"#
    );
    s.settle();
    assert_eq!(socket_frames(&s, 0).0.last(), Some(&(Some(2), "snapshot")));
    assert_eq!(s.clients[c].machine.view().processed_count, 2);
    s.producer(&progress(3));
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).0.last(),
        Some(&(Some(3), "job_progress"))
    );
    clean(&s);
}

#[test]
fn eviction_and_hibernation_keep_seq_and_sockets() {
    let mut s = sim();
    let a = s.add_client(Some("a"));
    let b = s.add_client(Some("b"));
    s.start(a);
    s.start(b);
    s.settle();
    for n in 1..=4 {
        s.producer(&progress(n));
        s.evict();
    }
    s.producer(r#"{"type":"complete"}"#);
    s.settle();
    for c in [a, b] {
        assert!(matches!(s.clients[c].machine.state(), State::Completed(_)));
    }
    clean(&s);
}

#[test]
fn token_expiry_during_a_long_disconnect_needs_a_new_token() {
    let mut s = Sim::new(RoomConfig::default(), T0, 3);
    s.create_job(Some(10), Millis::from_secs(120));
    let c = s.add_client(None);
    s.start(c);
    s.settle();
    // Unreachable for 3 minutes: the token runs out meanwhile.
    s.drop_link(c);
    let State::Reconnecting { .. } = s.clients[c].machine.state() else {
        panic!()
    };
    s.now = s.now.plus(Millis::from_mins(3));
    s.advance(Millis::from_mins(1));
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Failed(FailReason::Unauthorized)
    );
    clean(&s);
}

#[test]
fn a_connected_subscriber_always_holds_a_fresh_token() {
    let mut s = Sim::new(RoomConfig::default(), T0, 3);
    s.create_job(Some(10), Millis::from_secs(120));
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    let first = s.clients[c].machine.token_expires_at().unwrap();
    s.advance(Millis::from_mins(10));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    assert!(s.clients[c].machine.token_expires_at().unwrap() > s.now);
    assert!(s.clients[c].machine.token_expires_at().unwrap() > first);
    // After a drop it reconnects with the refreshed token.
    s.drop_link(c);
    s.advance(Millis::from_secs(5));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    clean(&s);
}

#[test]
fn reconnects_that_keep_failing_sync_state_over_http_and_see_the_end() {
    let mut s = sim_with(RoomConfig {
        max_sockets: 1,
        ..RoomConfig::default()
    });
    let hog = s.add_client(Some("hog"));
    s.start(hog);
    s.settle();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Reconnecting { .. }
    ));
    s.producer(&progress(6));
    s.advance(Millis::from_secs(60));
    assert_eq!(
        s.clients[c].machine.view().processed_count,
        6,
        "synced over HTTP"
    );
    // The hog leaves without reading the end; the sync reports completion.
    s.drop_link(hog);
    forget(&mut s, hog);
    s.producer(r#"{"type":"complete"}"#);
    s.advance(Millis::from_mins(5));
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Completed(JobEnd::Succeeded { .. })
    ));
    assert_eq!(
        s.clients[c].machine.view().status,
        Some(JobStatus::Completed)
    );
    clean(&s);
}

#[test]
fn reconnects_keep_going_without_a_fixed_retry_count() {
    let mut s = sim_with(RoomConfig {
        max_sockets: 1,
        ..RoomConfig::default()
    });
    let hog = s.add_client(Some("hog"));
    s.start(hog);
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.advance(Millis::from_mins(30));
    assert!(
        !s.clients[c].machine.is_finished(),
        "gave up while the job runs"
    );
    s.drop_link(hog);
    forget(&mut s, hog);
    s.advance(Millis::from_mins(2));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    clean(&s);
}

#[test]
fn warm_rooms_need_no_storage_read() {
    let (mut s, _) = connected(None);
    let restores = s.stats.restores;
    s.producer(&progress(1));
    s.advance(Millis::from_secs(9));
    s.producer(&progress(2));
    assert_eq!(s.stats.restores, restores, "warm: no storage read");
    s.advance(Millis::from_secs(10));
    s.producer(&progress(3));
    assert_eq!(s.stats.restores, restores + 1, "hibernated: one read");
}

// --- the seed's policies break the invariants --------------------------------

#[test]
fn seed_supersede_policy_tells_a_replaced_socket_the_job_is_done() {
    let mut s = recording_sim_with(RoomConfig {
        supersede: SupersedePolicy::SeedClose1000,
        ..RoomConfig::default()
    });
    let old = s.add_client(Some("phone"));
    s.start(old);
    s.settle();
    let new = s.add_client(Some("phone"));
    s.start(new);
    s.settle();
    let broken: Vec<Invariant> = s.violations.iter().map(|v| v.invariant).collect();
    assert!(broken.contains(&Invariant::SupersededNot1000), "{broken:?}");
    // And the old client wrongly believes the job is done.
    assert!(matches!(
        s.clients[old].machine.state(),
        State::Completed(_)
    ));
}

#[test]
fn seed_throttled_persistence_loses_acked_progress_and_goes_backwards() {
    let throttled = PersistPolicy::SeedThrottled {
        every: 5,
        interval: Millis::from_secs(10),
    };
    let mut s = recording_sim_with(RoomConfig {
        persist: throttled,
        ..RoomConfig::default()
    });
    let c = s.add_client(None);
    s.start(c);
    s.settle();
    for n in 1..=3 {
        s.producer(&progress(n));
    }
    s.settle();
    s.evict();
    s.drop_link(c);
    s.advance(Millis::from_secs(5));
    let broken: Vec<Invariant> = s.violations.iter().map(|v| v.invariant).collect();
    assert!(broken.contains(&Invariant::Durable), "{broken:?}");
    assert!(broken.contains(&Invariant::Monotonic), "{broken:?}");
}

#[test]
fn a_cancel_frame_answers_no_http_request() {
    let (mut s, _) = connected(None);
    let (now, socket) = (s.now, nth(&s, 0));
    let fx = s.room_mut().handle(
        now,
        Input::Frame {
            socket,
            frame: WireFrame::Text(r#"{"type":"cancel"}"#.into()),
        },
    );
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Respond(_))),
        "{fx:?}"
    );
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Close {
            code: CloseCode::Canceled,
            ..
        }
    )));
}

#[test]
fn an_early_alarm_is_set_again() {
    let (mut s, _) = connected(None);
    let due = s.alarm().unwrap();
    let early = s.now.plus(Millis(5));
    assert!(early < due);
    let fx = s.room_mut().handle(
        early,
        Input::Alarm {
            pings: vec![],
            random: [0; 16],
        },
    );
    assert!(fx.contains(&Effect::SetAlarm(Some(due))), "{fx:?}");
}

#[test]
fn a_lost_close_after_job_complete_ends_without_a_reconnect() {
    let (mut s, c) = connected(Some("phone"));
    s.producer(&progress(2));
    s.settle();
    s.producer(r#"{"type":"complete"}"#);
    assert!(s.deliver_one(), "job_complete reaches the client");
    s.drop_link(c); // ...and its 1000 is lost with the link
    assert!(matches!(
        s.clients[c].machine.state(),
        State::Completed(JobEnd::Succeeded { .. })
    ));
    s.advance(Millis::from_secs(60));
    assert_eq!(
        s.logs.len(),
        1,
        "no reconnect: it would replay the end with an older snapshot seq"
    );
    clean(&s);
}

#[test]
fn a_stale_close_never_removes_a_socket_accepted_after_a_restart() {
    // Found by the model: a socket id handed out again after an eviction let a
    // dead socket's late close orphan the new one.
    let mut s = Sim::new(RoomConfig::default(), T0, 7);
    s.create_job(Some(2), Millis::from_secs(120));
    let a = s.add_client(Some("app-0"));
    let b = s.add_client(Some("app-1"));
    s.start(b);
    s.deliver_one(); // b accepted
    s.start(a);
    s.drop_link(b); // in flight: a's upgrade, then b's close
    s.evict(); // the record predates b's accept
    s.settle();
    assert_eq!(s.live_sockets(), 1, "a's socket survived b's late close");
    s.producer(r#"{"type":"progress","processedCount":1,"totalCount":2}"#);
    s.settle();
    assert_eq!(s.clients[a].machine.view().processed_count, 1);
    clean(&s);
}

#[test]
fn after_a_revoke_the_producer_issues_a_new_token_that_works() {
    let (mut s, c) = connected(Some("phone"));
    s.room_request(Input::Revoke);
    s.settle();
    assert_eq!(
        s.clients[c].machine.state(),
        &State::Failed(FailReason::Revoked)
    );
    let r = s.room_request(Input::IssueToken { random: [9; 16] });
    assert_eq!(r.status, 202);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let token = Token::from_string(v["token"].as_str().unwrap().to_owned());
    let expires = Millis(v["expiresAt"].as_u64().unwrap());
    assert_eq!(expires, s.now.plus(Millis::from_hours(2)));
    let again = s.add_client_with(Some("phone"), token, Some(expires));
    s.start(again);
    s.settle();
    assert_eq!(s.clients[again].machine.state(), &State::Active);
    // A second issue is the producer's alone: no live socket hears of it.
    let before = socket_frames(&s, 1).0.len();
    assert_eq!(
        s.room_request(Input::IssueToken { random: [10; 16] })
            .status,
        202
    );
    s.settle();
    assert_eq!(socket_frames(&s, 1).0.len(), before);
    clean(&s);
}

/// The token of a 202 from `POST /api/jobs/{id}/tokens`.
fn issued_token(r: &gateway_core::room::Response) -> (Token, Millis) {
    assert_eq!(r.status, 202, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    (
        Token::from_string(v["token"].as_str().unwrap().to_owned()),
        Millis(v["expiresAt"].as_u64().unwrap()),
    )
}

fn state_status(s: &mut Sim, token: &Token) -> u16 {
    s.room_request(Input::JobState {
        token: token.expose().to_owned(),
    })
    .status
}

#[test]
fn producer_issued_tokens_stay_valid_through_refreshes_and_are_never_broadcast() {
    let (mut s, c) = connected(Some("phone"));
    let (created, _) = s.token.clone().expect("the creation token");
    let frames_before = socket_frames(&s, 0).0.len();
    let a = issued_token(&s.room_request(Input::IssueToken { random: [21; 16] }));
    let b = issued_token(&s.room_request(Input::IssueToken { random: [22; 16] }));
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).0.len(),
        frames_before,
        "no token_refresh for producer-issued tokens"
    );
    // Two issues no longer push the creation token out.
    for t in [&created, &a.0, &b.0] {
        assert_eq!(state_status(&mut s, t), 200);
    }
    // In-band refreshes rotate their own two slots; the issued ones stay.
    s.advance(Millis::from_mins(115));
    s.settle();
    assert!(
        socket_frames(&s, 0).0.contains(&(None, "token_refresh")),
        "the lineage was refreshed"
    );
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    assert_eq!(state_status(&mut s, &a.0), 200);
    assert_eq!(state_status(&mut s, &b.0), 200);
    // Until they expire...
    s.now = a.1;
    assert_eq!(state_status(&mut s, &a.0), 401);
    // ...or a revoke, which clears every token.
    let c2 = issued_token(&s.room_request(Input::IssueToken { random: [23; 16] }));
    s.room_request(Input::Revoke);
    s.settle();
    assert_eq!(state_status(&mut s, &c2.0), 401);
    clean(&s);
}

#[test]
fn sixteen_producer_issued_tokens_are_kept_a_seventeenth_is_429_until_one_expires() {
    let mut s = sim();
    let mut issued = Vec::new();
    for i in 0..16u8 {
        issued.push(issued_token(&s.room_request(Input::IssueToken {
            random: [40 + i; 16],
        })));
        s.now = s.now.plus(Millis(1000));
    }
    let stored = s.storage.clone().expect("stored");
    let r = s.room_request(Input::IssueToken { random: [90; 16] });
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too_many_tokens"), "{}", r.body);
    let first_expiry = issued[0].1;
    assert_eq!(r.retry_after, Some(first_expiry.minus(s.now).0 / 1000));
    assert_eq!(
        s.storage.as_ref(),
        Some(&stored),
        "a refusal changes nothing"
    );
    for (t, _) in &issued {
        assert_eq!(state_status(&mut s, t), 200);
    }
    // The first one's expiry frees a slot.
    s.now = first_expiry;
    issued_token(&s.room_request(Input::IssueToken { random: [91; 16] }));
    assert_eq!(state_status(&mut s, &issued[1].0), 200);
    clean(&s);
}

#[test]
fn a_job_id_can_be_used_again_after_its_cleanup() {
    // Found by fuzzing (room_ops): the harness took the deliberate deletion
    // for a lost write.
    let mut s = sim();
    assert_eq!(s.producer(&progress(1)).body, r#"{"seq":1}"#);
    s.producer(r#"{"type":"complete"}"#);
    s.advance(Millis::from_hours(25));
    assert!(s.storage.is_none());
    assert_eq!(s.create_default_job(Some(3)).status, 202);
    assert_eq!(s.storage.as_ref().unwrap().seq, Seq(0));
    assert_eq!(s.producer(&progress(1)).body, r#"{"seq":1}"#);
    clean(&s);
}

// --- issue 10: the room as the runtime runs it (hibernation between events) --

/// A client whose app sends one literal ping on its socket and then nothing:
/// the link dies silently on the client's side.
fn ping_once_then_vanish(s: &mut Sim, client: usize) -> SocketId {
    let socket = s.clients[client].socket.expect("connected");
    s.net.push_back(Packet::Up {
        socket,
        text: gateway_core::protocol::LITERAL_PING.into(),
    });
    s.settle();
    s.half_open(client);
    forget(s, client);
    socket
}

#[test]
fn a_socket_that_stops_pinging_is_closed_4002_across_hibernation_and_frees_its_slot() {
    let mut s = sim_with(RoomConfig {
        max_sockets: 2,
        ..RoomConfig::default()
    });
    let alive = s.add_client(Some("alive"));
    let zombie = s.add_client(Some("zombie"));
    s.start(alive);
    s.start(zombie);
    s.settle();
    let silent_since = s.now;
    let socket = ping_once_then_vanish(&mut s, zombie);
    // Literal pings never wake the room: it hibernates between alarms.
    s.advance(Millis::from_secs(11));
    assert!(
        !s.is_awake(),
        "the room hibernates after 10 s without events"
    );
    // Within 3 ping intervals of its last frame the zombie is closed 4002.
    s.advance(silent_since.plus(Millis::from_secs(90)).minus(s.now));
    assert_eq!(s.logs[&socket].close, Some(CloseCode::Idle));
    assert_eq!(socket_frames(&s, 0).1, None, "the pinging neighbour stays");
    assert_eq!(s.clients[alive].machine.state(), &State::Active);
    // Its slot is free: a new subscriber gets in at the cap of 2.
    let late = s.add_client(Some("late"));
    s.start(late);
    s.settle();
    assert_eq!(s.clients[late].machine.state(), &State::Active);
}

#[test]
fn a_plain_wake_sends_no_snapshot_and_writes_nothing() {
    let (mut s, _) = connected(Some("phone"));
    s.producer(&progress(1));
    s.settle();
    s.advance(Millis::from_secs(11));
    assert!(!s.is_awake());
    let writes = s.stats.writes;
    let frames = socket_frames(&s, 0).0.len();
    s.wake();
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).0.len(),
        frames,
        "no mid-stream snapshot"
    );
    assert_eq!(s.stats.writes, writes, "a wake writes nothing");
    s.producer(&progress(2));
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).0,
        vec![
            (Some(0), "snapshot"),
            (None, "pong"), // the runtime's answer to the ping sent on open
            (Some(1), "job_progress"),
            (Some(2), "job_progress")
        ]
    );
}

#[test]
fn a_failed_accept_supersedes_nothing_and_takes_no_slot() {
    let mut s = sim_with(RoomConfig {
        max_sockets: 1,
        ..RoomConfig::default()
    });
    let old = s.add_client(Some("phone"));
    s.start(old);
    s.settle();
    let again = s.add_client(Some("phone"));
    s.fail_next_accept = true;
    s.start(again);
    s.settle();
    assert_eq!(
        socket_frames(&s, 0).1,
        None,
        "the old socket was not closed 4000"
    );
    assert_eq!(s.clients[old].machine.state(), &State::Active);
    assert_eq!(s.live_sockets(), 1);
    // Once the old one leaves, its slot is the only one counted.
    s.drop_link(old);
    s.settle();
    forget(&mut s, old);
    let other = s.add_client(Some("web"));
    s.start(other);
    s.settle();
    assert_eq!(s.clients[other].machine.state(), &State::Active);
}

#[test]
fn sockets_the_room_closed_do_not_come_back_on_a_wake() {
    let (mut s, _) = connected(Some("phone"));
    let again = s.add_client(Some("phone"));
    s.start(again);
    assert!(
        s.deliver_one(),
        "the new socket is accepted, the old one closed 4000"
    );
    // The old socket's close is still on its way: the runtime still lists it.
    s.evict();
    s.wake();
    assert_eq!(s.live_sockets(), 1);
    s.settle();
    assert_eq!(s.clients[again].machine.state(), &State::Active);
}

#[test]
fn at_the_cap_an_idle_socket_is_swept_to_make_room_before_a_429() {
    let mut s = sim_with(RoomConfig {
        max_sockets: 2,
        ..RoomConfig::default()
    });
    let alive = s.add_client(Some("alive"));
    let zombie = s.add_client(Some("zombie"));
    s.start(alive);
    s.start(zombie);
    s.settle();
    let socket = ping_once_then_vanish(&mut s, zombie);
    // Past 2 intervals of silence, before the sweep's alarm.
    s.advance(Millis::from_secs(61));
    assert_eq!(s.logs[&socket].close, None);
    let late = s.add_client(Some("late"));
    s.start(late);
    s.settle();
    assert_eq!(s.logs[&socket].close, Some(CloseCode::Idle));
    assert_eq!(s.clients[late].machine.state(), &State::Active);
    assert_eq!(s.clients[alive].machine.state(), &State::Active);
    // One more is still refused: the pinging neighbour is not idle.
    let over = s.add_client(Some("over"));
    s.start(over);
    s.settle();
    assert!(matches!(
        s.clients[over].machine.state(),
        State::Reconnecting { .. }
    ));
}

#[test]
fn a_token_refresh_due_while_the_room_hibernates_runs() {
    let mut s = Sim::new(RoomConfig::default(), T0, 3);
    s.create_job(Some(10), Millis::from_secs(120));
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    s.advance(Millis::from_secs(59));
    assert!(!s.is_awake());
    let first = s.clients[c].machine.token_expires_at();
    s.advance(Millis::from_secs(2));
    assert!(s.clients[c].machine.token_expires_at() > first);
    assert!(socket_frames(&s, 0).0.contains(&(None, "token_refresh")));
}

/// A measurement, printed (`--nocapture`): alarm wakes in one idle hour of a
/// job with 8 healthy subscribers pinging every 30 s. Pinned to the design:
/// one wake every 2 to 3 ping intervals.
#[test]
fn alarm_wakes_per_idle_hour_with_8_healthy_sockets() {
    let mut s = sim();
    let clients: Vec<usize> = (0..8)
        .map(|i| s.add_client(Some(&format!("app-{i}"))))
        .collect();
    for &c in &clients {
        s.start(c);
    }
    s.settle();
    s.advance(Millis::from_mins(5));
    let before = s.stats;
    s.advance(Millis::from_hours(1));
    let wakes = s.stats.alarms - before.alarms;
    let cold = s.stats.cold_alarms - before.cold_alarms;
    println!("alarm wakes per idle hour, 8 healthy sockets at 30 s: {wakes} ({cold} on a hibernated room)");
    for &c in &clients {
        assert_eq!(s.clients[c].machine.state(), &State::Active);
    }
    assert!((40..=61).contains(&wakes), "{wakes} wakes");
}

#[test]
fn a_record_stored_before_the_end_moved_into_the_phase_keeps_its_end_time() {
    use gateway_core::room::{JobRecord, Kept, Room};
    let mut s = sim();
    s.producer(r#"{"type":"complete"}"#);
    let ended = s.storage.as_ref().unwrap().phase.ended_at().unwrap();
    // The older shape: the end time beside the phase, not in it.
    let mut v = serde_json::to_value(s.storage.as_ref().unwrap()).unwrap();
    v["phase"].as_object_mut().unwrap().remove("at");
    v["endedAt"] = ended.0.into();
    let record: JobRecord = serde_json::from_value(v).unwrap();
    let kept = Kept {
        record: Some(record),
        ..Kept::default()
    };
    let (room, _) = Room::restore(RoomConfig::default(), s.now, kept);
    assert_eq!(room.job().unwrap().phase.ended_at(), Some(ended));
}

// --- issue 11: loose parsing ----------------------------------------------

#[test]
fn a_frame_with_type_twice_closes_1002_and_cancels_nothing_a_huge_ping_is_a_ping() {
    let (mut s, _) = connected(None);
    let stored = s.storage.clone();
    s.net.push_back(Packet::Up {
        socket: nth(&s, 0),
        text: r#"{"type":"ping","type":"cancel"}"#.into(),
    });
    s.settle();
    assert_eq!(socket_frames(&s, 0).1, Some(1002));
    assert_eq!(s.job().unwrap().phase.status(), JobStatus::Pending);
    assert_eq!(s.storage, stored, "nothing was written");
    // A ping with a number far beyond 64 bits is still a ping.
    let c = s.add_client(None);
    s.start(c);
    s.settle();
    s.net.push_back(Packet::Up {
        socket: nth(&s, 1),
        text: r#"{"type":"ping","timestamp":123456789012345678901234567890e200}"#.into(),
    });
    s.settle();
    assert_eq!(socket_frames(&s, 1).0.last(), Some(&(None, "pong")));
    assert_eq!(socket_frames(&s, 1).1, None, "still open");
    clean(&s);
}

#[test]
fn a_summary_with_integers_beyond_64_bits_reaches_subscribers_unchanged() {
    let (mut s, _) = connected(None);
    let summary = r#"{"big":123456789012345678901234567890,"list":[18446744073709551616,-0.1e-5]}"#;
    let body = format!(r#"{{"type":"complete","summary":{summary}}}"#);
    assert_eq!(s.producer(&body).status, 202);
    s.settle();
    let log = &s.logs[&nth(&s, 0)];
    assert_eq!(
        log.frames.last().map(|f| &f.message),
        Some(&ServerMessage::JobComplete {
            summary: summary.into()
        })
    );
    assert_eq!(log.close.map(CloseCode::as_u16), Some(1000));
    // The producer's inspect shows it unchanged too.
    let inspect = s.room_request(Input::Inspect);
    assert_eq!(inspect.status, 200);
    assert!(
        inspect
            .body
            .contains(&format!(r#""result":{{"summary":{summary}}}"#)),
        "{}",
        inspect.body
    );
    let v: serde_json::Value = serde_json::from_str(&inspect.body).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["jobId"], s.job().unwrap().job_id.as_str());
    clean(&s);
}

#[test]
fn an_unsafe_count_is_422_and_changes_nothing() {
    let (mut s, _) = connected(None);
    assert_eq!(s.producer(&progress(2)).status, 202);
    s.settle();
    let stored = s.storage.clone();
    let frames = socket_frames(&s, 0).0.len();
    let r = s.producer(r#"{"type":"progress","processedCount":9007199254740992}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s.producer(r#"{"type":"progress","processedCount":3,"processedCount":9}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("duplicate_key"), "{}", r.body);
    s.settle();
    assert_eq!(s.storage, stored);
    assert_eq!(socket_frames(&s, 0).0.len(), frames);
    assert_eq!(
        s.producer(r#"{"type":"progress","processedCount":9007199254740991}"#)
            .status,
        202
    );
    clean(&s);
}

/// A room whose sessions last 5 min, with a job whose tokens live 2 min.
fn five_minute_session() -> Sim {
    let mut s = Sim::new(
        RoomConfig {
            max_session: Millis::from_mins(5),
            ..RoomConfig::default()
        },
        T0,
        3,
    );
    s.create_job(Some(10), Millis::from_mins(2));
    s
}

/// A session of 5 min with 2 min tokens: refreshes (each a minute before the
/// newest expires) at +1, +2 and +3 min; the last is capped at exactly the
/// session's end (+5 min), so none follows; at +5 min the socket closes 1008.
#[test]
fn refreshes_stop_at_the_session_cap_and_the_socket_closes_1008_when_its_token_expires() {
    let max_session = Millis::from_mins(5);
    let mut s = five_minute_session();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    s.advance(Millis::from_mins(4));
    let refreshes = socket_frames(&s, 0)
        .0
        .iter()
        .filter(|f| f.1 == "token_refresh")
        .count();
    assert_eq!(refreshes, 3);
    let end = T0.plus(max_session);
    // The last refresh reached the cap exactly: no refresh goes past it.
    assert_eq!(s.clients[c].machine.token_expires_at(), Some(end));
    assert_eq!(socket_frames(&s, 0).1, None, "open until the token expires");
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    // One ms before the end it is still open; at the end it closes.
    s.advance(end.minus(s.now).minus(Millis(1)));
    assert_eq!(socket_frames(&s, 0).1, None);
    s.advance(Millis::from_secs(1));
    assert_eq!(socket_frames(&s, 0).1, Some(1008));
    let after = socket_frames(&s, 0).0;
    assert_eq!(
        after.iter().filter(|f| f.1 == "token_refresh").count(),
        3,
        "no refresh past the cap"
    );
    // Reconnecting with the expired token fails: the app needs a new one.
    closed_1008_and_locked_out(&mut s, c);
}

/// The producer's token starts a session of its own: a socket holding it
/// stays open past the lineage's cap, until its own token expires.
#[test]
fn a_producer_issued_token_starts_its_own_session() {
    let max_session = Millis::from_mins(5);
    let mut s = five_minute_session();
    s.advance(Millis::from_mins(4));
    let (granted, exp) = issued_token(&s.room_request(Input::IssueToken { random: [9; 16] }));
    assert_eq!(exp, T0.plus(Millis::from_mins(6)), "now + ttl");
    let c = s.add_client_with(Some("phone"), granted, None);
    s.start(c);
    s.settle();
    s.advance(Millis::from_secs(90));
    // Past the lineage's cap (+5 min), still open: its token runs to +6 min.
    assert!(s.now > T0.plus(max_session));
    assert_eq!(socket_frames(&s, 0).1, None);
    s.advance(Millis::from_mins(1));
    assert_eq!(socket_frames(&s, 0).1, Some(1008));
}
