//! Parse errors.

use std::fmt;

/// Why an expression did not parse, and where.
///
/// `position` is the byte offset in the input of the offending token (or of
/// the opening quote of an unterminated string, or of the unclosed
/// parenthesis); `column` is the same place counted in characters, so the
/// two agree for ASCII input. Both start at 0. The message never repeats
/// the position; [`Display`](fmt::Display) appends `at position N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the input.
    pub position: usize,
    /// Character offset of the problem in the input.
    pub column: usize,
    /// What went wrong, for a person.
    pub message: String,
    /// What went wrong, for a program.
    pub kind: ParseErrorKind,
}

/// The class of a [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The input is empty or only whitespace.
    Empty,
    /// The input is longer than [`MAX_INPUT_LEN`](crate::MAX_INPUT_LEN).
    TooLong,
    /// Parentheses nest deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    TooDeep,
    /// A `'string'` has no closing quote.
    UnterminatedString,
    /// A `` `field` `` has no closing backquote.
    UnterminatedIdentifier,
    /// A character that starts no token.
    UnexpectedChar,
    /// A malformed number such as `1.` or `12abc`.
    InvalidNumber,
    /// A malformed field name such as `a..b` or ``` `` ```.
    InvalidField,
    /// A token where another was needed.
    UnexpectedToken,
    /// The input ended where more was needed.
    UnexpectedEnd,
    /// A `(` without its `)`.
    UnclosedParen,
    /// A `)` without its `(`.
    UnmatchedParen,
}

impl ParseError {
    pub(crate) fn new(
        input: &str,
        position: usize,
        kind: ParseErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ParseError {
            position,
            column: char_column(input, position),
            message: message.into(),
            kind,
        }
    }
}

/// Number of characters before byte `position` (counting a character that
/// `position` falls inside as before it).
fn char_column(input: &str, position: usize) -> usize {
    input
        .char_indices()
        .take_while(|(i, _)| *i < position)
        .count()
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

impl std::error::Error for ParseError {}
