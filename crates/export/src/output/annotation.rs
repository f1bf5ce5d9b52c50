//! OCI annotations a build attaches to what it exports, as buildx writes them:
//!
//! * the flag `--annotation [TYPES[PLATFORM]:]KEY=VALUE`, where `TYPES` is a
//!   comma-separated list of `manifest` (the default), `index`,
//!   `manifest-descriptor` and `index-descriptor`, and `[PLATFORM]` (such as
//!   `[linux/amd64]`) narrows a manifest or manifest-descriptor annotation to one
//!   platform's image;
//! * the output keys `annotation.KEY`, `annotation-TYPE.KEY` and their
//!   `annotation[PLATFORM].KEY` forms.
//!
//! `manifest` annotates each image manifest, `index` the index over them,
//! `manifest-descriptor` each manifest's entry in that index (or, with one
//! platform, the image's entry in an OCI layout), `index-descriptor` the index's
//! entry in an OCI layout.

use std::collections::BTreeMap;

use oci::{Platform, PlatformMatcher};
use serde::{Deserialize, Serialize};

use super::SpecError;

/// What an annotation is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    Manifest,
    Index,
    ManifestDescriptor,
    IndexDescriptor,
}

impl Level {
    const ALL: [(&'static str, Level); 4] = [
        ("manifest", Level::Manifest),
        ("index", Level::Index),
        ("manifest-descriptor", Level::ManifestDescriptor),
        ("index-descriptor", Level::IndexDescriptor),
    ];

    fn parse(s: &str) -> Option<Level> {
        Level::ALL.iter().find(|(n, _)| *n == s).map(|(_, l)| *l)
    }

    pub fn name(self) -> &'static str {
        Level::ALL
            .iter()
            .find(|(_, l)| *l == self)
            .map(|(n, _)| *n)
            .expect("invariant: every level is listed")
    }
}

/// One annotation of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub level: Level,
    /// Only the image of this platform (manifest levels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    pub key: String,
    pub value: String,
}

const FLAG_SYNTAX: &str = "write --annotation KEY=VALUE or TYPE[,TYPE][[PLATFORM]]:KEY=VALUE, \
                           TYPE being manifest, index, manifest-descriptor or index-descriptor";

/// Parse one `--annotation` value of a build (one entry per type it names; the
/// type left out is `manifest`).
pub fn parse_flag(s: &str) -> Result<Vec<Annotation>, SpecError> {
    parse_flag_as(s, Level::Manifest)
}

/// Parse one `--annotation` value whose type, when left out, is `default`
/// (`imagetools create` annotates the index by default, as buildx does).
pub fn parse_flag_as(s: &str, default: Level) -> Result<Vec<Annotation>, SpecError> {
    let bad =
        |why: String| SpecError::new(format!("invalid --annotation {s:?}: {why}"), FLAG_SYNTAX);
    let Some((lhs, value)) = s.split_once('=') else {
        return Err(bad("missing =VALUE".into()));
    };
    let (prefix, key) = match lhs.split_once(':') {
        Some((p, k)) => (Some(p), k),
        None => (None, lhs),
    };
    let (levels, platform) = match prefix {
        None => (vec![default], None),
        Some(p) => {
            let (types, platform) = split_platform(p).map_err(bad)?;
            let mut levels = Vec::new();
            for t in types.split(',').filter(|t| !t.is_empty()) {
                levels.push(
                    Level::parse(t).ok_or_else(|| bad(format!("unknown annotation type {t:?}")))?,
                );
            }
            if levels.is_empty() {
                levels.push(default);
            }
            (levels, platform)
        }
    };
    build(levels, platform, key, value).map_err(bad)
}

