//! Rules of the HTTP surface (SPEC §1): the route table with its 404 and 405
//! answers, which routes need the producer secret and which answer CORS, the
//! upgrade checks in their order with each limit exactly and one over, the
//! bearer check and the producer secret, and the allowed origins.

use gateway_core::config::AllowedOrigins;
use gateway_core::http::{self, authorize_producer, bearer, parse_upgrade, require_bearer, Route};
use gateway_core::protocol::Seq;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn refused(r: &Route) -> Option<(u16, &'static str)> {
    match r {
        Route::Refused(e) => Some((e.status, e.code)),
        _ => None,
    }
}

/// Every route the gateway answers, with the route it must become.
fn table() -> Vec<(&'static str, &'static str, Route)> {
    vec![
        ("GET", "/healthz", Route::Health),
        ("POST", "/api/jobs", Route::CreateJob),
        ("POST", "/api/jobs/j1/events", Route::Events("j1".into())),
        ("GET", "/api/jobs/j1", Route::Inspect("j1".into())),
        ("POST", "/api/jobs/j1/revoke", Route::Revoke("j1".into())),
        (
            "POST",
            "/api/jobs/j1/tokens",
            Route::IssueToken("j1".into()),
        ),
        ("POST", "/api/jobs/j1/cancel", Route::Cancel("j1".into())),
        ("GET", "/api/job-state/j1", Route::JobState("j1".into())),
        ("GET", "/ws/progress", Route::Upgrade),
        ("OPTIONS", "/ws/progress", Route::Preflight),
        ("OPTIONS", "/api/job-state/j1", Route::Preflight),
        ("OPTIONS", "/api/jobs/j1/cancel", Route::Preflight),
    ]
}

#[test]
fn each_route_of_the_spec_reaches_its_handler() {
    for (method, path, want) in table() {
        assert_eq!(http::route(method, path), want, "{method} {path}");
    }
}

#[test]
fn a_route_names_the_job_it_is_about() {
    for (method, path, r) in table() {
        let want = match r {
            Route::Health | Route::CreateJob | Route::Upgrade | Route::Preflight => None,
            _ => Some("j1"),
        };
        assert_eq!(http::route(method, path).job_id(), want, "{method} {path}");
    }
    let other = http::route("GET", "/api/jobs/other_job-2");
    assert_eq!(other.job_id(), Some("other_job-2"));
    assert_eq!(http::route("GET", "/nope").job_id(), None);
}

#[test]
fn only_producer_routes_need_the_producer_secret() {
    for (method, path, r) in table() {
        let producer = matches!(
            r,
            Route::CreateJob
                | Route::Events(_)
                | Route::Inspect(_)
                | Route::Revoke(_)
                | Route::IssueToken(_)
        );
        assert_eq!(r.is_producer(), producer, "{method} {path}");
    }
    assert!(!http::route("GET", "/nope").is_producer());
}

#[test]
fn only_the_routes_a_browser_app_calls_answer_cors() {
    for (method, path, r) in table() {
        let browser = matches!(
            r,
            Route::Upgrade | Route::Cancel(_) | Route::JobState(_) | Route::Preflight
        );
        assert_eq!(r.answers_cors(), browser, "{method} {path}");
    }
    assert!(!http::route("GET", "/nope").answers_cors());
}

#[test]
fn a_preflight_is_answered_only_on_subscriber_routes() {
    assert_eq!(
        refused(&http::route("OPTIONS", "/api/jobs")),
        Some((405, "method_not_allowed"))
    );
    assert_eq!(
        refused(&http::route("OPTIONS", "/api/jobs/j1/events")),
        Some((405, "method_not_allowed"))
    );
    assert_eq!(
        refused(&http::route("OPTIONS", "/healthz")),
        Some((405, "method_not_allowed"))
    );
    assert_eq!(
        refused(&http::route("OPTIONS", "/elsewhere")),
        Some((404, "not_found"))
    );
}

