//! Producer bodies, never read past the limit: a declared `Content-Length`
//! over 1 MiB is refused before a byte is read; a body without one (chunked)
//! is read chunk by chunk, straight into wasm memory, and refused as soon as
//! it passes 1 MiB, without reading the rest.

use gateway_core::http::{body_too_large, check_content_length};
use gateway_core::protocol::MAX_PRODUCER_BODY;
use gateway_core::HttpError;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStreamDefaultReader;
use worker::{Request, Result};

/// The declared body length, when the request has a valid one.
///
/// # Errors
/// Only if the runtime refuses to read a header.
pub fn declared_length(req: &Request) -> Result<Option<u64>> {
    Ok(req
        .headers()
        .get("content-length")?
        .and_then(|h| h.trim().parse().ok()))
}

/// Refuses a declared `Content-Length` over the limit (`413`), before reading.
///
/// # Errors
/// Only if the runtime refuses to read a header.
pub fn check_declared(req: &Request) -> Result<std::result::Result<(), HttpError>> {
    let checked = check_content_length(req.headers().get("content-length")?.as_deref());
    if checked.is_err() {
        tracing::info!(event = "body_refused", declared = true);
    }
    Ok(checked)
}

/// The whole body, or `413` once more than [`MAX_PRODUCER_BODY`] bytes
/// arrived (the rest is not read; the stream is canceled). Each chunk is
/// copied into wasm memory once, and only while the total is within the limit.
///
/// # Errors
/// When the runtime fails to read the stream.
pub async fn read(req: &Request) -> Result<std::result::Result<Vec<u8>, HttpError>> {
    if let Err(e) = check_declared(req)? {
        return Ok(Err(e));
    }
    let Some(stream) = req.inner().body() else {
        return Ok(Ok(Vec::new()));
    };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let capacity = declared_length(req)?
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_PRODUCER_BODY);
    let mut body = Vec::with_capacity(capacity);
    loop {
        let next = JsFuture::from(reader.read()).await?;
        if Reflect::get(&next, &"done".into())?.is_truthy() {
            return Ok(Ok(body));
        }
        let chunk: Uint8Array = Reflect::get(&next, &"value".into())?.unchecked_into();
        let len = chunk.length() as usize;
        if body.len() + len > MAX_PRODUCER_BODY {
            // Tell the runtime to stop receiving; the refusal does not wait.
            let _ = reader.cancel();
            tracing::info!(event = "body_refused", declared = false);
            return Ok(Err(body_too_large(None)));
        }
        let start = body.len();
        body.resize(start + len, 0);
        if let Some(tail) = body.get_mut(start..) {
            chunk.copy_to(tail);
        }
    }
}