/// Parse an output key of the annotation family (`annotation.K`,
/// `annotation-index.K`, `annotation-manifest[linux/arm64].K`, …) with its value;
/// `None` when `key` is not one.
pub fn parse_output_key(key: &str, value: &str) -> Option<Result<Annotation, SpecError>> {
    let rest = key.strip_prefix("annotation")?;
    if !rest.starts_with(['.', '-', '[']) {
        return None;
    }
    let bad = |why: String| {
        SpecError::new(
            format!("annotation key {key:?}: {why}"),
            "write annotation.KEY=VALUE, annotation-TYPE.KEY=VALUE or \
             annotation-TYPE[PLATFORM].KEY=VALUE, TYPE being manifest, index, \
             manifest-descriptor or index-descriptor",
        )
    };
    let parsed = (|| {
        let (head, name) = match rest.find(['.']) {
            Some(i) if !rest[..i].contains('[') || rest[..i].contains(']') => {
                (&rest[..i], &rest[i + 1..])
            }
            // A platform holds no dot, but be exact about where the bracket ends.
            _ => {
                let close = rest.find(']').ok_or("unclosed [")?;
                let after = &rest[close + 1..];
                let name = after.strip_prefix('.').ok_or("missing .KEY")?;
                (&rest[..=close], name)
            }
        };
        let (ty, platform) = split_platform(head)?;
        let level = match ty.strip_prefix('-') {
            None if ty.is_empty() => Level::Manifest,
            Some(t) => Level::parse(t).ok_or_else(|| format!("unknown annotation type {t:?}"))?,
            None => return Err(format!("unknown annotation type {ty:?}")),
        };
        let mut one = build(vec![level], platform, name, value)?;
        Ok(one.remove(0))
    })();
    Some(parsed.map_err(bad))
}

/// `TYPES[PLATFORM]` → (`TYPES`, the platform).
fn split_platform(s: &str) -> Result<(&str, Option<Platform>), String> {
    let Some(open) = s.find('[') else {
        return Ok((s, None));
    };
    let inner = s[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| format!("{s:?} does not end its [PLATFORM] with ]"))?;
    let p = Platform::parse(inner).map_err(|e| format!("invalid platform {inner:?}: {e}"))?;
    Ok((&s[..open], Some(p)))
}