#[test]
fn a_known_path_with_the_wrong_method_is_405_naming_the_right_one() {
    let get_only = [
        "/healthz",
        "/ws/progress",
        "/api/job-state/j1",
        "/api/jobs/j1",
    ];
    for path in get_only {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = http::route(method, path);
            let Route::Refused(e) = r else {
                panic!("{method} {path} was routed: {r:?}")
            };
            assert_eq!(
                (e.status, e.code),
                (405, "method_not_allowed"),
                "{method} {path}"
            );
            assert_eq!(e.message, "use GET", "{method} {path}");
        }
    }
    let post_only = [
        "/api/jobs",
        "/api/jobs/j1/events",
        "/api/jobs/j1/revoke",
        "/api/jobs/j1/cancel",
        "/api/jobs/j1/tokens",
    ];
    for path in post_only {
        for method in ["GET", "PUT", "DELETE"] {
            let r = http::route(method, path);
            let Route::Refused(e) = r else {
                panic!("{method} {path} was routed: {r:?}")
            };
            assert_eq!(
                (e.status, e.code),
                (405, "method_not_allowed"),
                "{method} {path}"
            );
            assert_eq!(e.message, "use POST", "{method} {path}");
        }
    }
}

#[test]
fn an_unknown_path_is_404_pointing_at_the_docs() {
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/api"),
        ("POST", "/api/jobs/j1/other"),
        ("GET", "/api/jobs/j1/events/x"),
        ("GET", "/ws"),
        ("GET", "/ws/progress/x"),
        ("GET", "/api/job-state"),
    ] {
        let Route::Refused(e) = http::route(method, path) else {
            panic!("{method} {path} was routed")
        };
        assert_eq!((e.status, e.code), (404, "not_found"), "{method} {path}");
        assert!(e.message.contains("docs/PROTOCOL.md"));
    }
}

#[test]
fn a_job_route_with_an_unsafe_job_id_is_400() {
    for path in [
        "/api/jobs/a.b/events",
        "/api/jobs/a%2Fb",
        "/api/jobs/a b/revoke",
        "/api/jobs//tokens",
        "/api/jobs/é/cancel",
        "/api/job-state/a.b",
    ] {
        let method = if path.starts_with("/api/job-state") || path == "/api/jobs/a%2Fb" {
            "GET"
        } else {
            "POST"
        };
        assert_eq!(
            refused(&http::route(method, path)),
            Some((400, "invalid_job_id")),
            "{method} {path}"
        );
    }
    let longest = "j".repeat(64);
    assert_eq!(
        http::route("GET", &format!("/api/jobs/{longest}")),
        Route::Inspect(longest.clone())
    );
    assert_eq!(
        refused(&http::route("GET", &format!("/api/jobs/{longest}j"))),
        Some((400, "invalid_job_id"))
    );
}

// ---------------------------------------------------------------------------
// Upgrade checks

/// An upgrade request with `Upgrade: websocket` and this query.
macro_rules! upgrade {
    ($query:expr) => {
        parse_upgrade(Some("websocket"), $query)
    };
}

fn refusal(query: &str) -> (u16, &'static str) {
    let e = upgrade!(query).expect_err(query);
    (e.status, e.code)
}

#[test]
fn an_upgrade_without_upgrade_websocket_is_426_before_any_other_check() {
    for header in [None, Some(""), Some("h2c"), Some("websockets")] {
        let e = parse_upgrade(header, "").unwrap_err();
        assert_eq!((e.status, e.code), (426, "upgrade_required"), "{header:?}");
    }
    for header in ["websocket", "WebSocket", " WEBSOCKET "] {
        assert_eq!(
            parse_upgrade(Some(header), "").unwrap_err().status,
            400,
            "{header:?} passes the first check"
        );
    }
}

#[test]
fn an_upgrade_takes_job_token_client_and_last_seq_from_the_query() {
    let up = upgrade!("?jobId=job-1&token=t%20k&clientId=phone.1:a_b-c&lastSeq=7&other=x").unwrap();
    assert_eq!(up.job_id, "job-1");
    assert_eq!(up.token, "t k");
    assert_eq!(up.client_id.as_deref(), Some("phone.1:a_b-c"));
    assert_eq!(up.last_seq, Some(Seq(7)));
    let bare = upgrade!("jobId=j&token=t").unwrap();
    assert_eq!((bare.client_id, bare.last_seq), (None, None));
}

