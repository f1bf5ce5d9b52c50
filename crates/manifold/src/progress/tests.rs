use std::time::{Duration, Instant, SystemTime};

use oci::Digest;
use solver::{Event, LogStream, MissReason};

use super::plain::{State, flush_partial, plain};
use super::rawjson::raw_json;
use super::tty::{Board, Screen, clean, fit, frame};

fn digest(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

const SCREEN: Screen = Screen {
    width: 60,
    height: None,
    colour: false,
};

fn started(n: u8, name: &str, platform: &str) -> Event {
    Event::VertexStarted {
        digest: digest(n),
        name: name.into(),
        platform: Some(oci::Platform::parse(platform).unwrap()),
    }
}

fn log(n: u8, text: &str) -> Event {
    Event::VertexLog {
        digest: digest(n),
        stream: LogStream::Stdout,
        bytes: text.as_bytes().to_vec(),
    }
}

/// A board after `events`, each one a tenth of a second after the last.
fn board(events: &[Event]) -> (Board, Instant) {
    let t0 = Instant::now();
    let mut b = Board::new(t0);
    let mut t = t0;
    for e in events {
        t += Duration::from_millis(100);
        b.apply(e, t);
    }
    (b, t)
}

#[test]
fn frame_shows_steps_platforms_markers_and_output_tails() {
    let mut events = vec![
        Event::VertexCached {
            digest: digest(1),
            name: "[stage-0 1/2] FROM busybox".into(),
            key: digest(9),
        },
        started(2, "[stage-0 2/2] RUN make", "linux/amd64"),
        started(3, "[stage-0 2/2] RUN make", "linux/386"),
    ];
    for i in 0..8 {
        events.push(log(2, &format!("line {i}\n")));
    }
    events.push(log(2, "partial"));
    events.push(Event::VertexCompleted {
        digest: digest(3),
        duration: Duration::from_millis(1500),
    });
    let (b, now) = board(&events);
    let lines = frame(&b, now, SCREEN, false);
    assert_eq!(
        lines,
        [
            "[+] Building 1.3s (2/3)",
            "#1 [stage-0 1/2] FROM busybox                         CACHED",
            "#2 [linux/amd64 stage-0 2/2] RUN make                   1.1s",
            "    > line 3",
            "    > line 4",
            "    > line 5",
            "    > line 6",
            "    > line 7",
            "    > partial",
            "#3 [linux/386 stage-0 2/2] RUN make                1.5s DONE",
        ]
    );
}

#[test]
fn a_name_that_carries_its_platform_keeps_it_once() {
    let (b, now) = board(&[
        started(1, "[linux/386 stage-0 2/2] RUN make", "linux/386"),
        started(2, "[linux/amd64 stage-0 2/2] RUN make", "linux/amd64"),
    ]);
    let lines = frame(&b, now, SCREEN, false);
    assert!(
        lines[1].starts_with("#1 [linux/386 stage-0 2/2] RUN make "),
        "{lines:#?}"
    );
}

#[test]
fn final_frame_says_how_the_build_ended_and_keeps_the_failed_output() {
    let (b, now) = board(&[
        started(1, "[2/2] RUN false", "linux/amd64"),
        log(1, "about to fail\n"),
        Event::VertexFailed {
            digest: digest(1),
            error: "exit code 1".into(),
        },
        Event::CacheMiss {
            digest: digest(2),
            key: digest(9),
            reason: MissReason::NewStep,
        },
        Event::VertexCancelled { digest: digest(2) },
    ]);
    let lines = frame(&b, now, SCREEN, true);
    assert_eq!(
        lines,
        [
            "[+] Building 0.5s (0/1) ERROR",
            "#1 [2/2] RUN false                                0.2s ERROR",
            "    > about to fail",
        ]
    );
}

#[test]
fn a_live_frame_fits_the_terminal_height() {
    let mut events = Vec::new();
    for n in 1..=5 {
        events.push(started(n, &format!("step {n}"), "linux/amd64"));
        events.push(log(n, "a\nb\nc\n"));
    }
    for n in 1..=3 {
        events.push(Event::VertexCompleted {
            digest: digest(n),
            duration: Duration::from_secs(1),
        });
    }
    let (b, now) = board(&events);
    let screen = Screen {
        height: Some(7),
        ..SCREEN
    };
    let lines = frame(&b, now, screen, false);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[1].starts_with("#4 step 4"), "{lines:#?}");
    assert_eq!(
        frame(&b, now, screen, true).len(),
        6,
        "the final frame shows every step"
    );
}

#[test]
fn output_lines_are_cleaned_and_lines_cut_to_the_width() {
    assert_eq!(clean(b"\x1b[1;31mred\x1b[0m\tx"), "red     x");
    assert_eq!(clean(b"10%\r50%\r100%\r"), "100%");
    assert_eq!(fit("abcdef", 4), "abc…");
    assert_eq!(fit("abc", 4), "abc");
}

#[test]
fn rawjson_objects_carry_version_kind_time_and_vertex() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1500);
    let e = Event::CacheMiss {
        digest: digest(1),
        key: digest(2),
        reason: MissReason::NewStep,
    };
    let v: serde_json::Value = serde_json::from_str(&raw_json(&e, t).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"v": 1, "event": "cache_miss", "time": 1.5,
            "vertex": digest(1).to_string(), "key": digest(2).to_string(),
            "cause": "new_step", "reason": "no earlier build of this step"})
    );
}

#[test]
fn plain_numbers_steps_and_prefixes_output() {
    let mut st = State::default();
    let text: String = [
        started(1, "[1/1] RUN echo", "linux/amd64"),
        log(1, "hi\nthere"),
    ]
    .iter()
    .map(|e| plain(&mut st, e))
    .collect();
    assert!(text.starts_with("#1 [1/1] RUN echo\n#1 0.0"), "{text}");
    assert!(text.ends_with(" hi\n"), "{text}");
    assert_eq!(flush_partial(&mut st), "#1 there\n");
}
