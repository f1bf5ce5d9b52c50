//! Rendering of errors and sizes for people.

use std::fmt;

/// An error with a known fix, printed as a `hint:` line.
#[derive(Debug)]
pub struct Hinted {
    message: String,
    hint: String,
}

impl Hinted {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Hinted {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// Print `error: …`, each cause as `caused by: …`, then the hints that apply.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
    for hint in hints(err) {
        eprintln!("hint: {hint}");
    }
}

fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    // A hint attached with `.context(Hinted …)` is found on the error itself.
    if let Some(h) = err.downcast_ref::<Hinted>() {
        out.push(h.hint.clone());
    }
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            out.push(h.hint.clone());
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            out.push(
                "run as root, or set MANIFOLD_ROOT (or --root) to a directory you own".to_owned(),
            );
        }
        out.extend(library_hint(cause));
        if let Some(e) = cause.downcast_ref::<export::output::SpecError>()
            && !e.hint.is_empty()
        {
            out.push(e.hint.clone());
        }
        if let Some(e) = cause.downcast_ref::<registry::RegistryError>() {
            out.extend(registry_hint(e));
        }
        let binfmt = cause
            .downcast_ref::<worker::binfmt::BinfmtError>()
            .or_else(|| match cause.downcast_ref::<builder::BuildFailure>() {
                Some(builder::BuildFailure::Platform(e)) => Some(e),
                _ => None,
            });
        if let Some(h) = binfmt.and_then(|e| e.hint()) {
            // Registering emulators is the host root's job, also for a rootless build.
            let sudo = if content::identity::identity().is_host_root() {
                ""
            } else {
                "sudo "
            };
            out.push(format!("run `{sudo}{h}`"));
        }
        if let Some(content::StoreError::NameNotFound(_)) = cause.downcast_ref() {
            out.push("`manifold images` lists the names in the local store".to_owned());
        }
    }
    out.dedup();
    out
}

/// The fix a library error names itself (its `hint()`), for the errors that have one.
fn library_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    macro_rules! hint_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = cause.downcast_ref::<$t>() {
                return e.hint().map(|h| h.to_string());
            })*
        };
    }
    hint_of!(
        remote::instances::InstanceError,
        remote::nodes::NodesError,
        builder::state::StateError,
        content::layout::LayoutError,
        builder::BuildError,
        registry::create::SourceError,
        builder::history::HistoryError,
    );
    None
}

fn registry_hint(e: &registry::RegistryError) -> Option<String> {
    use registry::RegistryError as E;
    match e {
        E::Http {
            status: 401, url, ..
        }
        | E::Http {
            status: 403, url, ..
        } => {
            let host = url::Url::parse(url).ok()?.host_str()?.to_owned();
            Some(format!(
                "log in with `manifold login {host}` (or check your access to the repository)"
            ))
        }
        E::Transport { url, source, .. }
            if url.starts_with("https://")
                && (source.is_connect() || source.is_request())
                && !chain_text(source).contains("dns error") =>
        {
            let parsed = url::Url::parse(url).ok()?;
            let host = match parsed.port() {
                Some(p) => format!("{}:{p}", parsed.host_str()?),
                None => parsed.host_str()?.to_owned(),
            };
            Some(format!(
                "if {host} speaks plain HTTP or uses a self-signed certificate, pass --insecure-registry {host}"
            ))
        }
        E::SourceNotFound {
            in_target: true,
            repository,
            ..
        } => Some(format!(
            "digests and descriptor files name content in the first -t's repository \
             ({repository}): push there by digest (manifold build -o \
             type=image,name={repository},push-by-digest=true,push=true), or name the \
             source as NAME@DIGEST"
        )),
        E::PlatformNotInSources { .. } => {
            Some("leave that platform out of -p, or add a source that has it".to_owned())
        }
        _ => None,
    }
}

/// An error and its causes on one line.
pub(crate) fn chain_text(e: &dyn std::error::Error) -> String {
    oci::error_chain(e)
}

/// Sizes as docker prints them (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
            + UNITS[unit]
    }
}

/// How long ago `t` was, as docker prints it (`3 minutes ago`); `-` when unknown.
pub fn human_ago(t: std::time::SystemTime, now: std::time::SystemTime) -> String {
    if t == std::time::UNIX_EPOCH {
        return "-".to_owned();
    }
    let secs = now.duration_since(t).map_or(0, |d| d.as_secs());
    let (n, unit) = match secs {
        0 => return "just now".to_owned(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 48 * 3600 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::{human_ago, human_size};

    #[test]
    fn times_read_like_docker() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let ago = |s| human_ago(now - std::time::Duration::from_secs(s), now);
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(150), "2 minutes ago");
        assert_eq!(ago(3600), "1 hour ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(human_ago(std::time::UNIX_EPOCH, now), "-");
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(5_000_000_000), "5GB");
    }
}
