//! The few runtime calls workers-rs 0.8.7 does not wrap: the clock as
//! [`Millis`], Web Crypto randomness, and the time of a socket's last
//! auto-answered ping.

use gateway_core::Millis;
use wasm_bindgen::prelude::*;
use worker::{State, WebSocket};

#[wasm_bindgen]
extern "C" {
    /// The runtime's `DurableObjectState`, seen through the one method that
    /// workers-rs 0.8.7 does not bind.
    #[wasm_bindgen(extends = js_sys::Object)]
    type HibernationState;

    /// Time of the socket's last runtime auto-response (a `Date`), or null.
    #[wasm_bindgen(method, catch, js_name = getWebSocketAutoResponseTimestamp)]
    fn get_websocket_auto_response_timestamp(
        this: &HibernationState,
        ws: &worker::web_sys::WebSocket,
    ) -> Result<Option<js_sys::Date>, JsValue>;

    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(buf: &mut [u8]) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

/// Now, from the runtime's clock (it advances only across I/O on Workers).
#[must_use]
pub fn now() -> Millis {
    Millis(worker::Date::now().as_millis())
}

/// Time of the socket's last auto-answered literal ping, if it had one.
#[must_use]
pub fn last_auto_response(state: &State, ws: &WebSocket) -> Option<Millis> {
    let raw: &HibernationState = state.as_raw().unchecked_ref();
    let date = raw
        .get_websocket_auto_response_timestamp(ws.as_ref())
        .ok()??;
    let ms = date.get_time();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (ms.is_finite() && ms >= 0.0).then_some(Millis(ms as u64))
}

/// 16 bytes from Web Crypto.
///
/// # Errors
/// When the runtime refuses (it never does on Workers).
pub fn random_bytes() -> worker::Result<[u8; 16]> {
    let mut bytes = [0_u8; 16];
    get_random_values(&mut bytes).map_err(worker::Error::from)?;
    Ok(bytes)
}

/// A random UUID v4 from Web Crypto, for a job the producer did not name.
#[must_use]
pub fn new_job_id() -> String {
    random_uuid()
}