#[test]
fn a_missing_or_blank_job_id_or_token_is_400() {
    assert_eq!(refusal("token=t"), (400, "missing_job_id"));
    assert_eq!(refusal("jobId=%20&token=t"), (400, "missing_job_id"));
    assert_eq!(refusal("jobId=j"), (400, "missing_token"));
    assert_eq!(refusal("jobId=j&token=%20%20"), (400, "missing_token"));
    assert_eq!(refusal("jobId=j&token="), (400, "missing_token"));
}

#[test]
fn an_upgrade_job_id_is_1_to_64_safe_characters() {
    let longest = "J".repeat(64);
    assert_eq!(
        upgrade!(&format!("jobId={longest}&token=t"))
            .unwrap()
            .job_id,
        longest
    );
    assert_eq!(
        refusal(&format!("jobId={longest}J&token=t")),
        (400, "invalid_job_id")
    );
    assert_eq!(refusal("jobId=a.b&token=t"), (400, "invalid_job_id"));
    // The job is checked before the token.
    assert_eq!(refusal("jobId=a.b"), (400, "invalid_job_id"));
}

#[test]
fn a_client_id_is_1_to_128_characters_of_a_safe_set() {
    let longest = "c".repeat(128);
    let up = upgrade!(&format!("jobId=j&token=t&clientId={longest}")).unwrap();
    assert_eq!(up.client_id.as_deref(), Some(longest.as_str()));
    assert_eq!(http::MAX_CLIENT_ID, 128);
    assert_eq!(
        refusal(&format!("jobId=j&token=t&clientId={longest}c")),
        (400, "invalid_client_id")
    );
    assert_eq!(
        refusal("jobId=j&token=t&clientId="),
        (400, "invalid_client_id")
    );
    for ok in ["A", "z", "0", "-", "_", ".", ":", "aZ9-_.:"] {
        let q = format!("jobId=j&token=t&clientId={ok}");
        assert_eq!(upgrade!(&q).unwrap().client_id.as_deref(), Some(ok));
    }
    for bad in ["a%20b", "a/b", "a%2Cb", "%C3%A9", "a+b", "a%00"] {
        let q = format!("jobId=j&token=t&clientId={bad}");
        assert_eq!(refusal(&q), (400, "invalid_client_id"), "{bad}");
    }
}

#[test]
fn last_seq_is_canonical_decimal_up_to_2_pow_53_minus_1() {
    let seq = |q: &str| upgrade!(&format!("jobId=j&token=t&lastSeq={q}")).map(|u| u.last_seq);
    assert_eq!(seq("0").unwrap(), Some(Seq(0)));
    assert_eq!(seq("10").unwrap(), Some(Seq(10)));
    assert_eq!(
        seq("9007199254740991").unwrap(),
        Some(Seq(9_007_199_254_740_991))
    );
    for bad in [
        "9007199254740992",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "+5",
        "%2B5",
        "007",
        "00",
        "01",
        "-0",
        "",
        "1.5",
        "1e3",
        "x",
        "%201",
        "1%20",
        "%D9%A1",
    ] {
        let e = seq(bad).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_last_seq"), "{bad:?}");
        assert!(e.message.contains("lastSeq"), "{}", e.message);
    }
}

// ---------------------------------------------------------------------------
// Bearer tokens and the producer secret

#[test]
fn a_bearer_header_yields_its_token_whatever_the_scheme_case() {
    assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
    assert_eq!(bearer(Some("bearer abc")), Some("abc"));
    assert_eq!(bearer(Some("BEARER  abc ")), Some("abc"));
    assert_eq!(bearer(Some("  Bearer abc")), Some("abc"));
}

#[test]
fn anything_but_a_bearer_header_with_a_token_yields_none() {
    for h in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer    "),
        Some("Basic abc"),
        Some("Token abc"),
        Some("Bearerabc"),
        Some("abc"),
    ] {
        assert_eq!(bearer(h), None, "{h:?}");
    }
}

#[test]
fn a_subscriber_route_without_a_bearer_token_is_401_with_advice() {
    assert_eq!(require_bearer(Some("Bearer tok-1")), Ok("tok-1"));
    for h in [None, Some("Basic tok-1"), Some("Bearer ")] {
        let e = require_bearer(h).unwrap_err();
        assert_eq!((e.status, e.code), (401, "unauthorized"), "{h:?}");
        assert!(e.message.contains("Authorization: Bearer"), "{h:?}");
    }
}

