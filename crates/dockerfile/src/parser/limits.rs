//! Caps that keep hostile input bounded. Exceeding one is an error
//! diagnostic, never a panic.

/// Larger sources are truncated to this many bytes.
pub const MAX_SOURCE_BYTES: usize = 32 << 20;
/// Longest physical line (BuildKit's scanner limit); longer lines are skipped.
pub const MAX_LINE_BYTES: usize = 65_535;
/// Longest logical line (continuations joined); longer instructions are dropped.
pub const MAX_INSTRUCTION_BYTES: usize = 1 << 20;
/// Parsing stops after this many instructions.
pub const MAX_INSTRUCTIONS: usize = 100_000;
/// Heredocs per instruction.
pub const MAX_HEREDOCS: usize = 64;
/// Flags per instruction.
pub const MAX_FLAGS: usize = 64;
/// Diagnostics kept; the rest are summarised by one more.
pub const MAX_DIAGNOSTICS: usize = 1_000;
