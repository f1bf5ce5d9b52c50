//! The Dockerfile frontend's reading half: parser, word expansion, ignore
//! patterns, build checks ([`lint`]), the `--call=targets|outline` data
//! ([`call`]) and what a `# syntax=` directive asks for ([`syntax`]), with
//! BuildKit's semantics.
//!
//! **Invariant**: this crate does no IO and never prints. The parser never fails
//! outright: it returns the tree and a list of diagnostics.

pub mod args;
pub mod call;
pub mod expand;
/// `.dockerignore` patterns (the `ignore` crate, which the context's readers share).
pub use ::ignore;
pub mod lint;
pub mod parser;
/// Go's `path.Clean`.
pub use ::ignore::path;
pub mod syntax;

pub use expand::{Env, ExpandError, Expanded, Lexer};
