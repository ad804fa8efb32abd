//! Rules of the room (`room/*.rs`) that the scenarios leave open, each on
//! the simulated runtime (`gateway-sim`).

use gateway_core::client::State;
use gateway_core::room::{Effect, Input, RoomConfig, SocketId, TIMER_FIRED};
use gateway_core::timer::Timer;
use gateway_core::{CloseCode, Millis};
use gateway_sim::Sim;

const T0: Millis = Millis(1_763_000_000_000);

fn sim() -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 11);
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
