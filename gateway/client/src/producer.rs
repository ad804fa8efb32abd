//! Producer helpers over the HTTP API of SPEC §1/§3: create a job, post
//! events, read or revoke it; and the subscriber's cancel call. The producer
//! secret and tokens travel only in `Authorization` headers and are never
//! printed (`Debug` redacts them).

use crate::endpoint::{Endpoint, EndpointError};
use crate::tls::TlsConfig;
use gateway_core::protocol::{encode_producer_event, Pipeline, ProducerEvent, Seq};
use gateway_core::token::Token;
use gateway_core::Millis;
use serde_json::{json, Value};
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

/// `POST /api/jobs` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateJobRequest {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Items in all, if known.
    pub total_count: Option<u64>,
    /// The producer's own id (default: a random UUID chosen by the gateway).
    pub job_id: Option<String>,
    /// Token lifetime, 60 to 86400 (default 7200).
    pub ttl_seconds: Option<u64>,
}

impl CreateJobRequest {
    /// A request with only the pipeline set.
    #[must_use]
    pub const fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            total_count: None,
            job_id: None,
            ttl_seconds: None,
        }
    }
}

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
        let body = gateway_core::api::CreateJobRequest {
            pipeline: req.pipeline,
            total_count: req.total_count,
            job_id: req.job_id.clone(),
            ttl_seconds: req.ttl_seconds,
            callback_url: None,
        };
        // Strings, numbers and a unit enum: encoding cannot fail.
        let body = serde_json::to_value(&body).unwrap_or_default();
        let v = self.post(self.endpoint.jobs(), &body).await?;
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ProducerError::Unexpected(format!("no {k} in the 202 body")))
        };
        Ok(CreatedJob {
            job_id: s("jobId")?,
            token: Token::from_string(s("token")?),
            expires_at: Millis(
                v.get("expiresAt")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ProducerError::Unexpected("no expiresAt".into()))?,
            ),
            ws_url: s("wsUrl")?,
            state_url: s("stateUrl")?,
        })
    }

    /// `POST /api/jobs/{jobId}/events` with one event; returns its `seq`.
    pub async fn post_event(
        &self,
        job_id: &str,
        event: &ProducerEvent,
    ) -> Result<Seq, ProducerError> {
        self.post_raw(job_id, &encode_producer_event(event)).await
    }

    /// Several events in one request; returns the `seq` of the last.
    pub async fn post_events(
        &self,
        job_id: &str,
        events: &[ProducerEvent],
    ) -> Result<Seq, ProducerError> {
        let body = Value::Array(events.iter().map(encode_producer_event).collect());
        self.post_raw(job_id, &body).await
    }

    /// An event (or array of events) already in wire form (SPEC §3).
    pub async fn post_raw(&self, job_id: &str, body: &Value) -> Result<Seq, ProducerError> {
        let v = self.post(self.endpoint.job(job_id, "events"), body).await?;
        v.get("seq")
            .and_then(Value::as_u64)
            .map(Seq)
            .ok_or_else(|| ProducerError::Unexpected("no seq in the 202 body".into()))
    }

    /// `GET /api/jobs/{jobId}`: the full job state.
    pub async fn job(&self, job_id: &str) -> Result<Value, ProducerError> {
        let req = self
            .http
            .get(self.endpoint.job(job_id, ""))
            .header("authorization", bearer(&self.secret));
        answer(req).await
    }

    /// `POST /api/jobs/{jobId}/revoke`: every token of the job stops working.
    pub async fn revoke(&self, job_id: &str) -> Result<(), ProducerError> {
        self.post(self.endpoint.job(job_id, "revoke"), &json!({}))
            .await
            .map(drop)
    }

    async fn post(&self, url: url::Url, body: &Value) -> Result<Value, ProducerError> {
        let req = self
            .http
            .post(url)
            .header("authorization", bearer(&self.secret))
            .header("content-type", "application/json")
            .body(body.to_string());
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
    answer(req).await.map(drop)
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

/// Sends; a 2xx body is parsed as JSON (empty: `null`), anything else becomes
/// [`ProducerError::Status`] with the gateway's error code and message.
async fn answer(req: reqwest::RequestBuilder) -> Result<Value, ProducerError> {
    let response = req
        .send()
        .await
        .map_err(|e| ProducerError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| ProducerError::Network(e.without_url().to_string()))?;
    let body: Value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let field = |k: &str| {
        body.pointer(&format!("/error/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Err(ProducerError::Status {
        status,
        code: field("code"),
        message: field("message"),
    })
}
