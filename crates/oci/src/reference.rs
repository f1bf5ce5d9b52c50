//! Image references (`[registry/]repository[:tag][@digest]`), normalised the way
//! docker normalises them.
//!
//! Grammar accepted (hand-written parser, no regular expressions):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]
//! host       := component ( "." component )* | "[" ipv6 "]"
//! component  := [a-zA-Z0-9] ( [a-zA-Z0-9-]* [a-zA-Z0-9] )?
//! port       := [0-9]+
//! path       := path-part ( "/" path-part )*
//! path-part  := alnum+ ( separator alnum+ )*      alnum := [a-z0-9]
//! separator  := "." | "_" | "__" | "-"+
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := see [`Digest::parse`]
//! ```
//!
//! Normalisation:
//!
//! * the first `/`-separated part of the name is a registry domain only if it
//!   contains `.` or `:` or is exactly `localhost`; otherwise the registry is
//!   `docker.io` and the whole name is the repository;
//! * `index.docker.io` is spelled `docker.io`;
//! * a single-part repository on `docker.io` is an official image and gets the
//!   `library/` prefix;
//! * a reference with neither tag nor digest gets the tag `latest`.
//!
//! The normalised name (`registry/repository`) may be at most 255 bytes long; a
//! whole input made of exactly 64 lowercase hex characters is refused because it
//! is indistinguishable from an image ID.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry used when a reference names none.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Old spelling of [`DEFAULT_REGISTRY`], normalised to it.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// Prefix of official (single-part) repositories on the default registry.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag given to references with neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// Longest allowed normalised name (`registry/repository`), in bytes.
const NAME_MAX_LEN: usize = 255;
/// Longest allowed tag, in bytes.
const TAG_MAX_LEN: usize = 128;

/// Why a string is not a valid image reference.
///
/// Every variant carries the whole offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The input is the empty string.
    #[error("invalid reference: empty string")]
    Empty,
    /// The input is exactly 64 lowercase hex characters: that is an image ID,
    /// not a repository name.
    #[error(
        "invalid reference {input:?}: a repository name must not be a 64-character hex string (it looks like an image ID)"
    )]
    AmbiguousHexName { input: String },
    /// Nothing before the `:` of the tag or the `@` of the digest.
    #[error("invalid reference {input:?}: missing repository name before ':' or '@'")]
    MissingName { input: String },
    /// The normalised `registry/repository` is longer than 255 bytes.
    #[error(
        "invalid reference {input:?}: name is {len} characters long once normalised, the limit is 255"
    )]
    NameTooLong { input: String, len: usize },
    /// The registry part is not a valid host name, IPv4 or bracketed IPv6 address.
    #[error("invalid reference {input:?}: invalid registry domain {domain:?}")]
    InvalidDomain { input: String, domain: String },
    /// The registry port is empty or not made of decimal digits.
    #[error("invalid reference {input:?}: invalid port {port:?} in registry {domain:?}")]
    InvalidPort {
        input: String,
        domain: String,
        port: String,
    },
    /// The repository path has an empty part (leading, doubled or trailing `/`).
    #[error(
        "invalid reference {input:?}: empty repository path component (leading, trailing or doubled '/')"
    )]
    EmptyPathComponent { input: String },
    /// A repository path part has characters or separators outside the grammar.
    #[error(
        "invalid reference {input:?}: invalid repository path component {component:?} (allowed: lowercase letters and digits, separated by '.', '_', '__' or dashes)"
    )]
    InvalidPathComponent { input: String, component: String },
    /// The repository has uppercase letters (it would be valid in lowercase).
    #[error(
        "invalid reference {input:?}: repository name {repository:?} must be lowercase (try {:?})",
        .repository.to_ascii_lowercase()
    )]
    UppercaseRepository { input: String, repository: String },
    /// A `:` with nothing after it.
    #[error("invalid reference {input:?}: empty tag after ':'")]
    EmptyTag { input: String },
    /// The tag is longer than 128 characters.
    #[error("invalid reference {input:?}: tag is {len} characters long, the limit is 128")]
    TagTooLong { input: String, len: usize },
    /// The tag has characters outside `[A-Za-z0-9_.-]` or starts with `.` or `-`.
    #[error(
        "invalid reference {input:?}: invalid tag {tag:?} (allowed: letters, digits, '_', '.', '-', not starting with '.' or '-')"
    )]
    InvalidTag { input: String, tag: String },
    /// An `@` with nothing after it.
    #[error("invalid reference {input:?}: empty digest after '@'")]
    EmptyDigest { input: String },
    /// The part after `@` is not a valid digest.
    #[error("invalid reference {input:?}: {source}")]
    InvalidDigest {
        input: String,
        #[source]
        source: DigestError,
    },
}

