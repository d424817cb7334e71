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
    for s in [
        "",
        "   ",
        "\t",
        " \t ",
        "all()",
        " all( ) ",
        "\tall(\t)\t",
        "(all())",
    ] {
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
    // Leading `!`s do not nest (Calico counts them): any number parses, and pairs cancel.
    let a = labels(&[("a", "1")]);
    let even = sel(&format!("{}has(a)", "!".repeat(10_000)));
    assert_eq!(even, sel("has(a)"));
    assert!(even.matches(&a));
    let odd = sel(&format!("{}has(a)", "! ".repeat(10_001)));
    assert_eq!(odd, sel("!has(a)"));
    assert!(!odd.matches(&a));
    let ok = format!("{}has(a){}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Selector::parse(&ok).is_ok());
}

// -------------------------------------------------------------------------------------------
// Parity with Calico's selector tokenizer and parser (libcalico-go `lib/selector`): the cases
// below follow the ones its tests cover, valid and invalid, plus the edge cases its code shows.

type Set = &'static [(&'static str, &'static str)];

/// A selector, label sets it matches and label sets it does not.
type MatchCase = (&'static str, &'static [Set], &'static [Set]);

const MATCH_CASES: &[MatchCase] = &[
    (
        r#"a == "b""#,
        &[&[("a", "b")], &[("a", "b"), ("c", "d")]],
        &[&[], &[("a", "c")], &[("c", "d")]],
    ),
    (
        r#"a == "b" && c == "d""#,
        &[&[("a", "b"), ("c", "d")]],
        &[
            &[],
            &[("a", "b"), ("c", "e")],
            &[("a", "c"), ("c", "d")],
            &[("c", "d")],
            &[("a", "b")],
        ],
    ),
    (
        r#"a == "b" || c == "d""#,
        &[&[("a", "b"), ("c", "d")], &[("a", "b")], &[("c", "d")]],
        &[&[], &[("a", "e"), ("c", "e")], &[("c", "e")], &[("a", "e")]],
    ),
    // Either quote inside the other.
    (
        r#"a in {"'", '"', "c"}"#,
        &[&[("a", "c")], &[("a", "\"")], &[("a", "'")]],
        &[&[], &[("a", "e")]],
    ),
    (
        r#"a not in {"'", '"', "c"}"#,
        &[&[], &[("a", "e")]],
        &[&[("a", "c")], &[("a", "\"")], &[("a", "'")]],
    ),
    (r#"a != "b""#, &[&[("a", "a")], &[]], &[&[("a", "b")]]),
    (
        r#"a contains "a""#,
        &[&[("a", "a")], &[("a", "bab")], &[("a", "aaa"), ("b", "c")]],
        &[&[], &[("a", "b")], &[("b", "aaa")]],
    ),
    (
        r#"a starts with "a""#,
        &[&[("a", "a")], &[("a", "abb")]],
        &[&[], &[("a", "b")], &[("a", "baa")], &[("b", "aaa")]],
    ),
    (
        r#"a ends with "a""#,
        &[&[("a", "a")], &[("a", "bba")]],
        &[&[], &[("a", "b")], &[("a", "aab")], &[("b", "aaa")]],
    ),
    // The one-word spellings.
    (
        r#"a startswith "a""#,
        &[&[("a", "abb")]],
        &[&[], &[("a", "baa")]],
    ),
    (
        r#"a endswith "a""#,
        &[&[("a", "bba")]],
        &[&[], &[("a", "aab")]],
    ),
    (
        r#"a notin {"d", "e"}"#,
        &[&[], &[("a", "a")]],
        &[&[("a", "d")]],
    ),
    // `!` applies to one operation, not to the whole comparison chain.
    (r#"!a in {"a"}"#, &[&[("a", "b")], &[]], &[&[("a", "a")]]),
    (
        r#"a in {"a", "b"}"#,
        &[&[("a", "a")], &[("a", "b")]],
        &[&[("a", "c")], &[]],
    ),
    ("has(a)", &[&[("a", "b")], &[("a", "")]], &[&[("b", "b")]]),
    ("!has(a)", &[&[("b", "b")]], &[&[("a", "b")]]),
    ("", &[&[], &[("a", "b")]], &[]),
    (" ", &[&[], &[("a", "b")]], &[]),
    (" all()", &[&[], &[("a", "b")]], &[]),
    ("!all()", &[], &[&[], &[("a", "b")]]),
    ("!!has(b)", &[], &[&[("a", "b")]]),
    ("! has(a)", &[], &[&[("a", "b")]]),
    ("!!! has(a)", &[], &[&[("a", "b")]]),
    ("!! ! has(a)", &[], &[&[("a", "b")]]),
    ("! !!has(a)", &[], &[&[("a", "b")]]),
    // Boolean combinations.
    (
        "a == 'a1' && b == 'b1'",
        &[&[("a", "a1"), ("b", "b1")]],
        &[],
    ),
    (
        "a == 'a1' && b != 'b1'",
        &[],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "a != 'a1' && !b == 'b1'",
        &[&[("a", "a2"), ("b", "b2")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "!a == 'a1' && b == 'b1'",
        &[&[("b", "b1")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "has(a) && !has(b)",
        &[&[("a", "a")]],
        &[&[("a", "a"), ("b", "b")]],
    ),
    (
        "!(!has(a) || has(b))",
        &[&[("a", "a")]],
        &[&[], &[("a", "a"), ("b", "b")]],
    ),
    (
        "a == 'a1' || b != 'b1'",
        &[&[("a", "a1"), ("b", "b1")], &[]],
        &[&[("a", "a2"), ("b", "b1")]],
    ),
    (
        "! a == 'a1' || ! b == 'b1'",
        &[&[("a", "a1")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    // Empty sets, and a comma before the closing brace.
    ("a in {}", &[], &[&[], &[("a", "")]]),
    ("a not in {}", &[&[], &[("a", "x")]], &[]),
    (
        "a in {'x', 'y',}",
        &[&[("a", "x")], &[("a", "y")]],
        &[&[("a", "z")]],
    ),
    // Label keys: letters, digits, `_`, `.`, `/`, `-`, in any position.
    (
        "calico/k8s_NS-.1/role == 'x'",
        &[&[("calico/k8s_NS-.1/role", "x")]],
        &[&[("calico/k8s_NS-.1", "x")]],
    ),
    (
        "has(calico/k8s_ns)",
        &[&[("calico/k8s_ns", "")]],
        &[&[("calico", "")]],
    ),
    (
        "has(.hidden) && has(/root) && -x == '1' && 123 == '4'",
        &[&[(".hidden", ""), ("/root", ""), ("-x", "1"), ("123", "4")]],
        &[&[(".hidden", ""), ("/root", ""), ("-x", "1")]],
    ),
    // Words that are operators or functions elsewhere are plain label keys before an operator.
    (
        r#"contains contains "contains""#,
        &[&[("contains", "xcontainsx")]],
        &[&[("contains", "contain")]],
    ),
    (
        r#"startswith starts with "v""#,
        &[&[("startswith", "val")]],
        &[&[("startswith", "x")]],
    ),
    (
        r#"endswith ends with "v""#,
        &[&[("endswith", "dev")]],
        &[&[("endswith", "x")]],
    ),
    (
        "in in {'x'} && not == 'y' && notin notin {'z'}",
        &[&[("in", "x"), ("not", "y")]],
        &[&[("in", "x"), ("not", "y"), ("notin", "z")]],
    ),
    (
        "has == 'h' && all == 'a' && global == 'g'",
        &[&[("has", "h"), ("all", "a"), ("global", "g")]],
        &[&[("has", "h"), ("all", "a")]],
    ),
    // Strings: no escapes, anything but the quote, line breaks and backslashes included.
    ("a == 'x\ny'", &[&[("a", "x\ny")]], &[&[("a", "x y")]]),
    (r"a == 'x\'", &[&[("a", r"x\")]], &[&[("a", "x'")]]),
    ("a == ''", &[&[("a", "")]], &[&[]]),
];

fn label_set(pairs: Set) -> BTreeMap<String, String> {
    labels(pairs)
}

#[test]
fn calico_selectors_match_as_calico_evaluates_them() {
    for &(input, yes, no) in MATCH_CASES {
        let s = sel(input);
        // What Display prints must match the same sets (Calico's tests check this too).
        let again = sel(&s.to_string());
        for l in yes {
            assert!(s.matches(&label_set(l)), "{input} should match {l:?}");
            assert!(again.matches(&label_set(l)), "{s} should match {l:?}");
        }
        for l in no {
            assert!(!s.matches(&label_set(l)), "{input} should not match {l:?}");
            assert!(!again.matches(&label_set(l)), "{s} should not match {l:?}");
        }
    }
}

#[test]
fn every_calico_spelling_gives_the_same_selector() {
    // (another spelling, the usual one)
    let cases = [
        ("a startswith 'x'", "a starts with 'x'"),
        ("a endswith 'x'", "a ends with 'x'"),
        ("a notin {'x'}", "a not in {'x'}"),
        ("a starts  with 'x'", "a starts with 'x'"),
        ("a starts\twith 'x'", "a starts with 'x'"),
        ("a ends \t with 'x'", "a ends with 'x'"),
        ("a not\t\tin {'x'}", "a not in {'x'}"),
        // Operators may touch what follows unless it is a label character.
        ("a==\"b\"", "a == 'b'"),
        ("a!='b'", "a != 'b'"),
        ("a in{'x'}", "a in {'x'}"),
        ("a notin{'x'}", "a not in {'x'}"),
        ("a contains'x'", "a contains 'x'"),
        ("a startswith'x'", "a starts with 'x'"),
        ("a endswith\"x\"", "a ends with 'x'"),
        (
            "a notin{\"bar\"}&&!has(foo)||b in{\"c\"}",
            "a not in {'bar'} && !has(foo) || b in {'c'}",
        ),
        (
            "  a  not  in  {'bar'}  &&  ! has( foo )  ||  b  in  {'c'} ",
            "a not in {'bar'} && !has(foo) || b in {'c'}",
        ),
        // Blanks inside has( ) and all( ), tabs anywhere a space may be.
        ("has( a )", "has(a)"),
        ("has(\ta\t)", "has(a)"),
        ("all( )", "all()"),
        ("\ta == 'b'\t", "a == 'b'"),
        // Sets: order, duplicates and one trailing comma do not matter.
        ("a in {'y', 'x', 'y',}", "a in {'x', 'y'}"),
        ("a in {\"x\",}", "a in {'x'}"),
        // Negations cancel in pairs, with or without parentheses.
        ("!!has(a)", "has(a)"),
        ("!(!has(a))", "has(a)"),
        ("!!!has(a)", "!has(a)"),
        ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
    ];
    for (spelling, usual) in cases {
        assert_eq!(sel(spelling), sel(usual), "{spelling:?} vs {usual:?}");
        assert_eq!(sel(spelling).to_string(), sel(usual).to_string());
    }
}

#[test]
fn calico_canonical_forms_print_alike() {
    let cases = [
        (" (all() )", "all()"),
        ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
        (
            "! (a == \"b\"&&! c != \"d\")",
            "!(a == \"b\" && !c != \"d\")",
        ),
        ("a == \"'\"", "a == \"'\""),
        ("a == '\"'", "a == '\"'"),
        ("a startswith '\"'", "a starts with '\"'"),
        ("a endswith \"'\"", "a ends with \"'\""),
        ("a notin {'d', 'a'}", "a not in {\"a\", \"d\"}"),
        ("a!='\"'", "a != '\"'"),
        (
            "a in {\"z\", \"z\", \"x\", \"y\", \"x\", \"a\"}",
            "a in {\"a\", \"x\", \"y\", \"z\"}",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(sel(input).to_string(), want, "{input}");
    }
}

/// Selectors Calico refuses: (input, reason, column, words the message must contain).
const REFUSED: &[(&str, &str, usize, &str)] = &[
    // Calico's own list of bad selectors.
    ("b == b", "SelectorSyntax", 6, "a quoted string"),
    ("b contains b", "SelectorSyntax", 12, "a quoted string"),
    ("b starts with b", "SelectorSyntax", 15, "a quoted string"),
    ("b ends with b", "SelectorSyntax", 13, "a quoted string"),
    ("'b1' == b", "SelectorSyntax", 1, "a label name"),
    ("b", "SelectorSyntax", 2, "an operator"),
    ("a b", "SelectorSyntax", 3, "an operator"),
    ("!", "SelectorSyntax", 2, "a label name"),
    ("foo == \"bar\" &", "SelectorSyntax", 14, "'&&', '||'"),
    ("foo == \"bar\" |", "SelectorSyntax", 14, "'&&', '||'"),
    ("foo != ||", "SelectorSyntax", 8, "a quoted string"),
    (
        "foo in {\"\", ||",
        "SelectorSyntax",
        13,
        "a quoted string or '}'",
    ),
    ("foo in \"\"", "SelectorSyntax", 8, "'{'"),
    ("\"FOO", "SelectorSyntax", 1, "a label name"),
    ("'FOO", "SelectorSyntax", 1, "a label name"),
    ("a == \"FOO'", "UnterminatedString", 6, "no closing \""),
    ("(", "SelectorSyntax", 2, "a label name"),
    ("(a == \"foo\"", "SelectorSyntax", 12, "')'"),
    (")", "SelectorSyntax", 1, "a label name"),
    ("()", "SelectorSyntax", 2, "a label name"),
    ("%", "SelectorSyntax", 1, "a label name"),
    ("a == \"b\" && %", "SelectorSyntax", 13, "a label name"),
    ("a == \"b\" || %", "SelectorSyntax", 13, "a label name"),
    ("a ", "SelectorSyntax", 3, "an operator"),
    ("has(foo) &&", "SelectorSyntax", 12, "a label name"),
    // Calico's tokenizer: a two-word operator needs its second word.
    (
        "label starts foo \"value\"",
        "SelectorSyntax",
        14,
        "an operator",
    ),
    (
        "label ends foo \"value\"",
        "SelectorSyntax",
        12,
        "an operator",
    ),
    (
        "label squiggles \"value\"",
        "SelectorSyntax",
        7,
        "an operator",
    ),
    ("a not inx {}", "SelectorSyntax", 7, "an operator"),
    // An operator word must end where label characters end.
    (
        "a inside {'x'}",
        "SelectorSyntax",
        3,
        "startswith, endswith, notin",
    ),
    ("a containsx 'y'", "SelectorSyntax", 3, "an operator"),
    ("a startswithx 'y'", "SelectorSyntax", 3, "an operator"),
    ("a notinx {}", "SelectorSyntax", 3, "an operator"),
    ("a starts-with 'x'", "SelectorSyntax", 3, "an operator"),
    // Keywords are case-sensitive.
    ("a CONTAINS 'x'", "SelectorSyntax", 3, "an operator"),
    ("a Starts With 'x'", "SelectorSyntax", 3, "an operator"),
    ("ALL()", "SelectorSyntax", 4, "an operator"),
    // `in` wants a set; the one-word `notin` too.
    ("a notin\"bar\"", "SelectorSyntax", 8, "'{'"),
    ("b in c", "SelectorSyntax", 6, "'{'"),
    // Only spaces and tabs separate tokens.
    ("\n", "SelectorSyntax", 1, "line breaks"),
    ("a == 'b'\n", "SelectorSyntax", 9, "line breaks"),
    ("a\n== 'b'", "SelectorSyntax", 2, "line breaks"),
    ("a starts\nwith 'x'", "SelectorSyntax", 9, "line breaks"),
    ("has(a\n)", "SelectorSyntax", 6, "line breaks"),
    (
        "a == 'b' &&\r\nc == 'd'",
        "SelectorSyntax",
        12,
        "a space or a tab",
    ),
    ("a ==\u{a0}'b'", "SelectorSyntax", 5, "a space or a tab"),
    ("a in {'x',\n'y'}", "SelectorSyntax", 11, "line breaks"),
    // all(, has( and global( are single tokens.
    ("all ()", "SelectorSyntax", 4, "no blank before '('"),
    ("has (a)", "SelectorSyntax", 4, "no blank before '('"),
    ("!has\t(a)", "SelectorSyntax", 5, "no blank before '('"),
    ("global ()", "SelectorSyntax", 7, "no blank before '('"),
    ("all(x)", "SelectorSyntax", 5, "')' after all("),
    ("has('a')", "SelectorSyntax", 5, "a label name"),
    ("has(a b)", "SelectorSyntax", 7, "')'"),
    // Sets.
    ("a in {,}", "SelectorSyntax", 7, "a quoted string or '}'"),
    (
        "a in {'x',,}",
        "SelectorSyntax",
        11,
        "a quoted string or '}'",
    ),
    ("a in {'x' 'y'}", "SelectorSyntax", 11, "',' or '}'"),
    ("a in {'x'", "SelectorSyntax", 10, "',' or '}'"),
    ("a in {1}", "SelectorSyntax", 7, "a quoted string or '}'"),
    // Values are quoted strings, never numbers or bare words.
    ("a == 1", "SelectorSyntax", 6, "a quoted string"),
    // Operators are spelled exactly.
    ("a = 'b'", "SelectorSyntax", 3, "an operator"),
    ("a ! = 'b'", "SelectorSyntax", 3, "an operator"),
    ("a = = 'b'", "SelectorSyntax", 3, "an operator"),
    ("has(a) & has(b)", "SelectorSyntax", 8, "'&&', '||'"),
    ("has(a) | has(b)", "SelectorSyntax", 8, "'&&', '||'"),
    (
        "a == 'b' c == 'd'",
        "SelectorSyntax",
        10,
        "'&&', '||' or the end",
    ),
    ("!= 'a'", "SelectorSyntax", 1, "a label name"),
    // Valid for Calico network policies only.
    ("global( )", "GlobalNotAllowed", 1, "use all()"),
    ("!global()", "GlobalNotAllowed", 2, "use all()"),
];

#[test]
fn what_calico_refuses_is_refused_with_column_and_expectation() {
    for &(input, reason, column, words) in REFUSED {
        let Err(err) = Selector::parse(input) else {
            panic!("{input:?} should be refused");
        };
        let msg = err.to_string();
        assert_eq!(
            (err.reason(), err.column()),
            (reason, column),
            "{input:?}: {msg}"
        );
        assert!(msg.contains(words), "{input:?}: {msg}");
        assert!(msg.contains(&format!("column {column}")), "{msg}");
    }
}
