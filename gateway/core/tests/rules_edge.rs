//! Rules of the edge's one decision (`http::decide`, SPEC §1), route by
//! route: what it answers itself (health, preflight, refusals) and what it
//! forwards to the job's room, with the job and the request the room acts
//! on. The token checks are in `rules_token.rs`, the route table and the
//! upgrade's query in `rules_http.rs`.

use gateway_core::config::{Config, PRODUCER_SECRET, TOKEN_SECRET};
use gateway_core::http::{self, Decision, Reply, RequestParts, RoomRequest, ToRoom};
use gateway_core::Millis;

const T0: Millis = Millis(1_763_000_000_000);
const JOB: &str = "job-1";
const APP: &str = "https://app.example";

fn config(origins: &str) -> Config {
    let vars = [
        (PRODUCER_SECRET, "p"),
        (TOKEN_SECRET, "t"),
        ("ALLOWED_ORIGINS", origins),
    ];
    Config::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap()
}

fn token(c: &Config) -> String {
    c.room
        .token_key
        .expect("a key")
        .mint(JOB, T0.plus(Millis::from_hours(1)), T0, [7; 16])
        .expose()
        .to_owned()
}

fn decide(c: &Config, parts: &RequestParts<'_>) -> Decision {
    http::decide(parts, c, T0)
}

/// (status, body, CORS origin) of an answer the edge gives itself.
fn answer(d: &Decision) -> (u16, String, Option<String>) {
    match d {
        Decision::Reply(Reply::Json {
            status, body, cors, ..
        }) => (*status, body.clone(), cors.clone()),
        other => panic!("not answered at the edge: {other:?}"),
    }
}

