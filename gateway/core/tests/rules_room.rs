//! Rules of the room (`room/*.rs`) that the scenarios leave open, each on
//! the simulated runtime (`gateway-sim`).

use gateway_core::client::State;
use gateway_core::room::{
    Attachment, Effect, Input, JobRecord, Kept, KeptSocket, PersistPolicy, Room, RoomConfig,
    SocketId, TIMER_FIRED,
};
use gateway_core::timer::Timer;
use gateway_core::{CloseCode, Millis};
use gateway_sim::Sim;

const T0: Millis = Millis(1_763_000_000_000);

fn sim() -> Sim {
    sim_with(RoomConfig::default())
}

/// A room with a created job of 1,000 items on `config`.
fn sim_with(config: RoomConfig) -> Sim {
    let mut s = Sim::new(config, T0, 11);
    assert_eq!(s.create_default_job(Some(1_000)).status, 202);
    s
}

fn progress(n: u64) -> String {
    format!(r#"{{"type":"progress","processedCount":{n},"totalCount":1000}}"#)
}

#[test]
fn literal_pings_keep_a_socket_alive_while_the_room_stays_awake() {
    // The runtime answers literal pings without waking the room and tells
    // it, at each alarm, when each socket last pinged. A producer sending
    // every 5 s keeps the room in memory, so no wake rebuilds the sockets:
    // what the alarm says is all the room learns of the pings.
    let mut s = sim();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    let socket = s.clients[c].socket.expect("connected");
    // 3 minutes: 6 ping intervals, twice the idle limit of 2 intervals.
    for k in 1..=36 {
        assert_eq!(s.producer(&progress(k)).status, 202);
        s.advance(Millis::from_secs(5));
        assert!(s.is_awake(), "the room stays in memory");
    }
    assert!(s.stats.alarms > 0, "the idle sweep ran");
    assert_eq!(s.logs[&socket].close, None, "not closed as idle");
    assert_eq!(s.clients[c].machine.state(), &State::Active);
}

#[test]
fn a_socket_silent_exactly_2_ping_intervals_is_not_idle_and_1_ms_more_is() {
    // The default ping interval is 30 s: idle means silent for more than
    // 60 s. The alarm is fed by hand at those instants, with no pings (the
    // link went quiet right after the upgrade).
    let mut s = sim();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    let socket = s.clients[c].socket.expect("connected");
    let connected = s.now;
    let alarm = |s: &mut Sim, at: Millis| {
        s.now = at;
        s.room_input(Input::Alarm {
            pings: vec![],
            random: [3; 16],
        });
        s.settle();
    };
    alarm(&mut s, connected.plus(Millis::from_secs(60)));
    assert_eq!(s.logs[&socket].close, None, "silent exactly 60 s");
    alarm(
        &mut s,
        connected.plus(Millis::from_secs(60)).plus(Millis(1)),
    );
    assert_eq!(s.logs[&socket].close, Some(CloseCode::Idle));
}

#[test]
fn an_alarm_for_the_idle_sweep_sweeps_and_logs_it_once() {
    let mut s = sim();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    let at = s
        .room()
        .and_then(|r| r.timer(Timer::IdleSweep))
        .expect("a sweep is armed for the socket");
    let sweep = Timer::ALL
        .iter()
        .position(|t| *t == Timer::IdleSweep)
        .map(|i| i as u64);
    let effects = s.room_mut().handle(
        at,
        Input::Alarm {
            pings: vec![],
            random: [3; 16],
        },
    );
    let fired: Vec<Option<u64>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(l) if l.event == TIMER_FIRED => Some(l.value),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired.iter().filter(|v| **v == sweep).count(),
        1,
        "{fired:?}"
    );
}

#[test]
fn a_socket_is_named_s_and_its_number_in_logs() {
    assert_eq!(SocketId(0).to_string(), "s0");
    assert_eq!(SocketId(42).to_string(), "s42");
}

