//! Recursive-descent parser.
//!
//! ```text
//! expr      := and ( OR and )*
//! and       := primary ( AND primary )*
//! primary   := '(' expr ')' | field predicate
//! predicate := op value
//!            | [NOT] LIKE string
//!            | [NOT] IN '(' value ( ',' value )* ')'
//!            | IS [NOT] NULL
//! op        := '=' | '!=' | '<>' | '<' | '>' | '<=' | '>='
//! value     := string | number | TRUE | FALSE
//! field     := plain identifier | backquoted identifier
//! ```

use crate::ast::{CompareOp, Expr, Field, Literal, Number};
use crate::display::is_keyword;
use crate::error::{ParseError, ParseErrorKind as K};
use crate::lexer::{Lexer, Tok, Token};

/// The longest input [`parse`] accepts, in bytes.
pub const MAX_INPUT_LEN: usize = 16 * 1024;

/// The deepest nesting of parentheses [`parse`] accepts.
pub const MAX_DEPTH: usize = 64;

/// Parses a CEQL expression (the `where` parameter of a hub list call).
///
/// The result is in normal form (see [`Expr::normalized`]). Never panics;
/// inputs over [`MAX_INPUT_LEN`] bytes or nested deeper than [`MAX_DEPTH`]
/// are errors.
///
/// ```
/// use switchyard_ceql::{parse, Expr, CompareOp, Field, Literal};
/// let e = parse("`billing_address.email` = 'a@b.c' AND total >= 10").unwrap();
/// assert_eq!(e.conjuncts().len(), 2);
/// assert_eq!(e.to_string(), "billing_address.email = 'a@b.c' AND total >= 10");
/// let err = parse("name = 'O'Brien'").unwrap_err();
/// assert_eq!(err.to_string(), "expected AND or OR, found identifier Brien at position 10");
/// ```
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    if input.len() > MAX_INPUT_LEN {
        let mut at = MAX_INPUT_LEN;
        while !input.is_char_boundary(at) {
            at -= 1;
        }
        return Err(ParseError::new(
            input,
            at,
            K::TooLong,
            format!("expression longer than {MAX_INPUT_LEN} bytes"),
        ));
    }
    if input.trim().is_empty() {
        return Err(ParseError::new(input, 0, K::Empty, "empty expression"));
    }
    let mut p = Parser {
        input,
        lexer: Lexer::new(input),
        peeked: None,
        depth: 0,
    };
    let expr = p.expr()?;
    let t = p.bump()?;
    match t.tok {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.err(t.pos, K::UnmatchedParen, "unmatched ')'")),
        other => Err(p.err(
            t.pos,
            K::UnexpectedToken,
            format!("expected AND or OR, found {}", other.describe()),
        )),
    }
}

