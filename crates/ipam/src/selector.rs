//! Calico selector expressions, as used in a pool's `nodeSelector` and `namespaceSelector`.
//!
//! The whole syntax admins paste from Calico manifests is supported: `all()`, `k == 'v'`,
//! `k != 'v'`, `has(k)`, `!has(k)`, `k in {'a', 'b'}`, `k not in {...}`, `k contains 's'`,
//! `k starts with 's'`, `k ends with 's'`, `&&`, `||`, `!` and parentheses, with strings in single
//! or double quotes (no escapes; a string simply cannot contain its own quote character).
//! Precedence, loosest first: `||`, `&&`, `!`. An empty (or all-blank) selector means `all()`.
//! Every other spelling Calico's tokenizer accepts is accepted too (`startswith`, `endswith` and
//! `notin` as one word, `a in{'x'}`, a comma before a set's `}`, ...), and what it refuses is
//! refused, blanks other than spaces and tabs included; `parser` lists the rules. The one
//! deliberate difference: parentheses nested deeper than [`MAX_DEPTH`] are refused.
//!
//! Semantics follow Calico where a label is missing: `k != 'v'` and `k not in {...}` match a
//! missing label (they are the negations of `==` and `in`), while `==`, `in`, `contains`,
//! `starts with` and `ends with` do not. `global()` is accepted by Calico only in network
//! policies; in a pool it is refused with a message saying to use `all()`.
//!
//! [`Selector`]'s `Display` prints a canonical form (double quotes unless the value contains one,
//! sets sorted and deduplicated, only the parentheses precedence needs) that parses back to an
//! equal selector.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::text::shown;

mod parser;

/// Longest label name Calico accepts in a selector.
pub const MAX_LABEL_LEN: usize = 512;

/// Deepest nesting of parentheses accepted, so hostile input cannot exhaust the stack. Calico has
/// no limit; no real selector comes near this one. (Leading `!`s do not nest: any number parses.)
pub const MAX_DEPTH: usize = 64;

/// A parsed Calico selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    expr: Expr,
}

/// The selector's syntax tree. `And`/`Or` hold at least two operands, none of the same kind
/// (nested ones are flattened), so equal selectors have equal trees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    All,
    Has(String),
    Eq(String, String),
    Ne(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Why a selector does not parse. Every variant names the selector and the 1-based column
/// (in characters) where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// Something other than what the grammar allows at this point.
    #[error(
        "selector {}: at column {column}: expected {expected}, found {found}",
        shown(input)
    )]
    Syntax {
        /// The selector as given.
        input: String,
        /// 1-based character column.
        column: usize,
        /// What would have been valid here, in words.
        expected: &'static str,
        /// What is there instead.
        found: String,
    },
    /// A quoted string without its closing quote.
    #[error(
        "selector {}: at column {column}: the string starting here has no closing {quote}",
        shown(input)
    )]
    UnterminatedString {
        /// The selector as given.
        input: String,
        /// 1-based character column of the opening quote.
        column: usize,
        /// The quote character that is missing.
        quote: char,
    },
    /// `global()` appears; it has no meaning for a pool.
    #[error(
        "selector {}: at column {column}: global() is only valid in network policies, not in a pool; use all() to match everything",
        shown(input)
    )]
    Global {
        /// The selector as given.
        input: String,
        /// 1-based character column of `global`.
        column: usize,
    },
    /// Parentheses nested deeper than [`MAX_DEPTH`].
    #[error(
        "selector {}: at column {column}: nested more than {MAX_DEPTH} levels deep",
        shown(input)
    )]
    TooDeep {
        /// The selector as given.
        input: String,
        /// 1-based character column where the limit was passed.
        column: usize,
    },
}

impl SelectorError {
    /// Short stable label for events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SelectorError::Syntax { .. } => "SelectorSyntax",
            SelectorError::UnterminatedString { .. } => "UnterminatedString",
            SelectorError::Global { .. } => "GlobalNotAllowed",
            SelectorError::TooDeep { .. } => "SelectorTooDeep",
        }
    }

    /// The 1-based character column the error points at.
    pub fn column(&self) -> usize {
        match self {
            SelectorError::Syntax { column, .. }
            | SelectorError::UnterminatedString { column, .. }
            | SelectorError::Global { column, .. }
            | SelectorError::TooDeep { column, .. } => *column,
        }
    }
}

impl Selector {
    /// Parses a selector. An empty or blank string means `all()`.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        parser::parse(input).map(|expr| Selector { expr })
    }

    /// The selector that matches everything.
    pub fn all() -> Selector {
        Selector { expr: Expr::All }
    }

    /// True for `all()` (and so for an empty selector), which matches any labels.
    pub fn is_all(&self) -> bool {
        self.expr == Expr::All
    }

    /// Whether the labels satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.eval(labels)
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::all()
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl Expr {
    fn eval(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = |k: &String| labels.get(k).map(String::as_str);
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => value(k) == Some(v.as_str()),
            Expr::Ne(k, v) => value(k) != Some(v.as_str()),
            Expr::In(k, set) => value(k).is_some_and(|x| set.contains(x)),
            Expr::NotIn(k, set) => !value(k).is_some_and(|x| set.contains(x)),
            Expr::Contains(k, s) => value(k).is_some_and(|x| x.contains(s.as_str())),
            Expr::StartsWith(k, s) => value(k).is_some_and(|x| x.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => value(k).is_some_and(|x| x.ends_with(s.as_str())),
            Expr::Not(e) => !e.eval(labels),
            Expr::And(es) => es.iter().all(|e| e.eval(labels)),
            Expr::Or(es) => es.iter().any(|e| e.eval(labels)),
        }
    }

    /// Binding strength, for printing only the parentheses that are needed.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 1,
            Expr::And(_) => 2,
            _ => 3,
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, min_precedence: u8) -> fmt::Result {
        if self.precedence() < min_precedence {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// Writes a string value in the quote it does not contain (double by default).
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let quote = if s.contains('"') { '\'' } else { '"' };
    write!(f, "{quote}{s}{quote}")
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &BTreeSet<String>) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, v)?;
    }
    f.write_str("}")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = |f: &mut fmt::Formatter<'_>, k: &str, op: &str, v: &str| {
            write!(f, "{k} {op} ")?;
            write_quoted(f, v)
        };
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => op(f, k, "==", v),
            Expr::Ne(k, v) => op(f, k, "!=", v),
            Expr::Contains(k, v) => op(f, k, "contains", v),
            Expr::StartsWith(k, v) => op(f, k, "starts with", v),
            Expr::EndsWith(k, v) => op(f, k, "ends with", v),
            Expr::In(k, set) => {
                write!(f, "{k} in ")?;
                write_set(f, set)
            }
            Expr::NotIn(k, set) => {
                write!(f, "{k} not in ")?;
                write_set(f, set)
            }
            Expr::Not(e) => {
                f.write_str("!")?;
                e.fmt_operand(f, 3)
            }
            Expr::And(es) | Expr::Or(es) => {
                let (sep, min) = if matches!(self, Expr::And(_)) {
                    (" && ", 2)
                } else {
                    (" || ", 1)
                };
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    e.fmt_operand(f, min)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
