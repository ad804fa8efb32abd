//! Random sequences of room and client operations in the simulation
//! (`gateway_sim`): after every step no invariant of SPEC §7 is broken
//! (`sim.violations` stays empty), and once the job is over and the network
//! heals every started subscriber finishes. Bounded (96 cases of ≤ 40 steps);
//! the `room_ops` fuzz target runs the same idea much longer.

use gateway_core::client::{self, State};
use gateway_core::room::{Input, RoomConfig, WireFrame};
use gateway_core::token::Token;
use gateway_core::Millis;
use gateway_sim::{Packet, Sim};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

const T0: Millis = Millis(1_763_000_000_000);

#[derive(Clone, Debug)]
enum Op {
    AddClient(Option<u8>, bool),
    Start(usize),
    Progress(u16, Option<u8>),
    Started,
    Complete,
    Failed,
    EventsThenEvict(u16),
    Deliver(u8),
    Settle,
    Advance(u64),
    Evict,
    DropLink(usize),
    HalfOpen(usize),
    Send(usize, &'static str),
    Binary(usize),
    UserCancel(usize),
    UserStop(usize),
    Revoke,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::option::of(0u8..3), prop::bool::weighted(0.1)).prop_map(|(c, b)| Op::AddClient(c, b)),
        6 => (0usize..6).prop_map(Op::Start),
        12 => (0u16..40, prop::option::of(0u8..4)).prop_map(|(n, id)| Op::Progress(n, id)),
        2 => Just(Op::Started),
        1 => Just(Op::Complete),
        1 => Just(Op::Failed),
        2 => (0u16..40).prop_map(Op::EventsThenEvict),
        8 => (0u8..6).prop_map(Op::Deliver),
        8 => Just(Op::Settle),
        8 => prop_oneof![0u64..2_000, 0u64..120_000, 0u64..7_200_000].prop_map(Op::Advance),
        3 => Just(Op::Evict),
        3 => (0usize..6).prop_map(Op::DropLink),
        3 => (0usize..6).prop_map(Op::HalfOpen),
        5 => (0usize..6, prop::sample::select(vec![
            r#"{"type":"ping"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"ping"}"#,
            r#"{ "type": "ping" }"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"cancel"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type": 123}"#,
            "null",
        ])).prop_map(|(c, f)| Op::Send(c, f)),
        2 => (0usize..6).prop_map(Op::Binary),
        1 => (0usize..6).prop_map(Op::UserCancel),
        1 => (0usize..6).prop_map(Op::UserStop),

        1 => Just(Op::Revoke),
    ]
}

fn pick(sim: &Sim, n: usize) -> Option<usize> {
    (!sim.clients.is_empty()).then(|| n % sim.clients.len())
}

