//! The job room Durable Object: one per job, on SQLite-backed storage, with
//! hibernatable sockets. It only translates: a request, a socket event or the
//! alarm becomes one core [`Input`]; each [`Effect`] becomes one runtime call,
//! in order, and a `Persist` is awaited before anything that follows it.
//!
//! The room lives in memory while the instance is warm. A cold instance reads
//! its storage once (every key: the record's hot state, its remembered event
//! ids, the delivered mark; laid out as `gateway_core::room::storage` says)
//! and restores the room
//! from what the runtime kept: the open sockets with their attachments and
//! last auto-response times, and the alarm. If a record write fails, the room
//! is dropped from memory (the next event reads storage again) and its sockets
//! are closed with the core's internal-error code; a failed alarm or
//! delivered-mark write after that is logged, and the room is dropped so the
//! next event re-arms the alarm.

use std::cell::RefCell;
use std::collections::HashMap;

use gateway_core::callback;
use gateway_core::error::GatewayError;
use gateway_core::http::{RoomRequest, ToRoom};
use gateway_core::protocol::Seq;
use gateway_core::protocol::{LITERAL_PING, LITERAL_PONG};
use gateway_core::room::storage::{self, DELIVERED_KEY};
use gateway_core::room::{
    Attachment, Effect, Input, JobRecord, Kept, KeptSocket, Level, Log, Room, RoomConfig, SocketId,
    WireFrame,
};
use gateway_core::Millis;
use tracing::Instrument;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use crate::{bench_cuts, guard, log, reply, router, runtime};
use gateway_core::config::PRODUCER_SECRET;

/// One job's room.
#[durable_object]
pub struct JobRoom {
    state: State,
    env: Env,
    config: RoomConfig,
    room: RefCell<Option<Room>>,
    /// The open sockets of the room in memory, by id, so that a send, close
    /// or attach finds its socket without a runtime call. Filled by a wake
    /// (from its one `get_websockets()`) and by each accept; a socket leaves
    /// when it is closed.
    sockets: RefCell<HashMap<SocketId, WebSocket>>,
}

/// What the effects of one input produced for the caller.
#[derive(Default)]
struct Outcome {
    response: Option<gateway_core::room::Response>,
    /// The socket of an `Accept`, and the client end if the runtime took it.
    accept: Option<(SocketId, Option<WebSocket>)>,
    /// Callback attempts to make once the input's other effects are done.
    notify: Vec<(String, String, u32)>,
}

/// Storage failed; the room has been dropped and its sockets closed.
struct StorageFailed(worker::Error);

impl DurableObject for JobRoom {
    fn new(state: State, env: Env) -> Self {
        bench_cuts::init(&env);
        log::init();
        guard::install();
        // The runtime answers the literal ping itself, without waking the room.
        match WebSocketRequestResponsePair::new(LITERAL_PING, LITERAL_PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => tracing::error!(error = ?e, event = "auto_response_failed"),
        }
        // Checked by the core (MAX_SOCKETS_PER_JOB, PING_INTERVAL_MS).
        let config = crate::config::room(&env);
        Self {
            state,
            env,
            config,
            room: RefCell::new(None),
            sockets: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let span = tracing::info_span!("job_room", job_id = %self.job_id());
        guard::guarded(&self.state, self.on_request(req).instrument(span)).await
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let frame = match message {
            WebSocketIncomingMessage::String(text) => WireFrame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => WireFrame::Binary(bytes.len()),
        };
        let span = tracing::info_span!("job_room", job_id = %self.job_id());
        guard::guarded(
            &self.state,
            self.on_socket(ws, Some(frame)).instrument(span),
        )
        .await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake; the socket may already be closed.
        let _ = ws.close::<&str>(None, None);
        let span = tracing::info_span!("job_room", job_id = %self.job_id());
        guard::guarded(&self.state, self.on_socket(ws, None).instrument(span)).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        let span = tracing::info_span!("job_room", job_id = %self.job_id());
        guard::guarded(&self.state, self.on_socket(ws, None).instrument(span)).await
    }

    async fn alarm(&self) -> Result<Response> {
        let span = tracing::info_span!("job_room", job_id = %self.job_id());
        guard::guarded(&self.state, self.on_alarm().instrument(span)).await
    }
}

impl JobRoom {
    // --- events → inputs ----------------------------------------------------

