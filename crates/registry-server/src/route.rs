//! Request paths → routes, with every name, tag and digest validated before any
//! file path is formed from it.
//!
//! The raw (still percent-encoded) path is parsed: a valid name, tag, digest or
//! upload id never contains `%`, so `%2e%2e` is refused, never decoded.

use oci::Digest;

use crate::error::ApiError;

/// Longest repository name accepted.
pub const NAME_MAX: usize = 255;

/// What a `/v2/…` path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Ping,
    Catalog,
    Tags {
        name: String,
    },
    Manifest {
        name: String,
        reference: Ref,
    },
    /// A manifest path whose reference is neither a tag nor a digest: no manifest can
    /// live there, so a read answers 404 `MANIFEST_UNKNOWN` (distribution's router
    /// answers 404 too) and a write 400 `TAG_INVALID`.
    ManifestInvalid {
        name: String,
        reference: String,
    },
    Blob {
        name: String,
        digest: Digest,
    },
    UploadStart {
        name: String,
    },
    Upload {
        name: String,
        id: String,
    },
    Referrers {
        name: String,
        digest: Digest,
    },
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Tag(t) => f.write_str(t),
            Ref::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Parse a request path. `None` means no route (404).
pub fn parse(path: &str) -> Result<Option<Route>, ApiError> {
    if path == "/v2/" || path == "/v2" {
        return Ok(Some(Route::Ping));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Ok(None);
    };
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_of = |upto: usize| -> Result<String, ApiError> {
        let name = segs[..upto].join("/");
        check_name(&name)?;
        Ok(name)
    };
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Ok(Some(Route::Tags {
            name: name_of(n - 2)?,
        }));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        let name = name_of(n - 3)?;
        let id = segs[n - 1];
        if id.is_empty() {
            return Ok(Some(Route::UploadStart { name }));
        }
        check_upload_id(id)?;
        return Ok(Some(Route::Upload {
            name,
            id: id.to_owned(),
        }));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Some(Route::UploadStart {
            name: name_of(n - 2)?,
        }));
    }
    if n >= 3 {
        let last = segs[n - 1];
        match segs[n - 2] {
            "blobs" => {
                let name = name_of(n - 2)?;
                return Ok(Some(Route::Blob {
                    name,
                    digest: parse_digest(last)?,
                }));
            }
            "referrers" => {
                let name = name_of(n - 2)?;
                return Ok(Some(Route::Referrers {
                    name,
                    digest: parse_digest(last)?,
                }));
            }
            "manifests" => {
                let name = name_of(n - 2)?;
                let reference = if last.contains(':') {
                    Ref::Digest(parse_digest(last)?)
                } else if check_tag(last) {
                    Ref::Tag(last.to_owned())
                } else {
                    return Ok(Some(Route::ManifestInvalid {
                        name,
                        reference: last.to_owned(),
                    }));
                };
                return Ok(Some(Route::Manifest { name, reference }));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by `/`, at most 255 bytes.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > NAME_MAX || !name.split('/').all(component_ok) {
        return Err(ApiError::name_invalid(name));
    }
    Ok(())
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-"+, always followed by alnum.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn check_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// A digest as the spec's URLs carry it; `oci::Digest` refuses uppercase hex, wrong
/// lengths and unknown algorithms.
pub fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::digest_invalid(format!("invalid digest {s:?}: {e}")))
}

/// Upload ids are 32 lowercase hex characters (we make them).
pub fn check_upload_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::upload_unknown(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for ok in ["a", "library/alpine", "a-b/c__d/e.f", "x--y", "a/b/c/d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/../b",
            "..",
            "a/%2e%2e/b",
            "a//b",
            "-a",
            "a-",
            "a___b",
            "a/.b",
            "a_.b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn paths_are_routed_and_validated() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse(&format!("/v2/x/y/blobs/{d}")).unwrap(),
            Some(Route::Blob {
                name: "x/y".into(),
                digest: Digest::parse(&d).unwrap()
            })
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads/").unwrap(),
            Some(Route::UploadStart { name: "x".into() })
        );
        assert_eq!(
            parse("/v2/x/tags/list").unwrap(),
            Some(Route::Tags { name: "x".into() })
        );
        assert!(parse(&format!("/v2/x/blobs/sha256:{}", "A".repeat(64))).is_err());
        assert!(parse("/v2/x/blobs/sha256:abc").is_err());
        assert!(parse(&format!("/v2/x/blobs/md5:{}", "a".repeat(32))).is_err());
        assert!(parse("/v2/%2e%2e/manifests/latest").is_err());
        assert_eq!(
            parse("/v2/x/manifests/..").unwrap(),
            Some(Route::ManifestInvalid {
                name: "x".into(),
                reference: "..".into()
            })
        );
        assert_eq!(
            parse("/v2/x/manifests/.INVALID_MANIFEST_NAME").unwrap(),
            Some(Route::ManifestInvalid {
                name: "x".into(),
                reference: ".INVALID_MANIFEST_NAME".into()
            })
        );
        assert!(parse("/v2/x/manifests/sha256:abc").is_err());
        assert!(parse("/v2/X/manifests/.bad").is_err());
        assert!(!matches!(
            parse("/v2/x/blobs/uploads/../../etc"),
            Ok(Some(_))
        ));
    }
}
