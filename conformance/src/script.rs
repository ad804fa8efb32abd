//! The scripts the vectors are generated from: what a subscriber sees, step by
//! step. The expectations are not written here; the core's machine produces them.

use crate::JOB_ID;
use gateway_core::client::{ClientConfig, Input};
use gateway_core::protocol::{
    encode, JobHeader, JobStatus, Pipeline, Seq, ServerMessage, Snapshot, LITERAL_PONG,
};
use gateway_core::Millis;

/// When a step happens.
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// This many ms after the previous step (after 0 for the first).
    After(u64),
    /// When the client's timer is due.
    Timer,
}

/// One input and when it happens.
#[derive(Clone, Debug)]
pub struct Step {
    /// When.
    pub when: When,
    /// What the client sees.
    pub input: Input,
}

/// One vector's script.
#[derive(Clone, Debug)]
pub struct Script {
    /// File name without `.json`.
    pub name: &'static str,
    /// What the vector pins, in a sentence or two.
    pub description: &'static str,
    /// The client's settings.
    pub config: ClientConfig,
    /// The token the app starts with.
    pub token: &'static str,
    /// Its expiry, if the app knows it.
    pub token_expires_at: Option<u64>,
    /// Jitter draws in `[0, 1)`, one per reconnect wait, in order.
    pub random: Vec<f64>,
    /// The inputs.
    pub steps: Vec<Step>,
}

/// Two hours: the default token lifetime.
const TTL: u64 = 7_200_000;

fn script(name: &'static str, description: &'static str) -> Script {
    let mut config = ClientConfig::new(JOB_ID);
    config.client_id = Some("app-1".into());
    Script {
        name,
        description,
        config,
        token: "tok-1",
        token_expires_at: Some(TTL),
        random: Vec::new(),
        steps: Vec::new(),
    }
}

impl Script {
    fn random(mut self, draws: &[f64]) -> Self {
        self.random = draws.to_vec();
        self
    }

    /// `input`, `ms` after the previous step.
    fn after(mut self, ms: u64, input: Input) -> Self {
        self.steps.push(Step {
            when: When::After(ms),
            input,
        });
        self
    }

    /// `input` at the same time as the previous step.
    fn then(self, input: Input) -> Self {
        self.after(0, input)
    }

    /// Time passes until the client's timer is due.
    fn timer(mut self) -> Self {
        self.steps.push(Step {
            when: When::Timer,
            input: Input::Tick,
        });
        self
    }

    /// Time passes by `ms` with nothing else happening.
    fn wait(self, ms: u64) -> Self {
        self.after(ms, Input::Tick)
    }

    fn frame(self, text: String) -> Self {
        self.after(10, Input::Frame(text))
    }

    fn closed(self, code: Option<u16>) -> Self {
        self.after(10, Input::Closed { code })
    }

    /// The upgrade answers 101 and the first frame (`first`) arrives.
    fn opened(self, first: String) -> Self {
        self.after(20, Input::Opened).frame(first)
    }

    /// Start, and the first socket opens with a snapshot of `processed` of 10 at `seq`.
    fn connected(self, seq: u64, processed: u64) -> Self {
        self.then(Input::Start)
            .opened(snapshot(seq, JobStatus::Processing, processed))
    }
}

// ---------------------------------------------------------------------------
// Frames exactly as the room sends them.

fn frame(seq: Option<u64>, msg: &ServerMessage) -> String {
    let job = JobHeader {
        job_id: JOB_ID.into(),
        pipeline: Pipeline::CsvImport,
    };
    encode(&job, Millis(1_763_000_000_000), seq.map(Seq), msg)
}

fn state(status: JobStatus, processed: u64) -> Snapshot {
    Snapshot {
        status,
        processed_count: processed,
        total_count: Some(10),
    }
}

fn snapshot(seq: u64, status: JobStatus, processed: u64) -> String {
    let msg = ServerMessage::Snapshot {
        resumed: false,
        recovered: false,
        state: state(status, processed),
    };
    frame(Some(seq), &msg)
}

fn reconnected(seq: u64, processed: u64, recovered: bool) -> String {
    let msg = ServerMessage::Snapshot {
        resumed: true,
        recovered,
        state: state(JobStatus::Processing, processed),
    };
    frame(Some(seq), &msg)
}

fn progress(seq: u64, processed: u64, item: &str) -> String {
    let msg = ServerMessage::JobProgress {
        processed_count: processed,
        total_count: Some(10),
        current_item: Some(item.into()),
        message: None,
    };
    frame(Some(seq), &msg)
}

fn started(seq: u64) -> String {
    let msg = ServerMessage::JobStarted {
        total_count: Some(10),
        message: Some("starting".into()),
    };
    frame(Some(seq), &msg)
}

fn complete(seq: u64) -> String {
    let msg = ServerMessage::JobComplete {
        summary: r#"{"imported":10}"#.into(),
    };
    frame(Some(seq), &msg)
}

