//! The kubeconfig `ipam.kubeconfig` names: a cluster on a closed port, a context and a user
//! whose credential holds [`MARKER`], written in several YAML styles and encodings, then
//! damaged as text; or a path that is missing, a directory or too long.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::{MARKER, closed_server, junk_text};

/// Where `ipam.kubeconfig` points.
#[derive(Debug, Clone)]
pub(crate) enum KubeconfigFile {
    /// `DIR/kubeconfig`.
    Written(Kubeconfig),
    /// A file whose name holds a newline and an escape sequence.
    OddlyNamed(Kubeconfig),
    Missing,
    Directory,
    /// Longer than any path the kernel accepts.
    LongPath,
}

/// A near-valid kubeconfig: a cluster, a context and a user, then damaged as text.
#[derive(Debug, Clone)]
pub(crate) struct Kubeconfig {
    pub(crate) server: String,
    pub(crate) cluster_lines: Vec<String>,
    pub(crate) user: User,
    pub(crate) edits: Vec<TextEdit>,
    pub(crate) padding: usize,
    pub(crate) encoding: Encoding,
}

/// The user's credential, each holding [`MARKER`].
#[derive(Debug, Clone)]
pub(crate) enum User {
    Nobody,
    Token(Scalar),
    TokenFile(Option<String>),
    /// An inline token that is only whitespace, so the file is read instead.
    BlankTokenAndFile(String),
    Basic(Scalar),
    ClientKey(KeyData),
}

