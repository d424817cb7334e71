//! Recursive-descent parser for Calico selectors.
//!
//! Grammar (loosest binding first):
//!
//! ```text
//! selector := or | <blank>
//! or       := and ( "||" and )*
//! and      := unary ( "&&" unary )*
//! unary    := "!" unary | primary
//! primary  := "(" or ")" | "all" "(" ")" | "has" "(" label ")" | label op
//! op       := ("==" | "!=" | "contains" | "starts" "with" | "ends" "with") string
//!           | ("in" | "not" "in") "{" [ string ( "," string )* ] "}"
//! label    := [a-zA-Z0-9_./-]{1,512}
//! string   := '...' | "..."
//! ```
//!
//! Whitespace (any ASCII blank, so YAML folded strings work) may appear between tokens.

use std::collections::BTreeSet;

use super::{Expr, MAX_DEPTH, MAX_LABEL_LEN, SelectorError};

/// What may start an expression, for error messages.
const EXPR_START: &str = "a label name, has(...), all(), '!' or '('";
/// What may follow a label, for error messages.
const OPERATOR: &str =
    "an operator after the label name (==, !=, in, not in, contains, starts with, ends with)";

pub(super) fn parse(input: &str) -> Result<Expr, SelectorError> {
    let mut p = Parser {
        src: input,
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    if p.at_end() {
        return Ok(Expr::All);
    }
    let expr = p.or()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.syntax("'&&', '||' or the end of the selector"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
    /// Current nesting of parentheses and `!`.
    depth: usize,
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    /// Consumes `token` if the input continues with it.
    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// 1-based character column of a byte offset.
    fn column_at(&self, pos: usize) -> usize {
        self.src.get(..pos).map_or(0, |s| s.chars().count()) + 1
    }

    /// Describes what stands at byte offset `pos`: a word, one character, or the end.
    fn found_at(&self, pos: usize) -> String {
        let rest = self.src.get(pos..).unwrap_or("");
        let word_len = rest.bytes().take_while(|b| is_label_byte(*b)).count();
        if word_len > 0 {
            let word: String = rest[..word_len].chars().take(40).collect();
            format!("'{word}'")
        } else if let Some(c) = rest.chars().next() {
            format!("{c:?}")
        } else {
            "the end of the selector".to_owned()
        }
    }

    fn syntax(&self, expected: &'static str) -> SelectorError {
        self.syntax_at(self.pos, expected)
    }

    fn syntax_at(&self, pos: usize, expected: &'static str) -> SelectorError {
        SelectorError::Syntax {
            input: self.src.to_owned(),
            column: self.column_at(pos),
            expected,
            found: self.found_at(pos),
        }
    }

    fn enter(&mut self) -> Result<(), SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SelectorError::TooDeep {
                input: self.src.to_owned(),
                column: self.column_at(self.pos),
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut operands = vec![self.and()?];
        loop {
            self.skip_ws();
            if !self.eat("||") {
                break;
            }
            operands.push(self.and()?);
        }
        Ok(join(operands, false))
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut operands = vec![self.unary()?];
        loop {
            self.skip_ws();
            if !self.eat("&&") {
                break;
            }
            operands.push(self.unary()?);
        }
        Ok(join(operands, true))
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        self.skip_ws();
        if self.peek() == Some(b'!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            self.enter()?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(operand)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        self.skip_ws();
        if self.eat("(") {
            self.enter()?;
            let inner = self.or()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.syntax("'&&', '||' or ')'"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let start = self.pos;
        let Some(word) = self.word() else {
            return Err(self.syntax(EXPR_START));
        };
        let after_word = self.pos;
        self.skip_ws();
        if self.peek() == Some(b'(') && matches!(word, "all" | "has" | "global") {
            self.pos += 1;
            self.skip_ws();
            return match word {
                "all" => {
                    self.close_paren("')' after all(")?;
                    Ok(Expr::All)
                }
                "has" => {
                    let label = self.label("a label name inside has(...)")?;
                    self.skip_ws();
                    self.close_paren("')' after the label name in has(...)")?;
                    Ok(Expr::Has(label))
                }
                _ => Err(SelectorError::Global {
                    input: self.src.to_owned(),
                    column: self.column_at(start),
                }),
            };
        }
        self.pos = after_word;
        let label = self.check_label(start, word)?;
        self.operation(label)
    }

    fn close_paren(&mut self, expected: &'static str) -> Result<(), SelectorError> {
        if self.eat(")") {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    /// Reads a run of label characters, if any.
    fn word(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let len = rest.bytes().take_while(|b| is_label_byte(*b)).count();
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(&rest[..len])
    }

    fn label(&mut self, expected: &'static str) -> Result<String, SelectorError> {
        let start = self.pos;
        let word = self.word().ok_or_else(|| self.syntax(expected))?;
        self.check_label(start, word)
    }

    fn check_label(&self, start: usize, word: &str) -> Result<String, SelectorError> {
        if word.len() > MAX_LABEL_LEN {
            return Err(self.syntax_at(start, "a label name of at most 512 characters"));
        }
        Ok(word.to_owned())
    }

    fn operation(&mut self, label: String) -> Result<Expr, SelectorError> {
        self.skip_ws();
        if self.eat("==") {
            return Ok(Expr::Eq(label, self.string()?));
        }
        if self.eat("!=") {
            return Ok(Expr::Ne(label, self.string()?));
        }
        let op_start = self.pos;
        match self.word() {
            Some("in") => Ok(Expr::In(label, self.set()?)),
            Some("contains") => Ok(Expr::Contains(label, self.string()?)),
            Some("not") => {
                self.keyword("in")?;
                Ok(Expr::NotIn(label, self.set()?))
            }
            Some("starts") => {
                self.keyword("with")?;
                Ok(Expr::StartsWith(label, self.string()?))
            }
            Some("ends") => {
                self.keyword("with")?;
                Ok(Expr::EndsWith(label, self.string()?))
            }
            _ => Err(self.syntax_at(op_start, OPERATOR)),
        }
    }

    /// Requires the second word of a two-word operator (`not in`, `starts with`, `ends with`).
    fn keyword(&mut self, second: &str) -> Result<(), SelectorError> {
        self.skip_ws();
        let at = self.pos;
        if self.word() == Some(second) {
            Ok(())
        } else {
            Err(self.syntax_at(at, OPERATOR))
        }
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        self.skip_ws();
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(self.syntax("a quoted string")),
        };
        let open = self.pos;
        self.pos += 1;
        let rest = self.rest();
        let Some(len) = rest.bytes().position(|b| b == quote) else {
            return Err(SelectorError::UnterminatedString {
                input: self.src.to_owned(),
                column: self.column_at(open),
                quote: char::from(quote),
            });
        };
        self.pos += len + 1;
        Ok(rest[..len].to_owned())
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.skip_ws();
        if !self.eat("{") {
            return Err(self.syntax("'{' starting a set of quoted strings"));
        }
        let mut values = BTreeSet::new();
        self.skip_ws();
        if self.eat("}") {
            return Ok(values);
        }
        loop {
            values.insert(self.string()?);
            self.skip_ws();
            if self.eat("}") {
                return Ok(values);
            }
            if !self.eat(",") {
                return Err(self.syntax("',' or '}' in a set"));
            }
        }
    }
}

/// Builds an `And` (or an `Or`) from its operands, flattening nested ones of the same kind so
/// that `a && (b && c)` and `a && b && c` give the same tree.
fn join(operands: Vec<Expr>, and: bool) -> Expr {
    let mut flat = Vec::with_capacity(operands.len());
    for e in operands {
        match e {
            Expr::And(inner) if and => flat.extend(inner),
            Expr::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() > 1 {
        return if and { Expr::And(flat) } else { Expr::Or(flat) };
    }
    // One operand: no operator was written. The parser never passes zero.
    flat.pop().unwrap_or(Expr::All)
}
