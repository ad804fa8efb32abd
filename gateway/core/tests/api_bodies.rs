//! The room's HTTP answers are built from the contract's types
//! (`gateway_core::api`): each parses back into its type (which refuses
//! unknown fields) and keeps the exact bytes the room sent before the types
//! existed (keys in sorted order, numbers as written, the producer's summary
//! as it sent it).

use gateway_core::api::{
    CancelResponse, CreateJobResponse, ErrorBody, EventsResponse, JobInspect, JobResult, JobState,
    RevokeResponse,
};
use gateway_core::protocol::{CreateJob, Pipeline};
use gateway_core::room::{Effect, Input, Kept, Response, Room, RoomConfig};
use gateway_core::Millis;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const T0: Millis = Millis(1_763_000_000_000);
const TTL: Millis = Millis::from_hours(2);

fn respond(room: &mut Room, now: Millis, input: Input) -> Response {
    let fx = room.handle(now, input);
    fx.into_iter()
        .find_map(|e| match e {
            Effect::Respond(r) => Some(r),
            _ => None,
        })
        .expect("an answer")
}

/// Parses `body` into `T`, checks that `T` names every field of it (serde
/// would skip others) and that its keys are sorted at every level, as the
/// room's JSON maps wrote them.
fn typed<T: DeserializeOwned + Serialize>(body: &str) -> T {
    let json = serde_json::from_str::<Value>(body).unwrap();
    assert_eq!(body, json.to_string(), "keys out of order");
    let t: T = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        json,
        "fields beyond the type's"
    );
    t
}

