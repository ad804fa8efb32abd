//! Cloudflare Worker adapter (phase 1: a minimal hibernating Durable Object
//! that proves the offline build and the local runtime; the real adapter
//! replaces it once the core's room exists).
// `#[durable_object]` and `#[event]` generate undocumented public glue.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use worker::{
    durable_object, event, Context, DurableObject, Env, Request, Response, Result, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

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
    ) -> std::result::Result<Option<js_sys::Date>, JsValue>;
}

/// Milliseconds since the epoch of the socket's last auto-answered ping.
fn last_auto_response(state: &State, ws: &WebSocket) -> Option<u64> {
    let raw: &HibernationState = state.as_raw().unchecked_ref();
    let date = raw
        .get_websocket_auto_response_timestamp(ws.as_ref())
        .ok()??;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(date.get_time() as u64)
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    if path == "/healthz" {
        return Response::ok("ok");
    }
    if let Some(name) = path
        .strip_prefix("/probe/")
        .and_then(|rest| rest.split('/').next())
    {
        let stub = env.durable_object("JOB_ROOM")?.get_by_name(name)?;
        return stub.fetch_with_request(req).await;
    }
    Response::error("not found", 404)
}

#[derive(Serialize, Deserialize)]
struct Attachment {
    socket: u32,
}

/// One job's room.
#[durable_object]
pub struct JobRoom {
    state: State,
}

impl DurableObject for JobRoom {
    fn new(state: State, _env: Env) -> Self {
        if let Ok(pair) =
            WebSocketRequestResponsePair::new(r#"{"type":"ping"}"#, r#"{"type":"pong"}"#)
        {
            state.set_websocket_auto_response(&pair);
        }
        Self { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let storage = self.state.storage();
        let count: u32 = storage.get("count").await?.unwrap_or(0) + 1;
        storage.put("count", count).await?;
        if req.headers().get("Upgrade")?.as_deref() == Some("websocket") {
            let pair = WebSocketPair::new()?;
            self.state.accept_web_socket(&pair.server);
            pair.server
                .serialize_attachment(Attachment { socket: count })?;
            return Response::from_websocket(pair.client);
        }
        if req.path().ends_with("/alarm") {
            storage.set_alarm(50_i64).await?;
        }
        let fired: u32 = storage.get("alarms").await?.unwrap_or(0);
        Response::ok(format!("count={count} alarms={fired}"))
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let WebSocketIncomingMessage::String(text) = message else {
            ws.close(Some(1003), Some("binary"))?;
            return Ok(());
        };
        let socket = ws
            .deserialize_attachment::<Attachment>()?
            .map_or(0, |a| a.socket);
        let auto = last_auto_response(&self.state, &ws);
        let reply = serde_json::json!({
            "echo": text,
            "socket": socket,
            "sockets": self.state.get_websockets().len(),
            "lastAutoResponse": auto,
        });
        ws.send_with_str(reply.to_string())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(1011);
        let _ = ws.close(Some(code), Some("bye"));
        Ok(())
    }

    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let fired: u32 = storage.get("alarms").await?.unwrap_or(0) + 1;
        storage.put("alarms", fired).await?;
        Response::ok("alarm")
    }
}