#[test]
fn the_seeds_throttle_writes_every_5th_update_or_after_10_s_and_a_terminal_event_at_once() {
    // The seed's policy, kept to show what it loses (scenarios.rs): the
    // gateway writes every event; the seed wrote on the 5th unwritten update,
    // once 10 s had passed since its last write, and at once for an end.
    let mut s = sim_with(RoomConfig {
        persist: PersistPolicy::SeedThrottled {
            every: 5,
            interval: Millis::from_secs(10),
        },
        ..RoomConfig::default()
    });
    let base = s.stats.writes;
    let writes = |s: &Sim| s.stats.writes - base;
    for n in 1..=4 {
        assert_eq!(s.producer(&progress(n)).status, 202);
    }
    assert_eq!(writes(&s), 0, "4 updates within 10 s: not written yet");
    assert_eq!(s.producer(&progress(5)).status, 202);
    assert_eq!(writes(&s), 1, "the 5th update is written");
    for n in 6..=8 {
        assert_eq!(s.producer(&progress(n)).status, 202);
    }
    assert_eq!(writes(&s), 1, "3 more: not written yet");
    s.now = s.now.plus(Millis::from_secs(10));
    assert_eq!(s.producer(&progress(9)).status, 202);
    assert_eq!(
        writes(&s),
        2,
        "10 s after the last write, the next is written"
    );
    assert_eq!(
        s.producer(r#"{"type":"complete","summary":{"rows":9}}"#)
            .status,
        202
    );
    assert_eq!(writes(&s), 3, "the end is written at once");
}

#[test]
fn a_refresh_skips_a_socket_whose_issued_token_lives_as_long_and_reaches_one_that_dies_sooner() {
    // Socket A holds the creation token; socket B connects with a token the
    // producer issued at the very instant the lineage is refreshed, so both
    // expire at the same millisecond: B has nothing to gain, A must get it.
    let mut s = sim();
    let a = s.add_client(Some("a"));
    s.start(a);
    s.settle();
    let due = s
        .room()
        .and_then(|r| r.timer(Timer::TokenRefresh))
        .expect("a refresh is armed for a live socket");
    s.now = due;
    let r = s.room_request(Input::IssueToken { random: [5; 16] });
    assert_eq!(r.status, 202, "{}", r.body);
    let issued: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let token = gateway_core::token::Token::from_string(issued["token"].as_str().unwrap().into());
    let expires = Millis(issued["expiresAt"].as_u64().unwrap());
    let b = s.add_client_with(Some("b"), token, Some(expires));
    s.start(b);
    s.settle();
    let (sa, sb) = (s.clients[a].socket.unwrap(), s.clients[b].socket.unwrap());
    let refreshes = |s: &Sim, socket| {
        s.logs[&socket]
            .frames
            .iter()
            .filter(|f| f.message.type_name() == "token_refresh")
            .count()
    };
    assert_eq!((refreshes(&s, sa), refreshes(&s, sb)), (0, 0));
    s.room_input(Input::Alarm {
        pings: vec![],
        random: [6; 16],
    });
    s.settle();
    let newest = s
        .room()
        .and_then(|r| r.job())
        .and_then(|j| j.tokens.newest_expiry());
    assert_eq!(newest, Some(expires), "the refresh expires with B's token");
    assert_eq!(refreshes(&s, sa), 1, "A's token dies sooner");
    assert_eq!(refreshes(&s, sb), 0, "B's lives as long");
}

#[test]
fn the_idle_sweep_is_due_3_intervals_after_the_oldest_sign_of_life_even_after_the_clock_stepped_back(
) {
    // The runtime's clock is the host's and may step back between two
    // events; the sweep follows the oldest socket either way (30 s pings:
    // due 90 s after it), never a later instant armed before the step.
    let mut s = sim();
    let a = s.add_client(Some("a"));
    s.now = s.now.plus(Millis::from_secs(10));
    s.start(a);
    s.settle();
    let sweep = |s: &Sim| s.room().and_then(|r| r.timer(Timer::IdleSweep));
    assert_eq!(sweep(&s), Some(s.now.plus(Millis::from_secs(90))));
    s.now = s.now.minus(Millis::from_secs(10));
    let b = s.add_client(Some("b"));
    s.start(b);
    s.settle();
    assert!(s.clients[b].socket.is_some(), "b connected");
    assert_eq!(sweep(&s), Some(s.now.plus(Millis::from_secs(90))));
}

/// The room rebuilt from `record` with one socket the runtime still holds,
/// whose token expires 30 s from now.
fn restored_with_a_socket(record: JobRecord, now: Millis) -> Room {
    let socket = KeptSocket {
        attachment: Attachment {
            socket: SocketId(7),
            client_id: None,
            connected_at: now,
            last_frame: None,
            token_expires_at: Some(now.plus(Millis::from_secs(30))),
        },
        last_auto_response: None,
    };
    let kept = Kept {
        delivered: Some(record.seq),
        record: Some(record),
        sockets: vec![socket],
        alarm: None,
    };
    Room::restore(RoomConfig::default(), now, kept).0
}

#[test]
fn only_a_running_job_closes_a_socket_when_its_token_expires() {
    // Token timers serve a running job: an ended one is never told to
    // reauthenticate (1008), even for a socket the runtime still holds.
    let mut s = sim();
    let running = s.room().and_then(Room::job).cloned().expect("the job");
    let room = restored_with_a_socket(running, s.now);
    assert_eq!(
        room.timer(Timer::TokenExpiry),
        Some(s.now.plus(Millis::from_secs(30)))
    );
    assert_eq!(s.producer(r#"{"type":"complete"}"#).status, 202);
    let ended = s.room().and_then(Room::job).cloned().expect("the job");
    let room = restored_with_a_socket(ended, s.now);
    assert_eq!(room.live_sockets().count(), 1, "the socket is kept");
    assert_eq!(room.timer(Timer::TokenExpiry), None);
    assert_eq!(room.timer(Timer::TokenRefresh), None);
}