impl std::str::FromStr for Expr {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, pos: usize, kind: K, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.input, pos, kind, msg)
    }

    fn peek(&mut self) -> Result<&Token, ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next_token()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn bump(&mut self) -> Result<Token, ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next_token(),
        }
    }

    /// Consumes the next token if it is the keyword `kw`.
    fn eat_kw(&mut self, kw: &str) -> Result<bool, ParseError> {
        if self.peek()?.tok.is_kw(kw) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut items = Vec::new();
        loop {
            match self.and()? {
                Expr::Or(inner) => items.extend(inner),
                other => items.push(other),
            }
            if !self.eat_kw("OR")? {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = Vec::new();
        loop {
            match self.primary()? {
                Expr::And(inner) => items.extend(inner),
                other => items.push(other),
            }
            if !self.eat_kw("AND")? {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::And(items)
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.bump()?;
        match t.tok {
            Tok::LParen => {
                if self.depth >= MAX_DEPTH {
                    return Err(self.err(
                        t.pos,
                        K::TooDeep,
                        format!("parentheses nested deeper than {MAX_DEPTH}"),
                    ));
                }
                self.depth += 1;
                let inner = self.expr()?;
                self.depth -= 1;
                let close = self.bump()?;
                match close.tok {
                    Tok::RParen => Ok(inner),
                    Tok::Eof => Err(self.err(t.pos, K::UnclosedParen, "unclosed '('")),
                    other => Err(self.err(
                        close.pos,
                        K::UnexpectedToken,
                        format!("expected AND, OR or ')', found {}", other.describe()),
                    )),
                }
            }
            Tok::Quoted(name) => self.predicate(Field(name)),
            Tok::Ident(name) if !is_keyword(&name) => self.predicate(Field(name)),
            Tok::Ident(kw) if kw.eq_ignore_ascii_case("NOT") => Err(self.err(
                t.pos,
                K::UnexpectedToken,
                "NOT is only allowed in NOT LIKE, NOT IN and IS NOT NULL",
            )),
            Tok::Ident(kw) => Err(self.err(
                t.pos,
                K::UnexpectedToken,
                format!(
                    "expected a field name, found keyword {} (quote a field of that name in backquotes: `{}`)",
                    kw.to_ascii_uppercase(),
                    kw
                ),
            )),
            Tok::Eof => Err(self.err(
                t.pos,
                K::UnexpectedEnd,
                "expected a field name or '(', found end of input",
            )),
            Tok::RParen if self.depth == 0 => Err(self.err(t.pos, K::UnmatchedParen, "unmatched ')'")),
            other @ (Tok::Str(_) | Tok::Num(_)) => Err(self.err(
                t.pos,
                K::UnexpectedToken,
                format!(
                    "expected a field name, found {} (the field goes on the left of the operator)",
                    other.describe()
                ),
            )),
            other => Err(self.err(
                t.pos,
                K::UnexpectedToken,
                format!("expected a field name or '(', found {}", other.describe()),
            )),
        }
    }

    fn predicate(&mut self, field: Field) -> Result<Expr, ParseError> {
        let t = self.bump()?;
        match t.tok {
            Tok::Op(op) => {
                if op == CompareOp::Eq && self.peek()?.tok == Tok::Op(CompareOp::Eq) {
                    let pos = self.peek()?.pos;
                    return Err(self.err(
                        pos,
                        K::UnexpectedToken,
                        "'==' is not an operator; use '='",
                    ));
                }
                let value = self.value(&format!("after '{op}'"))?;
                Ok(Expr::Compare { field, op, value })
            }
            ref kw if kw.is_kw("LIKE") => self.like(field, false),
            ref kw if kw.is_kw("IN") => self.in_list(field, false),
            ref kw if kw.is_kw("NOT") => {
                let next = self.bump()?;
                if next.tok.is_kw("LIKE") {
                    self.like(field, true)
                } else if next.tok.is_kw("IN") {
                    self.in_list(field, true)
                } else {
                    Err(self.unexpected(&next, "LIKE or IN after NOT"))
                }
            }
            ref kw if kw.is_kw("IS") => {
                let negated = self.eat_kw("NOT")?;
                let next = self.bump()?;
                if next.tok.is_kw("NULL") {
                    Ok(Expr::IsNull { field, negated })
                } else {
                    let want = if negated {
                        "NULL after IS NOT"
                    } else {
                        "NULL or NOT NULL after IS"
                    };
                    Err(self.unexpected(&next, want))
                }
            }
            _ => Err(self.unexpected(
                &t,
                &format!("an operator (=, !=, <, >, <=, >=, LIKE, IN, IS) after field {field}"),
            )),
        }
    }

    fn like(&mut self, field: Field, negated: bool) -> Result<Expr, ParseError> {
        let t = self.bump()?;
        match t.tok {
            Tok::Str(pattern) => Ok(Expr::Like {
                field,
                pattern,
                negated,
            }),
            _ => Err(self.unexpected(&t, "a quoted string pattern after LIKE")),
        }
    }

    fn in_list(&mut self, field: Field, negated: bool) -> Result<Expr, ParseError> {
        let open = self.bump()?;
        if open.tok != Tok::LParen {
            return Err(self.unexpected(&open, "'(' after IN"));
        }
        if self.peek()?.tok == Tok::RParen {
            let pos = self.peek()?.pos;
            return Err(self.err(pos, K::UnexpectedToken, "empty IN list"));
        }
        let mut values = vec![self.value("in IN list")?];
        loop {
            let t = self.bump()?;
            match t.tok {
                Tok::Comma => values.push(self.value("after ','")?),
                Tok::RParen => break,
                Tok::Eof => {
                    return Err(self.err(open.pos, K::UnclosedParen, "unclosed '(' of IN list"))
                }
                _ => return Err(self.unexpected(&t, "',' or ')' in IN list")),
            }
        }
        Ok(Expr::In {
            field,
            values,
            negated,
        })
    }

    /// A literal; `context` says where, for messages ("after '='").
    fn value(&mut self, context: &str) -> Result<Literal, ParseError> {
        let t = self.bump()?;
        match t.tok {
            Tok::Str(s) => Ok(Literal::String(s)),
            Tok::Num(n) => match n.parse::<Number>() {
                Ok(n) => Ok(Literal::Number(n)),
                Err(_) => Err(self.err(t.pos, K::InvalidNumber, format!("invalid number {n}"))),
            },
            ref kw if kw.is_kw("TRUE") => Ok(Literal::Bool(true)),
            ref kw if kw.is_kw("FALSE") => Ok(Literal::Bool(false)),
            ref kw if kw.is_kw("NULL") => Err(self.err(
                t.pos,
                K::UnexpectedToken,
                "NULL is not a value; use IS NULL or IS NOT NULL",
            )),
            _ => Err(self.unexpected(
                &t,
                &format!("a value ('string', number, true or false) {context}"),
            )),
        }
    }

    /// "expected WANT, found TOKEN" at the token.
    fn unexpected(&self, t: &Token, want: &str) -> ParseError {
        let kind = if t.tok == Tok::Eof {
            K::UnexpectedEnd
        } else {
            K::UnexpectedToken
        };
        self.err(
            t.pos,
            kind,
            format!("expected {want}, found {}", t.tok.describe()),
        )
    }
}