fn step(sim: &mut Sim, op: &Op) {
    match *op {
        Op::AddClient(cid, bad) => {
            if sim.clients.len() < 5 {
                let cid = cid.map(|n| format!("c{n}"));
                if bad {
                    sim.add_client_with(cid.as_deref(), Token::from_string("bad".into()), None);
                } else {
                    sim.add_client(cid.as_deref());
                }
            }
        }
        Op::Start(n) => {
            if let Some(i) = pick(sim, n) {
                sim.start(i);
            }
        }
        Op::Progress(n, id) => {
            let id = id.map_or(String::new(), |i| format!(r#","eventId":"e{i}""#));
            let r = sim.producer(&format!(
                r#"{{"type":"progress","processedCount":{n},"totalCount":40{id}}}"#
            ));
            assert!(matches!(r.status, 202 | 404 | 409 | 422), "{r:?}");
        }
        Op::Started => {
            sim.producer(r#"{"type":"started","totalCount":40}"#);
        }
        Op::Complete => {
            sim.producer(r#"{"type":"complete","summary":{"books":40,"ratio":0.1}}"#);
        }
        Op::Failed => {
            sim.producer(r#"{"type":"failed","code":"boom","message":"it broke"}"#);
        }
        Op::EventsThenEvict(n) => {
            sim.events_then_evict(&format!(r#"{{"type":"progress","processedCount":{n}}}"#));
        }
        Op::Deliver(n) => {
            for _ in 0..n {
                sim.deliver_one();
            }
        }
        Op::Settle => sim.settle(),
        Op::Advance(ms) => sim.advance(Millis(ms)),
        Op::Evict => sim.evict(),
        Op::DropLink(n) => {
            if let Some(i) = pick(sim, n) {
                sim.drop_link(i);
            }
        }
        Op::HalfOpen(n) => {
            if let Some(i) = pick(sim, n) {
                sim.half_open(i);
            }
        }
        Op::Send(n, text) => {
            if let Some(socket) = pick(sim, n).and_then(|i| sim.clients[i].socket) {
                sim.net.push_back(Packet::Up {
                    socket,
                    text: text.into(),
                });
            }
        }
        Op::Binary(n) => {
            if let Some(socket) = pick(sim, n).and_then(|i| sim.clients[i].socket) {
                sim.room_input(Input::Frame {
                    socket,
                    frame: WireFrame::Binary(4),
                });
            }
        }
        Op::UserCancel(n) => {
            if let Some(i) = pick(sim, n) {
                sim.client_input(i, client::Input::Cancel);
            }
        }
        Op::UserStop(n) => {
            if let Some(i) = pick(sim, n) {
                sim.client_input(i, client::Input::Stop);
            }
        }
        Op::Revoke => {
            sim.room_input(Input::Revoke);
        }
    }
}

fn done(c: &gateway_sim::SimClient) -> bool {
    c.machine.is_finished() || c.machine.state() == &State::Idle
}

fn run(max_sockets: usize, ttl_secs: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let cfg = RoomConfig {
        max_sockets,
        ..RoomConfig::default()
    };
    let mut sim = Sim::new(cfg, T0, 11);
    prop_assert_eq!(
        sim.create_job(Some(40), Millis::from_secs(ttl_secs)).status,
        202
    );
    for op in ops {
        step(&mut sim, op);
        prop_assert!(
            sim.violations.is_empty(),
            "after {:?}: {:#?}",
            op,
            sim.violations
        );
        prop_assert!(sim.live_sockets() <= max_sockets);
    }
    // Invariant 7, bounded: end the job, heal the network, wait.
    sim.settle();
    if sim.job().is_some_and(|j| !j.phase.status().is_terminal()) {
        prop_assert_eq!(sim.producer(r#"{"type":"complete"}"#).status, 202);
    }
    for _ in 0..60 {
        if sim.clients.iter().all(done) {
            break;
        }
        sim.advance(Millis::from_mins(1));
    }
    for (i, c) in sim.clients.iter().enumerate() {
        prop_assert!(done(c), "client {} stuck in {:?}", i, c.machine.state());
    }
    prop_assert!(sim.violations.is_empty(), "{:#?}", sim.violations);
    Ok(())
}

proptest! {
    // A fixed seed: CI runs the same 96 cases every time, so a red run is
    // reproducible. Set PROPTEST_RNG_SEED to explore others locally.
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: RngSeed::Fixed(std::env::var("PROPTEST_RNG_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_2026)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_room_and_client_operations_keep_every_invariant(
        max_sockets in 1usize..4,
        ttl_secs in prop::sample::select(vec![60u64, 600, 7200]),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        run(max_sockets, ttl_secs, &ops)?;
    }
}

/// Found by an unseeded run: the newest token expired at the exact moment
/// of a step (invariant 8), one socket, a two-hour token.
#[test]
fn token_expiring_at_the_moment_of_a_step() {
    use Op::*;
    let ops = [
        Advance(2_431_830),
        AddClient(None, false),
        Advance(4_599_654),
        Start(0),
        Advance(168),
        Binary(0),
        AddClient(None, false),
        Start(1),
        Advance(72_119),
        Advance(96_229),
    ];
    run(1, 7200, &ops).unwrap();
}