fn create(room: &mut Room, job_id: &str) -> CreateJobResponse {
    let r = respond(
        room,
        T0,
        Input::Create {
            request: CreateJob {
                job_id: Some(job_id.into()),
                pipeline: Pipeline::CsvImport,
                total_count: Some(4),
                ttl: TTL,
                callback_url: None,
            },
            job_id: job_id.into(),
            token_random: [7; 16],
            origin: "https://gw.example".into(),
        },
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let created: CreateJobResponse = typed(&r.body);
    assert_eq!(
        r.body,
        format!(
            r#"{{"expiresAt":{},"jobId":"{job_id}","stateUrl":"https://gw.example/api/job-state/{job_id}","token":"{}","wsUrl":"wss://gw.example/ws/progress?jobId={job_id}"}}"#,
            T0.0 + TTL.0,
            created.token
        )
    );
    created
}

fn events(room: &mut Room, now: Millis, body: &str) -> Response {
    respond(
        room,
        now,
        Input::Events {
            body: body.as_bytes().to_vec(),
        },
    )
}

#[test]
fn a_completed_job_answers_with_the_contract_types_and_the_old_bytes() {
    let mut room = Room::restore(RoomConfig::default(), T0, Kept::default()).0;
    let job = create(&mut room, "bodies");
    let t1 = Millis(T0.0 + 1_000);
    let r = events(
        &mut room,
        t1,
        r#"[{"type":"started"},{"type":"progress","processedCount":1,"currentItem":"a.csv","message":"m"}]"#,
    );
    assert_eq!((r.status, r.body.as_str()), (202, r#"{"seq":2}"#));
    assert_eq!(typed::<EventsResponse>(&r.body).seq, 2);

    let r = respond(&mut room, t1, Input::JobState { token: job.token });
    assert_eq!(r.status, 200);
    let state: JobState = typed(&r.body);
    assert_eq!((state.seq, state.processed_count), (2, 1));
    assert_eq!(
        r.body,
        format!(
            r#"{{"currentProgress":0.25,"jobId":"bodies","pipeline":"csv_import","processedCount":1,"progress":0.25,"seq":2,"status":"processing","totalCount":4,"updatedAt":{}}}"#,
            t1.0
        )
    );

    let r = respond(&mut room, t1, Input::Inspect);
    let running: JobInspect = typed(&r.body);
    assert!(running.result.is_none() && running.ended_at.is_none());
    assert_eq!(running.current_item.as_deref(), Some("a.csv"));

    // The summary is kept as sent: key order, spacing and `2.50` included.
    let summary = r#"{"b":[1, 2],"a":2.50}"#;
    let t2 = Millis(T0.0 + 2_000);
    let r = events(
        &mut room,
        t2,
        &format!(r#"{{"type":"complete","summary":{summary}}}"#),
    );
    assert_eq!(r.body, r#"{"seq":3}"#);
    let r = respond(&mut room, t2, Input::Inspect);
    assert_eq!(
        r.body,
        format!(
            r#"{{"createdAt":{},"currentItem":"a.csv","currentProgress":0.25,"endedAt":{t},"jobId":"bodies","message":"m","pipeline":"csv_import","processedCount":1,"progress":0.25,"result":{{"summary":{summary}}},"seq":3,"status":"completed","totalCount":4,"updatedAt":{t}}}"#,
            T0.0,
            t = t2.0
        )
    );
    let done: JobInspect = serde_json::from_str(&r.body).unwrap();
    match done.result {
        Some(JobResult::Completed { summary: s }) => assert_eq!(s.get(), summary),
        other => panic!("{other:?}"),
    }

    // A job completed without a summary reads `"summary":null`, still a
    // completed result.
    let mut room = Room::restore(RoomConfig::default(), T0, Kept::default()).0;
    create(&mut room, "no-summary");
    events(&mut room, T0, r#"{"type":"complete"}"#);
    let r = respond(&mut room, T0, Input::Inspect);
    assert!(
        r.body.contains(r#""result":{"summary":null}"#),
        "{}",
        r.body
    );
    let done: JobInspect = typed(&r.body);
    assert!(
        matches!(done.result, Some(JobResult::Completed { summary }) if summary.get() == "null")
    );
}

#[test]
fn failed_canceled_and_revoked_jobs_answer_with_the_contract_types() {
    let mut room = Room::restore(RoomConfig::default(), T0, Kept::default()).0;
    create(&mut room, "failing");
    let r = events(
        &mut room,
        T0,
        r#"{"type":"failed","code":"bad_input","message":"row 3"}"#,
    );
    assert_eq!(r.body, r#"{"seq":1}"#);
    let r = respond(&mut room, T0, Input::Inspect);
    let failed: JobInspect = typed(&r.body);
    assert!(r
        .body
        .contains(r#""result":{"error":{"code":"bad_input","message":"row 3"}}"#));
    assert!(
        matches!(failed.result, Some(JobResult::Failed { error }) if error.code == "bad_input")
    );
    // A refusal is the error body.
    let r = events(&mut room, T0, r#"{"type":"started"}"#);
    assert_eq!(r.status, 409);
    assert_eq!(typed::<ErrorBody>(&r.body).error.code, "job_failed");

    let mut room = Room::restore(RoomConfig::default(), T0, Kept::default()).0;
    let job = create(&mut room, "canceled");
    let r = respond(&mut room, T0, Input::Cancel { token: job.token });
    assert_eq!(
        (r.status, r.body.as_str()),
        (202, r#"{"status":"canceled"}"#)
    );
    typed::<CancelResponse>(&r.body);
    let r = respond(&mut room, T0, Input::Inspect);
    let canceled: JobInspect = typed(&r.body);
    assert!(canceled.result.is_none());
    assert_eq!(canceled.ended_at, Some(T0.0));

    let r = respond(&mut room, T0, Input::Revoke);
    assert_eq!((r.status, r.body.as_str()), (202, r#"{"revoked":true}"#));
    assert!(typed::<RevokeResponse>(&r.body).revoked);
}

/// A token is a secret: a debug print of an answer or frame that carries one
/// (which may end up in a log) shows everything but the token.
#[test]
fn debug_prints_never_show_a_token() {
    let token = "v1.1.2.secret-nonce.secret-mac";
    let created = format!(
        "{:?}",
        gateway_core::api::CreateJobResponse {
            expires_at: 1,
            job_id: "job-1".into(),
            state_url: "/api/job-state/job-1".into(),
            token: token.into(),
            ws_url: "/ws/progress?jobId=job-1".into(),
        }
    );
    let issued = format!(
        "{:?}",
        gateway_core::api::IssueTokenResponse {
            expires_at: 1,
            job_id: "job-1".into(),
            token: token.into(),
        }
    );
    let refresh = format!(
        "{:?}",
        gateway_core::api::TokenRefreshPayload {
            expires_at: 1,
            token: token.into(),
        }
    );
    for text in [created, issued, refresh] {
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("job-1") || text.contains("expires_at: 1"),
            "{text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }
}
