//! Recursive-descent parser for Calico selectors.
//!
//! Grammar (loosest binding first):
//!
//! ```text
//! selector := or | <blank>
//! or       := and ( "||" and )*
//! and      := unary ( "&&" unary )*
//! unary    := "!"* primary
//! primary  := "(" or ")" | "all(" ")" | "has(" label ")" | label op
//! op       := ("==" | "!=" | "contains" | "starts" _ "with" | "ends" _ "with") string
//!           | ("in" | "not" _ "in") "{" [ string ( "," string )* [ "," ] ] "}"
//! label    := [a-zA-Z0-9_./-]{1,512}
//! string   := '...' | "..."
//! ```
//!
//! This is the language Calico's tokenizer and parser accept (libcalico-go `lib/selector`), with
//! their edge cases:
//! - Blanks are spaces and tabs only. Calico refuses any other whitespace outside quotes, line
//!   breaks included, so a selector written over several lines (or with a trailing newline from a
//!   YAML `|` block) is refused here too, with a message saying so.
//! - `_` between the words of `starts with`, `ends with` and `not in` stands for any run of blanks,
//!   possibly empty: `startswith`, `endswith` and `notin` are the same operators. An operator word
//!   must not run on into label characters (`a inside {...}` is not `a in side`), but may touch a
//!   quote or a brace (`a in{'x'}`, `a contains'x'`).
//! - `all(`, `has(` and `global(` are one token each: no blank before the parenthesis (`has (a)`
//!   is a label `has` followed by `(`, which Calico refuses), blanks inside are fine (`has( a )`).
//! - A set may end with one comma (`{'a', 'b',}`); an empty set is allowed.
//! - Leading `!`s cancel in pairs, however many there are. Only parentheses count toward
//!   [`MAX_DEPTH`]; Calico has no such limit (see the module docs).
//! - Strings have no escapes; a string may contain anything but its own quote, line breaks too.
//! - Keywords are case-sensitive; numbers and bare words are not values (`a == 1` is refused).

use std::collections::BTreeSet;

use super::{Expr, MAX_DEPTH, MAX_LABEL_LEN, SelectorError};

/// What may start an expression, for error messages.
const EXPR_START: &str = "a label name, has(...), all(), '!' or '('";
/// What may follow a label, for error messages.
const OPERATOR: &str = concat!(
    "an operator after the label name (==, !=, in, not in, contains, starts with, ends with; ",
    "also startswith, endswith, notin)"
);
/// Said instead of what was expected when the parser stops at whitespace Calico does not accept.
const ONLY_BLANKS: &str = concat!(
    "a space or a tab: Calico allows no other whitespace between tokens, line breaks included ",
    "(in YAML, write the selector on one line or as a '>-' block)"
);
/// Said when `all`, `has` or `global` is separated from its parenthesis.
const GLUED_PAREN: &str = concat!(
    "'(' directly after the word (Calico reads all(, has( and global( as one token: ",
    "no blank before '(')"
);

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
    /// Current nesting of parentheses.
    depth: usize,
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

/// The only whitespace Calico skips between tokens.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
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
        while self.peek().is_some_and(is_blank) {
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
        // The parser skips blanks wherever a token may start, so stopping at other whitespace
        // means that whitespace is the problem, whatever else would have been valid here.
        let other_space = self
            .src
            .get(pos..)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_whitespace() && !matches!(c, ' ' | '\t'));
        let expected = if other_space { ONLY_BLANKS } else { expected };
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

    /// Leading `!`s are counted rather than recursed into, as Calico does, so any number of them
    /// parses, and an even number cancels out.
    fn unary(&mut self) -> Result<Expr, SelectorError> {
        let mut negated = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(b'!') && !self.rest().starts_with("!=") {
                self.pos += 1;
                negated = !negated;
            } else {
                break;
            }
        }
        let operand = self.primary()?;
        Ok(if negated { negate(operand) } else { operand })
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
        let function = matches!(word, "all" | "has" | "global");
        if function && self.peek() == Some(b'(') {
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
        if function {
            // `has (a)`: for Calico this is the label `has` followed by `(`, which no operator
            // starts. Say what was probably meant.
            self.skip_ws();
            if self.peek() == Some(b'(') {
                return Err(self.syntax_at(after_word, GLUED_PAREN));
            }
            self.pos = after_word;
        }
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
        // A word is a whole run of label characters, so `a inside` is never `a in side`: Calico
        // likewise wants a word boundary after an operator.
        let op_start = self.pos;
        match self.word() {
            Some("in") => Ok(Expr::In(label, self.set()?)),
            Some("contains") => Ok(Expr::Contains(label, self.string()?)),
            Some("notin") => Ok(Expr::NotIn(label, self.set()?)),
            Some("startswith") => Ok(Expr::StartsWith(label, self.string()?)),
            Some("endswith") => Ok(Expr::EndsWith(label, self.string()?)),
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

    /// Requires the second word of a two-word operator (`not in`, `starts with`, `ends with`)
    /// after any blanks.
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
        // `{}`, `{'a'}`, `{'a', 'b'}` and, as Calico allows, one comma before the brace.
        let mut values = BTreeSet::new();
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(values);
            }
            if !matches!(self.peek(), Some(b'"' | b'\'')) {
                return Err(self.syntax("a quoted string or '}' in a set"));
            }
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

/// `!e`, with a double negation removed so that `!(!e)` and `!!e` give the same tree as `e`.
fn negate(e: Expr) -> Expr {
    match e {
        Expr::Not(inner) => *inner,
        other => Expr::Not(Box::new(other)),
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
