//! The flags that shape every `RUN` step of a build, in buildx's syntax:
//! `--add-host NAME:IP`, `--ulimit NAME=SOFT[:HARD]` and `--shm-size SIZE`.

use export::output::SpecError;
use graph::op::{HostEntry, Ulimit};

/// The resource names `--ulimit` takes (docker's list).
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--add-host NAME:IP` (or `NAME=IP`); an IPv6 address keeps its colons
/// (`db:fd00::1`), and may be bracketed (`db:[fd00::1]`).
pub fn parse_add_host(s: &str) -> Result<HostEntry, SpecError> {
    let bad = |why: &str| {
        SpecError::new(
            format!("invalid --add-host {s:?}: {why}"),
            "write --add-host NAME:IP, e.g. --add-host db:10.0.0.5",
        )
    };
    let (name, ip) = match s.split_once('=') {
        Some(pair) => pair,
        None => s.split_once(':').ok_or_else(|| bad("missing :IP"))?,
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the name is empty or holds a space"));
    }
    if ip == "host-gateway" {
        return Err(bad(
            "host-gateway is not supported: steps have no gateway of their own to name",
        ));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let ip = bare
        .parse()
        .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
    Ok(HostEntry {
        name: name.to_owned(),
        ip,
    })
}

/// `--ulimit NAME=SOFT[:HARD]` (HARD is SOFT when not given; -1 is unlimited).
pub fn parse_ulimit(s: &str) -> Result<Ulimit, SpecError> {
    let bad = |why: String| {
        SpecError::new(
            format!("invalid --ulimit {s:?}: {why}"),
            format!(
                "write --ulimit NAME=SOFT[:HARD], e.g. nofile=1024:2048; NAME is one of {}",
                ULIMITS.join(", ")
            ),
        )
    };
    let (name, values) = s.split_once('=').ok_or_else(|| bad("missing =".into()))?;
    if !ULIMITS.contains(&name) {
        return Err(bad(format!("unknown resource {name:?}")));
    }
    let number = |v: &str| match v {
        "-1" => Ok(u64::MAX),
        _ => v
            .parse::<u64>()
            .map_err(|_| bad(format!("{v:?} is not a number"))),
    };
    let (soft, hard) = match values.split_once(':') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let v = number(values)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(bad(format!(
            "the soft limit {soft} is above the hard limit {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.to_owned(),
        soft,
        hard,
    })
}

/// `--shm-size`: bytes, or a number with `b`, `k`, `m` or `g` (powers of 1024, as
/// docker reads them; upper case too, and an optional trailing `b`: `64mb`).
pub fn parse_shm_size(s: &str) -> Result<u64, SpecError> {
    parse_size("--shm-size", s)
}

/// A size as `--shm-size` takes one, for the option `what` (named in errors).
pub fn parse_size(what: &str, s: &str) -> Result<u64, SpecError> {
    let bad = |why: &str| {
        SpecError::new(
            format!("invalid {what} {s:?}: {why}"),
            "write a size such as 64m, 1g or 67108864",
        )
    };
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| bad("not a size"))?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return Err(bad("the unit is not b, k, m or g")),
    };
    let bytes = n.checked_mul(1 << shift).ok_or_else(|| bad("too large"))?;
    if bytes == 0 {
        return Err(bad("the size must be above 0"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_takes_names_and_addresses() {
        let h = parse_add_host("db:10.0.0.5").unwrap();
        assert_eq!(
            (h.name.as_str(), h.ip.to_string()),
            ("db", "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("v6:fd00::1").unwrap().ip.to_string(),
            "fd00::1"
        );
        assert_eq!(parse_add_host("v6=[::1]").unwrap().ip.to_string(), "::1");
        for bad in [
            "db",
            "db:",
            ":1.2.3.4",
            "db:nope",
            "db:host-gateway",
            "a b:1.2.3.4",
        ] {
            let e = parse_add_host(bad).unwrap_err();
            assert!(e.message.contains("--add-host"), "{bad}: {e}");
        }
    }

    #[test]
    fn ulimits_parse_as_docker_does() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = parse_ulimit("nproc=64").unwrap();
        assert_eq!((u.soft, u.hard), (64, 64));
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, u64::MAX);
        for bad in [
            "nofile",
            "files=1",
            "nofile=x",
            "nofile=10:5",
            "nofile=1:2:3",
        ] {
            let e = parse_ulimit(bad).unwrap_err();
            assert!(e.message.contains("--ulimit"), "{bad}: {e}");
        }
    }

    #[test]
    fn shm_sizes_take_docker_units() {
        for (s, want) in [
            ("67108864", 64 << 20),
            ("128m", 128 << 20),
            ("1G", 1 << 30),
            ("512k", 512 << 10),
            ("64mb", 64 << 20),
            ("100b", 100),
        ] {
            assert_eq!(parse_shm_size(s).unwrap(), want, "{s}");
        }
        for bad in ["", "m", "0", "1t", "-1", "1.5g", "99999999999999g"] {
            assert!(parse_shm_size(bad).is_err(), "{bad}");
        }
    }
}