/// A validated, normalised image reference.
///
/// **Invariants**: `registry` is a valid domain (never `index.docker.io`),
/// `repository` is a valid lowercase path (with `library/` for official images
/// on `docker.io`), `registry/repository` is at most 255 bytes, and at least one
/// of `tag` and `digest` is set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise a reference the way docker does (`alpine` is
    /// `docker.io/library/alpine:latest`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(is_lower_hex) {
            return Err(ReferenceError::AmbiguousHexName {
                input: s.to_owned(),
            });
        }

        // The name can contain neither '@' nor a ':' after its last '/', so the
        // first '@' starts the digest and a ':' after the last '/' starts the tag.
        let (name_tag, digest) = match s.split_once('@') {
            Some((nt, d)) => (nt, Some(d)),
            None => (s, None),
        };
        let slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[slash..].rfind(':') {
            Some(i) => (&name_tag[..slash + i], Some(&name_tag[slash + i + 1..])),
            None => (name_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::MissingName {
                input: s.to_owned(),
            });
        }

        let (registry, repository) = split_name(s, name)?;
        if registry.len() + 1 + repository.len() > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                input: s.to_owned(),
                len: registry.len() + 1 + repository.len(),
            });
        }

        let tag = match tag {
            Some(t) => Some(check_tag(s, t)?.to_owned()),
            None => None,
        };
        let digest = match digest {
            Some("") => {
                return Err(ReferenceError::EmptyDigest {
                    input: s.to_owned(),
                });
            }
            Some(d) => Some(
                Digest::parse(d).map_err(|source| ReferenceError::InvalidDigest {
                    input: s.to_owned(),
                    source,
                })?,
            ),
            None => None,
        };
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry domain, e.g. `docker.io`, `ghcr.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/alpine`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag; `latest` when the parsed string had neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, e.g. `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form docker shows to people: `docker.io/` and, for official
    /// images, `library/` are left out (`alpine:latest`, `user/app:1`,
    /// `localhost:5000/a/b:t`, `alpine@sha256:…`).
    pub fn familiar(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        self.push_suffix(&mut out);
        out
    }

    /// The same name with `tag` instead of the current tag, and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        let input = format!("{}:{}", self.name(), tag);
        let tag = check_tag(&input, tag)?.to_owned();
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag),
            digest: None,
        })
    }

    /// The same name and tag, pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Split `name` into a validated, normalised (registry, repository).
fn split_name(input: &str, name: &str) -> Result<(String, String), ReferenceError> {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            check_domain(input, first)?;
            (Some(first), rest)
        }
        _ => (None, name),
    };

    for component in path.split('/') {
        if component.is_empty() {
            return Err(ReferenceError::EmptyPathComponent {
                input: input.to_owned(),
            });
        }
        // Judge the lowercase form here so that a component that is only wrong
        // by its case is reported as such below, with a useful suggestion.
        if !is_path_component(component.to_ascii_lowercase().as_bytes()) {
            return Err(ReferenceError::InvalidPathComponent {
                input: input.to_owned(),
                component: component.to_owned(),
            });
        }
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::UppercaseRepository {
            input: input.to_owned(),
            repository: path.to_owned(),
        });
    }

    let registry = match domain {
        None | Some(DEFAULT_REGISTRY | LEGACY_DEFAULT_REGISTRY) => DEFAULT_REGISTRY,
        Some(d) => d,
    };
    let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path.to_owned()
    };
    Ok((registry.to_owned(), repository))
}

/// `[a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*`
fn is_path_component(c: &[u8]) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let run = c[i..].iter().take_while(|b| alnum(b)).count();
        if run == 0 {
            return false;
        }
        i += run;
        match c.get(i) {
            None => return true,
            Some(b'.') => i += 1,
            Some(b'_') => i += if c.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            Some(b'-') => i += c[i..].iter().take_while(|&&b| b == b'-').count(),
            Some(_) => return false,
        }
    }
}

/// `host [":" port]` where host is dotted components or a bracketed IPv6 address.
fn check_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad_domain = || ReferenceError::InvalidDomain {
        input: input.to_owned(),
        domain: domain.to_owned(),
    };
    let (host_ok, port) = if let Some(bracketed) = domain.strip_prefix('[') {
        let (addr, after) = bracketed.split_once(']').ok_or_else(bad_domain)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad_domain)?),
        };
        (is_ipv6(addr), port)
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        (host.split('.').all(is_domain_component), port)
    };
    if !host_ok {
        return Err(bad_domain());
    }
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ReferenceError::InvalidPort {
                input: input.to_owned(),
                domain: domain.to_owned(),
                port: p.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// `[a-zA-Z0-9] ( [a-zA-Z0-9-]* [a-zA-Z0-9] )?`
fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// Hex digits and colons only (no embedded IPv4, no zone), and a real address.
fn is_ipv6(addr: &str) -> bool {
    !addr.is_empty()
        && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        && addr.parse::<std::net::Ipv6Addr>().is_ok()
}

/// `[A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}`
fn check_tag<'a>(input: &str, tag: &'a str) -> Result<&'a str, ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let Some(&first) = tag.as_bytes().first() else {
        return Err(ReferenceError::EmptyTag {
            input: input.to_owned(),
        });
    };
    if !word(first) || !tag.bytes().all(|b| word(b) || b == b'.' || b == b'-') {
        return Err(ReferenceError::InvalidTag {
            input: input.to_owned(),
            tag: tag.to_owned(),
        });
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(ReferenceError::TagTooLong {
            input: input.to_owned(),
            len: tag.len(),
        });
    }
    Ok(tag)
}
