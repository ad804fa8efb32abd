//! What the room stores: the job record (its hot state under one key, its
//! remembered event ids in chunks: see [`super::storage`]) and the
//! attachment each socket carries.

use super::*;
use crate::api;
use serde_json::value::RawValue;

/// Where the job is, with the data that exists only there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Phase {
    /// Created, not started.
    Pending,
    /// Running.
    Processing,
    /// Ended well.
    Completed {
        /// The producer's summary (JSON text).
        summary: String,
        /// When.
        #[serde(default)]
        at: Millis,
    },
    /// Ended badly.
    Failed {
        /// The producer's code.
        code: String,
        /// The producer's message.
        message: String,
        /// When.
        #[serde(default)]
        at: Millis,
    },
    /// Canceled by a subscriber.
    Canceled {
        /// When.
        #[serde(default)]
        at: Millis,
    },
}

impl Phase {
    /// The wire status.
    #[must_use]
    pub const fn status(&self) -> JobStatus {
        match self {
            Self::Pending => JobStatus::Pending,
            Self::Processing => JobStatus::Processing,
            Self::Completed { .. } => JobStatus::Completed,
            Self::Failed { .. } => JobStatus::Failed,
            Self::Canceled { .. } => JobStatus::Canceled,
        }
    }

    /// When the job ended, if it did.
    #[must_use]
    pub const fn ended_at(&self) -> Option<Millis> {
        match self {
            Self::Pending | Self::Processing => None,
            Self::Completed { at, .. } | Self::Failed { at, .. } | Self::Canceled { at } => {
                Some(*at)
            }
        }
    }

    /// The terminal frame and close code, for jobs that ended with an event.
    pub(super) fn terminal(&self) -> Option<(ServerMessage, CloseCode)> {
        match self {
            Self::Completed { summary, .. } => Some((
                ServerMessage::JobComplete {
                    summary: summary.clone(),
                },
                CloseCode::Completed,
            )),
            Self::Failed { code, message, .. } => Some((
                ServerMessage::Error {
                    code: code.clone(),
                    message: message.clone(),
                    retryable: false,
                },
                CloseCode::JobFailed,
            )),
            _ => None,
        }
    }
}

/// Everything the room needs to restore itself, read with one storage call
/// on a cold upgrade (SPEC §6); stored as [`super::storage`] lays it out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The job's id.
    pub job_id: String,
    /// Its pipeline.
    pub pipeline: Pipeline,
    /// Where it is.
    pub phase: Phase,
    /// Seq of the last job event.
    pub seq: Seq,
    /// Seq through which every live socket was sent its frames.
    pub delivered: Seq,
    /// Items done.
    pub processed_count: u64,
    /// Items in all, if known.
    pub total_count: Option<u64>,
    /// Latest `currentItem`.
    pub current_item: Option<String>,
    /// Latest `message`.
    pub message: Option<String>,
    /// Created.
    pub created_at: Millis,
    /// Last change.
    pub updated_at: Millis,
    /// Records written before the end time moved into [`Phase`] kept it
    /// here; read once by [`Room::restore`], never written.
    #[serde(default, rename = "endedAt", skip_serializing)]
    pub(super) legacy_ended_at: Option<Millis>,
    /// Token hashes and expiries.
    pub tokens: TokenSet,
    /// The last applied event ids and their seqs, oldest first (at most
    /// [`REMEMBERED_EVENT_IDS`]). Stored apart, in chunks; records of the old
    /// layout held them here, so they are still read.
    #[serde(default, skip_serializing)]
    pub applied: VecDeque<(String, Seq)>,
    /// Event ids remembered since the job began (the number of the next one);
    /// 0 in records of the old layout.
    #[serde(default)]
    pub remembered: u64,
    /// Next socket id to hand out.
    pub next_socket: u64,
    /// The producer's callback URL, if it gave one (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// A callback notification not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<PendingNotify>,
}

impl JobRecord {
    /// Remembers the id of an event just applied at `seq`, forgetting the
    /// oldest beyond [`REMEMBERED_EVENT_IDS`].
    pub(super) fn remember(&mut self, id: String, seq: Seq) {
        self.applied.push_back((id, seq));
        self.remembered += 1;
        while self.applied.len() > REMEMBERED_EVENT_IDS {
            self.applied.pop_front();
        }
    }

    pub(super) fn header(&self) -> JobHeader {
        JobHeader {
            job_id: self.job_id.clone(),
            pipeline: self.pipeline,
        }
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            status: self.phase.status(),
            processed_count: self.processed_count,
            total_count: self.total_count,
        }
    }

    /// Seq a snapshot carries: that of the last event before any terminal event.
    #[must_use]
    pub fn snapshot_seq(&self) -> Seq {
        match self.phase {
            Phase::Completed { .. } | Phase::Failed { .. } => Seq(self.seq.0.saturating_sub(1)),
            _ => self.seq,
        }
    }

    /// The `GET /api/job-state/{jobId}` answer.
    pub(super) fn state(&self) -> api::JobState {
        let p = protocol::progress_ratio(self.processed_count, self.total_count);
        api::JobState {
            current_progress: p,
            job_id: self.job_id.clone(),
            pipeline: self.pipeline,
            processed_count: self.processed_count,
            progress: p,
            seq: self.seq.0,
            status: self.phase.status(),
            total_count: self.total_count,
            updated_at: self.updated_at.0,
        }
    }
}

/// Per-socket state kept by the runtime with the socket, so the room can be
/// rebuilt after hibernation (≤ 16 KiB).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The socket.
    pub socket: SocketId,
    /// The subscriber's stable id, if it gave one.
    pub client_id: Option<String>,
    /// When it was accepted.
    pub connected_at: Millis,
    /// When its last frame reached the room (literal pings never do; the
    /// runtime keeps their time instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame: Option<Millis>,
    /// When the newest token it holds expires: the one it presented, or
    /// the last `token_refresh` it was sent. The refresh timer keeps it
    /// fresh even if it connected with an older token than the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<Millis>,
}

/// The producer's view of the job (`GET /api/jobs/{jobId}`); a summary is
/// the exact text it sent.
pub(super) fn inspect(job: &JobRecord) -> api::JobInspect {
    let state = job.state();
    let result = match &job.phase {
        Phase::Completed { summary, .. } => Some(api::JobResult::Completed {
            // Stored as the producer sent it, so it is valid JSON.
            summary: RawValue::from_string(summary.clone())
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
        }),
        Phase::Failed { code, message, .. } => Some(api::JobResult::Failed {
            error: api::ErrorDetail {
                code: code.clone(),
                message: message.clone(),
            },
        }),
        Phase::Pending | Phase::Processing | Phase::Canceled { .. } => None,
    };
    api::JobInspect {
        created_at: job.created_at.0,
        current_item: job.current_item.clone(),
        current_progress: state.current_progress,
        ended_at: job.phase.ended_at().map(|t| t.0),
        job_id: state.job_id,
        message: job.message.clone(),
        pipeline: state.pipeline,
        processed_count: state.processed_count,
        progress: state.progress,
        result,
        seq: state.seq,
        status: state.status,
        total_count: state.total_count,
        updated_at: state.updated_at,
    }
}