/// A secret written as a YAML scalar in some style.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub(crate) text: String,
    pub(crate) style: Style,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Style {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyData {
    /// Not base64 at all.
    Raw,
    /// base64 of the marker.
    Encoded,
    /// base64 of a PEM block whose body is the marker.
    Pem,
}

#[derive(Debug, Clone)]
pub(crate) enum TextEdit {
    DropLine(usize),
    DuplicateLine(usize),
    Indent(usize, bool),
    /// `KEY: VALUE` inserted before a line; never a key that names a host.
    Insert(usize, String),
    Truncate(u16),
    Splice(u16, Vec<u8>),
    /// Anchors and aliases that expand a billion-fold.
    AliasBomb,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Encoding {
    Utf8,
    Utf8Bom,
    Utf16Le,
    Utf16Be,
}

pub(crate) fn kubeconfig_file() -> BoxedStrategy<KubeconfigFile> {
    prop_oneof![
        16 => kubeconfig().prop_map(KubeconfigFile::Written),
        1 => kubeconfig().prop_map(KubeconfigFile::OddlyNamed),
        1 => Just(KubeconfigFile::Missing),
        1 => Just(KubeconfigFile::Directory),
        1 => Just(KubeconfigFile::LongPath),
    ]
    .boxed()
}

pub(crate) fn kubeconfig() -> BoxedStrategy<Kubeconfig> {
    let server = closed_server();
    let wrong_servers = vec![
        format!("http://{server}"),
        format!("HTTPS://{server}/"),
        format!("https://{server}/api?x=1"),
        server.to_owned(),
        format!("https://node:{MARKER}@{server}"),
        format!("node:{MARKER}@{server}"),
        format!("ftp://node:{MARKER}@{server}"),
        format!("ftp://{server}"),
        format!("https://{server}0000"),
        format!("https://{server} "),
        format!("'https://{server}\n'"),
        String::new(),
    ];
    let cluster_line = proptest::sample::select(vec![
        "insecure-skip-tls-verify: true".to_owned(),
        format!(
            "certificate-authority-data: {}",
            BASE64.encode("not a certificate")
        ),
        "certificate-authority-data: '%%%'".to_owned(),
        "certificate-authority: ca.crt".to_owned(),
        "certificate-authority: /".to_owned(),
        "tls-server-name: kubernetes".to_owned(),
        format!("proxy-url: http://{server}"),
        format!("proxy-url: http://node:{MARKER}@{server}"),
        format!("proxy-url: socks5://node:{MARKER}@{server}"),
        format!("proxy-url: https://node:{MARKER}@{server}"),
    ]);
    let encoding = prop_oneof![
        12 => Just(Encoding::Utf8),
        1 => Just(Encoding::Utf8Bom),
        1 => Just(Encoding::Utf16Le),
        1 => Just(Encoding::Utf16Be),
    ];
    let padding = prop_oneof![
        24 => Just(0),
        1 => Just((1 << 20) - 2048),
        1 => Just((1 << 20) + 1),
    ];
    (
        prop_oneof![
            3 => Just(format!("https://{server}")),
            2 => proptest::sample::select(wrong_servers),
        ],
        vec(cluster_line, 0..3),
        user(),
        prop_oneof![2 => Just(Vec::new()), 1 => vec(text_edit(), 1..4)],
        padding,
        encoding,
    )
        .prop_map(
            |(server, cluster_lines, user, edits, padding, encoding)| Kubeconfig {
                server,
                cluster_lines,
                user,
                edits,
                padding,
                encoding,
            },
        )
        .boxed()
}

pub(crate) fn user() -> BoxedStrategy<User> {
    let secret = prop_oneof![
        4 => Just(MARKER.to_owned()),
        1 => Just(format!("  {MARKER}\n")),
        1 => Just(format!("{MARKER}\n{MARKER}")),
        1 => "[\\x00-\\x1f\\x7f]".prop_map(|c| format!("{MARKER}{c}{MARKER}")),
        1 => Just(format!("{MARKER}\t{MARKER}")),
        1 => Just(format!("\u{feff}{MARKER} \u{e9}")),
        1 => (1..3000usize).prop_map(|n| MARKER.repeat(n)),
        1 => junk_text().prop_map(|j| format!("{MARKER}{j}")),
    ];
    let style = prop_oneof![Just(Style::Plain), Just(Style::Single), Just(Style::Double)];
    let scalar = (secret.clone(), style).prop_map(|(text, style)| Scalar { text, style });
    prop_oneof![
        1 => Just(User::Nobody),
        4 => scalar.clone().prop_map(User::Token),
        2 => proptest::option::weighted(0.9, secret.clone()).prop_map(User::TokenFile),
        1 => secret.prop_map(User::BlankTokenAndFile),
        2 => scalar.prop_map(User::Basic),
        2 => prop_oneof![Just(KeyData::Raw), Just(KeyData::Encoded), Just(KeyData::Pem)]
            .prop_map(User::ClientKey),
    ]
    .boxed()
}

pub(crate) fn text_edit() -> BoxedStrategy<TextEdit> {
    // Never `server`, `proxy-url`, `exec` or `auth-provider`: no other host, no command.
    let key = proptest::sample::select(vec![
        "name",
        "- name",
        "user",
        "cluster",
        "context",
        "token",
        "tokenFile",
        "users",
        "clusters",
        "contexts",
        "current-context",
        "kind",
        "apiVersion",
        "x-junk",
        "- ",
    ]);
    let line = (key, "[ ]{0,6}", "[ -~&*]{0,30}")
        .prop_map(|(key, indent, value)| format!("{indent}{key}: {value}"));
    prop_oneof![
        2 => (0..40usize).prop_map(TextEdit::DropLine),
        2 => (0..40usize).prop_map(TextEdit::DuplicateLine),
        2 => (0..40usize, any::<bool>()).prop_map(|(at, deeper)| TextEdit::Indent(at, deeper)),
        3 => (0..40usize, line).prop_map(|(at, line)| TextEdit::Insert(at, line)),
        1 => (0..1000u16).prop_map(TextEdit::Truncate),
        2 => (0..1000u16, prop_oneof![
            Just(b"\xff".to_vec()), Just(b"\t".to_vec()), Just(b"\0".to_vec()),
            Just(b"\r".to_vec()), Just(b"'".to_vec()), Just(b"{".to_vec()), Just(b"\n---\n".to_vec()),
        ]).prop_map(|(at, bytes)| TextEdit::Splice(at, bytes)),
        1 => Just(TextEdit::AliasBomb),
    ]
    .boxed()
}

impl KubeconfigFile {
    /// Writes the file(s) into `dir` and returns the path for `ipam.kubeconfig`.
    pub(crate) fn write(&self, dir: &Path, secrets: &mut Vec<String>) -> PathBuf {
        match self {
            KubeconfigFile::Written(k) => k.write(dir, &dir.join("kubeconfig"), secrets),
            KubeconfigFile::OddlyNamed(k) => {
                k.write(dir, &dir.join("kube\nconfig\u{1b}[31m"), secrets)
            }
            KubeconfigFile::Missing => dir.join("missing"),
            KubeconfigFile::Directory => dir.to_owned(),
            KubeconfigFile::LongPath => dir.join("a/".repeat(3000)),
        }
    }
}

impl Kubeconfig {
    fn write(&self, dir: &Path, path: &Path, secrets: &mut Vec<String>) -> PathBuf {
        let text = self.render(dir, secrets);
        let mut bytes = self.damage(text);
        bytes.resize(bytes.len() + self.padding, b' ');
        std::fs::write(path, self.encode(bytes)).unwrap();
        path.to_owned()
    }

    fn render(&self, dir: &Path, secrets: &mut Vec<String>) -> String {
        let mut user = Vec::new();
        match &self.user {
            User::Nobody => {}
            User::Token(token) => user.push(format!("token: {}", token.yaml())),
            User::TokenFile(content) => {
                if let Some(content) = content {
                    std::fs::write(dir.join("token"), content).unwrap();
                }
                user.push("tokenFile: token".to_owned());
            }
            User::BlankTokenAndFile(content) => {
                std::fs::write(dir.join("token"), content).unwrap();
                user.push("token: ' '".to_owned());
                user.push(format!("tokenFile: {}", dir.join("token").display()));
            }
            User::Basic(password) => {
                user.push("username: node".to_owned());
                user.push(format!("password: {}", password.yaml()));
            }
            User::ClientKey(key) => {
                let data = match key {
                    KeyData::Raw => MARKER.to_owned(),
                    KeyData::Encoded => BASE64.encode(MARKER),
                    KeyData::Pem => BASE64.encode(format!(
                        "-----BEGIN PRIVATE KEY-----\n{MARKER}\n-----END PRIVATE KEY-----\n"
                    )),
                };
                secrets.push(data.clone());
                let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
                user.push(format!("client-certificate-data: {}", BASE64.encode(cert)));
                user.push(format!("client-key-data: {data}"));
            }
        }
        let indent =
            |lines: &[String]| -> String { lines.iter().map(|l| format!("    {l}\n")).collect() };
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: node\nclusters:\n- name: local\n  cluster:\n    server: {}\n{}contexts:\n- name: node\n  context:\n    cluster: local\n    user: node\nusers:\n- name: node\n  user:\n{}preferences: {{}}\n",
            self.server,
            indent(&self.cluster_lines),
            indent(&user),
        )
    }

    fn damage(&self, text: String) -> Vec<u8> {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut tail = Vec::new();
        for edit in &self.edits {
            let n = lines.len().max(1);
            match edit {
                TextEdit::DropLine(i) if !lines.is_empty() => drop(lines.remove(i % n)),
                TextEdit::DuplicateLine(i) if !lines.is_empty() => {
                    let line = lines[i % n].clone();
                    lines.insert(i % n, line);
                }
                TextEdit::Indent(i, deeper) if !lines.is_empty() => {
                    let line = &mut lines[i % n];
                    *line = if *deeper {
                        format!("  {line}")
                    } else {
                        line.trim_start().to_owned()
                    };
                }
                TextEdit::Insert(i, line) => lines.insert(i % (n + 1), line.clone()),
                TextEdit::AliasBomb => {
                    lines.push("x-bomb-0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]".into());
                    for level in 1..9 {
                        let prev = format!("*a{}", level - 1);
                        lines.push(format!(
                            "x-bomb-{level}: &a{level} [{}]",
                            vec![prev; 10].join(",")
                        ));
                    }
                }
                TextEdit::Truncate(_) | TextEdit::Splice(..) => tail.push(edit),
                _ => {}
            }
        }
        let mut bytes = (lines.join("\n") + "\n").into_bytes();
        for edit in tail {
            let at = |per_mille: &u16| bytes.len() * usize::from(*per_mille) / 1000;
            match edit {
                TextEdit::Truncate(per_mille) => bytes.truncate(at(per_mille)),
                TextEdit::Splice(per_mille, extra) => {
                    let at = at(per_mille);
                    bytes.splice(at..at, extra.iter().copied());
                }
                _ => {}
            }
        }
        bytes
    }

    fn encode(&self, bytes: Vec<u8>) -> Vec<u8> {
        let utf16 = |le: bool| {
            let text = String::from_utf8_lossy(&bytes);
            let mut out = if le {
                vec![0xFF, 0xFE]
            } else {
                vec![0xFE, 0xFF]
            };
            for unit in text.encode_utf16() {
                out.extend(if le {
                    unit.to_le_bytes()
                } else {
                    unit.to_be_bytes()
                });
            }
            out
        };
        match self.encoding {
            Encoding::Utf8 => bytes,
            Encoding::Utf8Bom => [&[0xEF, 0xBB, 0xBF][..], &bytes].concat(),
            Encoding::Utf16Le => utf16(true),
            Encoding::Utf16Be => utf16(false),
        }
    }
}

impl Scalar {
    fn yaml(&self) -> String {
        match self.style {
            Style::Plain => self.text.clone(),
            Style::Single => format!("'{}'", self.text.replace('\'', "''")),
            Style::Double => {
                let mut out = String::from("\"");
                for c in self.text.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if c.is_control() || c == '\u{feff}' => {
                            out.push_str(&format!("\\u{:04X}", u32::from(c)));
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
                out
            }
        }
    }
}
