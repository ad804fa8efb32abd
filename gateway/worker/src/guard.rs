//! A panic must not leave a room's sockets hanging on a broken instance.
//! Wasm here aborts on panic (workers-rs then re-instantiates the module, so
//! every room's memory is dropped and the next event re-reads storage); just
//! before that, this hook closes the sockets of the room whose code panicked
//! with the core's internal-error code, so their apps reconnect and resume.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use gateway_core::error::GatewayError;
use wasm_bindgen::{JsCast, JsValue};
use worker::worker_sys::DurableObjectState;
use worker::State;

thread_local! {
    /// The room whose future is being polled right now.
    static CURRENT: RefCell<Option<JsValue>> = const { RefCell::new(None) };
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook once per isolate (before workers-rs' own hook).
pub fn install() {
    HOOKED.with(|hooked| {
        if !hooked.replace(true) {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                close_current_room();
                previous(info);
            }));
        }
    });
}

fn close_current_room() {
    let state = CURRENT.with(|c| c.try_borrow().ok().and_then(|s| s.clone()));
    let Some(state) = state else { return };
    let state: DurableObjectState = state.unchecked_into();
    let error = GatewayError::Internal;
    let reason = error.close_reason();
    if let Ok(sockets) = state.get_websockets() {
        for ws in sockets {
            let _ = ws.close_with_code_and_reason(error.close_code().as_u16(), &reason);
        }
    }
}

/// A room's handler future that marks its room as current while it runs.
pub struct Guarded<F> {
    state: JsValue,
    inner: Pin<Box<F>>,
}

/// Wraps one handler of the room `state`.
pub fn guarded<F: Future>(state: &State, inner: F) -> Guarded<F> {
    Guarded {
        state: JsValue::from(state.as_raw()),
        inner: Box::pin(inner),
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let previous = CURRENT.with(|c| c.replace(Some(this.state.clone())));
        let out = this.inner.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = previous);
        out
    }
}
