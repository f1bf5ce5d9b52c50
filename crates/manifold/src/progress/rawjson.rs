//! The `rawjson` progress format: one JSON object per event (docs/progress.md).

use std::time::SystemTime;

use oci::Digest;
use solver::{Event, LogStream, MissReason};

/// The version of the rawjson schema (docs/progress.md). Adding a field or an
/// event kind keeps it; changing or removing one raises it.
const RAWJSON_VERSION: u32 = 1;

/// One event as a line of JSON; `None` for event kinds this version does not
/// know (consumers are promised only documented kinds).
pub(super) fn raw_json(e: &Event, now: SystemTime) -> Option<String> {
    use serde_json::{Value, json};
    let (kind, digest, fields): (&str, &Digest, Value) = match e {
        Event::VertexStarted {
            digest,
            name,
            platform,
        } => (
            "started",
            digest,
            json!({"name": name, "platform": platform.as_ref().map(ToString::to_string)}),
        ),
        Event::VertexCached { digest, name, key } => (
            "cached",
            digest,
            json!({"name": name, "key": key.to_string()}),
        ),
        Event::CacheMiss {
            digest,
            key,
            reason,
        } => (
            "cache_miss",
            digest,
            json!({"key": key.to_string(), "cause": miss_cause(reason), "reason": reason.to_string()}),
        ),
        Event::VertexLog {
            digest,
            stream,
            bytes,
        } => (
            "log",
            digest,
            json!({"stream": if *stream == LogStream::Stdout { "stdout" } else { "stderr" },
                "data": String::from_utf8_lossy(bytes)}),
        ),
        Event::VertexCompleted { digest, duration } => (
            "completed",
            digest,
            json!({"seconds": duration.as_secs_f64()}),
        ),
        Event::VertexStatus { digest, status: s } => (
            "status",
            digest,
            json!({"id": s.id, "current": s.current, "total": s.total, "done": s.done}),
        ),
        Event::VertexFailed { digest, error } => ("failed", digest, json!({"error": error})),
        Event::VertexCancelled { digest } => ("cancelled", digest, json!({})),
        Event::Warning { digest, warning: w } => (
            "warning",
            digest,
            json!({"rule": w.rule, "message": w.message, "url": w.url, "line": w.line}),
        ),
        _ => return None,
    };
    let time = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut v =
        json!({"v": RAWJSON_VERSION, "event": kind, "time": time, "vertex": digest.to_string()});
    if let (Value::Object(v), Value::Object(fields)) = (&mut v, fields) {
        v.extend(fields);
    }
    Some(v.to_string())
}

/// A stable code for why a step missed the cache.
fn miss_cause(r: &MissReason) -> &'static str {
    match r {
        MissReason::NoCache => "no_cache",
        MissReason::IgnoreCache => "ignore_cache",
        MissReason::NewStep => "new_step",
        MissReason::ContentChanged { .. } => "content_changed",
        MissReason::InputChanged { .. } => "input_changed",
        MissReason::RecordMissing => "record_missing",
        MissReason::RecordCorrupt { .. } => "record_corrupt",
        MissReason::Unloadable => "unloadable",
        _ => "other",
    }
}