fn build(
    levels: Vec<Level>,
    platform: Option<Platform>,
    key: &str,
    value: &str,
) -> Result<Vec<Annotation>, String> {
    if key.is_empty() {
        return Err("empty KEY".into());
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the key {key:?} holds a space or control character"
        ));
    }
    let mut out = Vec::new();
    for level in levels {
        if platform.is_some() && matches!(level, Level::Index | Level::IndexDescriptor) {
            return Err(format!(
                "a [PLATFORM] narrows manifest annotations only, not {}",
                level.name()
            ));
        }
        out.push(Annotation {
            level,
            platform: platform.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(out)
}

/// A build's annotations, looked up by where they go. Later entries win.
#[derive(Debug, Clone, Copy)]
pub struct Annotations<'a>(pub &'a [Annotation]);

impl Annotations<'_> {
    fn collect(&self, level: Level, platform: Option<&Platform>) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|a| a.level == level)
            .filter(|a| match (&a.platform, platform) {
                (None, _) => true,
                (Some(want), Some(p)) => PlatformMatcher::only(want).matches(p),
                (Some(_), None) => false,
            })
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }

    /// The annotations of the manifest of `platform`.
    pub fn manifest(&self, platform: &Platform) -> BTreeMap<String, String> {
        self.collect(Level::Manifest, Some(platform))
    }

    /// The annotations of the descriptor of `platform`'s manifest.
    pub fn manifest_descriptor(&self, platform: &Platform) -> BTreeMap<String, String> {
        self.collect(Level::ManifestDescriptor, Some(platform))
    }

    pub fn index(&self) -> BTreeMap<String, String> {
        self.collect(Level::Index, None)
    }

    pub fn index_descriptor(&self) -> BTreeMap<String, String> {
        self.collect(Level::IndexDescriptor, None)
    }

    /// Whether any annotation needs an index.
    pub fn need_index(&self) -> bool {
        self.0
            .iter()
            .any(|a| matches!(a.level, Level::Index | Level::IndexDescriptor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(flag: &str, want: &[(Level, Option<&str>, &str, &str)]) {
        let got = parse_flag(flag).unwrap_or_else(|e| panic!("{flag}: {e}"));
        let got: Vec<_> = got
            .iter()
            .map(|a| {
                (
                    a.level,
                    a.platform.as_ref().map(|p| p.to_string()),
                    a.key.as_str(),
                    a.value.as_str(),
                )
            })
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|(l, p, k, v)| (*l, p.map(str::to_owned), *k, *v))
            .collect();
        assert_eq!(got, want, "{flag}");
    }

    #[test]
    fn flags_parse_as_buildx_documents() {
        use Level::*;
        check("foo=bar", &[(Manifest, None, "foo", "bar")]);
        check("a=b=c", &[(Manifest, None, "a", "b=c")]);
        check("index:k=v", &[(Index, None, "k", "v")]);
        check(
            "index,manifest:k=v",
            &[(Index, None, "k", "v"), (Manifest, None, "k", "v")],
        );
        check(
            "manifest[linux/arm64]:k=",
            &[(Manifest, Some("linux/arm64"), "k", "")],
        );
        check(
            "manifest-descriptor:k=v",
            &[(ManifestDescriptor, None, "k", "v")],
        );
        check("index-descriptor:k=v", &[(IndexDescriptor, None, "k", "v")]);
        check(
            "[linux/amd64]:k=v",
            &[(Manifest, Some("linux/amd64"), "k", "v")],
        );
        for bad in [
            "novalue",
            "=v",
            "bogus:k=v",
            "index[linux/amd64]:k=v",
            "manifest[linux/amd64:k=v",
            "manifest[not a platform]:k=v",
            "manifest:a b=c",
        ] {
            let e = parse_flag(bad).unwrap_err();
            assert!(e.message.contains("--annotation"), "{bad}: {e}");
            assert!(e.message.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn the_type_left_out_is_the_default_given() {
        let a = parse_flag_as("k=v", Level::Index).unwrap();
        assert_eq!((a[0].level, a[0].key.as_str()), (Level::Index, "k"));
        let a = parse_flag_as("manifest-descriptor[linux/arm64]:k=v", Level::Index).unwrap();
        assert_eq!(a[0].level, Level::ManifestDescriptor);
        assert!(a[0].platform.is_some());
        // An index annotation has no platform, whichever way it is written.
        let e = parse_flag_as("[linux/arm64]:k=v", Level::Index).unwrap_err();
        assert!(e.message.contains("not index"), "{e}");
    }

    #[test]
    fn output_keys_parse_as_buildkit_documents() {
        let one = |k: &str| parse_output_key(k, "v").unwrap().unwrap();
        let a = one("annotation.org.opencontainers.image.title");
        assert_eq!(
            (a.level, a.key.as_str()),
            (Level::Manifest, "org.opencontainers.image.title")
        );
        assert_eq!(one("annotation-index.k").level, Level::Index);
        assert_eq!(
            one("annotation-manifest-descriptor.k").level,
            Level::ManifestDescriptor
        );
        assert_eq!(
            one("annotation-index-descriptor.k").level,
            Level::IndexDescriptor
        );
        let a = one("annotation-manifest[linux/arm64].a.b");
        assert_eq!(a.platform.unwrap().to_string(), "linux/arm64");
        assert_eq!(a.key, "a.b");
        let a = one("annotation[linux/amd64].k");
        assert_eq!((a.level, a.platform.is_some()), (Level::Manifest, true));
        assert!(parse_output_key("annotations", "v").is_none());
        assert!(parse_output_key("name", "v").is_none());
        for bad in [
            "annotation-nope.k",
            "annotation.",
            "annotation-index[linux/amd64].k",
            "annotation[linux/amd64",
        ] {
            let e = parse_output_key(bad, "v").unwrap().unwrap_err();
            assert!(e.message.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn lookups_narrow_by_platform() {
        let list: Vec<Annotation> = ["a=1", "manifest[linux/arm64]:b=2", "index:c=3", "a=4"]
            .iter()
            .flat_map(|f| parse_flag(f).unwrap())
            .collect();
        let a = Annotations(&list);
        let arm = Platform::parse("linux/arm64").unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            a.manifest(&arm).into_iter().collect::<Vec<_>>(),
            [("a".into(), "4".into()), ("b".into(), "2".into())]
        );
        assert_eq!(a.manifest(&amd).len(), 1);
        assert_eq!(a.index().len(), 1);
        assert!(a.need_index());
        assert!(a.manifest_descriptor(&amd).is_empty());
    }
}
