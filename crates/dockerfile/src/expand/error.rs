//! The errors of word expansion, with BuildKit's messages.

use std::fmt;

/// Why a word could not be expanded.
///
/// Every variant carries the source `word`; the messages are BuildKit's,
/// prefixed like BuildKit's with `failed to process "<word>": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// A `'` or `"` without its closing quote.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching {}",
        GoQuote(word),
        if *quote == '\'' { "single-quote" } else { "double-quote" }
    )]
    UnterminatedQuote { word: String, quote: char },
    /// A `${` without its closing `}`.
    #[error("failed to process {}: syntax error: missing '}}'", GoQuote(word))]
    UnterminatedBrace { word: String },
    /// A `${v/p` or `${v//p` without the `/` before the replacement.
    #[error(
        "failed to process {}: syntax error: missing '/' in ${{}}",
        GoQuote(word)
    )]
    MissingSlash { word: String },
    /// `${}`, `${:…}`, `${{…}` or `${}…`.
    #[error("failed to process {}: syntax error: bad substitution", GoQuote(word))]
    BadSubstitution { word: String },
    /// `${v<modifier>…}` with a modifier BuildKit does not know, such as `:#`,
    /// `:/` or `.`; end of input reads as `\u{FFFD}`.
    #[error(
        "failed to process {}: unsupported modifier ({modifier}) in substitution",
        GoQuote(word)
    )]
    UnsupportedModifier { word: String, modifier: String },
    /// `${name?message}` with `name` unset, or `${name:?message}` with `name`
    /// unset or empty; `message` is the expanded word or BuildKit's default.
    #[error("failed to process {}: {name}: {message}", GoQuote(word))]
    MissingRequired {
        word: String,
        name: String,
        message: String,
    },
    /// A pattern with a `\` not followed by `*`, `?`, `\`, `}` or `/`;
    /// `escaped` is the character after it (`\u{FFFD}` at the end).
    /// For `%` and `%%` the pattern is shown reversed, as BuildKit does.
    #[error(
        "failed to process {}: invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'",
        GoQuote(word)
    )]
    InvalidPattern {
        word: String,
        pattern: String,
        escaped: char,
    },
    /// `${…}` nested deeper than the lexer's depth limit.
    #[error(
        "failed to process {}: substitutions nested deeper than {limit}",
        GoQuote(word)
    )]
    TooDeep { word: String, limit: usize },
    /// An expanded string would be longer than the lexer's length limit.
    #[error(
        "failed to process {}: expansion longer than {limit} bytes",
        GoQuote(word)
    )]
    TooLong { word: String, limit: usize },
    /// Pattern matching would need more steps than the lexer allows
    /// (by default [`super::MAX_MATCH_STEPS`]).
    #[error(
        "failed to process {}: pattern matching needs more than {limit} steps",
        GoQuote(word)
    )]
    TooComplex { word: String, limit: u64 },
}

impl ExpandError {
    /// Errors of this crate's own limits, which BuildKit does not have.
    pub(super) fn is_limit(&self) -> bool {
        matches!(
            self,
            ExpandError::TooDeep { .. }
                | ExpandError::TooLong { .. }
                | ExpandError::TooComplex { .. }
        )
    }

    pub(super) fn with_word(mut self, source: &str) -> Self {
        match &mut self {
            ExpandError::UnterminatedQuote { word, .. }
            | ExpandError::UnterminatedBrace { word }
            | ExpandError::MissingSlash { word }
            | ExpandError::BadSubstitution { word }
            | ExpandError::UnsupportedModifier { word, .. }
            | ExpandError::MissingRequired { word, .. }
            | ExpandError::InvalidPattern { word, .. }
            | ExpandError::TooDeep { word, .. }
            | ExpandError::TooLong { word, .. }
            | ExpandError::TooComplex { word, .. } => *word = source.to_owned(),
        }
        self
    }
}

/// Formats a string like Go's `%q` (printable non-ASCII approximated).
struct GoQuote<'a>(&'a str);

impl fmt::Display for GoQuote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\u{7}' => f.write_str("\\a")?,
                '\u{8}' => f.write_str("\\b")?,
                '\u{c}' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\u{b}' => f.write_str("\\v")?,
                ' ' => f.write_char(' ')?,
                c if (c as u32) < 0x80 && (c.is_ascii_control()) => {
                    write!(f, "\\x{:02x}", c as u32)?
                }
                c if c.is_control()
                    || c.is_whitespace()
                    || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}')
                    || matches!(c, '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}') =>
                {
                    if (c as u32) < 0x10000 {
                        write!(f, "\\u{:04x}", c as u32)?
                    } else {
                        write!(f, "\\U{:08x}", c as u32)?
                    }
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}
