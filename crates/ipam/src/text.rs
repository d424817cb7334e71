//! Helpers for putting user input into error messages.
//!
//! Messages end up in Kubernetes Events, conditions and CNI errors. Input can be anything an
//! admin (or a hostile pod creator) typed, so it is quoted, escaped and cut to a readable length.

use std::fmt;

/// The longest piece of input repeated in a message, in characters.
const MAX_SHOWN: usize = 80;

/// Shows user input quoted and escaped, cut to [`MAX_SHOWN`] characters.
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.char_indices();
        match chars.nth(MAX_SHOWN) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}...", &self.0[..cut]),
        }
    }
}

/// Quotes user input for a message; see [`Shown`].
pub(crate) fn shown(s: &str) -> Shown<'_> {
    Shown(s)
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn short_input_is_quoted_and_escaped() {
        assert_eq!(shown("a\"b\n").to_string(), r#""a\"b\n""#);
    }

    #[test]
    fn long_input_is_cut() {
        let long = "x".repeat(500);
        let out = shown(&long).to_string();
        assert!(out.len() < 100, "{out}");
        assert!(out.ends_with("..."));
    }
}