fn forwarded(d: Decision) -> ToRoom {
    match d {
        Decision::ToRoom(to) => to,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn producer<'a>(method: &'a str, path: &'a str) -> RequestParts<'a> {
    RequestParts {
        method,
        path,
        authorization: Some("Bearer p"),
        ..RequestParts::default()
    }
}

#[test]
fn healthz_is_200_ok_without_any_secret_or_cors() {
    let c = config(APP);
    let parts = RequestParts {
        method: "GET",
        path: "/healthz",
        origin: Some(APP),
        ..RequestParts::default()
    };
    assert_eq!(
        answer(&decide(&c, &parts)),
        (200, r#"{"status":"ok"}"#.to_owned(), None)
    );
}

#[test]
fn each_producer_route_goes_to_its_jobs_room_with_its_request_and_no_cors() {
    let c = config("*");
    let cases = [
        ("POST", "/api/jobs/job-1/events", RoomRequest::Events),
        ("GET", "/api/jobs/job-1", RoomRequest::Inspect),
        ("POST", "/api/jobs/job-1/revoke", RoomRequest::Revoke),
        ("POST", "/api/jobs/job-1/tokens", RoomRequest::IssueToken),
    ];
    for (method, path, request) in cases {
        let to = forwarded(decide(&c, &producer(method, path)));
        assert_eq!(
            to,
            ToRoom {
                job_id: JOB.into(),
                request,
                cors: None
            },
            "{method} {path}"
        );
        // Without the secret, the room is never reached.
        let parts = RequestParts {
            authorization: Some("Bearer q"),
            ..producer(method, path)
        };
        assert_eq!(answer(&decide(&c, &parts)).0, 401, "{method} {path}");
    }
}

#[test]
fn events_of_exactly_1_mib_declared_go_to_the_room_and_one_byte_more_is_413() {
    let c = config("*");
    let path = "/api/jobs/job-1/events";
    let at = RequestParts {
        content_length: Some("1048576"),
        ..producer("POST", path)
    };
    assert_eq!(forwarded(decide(&c, &at)).request, RoomRequest::Events);
    let over = RequestParts {
        content_length: Some("1048577"),
        ..at
    };
    let (status, body, _) = answer(&decide(&c, &over));
    assert_eq!(status, 413);
    assert!(body.contains("send fewer events per request"), "{body}");
}

#[test]
fn an_unreadable_content_length_is_left_to_the_bounded_reader() {
    // A missing, blank or non-numeric header refuses nothing here: the
    // Worker then reads at most 1 MiB + 1 byte and answers 413 itself.
    let c = config("*");
    let path = "/api/jobs/job-1/events";
    for declared in [
        None,
        Some(""),
        Some(" "),
        Some("abc"),
        Some("12a"),
        Some("-1"),
    ] {
        let parts = RequestParts {
            content_length: declared,
            ..producer("POST", path)
        };
        assert_eq!(
            forwarded(decide(&c, &parts)).request,
            RoomRequest::Events,
            "{declared:?}"
        );
    }
    // Digits around blanks are read; more digits than a u64 holds is over.
    for declared in [" 1048577 ", "99999999999999999999"] {
        let parts = RequestParts {
            content_length: Some(declared),
            ..producer("POST", path)
        };
        assert_eq!(answer(&decide(&c, &parts)).0, 413, "{declared:?}");
    }
}

#[test]
fn a_preflight_is_answered_at_the_edge_with_the_allowed_origin() {
    let c = config(APP);
    for path in [
        "/ws/progress",
        "/api/job-state/job-1",
        "/api/jobs/job-1/cancel",
    ] {
        let parts = RequestParts {
            method: "OPTIONS",
            path,
            origin: Some(APP),
            ..RequestParts::default()
        };
        assert_eq!(
            decide(&c, &parts),
            Decision::Reply(Reply::Preflight {
                cors: Some(APP.into())
            }),
            "{path}"
        );
    }
}

#[test]
fn job_state_and_cancel_go_to_the_room_with_the_bearer_token_and_401_without() {
    let c = config(APP);
    let token = token(&c);
    let bearer = format!("Bearer {token}");
    let state_path = format!("/api/job-state/{JOB}");
    let cancel_path = format!("/api/jobs/{JOB}/cancel");
    let cases = [
        (
            "GET",
            state_path.as_str(),
            RoomRequest::JobState {
                token: token.clone(),
            },
        ),
        ("POST", cancel_path.as_str(), RoomRequest::Cancel { token }),
    ];
    for (method, path, request) in cases {
        let parts = RequestParts {
            method,
            path,
            origin: Some(APP),
            authorization: Some(&bearer),
            ..RequestParts::default()
        };
        assert_eq!(
            forwarded(decide(&c, &parts)),
            ToRoom {
                job_id: JOB.into(),
                request,
                cors: Some(APP.into())
            },
            "{path}"
        );
        // No bearer token: 401 saying what to send, with the app's CORS so
        // the browser shows it.
        let parts = RequestParts {
            authorization: None,
            ..parts
        };
        let (status, body, cors) = answer(&decide(&c, &parts));
        assert_eq!((status, cors.as_deref()), (401, Some(APP)), "{path}");
        assert!(body.contains("Authorization: Bearer"), "{body}");
    }
}

#[test]
fn an_upgrade_without_upgrade_websocket_is_426_even_with_a_good_token() {
    let c = config("*");
    let q = format!("jobId={JOB}&token={}", token(&c));
    let parts = RequestParts {
        method: "GET",
        path: "/ws/progress",
        query: &q,
        ..RequestParts::default()
    };
    assert_eq!(answer(&decide(&c, &parts)).0, 426);
    let parts = RequestParts {
        upgrade: Some("websocket"),
        ..parts
    };
    assert_eq!(forwarded(decide(&c, &parts)).job_id, JOB);
}

#[test]
fn an_unknown_route_is_404_from_the_edge() {
    let c = config("*");
    let (status, body, cors) = answer(&decide(&c, &producer("GET", "/api/nope")));
    assert_eq!((status, cors), (404, None));
    assert!(body.contains("docs/PROTOCOL.md"), "{body}");
}

#[test]
fn each_room_request_has_its_own_stable_name_for_logs() {
    let secret = "secret-token".to_owned();
    let create = http::decide_create(br#"{"pipeline":"csv_import"}"#, "https://gw", || "j".into())
        .unwrap()
        .request;
    let upgrade = match forwarded(decide(
        &config("*"),
        &RequestParts {
            method: "GET",
            path: "/ws/progress",
            query: &format!("jobId={JOB}&token={}", token(&config("*"))),
            upgrade: Some("websocket"),
            ..RequestParts::default()
        },
    ))
    .request
    {
        r @ RoomRequest::Upgrade { .. } => r,
        other => panic!("{other:?}"),
    };
    let names: Vec<&str> = [
        create,
        RoomRequest::Events,
        RoomRequest::Inspect,
        RoomRequest::Revoke,
        RoomRequest::IssueToken,
        RoomRequest::Cancel {
            token: secret.clone(),
        },
        RoomRequest::JobState { token: secret },
        upgrade,
    ]
    .iter()
    .map(RoomRequest::name)
    .collect();
    assert_eq!(
        names,
        [
            "create",
            "events",
            "inspect",
            "revoke",
            "issue_token",
            "cancel",
            "job_state",
            "upgrade"
        ]
    );
}