    async fn on_request(&self, mut req: Request) -> Result<Response> {
        let started = runtime::now();
        // The router decided; the room only runs the decision.
        let ToRoom {
            job_id,
            request,
            cors,
        } = match router::decision_of(&req) {
            Ok(to) => to,
            Err(e) => return self.internal_error(&e, None),
        };
        let cors = cors.as_deref();
        // One line per request that reaches a room: what the edge let
        // through. Not on the hot paths: an upgrade logs its one
        // `upgrade_timing` line, and producer events log nothing per event.
        if !matches!(request, RoomRequest::Upgrade { .. } | RoomRequest::Events) {
            tracing::info!(event = "room_request", kind = request.name());
        }
        // Read everything the input needs before touching the room: reading a
        // body is not a storage operation and lets other events in.
        let input = match request {
            RoomRequest::Create { request, origin } => Input::Create {
                job_id,
                request,
                token_random: runtime::random_bytes()?,
                origin,
            },
            RoomRequest::Upgrade { request } => Input::Upgrade {
                request,
                pings: self.pings(),
            },
            RoomRequest::Events => Input::Events {
                body: req.bytes().await?,
            },
            RoomRequest::Inspect => Input::Inspect,
            RoomRequest::Revoke => Input::Revoke,
            RoomRequest::IssueToken => Input::IssueToken {
                random: runtime::random_bytes()?,
            },
            RoomRequest::Cancel { token } => Input::Cancel { token },
            RoomRequest::JobState { token } => Input::JobState { token },
        };
        let upgrade = matches!(input, Input::Upgrade { .. });
        let (restored, storage_ms) = match self.wake(started).await {
            Ok(woke) => woke,
            Err(StorageFailed(e)) => return self.internal_error(&e, cors),
        };
        let accept_started = runtime::now();
        let effects = self.step(restored, input);
        let mut outcome = match self.apply(effects).await {
            Ok(outcome) => outcome,
            Err(StorageFailed(e)) => return self.internal_error(&e, cors),
        };
        let mut accepted = None;
        let mut upgraded = None;
        if let Some((socket, client)) = outcome.accept.take() {
            upgraded = Some(socket);
            // The room commits the upgrade (supersede, catch-up) only now.
            let input = match client {
                Some(client) => {
                    accepted = Some(client);
                    Input::Accepted { socket }
                }
                None => Input::AcceptFailed { socket },
            };
            let effects = self.step(Vec::new(), input);
            outcome = match self.apply(effects).await {
                Ok(outcome) => outcome,
                Err(StorageFailed(e)) => return self.internal_error(&e, cors),
            };
        }
        if upgrade {
            let done = runtime::now();
            // The one log line of an upgrade (the core logs none).
            tracing::info!(
                event = "upgrade_timing",
                socket = upgraded.map(|s| s.to_string()),
                cold = storage_ms.is_some(),
                storage_ms = storage_ms.map_or(0, |m| m.0),
                accept_ms = done.minus(accept_started).0,
                total_ms = done.minus(started).0,
                accepted = accepted.is_some(),
            );
        }
        if let Some(client) = accepted {
            return Response::from_websocket(client);
        }
        match outcome.response {
            Some(response) => reply::core(response, cors),
            None => self.internal_error(
                &worker::Error::RustError("the room gave no answer".into()),
                cors,
            ),
        }
    }

