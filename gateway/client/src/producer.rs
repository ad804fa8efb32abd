//! Producer helpers over the HTTP API of SPEC §1/§3: create a job, post
//! events, read or revoke it; and the subscriber's cancel call. The producer
//! secret and tokens travel only in `Authorization` headers and are never
//! printed (`Debug` redacts them).

use crate::endpoint::{Endpoint, EndpointError};
use crate::tls::TlsConfig;
use gateway_core::api::{
    self, CancelResponse, CreateJobResponse, ErrorBody, EventsRequest, EventsResponse, JobInspect,
    RevokeResponse,
};
use gateway_core::protocol::{ProducerEvent, Seq};
use gateway_core::token::Token;
use gateway_core::Millis;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// What went wrong with a producer call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The base URL is not usable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The gateway answered with an error (`{"error":{code,message}}`).
    #[error("gateway answered {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The error body's `code` (empty if the body had none).
        code: String,
        /// The error body's `message`.
        message: String,
    },
    /// No answer (connection refused, timeout, …).
    #[error("no answer from the gateway: {0}")]
    Network(String),
    /// The answer was not what SPEC §1 says.
    #[error("unexpected answer from the gateway: {0}")]
    Unexpected(String),
}

/// `POST /api/jobs` body: the contract's type (`gateway_core::api`).
pub use gateway_core::api::CreateJobRequest;

/// The `202` answer of `POST /api/jobs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedJob {
    /// The job's id.
    pub job_id: String,
    /// The subscriber token (hand it to the app; `Debug` redacts it).
    pub token: Token,
    /// Token expiry.
    pub expires_at: Millis,
    /// Upgrade URL without the token.
    pub ws_url: String,
    /// Job-state URL.
    pub state_url: String,
}

/// A producer of one gateway: base URL and `PRODUCER_SECRET`.
#[derive(Clone)]
pub struct Producer {
    endpoint: Endpoint,
    secret: String,
    http: reqwest::Client,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Producer {
    /// A producer for the gateway at `base_url` (an `https://` one is trusted
    /// through the Mozilla roots, [`TlsConfig::default`]).
    pub fn new(base_url: &str, secret: impl Into<String>) -> Result<Self, ProducerError> {
        Self::with_tls(base_url, secret, &TlsConfig::default())
    }

    /// A producer whose `https://` calls trust what `tls` says (e.g. a private CA).
    pub fn with_tls(
        base_url: &str,
        secret: impl Into<String>,
        tls: &TlsConfig,
    ) -> Result<Self, ProducerError> {
        Ok(Self {
            endpoint: Endpoint::parse(base_url)?,
            secret: secret.into(),
            http: http_client(tls)?,
        })
    }

    /// `POST /api/jobs`.
    pub async fn create_job(&self, req: &CreateJobRequest) -> Result<CreatedJob, ProducerError> {
        let created: CreateJobResponse = self.post(self.endpoint.jobs(), req).await?;
        Ok(CreatedJob::from(created))
    }

    /// `POST /api/jobs/{jobId}/events` with one event; returns its `seq`.
    pub async fn post_event(
        &self,
        job_id: &str,
        event: &ProducerEvent,
    ) -> Result<Seq, ProducerError> {
        self.post_events_body(job_id, &EventsRequest::One(event.into()))
            .await
    }

    /// Several events in one request; returns the `seq` of the last.
    pub async fn post_events(
        &self,
        job_id: &str,
        events: &[ProducerEvent],
    ) -> Result<Seq, ProducerError> {
        let body = EventsRequest::Many(events.iter().map(api::ProducerEvent::from).collect());
        self.post_events_body(job_id, &body).await
    }

    /// An event (or array of events) already in wire form (SPEC §3).
    pub async fn post_raw(&self, job_id: &str, body: &Value) -> Result<Seq, ProducerError> {
        self.post_events_body(job_id, body).await
    }

    async fn post_events_body(
        &self,
        job_id: &str,
        body: &impl Serialize,
    ) -> Result<Seq, ProducerError> {
        let answer: EventsResponse = self.post(self.endpoint.job(job_id, "events"), body).await?;
        Ok(Seq(answer.seq))
    }

    /// `GET /api/jobs/{jobId}`: the full job state, with the result once it ended.
    pub async fn job(&self, job_id: &str) -> Result<JobInspect, ProducerError> {
        let req = self
            .http
            .get(self.endpoint.job(job_id, ""))
            .header("authorization", bearer(&self.secret));
        answer(req).await
    }

    /// `POST /api/jobs/{jobId}/revoke`: every token of the job stops working.
    pub async fn revoke(&self, job_id: &str) -> Result<(), ProducerError> {
        let _: RevokeResponse = self
            .post(
                self.endpoint.job(job_id, "revoke"),
                &Value::Object(Default::default()),
            )
            .await?;
        Ok(())
    }

    async fn post<T: DeserializeOwned>(
        &self,
        url: url::Url,
        body: &impl Serialize,
    ) -> Result<T, ProducerError> {
        // Contract types and JSON values: encoding cannot fail.
        let body = serde_json::to_string(body).unwrap_or_default();
        let req = self
            .http
            .post(url)
            .header("authorization", bearer(&self.secret))
            .header("content-type", "application/json")
            .body(body);
        answer(req).await
    }
}

/// `POST /api/jobs/{jobId}/cancel` with the subscriber's token.
pub async fn cancel_job(base_url: &str, job_id: &str, token: &Token) -> Result<(), ProducerError> {
    cancel_job_with_tls(base_url, job_id, token, &TlsConfig::default()).await
}

/// [`cancel_job`] trusting what `tls` says for an `https://` gateway.
pub async fn cancel_job_with_tls(
    base_url: &str,
    job_id: &str,
    token: &Token,
    tls: &TlsConfig,
) -> Result<(), ProducerError> {
    let endpoint = Endpoint::parse(base_url)?;
    let req = http_client(tls)?
        .post(endpoint.job(job_id, "cancel"))
        .header("authorization", bearer(token.expose()));
    let _: CancelResponse = answer(req).await?;
    Ok(())
}

fn http_client(tls: &TlsConfig) -> Result<reqwest::Client, ProducerError> {
    tls.http()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ProducerError::Network(e.without_url().to_string()))
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

/// Sends; a 2xx body must be the contract's answer `T`, anything else
/// becomes [`ProducerError::Status`] with the gateway's error code and message
/// (empty when the body is not the contract's error body).
async fn answer<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, ProducerError> {
    let response = req
        .send()
        .await
        .map_err(|e| ProducerError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| ProducerError::Network(e.without_url().to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|e| {
            ProducerError::Unexpected(format!("a {status} body that is not the contract's: {e}"))
        });
    }
    let (code, message) = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| (b.error.code, b.error.message))
        .unwrap_or_default();
    Err(ProducerError::Status {
        status,
        code,
        message,
    })
}

impl From<CreateJobResponse> for CreatedJob {
    fn from(r: CreateJobResponse) -> Self {
        Self {
            job_id: r.job_id,
            token: Token::from_string(r.token),
            expires_at: Millis(r.expires_at),
            ws_url: r.ws_url,
            state_url: r.state_url,
        }
    }
}
