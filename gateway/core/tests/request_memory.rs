//! The memory one producer request makes the room hand to the adapter at
//! once: the largest body (1 MiB), as many events as allowed (1,000) and
//! every socket slot taken (32). Every frame is one `String` per socket in
//! the effects, all alive until the adapter has sent them; the Worker's
//! isolate has 128 MB.

use gateway_core::protocol::{CreateJob, Pipeline, MAX_PRODUCER_BODY};
use gateway_core::room::{Effect, Input, Room, RoomConfig, Upgrade, MAX_EVENTS_PER_REQUEST};
use gateway_core::Millis;
const T0: Millis = Millis(1_763_000_000_000);
const MIB: usize = 1024 * 1024;

#[test]
fn the_largest_request_to_a_full_room_holds_a_bounded_amount_of_frame_text() {
    let config = RoomConfig::default();
    let mut room = Room::restore(config, T0, gateway_core::room::Kept::default()).0;
    let fx = room.handle(
        T0,
        Input::Create {
            request: CreateJob {
                pipeline: Pipeline::CsvImport,
                total_count: None,
                ttl: Millis::from_hours(2),
                job_id: None,
                callback_url: None,
            },
            job_id: "mem".into(),
            token_random: [1; 16],
            origin: "https://gw.example".into(),
        },
    );
    let token = fx
        .iter()
        .find_map(|e| match e {
            Effect::Respond(r) => serde_json::from_str::<serde_json::Value>(&r.body).ok(),
            _ => None,
        })
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .expect("a token");
    for i in 0..config.max_sockets {
        let fx = room.handle(
            T0,
            Input::Upgrade {
                request: Upgrade {
                    job_id: "mem".into(),
                    token: token.clone(),
                    client_id: Some(format!("c{i}")),
                    last_seq: None,
                },
                pings: vec![],
            },
        );
        let socket = fx
            .iter()
            .find_map(|e| match e {
                Effect::Accept { socket, .. } => Some(*socket),
                _ => None,
            })
            .expect("accepted");
        room.handle(T0, Input::Accepted { socket });
    }
    assert_eq!(room.live_sockets().count(), config.max_sockets);
    // 1,000 progress events whose messages fill the 1 MiB body.
    let per_event = MAX_PRODUCER_BODY / MAX_EVENTS_PER_REQUEST - 80;
    let events: Vec<String> = (1..=MAX_EVENTS_PER_REQUEST)
        .map(|i| {
            format!(
                r#"{{"type":"progress","processedCount":{i},"message":"{}"}}"#,
                "m".repeat(per_event)
            )
        })
        .collect();
    let body = format!("[{}]", events.join(",")).into_bytes();
    assert!(body.len() <= MAX_PRODUCER_BODY, "{} bytes", body.len());

    let fx = room.handle(T0, Input::Events { body });
    let sends: Vec<usize> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Send { text, .. } => Some(text.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), MAX_EVENTS_PER_REQUEST * config.max_sockets);
    let held: usize = sends.iter().sum();
    eprintln!(
        "one request: {} frames, {:.1} MiB of frame text held at once",
        sends.len(),
        held as f64 / MIB as f64
    );
    // About one copy of the body per socket, plus each frame's envelope:
    // bounded by the caps, and within the isolate's memory.
    assert!(held < 48 * MIB, "{held} bytes");
}
