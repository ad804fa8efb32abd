//! Side-by-side costs of the core's hot paths, read as ratios within one run:
//! fan-out by socket count, subscriber frame parsing by kind, and a warm
//! upgrade against a resumed one.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gateway_core::protocol::{parse_client_frame, Incoming, Seq};
use gateway_core::room::{Effect, Input, Room, RoomConfig, Upgrade};
use gateway_core::Millis;
use gateway_sim::Sim;
use std::hint::black_box;

const T0: Millis = Millis(1_763_000_000_000);

fn room_with_sockets(n: usize) -> (Room, String) {
    let mut sim = Sim::new(
        RoomConfig {
            max_sockets: 64,
            ..RoomConfig::default()
        },
        T0,
        1,
    );
    sim.create_default_job(Some(1_000_000));
    let token = sim
        .token
        .clone()
        .map(|t| t.0.expose().to_owned())
        .unwrap_or_default();
    let room = sim.room_mut();
    for i in 0..n {
        upgrade_accepted(room, &token, Some(format!("c{i}")), None);
    }
    (room.clone(), token)
}

/// An upgrade and its accept by the runtime.
fn upgrade_accepted(
    room: &mut Room,
    token: &str,
    client_id: Option<String>,
    last_seq: Option<Seq>,
) -> Vec<Effect> {
    let mut fx = room.handle(
        T0,
        Input::Upgrade {
            request: Upgrade {
                job_id: "sim-job".into(),
                token: token.to_owned(),
                client_id,
                last_seq,
            },
            pings: Vec::new(),
        },
    );
    if let Some(socket) = fx.iter().find_map(|e| match e {
        Effect::Accept { socket, .. } => Some(*socket),
        _ => None,
    }) {
        fx.extend(room.handle(T0, Input::Accepted { socket }));
    }
    fx
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_one_progress_event");
    for n in [1usize, 8, 32] {
        let (room, _) = room_with_sockets(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let mut room = room.clone();
            let mut count = 0u64;
            b.iter(|| {
                count += 1;
                let body = format!(
                    r#"{{"type":"progress","processedCount":{count},"currentItem":"book"}}"#
                );
                black_box(room.handle(
                    T0,
                    Input::Events {
                        body: body.into_bytes(),
                    },
                ))
            });
        });
    }
    g.finish();
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_client_frame");
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(60_000));
    let cases: [(&str, &str); 5] = [
        ("ping", r#"{ "type": "ping" }"#),
        ("cancel", r#"{"type":"cancel"}"#),
        ("unknown_type", r#"{"type":"subscribe","topics":["a","b"]}"#),
        ("invalid_json", r#"{"invalid": "json""#),
        ("60_KiB", &big),
    ];
    for (name, text) in cases {
        g.bench_function(name, |b| {
            b.iter(|| black_box(parse_client_frame(Incoming::Text(black_box(text)))));
        });
    }
    g.finish();
}

fn upgrade(c: &mut Criterion) {
    let mut g = c.benchmark_group("upgrade");
    let (room, token) = room_with_sockets(0);
    for (name, last_seq) in [("fresh", None), ("resume", Some(Seq(0)))] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut room = room.clone();
                black_box(upgrade_accepted(
                    &mut room,
                    &token,
                    Some("phone".into()),
                    last_seq,
                ))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, fanout, parse, upgrade);
criterion_main!(benches);