fn failed(seq: u64) -> String {
    let msg = ServerMessage::Error {
        code: "parse_error".into(),
        message: "row 7 is not CSV".into(),
        retryable: false,
    };
    frame(Some(seq), &msg)
}

fn token_refresh(token: &str, expires_at: u64) -> String {
    let msg = ServerMessage::TokenRefresh {
        token: token.into(),
        expires_at: Millis(expires_at),
    };
    frame(None, &msg)
}

fn job_state(seq: u64, status: JobStatus, processed: u64) -> String {
    format!(
        r#"{{"jobId":"{JOB_ID}","pipeline":"csv_import","seq":{seq},"updatedAt":1763000000000,"status":"{}","processedCount":{processed},"totalCount":10,"progress":{p},"currentProgress":{p}}}"#,
        status.as_str(),
        p = f64::from(u32::try_from(processed).unwrap_or(0)) / 10.0,
    )
}

// ---------------------------------------------------------------------------

/// A socket closed with `code` while following the job: the client must
/// reconnect with `lastSeq` after a wait in the code's bounds, then resume.
fn reconnect_on(name: &'static str, description: &'static str, code: u16) -> Script {
    script(name, description)
        .random(&[0.5])
        .connected(3, 3)
        .frame(progress(4, 4, "row 4"))
        .closed(Some(code))
        .timer()
        .opened(reconnected(5, 5, true))
}

/// A socket closed with `code`: the client must stop without reconnecting.
fn stop_on(name: &'static str, description: &'static str, code: u16) -> Script {
    script(name, description)
        .connected(3, 3)
        .closed(Some(code))
        .wait(60_000)
}

