//! The Worker's `fetch`: the core checks the operator's configuration, then
//! makes the one decision about the request ([`http::decide`]): answer at the
//! edge, or forward a [`ToRoom`] to the job's Durable Object (named by its id)
//! in the [`ROOM_REQUEST_HEADER`], with the events body streamed behind it.

use gateway_core::http::{self, Decision, RequestParts, RoomRequest, ToRoom};
use tracing::Instrument;
use worker::{event, Context, Env, Headers, Method, Request, RequestInit, Response, Result};

use crate::{bench_cuts, body, config, log, reply, runtime};

/// The Durable Object binding (wrangler.toml).
pub const JOB_ROOM_BINDING: &str = "JOB_ROOM";
/// Internal header: the router's [`ToRoom`] as hex-encoded JSON (any
/// header value stays ASCII). The
/// Durable Object is reachable only from this Worker, and the router always
/// overwrites a caller's header of this name.
pub const ROOM_REQUEST_HEADER: &str = "x-gateway-room-request";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    bench_cuts::init(&env);
    log::init();
    let span = tracing::info_span!("request", method = %req.inner().method(), path = %req.path());
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
    // The runtime hands over a serialized WHATWG URL: the router takes the
    // path (workers-rs already split it off), the query and the origin from
    // that text rather than parsing it again.
    let url = req.inner().url();
    // The method as sent: workers-rs maps a method it does not know (e.g.
    // QUERY) to GET, and such a request must be refused, not routed as one.
    let (method, path) = (req.inner().method(), req.path());
    let headers = req.headers();
    let (origin, authorization, upgrade, content_length) = (
        headers.get("origin")?,
        headers.get("authorization")?,
        headers.get("upgrade")?,
        headers.get("content-length")?,
    );
    let parts = RequestParts {
        method: &method,
        path: &path,
        query: query(&url),
        url_origin: origin_of(&url),
        origin: origin.as_deref(),
        authorization: authorization.as_deref(),
        upgrade: upgrade.as_deref(),
        content_length: content_length.as_deref(),
    };
    let decision = http::decide(&parts, &config, runtime::now());
    match decision {
        Decision::Reply(r) => reply::edge(&r),
        Decision::ReadCreateBody => {
            let body = match body::read(&req).await? {
                Ok(body) => body,
                Err(e) => return reply::error(&e, None),
            };
            match http::decide_create(&body, origin_of(&url), runtime::new_job_id) {
                Ok(to) => {
                    let inner = Request::new_with_init(&url, &init(Method::Post, &to, None)?)?;
                    room(env, &to.job_id)?.fetch_with_request(inner).await
                }
                Err(r) => reply::edge(&r),
            }
        }
        Decision::ToRoom(to) => {
            // Only an events body is read by the room. A declared length
            // within the limit bounds it: the room reads it once, from this
            // request; a chunked one is read here, stopping past 1 MiB.
            let events = matches!(to.request, RoomRequest::Events);
            let inner = if !events || body::declared_length(&req)?.is_some() {
                let init = init(req.method(), &to, Some(req.headers()))?;
                let web = worker::web_sys::Request::new_with_request_and_init(
                    req.inner(),
                    &(&init).into(),
                )?;
                Request::from(web)
            } else {
                let body = match body::read(&req).await? {
                    Ok(body) => body,
                    Err(e) => return reply::error(&e, to.cors.as_deref()),
                };
                let mut init = init(Method::Post, &to, Some(req.headers()))?;
                init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
                Request::new_with_init(&url, &init)?
            };
            room(env, &to.job_id)?.fetch_with_request(inner).await
        }
    }
}

/// A request init carrying the decision (over a copy of `headers`, if given).
fn init(method: Method, to: &ToRoom, headers: Option<&Headers>) -> Result<RequestInit> {
    let headers = headers.cloned().unwrap_or_default();
    let envelope =
        serde_json::to_string(to).map_err(|e| worker::Error::RustError(e.to_string()))?;
    headers.set(ROOM_REQUEST_HEADER, &hex::encode(envelope))?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    Ok(init)
}

/// The router's decision, as the Durable Object reads it back.
///
/// # Errors
/// When the header is missing or unreadable: the request did not come from
/// this Worker's router.
pub fn decision_of(req: &Request) -> Result<ToRoom> {
    let header = req
        .headers()
        .get(ROOM_REQUEST_HEADER)?
        .ok_or_else(|| worker::Error::RustError("no routing decision".into()))?;
    let decoded = hex::decode(header.trim())
        .map_err(|e| worker::Error::RustError(format!("routing decision: {e}")))?;
    serde_json::from_slice(&decoded)
        .map_err(|e| worker::Error::RustError(format!("routing decision: {e}")))
}

fn room(env: &Env, job_id: &str) -> Result<worker::Stub> {
    env.durable_object(JOB_ROOM_BINDING)?.get_by_name(job_id)
}

/// `scheme://host[:port]` of a serialized URL.
fn origin_of(url: &str) -> &str {
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
    use super::{origin_of as origin, query};

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
