//! Progress events on the wire: the solver's [`Event`]s flattened into
//! [`WireEvent`]s by the daemon, and back into events by the client.

use std::time::Duration;

use oci::{Digest, Platform};
use solver::{Event, LogStream, MissReason};

use crate::protocol::WireEvent;

impl WireEvent {
    /// The wire form of `e`; `None` for events a client does not show.
    pub fn from_event(e: &Event) -> Option<WireEvent> {
        let blank = |kind: &str, vertex: &oci::Digest| WireEvent {
            kind: kind.to_owned(),
            vertex: vertex.to_string(),
            name: String::new(),
            platform: None,
            stderr: false,
            data: Vec::new(),
            seconds: 0.0,
            text: String::new(),
            current: 0,
            total: None,
            done: false,
            url: None,
            line: None,
        };
        Some(match e {
            Event::VertexStarted {
                digest,
                name,
                platform,
            } => WireEvent {
                name: name.clone(),
                platform: platform.as_ref().map(ToString::to_string),
                ..blank("started", digest)
            },
            Event::VertexCached { digest, name, key } => WireEvent {
                name: name.clone(),
                text: key.to_string(),
                ..blank("cached", digest)
            },
            Event::VertexLog {
                digest,
                stream,
                bytes,
            } => WireEvent {
                stderr: *stream == solver::LogStream::Stderr,
                data: bytes.clone(),
                ..blank("log", digest)
            },
            Event::VertexCompleted { digest, duration } => WireEvent {
                seconds: duration.as_secs_f64(),
                ..blank("completed", digest)
            },
            Event::VertexFailed { digest, error } => WireEvent {
                text: error.clone(),
                ..blank("failed", digest)
            },
            Event::VertexCancelled { digest } => blank("cancelled", digest),
            Event::VertexStatus { digest, status } => WireEvent {
                name: status.id.clone(),
                current: status.current,
                total: status.total,
                done: status.done,
                ..blank("status", digest)
            },
            Event::CacheMiss {
                digest,
                key,
                reason,
            } => WireEvent {
                name: key.to_string(),
                text: reason.to_string(),
                ..blank("cache_miss", digest)
            },
            Event::Warning { digest, warning } => WireEvent {
                name: warning.rule.clone(),
                text: warning.message.clone(),
                url: warning.url.clone(),
                line: warning.line,
                ..blank("warning", digest)
            },
            _ => return None,
        })
    }

    /// The event this stands for; `None` for a kind or digest this side does not
    /// know (a newer daemon's), which the client skips.
    pub fn into_event(self) -> Option<Event> {
        let e = self;
        let digest: Digest = e.vertex.parse().ok()?;
        Some(match e.kind.as_str() {
            "started" => Event::VertexStarted {
                digest,
                name: e.name,
                platform: e.platform.and_then(|p| Platform::parse(&p).ok()),
            },
            "cached" => Event::VertexCached {
                digest,
                name: e.name,
                key: e.text.parse().ok()?,
            },
            "log" => Event::VertexLog {
                digest,
                stream: if e.stderr {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                },
                bytes: e.data,
            },
            "completed" => Event::VertexCompleted {
                digest,
                duration: Duration::from_secs_f64(e.seconds.max(0.0)),
            },
            "failed" => Event::VertexFailed {
                digest,
                error: e.text,
            },
            "cancelled" => Event::VertexCancelled { digest },
            "status" => Event::VertexStatus {
                digest,
                status: solver::Status::new(&e.name, e.current, e.total, e.done),
            },
            "cache_miss" => Event::CacheMiss {
                digest,
                key: e.name.parse().ok()?,
                reason: MissReason::Reported { text: e.text },
            },
            "warning" => Event::Warning {
                digest,
                warning: solver::Warning {
                    rule: e.name,
                    message: e.text,
                    url: e.url,
                    line: e.line,
                },
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_goes_to_the_client_whole() {
        let digest = oci::Digest::sha256(b"FROM scratch as base\n");
        let warning = solver::Warning {
            rule: "FromAsCasing".into(),
            message: "'as' and 'FROM' keywords' casing do not match".into(),
            url: Some("https://docs.docker.com/go/dockerfile/rule/from-as-casing/".into()),
            line: Some(1),
        };
        let e = Event::Warning {
            digest: digest.clone(),
            warning: warning.clone(),
        };
        let wire = WireEvent::from_event(&e).expect("warnings are sent");
        let json = serde_json::to_string(&wire).unwrap();
        let back: WireEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kind, "warning");
        assert_eq!(back.vertex, digest.to_string());
        assert_eq!(back.name, warning.rule);
        assert_eq!(back.text, warning.message);
        assert_eq!(back.url, warning.url);
        assert_eq!(back.line, Some(1));
        // Other events do not carry the warning's fields.
        let done = WireEvent::from_event(&Event::VertexCancelled { digest }).unwrap();
        assert!(!serde_json::to_string(&done).unwrap().contains("\"url\""));
    }

    #[test]
    fn every_event_a_client_shows_comes_back_as_it_was_sent() {
        let d = Digest::sha256(b"vertex");
        let key = Digest::sha256(b"key");
        let events = [
            Event::VertexStarted {
                digest: d.clone(),
                name: "[linux/arm64 2/3] RUN make".into(),
                platform: Some(Platform::parse("linux/arm64").unwrap()),
            },
            Event::VertexCached {
                digest: d.clone(),
                name: "COPY . /src".into(),
                key: key.clone(),
            },
            Event::VertexLog {
                digest: d.clone(),
                stream: LogStream::Stderr,
                bytes: b"warning: \xff bytes\n".to_vec(),
            },
            Event::VertexCompleted {
                digest: d.clone(),
                duration: Duration::from_millis(1250),
            },
            Event::VertexFailed {
                digest: d.clone(),
                error: "exit code 2".into(),
            },
            Event::VertexCancelled { digest: d.clone() },
            Event::VertexStatus {
                digest: d.clone(),
                status: solver::Status::new("sha256:0123456789ab", 10, Some(20), false),
            },
            Event::CacheMiss {
                digest: d.clone(),
                key: key.clone(),
                reason: MissReason::Reported {
                    text: "local context file b.txt changed".into(),
                },
            },
            Event::Warning {
                digest: d.clone(),
                warning: solver::Warning {
                    rule: "JSONArgsRecommended".into(),
                    message: "use JSON".into(),
                    url: None,
                    line: Some(3),
                },
            },
        ];
        for e in events {
            let wire = WireEvent::from_event(&e).expect("sent");
            let json = serde_json::to_vec(&wire).unwrap();
            let back: WireEvent = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.into_event().as_ref(), Some(&e));
        }
        // A kind from a newer daemon, or a vertex that is no digest, is skipped.
        let odd = WireEvent::from_event(&Event::VertexCancelled { digest: d }).unwrap();
        let newer = WireEvent {
            kind: "teleported".into(),
            ..odd.clone()
        };
        assert_eq!(newer.into_event(), None);
        let bad = WireEvent {
            vertex: "../etc".into(),
            ..odd
        };
        assert_eq!(bad.into_event(), None);
    }
}