/// Every script, in file order.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn all() -> Vec<Script> {
    vec![
        script(
            "ping_on_open",
            "The literal ping {\"type\":\"ping\"} goes out as soon as the socket opens, before \
             any frame arrives (SPEC §3), then every ping interval; the literal pong changes nothing.",
        )
        .then(Input::Start)
        .after(20, Input::Opened)
        .frame(snapshot(0, JobStatus::Pending, 0))
        .frame(LITERAL_PONG.into())
        .wait(29_969)
        .timer()
        .timer(),
        script(
            "progress_then_complete",
            "A job followed live to its end: snapshot, started, progress, job_complete, then \
             close 1000: completed with the summary, never reconnect.",
        )
        .then(Input::Start)
        .opened(snapshot(0, JobStatus::Pending, 0))
        .frame(started(1))
        .frame(progress(2, 1, "row 1"))
        .frame(progress(3, 2, "row 2"))
        .frame(complete(4))
        .closed(Some(1000))
        .wait(60_000),
        script(
            "close_1001_canceled",
            "Close 1001: the job was canceled; done, never reconnect.",
        )
        .connected(3, 3)
        .closed(Some(1001))
        .wait(60_000),
        stop_on(
            "close_1002_protocol",
            "Close 1002: the client broke the protocol; give up (a client bug), never reconnect.",
            1002,
        ),
        stop_on(
            "close_1003_binary",
            "Close 1003: the client sent a binary frame; give up, never reconnect.",
            1003,
        ),
        stop_on(
            "close_1008_revoked",
            "Close 1008: the job's tokens were revoked; give up with reason revoked (the app \
             must get a new token from its backend), no blind retry.",
            1008,
        ),
        stop_on(
            "close_1009_too_big",
            "Close 1009: a frame was too big; give up, never reconnect the same request.",
            1009,
        ),
        reconnect_on(
            "close_1011_internal_error",
            "Close 1011: reconnect after at least 1 s plus jitter, resuming with lastSeq.",
            1011,
        ),
        reconnect_on(
            "close_1012_restarting",
            "Close 1012: reconnect after a short jittered delay, resuming with lastSeq.",
            1012,
        ),
        reconnect_on(
            "close_1013_try_again_later",
            "Close 1013: reconnect after at least 5 s plus jitter, resuming with lastSeq.",
            1013,
        ),
        reconnect_on(
            "close_1006_dropped",
            "The connection dropped without a close frame (seen as 1006): treat like 1012.",
            1006,
        ),
        script(
            "close_4000_superseded",
            "Close 4000: a newer socket with the same clientId took over; stop this one, never \
             reconnect it.",
        )
        .connected(3, 3)
        .closed(Some(4000))
        .wait(60_000),
        script(
            "close_4001_failed",
            "The error frame, then close 4001: the job failed; show the producer's code and \
             message, never reconnect.",
        )
        .connected(3, 3)
        .frame(failed(4))
        .closed(Some(4001))
        .wait(60_000),
        reconnect_on(
            "close_4002_idle",
            "Close 4002 (no ping seen for too long): reconnect and resume.",
            4002,
        ),
        script(
            "resume_with_continuity",
            "A dropped socket resumes with lastSeq; the reconnected snapshot says recovered:true \
             and the view continues from it.",
        )
        .random(&[0.25])
        .connected(3, 3)
        .frame(progress(4, 4, "row 4"))
        .closed(None)
        .timer()
        .opened(reconnected(6, 6, true))
        .frame(progress(7, 7, "row 7")),
        script(
            "resume_without_continuity",
            "The room cannot prove continuity (lastSeq ahead of it): the reconnected snapshot \
             says recovered:false and simply replaces the view.",
        )
        .random(&[0.75])
        .connected(5, 5)
        .closed(None)
        .timer()
        .opened(reconnected(2, 2, false)),
        script(
            "lost_close_after_job_complete",
            "job_complete arrived but its close 1000 was lost (the connection dropped): the job \
             is over; completed, no reconnect.",
        )
        .connected(3, 3)
        .frame(complete(4))
        .closed(None)
        .wait(60_000),
        script(
            "lost_close_after_job_failed",
            "The failure's error frame arrived but its close 4001 was lost: failed, no reconnect.",
        )
        .connected(3, 3)
        .frame(failed(4))
        .closed(None)
        .wait(60_000),
        script(
            "token_refresh_adopted",
            "A token_refresh frame: the client keeps the new token and presents it on the next \
             connect; the view does not change.",
        )
        .random(&[0.5])
        .connected(3, 3)
        .frame(token_refresh("tok-2", TTL + 3_600_000))
        .closed(Some(1012))
        .timer()
        .opened(reconnected(3, 3, true)),
        script(
            "upgrade_429_retry_after",
            "The upgrade is refused with 429 and Retry-After: 3; wait at least 3 s plus jitter, \
             then try again.",
        )
        .random(&[0.5])
        .then(Input::Start)
        .after(
            20,
            Input::Refused {
                status: 429,
                retry_after: Some(3),
            },
        )
        .timer()
        .opened(snapshot(3, JobStatus::Processing, 3)),
        script(
            "close_1013_then_429",
            "Close 1013, then the next upgrade answers 429 with Retry-After: 12: the wait honours \
             it; a successful socket clears it.",
        )
        .random(&[0.0, 0.0, 0.0])
        .connected(3, 3)
        .closed(Some(1013))
        .timer()
        .after(
            20,
            Input::Refused {
                status: 429,
                retry_after: Some(12),
            },
        )
        .timer()
        .opened(reconnected(3, 3, true))
        .closed(None),
        script(
            "upgrade_401_unauthorized",
            "The upgrade is refused with 401 (wrong, revoked or expired token): give up with \
             reason unauthorized.",
        )
        .then(Input::Start)
        .after(
            20,
            Input::Refused {
                status: 401,
                retry_after: None,
            },
        ),
        script(
            "upgrade_404_not_found",
            "The upgrade is refused with 404 (no such job): give up with reason not_found.",
        )
        .then(Input::Start)
        .after(
            20,
            Input::Refused {
                status: 404,
                retry_after: None,
            },
        ),
        script(
            "upgrade_503_backoff",
            "The upgrade fails with a 5xx: back off and try again.",
        )
        .random(&[0.5])
        .then(Input::Start)
        .after(
            20,
            Input::Refused {
                status: 503,
                retry_after: None,
            },
        )
        .timer(),
        script(
            "state_sync_after_repeated_failures",
            "Reconnects keep failing: after syncAfter (3) failed attempts the client asks \
             GET /api/job-state, shows what it says, then connects again with lastSeq.",
        )
        .random(&[0.5, 0.5, 0.5, 0.5])
        .connected(3, 3)
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .after(
            30,
            Input::StateFetched {
                status: 200,
                body: Some(job_state(6, JobStatus::Processing, 6)),
            },
        )
        .opened(reconnected(6, 6, true)),
        script(
            "state_sync_retries_then_finds_the_end",
            "The state sync answers 503, is retried after a backoff, then says the job \
             completed: the client ends with outcome completed and no socket.",
        )
        .random(&[0.5, 0.5, 0.5, 0.5])
        .connected(3, 3)
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .closed(None)
        .timer()
        .after(
            30,
            Input::StateFetched {
                status: 503,
                body: None,
            },
        )
        .timer()
        .after(
            30,
            Input::StateFetched {
                status: 200,
                body: Some(job_state(9, JobStatus::Completed, 10)),
            },
        ),
        script(
            "cancel",
            "The user cancels: the client sends {\"type\":\"cancel\"} on its socket; the room \
             closes it with 1001 and the client ends with outcome canceled.",
        )
        .connected(3, 3)
        .after(500, Input::Cancel)
        .closed(Some(1001)),
        script(
            "user_stop",
            "The user stops watching: the client closes its socket with 1000 and gives up with \
             reason stopped; the job runs on.",
        )
        .connected(3, 3)
        .after(500, Input::Stop)
        .wait(60_000),
    ]
}
