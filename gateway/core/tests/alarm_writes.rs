//! An alarm already set is not written again (issue 12, part 2): a
//! reconnect leaves the idle sweep armed, and a producer without subscribers
//! moves the alarm (the end of an abandoned job) once an hour, not with every
//! event.

use gateway_core::client::State;
use gateway_core::room::RoomConfig;
use gateway_core::timer::Timer;
use gateway_core::Millis;
use gateway_sim::{Sim, SimStats};

/// 800 s past a full hour (UTC).
const T0: Millis = Millis(1_763_000_000_000);

fn sim() -> Sim {
    let mut s = Sim::new(RoomConfig::default(), T0, 13);
    assert_eq!(s.create_default_job(None).status, 202);
    s
}

#[test]
fn a_reconnect_does_not_write_the_alarm() {
    let mut s = sim();
    let c = s.add_client(Some("phone"));
    s.start(c);
    s.settle();
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    let sweep = s.room().unwrap().timer(Timer::IdleSweep).unwrap();
    s.stats = SimStats::default();
    s.drop_link(c);
    s.settle();
    assert_eq!(s.live_sockets(), 0, "the room saw the close");
    // The client reconnects after its backoff (at most a few seconds).
    s.advance(Millis::from_secs(5));
    assert_eq!(s.clients[c].machine.state(), &State::Active);
    assert_eq!(s.live_sockets(), 1);
    // The sweep armed for the first socket stays: it is earlier than the
    // new socket needs, and a sweep that finds nothing re-arms.
    assert_eq!(
        s.stats.alarm_writes, 0,
        "was 2: one at the close, one at the upgrade"
    );
    assert_eq!(s.room().unwrap().timer(Timer::IdleSweep), Some(sweep));
    // The sweep still runs: a silent socket is closed (4002) in time.
    s.stats = SimStats::default();
    s.advance(Millis::from_mins(2));
    assert!(s.stats.alarms >= 1);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
}

#[test]
fn a_producer_without_subscribers_moves_the_alarm_once_an_hour() {
    let mut s = sim();
    s.stats = SimStats::default();
    // 100 events, one every 36 s: one hour, from 800 s past a full hour.
    for k in 1..=100 {
        s.advance(Millis::from_secs(36));
        let body = format!(r#"{{"type":"progress","processedCount":{k}}}"#);
        assert_eq!(s.producer(&body).status, 202);
    }
    assert_eq!(s.stats.writes, 100);
    assert_eq!(s.stats.alarm_writes, 1, "was 100: one per event");
    // The abandoned job ends at the first full hour after 24 h of silence.
    let last = s.job().unwrap().updated_at;
    let hour = Millis::from_hours(1).0;
    let due = last.plus(Millis::from_hours(24)).0.div_ceil(hour) * hour;
    assert_eq!(s.alarm(), Some(Millis(due)));
}
