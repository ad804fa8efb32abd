//! The real Worker against its committed contract: every route's answers
//! (a success and a refusal) against `docs/openapi.json`, and every frame a
//! subscriber meets against `docs/asyncapi.json`, with the `jsonschema` crate.
//! A status the document does not list for the route fails too.

use std::time::Duration;

use e2e::{gateway::repo_root, progress, Api, Gateway, Reply, Sub, WsEvent, FRAME_TIMEOUT};
use serde_json::{json, Value};

fn document(name: &str) -> Value {
    let path = repo_root().join("docs").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// Validates `instance` against `schema`, whose `$ref`s point into `doc`'s
/// `components`.
fn check(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
    });
    let Some(parts) = schema.as_object() else {
        panic!("{what}: the schema is not an object: {schema}")
    };
    for (k, v) in parts {
        root[k] = v.clone();
    }
    let validator =
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{what}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match its schema: {errors:?}\n{instance}"
    );
}

struct Contract {
    openapi: Value,
    asyncapi: Value,
}

impl Contract {
    fn load() -> Self {
        Self {
            openapi: document("openapi.json"),
            asyncapi: document("asyncapi.json"),
        }
    }

    /// Checks an answer to `method` on the documented `path`: its status is
    /// listed, and its JSON body matches that status's schema.
    fn answer(&self, method: &str, path: &str, reply: &Reply) {
        let what = format!("{method} {path} {}", reply.status);
        let op = &self.openapi["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{path} {method} is not in openapi.json");
        let response = &op["responses"][reply.status.to_string()];
        assert!(
            response.is_object(),
            "{what} is not a documented answer; body: {}",
            reply.text
        );
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            return;
        }
        let content_type = reply.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{what}: content type {content_type:?}"
        );
        check(&self.openapi, schema, &reply.json, &what);
    }

    /// Checks a frame against the AsyncAPI message `name`.
    fn frame(&self, name: &str, frame: &Value) {
        let schema = &self.asyncapi["components"]["messages"][name]["payload"];
        assert!(schema.is_object(), "message {name} is not in asyncapi.json");
        check(&self.asyncapi, schema, frame, &format!("frame {name}"));
    }

    /// Reads the next frame, which must be JSON of `kind`, and checks it
    /// against the message `name`.
    async fn next(&self, sub: &mut Sub, name: &str, kind: &str) -> Value {
        let frame = sub.expect_type(kind).await;
        self.frame(name, &frame);
        frame
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn real_answers_and_frames_match_the_committed_documents() {
    // The gateway's start (a build when needed, workerd's boot) is not part
    // of the bound.
    let api = Gateway::shared().api();
    tokio::time::timeout(Duration::from_secs(60), run(api))
        .await
        .expect("the contract run took over 60 s");
}

async fn run(api: Api) {
    let contract = Contract::load();
    let c = &contract;

    // Health, and a refused create (no secret, unknown pipeline).
    c.answer(
        "GET",
        "/healthz",
        &api.raw("GET", "/healthz", &[], None).await,
    );
    let body = json!({"pipeline": "csv_import"}).to_string();
    let no_secret = api.raw("POST", "/api/jobs", &[], Some(body)).await;
    assert_eq!(no_secret.status, 401);
    c.answer("POST", "/api/jobs", &no_secret);
    let unknown = api.create_job_raw(json!({"pipeline": "nope"})).await;
    assert_eq!(unknown.status, 400);
    c.answer("POST", "/api/jobs", &unknown);

    // Create; the job can't be created twice.
    let created = api
        .create_job_raw(json!({"pipeline": "csv_import", "totalCount": 4, "ttlSeconds": 600}))
        .await;
    assert_eq!(created.status, 202, "{}", created.text);
    c.answer("POST", "/api/jobs", &created);
    let id = created.json["jobId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = created.json["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let twice = api
        .create_job_raw(json!({"pipeline": "csv_import", "jobId": id}))
        .await;
    assert_eq!(twice.status, 409);
    c.answer("POST", "/api/jobs", &twice);

    // Upgrade refusals: 426 without Upgrade, 400, 401 (also for a job that
    // does not exist: the edge checks the token first), 404 with a token
    // valid at the edge for a job that does not exist.
    let plain = api
        .raw(
            "GET",
            &format!("/ws/progress?jobId={id}&token={token}"),
            &[],
            None,
        )
        .await;
    assert_eq!(plain.status, 426);
    c.answer("GET", "/ws/progress", &plain);
    for (query, status) in [
        (format!("jobId={id}&token={token}&lastSeq=x"), 400),
        (format!("jobId={id}&token=wrong"), 401),
        ("jobId=no-such-job&token=wrong".to_owned(), 401),
        (
            format!("jobId=no-such-job&token={}", api.mint_token("no-such-job")),
            404,
        ),
    ] {
        let refused = api.refused_upgrade(&query).await;
        assert_eq!(refused.status, status, "{}", refused.text);
        c.answer("GET", "/ws/progress", &refused);
    }

    // Snapshot, then reconnected.
    let mut sub = api.subscribe(&id, &token).await;
    let snapshot = c.next(&mut sub, "snapshot", "snapshot").await;
    assert_eq!(snapshot["seq"], 0);
    sub.ping_literal().await;
    let mut resumed = api
        .try_subscribe(&id, &token, Some("contract-1"), Some(0))
        .await
        .unwrap_or_else(|e| panic!("{}", e.0.text));
    c.next(&mut resumed, "snapshot", "reconnected").await;
    resumed.close(1000).await;

    // Events: 202, 422, 404; frames job_started and job_progress.
    let events = "/api/jobs/{jobId}/events";
    let started = api
        .post_events(
            &id,
            json!({"type": "started", "totalCount": 4, "message": "go"}),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    c.answer("POST", events, &started);
    c.next(&mut sub, "jobStarted", "job_started").await;
    let step = api
        .post_events(
            &id,
            json!([{"type": "progress", "processedCount": 1, "currentItem": "a.csv", "eventId": "p1"},
                   progress(2, 4)]),
        )
        .await;
    c.answer("POST", events, &step);
    c.next(&mut sub, "jobProgress", "job_progress").await;
    c.next(&mut sub, "jobProgress", "job_progress").await;
    let invalid = api.post_events(&id, json!({"type": "nope"})).await;
    assert_eq!(invalid.status, 422);
    c.answer("POST", events, &invalid);
    let gone = api.post_events("no-such-job", progress(1, 2)).await;
    assert_eq!(gone.status, 404);
    c.answer("POST", events, &gone);

    // State: subscriber and producer views, and their refusals.
    let state = "/api/job-state/{jobId}";
    c.answer("GET", state, &api.job_state(&id, &token).await);
    let wrong = api.job_state(&id, "wrong").await;
    assert_eq!(wrong.status, 401);
    c.answer("GET", state, &wrong);
    let inspect = "/api/jobs/{jobId}";
    let running = api.job_state_producer(&id).await;
    assert_eq!(running.status, 200);
    c.answer("GET", inspect, &running);
    let missing = api.job_state_producer("no-such-job").await;
    assert_eq!(missing.status, 404);
    c.answer("GET", inspect, &missing);

    // Frames about one socket: pong envelope, a refused message.
    sub.send_text(r#"{"type":"ping","timestamp":1}"#).await;
    c.next(&mut sub, "pong", "pong").await;
    sub.send_text(r#"{"type":"no_such_type"}"#).await;
    let refused = c.next(&mut sub, "error", "error").await;
    assert!(refused.get("seq").is_none(), "{refused}");

    // A producer-issued token: 202 (and 404 for no job). If the room hands
    // it to live sockets, that frame must be a valid token_refresh.
    let tokens = "/api/jobs/{jobId}/tokens";
    let issued = api.issue_token(&id).await;
    assert_eq!(issued.status, 202, "{}", issued.text);
    c.answer("POST", tokens, &issued);
    c.answer("POST", tokens, &api.issue_token("no-such-job").await);
    match sub.next_event(FRAME_TIMEOUT).await {
        WsEvent::Text(text) => {
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(frame["type"], "token_refresh", "{text}");
            c.frame("tokenRefresh", &frame);
        }
        WsEvent::Timeout => {}
        other => panic!("expected a token_refresh or nothing, got {other:?}"),
    }

    // Complete: job_complete, close 1000; the result; 409 after.
    let done = api
        .post_events(
            &id,
            json!({"type": "complete", "summary": {"rows": 4, "ok": true}}),
        )
        .await;
    assert_eq!(done.status, 202, "{}", done.text);
    c.answer("POST", events, &done);
    c.next(&mut sub, "jobComplete", "job_complete").await;
    assert_eq!(sub.expect_close().await.0, 1000);
    let result = api.job_state_producer(&id).await;
    assert_eq!(
        result.json["result"]["summary"]["rows"], 4,
        "{}",
        result.text
    );
    c.answer("GET", inspect, &result);
    let after = api.post_events(&id, progress(3, 4)).await;
    assert_eq!(after.status, 409);
    c.answer("POST", events, &after);

    // A failed job: error with seq, close 4001.
    let failing = api.create_job(json!({"pipeline": "ai_scan"})).await;
    let mut sub = api.subscribe(&failing.id, &failing.token).await;
    c.next(&mut sub, "snapshot", "snapshot").await;
    api.post_ok(
        &failing.id,
        json!({"type": "failed", "code": "scan_broke", "message": "m"}),
    )
    .await;
    let failed = c.next(&mut sub, "error", "error").await;
    assert!(failed["seq"].is_u64(), "{failed}");
    assert_eq!(sub.expect_close().await.0, 4001);
    let failed_state = api.job_state_producer(&failing.id).await;
    c.answer("GET", inspect, &failed_state);

    // Cancel: 202, then 409; 401 with a wrong token. Revoke: 202 and 404.
    let cancel = "/api/jobs/{jobId}/cancel";
    let job = api
        .create_job(json!({"pipeline": "batch_enrichment"}))
        .await;
    let bad = api.cancel(&job.id, "wrong").await;
    assert_eq!(bad.status, 401);
    c.answer("POST", cancel, &bad);
    let ok = api.cancel(&job.id, &job.token).await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    c.answer("POST", cancel, &ok);
    let again = api.cancel(&job.id, &job.token).await;
    assert_eq!(again.status, 409);
    c.answer("POST", cancel, &again);
    let revoke = "/api/jobs/{jobId}/revoke";
    c.answer("POST", revoke, &api.revoke(&job.id).await);
    let no_job = api.revoke("no-such-job").await;
    assert_eq!(no_job.status, 404);
    c.answer("POST", revoke, &no_job);
    let auth = bearer(&job.token);
    let producer_only = api
        .raw(
            "POST",
            &format!("/api/jobs/{}/revoke", job.id),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(producer_only.status, 401);
    c.answer("POST", revoke, &producer_only);
}

#[test]
fn a_frame_outside_the_contract_fails_the_check() {
    let contract = Contract::load();
    let bad = json!({"type": "pong", "jobId": "j", "pipeline": "csv_import", "timestamp": 1,
                     "version": "1.0.0", "payload": {}, "extra": true});
    let caught = std::panic::catch_unwind(|| contract.frame("pong", &bad));
    assert!(caught.is_err(), "an unknown field passed the pong schema");
    let good = json!({"type": "pong", "jobId": "j", "pipeline": "csv_import", "timestamp": 1,
                      "version": "1.0.0", "payload": {}});
    contract.frame("pong", &good);
}
