//! The Worker's `fetch`: the core checks the operator's configuration and the
//! request's origin, routes the request and runs the checks that need no job
//! (426/400, producer secret, bearer presence, body size, CORS); everything
//! about a job goes to that job's room, the Durable Object named by its id.

use gateway_core::http::{self, Route};
use gateway_core::protocol::parse_create_job;
use tracing::Instrument;
use worker::{event, Context, Env, Headers, Method, Request, RequestInit, Response, Result};

use crate::{body, config, log, reply, runtime};

/// The Durable Object binding (wrangler.toml).
pub const JOB_ROOM_BINDING: &str = "JOB_ROOM";
/// Internal header: the id of a job being created (the body's or a new one).
pub const JOB_ID_HEADER: &str = "x-gateway-job-id";
/// Internal header: `scheme://host` the producer called, for `wsUrl`/`stateUrl`.
pub const ORIGIN_HEADER: &str = "x-gateway-origin";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    log::init();
    let span = tracing::info_span!("request", method = %req.method(), path = %req.path());
    async move {
        match handle(req, &env).await {
            Ok(response) => Ok(response),
            Err(e) => {
                tracing::error!(error = %e, event = "worker_error");
                reply::error(&gateway_core::HttpError::internal(), None)
            }
        }
    }
    .instrument(span)
    .await
}

async fn handle(req: Request, env: &Env) -> Result<Response> {
    // An invalid configuration refuses everything, /healthz included, so the
    // first check after a deploy shows it.
    let config = match config::load(env) {
        Ok(config) => config,
        Err(e) => return reply::error(&e, None),
    };
    // A browser origin that is not allowed gets no further, on any route.
    let browser_origin = req.headers().get("origin")?;
    if let Err(e) = config.origins.check(browser_origin.as_deref()) {
        return reply::error(&e, None);
    }
    // The runtime hands over a serialized WHATWG URL: the router takes the
    // path (workers-rs already split it off), the query and the origin from
    // that text rather than parsing it again.
    let url = req.inner().url();
    let route = http::route(req.method().as_ref(), &req.path());
    let cors = route
        .answers_cors()
        .then(|| config.origins.cors(browser_origin.as_deref()))
        .flatten();
    let cors = cors.as_deref();
    if route.is_producer() {
        let auth = req.headers().get("authorization")?;
        if let Err(e) = config.producer.authorize(auth.as_deref()) {
            return reply::error(&e, None);
        }
    }
    match route {
        Route::Health => reply::json(200, r#"{"status":"ok"}"#.to_owned(), None, None),
        Route::Preflight => reply::preflight(cors),
        Route::Refused(e) => reply::error(&e, cors),
        Route::CreateJob => {
            let body = match body::read(&req).await? {
                Ok(body) => body,
                Err(e) => return reply::error(&e, None),
            };
            let create = match parse_create_job(&body) {
                Ok(c) => c,
                Err(e) => return reply::error(&e, None),
            };
            let job_id = create.job_id.unwrap_or_else(runtime::new_job_id);
            let headers = Headers::new();
            headers.set("content-type", "application/json")?;
            headers.set(JOB_ID_HEADER, &job_id)?;
            headers.set(ORIGIN_HEADER, origin(&url))?;
            let inner = with_body(&url, headers, &body)?;
            room(env, &job_id)?.fetch_with_request(inner).await
        }
        Route::Events(job) => {
            if let Err(e) = body::check_declared(&req)? {
                return reply::error(&e, None);
            }
            if body::declared_length(&req)?.is_some() {
                // A declared length within the limit bounds the body: the
                // room reads it once, straight from the request.
                return room(env, &job)?.fetch_with_request(req).await;
            }
            let body = match body::read(&req).await? {
                Ok(body) => body,
                Err(e) => return reply::error(&e, None),
            };
            let inner = with_body(&url, req.headers().clone(), &body)?;
            room(env, &job)?.fetch_with_request(inner).await
        }
        Route::Inspect(job) | Route::Revoke(job) | Route::IssueToken(job) => {
            room(env, &job)?.fetch_with_request(req).await
        }
        Route::Cancel(job) | Route::JobState(job) => {
            if let Err(e) = http::require_bearer(req.headers().get("authorization")?.as_deref()) {
                return reply::error(&e, cors);
            }
            room(env, &job)?.fetch_with_request(req).await
        }
        Route::Upgrade => {
            let upgrade = req.headers().get("upgrade")?;
            match http::parse_upgrade(upgrade.as_deref(), query(&url)) {
                Ok(up) => room(env, &up.job_id)?.fetch_with_request(req).await,
                Err(e) => reply::error(&e, cors),
            }
        }
    }
}

/// A `POST` to `url` with `headers` and a body already read.
fn with_body(url: &str, headers: Headers, body: &[u8]) -> Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    Request::new_with_init(url, &init)
}

fn room(env: &Env, job_id: &str) -> Result<worker::Stub> {
    env.durable_object(JOB_ROOM_BINDING)?.get_by_name(job_id)
}

/// `scheme://host[:port]` of a serialized URL.
fn origin(url: &str) -> &str {
    let host = url.find("://").map_or(0, |i| i + 3);
    url[host..].find('/').map_or(url, |end| &url[..host + end])
}

/// The query of a serialized URL, without `?` and fragment.
fn query(url: &str) -> &str {
    let Some((_, rest)) = url.split_once('?') else {
        return "";
    };
    rest.split_once('#').map_or(rest, |(q, _)| q)
}

#[cfg(test)]
mod tests {
    use super::{origin, query};

    #[test]
    fn origin_and_query_come_from_the_serialized_url() {
        let url = "https://gw.example:8443/ws/progress?jobId=a&token=b#frag";
        assert_eq!(origin(url), "https://gw.example:8443");
        assert_eq!(query(url), "jobId=a&token=b");
        assert_eq!(origin("http://127.0.0.1:8787"), "http://127.0.0.1:8787");
        assert_eq!(query("http://127.0.0.1:8787/api/jobs"), "");
        assert_eq!(query("http://h/p?"), "");
    }
}
