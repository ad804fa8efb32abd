//! The HTTP surface of SPEC §1 as a producer and an app call it: statuses,
//! the JSON error shape, producer auth, idempotent events, CORS.

use e2e::{progress, Api, Gateway, Job};
use serde_json::{json, Value};

fn api() -> Api {
    Gateway::shared().api()
}

async fn new_job(api: &Api) -> Job {
    api.create_job(json!({"pipeline": "batch_enrichment", "totalCount": 10}))
        .await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[tokio::test]
async fn healthz_and_unknown_routes() {
    let api = api();
    let health = api.raw("GET", "/healthz", &[], None).await;
    assert_eq!(health.status, 200);
    assert_eq!(
        api.raw("GET", "/nope", &[], None).await.assert_error(404),
        "not_found"
    );
    assert_eq!(
        api.raw("DELETE", "/api/jobs/j1", &[], None)
            .await
            .assert_error(405),
        "method_not_allowed"
    );
    api.raw("GET", "/api/jobs", &[], None)
        .await
        .assert_error(405);
    // A method the runtime's Rust API does not know is refused as itself,
    // not routed as a GET (found by schemathesis: it was a 500).
    for path in ["/api/jobs/j1", "/api/job-state/j1"] {
        assert_eq!(
            api.raw("QUERY", path, &[("authorization", "Bearer x")], None)
                .await
                .assert_error(405),
            "method_not_allowed"
        );
    }
}

#[tokio::test]
async fn producer_routes_need_the_producer_secret() {
    let api = api();
    let job = new_job(&api).await;
    let wrong = [("authorization", "Bearer not-the-secret")];
    let calls: [(&str, String, Option<String>); 4] = [
        (
            "POST",
            "/api/jobs".into(),
            Some(json!({"pipeline": "csv_import"}).to_string()),
        ),
        (
            "POST",
            format!("/api/jobs/{}/events", job.id),
            Some(progress(1, 10).to_string()),
        ),
        ("GET", format!("/api/jobs/{}", job.id), None),
        ("POST", format!("/api/jobs/{}/revoke", job.id), None),
    ];
    for (method, path, body) in calls {
        assert_eq!(
            api.raw(method, &path, &[], body.clone())
                .await
                .assert_error(401),
            "unauthorized",
            "{path}"
        );
        api.raw(method, &path, &wrong, body.clone())
            .await
            .assert_error(401);
        // The subscriber's token is not the producer secret either.
        let token = format!("Bearer {}", job.token);
        api.raw(method, &path, &[("authorization", &token)], body)
            .await
            .assert_error(401);
    }
    // Nothing was applied by the refused calls.
    let state = api.job_state_producer(&job.id).await;
    assert_eq!(state.json["seq"], 0, "{}", state.text);
    assert_eq!(
        api.job_state(&job.id, &job.token).await.status,
        200,
        "not revoked"
    );
}

#[tokio::test]
async fn create_job_answers_202_with_urls_and_refuses_bad_bodies() {
    let api = api();
    let before = now_ms();
    let job = api
        .create_job(json!({"pipeline": "ai_scan", "ttlSeconds": 600}))
        .await;
    let body = &job.body;
    assert!(uuid_like(&job.id), "default jobId is a UUID: {}", job.id);
    // An opaque token of at most 142 URL-safe characters (PROTOCOL §1
    // "Tokens"); today it carries its expiry and a MAC.
    assert!(
        job.token.starts_with("v1.")
            && job.token.len() <= 142
            && job
                .token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.'),
        "token format: {}",
        job.token
    );
    let expires = body["expiresAt"].as_u64().expect("expiresAt");
    assert_eq!(
        job.token.split('.').nth(1),
        Some(expires.to_string().as_str())
    );
    assert!(
        expires >= before + 600_000 && expires <= now_ms() + 600_000 + 5_000,
        "expiresAt {expires}"
    );
    let ws_url = body["wsUrl"].as_str().expect("wsUrl");
    assert!(
        ws_url.starts_with("ws://127.0.0.1:")
            && ws_url.ends_with(&format!("/ws/progress?jobId={}", job.id)),
        "{ws_url}"
    );
    assert!(
        !ws_url.contains(&job.token),
        "wsUrl must not carry the token"
    );
    let state_url = body["stateUrl"].as_str().expect("stateUrl");
    assert!(
        state_url.ends_with(&format!("/api/job-state/{}", job.id)),
        "{state_url}"
    );

    let named = api
        .create_job(json!({"pipeline": "csv_import", "jobId": "e2e-named-job-1"}))
        .await;
    assert_eq!(named.id, "e2e-named-job-1");
    let again = api
        .create_job_raw(json!({"pipeline": "csv_import", "jobId": "e2e-named-job-1"}))
        .await;
    assert_eq!(again.assert_error(409), "job_exists");
    // The first job's token still works: the 409 changed nothing.
    assert_eq!(api.job_state(&named.id, &named.token).await.status, 200);

    for bad in [
        json!({"pipeline": "bookshelf"}),
        json!({"totalCount": 3}),
        json!({"pipeline": "csv_import", "ttlSeconds": 59}),
        json!({"pipeline": "csv_import", "ttlSeconds": 86_401}),
        json!({"pipeline": "csv_import", "jobId": "has space"}),
        json!([1]),
    ] {
        api.create_job_raw(bad).await.assert_error(400);
    }
    let auth = format!("Bearer {}", api.secret());
    api.raw(
        "POST",
        "/api/jobs",
        &[("authorization", &auth)],
        Some("{not json".into()),
    )
    .await
    .assert_error(400);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4 && s.chars().nth(14) == Some('4')
}

#[tokio::test]
async fn events_are_validated_and_frozen_after_the_end() {
    let api = api();
    let unknown = api
        .post_events("no-such-job-e2e-events", progress(1, 2))
        .await;
    assert_eq!(unknown.assert_error(404), "job_not_found");

    let job = new_job(&api).await;
    assert_eq!(api.post_ok(&job.id, progress(5, 10)).await, 1);
    let backwards = api.post_events(&job.id, progress(4, 10)).await;
    assert_eq!(backwards.assert_error(422), "processed_count_decreased");
    for bad in [
        json!({"type": "teleported"}),
        json!({"type": "progress"}),
        json!([]),
        json!("progress"),
        json!({"kind": "progress"}),
    ] {
        api.post_events(&job.id, bad).await.assert_error(422);
    }
    // A bad event anywhere in a batch applies none of it.
    api.post_events(&job.id, json!([progress(6, 10), progress(3, 10)]))
        .await
        .assert_error(422);
    let huge =
        json!({"type": "progress", "processedCount": 6, "message": "x".repeat(1024 * 1024 + 1)});
    assert_eq!(
        api.post_events(&job.id, huge).await.assert_error(413),
        "payload_too_large"
    );

    let state = api.job_state(&job.id, &job.token).await;
    assert_eq!(
        state.json["seq"], 1,
        "refused events changed nothing: {}",
        state.text
    );
    assert_eq!(state.json["processedCount"], 5);

    assert_eq!(
        api.post_ok(&job.id, json!({"type": "complete", "summary": {"n": 5}}))
            .await,
        2
    );
    assert_eq!(
        api.post_events(&job.id, progress(6, 10))
            .await
            .assert_error(409),
        "job_completed"
    );
    assert_eq!(
        api.post_events(&job.id, json!({"type": "failed"}))
            .await
            .assert_error(409),
        "job_completed"
    );
}

#[tokio::test]
async fn a_repeated_event_id_is_acknowledged_with_its_seq_and_not_applied_again() {
    let api = api();
    let job = new_job(&api).await;
    let first = json!({"type": "progress", "processedCount": 2, "eventId": "batch-1"});
    assert_eq!(api.post_ok(&job.id, first.clone()).await, 1);
    assert_eq!(api.post_ok(&job.id, progress(3, 10)).await, 2);
    assert_eq!(api.post_ok(&job.id, first).await, 1, "the original seq");
    let state = api.job_state(&job.id, &job.token).await;
    assert_eq!(state.json["seq"], 2);
    assert_eq!(
        state.json["processedCount"], 3,
        "the retry was not applied again"
    );
    let long_id = json!({"type": "started", "eventId": "x".repeat(65)});
    api.post_events(&job.id, long_id).await.assert_error(422);
}

#[tokio::test]
async fn job_state_for_subscribers_and_producers() {
    let api = api();
    let job = new_job(&api).await;
    api.post_ok(&job.id, json!([{"type": "started"}, {"type": "progress", "processedCount": 4, "currentItem": "isbn-1"}])).await;

    let state = api.job_state(&job.id, &job.token).await;
    assert_eq!(state.status, 200, "{}", state.text);
    let expected_keys = [
        "jobId",
        "pipeline",
        "seq",
        "updatedAt",
        "status",
        "processedCount",
        "totalCount",
        "progress",
        "currentProgress",
    ];
    for key in expected_keys {
        assert!(
            state.json.get(key).is_some(),
            "job-state lacks {key}: {}",
            state.text
        );
    }
    assert_eq!(state.json["jobId"], job.id.as_str());
    assert_eq!(state.json["pipeline"], "batch_enrichment");
    assert_eq!(state.json["status"], "processing");
    assert_eq!(state.json["seq"], 2);
    assert_eq!(state.json["progress"], 0.4);
    assert_eq!(state.json["currentProgress"], 0.4);
    assert!(state.json.get("token").is_none() && !state.text.contains(&job.token));

    api.raw("GET", &format!("/api/job-state/{}", job.id), &[], None)
        .await
        .assert_error(401);
    let wrong = api
        .job_state(&job.id, "00000000-0000-4000-8000-000000000000")
        .await;
    wrong.assert_error(401);
    // Another job's token is refused at the edge, whether or not that job
    // exists; one valid for a missing job reaches its room's 404.
    api.job_state("no-such-job-e2e-state", &job.token)
        .await
        .assert_error(401);
    let minted = api.mint_token("no-such-job-e2e-state");
    api.job_state("no-such-job-e2e-state", &minted)
        .await
        .assert_error(404);

    api.post_ok(
        &job.id,
        json!({"type": "complete", "summary": {"enriched": 4}}),
    )
    .await;
    let full = api.job_state_producer(&job.id).await;
    assert_eq!(full.status, 200, "{}", full.text);
    assert_eq!(full.json["status"], "completed");
    assert_eq!(full.json["result"]["summary"], json!({"enriched": 4}));
    assert!(
        !full.text.contains(&job.token),
        "no token in the producer's view"
    );
    api.job_state_producer("no-such-job-e2e-inspect")
        .await
        .assert_error(404);
}

#[tokio::test]
async fn cancel_endpoint_statuses() {
    let api = api();
    let job = new_job(&api).await;
    api.raw("POST", &format!("/api/jobs/{}/cancel", job.id), &[], None)
        .await
        .assert_error(401);
    api.cancel(&job.id, "00000000-0000-4000-8000-000000000000")
        .await
        .assert_error(401);
    api.cancel("no-such-job-e2e-cancel", &job.token)
        .await
        .assert_error(401);
    let minted = api.mint_token("no-such-job-e2e-cancel");
    api.cancel("no-such-job-e2e-cancel", &minted)
        .await
        .assert_error(404);
    assert_eq!(api.cancel(&job.id, &job.token).await.status, 202);
    assert_eq!(
        api.cancel(&job.id, &job.token).await.assert_error(409),
        "job_canceled"
    );
    let state: Value = api.job_state(&job.id, &job.token).await.json;
    assert_eq!(state["status"], "canceled");
}

#[tokio::test]
async fn subscriber_routes_answer_cors() {
    let api = api();
    let job = new_job(&api).await;
    let origin = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    for path in [
        "/ws/progress".to_owned(),
        format!("/api/job-state/{}", job.id),
        format!("/api/jobs/{}/cancel", job.id),
    ] {
        let preflight = api.raw("OPTIONS", &path, &origin, None).await;
        assert!(
            preflight.status == 204 || preflight.status == 200,
            "{path}: {}",
            preflight.status
        );
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let methods = preflight
            .header("access-control-allow-methods")
            .unwrap_or_default();
        assert!(
            methods.contains("GET") && methods.contains("POST"),
            "{methods}"
        );
        let headers = preflight
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(headers.contains("authorization"), "{headers}");
    }
    let auth = format!("Bearer {}", job.token);
    let state = api
        .raw(
            "GET",
            &format!("/api/job-state/{}", job.id),
            &[("origin", "https://app.example"), ("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(state.status, 200);
    assert_eq!(state.header("access-control-allow-origin"), Some("*"));
}
