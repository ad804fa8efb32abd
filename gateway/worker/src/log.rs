//! `tracing` for Workers: every event becomes one JSON line on the console
//! (Workers Logs indexes its fields), carrying the fields of its spans
//! (`job_id`, `socket`, …). Nothing here ever sees a token or a query string:
//! only the fields the adapter names are recorded.
//!
//! A span's fields are rendered to JSON once, when the span is made; an
//! event appends its spans' rendered text and its own fields to one buffer
//! and hands that to `console.log` (no map, no clone per line).

use std::fmt::{Debug, Write as _};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the console subscriber once per isolate (none when a benchmark
/// build leaves the log lines out, [`crate::bench_cuts`]).
pub fn init() {
    if crate::bench_cuts::log() {
        return;
    }
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.replace(true) {
            let _ = tracing::subscriber::set_global_default(ConsoleJson::default());
        }
    });
}

/// A live span: its fields as JSON members (`"a":1,"b":"x"`), its parent,
/// and how many handles to it exist.
struct SpanData {
    fields: String,
    parent: Option<Id>,
    refs: usize,
}

#[derive(Default)]
struct Spans {
    /// Slot `i` holds span id `i + 1`.
    slots: Vec<Option<SpanData>>,
    free: Vec<usize>,
    /// Entered spans, innermost last (one isolate runs one thread).
    stack: Vec<Id>,
}

impl Spans {
    fn get(&self, id: &Id) -> Option<&SpanData> {
        let slot = usize::try_from(id.into_u64()).ok()?.checked_sub(1)?;
        self.slots.get(slot)?.as_ref()
    }

    fn get_mut(&mut self, id: &Id) -> Option<&mut SpanData> {
        let slot = usize::try_from(id.into_u64()).ok()?.checked_sub(1)?;
        self.slots.get_mut(slot)?.as_mut()
    }
}

/// The subscriber: span storage behind one lock (uncontended in wasm).
#[derive(Default)]
struct ConsoleJson {
    spans: Mutex<Spans>,
}

impl ConsoleJson {
    fn spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Appends `,"name":value` members to a JSON buffer.
struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        if !self.0.is_empty() && !self.0.ends_with('{') {
            self.0.push(',');
        }
        push_json_str(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.0, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.key(field);
        push_json_str(self.0, &format!("{value:?}"));
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                let byte = u32::from(c);
                for nibble in [byte >> 4, byte & 0xf] {
                    out.push(char::from_digit(nibble, 16).unwrap_or('0'));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Subscriber for ConsoleJson {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = String::new();
        attrs.record(&mut JsonFields(&mut fields));
        let mut spans = self.spans();
        let parent = if attrs.is_root() {
            None
        } else {
            attrs
                .parent()
                .cloned()
                .or_else(|| spans.stack.last().cloned())
        };
        if let Some(p) = &parent {
            if let Some(data) = spans.get_mut(p) {
                data.refs += 1;
            }
        }
        let data = SpanData {
            fields,
            parent,
            refs: 1,
        };
        let slot = if let Some(slot) = spans.free.pop() {
            spans.slots[slot] = Some(data);
            slot
        } else {
            spans.slots.push(Some(data));
            spans.slots.len() - 1
        };
        Id::from_u64(slot as u64 + 1)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(data) = self.spans().get_mut(span) {
            values.record(&mut JsonFields(&mut data.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = *event.metadata().level();
        let mut line = String::with_capacity(160);
        line.push_str("{\"level\":\"");
        line.push_str(match level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        });
        line.push('"');
        {
            let spans = self.spans();
            let mut chain = Vec::new();
            let mut next = if event.is_root() {
                None
            } else {
                event
                    .parent()
                    .cloned()
                    .or_else(|| spans.stack.last().cloned())
            };
            while let Some(id) = next {
                let Some(data) = spans.get(&id) else { break };
                chain.push(data);
                next = data.parent.clone();
            }
            for data in chain.iter().rev().filter(|d| !d.fields.is_empty()) {
                line.push(',');
                line.push_str(&data.fields);
            }
        }
        event.record(&mut JsonFields(&mut line));
        line.push('}');
        let text = wasm_bindgen::JsValue::from_str(&line);
        if level == Level::ERROR {
            worker::web_sys::console::error_1(&text);
        } else if level == Level::WARN {
            worker::web_sys::console::warn_1(&text);
        } else {
            worker::web_sys::console::log_1(&text);
        }
    }

    fn enter(&self, span: &Id) {
        self.spans().stack.push(span.clone());
    }

    fn exit(&self, span: &Id) {
        let mut spans = self.spans();
        if let Some(at) = spans.stack.iter().rposition(|s| s == span) {
            spans.stack.remove(at);
        }
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some(data) = self.spans().get_mut(id) {
            data.refs += 1;
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let mut closing = Some(id);
        let mut closed = false;
        let mut spans = self.spans();
        // Dropping a span releases its hold on its parent, and so on up.
        while let Some(id) = closing.take() {
            let Some(data) = spans.get_mut(&id) else {
                break;
            };
            data.refs -= 1;
            if data.refs > 0 {
                break;
            }
            let parent = data.parent.clone();
            if let Some(slot) = usize::try_from(id.into_u64())
                .ok()
                .and_then(|s| s.checked_sub(1))
            {
                spans.slots[slot] = None;
                spans.free.push(slot);
            }
            closed = true;
            closing = parent;
        }
        closed
    }
}
