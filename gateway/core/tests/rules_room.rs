//! Rules of the room (`room/*.rs`) that the scenarios leave open, each on
//! the simulated runtime (`gateway-sim`).

use gateway_core::client::State;
use gateway_core::room::RoomConfig;
use gateway_core::Millis;
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
