use std::time::{Duration, Instant, SystemTime};

use oci::Digest;
use solver::{Event, LogStream, MissReason};

use super::plain::{State, flush_partial, plain};
use super::rawjson::raw_json;
use super::tty::{Board, Screen, clean, fit, frame};
use super::warnings_text;

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

fn status(n: u8, id: &str, current: u64, total: Option<u64>, done: bool) -> Event {
    Event::VertexStatus {
        digest: digest(n),
        status: solver::Status::new(id, current, total, done),
    }
}

#[test]
fn tty_shows_parts_with_bytes_under_their_step() {
    let events = vec![
        started(1, "exporting to image", "linux/amd64"),
        status(1, "exporting layers", 0, None, false),
        status(1, "exporting layers", 2_500_000, None, false),
        status(1, "exporting manifest sha256:abc", 0, None, true),
        status(1, "sha256:0123456789ab", 1_000, Some(3_000), false),
        status(1, "sha256:0123456789ab", 2_000, Some(3_000), false),
    ];
    let (b, now) = board(&events);
    let lines = frame(&b, now, SCREEN, false);
    let under: Vec<&str> = lines[2..].iter().map(String::as_str).collect();
    assert_eq!(
        under,
        [
            "    => exporting layers 2.5MB 0.4s",
            "    => exporting manifest sha256:abc done",
            "    => sha256:0123456789ab 2kB / 3kB 0.1s",
        ],
        "{lines:#?}"
    );
    let mut events = events;
    events.push(status(1, "sha256:0123456789ab", 3_000, Some(3_000), true));
    let (b, now) = board(&events);
    let lines = frame(&b, now, SCREEN, true);
    assert_eq!(lines[4], "    => sha256:0123456789ab 3kB / 3kB 0.2s done");
}

#[test]
fn plain_prints_a_part_at_its_start_once_a_second_and_at_its_end() {
    let mut st = State::default();
    let mut out = plain(&mut st, &started(1, "exporting to image", "linux/amd64"));
    for i in 0..50 {
        out += &plain(
            &mut st,
            &status(1, "exporting layers", i * 1000, None, false),
        );
    }
    out += &plain(&mut st, &status(1, "exporting layers", 50_000, None, true));
    out += &plain(&mut st, &status(1, "naming to x", 0, None, true));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "#1 exporting to image");
    assert_eq!(lines[1], "#1 exporting layers", "{out}");
    // The rest came within a second: no line until the end.
    assert!(lines[2].starts_with("#1 exporting layers 50kB "), "{out}");
    assert!(lines[2].ends_with("s done"), "{out}");
    assert_eq!(lines[3], "#1 naming to x done");
    assert_eq!(lines.len(), 4, "{out}");
}

#[test]
fn rawjson_status_carries_bytes_and_null_totals() {
    let line = raw_json(
        &status(1, "sha256:0123456789ab", 5, Some(9), false),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "status");
    assert_eq!(
        (v["current"].clone(), v["total"].clone()),
        (5.into(), 9.into())
    );
    assert_eq!(v["done"], false);
    let note = raw_json(
        &status(1, "naming to x", 0, None, true),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&note).unwrap();
    assert!(v["total"].is_null(), "{note}");
}

fn warning(rule: &str, message: &str, line: u32) -> solver::Warning {
    solver::Warning {
        rule: rule.into(),
        message: message.into(),
        url: Some(format!(
            "https://docs.docker.com/go/dockerfile/rule/{rule}/"
        )),
        line: Some(line),
    }
}

#[test]
fn warnings_print_one_line_each_then_how_many() {
    let casing = warning(
        "FromAsCasing",
        "'as' and 'FROM' keywords' casing do not match",
        1,
    );
    assert_eq!(
        warnings_text(std::slice::from_ref(&casing)),
        " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n\
         1 warning found (use --call=check for details)\n"
    );
    let mut lineless = warning("Other", "about the whole file", 0);
    lineless.line = None;
    assert_eq!(
        warnings_text(&[casing, lineless]),
        " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n \
         - Other: about the whole file\n\
         2 warnings found (use --call=check for details)\n"
    );
    assert_eq!(warnings_text(&[]), "");
}

#[test]
fn rawjson_warning_carries_rule_message_url_and_line() {
    let e = Event::Warning {
        digest: digest(7),
        warning: warning("FromAsCasing", "casing", 3),
    };
    let v: serde_json::Value =
        serde_json::from_str(&raw_json(&e, SystemTime::UNIX_EPOCH).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"v": 1, "event": "warning", "time": 0.0,
            "vertex": digest(7).to_string(), "rule": "FromAsCasing", "message": "casing",
            "url": "https://docs.docker.com/go/dockerfile/rule/FromAsCasing/", "line": 3})
    );
}
