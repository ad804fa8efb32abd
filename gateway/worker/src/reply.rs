//! Turning the core's answers into HTTP responses: JSON body, `Retry-After`,
//! and the CORS header the router's decision named (the same for answers
//! from the edge and from the room).

use gateway_core::http::{Reply, CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS};
use gateway_core::room;
use gateway_core::HttpError;
use worker::{Headers, Response, Result};

/// Seconds a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// A JSON response.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn json(
    status: u16,
    body: String,
    retry_after: Option<u64>,
    cors: Option<&str>,
) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    if let Some(seconds) = retry_after {
        headers.set("retry-after", &seconds.to_string())?;
    }
    if let Some(origin) = cors {
        headers.set("access-control-allow-origin", origin)?;
        if origin != "*" {
            headers.set("vary", "Origin")?;
        }
    }
    Ok(Response::from_bytes(body.into_bytes())?
        .with_status(status)
        .with_headers(headers))
}

/// The core's HTTP answer.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn core(response: room::Response, cors: Option<&str>) -> Result<Response> {
    json(response.status, response.body, response.retry_after, cors)
}

/// A refusal in the SPEC's error shape.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn error(e: &HttpError, cors: Option<&str>) -> Result<Response> {
    json(e.status, e.body(), e.retry_after, cors)
}

/// An answer the core's [`gateway_core::http::decide`] gave at the edge.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn edge(reply: &Reply) -> Result<Response> {
    match reply {
        Reply::Json {
            status,
            body,
            retry_after,
            cors,
        } => json(*status, body.clone(), *retry_after, cors.as_deref()),
        Reply::Preflight { cors } => preflight(cors.as_deref()),
    }
}

/// The answer to a CORS preflight.
///
/// # Errors
/// Only if the runtime refuses to build a response.
pub fn preflight(cors: Option<&str>) -> Result<Response> {
    let headers = Headers::new();
    if let Some(origin) = cors {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("access-control-allow-methods", CORS_ALLOW_METHODS)?;
        headers.set("access-control-allow-headers", CORS_ALLOW_HEADERS)?;
        headers.set("access-control-max-age", PREFLIGHT_MAX_AGE)?;
        if origin != "*" {
            headers.set("vary", "Origin")?;
        }
    }
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
