//! The Dockerfile frontend's reading half: parser, word expansion and ignore
//! patterns, with BuildKit's semantics.
//!
//! **Invariant**: this crate does no IO and never prints. The parser never fails
//! outright: it returns the tree and a list of diagnostics.

pub mod expand;
pub mod ignore;
pub mod parser;

pub use expand::{Env, ExpandError, Expanded, Lexer};