#[test]
fn a_producer_call_needs_exactly_the_secret() {
    assert_eq!(authorize_producer(Some("Bearer s3cret"), "s3cret"), Ok(()));
    assert_eq!(authorize_producer(Some("bearer s3cret"), "s3cret"), Ok(()));
    for h in [
        None,
        Some("Bearer s3cre"),
        Some("Bearer s3cret!"),
        Some("Bearer S3CRET"),
        Some("Basic s3cret"),
        Some("s3cret"),
    ] {
        let e = authorize_producer(h, "s3cret").unwrap_err();
        assert_eq!((e.status, e.code), (401, "unauthorized"), "{h:?}");
        assert!(e.message.contains("PRODUCER_SECRET"));
    }
}

#[test]
fn without_a_configured_secret_every_producer_call_is_500() {
    for h in [None, Some("Bearer "), Some("Bearer x")] {
        let e = authorize_producer(h, "").unwrap_err();
        assert_eq!((e.status, e.code), (500, "not_configured"), "{h:?}");
        assert!(e.message.contains("wrangler secret put PRODUCER_SECRET"));
    }
}

// ---------------------------------------------------------------------------
// CORS

#[test]
fn a_star_allows_any_origin_even_none() {
    let any = AllowedOrigins::parse("*").unwrap();
    assert_eq!(any.cors(Some("https://a.example")).as_deref(), Some("*"));
    assert_eq!(any.cors(None).as_deref(), Some("*"));
    assert!(any.check(Some("https://a.example")).is_ok());
    assert!(
        AllowedOrigins::parse("https://a, *").is_err(),
        "* mixed with origins"
    );
    assert!(AllowedOrigins::parse(" , ").is_err(), "blank");
}

#[test]
fn a_listed_origin_is_echoed_and_any_other_is_refused() {
    let list = AllowedOrigins::parse(" https://a.example ,, https://B.example,").unwrap();
    for origin in [
        "https://a.example",
        "https://b.example",
        "HTTPS://A.EXAMPLE",
    ] {
        assert_eq!(list.cors(Some(origin)).as_deref(), Some(origin));
        assert!(list.check(Some(origin)).is_ok(), "{origin}");
    }
    for origin in [
        "https://c.example",
        "https://a.example/",
        "",
        "https://a.example:443",
    ] {
        assert_eq!(list.cors(Some(origin)), None, "{origin:?}");
        assert_eq!(
            list.check(Some(origin)).unwrap_err().status,
            403,
            "{origin:?}"
        );
    }
    // Native apps and backends send no Origin: allowed, no CORS header.
    assert!(list.check(None).is_ok());
    assert_eq!(list.cors(None), None);
}

#[test]
fn a_preflight_allows_the_methods_and_headers_the_app_sends() {
    assert_eq!(http::CORS_ALLOW_METHODS, "GET, POST, OPTIONS");
    assert_eq!(http::CORS_ALLOW_HEADERS, "Authorization, Content-Type");
}

/// Fixed seed and no failure files: the same cases in every run.
fn config() -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(15),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// A client id is accepted exactly when it is 1 to 128 of `A-Za-z0-9-_.:`.
    #[test]
    fn a_client_id_is_accepted_exactly_when_it_is_safe(id in "[A-Za-z0-9._:/ é+-]{0,140}") {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("jobId", "j")
            .append_pair("token", "t")
            .append_pair("clientId", &id)
            .finish();
        let safe = (1..=128).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        match upgrade!(&q) {
            Ok(up) => {
                prop_assert!(safe, "{id:?} accepted");
                prop_assert_eq!(up.client_id.as_deref(), Some(id.as_str()));
            }
            Err(e) => {
                prop_assert!(!safe, "{id:?} refused");
                prop_assert_eq!(e.code, "invalid_client_id");
            }
        }
    }

    /// Any bearer token without spaces comes back as sent.
    #[test]
    fn a_bearer_token_comes_back_as_sent(token in "[!-~]{1,80}") {
        let header = format!("Bearer {token}");
        prop_assert_eq!(bearer(Some(&header)), Some(token.as_str()));
        prop_assert_eq!(require_bearer(Some(&header)), Ok(token.as_str()));
        prop_assert_eq!(authorize_producer(Some(&header), &token), Ok(()));
    }
}
