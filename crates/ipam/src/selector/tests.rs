#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn empty_and_blank_mean_all() {
    for s in ["", "   ", "\t\n", "all()", " all ( ) "] {
        let s = sel(s);
        assert!(s.is_all());
        assert!(s.matches(&labels(&[])));
        assert_eq!(s.to_string(), "all()");
    }
}

#[test]
fn comparisons_follow_calico_on_present_labels() {
    let l = labels(&[("zone", "eu-west-1a"), ("tier", "fw")]);
    let cases = [
        ("zone == 'eu-west-1a'", true),
        ("zone == \"eu-west-1b\"", false),
        ("zone != 'eu-west-1b'", true),
        ("zone != 'eu-west-1a'", false),
        ("has(zone)", true),
        ("!has(zone)", false),
        ("has(rack)", false),
        ("!has(rack)", true),
        ("tier in {'fw', 'dmz'}", true),
        ("tier in {'dmz'}", false),
        ("tier not in {'dmz'}", true),
        ("tier not in {'fw'}", false),
        ("zone contains 'west'", true),
        ("zone contains 'east'", false),
        ("zone starts with 'eu-'", true),
        ("zone starts with 'us-'", false),
        ("zone ends with '1a'", true),
        ("zone ends with '1b'", false),
    ];
    for (s, want) in cases {
        assert_eq!(sel(s).matches(&l), want, "{s}");
    }
}

#[test]
fn missing_label_matches_only_negative_operators() {
    // Calico: `!=` and `not in` are the negations of `==` and `in`, so they match an absent
    // label; every positive operator needs the label.
    let none = labels(&[]);
    let cases = [
        ("k == 'v'", false),
        ("k != 'v'", true),
        ("k in {'v'}", false),
        ("k not in {'v'}", true),
        ("k contains ''", false),
        ("k starts with ''", false),
        ("k ends with ''", false),
        ("!(k == 'v')", true),
    ];
    for (s, want) in cases {
        assert_eq!(sel(s).matches(&none), want, "{s}");
    }
}

#[test]
fn precedence_is_or_then_and_then_not() {
    let l = labels(&[("a", "1")]);
    // `a == '1' || b == '1' && c == '1'` is `a || (b && c)`: true.
    assert!(sel("a == '1' || b == '1' && c == '1'").matches(&l));
    // With parentheses the other way round it is false.
    assert!(!sel("(a == '1' || b == '1') && c == '1'").matches(&l));
    // `!` binds tighter than `&&`.
    assert!(!sel("!has(a) && has(a)").matches(&l));
    assert!(sel("!(has(a) && has(b))").matches(&l));
    assert!(sel("!!has(a)").matches(&l));
}

#[test]
fn both_quote_styles_and_quotes_inside() {
    let l = labels(&[("msg", "say \"hi\""), ("o", "it's")]);
    assert!(sel("msg == 'say \"hi\"'").matches(&l));
    assert!(sel("o == \"it's\"").matches(&l));
    assert_eq!(
        sel("msg == 'say \"hi\"'").to_string(),
        "msg == 'say \"hi\"'"
    );
    assert_eq!(sel("o == \"it's\"").to_string(), "o == \"it's\"");
}

#[test]
fn display_is_canonical() {
    let cases = [
        ("a=='b'", "a == \"b\""),
        ("  has( a )", "has(a)"),
        ("k in {'b','a','b'}", "k in {\"a\", \"b\"}"),
        ("k not in {}", "k not in {}"),
        (
            "a == 'x' && (b == 'y' || c == 'z')",
            "a == \"x\" && (b == \"y\" || c == \"z\")",
        ),
        (
            "(a == 'x' && b == 'y') || c == 'z'",
            "a == \"x\" && b == \"y\" || c == \"z\"",
        ),
        (
            "a == 'x' && (b == 'y' && c == 'z')",
            "a == \"x\" && b == \"y\" && c == \"z\"",
        ),
        ("!(a == 'x' || b == 'y')", "!(a == \"x\" || b == \"y\")"),
        ("((((has(x)))))", "has(x)"),
        (
            "k starts  with 'p' && k ends\twith 's'",
            "k starts with \"p\" && k ends with \"s\"",
        ),
        (
            "example.com/tier-name contains 'fw'",
            "example.com/tier-name contains \"fw\"",
        ),
        ("all == 'x'", "all == \"x\""),
        ("has(has)", "has(has)"),
    ];
    for (input, want) in cases {
        let s = sel(input);
        assert_eq!(s.to_string(), want, "{input}");
        assert_eq!(sel(&s.to_string()), s, "round trip of {input}");
    }
}

#[test]
fn errors_name_the_column_and_what_was_expected() {
    let cases: [(&str, &str, usize, &str); 14] = [
        ("a = 'b'", "SelectorSyntax", 3, "an operator"),
        ("a == b", "SelectorSyntax", 6, "a quoted string"),
        ("a == 'b", "UnterminatedString", 6, "no closing '"),
        ("a == \"b", "UnterminatedString", 6, "no closing \""),
        ("has(a", "SelectorSyntax", 6, "')'"),
        ("has()", "SelectorSyntax", 5, "a label name"),
        ("a == 'b' &&", "SelectorSyntax", 12, "a label name"),
        ("a == 'b' & c == 'd'", "SelectorSyntax", 10, "'&&', '||'"),
        ("(a == 'b'", "SelectorSyntax", 10, "')'"),
        ("a in 'b'", "SelectorSyntax", 6, "'{'"),
        ("a in {'b' 'c'}", "SelectorSyntax", 11, "',' or '}'"),
        ("a not 'b'", "SelectorSyntax", 7, "an operator"),
        ("global()", "GlobalNotAllowed", 1, "use all()"),
        ("has(a) && global()", "GlobalNotAllowed", 11, "use all()"),
    ];
    for (input, reason, column, words) in cases {
        let err = Selector::parse(input).unwrap_err();
        assert_eq!(err.reason(), reason, "{input}: {err}");
        assert_eq!(err.column(), column, "{input}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(words), "{input}: {msg}");
        assert!(msg.contains(&format!("column {column}")), "{msg}");
        assert!(msg.contains(&format!("{input:?}")), "{msg}");
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    // 'ü' is two bytes; the column after it must still count it as one character.
    let err = Selector::parse("zone == 'ü' x").unwrap_err();
    assert_eq!(err.column(), 13, "{err}");
}

#[test]
fn labels_longer_than_calico_allows_are_refused() {
    let long = "k".repeat(MAX_LABEL_LEN + 1);
    let err = Selector::parse(&format!("has({long})")).unwrap_err();
    assert_eq!(err.reason(), "SelectorSyntax");
    assert!(err.to_string().contains("at most 512"), "{err}");
    assert!(Selector::parse(&format!("has({})", "k".repeat(MAX_LABEL_LEN))).is_ok());
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(
        Selector::parse(&deep).unwrap_err().reason(),
        "SelectorTooDeep"
    );
    let nots = format!("{}has(a)", "!".repeat(10_000));
    assert_eq!(
        Selector::parse(&nots).unwrap_err().reason(),
        "SelectorTooDeep"
    );
    let ok = format!("{}has(a){}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Selector::parse(&ok).is_ok());
}
