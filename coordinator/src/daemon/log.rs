//! The structured event log: one JSON object per line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A shareable sink of JSON-lines events (`{"time":..,"event":..,...}`).
#[derive(Clone)]
pub struct EventLog {
    sink: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl EventLog {
    /// A log that writes every event to `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> EventLog {
        EventLog {
            sink: Some(Arc::new(Mutex::new(sink))),
        }
    }

    /// A log that drops everything.
    pub fn disabled() -> EventLog {
        EventLog { sink: None }
    }

    /// Writes one event; `fields` (a JSON object) is merged into the line. Logging never
    /// fails the caller: a sink that cannot be written is ignored.
    pub fn event(&self, event: &str, fields: serde_json::Value) {
        let Some(sink) = &self.sink else { return };
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut line = serde_json::json!({ "time": time, "event": event });
        if let (Some(obj), serde_json::Value::Object(extra)) = (line.as_object_mut(), fields) {
            obj.extend(extra);
        }
        if let Ok(mut w) = sink.lock() {
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }
}
