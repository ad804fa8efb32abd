//! The operator's vars and secrets, read from the Worker's `Env` once per
//! isolate (a deploy or a secret change starts new isolates) and checked by
//! the core ([`gateway_core::config`]). An invalid configuration is logged
//! once per isolate, without any secret, and every request is refused with
//! `500 misconfigured`.

use std::cell::OnceCell;
use std::rc::Rc;

use gateway_core::config::{Config, ConfigError};
use gateway_core::room::RoomConfig;
use gateway_core::HttpError;
use wasm_bindgen::JsValue;
use worker::Env;

thread_local! {
    static CONFIG: OnceCell<Result<Rc<Config>, ConfigError>> = const { OnceCell::new() };
}

/// The configuration, or the refusal every request gets while it is invalid.
///
/// # Errors
/// `500 misconfigured` naming the variable and its allowed range.
pub fn load(env: &Env) -> Result<Rc<Config>, HttpError> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let parsed = Config::from_vars(|name| var(env, name)).map(Rc::new);
            if let Err(e) = &parsed {
                // The message names vars and non-secret values only.
                tracing::error!(error = %e, event = "misconfigured");
            }
            parsed
        })
        .clone()
        .map_err(|e| e.to_http())
    })
}

/// The room's settings. The router refuses every request while the
/// configuration is invalid, so only sockets accepted before (by an earlier
/// deployment) reach a room then; they keep running on the defaults, with
/// no token key: no refresh signed with a key the edge does not hold.
#[must_use]
pub fn room(env: &Env) -> RoomConfig {
    load(env).map_or_else(|_| RoomConfig::unconfigured(), |c| c.room)
}

/// A var or secret as text: strings as they are, numbers (a TOML integer
/// in `[vars]`) in decimal, anything else as text the core refuses.
fn var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    if let Some(n) = value.as_f64() {
        return Some(number(n));
    }
    Some("(not a string or number)".to_owned())
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn number(n: f64) -> String {
    if n.is_finite() && n.fract() == 0.0 && (0.0..9.0e15).contains(&n) {
        (n as u64).to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn toml_numbers_read_as_decimal_integers() {
        assert_eq!(number(30_000.0), "30000");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(-1.0), "-1");
    }
}
