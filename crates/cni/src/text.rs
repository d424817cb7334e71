//! Text from outside the plugin (the pod's annotations, the environment, standard input, the
//! kubeconfig, the API server's answers) as it may be shown in an error or a log line, and the
//! shapes of the names the plugin accepts.
//!
//! A CNI error message reaches pod events and the runtime's log as it is, so a value echoed
//! into it must not be able to start a new log line or fill the event: [`echo`] escapes
//! control characters and shows at most [`MAX_ECHO`] characters of the value, escapes
//! included. It is the one helper every message uses for a value it did not write itself.

use std::fmt::{self, Write};

/// The most characters shown of one outside value in a message, escapes included.
pub const MAX_ECHO: usize = 1000;

/// A value shown in a message: [`echo`].
#[derive(Clone, Copy)]
pub struct Echo<'a>(&'a str);

/// Shows `value` safely. `{}` writes it as it is but with control characters (newlines
/// included) and other unprintable characters escaped (`\n`, `\u{1b}`); `{:?}` also quotes it,
/// as Rust's `{:?}` does. Either way at most [`MAX_ECHO`] characters are shown, an escaped
/// character counting as the characters of its escape, followed by how many were left out.
pub fn echo(value: &str) -> Echo<'_> {
    Echo(value)
}

impl Echo<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>, quoted: bool) -> fmt::Result {
        if quoted {
            f.write_char('"')?;
        }
        // The limit is on what is shown: counting the value's characters instead would let
        // 1000 unprintable ones, each shown as up to 10, fill a message with 10,000.
        let mut width = 0;
        let mut cut = None;
        for (at, c) in self.0.char_indices() {
            width += shown_width(c, quoted);
            if width > MAX_ECHO {
                cut = Some(at);
                break;
            }
            write_char(f, c, quoted)?;
        }
        if quoted {
            f.write_char('"')?;
        }
        if let Some(at) = cut {
            write!(f, "... ({} more characters)", self.0[at..].chars().count())?;
        }
        Ok(())
    }
}

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl fmt::Debug for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char, quoted: bool) -> fmt::Result {
    if is_verbatim(c, quoted) {
        f.write_char(c)
    } else {
        write!(f, "{}", c.escape_debug())
    }
}

/// How many characters [`write_char`] shows for `c`.
fn shown_width(c: char, quoted: bool) -> usize {
    if is_verbatim(c, quoted) {
        1
    } else {
        c.escape_debug().len()
    }
}

/// Whether `c` is shown as it is although `escape_debug` would escape it: only a quoted value
/// needs its quotes and backslashes escaped to stay unambiguous, and no value its `'`.
fn is_verbatim(c: char, quoted: bool) -> bool {
    c == '\'' || (!quoted && matches!(c, '"' | '\\'))
}

/// `line` with every control character escaped, whatever its length: the last guard of the
/// logger and of the reply, so that one message is always one line.
pub fn one_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` is a DNS-1123 label, as Kubernetes requires of a namespace's name: at most
/// 63 lowercase letters, digits and '-', starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && label_shaped(name)
}

/// Whether `name` is a DNS-1123 subdomain, as Kubernetes requires of a pod's name and of a
/// custom resource's (IPPool, IPAMBlock): dot-separated labels, at most 253 characters in all
/// (Kubernetes limits only the whole, not each label).
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(label_shaped)
}

fn label_shaped(label: &str) -> bool {
    let bytes = label.as_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        let value = "pool \"gold\" is exhausted\nERROR forged line\r\u{1b}[31m\t";
        assert_eq!(
            echo(value).to_string(),
            "pool \"gold\" is exhausted\\nERROR forged line\\r\\u{1b}[31m\\t"
        );
        assert_eq!(format!("{:?}", echo("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(echo("grün, ok").to_string(), "grün, ok");
        // Bidirectional overrides could make a message read backwards.
        assert_eq!(echo("a\u{202e}b").to_string(), "a\\u{202e}b");
    }

    #[test]
    fn long_values_are_cut_and_say_how_much_is_missing() {
        let long = "x".repeat(MAX_ECHO + 234);
        let shown = echo(&long).to_string();
        assert!(shown.starts_with(&"x".repeat(MAX_ECHO)), "{shown}");
        assert!(shown.ends_with("x... (234 more characters)"), "{shown}");
        assert!(shown.len() < MAX_ECHO + 40);
        let quoted = format!("{:?}", echo(&long));
        assert!(quoted.ends_with("x\"... (234 more characters)"), "{quoted}");
        // Exactly the limit: nothing is cut.
        let exact = "y".repeat(MAX_ECHO);
        assert_eq!(echo(&exact).to_string(), exact);
    }

    #[test]
    fn escapes_count_towards_the_cut() {
        // Found by the fuzz test: 1000 unprintable characters in CNI_ARGS made a message of
        // 9,000 characters.
        let controls = "\u{1b}".repeat(MAX_ECHO);
        let shown = echo(&controls).to_string();
        // 166 escapes of 6 characters fit in MAX_ECHO.
        assert_eq!(
            shown,
            format!("{}... (834 more characters)", "\\u{1b}".repeat(166))
        );
        let quoted = format!("{:?}", echo(&"\u{202e}".repeat(2 * MAX_ECHO)));
        // 125 escapes of 8 characters fill it exactly.
        assert_eq!(
            quoted,
            format!("\"{}\"... (1875 more characters)", "\\u{202e}".repeat(125))
        );
        let quotes = "\"".repeat(MAX_ECHO);
        assert_eq!(
            echo(&quotes).to_string(),
            quotes,
            "shown as they are: not cut"
        );
    }

    #[test]
    fn one_line_keeps_lines_whole() {
        assert_eq!(one_line("a\nb\u{7f}"), "a\\nb\\u{7f}");
        let long = "z".repeat(5000);
        assert_eq!(one_line(&long), long);
    }

    #[test]
    fn kubernetes_names() {
        for ok in ["shop", "a", "kube-system", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "Shop", "-a", "a-", "a.b", "a\nb", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        for ok in ["web-0", "10-99-0-128-26", "a.b.c", "fd00-99---80-122"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "Web",
            "a_b",
            "web\n0",
            "a/b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
