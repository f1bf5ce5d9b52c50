//! Cache keys.
//!
//! A vertex's cache key is the sha256 of these bytes:
//!
//! ```text
//! manifold.solver.cache.v1\n
//! op <op digest>\n
//! input <result key of input 0>\n      (one line per input, in order)
//! content <content key digest>\n        (only if the runner gave one)
//! ```
//!
//! * The op digest is [`graph::canonical::digest`] of the op with no inputs,
//!   after dropping what must not split the cache: an exec's `proxy_env`
//!   (as BuildKit does; proxies never reach the image). Inputs enter through
//!   their results, not their vertex digests, so two routes to the same
//!   result share what follows.
//! * A result key ([`result_key`]) is the digest of the JSON description the
//!   runner saved for the result. A step re-run with `--no-cache-filter`
//!   that gives the same result therefore keeps its dependents cached, and
//!   one that gives a different result re-runs them.
//! * The content key is [`crate::OpRunner::content_key`]: a local source's
//!   file digest, so an edited file changes the key and an untouched one
//!   does not.
//!
//! Any change to these bytes changes every key; the prefixes carry a
//! version and golden tests pin the form.

use graph::Op;
use oci::Digest;

/// The version prefix of a cache key.
pub const KEY_PREFIX: &str = "manifold.solver.cache.v1\n";
/// The version prefix of a result key.
pub const RESULT_PREFIX: &str = "manifold.solver.result.v1\n";

/// The digest of `op` as the cache sees it: no inputs, no proxy variables.
pub fn op_digest(op: &Op) -> Digest {
    match op {
        Op::Exec(exec) if !exec.proxy_env.is_empty() => {
            let mut exec = exec.clone();
            exec.proxy_env.clear();
            graph::canonical::digest(&Op::Exec(exec), &[])
        }
        _ => graph::canonical::digest(op, &[]),
    }
}

/// The bytes a cache key hashes.
pub fn key_bytes(op: &Digest, inputs: &[Digest], content: Option<&Digest>) -> Vec<u8> {
    use std::fmt::Write;
    let mut out = String::from(KEY_PREFIX);
    // Writing to a String cannot fail.
    let _ = writeln!(out, "op {op}");
    for input in inputs {
        let _ = writeln!(out, "input {input}");
    }
    if let Some(content) = content {
        let _ = writeln!(out, "content {content}");
    }
    out.into_bytes()
}

/// The cache key of an op applied to inputs with these result keys.
pub fn cache_key(op: &Digest, inputs: &[Digest], content: Option<&Digest>) -> Digest {
    Digest::sha256(&key_bytes(op, inputs, content))
}

/// The key dependents see for a result: the digest of its description.
pub fn result_key(value: &serde_json::Value) -> Digest {
    let mut bytes = RESULT_PREFIX.as_bytes().to_vec();
    serde_json::to_writer(&mut bytes, value)
        .expect("invariant: a serde_json::Value always serialises");
    Digest::sha256(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph::op::{EnvVar, Exec, Mount, MountKind, Network, Security};
    use oci::Platform;

    fn exec(proxy: Vec<EnvVar>) -> Op {
        Op::Exec(Exec {
            args: vec!["make".to_owned()],
            env: vec![],
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: None,
            network: Network::Default,
            security: Security::Sandbox,
            proxy_env: proxy,
            secret_env: vec![],
            platform: Platform::new("linux", "amd64", None),
            mounts: vec![Mount {
                input: Some(0),
                dest: "/".to_owned(),
                selector: "/".to_owned(),
                readonly: false,
                kind: MountKind::Bind,
            }],
            extra_hosts: Vec::new(),
            ulimits: Vec::new(),
            shm_size: None,
        })
    }

    fn d(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    /// Pins the key form: if this fails, every cache record ever written is
    /// unreachable. Bump `KEY_PREFIX` on purpose, then update. The values
    /// were checked by hashing the documented bytes with `sha256sum`.
    #[test]
    fn cache_key_of_fixed_parts_is_stable() {
        let key = cache_key(&d("op"), &[d("a"), d("b")], Some(&d("c")));
        assert_eq!(
            key.to_string(),
            "sha256:1c38df7712538591e69ea2151eed540019acd1068397634360bea013cb640d38"
        );
        let bytes = String::from_utf8(key_bytes(&d("op"), &[d("a")], None)).unwrap();
        assert_eq!(
            bytes,
            format!(
                "manifold.solver.cache.v1\nop {}\ninput {}\n",
                d("op"),
                d("a")
            )
        );
    }

    #[test]
    fn result_key_is_stable() {
        let key = result_key(&serde_json::json!({"snapshot": "abc", "size": 3}));
        assert_eq!(
            key.to_string(),
            "sha256:47804b33eda130599169ff3218442013d883741e44d03df76bfa5b2b68017df9"
        );
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = cache_key(&d("op"), &[d("a")], None);
        assert_ne!(base, cache_key(&d("op2"), &[d("a")], None));
        assert_ne!(base, cache_key(&d("op"), &[d("b")], None));
        assert_ne!(base, cache_key(&d("op"), &[d("a"), d("a")], None));
        assert_ne!(base, cache_key(&d("op"), &[d("a")], Some(&d("c"))));
        assert_ne!(base, cache_key(&d("op"), &[], Some(&d("a"))));
    }

    #[test]
    fn proxy_variables_do_not_change_the_op_digest() {
        let plain = op_digest(&exec(vec![]));
        let proxied = op_digest(&exec(vec![EnvVar::new("HTTP_PROXY", "http://p:3128")]));
        assert_eq!(plain, proxied);
        assert_eq!(plain, graph::canonical::digest(&exec(vec![]), &[]));
    }
}