    /// A frame (`Some`) or the end (`None`) of a socket.
    async fn on_socket(&self, ws: WebSocket, frame: Option<WireFrame>) -> Result<()> {
        let now = runtime::now();
        let Some(attachment) = attachment(&ws) else {
            // Not a socket this room accepted (or its attachment is gone).
            if frame.is_some() {
                close_internal(&ws);
            }
            return Ok(());
        };
        let socket = attachment.socket;
        let span = tracing::info_span!("socket", socket = %socket);
        async {
            let (restored, _) = match self.wake(now).await {
                Ok(woke) => woke,
                Err(StorageFailed(_)) => return Ok(()),
            };
            let input = match frame {
                Some(frame) => Input::Frame { socket, frame },
                None => {
                    self.sockets.borrow_mut().remove(&socket);
                    Input::Closed { socket }
                }
            };
            let effects = self.step(restored, input);
            let _ = self.apply(effects).await;
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn on_alarm(&self) -> Result<Response> {
        let now = runtime::now();
        let (restored, _) = self.wake(now).await.map_err(|StorageFailed(e)| e)?;
        let input = Input::Alarm {
            pings: self.pings(),
            random: runtime::random_bytes()?,
        };
        let effects = self.step(restored, input);
        // An error makes the runtime retry the alarm.
        let outcome = self.apply(effects).await.map_err(|StorageFailed(e)| e)?;
        // Every socket effect is done: the callback runs after them, and the
        // room already wrote when to retry, so a lost answer costs nothing.
        for (url, body, attempt) in outcome.notify {
            let status = self.notify(&url, &body).await;
            let effects = self.step(Vec::new(), Input::NotifyResult { attempt, status });
            self.apply(effects).await.map_err(|StorageFailed(e)| e)?;
        }
        Response::empty()
    }

    // --- the room -----------------------------------------------------------

    /// The runtime's last auto-response time of each socket that had one.
    fn pings(&self) -> Vec<(SocketId, Millis)> {
        self.state
            .get_websockets()
            .iter()
            .filter_map(|ws| {
                Some((
                    attachment(ws)?.socket,
                    runtime::last_auto_response(&self.state, ws)?,
                ))
            })
            .collect()
    }

    /// Makes sure the room is in memory. Warm: no storage read. Cold: one read,
    /// then [`Room::restore`] from what the runtime kept; returns its effects
    /// and how long the read took.
    async fn wake(
        &self,
        now: Millis,
    ) -> std::result::Result<(Vec<Effect>, Option<Millis>), StorageFailed> {
        if self.room.borrow().is_some() {
            return Ok((Vec::new(), None));
        }
        let read_started = runtime::now();
        let (record, delivered, alarm) = match self.read_kept().await {
            Ok(kept) => kept,
            Err(e) => {
                self.fail(&e);
                return Err(StorageFailed(e));
            }
        };
        let storage_ms = runtime::now().minus(read_started);
        // Storage reads hold the input gate, so no other event restored the
        // room meanwhile; keep the first restore if that ever changes.
        if self.room.borrow().is_some() {
            return Ok((Vec::new(), Some(storage_ms)));
        }
        // Sockets the room closed stay listed until their close handshake
        // ends; only open ones are restored.
        let mut sockets = Vec::new();
        let mut known = self.sockets.borrow_mut();
        known.clear();
        for ws in self.state.get_websockets() {
            if ws.as_ref().ready_state() != worker::web_sys::WebSocket::OPEN {
                continue;
            }
            let Some(attachment) = attachment(&ws) else {
                continue;
            };
            known.insert(attachment.socket, ws.clone());
            sockets.push(KeptSocket {
                attachment,
                last_auto_response: runtime::last_auto_response(&self.state, &ws),
            });
        }
        drop(known);
        let kept = Kept {
            record,
            delivered,
            sockets,
            alarm,
        };
        let (room, effects) = Room::restore(self.config, now, kept);
        *self.room.borrow_mut() = Some(room);
        Ok((effects, Some(storage_ms)))
    }

    /// The record, the delivered mark and the alarm: every key in one read
    /// (the hot state, the delivered mark, the chunks of remembered ids).
    async fn read_kept(&self) -> Result<(Option<JobRecord>, Option<Seq>, Option<Millis>)> {
        let storage = self.state.storage();
        let stored = storage.list().await?;
        let mut texts = Vec::new();
        let mut delivered = None;
        stored.for_each(&mut |value, key| {
            let Some(key) = key.as_string() else { return };
            if key == DELIVERED_KEY {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                {
                    delivered = value
                        .as_f64()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .map(|n| Seq(n as u64));
                }
            } else if let Some(text) = value.as_string() {
                texts.push((key, text));
            }
        });
        let record = storage::read_stored(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        #[allow(clippy::cast_sign_loss)]
        let alarm = storage
            .get_alarm()
            .await?
            .filter(|at| *at >= 0)
            .map(|at| Millis(at as u64));
        Ok((record, delivered, alarm))
    }

    /// Runs one input; the restore effects (if any) come first.
    fn step(&self, mut effects: Vec<Effect>, input: Input) -> Vec<Effect> {
        let now = runtime::now();
        if let Some(room) = self.room.borrow_mut().as_mut() {
            effects.extend(room.handle(now, input));
        }
        effects
    }

    // --- effects → runtime calls ----------------------------------------------

    async fn apply(&self, effects: Vec<Effect>) -> std::result::Result<Outcome, StorageFailed> {
        let mut outcome = Outcome::default();
        for effect in effects {
            match effect {
                Effect::Respond(response) => outcome.response = Some(response),
                Effect::Accept { socket, attachment } => match self.accept(socket, &attachment) {
                    Ok(client) => outcome.accept = Some((socket, Some(client))),
                    Err(e) => {
                        tracing::error!(socket = %socket, error = %e, event = "accept_failed");
                        outcome.accept = Some((socket, None));
                    }
                },
                Effect::Attach { socket, attachment } => {
                    if let Some(ws) = self.socket(socket) {
                        if let Err(e) = attach(&ws, &attachment) {
                            tracing::warn!(socket = %socket, error = %e, event = "attach_failed");
                        }
                    }
                }
                Effect::MarkDelivered(_) if bench_cuts::write() => {}
                Effect::MarkDelivered(seq) => {
                    #[allow(clippy::cast_precision_loss)]
                    let mark = seq.0 as f64;
                    if let Err(e) = self.state.storage().put(DELIVERED_KEY, mark).await {
                        // Only costs a redundant snapshot on the next wake.
                        tracing::warn!(error = %e, event = "delivered_mark_failed");
                    }
                }
                Effect::Send { socket, text } => {
                    if let Some(ws) = self.socket(socket) {
                        if let Err(e) = ws.send_with_str(&text) {
                            tracing::warn!(socket = %socket, error = %e, event = "send_failed");
                        }
                    }
                }
                Effect::Close {
                    socket,
                    code,
                    reason,
                } => {
                    if let Some(ws) = self.socket(socket) {
                        let _ = ws.close(Some(code.as_u16()), Some(reason));
                    }
                    self.sockets.borrow_mut().remove(&socket);
                }
                Effect::Persist(_) if bench_cuts::write() => {}
                Effect::Persist(write) => {
                    // One `put` of every key: atomic, so a crash loses all
                    // of the write or none of it.
                    let values = js_sys::Object::new();
                    let write = write
                        .entries
                        .iter()
                        .try_for_each(|(key, value)| {
                            js_sys::Reflect::set(&values, &key.into(), &value.into()).map(|_| ())
                        })
                        .map_err(worker::Error::from);
                    let write = match write {
                        Ok(()) => self.state.storage().put_multiple_raw(values).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = write {
                        self.fail(&e);
                        return Err(StorageFailed(e));
                    }
                }
                Effect::Forget => {
                    let storage = self.state.storage();
                    let forget = match storage.delete_alarm().await {
                        Ok(()) => storage.delete_all().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = forget {
                        self.fail(&e);
                        return Err(StorageFailed(e));
                    }
                }
                Effect::SetAlarm(_) if bench_cuts::alarm() => {}
                Effect::SetAlarm(at) => {
                    let storage = self.state.storage();
                    let set = match at {
                        Some(at) => {
                            #[allow(clippy::cast_precision_loss)]
                            let date = js_sys::Date::new(&js_sys::Number::from(at.0 as f64));
                            storage.set_alarm(worker::ScheduledTime::new(date)).await
                        }
                        None => storage.delete_alarm().await,
                    };
                    if let Err(e) = set {
                        // Everything before it was written and sent: answer
                        // as the room did, and let the next event (which
                        // restores the room) set the alarm again.
                        tracing::error!(error = %e, event = "alarm_write_failed");
                        self.room.borrow_mut().take();
                    }
                }
                Effect::Log(entry) => emit(&entry),
                Effect::Notify { url, body, attempt } => {
                    outcome.notify.push((url, body, attempt));
                }
            }
        }
        Ok(outcome)
    }

    /// One callback attempt: POST the body signed with the primary producer
    /// secret, waiting at most the core's attempt timeout. The status, or
    /// `None` if no answer came. Never logs the URL or the secret.
    async fn notify(&self, url: &str, body: &str) -> Option<u16> {
        let secret = match self.env.secret(PRODUCER_SECRET) {
            Ok(s) => s.to_string(),
            Err(_) => {
                tracing::error!(event = "callback_no_secret");
                return None;
            }
        };
        let headers = worker::Headers::new();
        let signature = callback::signature(secret.as_bytes(), runtime::now(), body);
        headers.set("content-type", "application/json").ok()?;
        headers.set(callback::SIGNATURE_HEADER, &signature).ok()?;
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_redirect(worker::RequestRedirect::Manual)
            .with_body(Some(body.into()));
        let request = worker::Request::new_with_init(url, &init).ok()?;
        let timeout = u32::try_from(callback::ATTEMPT_TIMEOUT.0).unwrap_or(u32::MAX);
        let signal =
            worker::AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(timeout));
        match worker::Fetch::Request(request)
            .send_with_signal(&signal)
            .await
        {
            Ok(response) => Some(response.status_code()),
            Err(_) => None,
        }
    }

    fn accept(&self, socket: SocketId, attachment: &Attachment) -> Result<WebSocket> {
        let pair = WebSocketPair::new()?;
        let tag = socket.to_string();
        self.state
            .accept_websocket_with_tags(&pair.server, &[tag.as_str()]);
        attach(&pair.server, attachment)?;
        self.sockets.borrow_mut().insert(socket, pair.server);
        Ok(pair.client)
    }

    /// The socket, from those known in memory; one runtime call (by its tag)
    /// only if it is not known.
    fn socket(&self, socket: SocketId) -> Option<WebSocket> {
        if let Some(ws) = self.sockets.borrow().get(&socket) {
            return Some(ws.clone());
        }
        self.state
            .get_websockets_with_tag(&socket.to_string())
            .into_iter()
            .next()
    }

    /// Storage failed: close every socket with the internal-error code and
    /// drop the room, so the next event starts from storage again.
    fn fail(&self, error: &worker::Error) {
        tracing::error!(error = %error, event = "storage_failed");
        self.room.borrow_mut().take();
        self.sockets.borrow_mut().clear();
        for ws in self.state.get_websockets() {
            close_internal(&ws);
        }
    }

    fn internal_error(&self, error: &worker::Error, cors: Option<&str>) -> Result<Response> {
        tracing::error!(error = %error, event = "request_failed");
        reply::error(&gateway_core::HttpError::internal(), cors)
    }

    fn job_id(&self) -> String {
        if let Ok(room) = self.room.try_borrow() {
            if let Some(job) = room.as_ref().and_then(Room::job) {
                return job.job_id.clone();
            }
        }
        self.state.id().name().unwrap_or_default()
    }
}

fn attach(ws: &WebSocket, attachment: &Attachment) -> Result<()> {
    let text =
        serde_json::to_string(attachment).map_err(|e| worker::Error::RustError(e.to_string()))?;
    ws.serialize_attachment(text)
}

fn attachment(ws: &WebSocket) -> Option<Attachment> {
    let text: String = ws.deserialize_attachment().ok()??;
    serde_json::from_str(&text).ok()
}

fn close_internal(ws: &WebSocket) {
    let error = GatewayError::Internal;
    let _ = ws.close(
        Some(error.close_code().as_u16()),
        Some(error.close_reason()),
    );
}

/// One core log line as a `tracing` event with structured fields.
fn emit(entry: &Log) {
    let socket = entry.socket.map(|s| s.to_string());
    let seq = entry.seq.map(|s| s.0);
    let close_code = entry.close_code.map(gateway_core::CloseCode::as_u16);
    match entry.level {
        Level::Info => tracing::info!(
            event = entry.event,
            socket,
            seq,
            close_code,
            value = entry.value
        ),
        Level::Warn => tracing::warn!(
            event = entry.event,
            socket,
            seq,
            close_code,
            value = entry.value
        ),
    }
}
