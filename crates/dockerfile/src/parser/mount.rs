//! `RUN --mount=...` decoding and validation.

use super::ast::{Mount, MountType, Sharing};

/// Decode a `--mount` value. Values with `$` are kept in
/// [`Mount::unexpanded`] and checked after expansion.
pub(crate) fn parse_mount(raw: &str) -> Result<Mount, String> {
    let fields = csv_fields(raw).ok_or_else(|| {
        format!("invalid --mount value {raw:?}: malformed csv (misplaced or unbalanced quote)")
    })?;
    let mut m = Mount {
        raw: raw.to_owned(),
        ..Mount::default()
    };
    let mut ro: Option<bool> = None;
    let mut mode = false;
    let mut uid = false;
    let mut gid = false;
    let mut type_deferred = false;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => ro = Some(true),
                "readwrite" | "rw" => ro = Some(false),
                "required" => {
                    required_allowed(&m, &key)?;
                    m.required = true;
                }
                _ => {
                    return Err(format!(
                        "invalid --mount field {field:?}: expected key=value"
                    ));
                }
            }
            continue;
        };
        if key == "from"
            && let Some(i) = value.find('$')
            && i != value.len() - 1
        {
            return Err(format!(
                "invalid --mount from={value:?}: variables are not expanded in 'from', define an alias stage instead"
            ));
        }
        if value.contains('$') && key != "from" {
            if !KEYS.contains(&key.as_str()) {
                return Err(unexpected_key(&key, field));
            }
            type_deferred |= key == "type";
            mode |= key == "mode";
            uid |= key == "uid";
            gid |= key == "gid";
            m.unexpanded.push((key, value.to_owned()));
            continue;
        }
        let bad = |what: &str| format!("invalid --mount value for {key}: {value:?} is not {what}");
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(format!(
                            "unsupported mount type {value:?} (expected bind, cache, tmpfs, secret or ssh)"
                        ));
                    }
                }
            }
            "from" => m.from = Some(value.to_owned()),
            "source" | "src" => m.source = Some(value.to_owned()),
            "target" | "dst" | "destination" => m.target = Some(value.to_owned()),
            "readonly" | "ro" => ro = Some(go_bool(value).ok_or_else(|| bad("a boolean"))?),
            "readwrite" | "rw" => ro = Some(!go_bool(value).ok_or_else(|| bad("a boolean"))?),
            "required" => {
                required_allowed(&m, &key)?;
                m.required = go_bool(value).ok_or_else(|| bad("a boolean"))?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(unexpected_for_type(&key, m.kind));
                }
                m.size = Some(ram_in_bytes(value).ok_or_else(|| bad("a size like 64m"))?);
            }
            "id" => m.id = Some(value.to_owned()),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported mount sharing {value:?} (expected shared, private or locked)"
                        ));
                    }
                })
            }
            "mode" => {
                mode = true;
                let v = u32::from_str_radix(value, 8)
                    .ok()
                    .filter(|_| !value.starts_with('+'));
                m.mode = Some(v.ok_or_else(|| bad("an octal mode"))?);
            }
            "uid" | "gid" => {
                let v = value
                    .parse::<u32>()
                    .ok()
                    .filter(|_| !value.starts_with('+'))
                    .ok_or_else(|| bad("a number"))?;
                if key == "uid" {
                    uid = true;
                    m.uid = Some(v);
                } else {
                    gid = true;
                    m.gid = Some(v);
                }
            }
            "env" => m.env = Some(value.to_owned()),
            _ => return Err(unexpected_key(&key, field)),
        }
    }
    m.read_only = ro.unwrap_or(!matches!(m.kind, MountType::Cache | MountType::Tmpfs));
    if type_deferred {
        return Ok(m);
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (set, name) in [(mode, "mode"), (uid, "uid"), (gid, "gid")] {
            if set {
                return Err(format!(
                    "{name} is not allowed for {} mounts",
                    m.kind.as_str()
                ));
            }
        }
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mounts cannot have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mounts cannot define sharing".into());
        }
        let deferred = |k: &str| m.unexpanded.iter().any(|(x, _)| x == k);
        let has =
            |v: &Option<String>, keys: &[&str]| v.is_some() || keys.iter().any(|k| deferred(k));
        if !has(&m.source, &["source", "src"])
            && !has(&m.target, &["target", "dst", "destination"])
            && !has(&m.id, &["id"])
        {
            return Err("invalid secret mount: one of source, target or id is required".into());
        }
        if has(&m.source, &["source", "src"]) && has(&m.id, &["id"]) {
            return Err("invalid secret mount: source and id cannot both be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "sharing is only allowed for cache mounts, not {}",
            m.kind.as_str()
        ));
    }
    Ok(m)
}

const KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn unexpected_key(key: &str, field: &str) -> String {
    format!("unexpected key {key:?} in --mount field {field:?}")
}

fn unexpected_for_type(key: &str, kind: MountType) -> String {
    format!("unexpected key {key:?} for {} mounts", kind.as_str())
}

fn required_allowed(m: &Mount, key: &str) -> Result<(), String> {
    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
        Ok(())
    } else {
        Err(unexpected_for_type(key, m.kind))
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1.5g`, `512kb`, `100` (binary units).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let v = n * mul;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (v.is_finite() && v < 9.2e18).then_some(v as u64)
}

/// Split a CSV record (RFC 4180 quoting) into fields.
fn csv_fields(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        let mut field = String::new();
        if it.peek() == Some(&'"') {
            it.next();
            loop {
                match it.next()? {
                    '"' if it.peek() == Some(&'"') => {
                        it.next();
                        field.push('"');
                    }
                    '"' => break,
                    c => field.push(c),
                }
            }
            match it.next() {
                None => {
                    out.push(field);
                    return Some(out);
                }
                Some(',') => out.push(field),
                Some(_) => return None,
            }
        } else {
            loop {
                match it.next() {
                    None => {
                        out.push(field);
                        return Some(out);
                    }
                    Some(',') => break,
                    Some('"') => return None,
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn cache_mount_with_options() {
        let m = parse_mount("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0755,uid=1")
            .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1));
        assert!(!m.read_only);
    }

    #[test]
    fn bind_is_read_only_by_default() {
        let m = parse_mount("target=/src").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        assert!(!parse_mount("target=/src,rw").unwrap().read_only);
    }

    #[test]
    fn variables_are_deferred() {
        let m = parse_mount("type=cache,target=$DIR,uid=${UID}").unwrap();
        assert_eq!(
            m.unexpanded,
            vec![
                ("target".to_owned(), "$DIR".to_owned()),
                ("uid".to_owned(), "${UID}".to_owned())
            ]
        );
    }

    #[rstest]
    #[case::bad_type("type=bogus")]
    #[case::bare("target=/x,bogus")]
    #[case::unknown_key("type=bind,colour=red")]
    #[case::mode_on_bind("type=bind,mode=0700")]
    #[case::size_on_cache("type=cache,size=10m")]
    #[case::bad_sharing("type=cache,sharing=nope")]
    #[case::sharing_on_bind("sharing=locked")]
    #[case::secret_empty("type=secret")]
    #[case::secret_from("type=secret,id=a,from=x")]
    #[case::required_bind("required")]
    #[case::bad_bool("ro=maybe")]
    #[case::bad_mode("type=cache,mode=9")]
    #[case::from_var("from=$X/y")]
    #[case::bad_csv("target=\"/x")]
    fn invalid(#[case] v: &str) {
        assert!(parse_mount(v).is_err(), "{v}");
    }

    #[rstest]
    #[case::plain("64m", Some(64 << 20))]
    #[case::bytes("100", Some(100))]
    #[case::gib("1GiB", Some(1 << 30))]
    #[case::junk("lots", None)]
    fn sizes(#[case] s: &str, #[case] want: Option<u64>) {
        assert_eq!(ram_in_bytes(s), want);
    }
}
