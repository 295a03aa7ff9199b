//! Tokens, produced one at a time so that the first problem in the input is
//! the one reported.

use crate::ast::{scan_number, CompareOp};
use crate::display::{is_ident_continue, is_ident_start};
use crate::error::{ParseError, ParseErrorKind as K};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Op(CompareOp),
    Str(String),
    Num(String),
    /// A plain identifier, which may be a keyword.
    Ident(String),
    /// A backquoted identifier, never a keyword.
    Quoted(String),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub pos: usize,
}

impl Tok {
    /// The token as a person would name it in a message.
    pub fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Op(op) => format!("'{op}'"),
            Tok::Str(s) => format!("string {}", crate::quote_string(&shorten(s))),
            Tok::Num(n) => format!("number {}", shorten(n)),
            Tok::Ident(s) if crate::display::is_keyword(s) => s.to_ascii_uppercase(),
            Tok::Ident(s) => format!("identifier {}", shorten(s)),
            Tok::Quoted(s) => format!("identifier {}", crate::quote_field(&shorten(s))),
            Tok::Eof => "end of input".to_owned(),
        }
    }

    /// Whether this is the keyword `kw` (given in upper case).
    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
}

/// At most 40 characters of `s`, for messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Self {
        Lexer { input, pos: 0 }
    }

    fn err(&self, pos: usize, kind: K, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.input, pos, kind, msg)
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        let trimmed = self.rest().trim_start();
        self.pos = self.input.len() - trimmed.len();
        let start = self.pos;
        let Some(c) = trimmed.chars().next() else {
            return Ok(Token {
                tok: Tok::Eof,
                pos: start,
            });
        };
        let bytes = trimmed.as_bytes();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '=' => (Tok::Op(CompareOp::Eq), 1),
            '!' if bytes.get(1) == Some(&b'=') => (Tok::Op(CompareOp::Ne), 2),
            '<' => match bytes.get(1) {
                Some(b'=') => (Tok::Op(CompareOp::Le), 2),
                Some(b'>') => (Tok::Op(CompareOp::Ne), 2),
                _ => (Tok::Op(CompareOp::Lt), 1),
            },
            '>' => match bytes.get(1) {
                Some(b'=') => (Tok::Op(CompareOp::Ge), 2),
                _ => (Tok::Op(CompareOp::Gt), 1),
            },
            '\'' => self.quoted(start, '\'')?,
            '`' => self.quoted(start, '`')?,
            '-' | '0'..='9' => self.number(start)?,
            c if is_ident_start(c) => self.identifier(start)?,
            c => {
                let hint = match c {
                    '"' => " (strings use single quotes; backquotes quote field names)",
                    '!' => " (did you mean '!='?)",
                    _ => "",
                };
                return Err(self.err(
                    start,
                    K::UnexpectedChar,
                    format!("unexpected character {c:?}{hint}"),
                ));
            }
        };
        self.pos = start + len;
        Ok(Token { tok, pos: start })
    }

    /// A `'string'` or a `` `field` ``: the closing quote doubled stands for
    /// itself. Returns the token and its length in bytes.
    fn quoted(&self, start: usize, quote: char) -> Result<(Tok, usize), ParseError> {
        let body = &self.input[start + 1..];
        let mut text = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != quote {
                text.push(c);
                continue;
            }
            if let Some((_, next)) = chars.peek() {
                if *next == quote {
                    chars.next();
                    text.push(quote);
                    continue;
                }
            }
            // Closing quote at byte `i` of the body.
            let len = 1 + i + 1;
            if quote == '\'' {
                return Ok((Tok::Str(text), len));
            }
            if text.is_empty() {
                return Err(self.err(start, K::InvalidField, "empty quoted field name"));
            }
            return Ok((Tok::Quoted(text), len));
        }
        Err(if quote == '\'' {
            self.err(start, K::UnterminatedString, "unterminated string")
        } else {
            self.err(
                start,
                K::UnterminatedIdentifier,
                "unterminated quoted field name",
            )
        })
    }

    fn number(&self, start: usize) -> Result<(Tok, usize), ParseError> {
        let rest = &self.input[start..];
        if rest.starts_with('-') && !rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.err(
                start,
                K::UnexpectedChar,
                "unexpected character '-' (a negative number is written -5, with no space)",
            ));
        }
        match scan_number(rest.as_bytes()) {
            // A number must not run into a name: `12abc`, `1.5.2`.
            Some(len) if !rest[len..].chars().next().is_some_and(is_ident_continue) => {
                Ok((Tok::Num(rest[..len].to_owned()), len))
            }
            _ => {
                let bad = self.word_at(start, true);
                Err(self.err(
                    start,
                    K::InvalidNumber,
                    format!("invalid number {}", shorten(bad)),
                ))
            }
        }
    }

    fn identifier(&self, start: usize) -> Result<(Tok, usize), ParseError> {
        let word = self.word_at(start, false);
        if word.ends_with('.') || word.contains("..") {
            return Err(self.err(
                start,
                K::InvalidField,
                format!("invalid field name {} (empty path segment)", shorten(word)),
            ));
        }
        Ok((Tok::Ident(word.to_owned()), word.len()))
    }

    /// The run of identifier characters at `start`; for a number also a
    /// leading `-` and a sign after an exponent mark.
    fn word_at(&self, start: usize, number: bool) -> &'a str {
        let rest = &self.input[start..];
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let sign = number
                && (c == '-' && i == 0
                    || matches!(c, '+' | '-') && rest[..i].ends_with(['e', 'E']));
            if !(is_ident_continue(c) || sign) {
                break;
            }
            end = i + c.len_utf8();
        }
        &rest[..end]
    }
}
